"""``make train``'s first epoch against its second (benchmarks.first_epoch): the parsing of
``minicnn train``'s time-stamped output, and one real cold-cache run (slow)."""

from __future__ import annotations

import pytest

from benchmarks import first_epoch

from tests.helpers import mnist_dir


def _stamps(epoch_ends, waited=2.5, start=4.0):
    lines = [(1.0, "minicnn: loading mnist"),
             (3.9, f"minicnn: kernels compiled or loaded from numba's cache in 9.0 s, in the background "
                   f"while the data loaded (waited {waited} s for them)"),
             (start, "minicnn: training 'seed' on mnist (60000 images), backend numba")]
    lines += [(t, f"600/600 - {i}s - loss: 0.1 - accuracy: 0.9") for i, t in enumerate(epoch_ends)]
    return lines + [(epoch_ends[-1] + 0.1, "minicnn: wrote models/seed-mnist.npz")]


def test_epochs_are_timed_from_the_training_line_and_between_summary_lines():
    r = first_epoch.timings(_stamps([16.0, 26.0]), epochs=2)
    assert r["startup_s"] == 4.0 and r["epoch_s"] == [12.0, 10.0] and r["to_epoch1_s"] == 16.0
    assert r["ratio"] == pytest.approx(1.2) and r["waited_s"] == 2.5
    assert r["ratio_with_wait"] == pytest.approx(1.45)  # (2.5 + 12) / 10
    assert r["warmup_line"].startswith("minicnn: kernels")


def test_no_warmup_line_means_no_wait():
    stamps = [s for s in _stamps([16.0, 26.0]) if "kernels" not in s[1]]
    r = first_epoch.timings(stamps, epochs=2)
    assert r["waited_s"] == 0.0 and r["warmup_line"] is None and r["ratio_with_wait"] == r["ratio"]


@pytest.mark.parametrize("stamps, epochs, match", [
    ([s for s in _stamps([16.0, 26.0]) if "training" not in s[1]], 2, "no 'minicnn: training' line"),
    (_stamps([16.0]), 2, "expected 2"),             # the process printed one epoch line of two
    (_stamps([16.0]), 1, "expected 1 \\(>= 2\\)"),  # one epoch: no ratio
])
def test_output_without_the_lines_it_needs_is_an_error(stamps, epochs, match):
    with pytest.raises(RuntimeError, match=match):
        first_epoch.timings(stamps, epochs)


@pytest.mark.slow
@pytest.mark.mnist
def test_a_real_cold_cache_run(tmp_path):
    # the seed model on 1,000 MNIST images, two epochs, an empty numba cache: the real output parses
    (tmp_path / "cache").mkdir()
    (tmp_path / "out").mkdir()
    r = first_epoch.run_once("seed", 2, 100, 1000, str(tmp_path / "cache"), str(tmp_path / "out"),
                             data_dir=mnist_dir())
    assert r["limit"] == 1000 and len(r["epoch_s"]) == 2 and all(s > 0 for s in r["epoch_s"])
    assert r["warmup_line"] and r["startup_s"] > 0 and r["process_s"] >= r["to_epoch1_s"]
    assert r["ratio_with_wait"] >= r["ratio"]
    assert (tmp_path / "out" / "seed.npz").is_file()
