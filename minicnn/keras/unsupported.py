"""The one error for what Keras has and minicnn does not, and the module ``__getattr__`` that
raises it for every public name a ``minicnn.keras`` module lacks."""

from __future__ import annotations

from ..errors import KerasUnsupportedError


def missing_names(module: str, supported, hints=None):
    """A module-level ``__getattr__``: private names raise AttributeError as usual; public
    ones a :class:`KerasUnsupportedError` naming the Keras API and listing what is there."""
    hints = dict(hints or {})

    def __getattr__(name):
        if name.startswith("_"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        keras_path = module.replace("minicnn.keras", "keras", 1)
        hint = f" ({hints[name]})" if name in hints else ""
        raise KerasUnsupportedError(f"{keras_path}.{name} is not supported by minicnn{hint}; {module} has: "
                                    f"{', '.join(sorted(n for n in supported if not n.startswith('_')))}")

    return __getattr__


def refuse(what: str, value=None, hint: str = "") -> None:
    """Raise the error for a Keras argument or feature minicnn does not have."""
    text = what + (f"={value!r}" if value is not None else "")
    if text.count("(") > text.count(")"):  # refuse("Adam(amsgrad", True) -> "Adam(amsgrad=True)"
        text += ")"
    raise KerasUnsupportedError(f"{text} is not supported by minicnn" + (f": {hint}" if hint else ""))


def check_defaults(where: str, kwargs: dict, defaults: dict) -> None:
    """Refuse every argument in ``kwargs`` whose value is not its Keras default (or one of the
    values in a tuple of accepted ones); those minicnn honours by doing nothing pass."""
    for key, value in kwargs.items():
        if key not in defaults:
            raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
        ok = defaults[key]
        if value is ok or (not hasattr(value, "shape") and (value == ok or (isinstance(ok, tuple) and value in ok))):
            continue
        shown = f"<array of shape {value.shape}>" if hasattr(value, "shape") else repr(value)
        raise KerasUnsupportedError(f"{where}({key}={shown}) is not supported by minicnn "
                                    f"(only {key}={ok!r})")
