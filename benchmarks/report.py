"""The markdown report (``results.md``) from the raw results ``R`` and the derived numbers ``A``;
``results.json`` holds both (``R`` with ``R["derived"] = A``)."""

from __future__ import annotations

import json

from . import goals, latency, paths, traffic
from .analyse import FRAMEWORKS, REFERENCE
from .ops import LOSS_OP

DASH = "—"


def fmt_ms(t) -> str:
    """'median [min–max]' in ms, 3 significant-ish digits; '*' when noisy samples were kept."""
    if t and t.get("unresolved"):
        return "< noise"
    if not t or "median_ms" not in t:
        return DASH
    m = t["median_ms"]
    s = f"{m:.3f}" if m < 1 else f"{m:.2f}" if m < 100 else f"{m:.0f}"
    return f"{s} [{t['min_ms']:.3g}–{t['max_ms']:.3g}]" + (" *" if t.get("noisy") else "")


def fmt_x(r) -> str:
    return DASH if r is None or r != r else f"{r:.2f}x"


def fmt_gf(gf, pct) -> str:
    if not gf:
        return DASH
    return f"{gf:.0f} ({pct:.0f}%)" if pct is not None else f"{gf:.0f}"


def _shape(s) -> str:
    return "(" + ", ".join(map(str, s)) + ")" if s is not None else ""


def _mflop(f) -> str:
    return DASH if not f else f"{f / 1e6:.1f}" if f < 1e9 else f"{f / 1e6:.0f}"


def machine_section(R, A) -> list[str]:
    M, P = R.get("machine", {}), R.get("peak") or {}
    blas, env = M.get("blas", {}), M.get("env", {})
    mini = _fw_info(R, "minicnn-numba").get("threading", {})
    tfi = _fw_info(R, "tensorflow")
    clock = (P.get("clock") or {}).get("ghz")
    mx = P.get("mxcsr") or {}
    uarch = M.get("microarchitecture") or "unknown"
    rows = [
        ("CPU", M.get("cpu_model")),
        ("microarchitecture", f"{uarch} (vendor {M.get('vendor')}, family {M.get('family')}, model "
                              f"{M.get('model')}, stepping {M.get('stepping')})"),
        ("cores", f"{M.get('physical_cores')} physical, {M.get('logical_cpus')} logical, "
                  f"{M.get('usable_cpus')} usable by this process"),
        ("clock", f"nominal {M.get('nominal_mhz')} MHz; measured {clock:.2f} GHz while running "
                  "(dependent integer adds)" if clock else f"nominal {M.get('nominal_mhz')} MHz"),
        ("ISA", ", ".join(M.get("isa") or []) or DASH),
        ("RAM", f"{M.get('ram_gb')} GiB" if M.get("ram_gb") else DASH),
        ("BLAS (numpy)", f"{blas.get('name')} {blas.get('version')}, core type **{blas.get('core_type')}**, "
                         f"{blas.get('threads')} threads ({blas.get('via')})"),
        ("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE", f"{env.get('OPENBLAS_CORETYPE')} / {env.get('OPENBLAS_L2_SIZE')}"),
        ("numba threading", f"{P.get('numba_threading_layer') or mini.get('layer')} layer, "
                            f"{P.get('numba_threads') or mini.get('num_threads')} threads; "
                            f"OMP_WAIT_POLICY={mini.get('omp_wait_policy', env.get('OMP_WAIT_POLICY'))}"),
        ("denormals", f"process default FTZ={mx.get('ftz')}, DAZ={mx.get('daz')} (MXCSR {mx.get('mxcsr')})"
                      + (f"; minicnn's numba kernels flush them: {mini.get('denormals_flushed_in_kernels')}"
                         if mini else "")),
        ("minicnn numba", f"FMA tiles: {mini.get('fma_tiles')}; calls BLAS from numba threads: "
                          f"{mini.get('blas_in_numba')}; OpenBLAS buffers: "
                          f"{mini.get('blas_huge_pages', 'not recorded')}" if mini else DASH),
        ("TensorFlow", f"{tfi.get('version')} (Keras {tfi.get('keras')}), intra-op {tfi.get('intra_op_threads')} "
                       f"threads, oneDNN {tfi.get('onednn_enabled')}" if tfi else DASH),
        ("PyTorch", _fw_info(R, "pytorch").get("version") or (R.get("frameworks", {}).get("pytorch") or {})
         .get("skipped", DASH)),
        ("versions", ", ".join(f"{k} {v}" for k, v in (M.get("versions") or {}).items() if v)),
        ("other environment", ", ".join(f"{k}={v}" for k, v in env.items()
                                        if v is not None and not k.startswith("OPENBLAS_C")
                                        and k != "OPENBLAS_L2_SIZE") or "none set"),
    ]
    L = ["## Machine\n", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]
    L += peak_section(R, A)
    return L


