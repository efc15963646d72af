"""Decoding any image a web search can return into an 8-bit RGB array, or a clear reason why not.

Handles EXIF orientation, greyscale, RGBA/LA/P transparency (composited on white), 16-bit and
32-bit integer modes, CMYK, and animated images (first frame). Refuses decompression bombs by
reading the header before decoding any pixel.

Memory: the pixel count and the bytes Pillow will hold are decided from the header; with
``max_side`` a JPEG is decoded straight at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode) and any
other format is shrunk right after decoding, before orientation, colour conversion or alpha
compositing touch it. Progressive and multi-scan JPEGs are the exception: libjpeg keeps all
their DCT coefficients at full size whatever the scale, so the budget counts those (2 bytes a
coefficient) too. 16/32-bit images become 8-bit in row chunks through float32, never as a
float64 copy of the whole image (the old path took ~18 bytes per pixel).

Speed: a whole colour JPEG or still, opaque WebP decoded at full size goes through OpenCV
(``plain_photo``, ``decode_opencv``): the same pixels as Pillow's, bit for bit, for less CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import threading
import warnings
from dataclasses import dataclass
from math import ceil

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from faceatlas.domain.errors import ImageError

# We check the pixel count ourselves (clear reason code), so Pillow's own guard is switched
# off; truncated files must still fail loudly rather than decode half grey.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray  # H×W×3 uint8, orientation applied
    format: str
    width: int  # of ``rgb``
    height: int
    full_width: int  # of the full image, orientation applied
    full_height: int

    @property
    def full_size(self) -> tuple[int, int]:
        """Width and height of the full image, orientation applied."""
        return self.full_width, self.full_height

    @property
    def scale(self) -> float:
        """``rgb`` is the image (orientation applied) shrunk by this factor (1.0: full size)."""
        return max(self.width, self.height) / max(self.full_width, self.full_height)

    @property
    def full_factors(self) -> tuple[float, float]:
        """The factors (x, y) from ``rgb``'s pixels to the full image's."""
        return self.full_width / self.width, self.full_height / self.height

    def full_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box found on ``rgb``, in the full image's pixels (inside it)."""
        (sx, sy), width, height = self.full_factors, self.full_width, self.full_height
        if sx == sy == 1.0:
            return box
        x, y, w, h = box
        x0, y0 = min(width - 1, round(x * sx)), min(height - 1, round(y * sy))
        x1, y1 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


#: bytes per pixel Pillow holds for a mode, counting the one conversion decoding may need
#: ("P" becomes RGB(A), 16-bit big-endian becomes 32-bit); anything unlisted: 4 (RGBX storage)
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "I;16": 2, "I;16L": 2, "I;16N": 2}
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
_CHUNK_PIXELS = 1 << 22  # rows of about 4 MP at a time when converting deep images
#: orientations that swap width and height
_TRANSPOSING = {5, 6, 7, 8}
#: OpenCV's reduced JPEG decodes (the values of cv2.IMREAD_REDUCED_COLOR_2/4/8)
_REDUCED = {2: 17, 4: 33, 8: 65}


# -------------------------------------------------------------------- memory after spikes
# glibc keeps freed heap memory for reuse: after a few large decodes RSS stayed at 1.74 GB
# (issue 22, finding 6). Two remedies, both glibc-only (elsewhere they do nothing):
# ``bound_heap`` fixes the mmap threshold, so large buffers are mmapped and unmapped on free
# (glibc otherwise raises the threshold after the first big free and serves later ones from
# the heap); ``release_memory`` asks glibc to return free heap pages after large decodes.

#: decodes needing more than this are "large": the next ``release_memory`` trims the heap
LARGE_DECODE_BYTES = 32_000_000
_M_MMAP_THRESHOLD = -3
_large_bytes = 0
_trim_lock = threading.Lock()


@functools.cache  # find_library may run ldconfig: once per process, not per request
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only: musl and macOS have none)
        return libc
    except (OSError, AttributeError):
        return None


