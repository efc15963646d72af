"""Hostile and unusual files: each gets its reason code, none crashes anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceatlas.domain.errors import ImageError, StorageError
from faceatlas.domain.names import file_stem
from faceatlas.faces.analyse import AnalyseParams, analyse_file
from faceatlas.faces.image import decode
from faceatlas.store.files import Layout
from tests.photos import bad_files, colour_variants

PHOTO = "people/person_01/img5.jpg"


def test_bad_files_get_their_reason(tmp_path: Path, faces_root: Path) -> None:
    expected = bad_files(tmp_path, faces_root / PHOTO)
    got = {name: analyse_file(0, str(tmp_path / name), AnalyseParams()).error for name in expected}
    assert got == expected


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path, faces_root: Path) -> None:
    bad_files(tmp_path, faces_root / PHOTO)
    with pytest.raises(ImageError, match="MP is over the 50 MP limit") as info:
        decode((tmp_path / "bomb.png").read_bytes())
    assert info.value.code == "decode_error"


def test_colour_modes_decode_to_rgb_and_keep_the_face(tmp_path: Path, faces_root: Path) -> None:
    for path in colour_variants(tmp_path, faces_root / PHOTO):
        img = decode(path.read_bytes())
        assert img.rgb.dtype.name == "uint8" and img.rgb.shape[2] == 3, path.name
        analysis = analyse_file(0, str(path), AnalyseParams())
        assert analysis.error is None, path.name
        assert len(analysis.faces) == 1, path.name


def test_exif_orientation_is_applied(tmp_path: Path, faces_root: Path) -> None:
    from PIL import Image

    img = Image.open(faces_root / PHOTO).convert("RGB")
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # stored sideways…
    exif = Image.Exif()
    exif[0x0112] = 6  # …with the tag that says "turn 90° clockwise to view"
    path = tmp_path / "sideways.jpg"
    rotated.save(path, exif=exif.tobytes())
    decoded = decode(path.read_bytes())
    assert (decoded.width, decoded.height) == img.size
    assert len(analyse_file(0, str(path), AnalyseParams()).faces) == 1


def test_photos_decoded_by_opencv_have_pillows_pixels(tmp_path: Path, faces_root: Path) -> None:
    """Plain JPEGs and WebPs go through OpenCV (faster): the pixels must be exactly Pillow's,
    progressive or not, lossy or lossless; truncated, alpha and rotated ones stay with
    Pillow (which refuses the truncated ones)."""
    from PIL import Image

    from faceatlas.faces.image import plain_photo

    checked = 0
    for path in sorted((faces_root / "people").glob("*/*.jp*g"))[:12]:
        data = path.read_bytes()
        img = Image.open(path)
        if not plain_photo(img, data):
            continue
        pillow = np.asarray(img.convert("RGB"))
        assert np.array_equal(decode(data).rgb, pillow), path.name
        # recognition decodes with a long-side limit: a photo within it takes the same path
        assert np.array_equal(decode(data, max_side=max(img.size)).rgb, pillow), path.name
        checked += 1
    assert checked >= 8
    face = Image.open(faces_root / PHOTO)
    for name, options in [("progressive.jpg", {"progressive": True, "quality": 90}),
                          ("lossy.webp", {"quality": 80}), ("lossless.webp", {"lossless": True})]:
        face.save(tmp_path / name, **options)
        data = (tmp_path / name).read_bytes()
        assert plain_photo(Image.open(tmp_path / name), data), name
        assert np.array_equal(decode(data).rgb,
                              np.asarray(Image.open(tmp_path / name).convert("RGB"))), name
        with pytest.raises(ImageError):
            decode(data[: len(data) // 2])
    data = (faces_root / PHOTO).read_bytes()
    assert not plain_photo(face, data[: len(data) // 3])
    see_through = face.convert("RGBA")
    see_through.putalpha(Image.linear_gradient("L").resize(face.size))  # real transparency
    see_through.save(tmp_path / "alpha.webp")
    assert not plain_photo(Image.open(tmp_path / "alpha.webp"),
                           (tmp_path / "alpha.webp").read_bytes())


def test_reduced_decoding_is_libjpegs_scaled_decode(tmp_path: Path, faces_root: Path) -> None:
    """``reduce_to``: a large JPEG comes at the smallest libjpeg scale still at least that
    long (Pillow's draft pixels exactly), with the full size known to the pixel; a rotated one
    too (width and height swapped); a smaller JPEG and other formats come whole."""
    from PIL import Image

    from faceatlas.faces.image import jpeg_reduction

    path = faces_root / "people/person_04/img54.jpg"  # 2400 px on its long side
    data = path.read_bytes()
    img = Image.open(path)
    w, h = img.size
    k = jpeg_reduction(max(w, h), 640)
    assert k == 2 and jpeg_reduction(max(w, h), 500) == 4 and jpeg_reduction(639, 640) == 1
    got = decode(data, reduce_to=640)
    img.draft(None, (w // k, h // k))
    assert np.array_equal(got.rgb, np.asarray(img.convert("RGB")))
    assert got.rgb.shape[:2] == (-(-h // k), -(-w // k)) and got.full_size == (w, h)
    assert got.scale == pytest.approx(1 / k, rel=1e-3)
    rotated = Image.open(path)
    exif = rotated.getexif()
    exif[0x0112] = 6  # 90° clockwise: the decoded picture is h × w
    rotated.save(tmp_path / "rotated.jpg", exif=exif, quality=90)
    turned = decode((tmp_path / "rotated.jpg").read_bytes(), reduce_to=640)
    assert turned.full_size == (h, w) and turned.rgb.shape[:2] == (-(-w // k), -(-h // k))
    small = decode((faces_root / PHOTO).read_bytes(), reduce_to=640)
    assert small.scale == 1.0 and small.full_size == (small.width, small.height)
    Image.open(path).save(tmp_path / "big.png", compress_level=0)  # fast to write
    png = decode((tmp_path / "big.png").read_bytes(), reduce_to=640)
    assert png.scale == 1.0 and png.full_size == (w, h)


@pytest.mark.parametrize(
    "name",
    ["Novak Đoković", "Новак Ђоковић", "  spaces  everywhere ", "Dr. No", "..", "../../etc/passwd",
     "a%2Fb", "a/b\\c", "C:\\Windows", "...", "Šaban Šaulić", "O'Brien-Smith"],
)
def test_hostile_names_give_safe_paths_inside_home(tmp_path: Path, name: str) -> None:
    layout = Layout(tmp_path)
    folder = file_stem(name)
    for path in (layout.raw_dir("serbia", folder), layout.faces_dir("serbia", folder)):
        resolved = path.resolve()
        assert tmp_path.resolve() in resolved.parents
        assert resolved.name == folder and "/" not in folder and ".." not in folder


def test_layout_refuses_components_that_escape(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    for bad in ("..", "../x", "a/b", "", "/abs"):
        with pytest.raises(StorageError):
            layout.faces_dir("serbia", bad)
    with pytest.raises(StorageError):
        layout.absolute("../outside.jpg")
