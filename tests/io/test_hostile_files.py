"""Hostile model files handed to ``minicnn evaluate FILE`` (and checkpoints to the resume reader),
each read in a subprocess under a 1 GiB address-space limit: every one is refused with one line
(a ModelFileError) naming the file and the property, exit status 1, no traceback, and nothing is
decompressed, allocated or followed beyond what the architecture needs.

The classes: a zip member that inflates past what the architecture needs (3 GiB; its header
honest or understating), JSON too large or nested too deep, overlapping zip entries, arrays
declaring more than the architecture needs, HDF5 soft and external links, virtual datasets,
external storage, unknown filters, and datasets declaring 3.6 TiB while storing nothing (with the
architecture asking for that shape, or not). All files are built here from valid ones.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from minicnn.fileio import JSON_KEY, MAX_JSON_BYTES, npz_bytes, read_npz

from tests.helpers import write_fake_mnist
from tests.io import hostile as H
from tests.io.test_model_file import npy_bytes

h5py = pytest.importorskip("h5py")

_GiB = 1 << 30


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from minicnn.presets import build_preset
    from tests.training._train_worker import small_model, synthetic_data
    d = tmp_path_factory.mktemp("hostile")
    model = build_preset("lenet5", seed=0)
    files = {"dir": d, "data": write_fake_mnist(d / "data", n_train=20, n_test=20)}
    for suffix in (".keras", ".h5", ".weights.h5", ".npz"):
        files[suffix] = d / f"lenet5{suffix}"
        model.save(files[suffix])
    x, y = synthetic_data()
    small = small_model()
    small.fit(x, y, batch_size=20, epochs=1, verbose=0, seed=0, checkpoint_dir=d / "ckpt")
    files["ckpt"] = sorted((d / "ckpt").glob("ckpt-*.npz"))[-1]
    files["bomb"] = H.zeros_bomb(3 * _GiB)
    return files


def evaluate(bases, path, *extra):
    return H.run_limited("cli", path, "evaluate", path, "--data-dir", bases["data"], "--backend", "numpy",
                         "--batch-size", "10", *extra)


def assert_refused(result, path, *phrases):
    rc, out, err = result
    assert rc == 1, (rc, out, err)
    assert "Traceback" not in err and "MemoryError" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0], lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def test_the_valid_bases_load_under_the_same_memory_limit(bases):
    for suffix, extra in ((".keras", ()), (".h5", ()), (".npz", ()), (".weights.h5", ("--preset", "lenet5"))):
        rc, out, err = evaluate(bases, bases[suffix], *extra)
        assert rc == 0, (suffix, err)
        assert "test accuracy" in out
    rc, out, err = H.run_limited("checkpoint", bases["ckpt"])
    assert rc == 0, err


# ----------------------------------------------------------------------------- .keras archives
def _keras_with(bases, name, member, tmp_path):
    members = H.zip_members(bases[".keras"].read_bytes())
    entries = [member if n == member[0] else H.stored(n, b) for n, b in members.items()]
    path = tmp_path / name
    path.write_bytes(H.raw_zip(entries))
    return path


def test_keras_weights_inflating_to_3_gib_are_refused_before_decompressing(bases, tmp_path):
    bomb, crc = bases["bomb"]
    path = _keras_with(bases, "bomb.keras", ("model.weights.h5", 8, bomb, crc, 3 * _GiB, None), tmp_path)
    assert_refused(evaluate(bases, path), path, "model.weights.h5 declares 3221225472 bytes uncompressed",
                   "more than the", "its architecture needs")


def test_keras_weights_whose_header_understates_the_inflation_stop_at_the_declared_size(bases, tmp_path):
    bomb, crc = bases["bomb"]
    honest = len(H.zip_members(bases[".keras"].read_bytes())["model.weights.h5"])
    path = _keras_with(bases, "liar.keras", ("model.weights.h5", 8, bomb, crc, honest, None), tmp_path)
    assert_refused(evaluate(bases, path), path, "model.weights.h5")


def test_keras_config_inflating_to_3_gib_is_refused_before_decompressing(bases, tmp_path):
    bomb, crc = bases["bomb"]
    path = _keras_with(bases, "config-bomb.keras", ("config.json", 8, bomb, crc, 3 * _GiB, None), tmp_path)
    assert_refused(evaluate(bases, path), path, "config.json declares 3221225472 bytes",
                   f"more than the {MAX_JSON_BYTES}")


def test_keras_config_nested_too_deep_is_refused_unparsed(bases, tmp_path):
    path = _keras_with(bases, "deep.keras", H.deflated("config.json", b"[" * 100_000 + b"]" * 100_000),
                       tmp_path)
    assert_refused(evaluate(bases, path), path, "config.json nests 100000 levels deep")


@pytest.mark.parametrize("how, phrase", [
    ("external_link", "is an HDF5 external link"),
    ("huge_empty", "declares shape (1000000, 1000000) float32 (4000000000000 bytes) but stores only 0 bytes"),
])
def test_keras_archive_whose_weights_file_is_not_self_contained_or_lies(bases, tmp_path, how, phrase):
    inner = tmp_path / "inner.weights.h5"
    (tmp_path / "plain.weights.h5").write_bytes(H.zip_members(bases[".keras"].read_bytes())["model.weights.h5"])
    H.h5_variant(tmp_path / "plain.weights.h5", inner, how, tmp_path)
    path = H.keras_with_inner(bases[".keras"], tmp_path / f"{how}.keras", inner)
    assert_refused(evaluate(bases, path), path, phrase)


# ----------------------------------------------------------------------------- HDF5 files
HDF5_CASES = [
    ("external_link", "is an HDF5 external link (to "),
    ("soft_link", "is an HDF5 soft link (to '/elsewhere')"),
    ("virtual", "is a virtual dataset"),
    ("external_storage", "has external storage"),
    ("huge_empty", "declares shape (1000000, 1000000) float32 (4000000000000 bytes) but stores only 0 bytes"),
    ("filter", "uses HDF5 filter 6"),
]


@pytest.mark.parametrize("how, phrase", HDF5_CASES)
def test_legacy_h5_that_is_not_self_contained_or_lies_is_refused(bases, tmp_path, how, phrase):
    path = H.h5_variant(bases[".h5"], tmp_path / f"{how}.h5", how, tmp_path)
    assert_refused(evaluate(bases, path), path, phrase, "kernel")


@pytest.mark.parametrize("how, phrase", HDF5_CASES)
def test_keras3_weights_h5_that_is_not_self_contained_or_lies_is_refused(bases, tmp_path, how, phrase):
    path = H.h5_variant(bases[".weights.h5"], tmp_path / f"{how}.weights.h5", how, tmp_path)
    assert_refused(evaluate(bases, path, "--preset", "lenet5"), path, phrase, "vars/0")


def test_legacy_h5_whose_architecture_asks_for_the_huge_declared_shape_is_refused(bases, tmp_path):
    path = H.legacy_with_huge_architecture(bases[".h5"], tmp_path / "huge-arch.h5")
    assert_refused(evaluate(bases, path), path, "but stores only 0 bytes", "refused before reading")


def test_the_external_file_is_never_read(bases, tmp_path):
    # with the link refused, deleting its target changes nothing about the message
    path = H.h5_variant(bases[".h5"], tmp_path / "ext.h5", "external_link", tmp_path)
    (tmp_path / "other-weights.h5").unlink()
    assert_refused(evaluate(bases, path), path, "external link")


# ----------------------------------------------------------------------------- minicnn .npz files
def _signed_variant(base, out, **extra_arrays):
    arrays, meta = read_npz(base, what="file")
    arrays.update(extra_arrays)
    out.write_bytes(npz_bytes(arrays, meta))
    return out


def _overlapping(base, out):
    members = H.zip_members(base.read_bytes())
    big = max((n for n in members if n != JSON_KEY + ".npy"), key=lambda n: len(members[n]))
    entries = [H.stored(n, b) for n, b in members.items()]
    entries += [(f"weights/copy{i}.npy", 0, members[big], 0, len(members[big]), big) for i in range(200)]
    out.write_bytes(H.raw_zip(entries))
    return out


def _json_entry(base, out, body: bytes):
    members = H.zip_members(base.read_bytes())
    members[JSON_KEY + ".npy"] = npy_bytes(np.frombuffer(body, np.uint8))
    out.write_bytes(H.raw_zip([H.stored(n, b) for n, b in members.items()]))
    return out


NPZ_CASES = [
    ("overlapping", _overlapping, "(overlapping entries)"),
    ("beyond the architecture", lambda b, o: _signed_variant(b, o, **{"weights/extra": np.zeros(4_000_000, np.float32)}),
     "its arrays declare"),
    ("json too large", lambda b, o: _json_entry(b, o, json.dumps({"pad": " " * (MAX_JSON_BYTES + 10)}).encode()),
     f"more than the {MAX_JSON_BYTES} a minicnn reader accepts"),
    ("json too deep", lambda b, o: _json_entry(b, o, b"[" * 5000 + b"]" * 5000), "nests 5000 levels deep"),
]


@pytest.mark.parametrize("name, build, phrase", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_hostile_npz_model_files_are_refused(bases, tmp_path, name, build, phrase):
    path = build(bases[".npz"], tmp_path / "model.npz")
    assert_refused(evaluate(bases, path), path, phrase)


@pytest.mark.parametrize("name, build, phrase", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_hostile_checkpoints_are_refused(bases, tmp_path, name, build, phrase):
    path = build(bases["ckpt"], tmp_path / "ckpt-000000010.npz")
    assert_refused(H.run_limited("checkpoint", path), path, phrase)
