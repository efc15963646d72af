"""API verbs beyond recognition: verify two photos, detect faces, per-collection statistics
and a collection's gallery as a streamed archive.

Uploads are read with the same per-file limit and header checks as recognition
(``api.uploads``) and decoded only once a face engine of the shared pool is held (503 +
Retry-After when its queue is full). A token bound to some collections sees, counts and
exports only those: anything else is the same 404 as a collection that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from faceatlas.api.deps import ApiContext, Caller, Ctx
from faceatlas.api.uploads import check_image
from faceatlas.domain.names import collection_key

router = APIRouter(prefix="/api/v1")


class Landmarked(BaseModel):
    box: dict[str, int] = Field(description="x, y, w, h in the (EXIF-rotated) image's pixels.")
    face_coordinates: dict[str, float] = Field(description="The box in percent of the image.")
    score: float = Field(description="Detector score (dlib HOG: higher is surer).")
    landmarks: list[list[float]] = Field(description="5 points [x, y]: eye corners and nose.")


class DetectionOut(BaseModel):
    width: int
    height: int
    faces: list[Landmarked]


class VerificationOut(BaseModel):
    verified: bool = Field(description="Same person: distance at or below the threshold.")
    distance: float
    threshold: float
    engine: str
    faces_a: int = Field(description="Faces found in the first photo (the largest compared).")
    faces_b: int
    face_a: Landmarked
    face_b: Landmarked


class StatsOut(BaseModel):
    key: str
    name: str
    people: int
    people_by_state: dict[str, int]
    images: int
    images_by_reason: dict[str, int]
    faces: int
    faces_accepted: int
    gallery_faces: int
    index_faces: int
    index_people: int


def _checked(ctx: ApiContext, upload: UploadFile) -> bytes:
    s = ctx.settings
    return check_image(upload, s.max_upload_bytes, s.max_pixels, s.decode_max_bytes).data


@router.post("/verify", response_model=VerificationOut, tags=["recognition"])
def verify(
    ctx: Ctx,
    caller: Caller,
    first: Annotated[UploadFile, File(description="The first photo.")],
    second: Annotated[UploadFile, File(description="The second photo.")],
    threshold: Annotated[float | None, Form(gt=0, le=2.0, description="Same person at or "
                                            "below this distance (default: the server's "
                                            "recognition threshold).")] = None,
) -> Any:
    """Do two photos show the same person? The largest face of each is compared; 422
    (``no_face``) names a photo without a face. Needs no collection."""
    from faceatlas.gallery.verify import verify_bytes

    a, b = _checked(ctx, first), _checked(ctx, second)
    return verify_bytes(a, b, ctx.settings, engines=ctx.engines, threshold=threshold).as_dict()


@router.post("/detect", response_model=DetectionOut, tags=["recognition"])
def detect(
    ctx: Ctx,
    caller: Caller,
    image: Annotated[UploadFile, File(description="The photo.")],
) -> Any:
    """Detection only: every face's box, detector score and 5 landmarks (no identities)."""
    from faceatlas.gallery.verify import detect_bytes

    return detect_bytes(_checked(ctx, image), ctx.settings, engines=ctx.engines).as_dict()


@router.get("/stats", response_model=list[StatsOut], tags=["collections"])
def stats(
    ctx: Ctx,
    caller: Caller,
    collection: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    """Per collection (of the token's): people by state, images by reason, faces, gallery
    files and index size."""
    from faceatlas.gallery.stats import collection_stats

    if collection is not None:
        caller.check(collection, f"no collection {collection!r}")
    return [s.as_dict() for s in collection_stats(ctx.settings, collection,
                                                  allowed=caller.collections)]


@router.get("/collections/{key}/export", tags=["collections"],
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-tar": {}},
                             "description": "The archive (see `faceatlas import-gallery`)."}})
def export(
    ctx: Ctx,
    caller: Caller,
    key: Annotated[str, Path(max_length=100)],
) -> StreamingResponse:
    """The collection's gallery as a tar archive, streamed while it is made: manifest.json
    (engine, model hash, people, images with provenance and licences, faces), embeddings.npy,
    crops/ and gallery/. ``faceatlas import-gallery`` loads it into another home."""
    from faceatlas.gallery.archive import collect_manifest, stream_archive

    caller.check(key, f"no collection {key!r}")
    # the catalogue is read now: a missing collection is a 404, not a broken stream
    manifest, matrix, files = collect_manifest(ctx.settings, key)
    name = collection_key(key)
    return StreamingResponse(
        stream_archive(manifest, matrix, files), media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="faceatlas-{name}.tar"'})
