"""Decoding any image a web search can return into an 8-bit RGB array, or a clear reason why not.

Handles EXIF orientation, greyscale, RGBA/LA/P transparency (composited on white), 16-bit and
32-bit integer modes, CMYK, and animated images (first frame). Refuses decompression bombs by
reading the header before decoding any pixel.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from faceatlas.errors import ImageError

# We check the pixel count ourselves (clear reason code), so Pillow's own guard is switched
# off; truncated files must still fail loudly rather than decode half grey.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray  # H×W×3 uint8, orientation applied
    format: str
    width: int
    height: int


def decode(data: bytes, *, max_pixels: int = 50_000_000) -> Decoded:
    """Decode ``data`` or raise ImageError with code ``not_an_image`` or ``decode_error``."""
    if not data:
        raise ImageError("empty file (0 bytes)", code="not_an_image")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image file (format not recognised)", code="not_an_image") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError(f"unreadable image header: {exc}", code="decode_error") from None
    fmt = img.format or "?"
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            f"{w}×{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit",
            code="decode_error",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if getattr(img, "is_animated", False):
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = to_rgb(img)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"cannot decode {fmt} image: {exc}", code="decode_error") from None
    return Decoded(rgb=rgb, format=fmt, width=rgb.shape[1], height=rgb.shape[0])


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to a contiguous H×W×3 uint8 array."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        grey = scaled.astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA") or img.mode == "RGBA":
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
