"""The shipped demo files: simweb loads examples/simweb-people.json, every image path exists
in the shared faces folder, and the served search answers with them; demo.sh uses it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from faceatlas.devtools.simweb import load_people
from tests.simweb_fixtures import simweb_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_shipped_people_json_loads_and_serves(faces_root: Path) -> None:
    path = EXAMPLES / "simweb-people.json"
    json.loads(path.read_text(encoding="utf-8"))  # valid JSON, as the README promises
    people = load_people(path)
    assert {p["name"] for p in people} >= {"Novak Đoković", "Ана Ивановић"}
    plain = [x for p in people for x in p["images"] if not x.startswith("fault:")]
    missing = [x for x in plain if not (faces_root / x).is_file()]
    assert plain and not missing, missing
    with simweb_server(path, faces_root) as web:
        img = httpx.get(f"{web.url}/img/{plain[0]}", timeout=10)
        assert img.status_code == 200 and img.content == (faces_root / plain[0]).read_bytes()
    demo = (EXAMPLES / "demo.sh").read_text(encoding="utf-8")
    assert "examples/simweb-people.json" in demo
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    assert "examples/demo.sh" in readme and "examples/simweb-people.json" in readme
