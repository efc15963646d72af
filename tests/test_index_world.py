"""The published index at scale (issue 21): usearch segments beside exact search, incremental
crash-safe publication, removals honoured at once, a rebuild from the database, and two
`serve` processes mapping one index that answer the same after a third process promotes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.gallery.index import DIM, ExactIndex, IndexParams, IndexStore, Neighbour
from faceatlas.settings import Settings
from faceatlas.store.db import session_scope
from faceatlas.store.files import Layout
from faceatlas.store.models import Face, Person
from tests.gallery_fixtures import Gallery, copy_home, gallery  # noqa: F401

PER = 10


def clustered(n: int, seed: int = 0, sigma: float = 0.05, faces_seed: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Face-like vectors: identities as centres on the unit sphere (``seed``), PER faces each
    around them (``faces_seed``: other faces of the same people) with SFace's measured
    per-dimension spread (benchmarks/bench_world.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // PER, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = np.repeat(np.arange(n // PER), PER)
    if faces_seed is not None:
        rng = np.random.default_rng(faces_seed)
    x = centres[who] + rng.standard_normal((n, DIM)).astype(np.float32) * sigma
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), who


def ann_store(root: Path, min_faces: int = 500) -> IndexStore:
    return IndexStore(root, IndexParams(ann_min_faces=min_faces))


def test_ann_agrees_with_exact_and_small_collections_stay_exact(tmp_path: Path) -> None:
    x, who = clustered(3000)
    fids, pids = np.arange(3000, dtype=np.int64) + 7, who.astype(np.int64)
    store = ann_store(tmp_path)
    store.update("big", lambda ix: ix.add(fids, pids, x), engine=("sface", "h"))
    store.update("small", lambda ix: ix.add(fids[:300], pids[:300], x[:300]),
                 engine=("sface", "h"))
    assert [s["search"] for s in store.describe("big")["segments"]] == ["ann"]
    assert [s["search"] for s in store.describe("small")["segments"]] == ["exact"]
    exact = ExactIndex()
    exact.add(fids, pids, x)
    q, qwho = clustered(3000, faces_seed=1)  # other faces of the same identities
    q, qwho = q[::15], qwho[::15]
    ann_res, exact_res = store.get("big").search(q, 10), exact.search(q, 10)
    assert all(isinstance(nb, Neighbour) for nb in ann_res[0])
    same_top1 = np.mean([a[0].face_id == e[0].face_id
                         for a, e in zip(ann_res, exact_res, strict=True)])
    ann_recall = np.mean([a[0].person_id == w for a, w in zip(ann_res, qwho, strict=True)])
    exact_recall = np.mean([e[0].person_id == w for e, w in zip(exact_res, qwho, strict=True)])
    assert exact_recall > 0.95  # the data is face-like: identities are well separated
    assert same_top1 >= 0.98 and ann_recall >= 0.995 * exact_recall
    # re-ranked exactly: the distance of a face answered by both is the same number
    for a, e in zip(ann_res, exact_res, strict=True):
        if a[0].face_id == e[0].face_id:
            assert a[0].distance == pytest.approx(e[0].distance, abs=1e-9)
    # the small collection answers exactly ExactIndex's answer
    small = ExactIndex()
    small.add(fids[:300], pids[:300], x[:300])
    assert store.get("small").search(q, 5) == small.search(q, 5)


def test_removal_is_honoured_at_once_by_another_reader(tmp_path: Path) -> None:
    x, who = clustered(2000)
    fids, pids = np.arange(2000, dtype=np.int64), who.astype(np.int64)
    writer, reader = ann_store(tmp_path), ann_store(tmp_path)  # two processes' stores
    writer.update("c", lambda ix: ix.add(fids, pids, x))
    victim = fids[pids == 42]
    assert {nb.person_id for nb in reader.get("c").search(x[victim[0]], 5)[0]} == {42}
    assert writer.remove_person("c", 42) == PER
    writer.update("c", lambda ix: ix.remove_faces(fids[pids == 43][:3]))
    index = reader.get("c")  # the next request: one stat, a new manifest, tombstones loaded
    for v in x[np.isin(pids, [42, 43])]:
        found = index.search(v, 50)[0]
        assert 42 not in {nb.person_id for nb in found}
        assert not set(fids[pids == 43][:3]) & {nb.face_id for nb in found}
        assert len(found) == 50
    assert len(index) == 2000 - PER - 3 and 42 not in index.person_ids()


def test_adding_a_person_publishes_small_files_only(tmp_path: Path) -> None:
    x, who = clustered(2000)
    store = ann_store(tmp_path)
    store.update("c", lambda ix: ix.add(np.arange(2000), who, x))
    folder = store.folder("c")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    new, _ = clustered(40, seed=5)
    store.update("c", lambda ix: ix.add(np.arange(5000, 5040), np.full(40, 999), new))
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert all(after[name] == sig for name, sig in before.items())  # nothing rewritten
    added = [folder / n for n in set(after) - set(before)]
    assert added and sum(p.stat().st_size for p in added) < 40 * DIM * 4 + 4096
    assert store.get("c").search(new[0], 1)[0][0].person_id == 999


# --------------------------------------------------------------------------- SIGKILL

_WRITER = """
import sys, numpy as np
from faceatlas.gallery.index import IndexParams, IndexStore
root, ack = sys.argv[1], sys.argv[2]
store = IndexStore(root, IndexParams(ann_min_faces=300))
rng = np.random.default_rng(0)
for step in range(10_000):
    if step % 3 == 2:
        store.remove_person("c", step - 2)
    else:
        v = rng.standard_normal((40, 128)).astype(np.float32)
        store.update("c", lambda ix: ix.add(np.arange(40) + 40 * step, np.full(40, step), v))
    with open(ack, "a") as f:
        f.write(f"{step}\\n")
