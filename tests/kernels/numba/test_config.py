"""Process settings of the numba backend (minicnn.kernels.numba.config): the MINICNN_NUMBA_TILES
switch and the OpenMP wait policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from minicnn.kernels.numba import config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.parametrize("value", ["0", "off", "False", " no "])
def test_the_switch_turns_the_tiles_off(value):
    assert config.tiles_from_env({config.TILES_ENV: value}) is False


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO"])
def test_unset_or_auto_means_avx512_and_jit(value):
    import numba

    env = {} if value is None else {config.TILES_ENV: value}
    assert config.tiles_from_env(env) is (config.has_avx512() and not numba.config.DISABLE_JIT)


@pytest.mark.parametrize("value", ["1", "on", "yes", "true"])
def test_on_forces_the_tiles_where_jit_is_on(value):
    import numba

    assert config.tiles_from_env({config.TILES_ENV: value}) is (not numba.config.DISABLE_JIT)


def test_a_bad_value_is_refused():
    with pytest.raises(ValueError, match="MINICNN_NUMBA_TILES='2'"):
        config.tiles_from_env({config.TILES_ENV: "2"})


def _in_subprocess(code, **env):
    full = {**os.environ, **env, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=600)


def test_the_environment_switch_is_read_at_import():
    """MINICNN_NUMBA_TILES=0: config.TILES off and threading_info says so; conv2d then takes
    im2col + GEMM (the tile kernel is never launched)."""
    code = "\n".join([
        "import json, numpy as np",
        "from minicnn.kernels import numba_backend as nb",
        "from minicnn.kernels.numba import config, conv",
        "launched = []",
        "real = conv._conv_tiles",
        "conv._conv_tiles = lambda *a: launched.append(a[0]) or real(*a)",
        "x = np.ones((2, 6, 6, 16), np.float32); k = np.ones((3, 3, 16, 16), np.float32)",
        "nb.conv2d_backward(nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0)), x, k, (1, 1), (0, 0, 0, 0))",
        "print(json.dumps([config.TILES, nb.threading_info()['fma_tiles'], launched]))",
    ])
    out = _in_subprocess(code, MINICNN_NUMBA_TILES="0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False, []]


def test_a_bad_environment_value_fails_the_import_clearly():
    out = _in_subprocess("import minicnn.kernels.numba_backend", MINICNN_NUMBA_TILES="maybe")
    assert out.returncode != 0 and "MINICNN_NUMBA_TILES='maybe'" in out.stderr


def test_the_omp_wait_policy_is_passive_unless_the_user_chose():
    info = json.loads(_in_subprocess(
        "import json, os; import minicnn.kernels.numba.config as c;"
        "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), c.OMP_POLICY_SET_HERE]))",
        OMP_WAIT_POLICY="ACTIVE").stdout)
    assert info == ["ACTIVE", False]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", "import json, os; import minicnn.kernels.numba.config as c;"
                          "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), c.OMP_POLICY_SET_HERE]))"],
                         env={**env, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=600)
    assert json.loads(out.stdout) == ["PASSIVE", True]
