"""TensorFlow on a GPU (issue 15, item 5): when TensorFlow sees a GPU the crosscheck and
reference.train run there with TF32 off and op determinism on, and say so; on CPU the header says
"device: CPU (no GPU visible)". The device choice is tested with faked device lists; the GPU run
itself only where a GPU is present."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
tf = pytest.importorskip("tensorflow")

from reference import train  # noqa: E402
from reference.crosscheck import crosscheck, format_report  # noqa: E402
from reference.crosscheck.environment import select_device  # noqa: E402
from reference.crosscheck.report import device_line  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402

GPUS = tf.config.list_physical_devices("GPU")


def fake(name):
    return types.SimpleNamespace(name=name, device_type="GPU")


def test_device_selection_with_faked_device_lists():
    cpu = select_device([])
    assert (cpu["kind"], cpu["determinism"], cpu["text"]) == ("CPU", False, "device: CPU (no GPU visible)")
    one = select_device([fake("/physical_device:GPU:0")])
    assert (one["kind"], one["name"], one["determinism"]) == ("GPU", "/physical_device:GPU:0", True)
    assert one["text"] == "device: GPU /physical_device:GPU:0; TF32 off, op determinism on"
    two = select_device([fake("/physical_device:GPU:0"), fake("/physical_device:GPU:1")])
    assert "2 GPUs visible; the first is used" in two["text"] and two["gpus"][1].endswith("GPU:1")
    # the header says so when TensorFlow reports a state other than the one asked for
    assert "TensorFlow reports TF32 True" in device_line({**one, "tf32": True, "op_determinism": True})
    assert device_line({**one, "tf32": False, "op_determinism": True}) == one["text"]


class FakeConfig:
    """The few tf.config calls reference.train makes, recorded."""

    def __init__(self, gpus):
        self.gpus, self.calls = gpus, []
        self.experimental = types.SimpleNamespace(
            enable_tensor_float_32_execution=lambda on: self.calls.append(("tf32", on)),
            enable_op_determinism=lambda: self.calls.append(("determinism", True)))

    def list_physical_devices(self, kind):
        return self.gpus if kind == "GPU" else [fake("/physical_device:CPU:0")]


@pytest.mark.parametrize("gpus", [[], [fake("/physical_device:GPU:0")]])
def test_reference_train_turns_tf32_off_and_determinism_on_a_gpu(gpus):
    cfg = FakeConfig(gpus)
    device = train._configure_devices(types.SimpleNamespace(config=cfg), None, select_device)
    assert ("tf32", False) in cfg.calls
    assert (("determinism", True) in cfg.calls) == bool(gpus) and device["kind"] == ("GPU" if gpus else "CPU")


def small_check():
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 28, 28, 1)), np.eye(10)[rng.integers(0, 10, 4)]
    return crosscheck(generate(1, "float32"), x, y, dtype="float32", steps=1, batch=4, data_source="random")


@pytest.mark.skipif(bool(GPUS), reason="TensorFlow sees a GPU: the CPU header line does not apply")
def test_the_header_names_the_cpu():
    report = small_check()
    d = report["header"]["device"]
    assert (d["kind"], d["tf32"]) == ("CPU", False)
    assert "device: CPU (no GPU visible)" in format_report(report).splitlines()


@pytest.mark.skipif(not GPUS, reason="no GPU visible to TensorFlow")
def test_a_small_crosscheck_runs_on_the_gpu_with_tf32_off():
    report = small_check()
    d = report["header"]["device"]
    assert d["kind"] == "GPU" and d["tf32"] is False and d["op_determinism"] is True
    assert any("GPU" in name for name in report["header"]["tf_devices"])
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    text = format_report(report)
    assert f"device: GPU {d['name']}" in text and "TF32 off, op determinism on" in text
    assert report["summary"]["passed"], text
