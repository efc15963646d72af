"""`faceatlas run` with no key at all: Wikidata names, Commons photos, over loopback, faults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from faceatlas.curation.references import list_references
from faceatlas.devtools.simweb import SimWeb
from faceatlas.devtools.simwiki import replica
from faceatlas.settings import Settings
from faceatlas.sources.commons import PORTRAIT, portrait_image_id, portrait_path
from faceatlas.store.db import session_scope
from faceatlas.store.models import Person
from tests.simweb_fixtures import simweb_server

# the portrait person, one with a co-star in the category, one with a group photo that
# "depicts" them (someone else is in it), one with no P18 at all
FOLDERS = ("person_01", "person_02", "person_04", "person_09")


def commons_rel(web: SimWeb, url: str) -> str:
    """The test photo behind a Commons URL (original or thumbnail)."""
    parts = url.split("/")
    name = unquote(parts[-2] if "/thumb/" in url else parts[-1])
    return web.wiki.files[name]["rel"]


@pytest.mark.slow
def test_keyless_run_with_faults(faces_root: Path, tmp_path: Path) -> None:
    data = replica(faces_root)
    data["people"] = [p for p in data["people"] if p["identity"] in FOLDERS]
    identity = {p["name"]: p["identity"] for p in data["people"]}
    with simweb_server(data, faces_root) as web:
        web.wiki.timeout_sleep = 1.5
        web.wiki.faults["sparql"] += ["429"]
        web.wiki.faults["wikidata"] += ["malformed", "timeout"]
        web.wiki.faults["commons"] += ["503", "maxlag"]
        home = tmp_path / "home"
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENAI_API_KEY", "RAPIDAPI_KEY", "OPENAI_BASE_URL")}
        env.update({
            "FACEATLAS_HOME": str(home), "COLUMNS": "200",
            "FACEATLAS_WIKIDATA_API_URL": f"{web.url}/wikidata/w/api.php",
            "FACEATLAS_WIKIDATA_SPARQL_URL": f"{web.url}/wikidata/sparql",
            "FACEATLAS_COMMONS_API_URL": f"{web.url}/commons/w/api.php",
            "FACEATLAS_ALLOW_PRIVATE_NETWORKS": "1", "FACEATLAS_WIKIMEDIA_RETRIES": "3",
            "FACEATLAS_WIKIMEDIA_TIMEOUT": "1", "FACEATLAS_WIKIMEDIA_CONTACT": "ci@example.org",
            "FACEATLAS_WORKERS": "1",
        })  # fmt: skip

        def faceatlas(*args: str) -> str:
            proc = subprocess.run([sys.executable, "-m", "faceatlas.cli", *args], env=env,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        out = faceatlas("run", "--country", "Serbia", "--occupation", "Actor")
        assert "(from wikidata): 4 new" in out and "4 curated, 0 failed" in out, out
        assert not any(web.wiki.faults.values())  # every fault was met and survived
        assert all("ci@example.org" in ua for ua in web.wiki.user_agents)

        settings = Settings(home=home)
        with session_scope(settings) as s:
            people = {p.name: p for p in s.query(Person)}
            assert set(people) == set(identity)
            for name, person in people.items():
                assert person.state == "curated" and person.wikidata_qid, name
                accepted = [i for i in person.images if i.reason == "accepted"]
                assert accepted, name
                # none of them another person's (the co-star, the group photo)
                assert all(commons_rel(web, i.url).startswith(f"people/{identity[name]}/")
                           for i in accepted), name
                assert all(i.provider == "commons" and i.licence and i.author
                           for i in person.images)
                portrait = [i for i in person.images if i.detail == PORTRAIT]
                if identity[name] == "person_09":
                    assert not portrait  # no P18: the category alone
                    continue
                assert len(portrait) == 1 and portrait[0].rank == 0
                assert portrait[0].reason == "accepted"
                assert portrait_image_id(settings, person.id) == portrait[0].id
                assert portrait_path(settings, person.id) == home.resolve() / portrait[0].path
                # the portrait is the person's trusted reference, measured with the candidates
                refs = list_references(settings, person.id)
                assert [(r.source, r.state) for r in refs] == [("wikidata", "ready")], refs
            assert any(i.reason == "not_this_person" for i in
                       people["Jovana Petrović"].images)  # the co-star was caught

        shown = faceatlas("show", "Jovana Petrovic")
        assert "Јована Петровић" in shown and "CC BY" in shown
        asked = web.count("/wikidata/")
        faceatlas("names", "generate", "--country", "Serbia", "--occupation", "Actor")
        assert web.count("/wikidata/") == asked  # answered from the cache
