"""Uploaded files: a per-file size limit (413) and images only (415 / 422 via ImageError),
judged from the header: pixels are decoded later, once a face engine is held."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath

from fastapi import HTTPException, UploadFile

from faceatlas.api.errors import client_message
from faceatlas.domain.errors import ImageError
from faceatlas.faces.image import decode_bytes_needed, jpeg_coefficient_bytes, open_image

# Pillow format -> file extension for stored uploads (the client's file name is not trusted)
_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
        "TIFF": "tif"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes, or 413 past ``limit`` (reads at most limit + 1 bytes)."""
    upload.file.seek(0)
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{_label(upload)} is over the {limit} byte upload limit")
    return data


@dataclass
class CheckedImage:
    name: str  # safe file name: <sha256[:12]>_<client stem>.<ext of the real format>
    data: bytes


def check_image(upload: UploadFile, limit: int, max_pixels: int,
                max_bytes: int | None = None) -> CheckedImage:
    """Read one upload and check its header (format, size, decode memory) without decoding
    any pixel: decoding waits for a face engine. ImageError (415/422) names the file."""
    data = read_upload(upload, limit)
    try:
        img = open_image(data, max_pixels=max_pixels)
        w, h = img.size
        need = decode_bytes_needed(img.mode, w, h) + (
            jpeg_coefficient_bytes(img, data) if img.format in ("JPEG", "MPO") else 0)
        if max_bytes is not None and need > max_bytes:
            raise ImageError(f"{w}×{h} {img.mode} needs {need / 1e6:.0f} MB to decode, over "
                             f"the {max_bytes / 1e6:.0f} MB decode budget")
        fmt = img.format or "?"
        try:
            img.verify()  # PNG: chunk checksums, no pixel decoded; a no-op for most formats
        except Exception:
            raise ImageError("bad image data", code="decode_error") from None
    except ImageError as exc:
        # keep the code (415 vs 422), say which file of a batch it was, and only in words
        # fit for a client (Pillow's own text stays out)
        err = ImageError(f"{_label(upload)}: {client_message(exc)}", code=exc.code)
        err.client_safe = True  # type: ignore[attr-defined]
        raise err from None
    stem = _UNSAFE.sub("_", PurePath(upload.filename or "upload").stem).strip("_")[:60]
    sha = hashlib.sha256(data).hexdigest()
    ext = _EXT.get(fmt, "img")
    return CheckedImage(f"{sha[:12]}_{stem or 'upload'}.{ext}", data)


def _label(upload: UploadFile) -> str:
    name = PurePath(upload.filename or "").name[:80]
    return f"file {name!r}" if name else "the upload"
