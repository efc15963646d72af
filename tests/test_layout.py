"""The house keeps its shape: the layers of docs/architecture.md, no import circles, a small
package root, no private name taken across modules, and the old argument order of the public
verbs still answered. (``lint-imports`` checks the layers in CI too; this keeps the quick loop
honest without it.)"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import grimp
import pytest

import faceatlas
from faceatlas.settings import Settings, settings_first

SRC = Path(faceatlas.__file__).parent
#: bottom to top: a layer imports only the layers below it (pyproject's import-linter contract)
LAYERS = ["domain", "settings", "store", "web", "names", "sources", "faces", "curation",
          "gallery", "video", "jobs", ("api", "devtools"), "cli"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("faceatlas", cache_dir=None)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for i, layer in enumerate(LAYERS):
        if parts[1] in (layer if isinstance(layer, tuple) else (layer,)):
            return i
    return None


def test_no_arrow_runs_back_up(graph: grimp.ImportGraph) -> None:
    upward = []
    for module in graph.modules:
        low = _layer(module)
        for imported in graph.find_modules_directly_imported_by(module):
            high = _layer(imported)
            if low is not None and high is not None and high > low:
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_no_circles(graph: grimp.ImportGraph) -> None:
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert circles == []


def test_the_package_root_holds_few_modules() -> None:
    root = sorted(p.name for p in SRC.glob("*.py"))
    assert len(root) <= 8, root


def test_no_private_name_is_imported_across_modules() -> None:
    taken = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("faceatlas"):
                taken += [f"{path.relative_to(SRC)}: {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert taken == []


def test_import_linter_contract_is_the_same_as_these_layers() -> None:
    text = (SRC.parents[1] / "pyproject.toml").read_text()
    for layer in LAYERS:
        names = layer if isinstance(layer, tuple) else (layer,)
        assert " | ".join(f"faceatlas.{n}" for n in names) in text


def test_the_old_argument_order_still_works_with_a_warning() -> None:
    @settings_first
    def verb(settings: Settings, person_id: int, *, flag: bool = False) -> tuple[int, bool]:
        assert isinstance(settings, Settings)
        return person_id, flag

    s = Settings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert verb(s, 7, flag=True) == (7, True)  # the documented order: no warning
    with pytest.warns(DeprecationWarning, match="pass settings first"):
        assert verb(7, s) == (7, False)


def test_importing_the_package_stays_cheap() -> None:
    code = "import sys, faceatlas; print(len([m for m in sys.modules if 'sqlalchemy' in m]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "0"


def test_parameter_objects_take_their_defaults_from_settings(tmp_path: Path) -> None:
    from faceatlas.curation.decide import CurateParams
    from faceatlas.faces.analyse import AnalyseParams
    from faceatlas.faces.engines import EngineConfig

    s = Settings(home=tmp_path)
    assert AnalyseParams.from_settings(s) == AnalyseParams()
    assert EngineConfig.from_settings(s) == EngineConfig()
    assert CurateParams.from_settings(s, engine="dlib") == CurateParams()
