"""placeholder"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("FACEATLAS_BENCH_CACHE", "/tmp/faceatlas-bench")) / "lfw-sface.npz"


def lfw_embeddings() -> dict[str, np.ndarray]:
    """SFace embeddings of every LFW face (largest face per photo), computed once and cached."""
    if CACHE.exists():
        with np.load(CACHE) as data:
            return {"vectors": data["vectors"], "labels": data["labels"]}
    from faceatlas.faces.engines import create_engine
    from faceatlas.faces.engines.base import EngineConfig
    from faceatlas.faces.image import decode

    root = Path(os.environ.get("FACEATLAS_TESTDATA", "../shared/testdata")) / "lfw"
    engine = create_engine(EngineConfig(name="sface"))
    vectors, labels = [], []
    people = sorted(p for p in root.iterdir() if p.is_dir())
    for label, person in enumerate(people):
        for photo in sorted(person.glob("*.jpg")):
            img = decode(photo.read_bytes())
            found = engine.detect(img.rgb)
            if not found:
                continue
            big = max(found, key=lambda f: f.box[2] * f.box[3])
            vectors.append(engine.embed(img.rgb, [big])[0])
            labels.append(label)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    out = {"vectors": np.asarray(vectors, dtype=np.float32),
           "labels": np.asarray(labels, dtype=np.int64)}
    np.savez(CACHE, **out)
    return out
