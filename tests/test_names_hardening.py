"""Issue 11, names and inputs: who is one person, what a name may hold, what a sheet may cost.

Every test here failed before its fix: different people merged by the identity key, control
and bidi characters stored and breaking exports, one bad row aborting an import (PostgreSQL),
spreadsheets without limits, an uncapped LLM answer, names jobs sharing one row.
"""

from __future__ import annotations

import csv
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy import create_engine, select, text

from faceatlas.devtools.simweb import SimWeb
from faceatlas.domain.names import InvalidNameError, name_key, strip_invisible
from faceatlas.domain.similar import SimilarNames, within_one_edit
from faceatlas.names.llm import NameGenerator
from faceatlas.names.service import export_people, generate_names, import_people
from faceatlas.names.tables import (
    SheetRow,
    TableError,
    TableLimitError,
    UnsafeTableError,
    read_people,
    write_people,
)
from faceatlas.settings import Settings
from faceatlas.store import db
from faceatlas.store.db import session_scope
from faceatlas.store.models import Job, Person
from faceatlas.store.people import find_person
from tests.services import pg_url  # noqa: F401  (a fixture)
from tests.simweb_fixtures import simweb_server

RLO, LRI, PDI, ZWSP, ZWNJ, BOM = "\u202e", "\u2066", "\u2069", "\u200b", "\u200c", "\ufeff"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield Settings(home=tmp_path / "home", database_url=None)
    db.reset_caches()


def _people(settings: Settings) -> dict[str, Person]:
    with session_scope(settings) as session:
        return {p.name: p for p in session.scalars(select(Person))}


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["name", "last_name", "occupation"], *rows])
    return path


# -- finding 4: the identity key keeps every script and word boundaries
@pytest.mark.parametrize(
    ("a", "b"),
    [("Ali علي", "Ali عالي"), ("Jo Ann Smith", "Joann Smith"), ("李小龍", "李小龙"),
     ("Ana Marija", "Anamarija"), ("राम", "रम")],
)  # fmt: skip
def test_names_that_differ_in_letters_or_words_are_two_people(a: str, b: str) -> None:
    assert name_key(a) and name_key(b) and name_key(a) != name_key(b)


@pytest.mark.parametrize(
    "spelling",
    ["Novak Djokovic", "NOVAK ĐOKOVIĆ", "Новак Ђоковић", "novak  đoković", f"Novak{ZWSP} Đoković",
     f"Novak {RLO}Đoković", "Novak\tĐoković"],
)  # fmt: skip
def test_spellings_of_one_name_stay_one_person(spelling: str) -> None:
    assert name_key(spelling) == name_key("Novak Đoković") == "novak djokovic"


def test_optional_marks_do_not_make_another_person() -> None:
    assert name_key("مُحَمَّد") == name_key("محمد")  # Arabic vowel points are optional
    assert name_key(f"می{ZWNJ}خواهم") == name_key("میخواهم")
    assert name_key("Jean-Paul Belmondo") == name_key("Jean Paul Belmondo")


def test_similar_names_are_suspects_not_the_same() -> None:
    known = SimilarNames([(name_key(n), n) for n in ["Jo Ann Smith", "Ali علي", "John Doe"]])
    assert known.similar(name_key("Joann Smith")) == ["Jo Ann Smith"]
    assert known.similar(name_key("Ali عالي")) == ["Ali علي"]
    assert known.similar(name_key("Jonh Doe")) == ["John Doe"]  # two letters swapped
    assert known.similar(name_key("Mary Major")) == []
    assert known.similar(name_key("John Doe")) == []  # the same person is not a suspect
    assert within_one_edit("abc", "abd") and within_one_edit("abc", "abxc")
    assert not within_one_edit("abc", "cab") and not within_one_edit("abc", "abc")
    assert known.similar(name_key("Player 08")) == [] and "Player 07" not in known
    known.add(name_key("Player 07"), "Player 07")
    assert known.similar(name_key("Player 08")) == []  # another number, not a typo


def test_import_keeps_different_people_apart_and_warns(tmp_path: Path,
                                                       settings: Settings) -> None:  # fmt: skip
    sheet = _csv(tmp_path / "data.csv", [
        ["Ali", "علي", "Actor"], ["Ali", "عالي", "Actor"], ["Jo Ann", "Smith", "Singer"],
        ["Joann", "Smith", "Singer"], ["NOVAK", "ĐOKOVIĆ", "Athlete"],
    ])  # fmt: skip
    import_people(settings, tmp_path / "data.csv", "Serbia")
    report = import_people(settings, _csv(tmp_path / "more.csv", [["Novak", "Djokovic", ""]]),
                           "Serbia")  # fmt: skip
    assert (report.created, report.existing) == (0, 1)  # the same person, another spelling
    first = import_people(Settings(home=tmp_path / "h2", database_url=None), sheet, "Serbia")
    db.reset_caches()
    assert first.created == 5
    assert first.warnings == [
        "row 3: 'Ali عالي' looks like 'Ali علي': stored as a separate person; if they are one, "
        "delete one of them",
        "row 5: 'Joann Smith' looks like 'Jo Ann Smith': stored as a separate person; if they "
        "are one, delete one of them",
    ]
    people = _people(settings)
    assert {"Ali علي", "Ali عالي", "Jo Ann Smith", "Joann Smith"} <= set(people)
    assert len({p.folder for p in people.values()}) == len(people)  # each their own folder


