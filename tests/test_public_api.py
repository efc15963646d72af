"""The package's public names are what docs/architecture.md lists (as httpx checks its
exports), and each of them resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import faceatlas

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _documented() -> list[str]:
    text = DOCS.read_text("utf-8")
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    bullets = "\n".join(line for line in section.splitlines()
                        if line.startswith(("- ", "  ")))
    # every `name` before the colon of a bullet: the names, not the words explaining them
    names: list[str] = []
    for item in re.split(r"\n- ", "\n" + bullets):
        head = item.split(":", 1)[0]
        names += re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", head)
    return names


def test_all_is_what_the_docs_list() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented)), "a name is listed twice"
    assert sorted(faceatlas.__all__) == sorted(documented)


def test_every_public_name_resolves_and_is_its_own() -> None:
    for name in faceatlas.__all__:
        value = getattr(faceatlas, name)
        assert getattr(value, "__name__", name) == name
        assert value.__module__.startswith("faceatlas.")
    assert set(faceatlas.__all__) <= set(dir(faceatlas))


def test_import_stays_light() -> None:
    # the verbs load on first use: the CLI's start-up does not pay for the database layer
    code = "import sys, faceatlas; print('sqlalchemy' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