"""


def _people_after(step: int) -> set[int]:
    """Who the writer's index holds once ``step`` is published (-1: nothing yet)."""
    people: set[int] = set()
    for s in range(step + 1):
        if s % 3 == 2:
            people.discard(s - 2)
        else:
            people.add(s)
    return people


@pytest.mark.slow
def test_index_update_killed_at_any_point_leaves_a_consistent_index(tmp_path: Path) -> None:
    """SIGKILL a process publishing changes (adds, removals, merges with graph builds) at
    random moments: the index always loads, holds exactly the last acknowledged change or the
    one after it, answers searches, and the next writer carries on from it."""
    rng = random.Random(21)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for run in range(6):
        root, ack = tmp_path / f"index{run}", tmp_path / f"ack{run}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(ack)], env=env)
        time.sleep(rng.uniform(1.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = [int(s) for s in ack.read_text().split()] if ack.exists() else []
        last = done[-1] if done else -1
        store = ann_store(root, 300)
        index = store.get("c")
        held = index.person_ids()
        assert held in (_people_after(last), _people_after(last + 1)), (last, sorted(held))
        assert len(index) == 40 * len(held)
        if held:
            (found,) = index.search(np.ones(DIM, dtype=np.float32), 5)
            assert {nb.person_id for nb in found} <= held
        # the next writer carries on; leftovers of the killed one are cleaned up
        store.update("c", lambda ix: ix.add(np.arange(40) + 10**6, np.full(40, -1),
                                            np.ones((40, DIM), np.float32)))
        again = ann_store(root, 300).get("c")
        assert again.person_ids() == held | {-1}
        named = {n for s in json.loads(store.path("c").read_text())["segments"]
                 for n in (f"{s['name']}.ids.npy",)}
        assert named <= {p.name for p in store.folder("c").iterdir()}
        assert not [p for p in store.folder("c").iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- rebuild


def _db_gallery(settings: Settings) -> set[int]:
    with session_scope(settings) as s:
        return set(s.scalars(select(Face.id).join(Person, Person.id == Face.person_id).where(
            Person.state == "promoted", Face.state == "accepted",
            Face.gallery_path.is_not(None))))


def test_rebuild_from_the_database_is_one_command(
    gallery: Gallery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    home = copy_home(gallery.settings, tmp_path / "home")
    store = IndexStore(Layout(home.home).index_dir)
    want = _db_gallery(home)
    store.update(home.default_collection, lambda ix: ix.remove_faces(sorted(want)[:5]))
    store.update(home.default_collection,
                 lambda ix: ix.add([10**9], [10**9], np.ones((1, DIM), np.float32)))
    assert set(store.get(home.default_collection).face_ids) != want  # drifted from the DB
    monkeypatch.setenv("FACEATLAS_HOME", str(home.home))
    out = CliRunner().invoke(app, ["index", "rebuild", "--collection",
                                   home.default_collection])
    assert out.exit_code == 0, out.output
    assert f"{len(want)} faces" in out.output
    assert set(IndexStore(Layout(home.home).index_dir).get(home.default_collection)
               .face_ids) == want
    help_text = CliRunner().invoke(app, ["index", "--help"]).output
    assert "rebuild" in help_text and "compact" in help_text


# --------------------------------------------------------------------------- shared serving


def _spawn_serve(home: Settings, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    from tests.ui_fixtures import TOKEN, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
    env.update(FACEATLAS_HOME=str(home.home), FACEATLAS_API_TOKENS=TOKEN,
               FACEATLAS_MIN_FACES_TO_PROMOTE="1", OPENBLAS_NUM_THREADS="1",
               FACEATLAS_DEFAULT_COLLECTION=home.default_collection)
    proc = subprocess.Popen([sys.executable, "-m", "faceatlas", "serve", "--port", str(port),
                             "--engines", "1", *extra], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("serve did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.3)


@pytest.mark.slow
def test_two_serve_processes_share_one_index_and_see_a_promotion(
    gallery: Gallery, tmp_path: Path  # noqa: F811
) -> None:
    import httpx

    from faceatlas.gallery.promote import unpromote_person
    from tests.ui_fixtures import TOKEN

    home = copy_home(gallery.settings, tmp_path / "home")
    identity, photo = gallery.queries[0]
    name = Gallery.person_name(identity)
    with session_scope(home) as s:
        person_id = s.scalar(select(Person.id).where(Person.name == name))
    assert person_id is not None
    unpromote_person(home, person_id)
    servers = [_spawn_serve(home, tmp_path / "a.log"),
               _spawn_serve(home, tmp_path / "b.log", "--workers", "2")]
    try:
        for (proc, url), log in zip(servers, ("a.log", "b.log"), strict=True):
            _wait_up(proc, url, tmp_path / log)

        def answers() -> list[list[str | None]]:
            out = []
            for _, url in servers:
                r = httpx.post(f"{url}/api/v1/recognize", files={"image": photo.read_bytes()},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
                assert r.status_code == 200, r.text
                out.append([f.get("person") for f in r.json()["faces"]])
            return out

        before = answers()
        assert all(name not in a for a in before)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
        env.update(FACEATLAS_HOME=str(home.home), FACEATLAS_MIN_FACES_TO_PROMOTE="1")
        done = subprocess.run([sys.executable, "-m", "faceatlas", "promote", "--person", name],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        after = answers()
        assert after[0] == after[1] and name in after[0]
        # both map the same published files: no private copy was written for either
        manifest = json.loads(IndexStore(Layout(home.home).index_dir)
                              .path(home.default_collection).read_text())
        assert manifest["faces"] == len(_db_gallery(home))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)


# --------------------------------------------------------------------------- across collections


def test_recognise_across_collections(gallery: Gallery, tmp_path: Path  # noqa: F811
                                      ) -> None:
    import httpx

    from faceatlas.api import create_app
    from faceatlas.store.people import get_or_create_collection
    from tests.gallery_fixtures import running

    bound, admin = "bound-token-0123456789", "admin-token-0123456789"
    home = copy_home(gallery.settings, tmp_path / "home",
                     api_tokens=json.dumps({bound: "test", admin: None}))
    identity, photo = gallery.queries[0]
    name = Gallery.person_name(identity)
    store = IndexStore(Layout(home.home).index_dir)
    with session_scope(home) as s:  # the person moves to another collection, index rows too
        person = s.scalars(select(Person).where(Person.name == name)).one()
        person.collection_id = get_or_create_collection(s, "other").id
        pid = person.id
    fids, vecs = store.get("test").rows_of_person(pid)
    tag = (store.get("test").engine, store.get("test").model_hash)
    store.update("other", lambda ix: ix.add(fids, np.full(len(fids), pid), vecs),
                 engine=tag)  # type: ignore[arg-type]
    store.remove_person("test", pid)

    with running(create_app(home, engines=1)) as url:
        def ask(token: str, collection: str) -> httpx.Response:
            return httpx.post(f"{url}/api/v1/recognize", data={"collection": collection},
                              files={"image": photo.read_bytes()}, timeout=120,
                              headers={"Authorization": f"Bearer {token}"})

        def names(r: httpx.Response) -> set[str | None]:
            assert r.status_code == 200, r.text
            return {f["person"] for f in r.json()["faces"]}

        assert name not in names(ask(admin, "test"))
        both = ask(admin, "test,other")
        assert name in names(both) and both.json()["collection"] == "test,other"
        assert name in names(ask(admin, "*"))
        assert name in names(ask(admin, "other"))
        assert name not in names(ask(bound, "*"))  # * is what the token may see: test only
        assert ask(bound, "test,other").status_code == 404


def _same_top1(found: list[list[Neighbour]], exact: list[list[Neighbour]]) -> float:
    """Share of queries answered the same first face as exact search, distance included."""
    return float(np.mean([a[0] == e[0] for a, e in zip(found, exact, strict=True)]))


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (0 when never touched)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                inside = line.rstrip().endswith(str(path))
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.slow
def test_graph_segments_are_projected_and_reranked_without_mapping_the_vectors(
        tmp_path: Path) -> None:
    x, who = clustered(3000)
    fids, pids = np.arange(3000, dtype=np.int64), who.astype(np.int64)
    store = ann_store(tmp_path)
    store.update("c", lambda ix: ix.add(fids, pids, x))
    manifest = json.loads(store.path("c").read_text())
    (seg,) = manifest["segments"]
    assert manifest["format"] == 3 and seg["ann"] and seg["pca"]
    assert (store.folder("c") / f"{seg['name']}.pca.npz").exists()
    reader = ann_store(tmp_path)  # a server process: maps the files, reads rows with pread
    q, _ = clustered(3000, faces_seed=1)
    exact = ExactIndex()
    exact.add(fids, pids, x)
    found = reader.get("c").search(q[::30], 10)
    assert _same_top1(found, exact.search(q[::30], 10)) >= 0.98
    # the float32 file stays untouched by this process: its pages are the page cache's
    assert _mapped_rss_kb(store.folder("c") / f"{seg['name']}.f32.npy") == 0


@pytest.mark.slow
def test_an_index_published_before_projections_is_still_read(tmp_path: Path) -> None:
    """Format 2 (main before the 10M work): an f16 graph of the whole vectors, no "pca"."""
    x, who = clustered(3000)
    fids, pids = np.arange(3000, dtype=np.int64), who.astype(np.int64)
    old = IndexStore(tmp_path, IndexParams(ann_min_faces=500, dtype="f16", reduce=0))
    old.update("c", lambda ix: ix.add(fids[:2500], pids[:2500], x[:2500]))
    manifest = json.loads(old.path("c").read_text())
    manifest["format"] = 2
    for seg in manifest["segments"]:
        del seg["pca"]
    old.path("c").write_text(json.dumps(manifest))
    store = ann_store(tmp_path)
    exact = ExactIndex()
    exact.add(fids[:2500], pids[:2500], x[:2500])
    q, _ = clustered(3000, faces_seed=1)
    assert _same_top1(store.get("c").search(q[::30], 10), exact.search(q[::30], 10)) >= 0.98
    store.update("c", lambda ix: ix.add(fids[2500:], pids[2500:], x[2500:]))  # converted on
    assert json.loads(store.path("c").read_text())["format"] == 3              # the next change
    exact.add(fids[2500:], pids[2500:], x[2500:])
    assert _same_top1(ann_store(tmp_path).get("c").search(q[::30], 10),
                      exact.search(q[::30], 10)) >= 0.98
