"""`FACEATLAS_ENGINE=ensemble`: YuNet finds faces, SFace and dlib both embed them, curation keeps
a face only when both engines' decisions agree; the index and recognition use the SFace half."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from faceatlas.curation.decide import CurateParams, decide
from faceatlas.faces.analyse import AnalyseParams, FacePool
from faceatlas.gallery.index import index_store
from faceatlas.gallery.promote import promote
from faceatlas.gallery.recognize import recognize_file
from faceatlas.jobs.importer import import_folder
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.models import Face, Image, Reason


@pytest.mark.slow
def test_ensemble_needs_both_engines_to_agree(faces_root: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", engine="ensemble", workers=1,
                        min_faces_to_promote=1, default_collection="test")
    own = sorted((faces_root / "people" / "person_02").iterdir())
    other = sorted((faces_root / "people" / "person_04").iterdir())[0]
    items = [(i, str(p)) for i, p in enumerate([*own[:5], other])]
    with FacePool(AnalyseParams.from_settings(settings), 1) as pool:
        analyses = sorted(pool.analyse(items), key=lambda a: a.key)
    for a in analyses:
        assert a.engine == "ensemble"
        for f in a.faces:
            assert f.embedding is not None and f.embedding.shape == (256,)
            assert abs(float(np.linalg.norm(f.embedding[:128])) - 1) < 1e-4  # SFace half
    params = CurateParams.from_settings(settings)
    assert params.check is not None
    assert params.check.link_distance == settings.thresholds("dlib").link
    both = decide(analyses, params)
    intruder = (5, 0)
    assert not both.faces[intruder].accepted
    assert sorted(k for k, _ in both.accepted()) == [0, 1, 2, 3, 4]

    # give one of person_02's faces the dlib vector of the intruder (a real one): SFace alone
    # still accepts it, the ensemble does not, because dlib disagrees
    forged_face = replace(analyses[4].faces[0], embedding=np.concatenate(
        [analyses[4].faces[0].embedding[:128], analyses[5].faces[0].embedding[128:]]))
    forged = [*analyses[:4], replace(analyses[4], faces=[forged_face]), analyses[5]]
    sface_only = decide([replace(a, faces=[replace(f, embedding=f.embedding[:128])
                                           for f in a.faces]) for a in forged],
                        replace(params, check=None))
    assert sface_only.faces[(4, 0)].accepted
    ensemble = decide(forged, params)
    assert not ensemble.faces[(4, 0)].accepted
    assert ensemble.faces[(4, 0)].reason == Reason.NOT_THIS_PERSON
    assert ensemble.images[4] == Reason.NOT_THIS_PERSON

    # stored, promoted, searched: the index holds the SFace half, tagged sface
    incoming = tmp_path / "incoming" / "person_02"
    incoming.mkdir(parents=True)
    for p in [*own[:5], other]:
        shutil.copyfile(p, incoming / p.name)
    list(import_folder(incoming.parent, "test", settings))
    promote(settings, collection="test")
    with session_scope(settings) as s:
        rows = s.execute(select(Face.engine, Face.state, Image.origin)
                         .join(Image, Face.image_id == Image.id)).all()
    assert {engine for engine, _, _ in rows} == {"ensemble"}
    assert {o for _, state, o in rows if state == "accepted"} == {
        f"file:{p.name}" for p in own[:5]}
    index = index_store(settings).get("test")
    assert index.engine == "sface" and index.vectors.shape == (5, 128)
    result = recognize_file(own[5], settings)
    assert result.best is not None and result.best.name == "person 02"
