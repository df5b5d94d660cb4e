"""Turn an image file (PNG, JPEG, ...) into the input a model expects.

The steps, in order (:func:`load_image`), for a model with one input channel (MNIST-like):

1. **Read** the file with Pillow and apply its EXIF orientation (phone photos). A transparent
   background is composited onto white.
2. **Grayscale**: convert to 8-bit luminance L = 0.299 R + 0.587 G + 0.114 B (Pillow's "L";
   16-bit images are scaled to 0..255).
3. **Invert if the background is light**: MNIST digits are light ink (255) on a black (0)
   background. If the mean of the outermost ring of pixels (the border) is above 127, the
   picture is taken to be dark ink on light paper and every value v becomes 255 - v.
4. **Resize, keeping the aspect ratio**: scale by min(H / h, W / w) so the whole picture fits
   the model's input H x W (28 x 28), with Lanczos filtering (which averages pixels when shrinking).
5. **Pad** the short side equally on both sides (the odd pixel goes right/bottom) to exactly
   H x W, with the background value: the (possibly inverted) border mean, rounded.
6. **Scale to [0, 1]**: divide by 255, as float32 of shape (H, W, 1).

MNIST digits fill a 20 x 20 box centred in 28 x 28: leave a margin around the digit in your
picture for the best results (a digit touching the edges looks unlike anything in MNIST).

For a model with three input channels (CIFAR-10-like) the image is read as RGB and never
inverted unless asked (``invert=True``); steps 4 to 6 are the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import MiniCNNError
from .inspect import INSTALL_HINT

#: the steps in one paragraph (``minicnn predict --help`` prints it)
STEPS = """Each image is prepared as MNIST digits are stored: (1) read (EXIF orientation applied,
transparency composited onto white); (2) converted to 8-bit grayscale; (3) inverted (v -> 255 - v)
when its background is light, i.e. when the mean of its border pixels is above 127, because MNIST
digits are light on black; (4) resized to fit the model input (28x28) with its aspect ratio kept
(Lanczos filter); (5) padded, centred, with the background value to exactly 28x28; (6) divided by
255 to get values in [0, 1]. Leave a margin around the digit: MNIST digits fill a 20x20 box in the
middle of the 28x28 image. For 3-channel models the image is read as RGB and not inverted."""


class ImageError(MiniCNNError):
    """An image file is missing, unreadable or not an image."""


@dataclass
class PreparedImage:
    """An image ready for the model, and what was done to it."""

    path: str
    array: np.ndarray = field(repr=False)   # (H, W, C) float32 in [0, 1]
    original_size: tuple                    # (width, height) of the file
    resized_size: tuple                     # (width, height) after step 4, before padding
    border_mean: float                      # mean of the border pixels before inversion (0..255)
    inverted: bool
    background: int                         # padding value (0..255) after inversion


def _pil():
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError as e:
        raise ImageError(f"reading images needs Pillow, which is not installed ({e}); "
                         f"install it with: {INSTALL_HINT}") from None
    return Image, ImageOps, UnidentifiedImageError


def open_image(path):
    """Open and fully decode an image file; one clear :class:`ImageError` for any failure."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageError(f"image file {p!r} does not exist")
    if os.path.isdir(p):
        raise ImageError(f"{p!r} is a directory, not an image file")
    return decode_image(p, prefix=f"cannot read {p!r}: ",
                        unknown="not an image format Pillow knows (use PNG or JPEG)")


