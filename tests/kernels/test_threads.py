"""minicnn.kernels.threads: the per-pass choice between one thread and the pool.

The picker's logic runs against a stand-in pool (a counter of threads, and passes whose duration
depends on it); the real numba pool checks that the choice never changes a result."""

import copy

import numpy as np
import pytest

from minicnn import Sequential
from minicnn.kernels import threads
from minicnn.layers import Conv2D, Dense, Flatten


class FakePool:
    """get/set of a thread count, with every set recorded."""

    def __init__(self, n=2):
        self.n, self.sets = n, []

    def get(self):
        return self.n

    def set(self, n):
        self.sets.append(n)
        self.n = n


@pytest.fixture
def pool(monkeypatch):
    p = FakePool()
    monkeypatch.setattr(threads, "_pool_control", lambda: (p.get, p.set))
    monkeypatch.delenv(threads.ENV, raising=False)
    return p


def timed_pass(pool, one_s, pool_s, clock):
    """A pass that advances the fake clock by ``one_s`` on one thread, ``pool_s`` on the pool, and
    records the thread count it ran on."""
    seen = []

    def fn():
        seen.append(pool.n)
        clock[0] += one_s if pool.n == 1 else pool_s
        return pool.n
    return fn, seen


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(threads, "_clock", lambda: now[0])
    return now


@pytest.mark.parametrize("one_s, pool_s, want", [(0.001, 0.005, "one"), (0.005, 0.001, "pool"),
                                                  (0.00098, 0.001, "pool")])  # within the margin: the pool
def test_it_alternates_then_keeps_the_faster(pool, clock, one_s, pool_s, want):
    picker = threads.ThreadPicker()
    fn, seen = timed_pass(pool, one_s, pool_s, clock)
    for _ in range(threads.CALLS_TO_CHOOSE):
        picker.run(("infer", 1), fn)
    # the first call untimed on the pool, then blocks on the pool and on one thread in turn
    assert seen == [2] + ([2] * threads.BLOCK + [1] * threads.BLOCK) * threads.ROUNDS
    assert picker.choices()[("infer", 1)]["threads"] == want
    for _ in range(4):
        picker.run(("infer", 1), fn)
    assert seen[-4:] == [1 if want == "one" else 2] * 4
    assert pool.n == 2  # always given back


def scripted_pass(pool, one_s, pool_s, clock):
    """A pass whose k-th timed duration on one thread is ``one_s[k]``, on the pool ``pool_s[k]``;
    the calls the picker does not time (the first, and each block's first) take 10 s, which must
    not count."""
    seen, it = [], {1: iter(one_s), 2: iter(pool_s)}

    def fn():
        k = len(seen) + 1  # the picker's call number
        seen.append(pool.n)
        timed = k > 1 and (k - 2) % threads.BLOCK > 0
        clock[0] += next(it[pool.n]) if timed else 10.0
        return pool.n
    return fn, seen


@pytest.mark.parametrize("one_ms, pool_ms, want", [
    # two pool calls caught in a burst of noise: the median still says the pool
    ([3.0] * threads.TRIALS, [2.0, 9.0, 2.1, 2.0, 9.5, 2.0, 2.2, 2.1][:threads.TRIALS], "pool"),
    # one lucky one-thread call below the pool's best, the rest slower: the median says the pool
    ([1.0] + [3.0] * (threads.TRIALS - 1), [2.0] * threads.TRIALS, "pool"),
    # faster by the median, but the pool's best call is as fast: too close, the pool
    ([1.5] * threads.TRIALS, [1.5] + [3.0] * (threads.TRIALS - 1), "pool"),
    # faster by both, with noise on both sides: one thread
    ([1.0, 1.1, 4.0, 1.0, 1.05, 1.2, 1.0, 1.1][:threads.TRIALS], [2.0, 2.1, 2.0, 7.0, 2.2, 2.0, 2.1, 2.0][:threads.TRIALS],
     "one")])
def test_a_noisy_trial_picks_one_thread_only_when_clearly_faster(pool, clock, one_ms, pool_ms, want):
    assert threads.TRIALS >= 8  # the scripts above give every sample
    picker = threads.ThreadPicker()
    fn, seen = scripted_pass(pool, [t / 1e3 for t in one_ms], [t / 1e3 for t in pool_ms], clock)
    for _ in range(threads.CALLS_TO_CHOOSE):
        picker.run(("infer", 1000), fn)
    got = picker.choices()[("infer", 1000)]
    assert got["threads"] == want
    assert got["pool_ms"] == pytest.approx(np.median(pool_ms)) and got["one_ms"] == pytest.approx(np.median(one_ms))