def bound_heap(mmap_threshold: int = 4 << 20) -> bool:
    """Buffers over ``mmap_threshold`` bytes are mmapped (returned to the system when freed);
    True when the C library took the setting."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold))


def release_memory(force: bool = False) -> bool:
    """``malloc_trim(0)`` once large decodes have been freed (or with ``force``); True when
    it ran. Cheap enough (milliseconds) to call after every request."""
    global _large_bytes
    with _trim_lock:
        if not force and _large_bytes < LARGE_DECODE_BYTES:
            return False
        _large_bytes = 0
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _note_decode(nbytes: int) -> None:
    global _large_bytes
    if nbytes >= LARGE_DECODE_BYTES:
        with _trim_lock:
            _large_bytes += nbytes


def decode_bytes_needed(mode: str, width: int, height: int) -> int:
    """What Pillow will hold in memory to decode an image of this mode and size."""
    return width * height * _BYTES_PER_PIXEL.get(mode, 4)


def decode(
    data: bytes,
    *,
    max_pixels: int = 50_000_000,
    max_side: int | None = None,
    max_bytes: int | None = None,
    reduce_to: int | None = None,
) -> Decoded:
    """Decode ``data`` or raise ImageError with code ``not_an_image`` or ``decode_error``.

    ``max_side``: the answer's long side is at most this (smaller images are not enlarged).
    ``max_bytes``: refuse images whose decoded pixels would need more memory than this.
    ``reduce_to``: a JPEG is decoded at the smallest of libjpeg's scales (1/2, 1/4, 1/8)
    whose long side is still at least this, and nothing is resampled after (the scaled
    inverse DCT is the cheapest shrink there is); other formats come at full size.
    """
    img = open_image(data, max_pixels=max_pixels)
    fmt = img.format or "?"
    w, h = img.size
    # progressive and multi-scan JPEGs: libjpeg holds every coefficient at full size, draft
    # scale or not (measured: 7000×7000 CMYK progressive, ~475 MB at 1/4 scale)
    coefficients = jpeg_coefficient_bytes(img, data) if fmt in ("JPEG", "MPO") else 0
    reduce = jpeg_reduction(max(w, h), reduce_to) if fmt in ("JPEG", "MPO") else 1
    if max_side and max(w, h) > max_side and fmt in ("JPEG", "MPO"):
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly: the full image never exists
        s = max_side / max(w, h)
        img.draft(None, (max(1, ceil(w * s)), max(1, ceil(h * s))))
    elif reduce > 1:
        img.draft(None, (max(1, w // reduce), max(1, h // reduce)))  # Pillow: ≥ this size
    need = decode_bytes_needed(img.mode, *img.size) + coefficients
    if max_bytes is not None and need > max_bytes:
        kind = " multi-scan (progressive) JPEG" if coefficients else ""
        raise ImageError(
            f"{w}×{h} {img.mode}{kind} needs {need / 1e6:.0f} MB to decode, over the "
            f"{max_bytes / 1e6:.0f} MB decode budget",
            code="decode_error",
        )
    _note_decode(need)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if getattr(img, "is_animated", False):
                img.seek(0)
            orientation = _orientation(img)
            rgb = None
            whole = not max_side or max(w, h) <= max_side  # no draft, no shrink
            if whole and orientation not in _ORIENTATION and plain_photo(img, data):
                rgb = decode_opencv(data, img.size, reduce)
            if rgb is None:
                img.load()
                if max_side and max(img.size) > max_side:
                    img = _shrink(img, max_side)
                if orientation in _ORIENTATION:
                    img = img.transpose(_ORIENTATION[orientation])
                rgb = to_rgb(img)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"cannot decode {fmt} image: {exc}", code="decode_error") from None
    if orientation in _TRANSPOSING:
        w, h = h, w
    return Decoded(rgb=rgb, format=fmt, width=rgb.shape[1], height=rgb.shape[0],
                   full_width=w, full_height=h)


def jpeg_reduction(long_side: int, reduce_to: int | None) -> int:
    """The largest of libjpeg's scale denominators (8, 4, 2) that keeps ``long_side`` at least
    ``reduce_to`` (rounded up, as libjpeg does); 1 when none does."""
    if not reduce_to:
        return 1
    return next((k for k in (8, 4, 2) if ceil(long_side / k) >= reduce_to), 1)


def plain_photo(img: Image.Image, data: bytes) -> bool:
    """A whole colour JPEG (YCbCr or RGB, ends with its EOI marker) or a still WebP without
    alpha (all its RIFF bytes there): the kinds OpenCV decodes to the same pixels as Pillow
    (same libjpeg-turbo; libwebp's decoding is exact). Anything else (CMYK, grey, alpha,
    animation, MPO, a truncated file Pillow must refuse) stays with Pillow."""
    if img.mode != "RGB":
        return False
    if img.format == "JPEG":
        return data.rstrip(b"\0").endswith(b"\xff\xd9")
    if img.format == "WEBP" and not getattr(img, "is_animated", False):
        return len(data) >= 8 + int.from_bytes(data[4:8], "little")
    return False


def decode_opencv(data: bytes, size: tuple[int, int], reduce: int = 1) -> np.ndarray | None:
    """The RGB pixels of a ``plain_photo`` through OpenCV, or None if it cannot (then Pillow
    decides). The same pixels bit for bit (shared photos and LFW: 486 JPEGs, WebPs of every
    quality; tests/test_bad_input.py) for ~25% (JPEG) to ~35% (WebP) less CPU: Pillow feeds
    its JPEG decoder in chunks, decodes WebP through its animation reader, and copies the
    result twice (RGBX storage, then to numpy). ``reduce`` (2, 4, 8: a JPEG's libjpeg scale;
    ``size`` is then the scaled size)."""
    import cv2

    flag = _REDUCED.get(reduce, cv2.IMREAD_COLOR)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8),
                       flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or (bgr.shape[1], bgr.shape[0]) != size:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)  # in place: one full-size array


def jpeg_scans(data: bytes) -> int:
    """Scans (SOS markers) of a JPEG, counted from the first one on: entropy-coded data never
    holds ``FF DA`` (an ``FF`` there is followed by ``00`` or a restart marker), so every later
    ``FF DA`` is another scan. The segments before are walked, so an EXIF thumbnail's scan
    is not counted. 0: no scan found."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return 0
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill, no length
            pos += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            return 1 + data.count(b"\xff\xda", pos + 2 + length)
        pos += 2 + length
    return 0