def _fw_info(R, fw):
    return ((R.get("frameworks") or {}).get(fw) or {}).get("info") or {}


def peak_section(R, A) -> list[str]:
    P = R.get("peak") or {}
    if not P.get("fma"):
        return ["FMA peak: not measured (`--skip peak`); no % of peak below.\n"]
    L = ["### Floating-point peak (measured, independent of BLAS)\n",
         "A numba-compiled loop of independent vector FMA chains (`acc = acc * a + b`, `llvm.fma` on "
         "registers), one thread and then one per core; best of the repeats and of the run's probes "
         "(start and end). This is the denominator of every \"% of peak\" below. numpy's matmul is "
         "shown beside it as what BLAS achieves, not as the peak.\n",
         "| dtype | FMA peak, 1 core | FMA peak, all cores | used for % of peak | FMA instr./cycle/core (at the "
         "measured clock) | probe | generated loop (inspect_asm) | numpy matmul (n^3), all cores |",
         "|---|---|---|---|---|---|---|---|"]
    for dt, f in P["fma"].items():
        pk = A["peaks"].get(dt, {})
        asm = f.get("asm", {})
        pl = pk.get("plausibility", {})
        fpc = DASH
        if pl.get("fma_per_cycle"):
            units = pl.get("fma_units_estimate")
            fpc = f"{pl['fma_per_cycle']:.2f} " + (f"(≈ {units} FMA unit{'s' if units > 1 else ''} at full speed)"
                                                   if units else "(not whole: clock or probe disturbed)")
        b = (P.get("blas") or {}).get(dt, {})
        bl = (f"{b['gflops']:.0f} GFLOP/s (n={b['n']}; {100 * b['gflops'] / pk['denominator']:.0f}% of peak)"
              if b.get("gflops") and pk.get("denominator") else DASH)
        ev = (f"{asm.get('fma_instructions_in_loop')} x `{asm.get('example')}`, "
              f"{len(asm.get('other_instructions_in_loop', []))} other instr., "
              f"{asm.get('stack_refs_in_loop')} stack refs: {'OK' if asm.get('ok') else '**NOT OK**'}")
        L.append(f"| {dt} | {pk.get('per_core', 0):.0f} GFLOP/s | {pk.get('all_cores', 0):.0f} GFLOP/s | "
                 f"**{pk.get('denominator', 0):.0f} GFLOP/s** ({pk.get('denominator_source')}) | {fpc} | "
                 f"{f['vector_bits']}-bit x {f['chains']} chains x {f['unroll']} | {ev} | {bl} |")
    for dt, pk in A["peaks"].items():
        if pk.get("plausibility", {}).get("disturbed"):
            L.append(f"\n**{dt}: the all-cores probe reached less than 75% of cores x one core: other "
                     "processes most likely held a core during it. The % of peak below use cores x one "
                     f"core = {pk['denominator']:.0f} GFLOP/s instead (an upper bound).**")
    sweep = P.get("chain_sweep_float32")
    if sweep:
        L.append("\nOne core, float32, by number of independent chains (latency-bound below FMA latency x "
                 "units): " + ", ".join(f"{k}: {v:.0f}" for k, v in sweep.items()) + " GFLOP/s.")
    if A.get("peak_violations"):
        L.append("\n**Warning: some results exceed the measured peak — the probe under-measured this "
                 "machine (e.g. it ran while other processes used the cores):** " +
                 "; ".join(f"{v['framework']} {v['what']} {v['where']}: {v['pct_peak']:.0f}%"
                           for v in A["peak_violations"][:8]))
    return L + [""]


