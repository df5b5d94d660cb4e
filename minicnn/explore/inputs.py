"""Image bytes (an upload, or the drawing canvas as PNG) -> the model input, step by step.

The steps are those of ``minicnn predict`` (:mod:`minicnn.study.images`), with the picture after
each one kept so that the app can show them: read (EXIF orientation, transparency onto white),
grayscale (or RGB for 3-channel models), inversion when the border is light, resize keeping the
aspect ratio, pad, divide by 255. The final array is :func:`minicnn.study.images.prepare_array`'s.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from ..study.images import (ImageError, _flatten_alpha, _pil, _to_uint8_gray, border_mean, decode_image,
                            prepare_array)

#: largest accepted upload, in pixels (width x height), and its byte size is capped by the server
MAX_PIXELS = 4096 * 4096
#: image formats accepted (Pillow format names)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
#: the step pictures are sent at most this many pixels on their long side
PREVIEW = 112


def decode(data: bytes):
    """Open image bytes; :class:`ImageError` with a readable message for anything else."""
    if not data:
        raise ImageError("the body is empty: send an image (PNG or JPEG)")
    return decode_image(io.BytesIO(data), formats=FORMATS, max_pixels=MAX_PIXELS,
                        unknown=f"not an image in a known format ({', '.join(FORMATS)})")


def png_data_url(a: np.ndarray) -> str:
    """A small uint8 (H, W) or (H, W, 3) picture as a PNG data URL (nearest-neighbour enlarged
    or shrunk to at most :data:`PREVIEW` pixels on its long side)."""
    Image, _, _ = _pil()
    im = Image.fromarray(np.ascontiguousarray(a))
    scale = PREVIEW / max(im.size)
    size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    im = im.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def prepare_bytes(data: bytes, input_shape, invert="auto") -> tuple[np.ndarray, list[dict], dict]:
    """(input array (H, W, C) float32, the steps [{name, text, image}], facts) for image bytes."""
    Image, _, _ = _pil()
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ImageError(f"images can only feed models with (H, W, 1) or (H, W, 3) inputs, not {tuple(input_shape)}")
    im = decode(data)
    steps = []
    original = np.asarray(_flatten_alpha(im, Image).convert("RGB"), dtype=np.uint8)
    steps.append({"name": "read", "text": f"{im.size[0]}x{im.size[1]} {im.format or ''} {im.mode}; "
                                          "EXIF orientation applied, transparency composited onto white",
                  "image": png_data_url(original)})
    flat = _flatten_alpha(im, Image)
    if input_shape[-1] == 1:
        a = _to_uint8_gray(flat, Image)
        steps.append({"name": "grayscale", "text": "L = 0.299 R + 0.587 G + 0.114 B", "image": png_data_url(a)})
    else:
        a = np.asarray(flat.convert("RGB"), dtype=np.uint8)
    prepared = prepare_array(a, tuple(input_shape), invert=invert, path="<upload>")
    bmean = border_mean(a)
    if prepared.inverted:
        a = 255 - a
        steps.append({"name": "inverted", "text": f"border mean {bmean:.1f} > 127: light background, v -> 255 - v",
                      "image": png_data_url(a)})
    else:
        steps.append({"name": "not inverted", "text": f"border mean {bmean:.1f}"
                      + (" <= 127: dark background kept" if input_shape[-1] == 1 else ": RGB is never inverted"),
                      "image": png_data_url(a)})
    final8 = np.rint(prepared.array * 255).astype(np.uint8)
    img = final8[:, :, 0] if final8.shape[-1] == 1 else final8
    steps.append({"name": "resized and padded",
                  "text": f"fitted into {input_shape[1]}x{input_shape[0]} keeping the aspect ratio "
                          f"({prepared.resized_size[0]}x{prepared.resized_size[1]}, Lanczos), padded with "
                          f"{prepared.background}", "image": png_data_url(img)})
    steps.append({"name": "scaled", "text": "divided by 255: values in [0, 1], the model input",
                  "image": png_data_url(img)})
    facts = {"original_size": list(prepared.original_size), "resized_size": list(prepared.resized_size),
             "border_mean": prepared.border_mean, "inverted": prepared.inverted, "background": prepared.background}
    return prepared.array, steps, facts
