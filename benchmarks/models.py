"""Which models are benchmarked, and their shapes and FLOPs, read from the built model itself.

A model is named by a *spec*: ``{"preset": NAME}`` (``minicnn.presets.build_preset``) or
``{"config": {...}, "label": NAME}`` (a ``Sequential.get_config()`` dict, e.g. from a JSON file).
Every worker process rebuilds the same model from its spec with the same seed, so all of them
time the same weights on the same random data.

Shapes come from ``layer.input_shape`` / ``layer.output_shape`` and FLOPs from
``layer.flops(backward=...)`` (one sample; a multiply-add counts 2; backward = input gradient,
unless the layer's ``need_dx`` is off, + weight gradients), so any architecture the layers can
express is measured the same way.
"""

from __future__ import annotations

import json

import numpy as np

from .traffic import model_traffic

#: the loss every benchmarked model is compiled with (fused with a final softmax, as in Keras)
LOSS = "categorical_crossentropy"


def preset_names() -> tuple[str, ...]:
    from minicnn.presets import PRESETS

    return tuple(PRESETS)


def specs_from_args(presets: str | None, model_files: str | None) -> list[dict]:
    """Specs for ``--preset a,b|all`` and ``--model file.json[,file2.json]``."""
    specs = []
    names = [p.strip() for p in (presets or "").split(",") if p.strip()]
    if "all" in names:
        names = [n for n in names if n != "all"] + [p for p in preset_names() if p not in names]
    known = preset_names()
    for n in names:
        if n not in known:
            raise SystemExit(f"unknown preset {n!r}; choose from {', '.join(known)} or 'all'")
        specs.append({"preset": n, "label": n})
    for path in [p.strip() for p in (model_files or "").split(",") if p.strip()]:
        with open(path) as f:
            cfg = json.load(f)
        specs.append({"config": cfg, "label": cfg.get("name") or path})
    return specs


def build(spec: dict, dtype="float32", input_shape=(28, 28, 1), num_classes=10, seed=0):
    """The built (uncompiled) minicnn model of ``spec`` in ``dtype``."""
    from minicnn import Sequential

    if "preset" in spec:
        from minicnn.presets import build_preset

        return build_preset(spec["preset"], input_shape=tuple(input_shape), num_classes=num_classes,
                            dtype=dtype, seed=seed)
    cfg = dict(spec["config"])
    cfg["dtype"] = np.dtype(dtype).name
    if not cfg.get("input_shape"):
        cfg["input_shape"] = list(input_shape)
    model = Sequential.from_config(cfg, seed=seed)
    if not model.built:
        model.build()
    return model


def compiled(spec, dtype, input_shape, num_classes, seed=0):
    model = build(spec, dtype, input_shape, num_classes, seed)
    model.compile(optimizer="adam", loss=LOSS, metrics=["accuracy"])
    return model


def preset_step_case(preset: str, dtype: str, batch: int):
    """(compiled model, x, y) for timing one preset's train step on synthetic data: 32x32x3 input
    for cifar presets, else 28x28x1; 10 classes; weights seed 0, data seed 1. The children of
    ``ab_step`` and ``compile_time`` build the same case inline: they run inside other checkouts,
    whose ``benchmarks`` package may not have this function."""
    shape = (32, 32, 3) if preset.startswith("cifar") else (28, 28, 1)
    model = compiled({"preset": preset}, dtype, shape, 10, seed=0)
    rng = np.random.default_rng(1)
    x = rng.random((batch, *shape)).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, batch)]
    return model, x, y


# ----------------------------------------------------------------------------- FLOPs
def layer_flops(layer, backward: bool = False, need_dx: bool = True) -> tuple[int, str]:
    """(FLOPs of one sample, where the number came from: 'layer.flops'). For a backward,
    ``need_dx=False`` counts a first layer's, which computes no input gradient (the layer's
    ``need_dx`` is set for the call, as ``Sequential.backward`` does, then put back)."""
    has = hasattr(layer, "need_dx")
    old = getattr(layer, "need_dx", None)
    if has:
        layer.need_dx = need_dx
    try:
        return int(layer.flops(backward=backward)), "layer.flops"
    finally:
        if has:
            layer.need_dx = old


def describe(model) -> dict:
    """Per-layer name, type, shapes, parameters and FLOPs (one sample), and model totals: train =
    every forward + every backward as a train step runs it (the first layer without its input
    gradient: neither minicnn nor Keras computes it); inference = every forward."""
    layers = []
    for i, layer in enumerate(model.layers):
        fwd, src = layer_flops(layer, backward=False)
        bwd, _ = layer_flops(layer, backward=True)
        step_bwd, _ = layer_flops(layer, backward=True, need_dx=i > 0)
        layers.append({"name": layer.name, "type": type(layer).__name__,
                       "input_shape": list(layer.input_shape), "output_shape": list(layer.output_shape),
                       "params": int(sum(p.size for p in layer.params.values())),
                       "flops_fwd": fwd, "flops_bwd": bwd, "flops_bwd_in_step": step_bwd, "flops_source": src})
    infer = sum(l["flops_fwd"] for l in layers)
    traffic = model_traffic(model)
    for l in layers:
        l["traffic"] = traffic["layers"][l["name"]]
    return {"traffic": {k: v for k, v in traffic.items() if k != "layers"},
            "itemsize": int(np.dtype(model.dtype).itemsize),
            "name": model.name, "dtype": np.dtype(model.dtype).name, "input_shape": list(model.input_shape),
            "output_shape": list(model.layers[-1].output_shape), "params": int(model.count_params()),
            "layers": layers, "infer_flops_per_sample": infer,
            "train_flops_per_sample": infer + sum(l["flops_bwd_in_step"] for l in layers),
            "flops_source": sorted({l["flops_source"] for l in layers})}
