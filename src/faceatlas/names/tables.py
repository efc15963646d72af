"""Spreadsheets in the old system's shapes: ``occupation.xlsx`` and ``data.xlsx`` (or CSV).

Headers are matched case-insensitively and cells are read as text, so a sheet saved by
Excel, LibreOffice or a script reads the same. Writes are atomic (temp file + rename): a
crash never leaves half a sheet, which the old system's unlocked rewrites did.

Sheets come from anyone, so reading is bounded (:class:`TableLimits`): the file's bytes, its
non-blank rows, and for ``.xlsx`` the zip's declared *and* actual uncompressed size, checked
before openpyxl opens it; an XML part with a DTD (``<!DOCTYPE``/``<!ENTITY``, the way to a
"billion laughs" entity bomb) is refused. Every cell, read or written, is cleaned of control
and invisible characters (``normalize.strip_invisible``), so a NUL or a bidi override never
enters the database and a stored one never breaks an export.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.names import strip_invisible
from faceatlas.store.files import atomic_write

if TYPE_CHECKING:
    from faceatlas.settings import Settings

PEOPLE_COLUMNS = ("name", "last_name", "occupation")
SUFFIXES = (".xlsx", ".csv")
# A cell starting with one of these is run as a formula by Excel (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_MAX_COLUMNS = 100  # cells past this column are never read (a sheet may claim 16,384)
_MAX_ZIP_MEMBERS = 10_000
_CHUNK = 1 << 20
# A DTD is how XML entity bombs start; an xlsx part never needs one (any encoding expat reads).
_DTD_MARKERS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY")
                     for enc in ("utf-8", "utf-16-le", "utf-16-be"))  # fmt: skip
_OVERLAP = max(len(m) for m in _DTD_MARKERS)


class TableError(FaceAtlasError):
    """A spreadsheet that cannot be read or written: missing, unreadable, or wrong columns."""

    code = "bad_table"


class TableLimitError(TableError):
    """A spreadsheet over a configured limit (bytes, rows, uncompressed size)."""

    code = "table_too_large"


class UnsafeTableError(TableError):
    """A spreadsheet built to attack its reader: a zip bomb or XML entities."""

    code = "unsafe_table"


@dataclass(frozen=True)
class TableLimits:
    """How much of a sheet is read; see the ``sheet_*`` settings for what each means."""

    max_bytes: int = 50_000_000
    max_rows: int = 200_000
    max_uncompressed_bytes: int = 250_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> TableLimits:
        return cls(settings.sheet_max_bytes, settings.sheet_max_rows,
                   settings.sheet_max_uncompressed_bytes)  # fmt: skip


@dataclass(frozen=True)
class SheetRow:
    """One row of ``data.xlsx``: first name(s), last name, and (optional) occupation.

    ``row`` is its row number in the sheet (the header is row 1), for messages; 0 when the
    row was not read from a sheet. It takes no part in comparisons.
    """

    name: str
    last_name: str = ""
    occupation: str = ""
    references: str = ""  # optional column: photo URLs or paths (see faceatlas.curation.references)
    row: int = field(default=0, compare=False)

    @property
    def full_name(self) -> str:
        """``name`` + `` `` + ``last_name``; either may be empty."""
        return " ".join(f"{self.name} {self.last_name}".split())


# -- reading
def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number typed into a cell: 1984, not 1984.0
    return " ".join(strip_invisible(str(value)).split())


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TableError(f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                         "use .xlsx or .csv")  # fmt: skip
    return suffix


def _check_size(path: Path, limits: TableLimits) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TableError(f"{path.name} cannot be read ({exc.strerror})") from None
    if size > limits.max_bytes:
        raise TableLimitError(f"{path.name} is {size:,} bytes; sheets are limited to "
                              f"{limits.max_bytes:,} (FACEATLAS_SHEET_MAX_BYTES)")  # fmt: skip


def check_xlsx_archive(path: Path, limits: TableLimits) -> None:
    """Refuse a zip bomb or an XML part with a DTD before any XML parser sees the file.

    The declared sizes are summed first (cheap); then every part is inflated once, counting
    the bytes actually produced (declared sizes can lie) and looking for ``<!DOCTYPE`` /
    ``<!ENTITY``; reading stops at the limit.
    """
    limit = limits.max_uncompressed_bytes
    over = (f"{path.name} unpacks to more than {limit:,} bytes "
            "(FACEATLAS_SHEET_MAX_UNCOMPRESSED_BYTES): refused as a zip bomb")  # fmt: skip
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > _MAX_ZIP_MEMBERS:
                raise UnsafeTableError(f"{path.name} holds {len(members):,} files; an xlsx "
                                       f"holds a few (at most {_MAX_ZIP_MEMBERS:,} accepted)")
            if sum(m.file_size for m in members) > limit:
                raise UnsafeTableError(over)
            total = 0
            for member in members:
                tail = b""
                with archive.open(member) as fh:
                    while chunk := fh.read(_CHUNK):
                        total += len(chunk)
                        if total > limit:
                            raise UnsafeTableError(over)
                        window = tail + chunk
                        if any(marker in window for marker in _DTD_MARKERS):
                            raise UnsafeTableError(
                                f"{path.name}: part {member.filename} declares a DTD or XML "
                                "entities (the way to a 'billion laughs' bomb); refused"
                            )
                        tail = window[-_OVERLAP:]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            OSError, ValueError) as exc:  # fmt: skip
        raise TableError(f"{path.name} is not a readable .xlsx file ({exc})") from None


def _xlsx_rows(path: Path, limits: TableLimits) -> Iterator[tuple[int, list[str]]]:
    from xml.etree.ElementTree import ParseError

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    check_xlsx_archive(path, limits)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError,
            ParseError) as exc:  # fmt: skip
        raise TableError(f"{path.name} is not a readable .xlsx file ({exc})") from None
    try:
        sheet = book.active
        if sheet is None:
            raise TableError(f"{path.name} has no worksheet")
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()  # the sheet's own claim of its size is not trusted
        # no max_col: openpyxl would pad every row to it; rows come as long as they are
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_text(v) for v in row[:_MAX_COLUMNS]]
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, ParseError) as exc:
        raise TableError(f"{path.name} could not be read ({exc})") from None
    finally:
        book.close()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise TableError(f"{path.name} is not UTF-8 text; save it as CSV UTF-8") from None
    except OSError as exc:
        raise TableError(f"{path.name} cannot be read ({exc.strerror})") from None
    try:
        # European Excel writes ';'; decide from the header line only
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for number, row in enumerate(reader, start=1):
            yield number, [_unescape(_text(v)) for v in row[:_MAX_COLUMNS]]
    except csv.Error as exc:
        raise TableError(f"{path.name} is not valid CSV ({exc})") from None


def _rows(path: Path | str, limits: TableLimits | None = None) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their row numbers (header = row 1), within ``limits``."""
    path = Path(path)
    limits = limits or TableLimits()
    suffix = _suffix(path)
    if not path.is_file():
        raise TableError(f"no such file: {path}")
    _check_size(path, limits)
    out: list[tuple[int, list[str]]] = []
    rows = _xlsx_rows(path, limits) if suffix == ".xlsx" else _csv_rows(path)
    try:
        for number, row in rows:
            if not any(row):
                continue
            if len(out) > limits.max_rows:  # the header is not a row of data
                raise TableLimitError(f"{path.name} has more than {limits.max_rows:,} rows "
                                      "(FACEATLAS_SHEET_MAX_ROWS); split it")  # fmt: skip
            out.append((number, row))
    finally:
        rows.close()  # closes the workbook now, also when a limit stopped the reading
    if not out:
        raise TableError(f"{path.name} is empty: expected a header row")
    return out