def test_migration_rekeys_and_cleans_existing_rows(tmp_path: Path) -> None:
    """A database made by the old code (revision 0001, old keys) still finds everyone."""
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0001")
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("insert into collections (id, key, name, created_at) "
                       "values (1, 'serbia', 'Serbia', '2026-01-01')"))  # fmt: skip
        for pid, key, name in [(1, "novakdjokovic", "Novak Đoković"), (2, "ali", "Ali علي"),
                               (3, "evil", f"ev{RLO}il\x00")]:  # fmt: skip
            c.execute(text(
                "insert into people (id, collection_id, key, name, ascii_name, first_name, "
                "last_name, folder, occupations, country, source, state, attempts, created_at,"
                " updated_at) values (:id, 1, :key, :name, '', '', '', :folder, '[]', 'Serbia',"
                " 'sheet', 'queued', 0, '2026-01-01', '2026-01-01')"),
                {"id": pid, "key": key, "name": name, "folder": f"f{pid}"})  # fmt: skip
    engine.dispose()
    db.migrate(url)
    settings = Settings(home=tmp_path, database_url=url)
    try:
        with session_scope(settings) as s:
            assert find_person(s, "NOVAK DJOKOVIC").id == 1
            assert find_person(s, "Ali علي").id == 2
            evil = s.get(Person, 3)
            assert evil is not None and evil.name == "evil" and evil.key == "evil"
            assert {p.key for p in s.scalars(select(Person))} == {"novak djokovic", "ali علي",
                                                                  "evil"}  # fmt: skip
    finally:
        db.reset_caches()


# -- finding 5 and 8: control, bidi and zero-width characters; lengths
def test_strip_invisible() -> None:
    assert strip_invisible(f"ev{RLO}il") == "evil"
    assert strip_invisible(f"{LRI}Ana{PDI}{ZWSP}{BOM}") == "Ana"
    assert strip_invisible("a\x00b\x1fc\x85d\x7f") == "a b c d "
    assert strip_invisible(f"می{ZWNJ}خواهم") == f"می{ZWNJ}خواهم"  # Persian needs it
    assert strip_invisible(f"Ana{ZWNJ}Maria") == "AnaMaria"  # Latin does not
    assert strip_invisible("ok\ud800") == "ok"  # a lone surrogate is not text
    assert strip_invisible("Đoković") == "Đoković"


def test_bad_rows_are_reported_and_the_rest_imported(tmp_path: Path,
                                                     settings: Settings) -> None:  # fmt: skip
    sheet = _csv(tmp_path / "data.csv", [
        ["Ana", "Nul\x00lić", "Actor"],
        ["Ev", f"{RLO}lim", "Actor"],
        ["Long", "x" * 5000, "Actor"],
        ["Zero", f"Wi{ZWSP}dth", "Actor"],
        ["Occ", "Upation", "y" * 150],
        ["...", "", ""],
        ["Marko", "Marković", "Singer"],
    ])  # fmt: skip
    report = import_people(settings, sheet, "Serbia")
    assert report.created == 4
    assert [(s.row, s.why) for s in report.skipped] == [
        (4, "name is 5005 characters long; at most 200"),
        (6, "occupation is 150 characters long; at most 100"),
        (7, "no letters or digits in the name"),
    ]
    assert sorted(_people(settings)) == ["Ana Nul lić", "Ev lim", "Marko Marković",
                                         "Zero Width"]  # fmt: skip
    with pytest.raises(InvalidNameError, match=r"country .* 180 characters long; at most 100"):
        import_people(settings, sheet, "C" * 180)


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_export_survives_bad_data_already_stored(settings: Settings, tmp_path: Path,
                                                 suffix: str) -> None:  # fmt: skip
    import_people(settings, _csv(tmp_path / "ok.csv", [["Ana", "Anić", "Actor"]]), "Serbia")
    with session_scope(settings) as s:  # as an old version stored it, bypassing every check
        s.execute(text("update people set name = :n, last_name = :l, country = :c"),
                  {"n": f"Ana\x00 {RLO}Anić\x0b", "l": f"An\x01ić{ZWSP}", "c": "Ser\x1bbia"})
    out = tmp_path / f"out{suffix}"
    assert export_people(settings, out) == 1
    if suffix == ".csv":
        raw = out.read_bytes()
        assert b"\x00" not in raw and RLO.encode() not in raw and b"\x01" not in raw
    rows = read_people(out)
    assert [(r.name, r.last_name) for r in rows] == [("Ana", "An ić")]


