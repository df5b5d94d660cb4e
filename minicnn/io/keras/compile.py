"""Keras 3's ``compile_config`` (in a ``.keras`` file's config.json) both ways: a model saved
compiled loads compiled, in Keras and in minicnn. Only minicnn's optimizers, losses and the
accuracy metric are read; anything else leaves the loaded model uncompiled (never an error:
the architecture and weights are what the file is for)."""

from __future__ import annotations

from ... import losses, optimizers, schedules

KERAS_OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
_FROM_KERAS = {v: k for k, v in KERAS_OPTIMIZERS.items()}
#: optimizer options read from a Keras config (the rest, e.g. clipnorm=None, change nothing)
_OPTIONS = {"learning_rate", "beta_1", "beta_2", "epsilon", "momentum", "nesterov", "rho", "centered",
            "weight_decay"}


def compile_config(model):
    """Keras's compile_config of a compiled model, or None (not compiled, or not expressible)."""
    opt = model.optimizer
    if model.loss is None or opt is None or getattr(opt, "epsilon_mode", "keras") != "keras":
        return None
    cfg = opt.get_config()
    cfg.pop("epsilon_mode", None)
    # minicnn's choice of the learning rate's dtype is Keras's floatx, a global setting there
    cfg.pop("learning_rate_dtype", None)
    name = cfg.pop("name")
    if opt.schedule is not None:
        cfg["learning_rate"] = {"module": "keras.optimizers.schedules",
                                **schedules.serialize(opt.schedule), "registered_name": None}
    cfg = {"name": name, **cfg}
    return {"optimizer": {"module": "keras.optimizers", "class_name": KERAS_OPTIMIZERS[name], "config": cfg,
                          "registered_name": None},
            "loss": {"module": "keras.losses",
                     "class_name": "SparseCategoricalCrossentropy" if model.loss.sparse else "CategoricalCrossentropy",
                     "config": {"name": model.loss.name, "reduction": "sum_over_batch_size",
                                "from_logits": model.loss.from_logits},
                     "registered_name": None} if model.loss.from_logits else model.loss.name,
            "loss_weights": None, "metrics": list(model.metrics) or None, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _flat(metrics):
    out = []
    for m in metrics or []:
        out.extend(_flat(m) if isinstance(m, (list, tuple)) else [m])
    return out


def compile_from_keras(model, config) -> None:
    """Compile ``model`` from a Keras compile_config if minicnn has everything it names."""
    if not isinstance(config, dict):
        return
    opt, loss = config.get("optimizer"), config.get("loss")
    if not isinstance(opt, dict) or opt.get("class_name") not in _FROM_KERAS:
        return
    cfg = {k: v for k, v in (opt.get("config") or {}).items() if k in _OPTIONS and v is not None}
    if isinstance(loss, dict):
        from_logits = bool((loss.get("config") or {}).get("from_logits", False))
        loss = {"CategoricalCrossentropy": "categorical_crossentropy",
                "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy"}.get(loss.get("class_name"))
    else:
        from_logits = False
    metrics = _flat(config.get("metrics"))
    if loss not in losses.LOSSES or any(m not in ("accuracy", "acc") for m in metrics):
        return
    try:
        optimizer = optimizers.get(_FROM_KERAS[opt["class_name"]], **cfg)
    except (TypeError, ValueError):
        return
    model.compile(optimizer=optimizer, loss=losses.LOSSES[loss](from_logits=from_logits),
                  metrics=["accuracy"] if metrics else [])
