"""One root exception for everything faceatlas raises on purpose.

    FaceAtlasError                 anything faceatlas reports to a user
    ├── ConfigError                a setting or API key is missing or wrong
    │   └── EngineMismatchError    embeddings of one face engine met another engine
    ├── StorageError               database or file layout problem
    ├── NotFoundError              a collection, person, face or job does not exist
    │   └── AmbiguousError         a name fits several (e.g. people of several collections)
    ├── ImageError                 an image cannot be used (carries a reason code)
    ├── ProviderError              an outside service (LLM, image search) failed
    │   ├── AuthError              bad or missing API key: stop the run
    │   ├── RateLimitError         429 that outlived its retries
    │   └── BadResponseError       the answer had the wrong shape
    ├── DownloadError              one URL could not be fetched (carries a reason code)
    │   └── UnsafeURLError         refused by the SSRF guard
    └── BusyError                  at capacity: try again later (503 + Retry-After)

CLI commands turn these into one red line and exit code 1 (adding the flag or command that
helps: library messages name no CLI flags); the HTTP API turns them into a JSON error with a
fitting status. Anything else is a bug.
"""

from __future__ import annotations


class FaceAtlasError(Exception):
    """Root of every error faceatlas raises deliberately."""

    #: machine-readable short code, stored as a decision reason where relevant
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(FaceAtlasError):
    code = "config"


class EngineMismatchError(ConfigError):
    """Stored embeddings (an index, face rows) come from another engine or model."""

    code = "engine_mismatch"

    def __init__(self, message: str, *, collection: str | None = None,
                 engine: str | None = None) -> None:
        super().__init__(message)
        #: the collection to analyse again, with this engine (the CLI names the command)
        self.collection, self.engine = collection, engine


class ReferencePhotoError(FaceAtlasError):
    """A reference that cannot be used: no such face, no usable face in the photo, bad input."""

    code = "bad_reference"


class StorageError(FaceAtlasError):
    code = "storage"


class NotFoundError(FaceAtlasError):
    code = "not_found"


class AmbiguousError(NotFoundError):
    """A name that fits several things; saying which collection would settle it."""


class ImageError(FaceAtlasError):
    """An image that cannot be used; ``code`` is a curation reason (decode_error, not_an_image)."""

    code = "decode_error"


class ProviderError(FaceAtlasError):
    code = "provider_error"


class AuthError(ProviderError):
    code = "auth"


class RateLimitError(ProviderError):
    code = "rate_limited"


class BadResponseError(ProviderError):
    code = "bad_response"


class DownloadError(FaceAtlasError):
    code = "download_error"


class UnsafeURLError(DownloadError):
    code = "unsafe_url"


class BusyError(FaceAtlasError):
    """The server is at capacity (every face engine busy and the wait queue full): 503 with
    ``Retry-After``; nothing was done, the client may send the same request again."""

    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
