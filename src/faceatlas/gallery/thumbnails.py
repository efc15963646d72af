"""Pictures for the review pages: a face (its stored crop, else cut from the photo) and
candidate photos, as small JPEGs, with a bounded in-process cache keyed by file and size."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image as PILImage

from faceatlas.domain.errors import ImageError, NotFoundError
from faceatlas.faces.image import decode
from faceatlas.faces.quality import box_crop
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Image

THUMB_SIZE = 200  # px, long side: sharp on a phone's 2x screen at ~100 CSS px
_CACHE_LIMIT = 4096  # thumbnails of ~5-10 kB each: at most a few tens of MB
_cache: OrderedDict[tuple[str, int, int, int, tuple[int, ...]], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def face_image(settings: Settings, face_id: int, *, thumb: bool = True) -> bytes:
    """The face as JPEG: its crop if one is stored, else cut from the original photo."""
    layout = Layout(settings.home)
    with session_scope(settings) as session:
        face = session.get(Face, face_id)
        if face is None:
            raise NotFoundError(f"no face with id {face_id}")
        crop, raw = face.crop_path, face.image.path
        box = (face.x, face.y, face.w, face.h)
    if crop and layout.absolute(crop).is_file():
        path, cut = layout.absolute(crop), None
    elif raw and layout.absolute(raw).is_file():
        path, cut = layout.absolute(raw), box
    else:
        raise NotFoundError(f"face {face_id} has no stored picture")
    if not thumb and cut is None:
        return path.read_bytes()
    return _thumbnail(path, settings, cut, THUMB_SIZE if thumb else 800)


def image_thumbnail(settings: Settings, image_id: int) -> bytes:
    """A whole candidate photo, small."""
    layout = Layout(settings.home)
    with session_scope(settings) as session:
        img = session.get(Image, image_id)
        if img is None:
            raise NotFoundError(f"no image with id {image_id}")
        raw = img.path
    if not raw or not layout.absolute(raw).is_file():
        raise NotFoundError(f"image {image_id} has no stored file")
    return _thumbnail(layout.absolute(raw), settings, None, THUMB_SIZE)


def _thumbnail(path: Path, settings: Settings, box: tuple[int, int, int, int] | None,
               size: int) -> bytes:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, size, box or ())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        # a whole-photo thumbnail needs no more pixels than it shows
        rgb = decode(path.read_bytes(), max_pixels=settings.max_pixels,
                     max_side=size if box is None else None,
                     max_bytes=settings.decode_max_bytes).rgb
    except ImageError as exc:
        raise NotFoundError("the stored picture cannot be decoded") from exc
    if box is not None:
        rgb = box_crop(rgb, box, settings.crop_margin)
    pic = PILImage.fromarray(rgb)
    pic.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=82, optimize=True)
    data = buf.getvalue()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return data