def jpeg_coefficient_bytes(img: Image.Image, data: bytes) -> int:
    """Bytes libjpeg allocates for the whole image's DCT coefficients (2 bytes each, per
    component at its sampling, in 8×8 blocks padded to whole MCUs) when it must buffer them:
    progressive or multi-scan files. 0 for a single-scan baseline JPEG (decoded a row of
    blocks at a time)."""
    progressive = bool(img.info.get("progressive") or img.info.get("progression"))
    if not progressive and jpeg_scans(data) <= 1:
        return 0
    w, h = img.size
    layers = getattr(img, "layer", None) or [(0, 1, 1, 0)] * len(img.getbands())
    hmax = max(layer[1] for layer in layers) or 1
    vmax = max(layer[2] for layer in layers) or 1
    mcus_x, mcus_y = ceil(w / (8 * hmax)), ceil(h / (8 * vmax))
    blocks = sum(mcus_x * layer[1] * mcus_y * layer[2] for layer in layers)
    return blocks * 64 * 2


def open_image(data: bytes, *, max_pixels: int = 50_000_000) -> Image.Image:
    """Read only the header: format, mode and size (no pixel is decoded). Raises ImageError
    for what is not an image or is over ``max_pixels``."""
    if not data:
        raise ImageError("empty file (0 bytes)", code="not_an_image")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image file (format not recognised)", code="not_an_image") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError(f"unreadable image header: {exc}", code="decode_error") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            f"{w}×{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit",
            code="decode_error",
        )
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block is no reason to refuse the picture
        return 1


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """Area-average ``img`` down to ``max_side`` on its long side."""
    if img.mode == "P":  # palette indices cannot be averaged
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("I;16B", "I;16L", "I;16N"):  # Pillow resizes only native I;16
        img = img.convert("I")
    elif img.mode == "1":
        img = img.convert("L")
    w, h = img.size
    s = max_side / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return img.resize(size, Image.Resampling.BOX)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to a contiguous H×W×3 uint8 array."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = _deep_to_grey(img)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA") or img.mode == "RGBA":
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _deep_to_grey(img: Image.Image) -> np.ndarray:
    """A 16/32-bit or float image stretched to 0..255, a few MP at a time through float32:
    the only full-size arrays are the Pillow image and the 8-bit answer."""
    lo, hi = img.getextrema()
    w, h = img.size
    out = np.zeros((h, w), dtype=np.uint8)
    if not hi > lo:
        return out
    lo_f, factor = float(lo), 255.0 / (float(hi) - float(lo))
    rows = max(1, _CHUNK_PIXELS // max(1, w))
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        block = np.asarray(img.crop((0, top, w, bottom)), dtype=np.float32)
        block -= lo_f
        block *= factor
        np.clip(block, 0.0, 255.0, out=block)
        out[top:bottom] = block  # truncates like the old astype(uint8)
    return out
