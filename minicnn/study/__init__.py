"""Study tools: look inside a model (``inspect``), report on its training (``report``), and run
it on your own pictures (``predict``).

Everything here computes with NumPy only; figures need matplotlib (``pip install minicnn[viz]``)
and image files need Pillow (same extra). Without them the command-line tools fall back to text. ::

    import minicnn
    from minicnn.study import inspect_model, format_table, plot_overview
    model = minicnn.build_preset("seed", seed=0)
    records = inspect_model(model, x)          # x: one (28, 28, 1) image in [0, 1]
    print(format_table(records))
    plot_overview(records, x).savefig("overview.png")
"""

from .images import STEPS as PREPROCESSING_STEPS
from .images import ImageError, PreparedImage, load_image, prepare_array
from .figures import (figure_axes_with_images, plot_feature_maps, plot_filters, plot_input, plot_layer,
                      plot_overview, plot_probabilities, plot_vector, save_figures)
from .inspect import (CLASS_NAMES, DPI, INSTALL_HINT, LayerRecord, MissingDependency, class_labels,
                      format_table, inspect_model, pool_tie_share, require_matplotlib, top_k)
from .report import (confusion_matrix, history_path_for, load_history, most_confident_errors,
                     plot_confusion, plot_errors, plot_history, write_report)
from .text import ascii_shades, pixel_matrix, probability_bars, render_image

__all__ = [
    "inspect_model", "LayerRecord", "format_table", "top_k", "pool_tie_share", "class_labels",
    "CLASS_NAMES", "plot_overview", "plot_input", "plot_filters", "plot_feature_maps",
    "plot_vector", "plot_probabilities", "plot_layer", "save_figures", "figure_axes_with_images",
    "require_matplotlib", "MissingDependency", "INSTALL_HINT", "DPI",
    "load_image", "prepare_array", "PreparedImage", "ImageError", "PREPROCESSING_STEPS",
    "confusion_matrix", "most_confident_errors", "load_history", "history_path_for",
    "plot_history", "plot_confusion", "plot_errors", "write_report",
    "pixel_matrix", "ascii_shades", "render_image", "probability_bars",
]
