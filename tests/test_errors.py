"""One error tree: every exception class in faceatlas is a FaceAtlasError, drawn in the
docstring of ``domain/errors.py`` under its own base class; one AmbiguousError."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import faceatlas
from faceatlas.api.errors import status_of
from faceatlas.cli.base import cli_hint
from faceatlas.domain import errors
from faceatlas.domain.errors import AMBIGUOUS_WORD, AmbiguousError, FaceAtlasError

SRC = Path(faceatlas.__file__).parent
#: a node of the drawing: four spaces, the branch glyphs (four columns a level), the name
_NODE = re.compile(r"^    (?P<branch>[│├└─ ]*)(?P<name>\w+)")


def drawn_tree() -> dict[str, str | None]:
    """Class name → the name its line hangs from in the docstring's drawing."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        m = _NODE.match(line)
        if not m or (m["branch"] and "── " not in m["branch"]):
            continue  # prose, or a description running on to the next line
        depth = len(m["branch"]) // 4
        assert depth <= len(path), f"a node hangs from nothing: {line!r}"
        del path[depth:]
        assert m["name"] not in parents, f"{m['name']} is drawn twice"
        parents[m["name"]] = path[-1] if path else None
        path.append(m["name"])
    return parents


def _modules() -> list[str]:
    names = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts or path.name == "__main__.py":
            continue
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in src (module level; see the test below for others)."""
    found: list[type[BaseException]] = []
    for name in _modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and \
                    obj.__module__ == name:
                found.append(obj)
    return found


def test_the_drawing_is_a_tree_rooted_at_faceatlas_error() -> None:
    tree = drawn_tree()
    assert tree["FaceAtlasError"] is None
    assert [n for n, parent in tree.items() if parent is None] == ["FaceAtlasError"]
    assert len(tree) >= 20  # the drawing was read, not skipped


def test_every_exception_class_is_in_the_tree_under_its_base() -> None:
    tree = drawn_tree()
    classes = exception_classes()
    names = [cls.__name__ for cls in classes]
    assert len(names) == len(set(names)), "two exception classes share a name"
    for cls in classes:
        assert issubclass(cls, FaceAtlasError), f"{cls.__module__}.{cls.__name__}"
        assert cls.__name__ in tree, f"{cls.__name__} is not drawn in domain/errors.py"
        if cls is not FaceAtlasError:
            assert tree[cls.__name__] == cls.__bases__[0].__name__, cls.__name__
    assert set(tree) == set(names), "the drawing names a class src does not define"


def test_no_exception_class_hides_inside_a_function_or_class() -> None:
    nested = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for outer in ast.walk(tree):
            if not isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for node in ast.walk(outer):
                if node is not outer and isinstance(node, ast.ClassDef) and any(
                        isinstance(b, ast.Name) and re.search(r"Error$|Exception$", b.id)
                        for b in node.bases):
                    nested.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not nested


def test_one_ambiguous_error_two_meanings_kept() -> None:
    from faceatlas.names import wikidata
    from faceatlas.store import people

    assert wikidata.AmbiguousError is people.AmbiguousError is AmbiguousError
    of_person = AmbiguousError("'Ann' is in several collections; say which")
    of_word = AmbiguousError("occupation 'x' is ambiguous on Wikidata", code=AMBIGUOUS_WORD)
    assert (of_person.code, status_of(of_person), cli_hint(of_person)) == (
        "not_found", 404, "add --collection")
    assert (of_word.code, status_of(of_word), cli_hint(of_word)) == ("ambiguous", 400, None)


@pytest.mark.parametrize(("cls", "code", "status"), [
    ("faceatlas.names.tables.TableError", "bad_table", 400),
    ("faceatlas.names.tables.TableLimitError", "table_too_large", 400),
    ("faceatlas.names.tables.UnsafeTableError", "unsafe_table", 400),
    ("faceatlas.gallery.archive.ArchiveError", "bad_archive", 400),
    ("faceatlas.store.queries.QueryError", "bad_query", 400),
    ("faceatlas.curation.references.ReferencePhotoError", "bad_reference", 400),
    ("faceatlas.domain.names.InvalidNameError", "invalid_name", 400),
    ("faceatlas.video.reader.VideoError", "video_decode_error", 422),
])
def test_codes_and_statuses_unchanged(cls: str, code: str, status: int) -> None:
    module, name = cls.rsplit(".", 1)
    exc = getattr(importlib.import_module(module), name)("x")
    assert (exc.code, status_of(exc)) == (code, status)
