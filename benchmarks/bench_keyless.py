"""Keyless collection on the simweb replica: galleries, purity, requests, cache.

    FACEATLAS_TESTDATA=../shared/testdata python benchmarks/bench_keyless.py [--people 10]

Wikidata names + Commons photos for the replica's Serbian "actors" (simwiki.replica: real
test faces, a P18 portrait for all but one, co-stars in some categories, a group photo that
"depicts" one of them), in-process over loopback. Prints per person: the portrait's decision,
accepted faces, and how many of them are someone else's (the test photos know whose face
each is); then Wikimedia requests of a first and of a cached second names run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceatlas.devtools.simweb import SimWeb  # noqa: E402
from faceatlas.devtools.simwiki import replica  # noqa: E402
from faceatlas.devtools.testdata import faces_dir  # noqa: E402
from faceatlas.domain.errors import ConfigError  # noqa: E402
from faceatlas.jobs.collect import collect_people, pending_people  # noqa: E402
from faceatlas.names.wikidata import generate_names_wikidata  # noqa: E402
from faceatlas.settings import Settings  # noqa: E402
from faceatlas.sources.chain import image_search_from_settings  # noqa: E402
from faceatlas.sources.commons import PORTRAIT_QUERY  # noqa: E402
from faceatlas.store.db import session_scope  # noqa: E402
from faceatlas.store.models import Person  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10, help="replica people (1-10)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        photos = faces_dir()
    except ConfigError as exc:
        sys.exit(str(exc))
    data = replica(photos)
    data["people"] = data["people"][: max(1, args.people)]
    identity = {p["name"]: p["identity"] for p in data["people"]}
    with SimWeb(data, photos) as web, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp), workers=args.workers, allow_private_networks=True,
            wikidata_api_url=f"{web.url}/wikidata/w/api.php",
            wikidata_sparql_url=f"{web.url}/wikidata/sparql",
            commons_api_url=f"{web.url}/commons/w/api.php", wikimedia_min_interval=0.0,
            wikimedia_contact="bench@example.org", rapidapi_key=None, image_sources=[],
        )  # fmt: skip
        t0 = time.perf_counter()
        report = generate_names_wikidata(settings, "Serbia", ["Actor"])
        names_s = time.perf_counter() - t0
        first_requests = len(web.requests)
        generate_names_wikidata(settings, "Serbia", ["Actor"])
        cached_requests = len(web.requests) - first_requests
        t0 = time.perf_counter()
        with image_search_from_settings(settings) as provider:
            summary = collect_people(settings, pending_people(settings), provider)
        collect_s = time.perf_counter() - t0

        def rel(url: str) -> str:
            parts = url.split("/")
            return web.wiki.files[unquote(parts[-2] if "/thumb/" in url else parts[-1])]["rel"]

        print(f"{'person':<20} {'P18':<10} {'accepted':>8} {'others':>6} {'candidates':>10}")
        with_p18 = galleries = foreign = accepted_total = 0
        with session_scope(settings) as s:
            for person in s.query(Person).order_by(Person.id):
                accepted = [i for i in person.images if i.reason == "accepted"]
                others = [i for i in accepted
                          if not rel(i.url).startswith(f"people/{identity[person.name]}/")]
                portrait = next((i for i in person.images
                                 if (i.query or "").startswith(PORTRAIT_QUERY)), None)
                with_p18 += portrait is not None
                galleries += portrait is not None and bool(accepted) and not others
                foreign += len(others)
                accepted_total += len(accepted)
                print(f"{person.name:<20} {portrait.reason if portrait else '-':<10} "
                      f"{len(accepted):>8} {len(others):>6} {len(person.images):>10}")
    print(f"\npeople {len(report.people)}, with a P18 portrait {with_p18}, of those with a "
          f"gallery of their own (no one else's face) {galleries} "
          f"({100 * galleries / max(with_p18, 1):.0f}%)")
    print(f"accepted photos {accepted_total}, another person's {foreign} "
          f"(purity {100 * (1 - foreign / max(accepted_total, 1)):.1f}%)")
    print(f"curated {len(summary.curated)}, failed {len(summary.failed)}; names {names_s:.2f}s, "
          f"collect {collect_s:.1f}s")
    print(f"Wikimedia requests for names: first run {first_requests}, cached re-run "
          f"{cached_requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
