"""Spreadsheets in the old system's shapes: ``occupation.xlsx`` and ``data.xlsx`` (or CSV).

Headers are matched case-insensitively and cells are read as text, so a sheet saved by
Excel, LibreOffice or a script reads the same. Writes are atomic (temp file + rename): a
crash never leaves half a sheet, which the old system's unlocked rewrites did.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from faceatlas.errors import FaceAtlasError
from faceatlas.store.files import atomic_write

PEOPLE_COLUMNS = ("name", "last_name", "occupation")
SUFFIXES = (".xlsx", ".csv")
# A cell starting with one of these is run as a formula by Excel (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TableError(FaceAtlasError):
    """A spreadsheet that cannot be read or written: missing, unreadable, or wrong columns."""

    code = "bad_table"


@dataclass(frozen=True)
class PersonRow:
    """One row of ``data.xlsx``: first name(s), last name, and (optional) occupation."""

    name: str
    last_name: str = ""
    occupation: str = ""
    references: str = ""  # optional column: photo URLs or paths (see faceatlas.references)

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
    return " ".join(str(value).split())


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TableError(f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                         "use .xlsx or .csv")  # fmt: skip
    return suffix


def _xlsx_rows(path: Path) -> list[list[str]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise TableError(f"{path.name} is not a readable .xlsx file ({exc})") from None
    try:
        sheet = book.active
        if sheet is None:
            raise TableError(f"{path.name} has no worksheet")
        return [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise TableError(f"{path.name} could not be read ({exc})") from None
    finally:
        book.close()


def _csv_rows(path: Path) -> list[list[str]]:
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
        return [
            [_unescape(_text(v)) for v in row]
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        ]
    except csv.Error as exc:
        raise TableError(f"{path.name} is not valid CSV ({exc})") from None


def _rows(path: Path | str) -> list[list[str]]:
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise TableError(f"no such file: {path}")
    rows = _xlsx_rows(path) if suffix == ".xlsx" else _csv_rows(path)
    rows = [row for row in rows if any(row)]
    if not rows:
        raise TableError(f"{path.name} is empty: expected a header row")
    return rows


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


def read_occupations(path: Path | str) -> list[str]:
    """The ``Occupation`` column: blanks skipped, duplicates (any case) dropped, order kept."""
    header, *body = _rows(path)
    col = _columns(path, header, ["occupation"], ["occupation"])["occupation"]
    seen: set[str] = set()
    out: list[str] = []
    for row in body:
        occupation = _cell(row, col)
        if occupation and occupation.casefold() not in seen:
            seen.add(occupation.casefold())
            out.append(occupation)
    return out


def read_people(path: Path | str) -> list[PersonRow]:
    """Rows of ``name``, ``last_name`` and optional ``occupation`` and ``references``; blank
    rows skipped."""
    header, *body = _rows(path)
    cols = _columns(path, header, (*PEOPLE_COLUMNS, "references"), ["name", "last_name"])
    out = []
    for row in body:
        person = PersonRow(*(_cell(row, cols.get(c)) for c in PEOPLE_COLUMNS),
                           references=_cell(row, cols.get("references")))
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


def write_people(path: Path | str, rows: Iterable[PersonRow]) -> None:
    """``name``, ``last_name``, ``occupation``, atomically; what :func:`read_people` reads."""
    write_table(path, PEOPLE_COLUMNS, (asdict(row) for row in rows))