def _columns(path: Path | str, header: list[str], wanted: Sequence[str],
             required: Sequence[str]) -> dict[str, int]:  # fmt: skip
    """Column index per wanted name (case-insensitive, spaces = underscores)."""
    seen = {h.strip().casefold().replace(" ", "_"): i for i, h in reversed(list(enumerate(header)))}
    missing = [c for c in required if c not in seen]
    if missing:
        raise TableError(
            f"{Path(path).name} has no column {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(h) for h in header if h) or 'no header'}"
        )
    return {c: seen[c] for c in wanted if c in seen}


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def read_occupations(path: Path | str, limits: TableLimits | None = None) -> list[str]:
    """The ``Occupation`` column: blanks skipped, duplicates (any case) dropped, order kept."""
    (_, header), *body = _rows(path, limits)
    col = _columns(path, header, ["occupation"], ["occupation"])["occupation"]
    seen: set[str] = set()
    out: list[str] = []
    for _, row in body:
        occupation = _cell(row, col)
        if occupation and occupation.casefold() not in seen:
            seen.add(occupation.casefold())
            out.append(occupation)
    return out


def read_people(path: Path | str, limits: TableLimits | None = None) -> list[SheetRow]:
    """Rows of ``name``, ``last_name`` and optional ``occupation`` and ``references``; blank
    rows skipped."""
    (_, header), *body = _rows(path, limits)
    cols = _columns(path, header, (*PEOPLE_COLUMNS, "references"), ["name", "last_name"])
    out = []
    for number, row in body:
        person = SheetRow(*(_cell(row, cols.get(c)) for c in PEOPLE_COLUMNS),
                           references=_cell(row, cols.get("references")), row=number)
        if person.full_name:
            out.append(person)
    return out


# -- writing
def _escape(value: str) -> str:
    """Quote a leading formula character with ``'`` (CSV only; xlsx cells are typed)."""
    return "'" + value if value.startswith(_FORMULA_START) or value.startswith("'") else value


def _unescape(value: str) -> str:
    if value.startswith("'") and (value[1:].startswith(_FORMULA_START) or
                                  value[1:].startswith("'")):  # fmt: skip
        return value[1:]
    return value


def _xlsx_bytes(columns: Sequence[str], rows: Iterator[list[str]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(list(columns))
    for r, row in enumerate(rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            cell.data_type = "s"  # text, even for "=...": a name is never a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _csv_bytes(columns: Sequence[str], rows: Iterator[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([_escape(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8


def write_table(path: Path | str, columns: Sequence[str],
                rows: Iterable[Mapping[str, object]]) -> None:  # fmt: skip
    """Write ``columns`` of each mapping (missing keys blank) as ``.xlsx`` or ``.csv``."""
    path = Path(path)
    suffix = _suffix(path)
    cells = ([_text(row.get(c)) for c in columns] for row in rows)
    data = _xlsx_bytes(columns, cells) if suffix == ".xlsx" else _csv_bytes(columns, cells)
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise TableError(f"cannot write {path} ({exc.strerror or exc})") from None


def write_people(path: Path | str, rows: Iterable[SheetRow]) -> None:
    """``name``, ``last_name``, ``occupation``, atomically; what :func:`read_people` reads."""
    write_table(path, PEOPLE_COLUMNS, (asdict(row) for row in rows))
