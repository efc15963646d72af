"""Face quality and fingerprints: sharpness, crops with margin, perceptual hashes.

Sharpness is measured on the face box in grey, resized to a fixed 64×64 first, so a face
scores the same at any resolution (the seed system measured whole images, so large photos
looked sharp and small ones blurry whatever their focus). 64 px rather than more: a web face
upscaled from a small original (≥ ~50 px) is soft at its displayed size but complete at 64 px,
and the embedding, which sees the face at that detail, still works. The score is the *weakest*
of four directional second derivatives (horizontal, vertical, both diagonals) relative to the
face's contrast: motion blur removes detail in one direction only, which the Laplacian (their
sum) hides, and a dim, low-contrast face is not a blurred one. ``benchmarks/calibrate_blur.py``
shows the calibration.
"""

from __future__ import annotations

import cv2
import numpy as np

BLUR_SIZE = 64
_DIRECTIONS = [
    np.array(k, dtype=np.float64) for k in (
        [[0, 0, 0], [1, -2, 1], [0, 0, 0]],
        [[0, 1, 0], [0, -2, 0], [0, 1, 0]],
        [[1, 0, 0], [0, -2, 0], [0, 0, 1]],
        [[0, 0, 1], [0, -2, 0], [1, 0, 0]],
    )
]
HASH_SIZE = 8


def box_crop(rgb: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """The face box grown by ``margin`` of its size on each side, clamped to the image."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    height, width = rgb.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return rgb[y0:y1, x0:x1]


def sharpness(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Detail of the face at 64×64 in its weakest direction, per unit of contrast (×1000);
    higher is sharper."""
    grey = cv2.cvtColor(box_crop(rgb, box), cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if grey.shape[0] > BLUR_SIZE else cv2.INTER_CUBIC
    grey = cv2.resize(grey, (BLUR_SIZE, BLUR_SIZE), interpolation=interp).astype(np.float64)
    contrast = float(grey.var())
    if contrast < 1e-6:
        return 0.0
    weakest = min(float(cv2.filter2D(grey, -1, k)[2:-2, 2:-2].var()) for k in _DIRECTIONS)
    return 1000.0 * weakest / contrast


def phash(chip: np.ndarray) -> tuple[str, str]:
    """64-bit DCT perceptual hash of an aligned face chip, and of its mirror image (hex).

    The chip is aligned by landmarks, so the hash does not move with detector box jitter;
    web copies of a photo are often mirrored, so both orientations are kept.
    """
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    return _dct_hash(small), _dct_hash(small[:, ::-1].copy())


def _dct_hash(small: np.ndarray) -> str:
    low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on empty arrays
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0
