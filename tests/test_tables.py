"""Spreadsheets in the seed's shapes: occupation.xlsx, data.xlsx (with or without occupation)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.names.tables import (
    SheetRow,
    TableError,
    read_occupations,
    read_people,
    write_people,
    write_table,
)

ROWS = [
    SheetRow("Novak", "Đoković", "Tennis player"),
    SheetRow("Шабан", "Шаулић", "Singer"),
    SheetRow("Sinéad", "O'Connor", ""),
    SheetRow("Madonna", "", "Singer, Actor"),
    SheetRow('=HYPERLINK("http://x")', "-1+1", "@cmd"),  # formulas stay text
]


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_people_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    write_people(path, ROWS)
    assert read_people(path) == ROWS
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # atomic: no leftovers


def test_xlsx_formula_like_names_are_stored_as_text(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    write_people(path, ROWS)
    sheet = openpyxl.load_workbook(path).active
    assert sheet.cell(row=6, column=1).data_type == "s"
    assert sheet.cell(row=6, column=1).value == ROWS[4].name


def test_csv_formula_like_cells_are_quoted_for_excel(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_people(path, ROWS)
    text = path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "'-1+1" in text and "'@cmd" in text
    assert text.splitlines()[0] == "name,last_name,occupation"


def test_seed_data_xlsx_without_occupation(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "data.xlsx", [["Name", "Last_Name"], ["Novak", "Đoković"],
                                          [None, None], ["  Nikola ", "Jokić"]])  # fmt: skip
    assert read_people(path) == [SheetRow("Novak", "Đoković"), SheetRow("Nikola", "Jokić")]


def test_columns_in_any_order_and_case(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("OCCUPATION;Last Name;NAME\nSinger;Šaulić;Šaban\n", encoding="utf-8")
    assert read_people(path) == [SheetRow("Šaban", "Šaulić", "Singer")]


def test_numbers_in_cells_are_text(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "data.xlsx", [["name", "last_name"], ["Agent", 47], [1984.0, "X"]])
    assert read_people(path) == [SheetRow("Agent", "47"), SheetRow("1984", "X")]


def test_full_name() -> None:
    assert SheetRow("Novak", "Đoković").full_name == "Novak Đoković"
    assert SheetRow("Madonna", "").full_name == "Madonna"
    assert SheetRow("", "Pelé").full_name == "Pelé"


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_missing_column_is_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    write_table(path, ["name", "surname"], [{"name": "Novak", "surname": "Đoković"}])
    with pytest.raises(TableError, match="'last_name'") as info:
        read_people(path)
    assert "surname" in str(info.value)  # says what it found
    with pytest.raises(TableError, match="'occupation'"):
        read_occupations(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no such file"):
        read_people(tmp_path / "missing.xlsx")
    fake = tmp_path / "fake.xlsx"
    fake.write_text("name,last_name\n")
    with pytest.raises(TableError, match=r"not a readable \.xlsx"):
        read_people(fake)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name,last_name\nJürgen,Klopp\n".encode("latin-1"))
    with pytest.raises(TableError, match="UTF-8"):
        read_people(latin1)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TableError, match="empty"):
        read_people(empty)
    with pytest.raises(TableError, match="unsupported"):
        read_people(tmp_path / "data.xls")
    with pytest.raises(TableError, match="unsupported"):
        write_people(tmp_path / "data.txt", ROWS)
    assert issubclass(TableError, FaceAtlasError)


def test_occupations_sheet(tmp_path: Path) -> None:
    rows: list[list[object]] = [["Occupation"], ["Singer"], [None], ["Actor"], ["singer"],
                                ["  Tennis   player "], ["Actor"]]  # fmt: skip
    path = _xlsx(tmp_path / "occupation.xlsx", rows)
    assert read_occupations(path) == ["Singer", "Actor", "Tennis player"]
    csv_path = tmp_path / "occupation.csv"
    csv_path.write_text("occupation\nSinger\n\nActor\n", encoding="utf-8")
    assert read_occupations(csv_path) == ["Singer", "Actor"]


def test_write_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    write_people(path, ROWS)
    write_people(path, ROWS[:1])
    assert read_people(path) == ROWS[:1]