def steps_section(R, A) -> list[str]:
    L = ["## Train step and inference\n",
         "Train step: forward + backward + Adam on one batch (minicnn: `model.train_on_batch`; TensorFlow: "
         "a `tf.function` step with GradientTape + Adam on `reference.convert.to_keras(model)`, same "
         "weights; PyTorch: eager autograd + Adam). Inference: minicnn `model.predict(x, batch_size=B)`, "
         "TensorFlow a `tf.function` forward, PyTorch `no_grad`. \"(1 thread)\": minicnn's thread picker "
         "(`minicnn.kernels.threads`) measured the pass faster on the calling thread than on the pool and ran it "
         "there (the same bits either way). GFLOP/s count the model's FLOPs "
         "(`layer.flops`): train = every layer's forward and backward less the first layer's input "
         "gradient; % of the FMA peak (the bold figure of the peak table). \"MB moved\": the compulsory traffic of "
         "the step or batch from the analytic model of `benchmarks/traffic.py` (each op reads its operands and "
         "writes its results once; Adam 7 x the weights), and that over the measured time. **Epoch time is extrapolated** (step time x steps per "
         f"epoch of {R['meta'].get('train_samples')} samples); the fit section has a measured epoch.\n"]
    for title, key, extra in (("Train step", "steps", True), ("Inference", "infer", False)):
        for label, by_dt in A.get(key, {}).items():
            for dtype, by_b in by_dt.items():
                desc = R["models"][label][dtype]
                per = desc["train_flops_per_sample"] if extra else desc["infer_flops_per_sample"]
                L.append(f"### {title}: {label}, {dtype} ({desc['params']:,} parameters, "
                         f"{per / 1e6:.1f} MFLOP per sample)\n")
                L.append("| batch | framework | ms | img/s | vs TF | GFLOP/s (% peak) | MB moved (model) → GB/s |"
                         + (" epoch s (extrap.) |" if extra else ""))
                L.append("|---|---|---|---|---|---|---|" + ("---|" if extra else ""))
                for b, by_fw in by_b.items():
                    for fw in FRAMEWORKS:
                        e = by_fw.get(fw)
                        if not e:
                            continue
                        node = R["frameworks"][fw]["models"][label][dtype]
                        t = node["batches"][b]["train_step"] if extra else node["infer"][b]
                        L.append(f"| {b} | {fw}{paths.threads_note(t)} | {fmt_ms(t)} | {e['img_s']:.0f} | "
                                 f"{fmt_x(e['vs_tf'])} | "
                                 f"{fmt_gf(e['gflops'], e['pct_peak'])} | {_traffic_cell(e)} |"
                                 + (f" {e['epoch_s_extrapolated']:.1f} |" if extra else ""))
                    t = _tf_node(R, label, dtype, b, extra)
                    k = "keras_train_on_batch" if extra else "keras_predict_on_batch"
                    if t and t.get(k):
                        L.append(f"| {b} | Keras `{k.split('_', 1)[1]}` | {fmt_ms(t[k])} | "
                                 f"{int(b) / t[k]['median_ms'] * 1e3:.0f} | | | | " + ("|" if extra else ""))
                L.append("")
    return L


def _traffic_cell(e) -> str:
    """'MB → GB/s' of the analytic traffic model (benchmarks/traffic.py) over the measured time."""
    return f"{e['model_mb']:.1f} → {e['model_gb_s']:.1f}" if e.get("model_mb") else DASH


def _tf_node(R, label, dtype, b, train):
    node = ((R.get("frameworks") or {}).get(REFERENCE) or {}).get("models", {}).get(label, {}).get(dtype, {})
    return (node.get("batches", {}).get(b, {}).get("train_step") if train else node.get("infer", {}).get(b))


def ops_section(R, A) -> list[str]:
    L = ["## Per op\n",
         "Every layer of the model, on its real input (the previous layers' training-mode output on a "
         "random batch). minicnn: the layer's `forward(x, training=True)` and `backward(dy)`; TensorFlow: "
         "the same layer of `to_keras(model)` in a `tf.function`, backward = (forward + GradientTape "
         "gradient) - forward (marked †; `< noise` when the difference is under 5% of the sum); PyTorch: the translated `torch.nn` module, `autograd.grad`. "
         "Backward is what a train step computes: input and weight gradients (the first layer: no input "
         "gradient); a last softmax layer is differentiated from its logits (fused with the loss). "
         "`loss`: forward = loss from the logits, backward = loss and gradient. MFLOP from "
         "`layer.flops` for the whole batch; cells are ms median [min–max] (% of the FMA peak, the bold "
         "figure of the peak table).\n"]
    for label, by_dt in A.get("ops", {}).items():
        for dtype, by_b in by_dt.items():
            for b, rows in by_b.items():
                fws = [fw for fw in FRAMEWORKS if any(fw in r["by_framework"] for r in rows)]
                L.append(f"### {label}, {dtype}, batch {b}\n")
                vs_fws = [fw for fw in ("minicnn-numba", "minicnn-numpy") if fw in fws] if REFERENCE in fws else []
                L.append("| op | shape in → out | MFLOP | " + " | ".join(fws + [f"{fw[8:]} vs TF" for fw in vs_fws])
                         + " |")
                L.append("|---|---|---|" + "---|" * (len(fws) + len(vs_fws)))
                for r in rows:
                    for d in ("fwd", "bwd"):
                        cells = []
                        for fw in fws:
                            t = _op_t(R, fw, label, dtype, b, r["op"], d)
                            e = r["by_framework"].get(fw, {}).get(d, {})
                            c = fmt_ms(t)
                            if c != DASH and e.get("pct_peak") is not None:
                                c += f" ({e['pct_peak']:.0f}%)"
                            if t and fw == REFERENCE and d == "bwd" and r["op"] != LOSS_OP:
                                c += " †"
                            cells.append(c)
                        vs = [fmt_x(r["by_framework"].get(fw, {}).get(d, {}).get("vs_tf")) for fw in vs_fws]
                        shape = (f"{_shape(r['input_shape'])} → {_shape(r['output_shape'])}"
                                 if d == "fwd" and r["input_shape"] is not None else "")
                        kind = f" ({r['type']})" if r["type"] != "loss" else ""
                        L.append(f"| {r['op']}{kind} {d} | {shape} | {_mflop(r['flops'][d])} | "
                                 + " | ".join(cells + vs) + " |")
                L.append("")
    return L


