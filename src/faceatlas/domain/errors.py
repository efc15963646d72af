"""One root exception for everything faceatlas raises on purpose.

    FaceAtlasError                 anything faceatlas reports to a user
    ├── ConfigError                a setting or API key is missing or wrong
    │   └── EngineMismatchError    embeddings of one face engine met another engine
    ├── StorageError               database or file layout problem
    ├── NotFoundError              a collection, person, face or job does not exist
    │   └── AmbiguousError         a name fits several (people of several collections; a
    │                              word naming several Wikidata items, code ``ambiguous``)
    ├── InvalidNameError           a name, country or occupation with nothing to go by (1)
    ├── QueryError                 a read asked for no such thing, e.g. a sort order (2)
    ├── ImageError                 an image cannot be used (carries a reason code)
    │   └── VideoError             a video cannot be used (3)
    ├── ReferencePhotoError        a reference photo cannot be used
    ├── TableError                 a spreadsheet cannot be read or written (4)
    │   ├── TableLimitError        over a configured limit (bytes, rows, size)
    │   └── UnsafeTableError       built to attack its reader (zip bomb, XML entities)
    ├── ArchiveError               a gallery archive cannot be imported (5)
    ├── ProviderError              an outside service (LLM, image search) failed
    │   ├── AuthError              bad or missing API key: stop the run
    │   ├── RateLimitError         429 that outlived its retries
    │   └── BadResponseError       the answer had the wrong shape
    ├── DownloadError              one URL could not be fetched (carries a reason code)
    │   ├── UnsafeURLError         refused by the SSRF guard
    │   └── _Fail                  one try of one URL failed: retried or recorded (6)
    ├── BusyError                  at capacity: try again later (503 + Retry-After)
    ├── _TooLarge                  a request body over its limit, met while read: 413 (7)
    ├── Problem                    a review-UI error page in our own words (8)
    ├── LoginRequired              no review-UI session: the UI sends to the log-in page (9)
    └── CsrfFailed                 a review-UI form not from this session: "Form expired" (9)

Defined beside the code that raises them: (1) ``domain.names``, (2) ``store.queries``,
(3) ``video.reader``, (4) ``curation.references``, (5) ``names.tables``, (5)
``gallery.archive``, (7) ``sources.download``, (8) ``api.errors``, (9) ``api.ui.base``,
(10) ``api.ui.csrf``; the others here. Every exception class in ``faceatlas`` is in this
tree, under its base class (tests/test_errors.py keeps it so). The underscored ones and the
review UI's never reach a user as such: their module turns them into an answer.

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


#: the ``code`` of an AmbiguousError about a word Wikidata knows several items (or none) by
AMBIGUOUS_WORD = "ambiguous"


class AmbiguousError(NotFoundError):
    """A name or word that fits several things, so none was chosen. Its ``code`` says which:
    ``not_found`` (the default) for a person of several collections, where saying which
    collection settles it (404); `AMBIGUOUS_WORD` for a word that names several Wikidata
    items, or none, where a Q-id settles it (400, like before the two were one class)."""


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
