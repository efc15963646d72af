"""Face engines and their registry: the one place that turns settings into an engine.

``dlib`` (HOG + ResNet, dlib.py), ``sface`` (YuNet + SFace, sface.py) and ``ensemble`` (YuNet
detection, both embeddings, ensemble.py). Every engine has a ``name`` and a ``model_hash``;
stored faces and indexes carry both, so embeddings of different models are never compared.
What callers need to know of an engine without loading it is its ``EngineSpec``
(``engine_spec(name)``): adding an engine means a module here and a line in ``ENGINES``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from faceatlas.domain.errors import ConfigError
from faceatlas.faces.engines import dlib, ensemble, sface
from faceatlas.faces.engines.base import EngineConfig, EngineSpec, FaceEngine

if TYPE_CHECKING:
    from faceatlas.settings import Settings

__all__ = ["ENGINES", "EngineConfig", "EngineSpec", "FaceEngine", "create_engine",
           "engine_spec", "get_engine", "search_config"]

#: every engine of this installation by name, in the order they are offered
ENGINES: Mapping[str, EngineSpec] = MappingProxyType(
    {spec.name: spec for spec in (dlib.SPEC, sface.SPEC, ensemble.SPEC)})


def engine_spec(name: str) -> EngineSpec:
    """The spec of the engine called ``name``, or a ConfigError naming the known ones."""
    spec = ENGINES.get(name)
    if spec is None:
        raise ConfigError(f"unknown face engine {name!r}; choose one of {', '.join(ENGINES)}")
    return spec


def search_config(cfg: EngineConfig) -> EngineConfig:
    """The engine whose vectors an index holds, for recognition: a composite's search part
    (the ensemble's index holds SFace vectors, so it recognises with SFace alone)."""
    search = engine_spec(cfg.name).search.name
    return cfg if search == cfg.name else replace(cfg, name=search)


def create_engine(cfg: EngineConfig) -> FaceEngine:
    """A new engine instance (its own copy of the models once loaded)."""
    return engine_spec(cfg.name).build(cfg)


_engines: dict[EngineConfig, FaceEngine] = {}
_engines_lock = threading.Lock()


def get_engine(config: Settings | EngineConfig) -> FaceEngine:
    """The configured engine: one instance (one copy of the models) per process and
    configuration, created on first use, models loaded lazily."""
    cfg = config if isinstance(config, EngineConfig) else EngineConfig.from_settings(config)
    with _engines_lock:
        engine = _engines.get(cfg)
        if engine is None:
            engine = _engines[cfg] = create_engine(cfg)
    return engine