def decode_image(source, prefix="", formats=None, max_pixels=None,
                 unknown="not an image format Pillow knows (use PNG or JPEG)"):
    """Open and fully decode an image from a path or a binary file object (EXIF orientation
    applied); any failure is one :class:`ImageError`, its message starting with ``prefix``.
    ``formats`` restricts Pillow's decoders; ``max_pixels`` refuses larger images from their
    header, before any pixel is decoded; ``unknown`` is the message for an unrecognised format."""
    Image, ImageOps, Unidentified = _pil()
    try:
        with Image.open(source, formats=formats) as im:
            w, h = im.size
            if max_pixels is not None and (w * h > max_pixels or w < 1 or h < 1):
                raise ImageError(f"{prefix}the image is {w}x{h} pixels; at most {max_pixels:,} pixels "
                                 "are accepted")
            im.load()
            im = ImageOps.exif_transpose(im)
            im.load()
    except Unidentified:
        raise ImageError(prefix + unknown) from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{prefix}{e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{prefix}damaged or truncated image ({e})") from None
    return im


def _flatten_alpha(im, Image):
    """Composite images with transparency onto a white background."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im


def _to_uint8_gray(im, Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return np.clip(np.rint(a * 255.0 / top), 0, 255).astype(np.uint8)
    return np.asarray(im.convert("L"), dtype=np.uint8)


def border_mean(a: np.ndarray) -> float:
    """Mean of the outermost ring of pixels of a (H, W) or (H, W, C) array."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(axis=-1)
    if a.shape[0] <= 2 or a.shape[1] <= 2:
        return float(a.mean())
    ring = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    return float(ring.mean())


def fit_and_pad(a: np.ndarray, size_hw, background) -> tuple[np.ndarray, tuple]:
    """Resize uint8 ``a`` (H, W) or (H, W, 3) to fit ``size_hw`` keeping its aspect ratio
    (Lanczos), then pad it centred with ``background``; returns (array, (w, h) before padding)."""
    Image, _, _ = _pil()
    th, tw = size_hw
    h, w = a.shape[:2]
    scale = min(th / h, tw / w)
    nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
    resized = np.asarray(Image.fromarray(a).resize((nw, nh), Image.Resampling.LANCZOS))
    out = np.empty((th, tw, *a.shape[2:]), dtype=np.uint8)
    out[...] = background
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out, (nw, nh)


def prepare_array(gray: np.ndarray, input_shape=(28, 28, 1), invert="auto", path="<array>") -> PreparedImage:
    """Steps 3 to 6 on an already decoded uint8 image (H, W) (or (H, W, 3) for 3-channel models)."""
    a = np.asarray(gray)
    if a.dtype != np.uint8:
        raise ValueError(f"prepare_array expects uint8 pixels, got {a.dtype}")
    h_t, w_t, c_t = input_shape
    bmean = border_mean(a)
    if invert == "auto":
        inverted = c_t == 1 and bmean > 127
    else:
        inverted = bool(invert)
    if inverted:
        a = 255 - a
    bg_val = 255.0 - bmean if inverted else bmean
    if a.ndim == 3:
        ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).astype(np.float64)
        background = np.rint(ring.mean(axis=0)).astype(np.uint8)
    else:
        background = np.uint8(int(round(bg_val)))
    fitted, resized = fit_and_pad(a, (h_t, w_t), background)
    arr = fitted.astype(np.float32) / np.float32(255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return PreparedImage(path=str(path), array=arr, original_size=(a.shape[1], a.shape[0]),
                         resized_size=resized, border_mean=bmean, inverted=inverted,
                         background=int(np.mean(background)))


def load_image(path, input_shape=(28, 28, 1), invert="auto") -> PreparedImage:
    """Read an image file and apply the steps of this module's docstring.

    Parameters
    ----------
    path : a PNG, JPEG (or any format Pillow reads).
    input_shape : the model's per-sample input shape (H, W, C) with C = 1 or 3.
    invert : 'auto' (decide from the border, one-channel models only), True or False.
    """
    Image, _, _ = _pil()
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"images can only feed models with (H, W, 1) or (H, W, 3) inputs, not {tuple(input_shape)}")
    im = _flatten_alpha(open_image(path), Image)
    if input_shape[-1] == 1:
        a = _to_uint8_gray(im, Image)
    else:
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return prepare_array(a, input_shape, invert=invert, path=os.fspath(path))
