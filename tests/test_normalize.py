"""Name normalisation: the seed lost "Đ" and all of Cyrillic; every case here is a name it broke."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faceatlas.domain.errors import FaceAtlasError
from faceatlas.domain.names import (
    InvalidNameError,
    clean_label,
    collection_key,
    file_stem,
    name_key,
    split_name,
    to_ascii,
)
from faceatlas.store.files import Layout


@pytest.mark.parametrize(
    ("original", "ascii_"),
    [
        ("Novak Đoković", "Novak Djokovic"),
        ("Новак Ђоковић", "Novak Djokovic"),
        ("Šaban Šaulić", "Saban Saulic"),
        ("Шабан Шаулић", "Saban Saulic"),
        ("Nenad Ćirić", "Nenad Ciric"),
        ("Ненад Ћирић", "Nenad Ciric"),
        ("Đorđe Balašević", "Djordje Balasevic"),
        ("Ђорђе Балашевић", "Djordje Balasevic"),
        ("Žarko Paspalj", "Zarko Paspalj"),
        ("Жарко Паспаљ", "Zarko Paspalj"),
        ("Љиљана Њежић", "Ljiljana Njezic"),
        ("Џеј Рамадановски", "Dzej Ramadanovski"),
        ("Čeda Jovanović", "Ceda Jovanovic"),
        ("Јована Јанковић", "Jovana Jankovic"),
        ("Ǉubo Ǌegoš", "Ljubo Njegos"),  # Latin digraph code points, not shouted as "LJ"
        ("Jürgen Klopp", "Jurgen Klopp"),
        ("Lech Wałęsa", "Lech Walesa"),
        ("Søren Kierkegaard", "Soren Kierkegaard"),
        ("Franz Beckenbauer ß", "Franz Beckenbauer ss"),
        ("Σωκράτης Παπασταθόπουλος", "Sokratis Papastathopoulos"),
    ],
)
def test_to_ascii_transliterates_every_letter(original: str, ascii_: str) -> None:
    assert to_ascii(original) == ascii_


def test_cyrillic_and_latin_spellings_are_one_person() -> None:
    assert name_key("Новак Ђоковић") == name_key("Novak Đoković") == "novak djokovic"
    assert name_key("NOVAK  đoković") == name_key("NOVAK ĐOKOVIĆ") == "novak djokovic"
    assert file_stem("Новак Ђоковић") == file_stem("Novak Đoković") == "Novak_Djokovic"


@pytest.mark.parametrize(
    ("original", "ascii_"),
    [
        ("Sinéad O\u2019Connor", "Sinead O'Connor"),  # typographic apostrophe
        ("Sinéad O\u00b4Connor", "Sinead O'Connor"),  # acute accent typed as apostrophe
        ("Sinéad O`Connor", "Sinead O'Connor"),
        ("Jean\u2013Paul Belmondo", "Jean-Paul Belmondo"),  # en dash
        ("Jean\u2011Paul Belmondo", "Jean-Paul Belmondo"),  # non-breaking hyphen
    ],
)
def test_apostrophes_and_hyphens_are_folded(original: str, ascii_: str) -> None:
    assert to_ascii(original) == ascii_


def test_apostrophe_and_hyphen_do_not_change_identity() -> None:
    assert name_key("Sinéad O'Connor") == name_key("Sinead O\u2019Connor") == "sinead oconnor"
    assert name_key("Jean-Paul Belmondo") == name_key("Jean Paul Belmondo")
    assert file_stem("Sinéad O'Connor") == "Sinead_O_Connor"
    assert file_stem("Jean-Paul Belmondo") == "Jean-Paul_Belmondo"


@pytest.mark.parametrize(
    "hostile",
    ["../x", "a/b", "..\\..\\etc", "/etc/passwd", "C:\\Windows\\x", "x\x00y", "name\nevil",
     "~root", ".hidden", "-rf", "...", "a" * 300, "CON", "nul", "Lpt1"],
)  # fmt: skip
def test_file_stem_is_always_one_safe_component(hostile: str, tmp_path: Path) -> None:
    stem = file_stem(hostile)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,99}", stem), stem
    assert stem.upper() not in {"CON", "NUL", "LPT1"}
    # the storage layout, which refuses unsafe components, accepts every stem
    layout = Layout(tmp_path)
    assert layout.raw_dir("serbia", stem).parent == tmp_path.resolve() / "raw" / "serbia"


def test_path_characters_are_data_not_paths() -> None:
    assert to_ascii("../x") == "x"
    assert to_ascii("a/b") == "a b"
    assert file_stem("a/b") == "a_b"
    assert "\n" not in to_ascii("name\nevil") and "\x00" not in to_ascii("x\x00y")


def test_long_names_are_cut_without_trailing_separator() -> None:
    stem = file_stem("A" * 99 + " B")
    assert stem == "A" * 99
    assert len(file_stem("x" * 500)) == 100


def test_scripts_without_a_table_keep_an_identity() -> None:
    # the seed turned these into "" and merged everyone without Latin letters
    assert name_key("李小龍") and name_key("李小龍") != name_key("成龍")
    assert file_stem("李小龍") != file_stem("成龍")
    assert re.fullmatch(r"n_[0-9a-f]{12}", file_stem("李小龍"))
    assert file_stem("李小龍") == file_stem(" 李小龍 ")  # stable


@pytest.mark.parametrize("empty", ["", "   ", "...", "/", "\t\n", "''", "-"])
def test_nothing_to_identify(empty: str) -> None:
    assert name_key(empty) == ""
    assert file_stem(empty) == "unnamed"
    assert collection_key(empty) == "default"


def test_split_name_keeps_original_spelling() -> None:
    assert split_name("Novak Đoković") == ("Novak", "Đoković")
    assert split_name("Ludwig van Beethoven") == ("Ludwig van", "Beethoven")
    assert split_name("  Madonna ") == ("Madonna", "")
    assert split_name("") == ("", "")


def test_collection_key() -> None:
    assert collection_key("Serbia") == collection_key(" serbia ") == "serbia"
    assert collection_key("Bosnia and Herzegovina") == "bosnia_and_herzegovina"
    assert collection_key("Србија") == "srbija"
    assert collection_key("../../etc") == "etc"


def test_clean_label() -> None:
    assert clean_label("  Tennis \n player ", "occupation") == "Tennis player"
    assert clean_label("Srbija\x00", "country") == "Srbija"
    for bad in ["", "  ", "\n", "..."]:
        with pytest.raises(InvalidNameError, match="country"):
            clean_label(bad, "country")
    with pytest.raises(InvalidNameError, match="must be text"):
        clean_label(None, "country")  # type: ignore[arg-type]
    assert issubclass(InvalidNameError, FaceAtlasError)


def test_one_name_twice_in_a_batch_is_named_by_its_first_spelling(tmp_path: Path) -> None:
    """A sheet may list one person twice, spelled two ways (``Новак Ђоковић`` and ``Novak
    Djokovic`` are one key): the person is created once and every stored spelling — name,
    ASCII name, folder — is the first's, not a mix of both."""
    from faceatlas.settings import Settings
    from faceatlas.store.db import session_scope
    from faceatlas.store.models import Person
    from faceatlas.store.people import get_or_create_collection, prepare_person, upsert_people

    spellings = ["Новак Ђоковић", "NOVAK DJOKOVIC"]
    batch = [prepare_person(n, occupations=[o]) for n, o in zip(spellings, ["Athlete", "Actor"],
                                                                strict=True)]
    assert batch[0].key == batch[1].key
    settings = Settings(home=tmp_path)
    with session_scope(settings) as s:
        coll = get_or_create_collection(s, "serbia")
        (a, created_a), (b, created_b) = upsert_people(s, coll, batch)
        assert a == b and (created_a, created_b) == (True, False)
    with session_scope(settings) as s:
        person = s.get(Person, a)
        assert person is not None
        assert (person.name, person.ascii_name) == ("Новак Ђоковић", to_ascii("Новак Ђоковић"))
        assert person.folder == file_stem("Новак Ђоковић", to_ascii("Новак Ђоковић"))
        assert person.occupations == ["Athlete", "Actor"]