def test_each_kind_and_batch_size_is_measured_on_its_own(pool, clock):
    picker = threads.ThreadPicker()
    small, _ = timed_pass(pool, 0.001, 0.005, clock)
    big, _ = timed_pass(pool, 0.009, 0.005, clock)
    for _ in range(threads.CALLS_TO_CHOOSE):
        picker.run(("infer", 1), small)
        picker.run(("infer", 256), big)
        picker.run(("train", 1), big)
    c = picker.choices()
    assert (c[("infer", 1)]["threads"], c[("infer", 256)]["threads"], c[("train", 1)]["threads"]) == (
        "one", "pool", "pool")
    assert c[("infer", 1)]["one_ms"] == pytest.approx(1.0) and c[("infer", 1)]["pool_ms"] == pytest.approx(5.0)


def test_the_pool_size_is_restored_when_the_pass_raises(pool, clock):
    picker = threads.ThreadPicker()
    calls = []

    def boom():
        calls.append(pool.n)
        raise RuntimeError("bad pass")
    for _ in range(2 + threads.BLOCK):
        with pytest.raises(RuntimeError, match="bad pass"):
            picker.run(("infer", 1), boom)
    assert calls == [2] + [2] * threads.BLOCK + [1] and pool.n == 2
    assert picker.choices()[("infer", 1)]["one_ms"] is None  # a failed pass is no sample


def test_a_pass_inside_a_picked_one_runs_on_its_threads(pool, clock):
    picker, inner = threads.ThreadPicker(), threads.ThreadPicker()
    seen = []

    def outer_fn():
        return inner.run(("infer", 1), lambda: seen.append(pool.n))
    for _ in range(2 + threads.BLOCK):
        picker.run(("train", 1), outer_fn)
    assert seen == [2] + [2] * threads.BLOCK + [1]
    assert inner.choices() == {}  # never picked for itself


def test_off_by_environment_and_on_a_single_thread(pool, clock, monkeypatch):
    picker = threads.ThreadPicker()
    fn, seen = timed_pass(pool, 0.001, 0.005, clock)
    monkeypatch.setenv(threads.ENV, "off")
    for _ in range(threads.CALLS_TO_CHOOSE + 2):
        picker.run(("infer", 1), fn)
    monkeypatch.delenv(threads.ENV)
    pool.n = 1
    for _ in range(3):
        picker.run(("infer", 1), fn)
    assert pool.sets == [] and picker.choices() == {}
    assert seen == [2] * (threads.CALLS_TO_CHOOSE + 2) + [1] * 3


def test_the_keys_are_bounded(pool, clock):
    picker = threads.ThreadPicker()
    for b in range(threads.MAX_KEYS + 10):
        picker.run(("infer", b + 1), lambda: None)
    assert len(picker.choices()) == threads.MAX_KEYS


def test_a_copy_measures_for_itself(pool, clock):
    picker = threads.ThreadPicker()
    fn, _ = timed_pass(pool, 0.001, 0.005, clock)
    for _ in range(threads.CALLS_TO_CHOOSE):
        picker.run(("infer", 1), fn)
    assert copy.deepcopy(picker).choices() == {} and picker.choices()[("infer", 1)]["threads"] == "one"


def test_no_pool_on_the_numpy_backend():
    import minicnn

    minicnn.use_backend("numpy")
    try:
        assert threads._pool_control() is None
    finally:
        minicnn.use_backend("numba")


# ----------------------------------------------------------------------------- the real pool
def _model(seed=0):
    m = Sequential([Conv2D(4, 3, activation="relu"), Flatten(), Dense(10, activation="softmax")],
                   input_shape=(8, 8, 1), seed=seed)
    m.compile("adam", "categorical_crossentropy")
    return m


def test_the_choice_never_changes_a_result(monkeypatch):
    """Predictions and training on the real numba pool, picking on (every call of the trials on
    one thread or the pool in turn) against picking off: bitwise equal."""
    import minicnn
    import numba

    minicnn.use_backend("numba")
    before = numba.get_num_threads()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 8, 8, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 6)]
    runs = {}
    for pick in ("on", "off"):
        monkeypatch.setenv(threads.ENV, "1" if pick == "on" else "0")
        m = _model()
        preds = [m.predict(x[:1]) for _ in range(threads.CALLS_TO_CHOOSE + 1)]
        losses = [m.train_on_batch(x, y)[0] for _ in range(threads.CALLS_TO_CHOOSE + 1)]
        runs[pick] = (preds, losses, m.get_weights(), m.thread_picker.choices())
    (p1, l1, w1, c1), (p0, l0, w0, c0) = runs["on"], runs["off"]
    for a in p1[1:] + p0:
        np.testing.assert_array_equal(a, p1[0])
    assert l1 == l0
    for a, b in zip(w1, w0):
        np.testing.assert_array_equal(a, b)
    assert c0 == {}
    if numba.get_num_threads() > 1:  # both candidates ran their trials (a 1-thread run has no pool)
        for key in (("infer", 1), ("train", 6)):
            assert c1[key]["one_ms"] is not None and c1[key]["pool_ms"] is not None
            assert c1[key]["threads"] in ("one", "pool")
    assert numba.get_num_threads() == before