def _op_t(R, fw, label, dtype, b, op, d):
    node = (R["frameworks"][fw].get("models", {}).get(label, {}).get(dtype, {}).get("batches", {})
            .get(b, {}).get("ops", {}).get(op))
    return node.get(d) if node else None


def fit_section(R) -> list[str]:
    fits = goals.fit_runs(R)
    if not fits:
        return []
    L = ["## A real training run: one epoch and its peak memory\n",
         "One subprocess per framework and model: the training set loaded with `minicnn.datasets` and held "
         "as floats NHWC + one-hot, then `fit` for one epoch (`--quick`: a subset), its start-up included "
         "(numba's cache load, TensorFlow's tracing); the numpy backend fits the first model only. Peak RSS "
         "is `ru_maxrss`. Keras's fit time over minicnn-numba's in the last column.\n",
         "| framework | model | data | samples | batch | data MB | RSS after imports MB | RSS after data MB | "
         "peak RSS MB | fit s | Keras / this |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, runs in fits.items():
        keras = (runs.get("tensorflow") or {}).get("fit_seconds")
        for fw, m in runs.items():
            if "error" in m:
                L.append(f"| {fw} | {label}: error: {m['error'][-300:]} ||||||||||")
                continue
            ratio = f"{keras / m['fit_seconds']:.2f}x" if keras and fw != "tensorflow" else DASH
            L.append(f"| {fw} | {m['model']} {m['dtype']} | {m['data']} | {m['samples_trained']} | {m['batch']} | "
                     f"{m['data_mb']:.0f} | {m['rss_after_imports_mb']:.0f} | {m['rss_after_data_mb']:.0f} | "
                     f"{m['peak_rss_mb']:.0f} | {m['fit_seconds']:.1f} | {ratio} |")
    return L + [""]


def compile_section(R) -> list[str]:
    C = R.get("compile") or {}
    if not C:
        return []
    L = ["## numba compile time\n",
         "A fresh process with an empty `NUMBA_CACHE_DIR` (first-ever run: every kernel compiles), then a "
         "second process on the warm cache. Overhead = first call - steady-state call. The models compile "
         "one after the other in that process: only the first one's overhead is a first-ever compile, the "
         "later ones reuse the kernels they share with it (`python -m benchmarks.compile_time --presets P` "
         "measures each preset alone).\n",
         "| process | import s | model | first step s | step overhead s | first predict s | predict overhead s |",
         "|---|---|---|---|---|---|---|"]
    for label in ("cold", "warm"):
        c = C.get(label) or {}
        if "error" in c or not c:
            L.append(f"| {label} | {c.get('error', DASH)[-300:]} ||||||")
            continue
        for name, m in c["models"].items():
            L.append(f"| {label} cache | {c['import_s']:.2f} | {name} ({c['dtype']}, B={c['batch']}) | "
                     f"{m['first_step_s']:.2f} | {m['first_step_overhead_s']:.2f} | {m['first_predict_s']:.2f} | "
                     f"{m['first_predict_overhead_s']:.2f} |")
    return L + [""]


def first_epoch_section(R) -> list[str]:
    """``make train``'s first epoch against its second (``benchmarks.first_epoch``)."""
    fe = R.get("first_epoch") or {}
    if not fe:
        return []
    L = ["## `make train`'s first epoch\n",
         "`minicnn train` (the seed model, MNIST, batch 100, two epochs) in a fresh process on an empty "
         "`NUMBA_CACHE_DIR`, each output line time-stamped as it arrives: the kernels compile in the "
         "background while the data loads, and training waits for what is left. Epoch 1 runs from the "
         "\"training\" line to its summary line; `python -m benchmarks.first_epoch` runs it alone.\n"]
    if "error" in fe:
        return L + [f"Failed: {fe['error'][-500:]}", ""]
    images = f"{fe['limit']:,} images" if fe.get("limit") else "the full training set"
    L += ["| on | process start to training s | waited for kernels s | epoch 1 s | epoch 2 s | epoch 1 / 2 "
          "| (wait + epoch 1) / epoch 2 |", "|---|---|---|---|---|---|---|",
          f"| {images} | {fe['startup_s']:.1f} | {fe['waited_s']:.1f} | {fe['epoch_s'][0]:.1f} | "
          f"{fe['epoch_s'][1]:.1f} | {fe['ratio']:.2f}x | {fe['ratio_with_wait']:.2f}x |", ""]
    if fe.get("warmup_line"):
        L += [f"Its warm-up line: `{fe['warmup_line']}`", ""]
    return L


def durations_section(R) -> list[str]:
    """Wall and CPU seconds of every worker process: what a bigger run would cost (CPU time hardly
    depends on what else the machine runs; wall time does)."""
    items = [("FMA peak probe", R.get("peak")), ("FMA peak probe again", R.get("peak_recheck"))]
    items += [(fw, v) for fw, v in (R.get("frameworks") or {}).items()]
    items += [(f"fit: {label}, {fw}", v) for label, runs in goals.fit_runs(R).items() for fw, v in runs.items()]
    items += [(f"compile: {k} cache", v) for k, v in (R.get("compile") or {}).items()]
    items.append(("make train's first epoch", R.get("first_epoch")))
    rows = [f"| {name} | {v['wall_s']:.0f} | {v['cpu_s']:.0f} |" if v.get("cpu_s") is not None
            else f"| {name} | {v['wall_s']:.0f} | {DASH} |" for name, v in items if isinstance(v, dict) and v.get("wall_s")]
    if not rows:
        return []
    return ["## Run time by section\n", "| worker | wall s | CPU s |", "|---|---|---|"] + rows + [
        f"| **whole run** | {R['meta'].get('duration_s', 0):.0f} | |", ""]


def markdown(R, A) -> str:
    meta = R["meta"]
    L = ["# minicnn benchmark results\n",
         f"Run: {meta['started']} ({'quick' if meta['quick'] else 'full'} mode, {meta.get('duration_s', 0):.0f} s). "
         f"Command: `{meta['command']}`. Models: {', '.join(meta.get('models', []))}; dtypes: "
         f"{', '.join(meta.get('dtypes', []))}; batches: {', '.join(map(str, meta.get('batches', [])))} "
         f"(inference: {', '.join(map(str, meta.get('infer_batches', [])))}).\n",
         "Times are milliseconds: median [min–max] of the repeats after warm-up; `*` marks a measurement "
         "that had to keep samples disturbed by other processes. Ratios are TensorFlow's time / this "
         "framework's time in the same run (> 1: faster than TensorFlow).\n"]
    L += goals.section(A.get("goals") or goals.goal_table(R, A))
    L += machine_section(R, A) + paths.isa_section(R) + steps_section(R, A) + latency.section(R, A)
    L += traffic.section(R) + ops_section(R, A) + paths.section(R) + fit_section(R) + compile_section(R)
    L += first_epoch_section(R)
    L += durations_section(R)
    errs = [(k, v["error"]) for k, v in (R.get("frameworks") or {}).items() if isinstance(v, dict) and "error" in v]
    for fw, v in (R.get("frameworks") or {}).items():
        for label, by_dt in (v.get("models") or {}).items() if isinstance(v, dict) else ():
            for dt, e in by_dt.items():
                if "error" in e:
                    errs.append((f"{fw} {label} {dt}", e["error"]))
                for b, be in e.get("batches", {}).items():
                    errs += [(f"{fw} {label} {dt} B={b} {k}", be[k]) for k in be if k.endswith("_error")]
    if errs:
        L.append("## Errors\n")
        L += [f"- {k}: `{json.dumps(v[-600:])[1:-1]}`" for k, v in errs]
    return "\n".join(L) + "\n"