def test_people_listing_shows_stored_names_safely(settings: Settings, tmp_path: Path) -> None:
    from faceatlas.store.queries import list_people

    import_people(settings, _csv(tmp_path / "ok.csv", [["Ana", "Anić", ""]]), "Serbia")
    with session_scope(settings) as s:
        s.execute(text("update people set name = :n"), {"n": f"Ana {RLO}ćinA\x00"})
    assert [p.name for p in list_people(settings)] == ["Ana ćinA"]


def test_bad_rows_on_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """PostgreSQL refuses NUL and over-long values, aborting the whole transaction: checked
    before SQL, one bad row is one skipped row there too; the export works."""
    settings = Settings(home=tmp_path / "home", database_url=pg_url)
    sheet = _csv(tmp_path / "data.csv", [
        ["Ana", "Nul\x00lić", "Actor"], ["Long", "x" * 5000, ""], ["Ev", f"{RLO}lim", ""],
        ["Country", "Long", "z" * 101], ["Marko", "Marković", "Singer"],
    ])  # fmt: skip
    report = import_people(settings, sheet, "Serbia")
    assert report.created == 3 and [s.row for s in report.skipped] == [3, 5]
    again = import_people(settings, sheet, "serbia")
    assert (again.created, again.existing) == (0, 3)
    assert sorted(_people(settings)) == ["Ana Nul lić", "Ev lim", "Marko Marković"]
    out = tmp_path / "out.xlsx"
    assert export_people(settings, out) == 3


# -- finding 6: spreadsheet limits
def test_file_bytes_and_row_limits(tmp_path: Path, settings: Settings) -> None:
    sheet = tmp_path / "data.csv"
    write_people(sheet, [SheetRow(f"Name{i}", "Last") for i in range(20)])
    small = settings.model_copy(update={"sheet_max_bytes": 100})
    with pytest.raises(TableLimitError, match="FACEATLAS_SHEET_MAX_BYTES"):
        import_people(small, sheet, "Serbia")
    few = settings.model_copy(update={"sheet_max_rows": 19})
    with pytest.raises(TableLimitError, match="more than 19 rows"):
        import_people(few, sheet, "Serbia")
    assert not settings.home.exists()  # nothing written
    assert import_people(settings.model_copy(update={"sheet_max_rows": 20}), sheet,
                         "Serbia").created == 20  # fmt: skip


def _rewrite_xlsx(src: Path, dest: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, replace.pop(item.filename, zin.read(item.filename)))
        for name, data in replace.items():
            zout.writestr(name, data)
    return dest


def test_xlsx_zip_bomb_is_refused_before_parsing(tmp_path: Path, settings: Settings) -> None:
    sheet = tmp_path / "ok.xlsx"
    write_people(sheet, [SheetRow("Ana", "Anić")])
    padding = b"0" * 30_000_000  # 30 MB that deflate to ~30 KB, in a part nobody reads
    bomb = _rewrite_xlsx(sheet, tmp_path / "bomb.xlsx", {"xl/media/padding.bin": padding})
    assert bomb.stat().st_size < 200_000
    limited = settings.model_copy(update={"sheet_max_uncompressed_bytes": 10_000_000})
    started = time.monotonic()
    with pytest.raises(UnsafeTableError, match="zip bomb"):
        import_people(limited, bomb, "Serbia")
    assert time.monotonic() - started < 5
    assert import_people(settings, bomb, "Serbia").created == 1  # under the default limit


def test_xlsx_entities_are_refused(tmp_path: Path, settings: Settings) -> None:
    sheet = tmp_path / "ok.xlsx"
    write_people(sheet, [SheetRow("Ana", "Anić")])
    laughs = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else
                                                       b"&lol;") * 10) for i in range(1, 10))
              + b']>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
              b'count="1" uniqueCount="1"><si><t>&lol9;</t></si></sst>')  # fmt: skip
    with zipfile.ZipFile(sheet) as z:
        part = next((n for n in z.namelist() if "sharedStrings" in n), "xl/sharedStrings.xml")
    bomb = _rewrite_xlsx(sheet, tmp_path / "laughs.xlsx", {part: laughs})
    for target in (bomb, _rewrite_xlsx(sheet, tmp_path / "laughs16.xlsx",
                                       {part: laughs.decode().encode("utf-16")})):  # fmt: skip
        with pytest.raises(UnsafeTableError, match="DTD or XML entities"):
            import_people(settings, target, "Serbia")
    assert issubclass(UnsafeTableError, TableError)


