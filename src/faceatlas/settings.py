"""Every knob in one place: environment variables with prefix ``FACEATLAS_`` or a ``.env`` file.

Defaults follow the seed system's numbers where it had one (70 px faces, 20% margin, 40
faces per person, 3 seed references, more than 5 faces to promote, 70 downloads).
"""

from __future__ import annotations

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
    blur_threshold: float = Field(
        14.0, description="Min sharpness of the 64 px face (weakest direction per contrast).")
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
    def worker_count(self) -> int:
        import os

        return self.workers or (os.cpu_count() or 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
