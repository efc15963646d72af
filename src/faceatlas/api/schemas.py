"""Response models: they document the answers in the OpenAPI schema (``/docs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Coordinates(BaseModel):
    x_percent: float
    y_percent: float
    width_percent: float
    height_percent: float


class Box(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    x: int
    y: int
    w: int
    h: int


class Candidate(BaseModel):
    person_id: int
    person: str | None
    distance: float = Field(description="To this person's closest gallery face.")
    confidence: float = Field(description="Percent; 50 at the threshold.")
    within_threshold: bool


class FaceResult(BaseModel):
    box: Box = Field(description="Pixels in the (EXIF-rotated) image.")
    face_coordinates: Coordinates
    status: Literal["known", "unknown"]
    person_id: int | None
    person: str | None = Field(description="Original spelling of the name.")
    identity: str | None = Field(description="Gallery file name stem of the closest face.")
    distance: float | None
    confidence: float | None = Field(description="Percent; 50 at the threshold.")
    nearest_distance: float | None = Field(description="Closest gallery face of anyone.")
    candidates: list[Candidate] | None = Field(
        None, description="With top_k: the k closest people, closest first.")


class RecognizedPerson(BaseModel):
    name: str
    face_coordinates: Coordinates


class OldMetrics(BaseModel):
    """The old system's per-person numbers; confidence = (1 − distance) × 100."""

    occurrences: int = Field(description="Faces of the photo matched to this person.")
    average_distance: float
    min_distance: float
    weighted_score: float | None = Field(
        None, description="0.4 × mean + 0.3 × min distance − 0.1 × occurrences (best_match).")
    confidence_percentage: float
    distances: list[float]


class DetectedMatch(BaseModel):
    person_name: str
    metrics: OldMetrics


class BestMatch(BaseModel):
    person_name: str = Field(description="File-name form of the name, e.g. Novak_Djokovic.")
    display_name: str = Field(description="Original spelling, e.g. Novak Đoković.")
    identity: str | None = Field(description="Gallery file name of the closest face (.jpg).")
    distance: float | None
    confidence_metrics: OldMetrics


class SeedRecognition(BaseModel):
    """The old system's answer (HTTP 200 in every case): ``success``; ``error`` with
    "No matches within threshold"; ``no_faces``."""

    status: Literal["success", "error", "no_faces"]
    message: str
    person: str | None = None
    confidence: float | None = Field(None, description="(1 − distance) × 100 of the best.")
    recognized_persons: list[RecognizedPerson] | None = None
    best_match: BestMatch | None = None
    all_detected_matches: list[DetectedMatch] | None = None


class Recognition(BaseModel):
    status: Literal["success", "unknown", "no_face"]
    collection: str
    width: int
    height: int
    threshold: float
    faces: list[FaceResult]


class FromLibrary(BaseModel):
    """Built by attribute from what the library returns (a `store.queries` result, a
    dataclass such as `PromotionResult`, an ORM row): its fields are listed once, here."""

    model_config = ConfigDict(from_attributes=True)


class CollectionOut(FromLibrary):
    key: str
    name: str
    people: int
    promoted: int
    accepted_faces: int
    gallery_faces: int
    index_faces: int


class PersonOut(FromLibrary):
    id: int
    name: str
    collection: str
    state: str
    images: int
    accepted_faces: int
    gallery_faces: int
    anchor: Literal["portrait", "reference", "none"] = Field(
        "none", description="What the gallery's identity rests on: the Wikidata portrait, a "
        "reference photo (sheet, API, a reviewer's 'This is them') or none (the majority "
        "vote of the search results alone).")


class PersonDetail(PersonOut):
    ascii_name: str
    folder: str
    occupations: list[str]
    country: str
    source: str
    error: str | None
    selftest: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    wikidata_qid: str | None = Field(None, description="Wikidata item, e.g. Q5812.")
    native_name: str | None = Field(None, description="The name in its original script.")
    wikidata_lookup: dict[str, Any] | None = Field(
        None, description="How looking the name up on Wikidata ended: state (matched, "
        "ambiguous, not_found, unavailable), candidates for a reviewer, detail.")


class FaceOut(FromLibrary):
    id: int
    image_id: int
    image: str = Field(description="Title or origin of the image.")
    image_reason: str | None = Field(description="Decision about the whole image.")
    idx: int
    box: Box
    det_score: float
    blur: float
    distance: float | None
    quality: float
    state: str
    reason: str
    crop_path: str | None
    gallery_path: str | None


class ImageOut(FromLibrary):
    id: int
    title: str | None
    origin: str
    state: str
    reason: str | None
    faces: list[FaceOut]
    provider: str | None = None
    licence: str | None = Field(None, description="Reuse licence (Commons files).")
    licence_url: str | None = None
    author: str | None = None


class JobOut(FromLibrary):
    id: int
    kind: str
    person_id: int | None
    collection_id: int | None
    state: str
    attempts: int
    progress: float
    message: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class CollectStarted(BaseModel):
    person_id: int
    job_id: int
    runner: str = Field(description="celery (a broker is configured) or server (this "
                                    "process's background thread)")
    status_url: str


class Removal(FromLibrary):
    person_id: int
    person: str
    collection: str
    rows: dict[str, int]
    files_removed: int
    index_rows_removed: int


class SelfTestOut(FromLibrary):
    passed: bool | None
    face_id: int | None
    predicted_person_id: int | None
    predicted_name: str | None
    distance: float | None
    confidence: float | None
    detail: str


class PromotionOut(FromLibrary):
    state: str
    faces: int
    gallery_files: int
    selftest: SelfTestOut | None


class Enrolment(BaseModel):
    person_id: int
    person: str
    collection: str
    job_id: int
    candidates: int
    accepted: int
    new_images: int
    reasons: dict[str, int]
    promotion: PromotionOut | None
    warnings: list[str] = Field(
        default_factory=list, description="Suspected duplicates: known people with a name "
        "that looks like this one (the person was still enrolled separately).")


class Health(BaseModel):
    status: Literal["ok"]
