"""An old system's (facerecWeb) storage folder, rebuilt from the shared test photos.

    storage/recognized_faces_prod/serbia/<Old_Name>_<YYYY-MM-DD>_<HHMMSSxx>.jpg   (flat)
    storage/trainingPassSerbia/<Old_Name>/*.jpg
    storage/training/serbia/<Old_Name>_<YYYYmmdd_HHMMSS>_<i>.jpg
    storage/excel/data.xlsx, storage/excel/occupation.xlsx
    storage/name_mapping.json   (Cyrillic and Đ originals)
    plus things the migration must refuse, each with a reason
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from faceatlas.names.tables import write_table

#: identity folder in the shared photos → the old file-name form and the original name
PEOPLE = {
    "person_01": ("Novak_Djokovic", "Новак Ђоковић"),  # Cyrillic original
    "person_02": ("Dorde_Balasevic", "Đorđe Balašević"),  # the old normaliser's key for Đ
    "barack_obama": ("Barack_Obama", None),  # no mapping entry: "Barack Obama"
}
TRAINING_ONLY = {"person_03": ("Ana_Ivanovic", "Ана Ивановић")}  # only in a training pass
RAW_ONLY = {"person_04": ("Jelena_Jankovic", "Jelena Janković")}  # only raw downloads
QUEUE = [("Nikola", "Tesla", "Inventor"), ("Novak", "Djokovic", "Athlete")]


@dataclass
class OldStorage:
    root: Path
    queries: dict[str, Path]  # expected display name → a photo kept out of the storage
    skipped: dict[str, str]  # relative path → words the reason must contain


def build_old_storage(root: Path, faces_root: Path, *, with_occupation: bool = False
                      ) -> OldStorage:
    people = faces_root / "people"
    prod = root / "recognized_faces_prod" / "serbia"
    prod.mkdir(parents=True)
    queries: dict[str, Path] = {}
    mapping: dict[str, str] = {}
    for n, (identity, (stem, original)) in enumerate(PEOPLE.items()):
        photos = sorted((people / identity).iterdir())
        queries[original or stem.replace("_", " ")] = photos[-1]
        for i, photo in enumerate(photos[:3] if len(photos) > 3 else photos[:-1]):
            shutil.copyfile(photo, prod / f"{stem}_2025-05-{24 + n}_0440{i:02d}66.jpg")
        if original:
            mapping[stem] = original
    # a training pass of Novak (one photo also in production: the same bytes, one image) and
    # of someone only there
    novak_stem = PEOPLE["person_01"][0]
    tp = root / "trainingPassSerbia"
    (tp / novak_stem).mkdir(parents=True)
    novak = sorted((people / "person_01").iterdir())
    shutil.copyfile(novak[0], tp / novak_stem / "crop_1.jpg")  # same bytes as production
    shutil.copyfile(novak[3], tp / novak_stem / "crop_2.jpg")
    for identity, (stem, original) in TRAINING_ONLY.items():
        photos = sorted((people / identity).iterdir())
        (tp / stem).mkdir()
        for i, photo in enumerate(photos[:-1]):
            shutil.copyfile(photo, tp / stem / f"{stem}_{i}.jpg")
        queries[original] = photos[-1]
        mapping[stem] = original
    for identity, (stem, original) in RAW_ONLY.items():
        photos = sorted((people / identity).iterdir())
        raw = root / "training" / "serbia"
        raw.mkdir(parents=True)
        for i, photo in enumerate(photos[:-1]):
            shutil.copyfile(photo, raw / f"{stem}_20250524_0440{i:02d}_{i}.jpg")
        queries[original] = photos[-1]
        mapping[stem] = original
    (root / "name_mapping.json").write_text(json.dumps(mapping, ensure_ascii=False),
                                            encoding="utf-8")
    excel = root / "excel"
    excel.mkdir()
    columns = ["name", "last_name", "occupation"] if with_occupation else ["name", "last_name"]
    write_table(excel / "data.xlsx", columns,
                [dict(zip(("name", "last_name", "occupation"), row, strict=True))
                 for row in QUEUE])
    write_table(excel / "occupation.xlsx", ["Occupation"],
                [{"Occupation": "Athlete"}, {"Occupation": "Singer"}])
    # what cannot be taken
    (prod / "notes.txt").write_text("not a photo\n")
    shutil.copyfile(novak[1], prod / "photo.jpg")  # no date part: whose?
    (root / "recognized_faces_prod" / "stray.jpg").write_bytes(novak[1].read_bytes())
    (root / "uploads" / "serbia").mkdir(parents=True)
    (root / "uploads" / "serbia" / "temp_recognition_1.jpg").write_bytes(b"x")
    skipped = {
        "recognized_faces_prod/serbia/notes.txt": "not an image",
        "recognized_faces_prod/serbia/photo.jpg": "no date part",
        "recognized_faces_prod/stray.jpg": "country folder",
        "uploads": "temporary",
    }
    return OldStorage(root, queries, skipped)