# -- finding 7: the LLM is capped
BIG = [{"name": f"Singer {i:05d} Bigović", "country": "Bigland", "occupations": ["Singer"],
        "real": True, "images": []} for i in range(10_000)] + [
       {"name": f"Actor {i:05d} Bigović", "country": "Bigland", "occupations": ["Actor"],
        "real": True, "images": []} for i in range(10_000)]  # fmt: skip


@pytest.fixture(scope="module")
def big_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimWeb]:
    with simweb_server(BIG, tmp_path_factory.mktemp("photos")) as web:
        yield web


def _generator(web: SimWeb) -> NameGenerator:
    client = openai.OpenAI(api_key="sk-test", base_url=web.url + "/v1", max_retries=0)
    return NameGenerator(client, model="gpt-4.1")


def test_an_llm_answer_of_10000_names_is_capped(big_web: SimWeb, settings: Settings) -> None:
    capped = settings.model_copy(update={"llm_max_names_per_answer": 50,
                                         "llm_max_names_per_run": 80})  # fmt: skip
    report = generate_names(capped, "Bigland", ["Singer", "Actor", "Poet"], _generator(big_web))
    assert report.created == 80 and len(_people(settings)) == 80
    assert report.people[0] == "Singer 00000 Bigović"  # the first (most famous) are kept
    assert report.warnings == [
        "Singer: the LLM listed 10000 names; kept the first 50 "
        "(FACEATLAS_LLM_MAX_NAMES_PER_ANSWER)",
        "Actor: the LLM listed 10000 names; kept the first 50 "
        "(FACEATLAS_LLM_MAX_NAMES_PER_ANSWER)",
        "Actor: kept 30 of 50 names: the run's limit is 80 (FACEATLAS_LLM_MAX_NAMES_PER_RUN)",
        "Poet: not asked: the run's limit of 80 names was reached "
        "(FACEATLAS_LLM_MAX_NAMES_PER_RUN)",
    ]
    assert Settings().llm_max_names_per_answer == 200  # the default is a cap too


def test_llm_names_with_control_characters_are_cleaned(web_names: SimWeb,
                                                       settings: Settings) -> None:  # fmt: skip
    report = generate_names(settings, "Serbia", ["Singer"], _generator(web_names))
    assert sorted(report.people) == ["Ana Smith", "Evil Name", "Joann Smith"]
    ((too_long, why),) = report.rejections
    assert too_long.startswith("Too Longggg") and too_long.endswith("…") and len(too_long) == 200
    assert why == "name is 300 characters long; at most 200"
    stored = _people(settings)
    assert set(stored) == {"Ana Smith", "Evil Name", "Joann Smith"}


@pytest.fixture(scope="module")
def web_names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimWeb]:
    people = [{"name": n, "country": "Serbia", "occupations": ["Singer"], "real": True,
               "images": []}
              for n in ["Ana\x00 Smith", f"Evil {RLO}Name{ZWSP}", "Joann Smith",
                        "Too Long" + "g" * 292]]  # fmt: skip
    with simweb_server(people, tmp_path_factory.mktemp("photos")) as web:
        yield web


# -- finding 8: names jobs
def test_each_names_request_gets_its_own_job(big_web: SimWeb, settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from faceatlas.jobs.background import start_names

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", big_web.url + "/v1")
    small = settings.model_copy(update={"llm_max_names_per_answer": 2,
                                        "llm_max_names_per_run": 2})  # fmt: skip
    started = [start_names(small, country, ["Singer"])
               for country in ("Bigland", "Nowhere", "Bigland")]
    ids = [s.job_id for s in started]
    assert len(set(ids)) == 3, ids  # before: one shared row for every run
    deadline = time.monotonic() + 60
    while True:
        with session_scope(small) as s:
            jobs = {j.id: (j.state, j.message) for j in s.scalars(select(Job))}
        if all(jobs[i][0] in ("done", "failed") for i in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [jobs[i] for i in ids] == [("done", "Bigland: Singer"), ("done", "Nowhere: Singer"),
                                      ("done", "Bigland: Singer")]  # fmt: skip


def test_answer_json_is_what_simweb_sent(big_web: SimWeb) -> None:
    """The 10,000-name answer really arrives whole (the cap is ours, not the transport's)."""
    names = _generator(big_web).generate("Bigland", "Singer")
    assert len(names) == 10_000
    assert names[-1].name == "Singer 09999 Bigović"
