"""``minicnn train``'s first epoch against its second, on a cold numba cache (a newcomer's first
``make train``).

``python -m benchmarks.first_epoch [--preset seed] [--epochs 2] [--batch-size 100] [--limit N]
[--repeats 1] [--warm] [--json out.json]`` runs ``python -m minicnn train`` in a fresh process
with an empty ``NUMBA_CACHE_DIR`` (``--warm``: a second run on the same cache after each cold
one) and time-stamps every line of its output as it arrives (``--verbose 2``: one line per
epoch). Per run it reports the process start to the warm-up message (import, model, data load,
waiting for the kernels), and each epoch: from the start of training (the "training ..." line)
to the first epoch's summary line, then between summary lines. The ratio epoch 1 / epoch 2 is
the figure of the goal (<= 1.3); ``minicnn train`` joins the background compile before the first
epoch, so the ratio is also given with the wait for it (the warm-up line's "waited") added to
epoch 1, and ``to_epoch1_s`` (process start to the end of epoch 1) shows the whole critical path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_EPOCH_END = re.compile(r"^\d+/\d+ - ")
_WAITED = re.compile(r"waited ([\d.]+) s")


def run_once(preset: str, epochs: int, batch: int, limit: int, cache: str, out_dir: str, tree: Path = ROOT,
             data_dir: str | None = None) -> dict:
    """One ``minicnn train`` process of ``tree``'s minicnn on the cache ``cache``; its timings."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONUNBUFFERED="1")  # each line as it is printed
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "minicnn", "train", "--preset", preset, "--epochs", str(epochs),
           "--batch-size", str(batch), "--dataset", "mnist", "--verbose", "2",
           "--out", str(Path(out_dir) / f"{preset}.npz")]
    if limit:
        cmd += ["--limit", str(limit)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    t0 = time.perf_counter()
    stamps = []
    with subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as p:
        for line in p.stdout:
            stamps.append((time.perf_counter() - t0, line.rstrip("\n")))
        err = p.stderr.read()
    if p.returncode != 0:
        raise RuntimeError(f"minicnn train failed ({p.returncode}):\n{err[-3000:]}")
    return {**timings(stamps, epochs), "process_s": time.perf_counter() - t0,
            "preset": preset, "batch": batch, "limit": limit, "epochs": epochs}


def timings(stamps: list[tuple[float, str]], epochs: int) -> dict:
    """Epoch times from ``minicnn train --verbose 2``'s output lines, each stamped with the seconds
    since the process started: epoch 1 runs from the "minicnn: training" line to the first epoch's
    summary line, each later epoch between summary lines; the warm-up line says how long training
    waited for the background compile."""
    start = next((t for t, line in stamps if line.startswith("minicnn: training")), None)
    if start is None:
        raise RuntimeError("no 'minicnn: training' line in the output:\n" + "\n".join(s for _, s in stamps))
    warm = [line for _, line in stamps if line.startswith("minicnn: kernels")]
    ends = [t for t, line in stamps if _EPOCH_END.match(line)]
    if len(ends) != epochs or epochs < 2:
        raise RuntimeError(f"expected {epochs} (>= 2) epoch lines, got {len(ends)}:\n"
                           + "\n".join(s for _, s in stamps))
    epoch_s = [ends[0] - start] + [b - a for a, b in zip(ends, ends[1:])]
    waited = float(_WAITED.search(warm[0]).group(1)) if warm and _WAITED.search(warm[0]) else 0.0
    return {"startup_s": start, "epoch_s": epoch_s, "to_epoch1_s": ends[0], "ratio": epoch_s[0] / epoch_s[1],
            "waited_s": waited, "ratio_with_wait": (epoch_s[0] + waited) / epoch_s[1],
            "warmup_line": warm[0] if warm else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warm", action="store_true", help="also a run on the warm cache after each cold one")
    ap.add_argument("--trees", default=str(ROOT),
                    help="comma-separated checkouts whose minicnn to run, interleaved (A/B); default this one")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    if a.epochs < 2:
        ap.error("--epochs must be >= 2 (the ratio is epoch 1 / epoch 2)")
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    runs = {f"{kind} {t.name}": [] for t in trees for kind in ("cold", "warm")}
    with tempfile.TemporaryDirectory(prefix="minicnn-first-epoch-") as out_dir:
        for _ in range(a.repeats):
            for tree in trees:
                with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache:
                    for kind in ("cold", "warm") if a.warm else ("cold",):
                        r = run_once(a.preset, a.epochs, a.batch_size, a.limit, cache, out_dir, tree)
                        runs[f"{kind} {tree.name}"].append(r)
                        print(f"{a.preset} {kind} {tree.name}: startup {r['startup_s']:.1f} s, epochs "
                              + ", ".join(f"{s:.1f}" for s in r["epoch_s"])
                              + f" s, epoch1/epoch2 {r['ratio']:.2f} ((wait + epoch1)/epoch2 "
                              f"{r['ratio_with_wait']:.2f}), process start -> end of epoch 1 "
                              f"{r['to_epoch1_s']:.1f} s\n  {r['warmup_line']}", flush=True)
    for kind, rs in runs.items():
        if rs:
            print(f"{kind}: median epoch1/epoch2 {statistics.median(r['ratio'] for r in rs):.2f} "
                  f"(runs: {', '.join(format(r['ratio'], '.2f') for r in rs)}), with the wait for the "
                  f"kernels {statistics.median(r['ratio_with_wait'] for r in rs):.2f} "
                  f"(runs: {', '.join(format(r['ratio_with_wait'], '.2f') for r in rs)})")
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
