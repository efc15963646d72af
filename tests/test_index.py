from __future__ import annotations

import itertools
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from faceatlas.domain.errors import StorageError
from faceatlas.gallery.index import (
    ExactIndex,
    IndexStore,
    Neighbour,
    VectorIndex,
    best_person,
    confidence,
)

DIM = 128


def _random_gallery(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = (rng.standard_normal((n, DIM)) * 0.09).astype(np.float32)  # dlib-like scale
    face_ids = np.arange(1000, 1000 + n, dtype=np.int64)
    person_ids = face_ids // 10
    return face_ids, person_ids, vecs


def _brute_force(vecs: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((vecs.astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1))
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


def test_exact_index_satisfies_protocol() -> None:
    index: VectorIndex = ExactIndex()
    assert len(index) == 0


def test_search_matches_brute_force() -> None:
    fids, pids, vecs = _random_gallery(5000)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    rng = np.random.default_rng(1)
    # Half the queries are noisy copies of gallery faces, so close matches are exercised.
    queries = np.concatenate(
        [
            vecs[rng.integers(0, 5000, 25)]
            + rng.standard_normal((25, DIM)).astype(np.float32) * 0.01,
            (rng.standard_normal((25, DIM)) * 0.09).astype(np.float32),
        ]
    )
    results = index.search(queries, k=10)
    assert len(results) == 50
    for q, got in zip(queries, results, strict=True):
        rows, dists = _brute_force(vecs, q, 10)
        assert [nb.face_id for nb in got] == fids[rows].tolist()
        assert [nb.person_id for nb in got] == pids[rows].tolist()
        np.testing.assert_allclose([nb.distance for nb in got], dists, rtol=1e-6, atol=1e-6)
        assert [nb.distance for nb in got] == sorted(nb.distance for nb in got)


def test_single_query_k_larger_than_index_and_empty_index() -> None:
    assert ExactIndex().search(np.zeros(DIM), k=5) == [[]]
    fids, pids, vecs = _random_gallery(3)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    (got,) = index.search(vecs[1], k=10)
    assert len(got) == 3
    assert got[0] == Neighbour(int(fids[1]), int(pids[1]), 0.0)
    with pytest.raises(ValueError):
        index.search(np.zeros(64), k=1)
    with pytest.raises(ValueError):
        index.search(vecs[0], k=0)


def test_add_is_idempotent_and_replaces_face() -> None:
    fids, pids, vecs = _random_gallery(100)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    index.add(fids, pids, vecs)
    assert len(index) == 100
    # Re-adding one face with a new vector and person replaces its row.
    new = np.full(DIM, 0.5, dtype=np.float32)
    index.add([fids[7]], [999], new[None, :])
    assert len(index) == 100
    (got,) = index.search(new, k=1)
    assert got[0] == Neighbour(int(fids[7]), 999, 0.0)
    # A face id repeated within one batch keeps the last row.
    index.add([5, 5], [1, 2], np.stack([new, new * 2]))
    assert len(index) == 101
    (got,) = index.search(new * 2, k=1)
    assert (got[0].face_id, got[0].person_id) == (5, 2)


def test_add_validates_input() -> None:
    index = ExactIndex()
    with pytest.raises(ValueError):
        index.add([1, 2], [1], np.zeros((2, DIM)))
    with pytest.raises(ValueError):
        index.add([1], [1], np.zeros((1, 64)))
    with pytest.raises(ValueError):
        index.add([1], [1], np.full((1, DIM), np.nan))
    assert len(index) == 0


def test_remove_person_and_faces() -> None:
    fids, pids, vecs = _random_gallery(5000)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    assert index.person_ids() == set(pids.tolist())
    assert index.remove_person(int(pids[0])) == 10
    assert index.remove_person(int(pids[0])) == 0
    assert int(pids[0]) not in index.person_ids()
    # Remove a spread of faces across compaction blocks.
    gone = fids[::7]
    removed = index.remove_faces(gone)
    assert removed == len(set(gone.tolist()) - set(fids[:10].tolist()))
    keep = ~np.isin(fids, gone) & (pids != pids[0])
    assert len(index) == int(keep.sum())
    assert index.face_ids.tolist() == fids[keep].tolist()
    np.testing.assert_array_equal(index.vectors, vecs[keep])
    # Search still agrees with brute force on what remains.
    q = vecs[3]
    rows, _ = _brute_force(vecs[keep], q, 5)
    (got,) = index.search(q, k=5)
    assert [nb.face_id for nb in got] == fids[keep][rows].tolist()


def test_remove_then_add_reuses_capacity_correctly() -> None:
    index = ExactIndex()
    fids, pids, vecs = _random_gallery(2000)
    for start in range(0, 2000, 100):  # many small adds exercise buffer growth
        sl = slice(start, start + 100)
        index.add(fids[sl], pids[sl], vecs[sl])
    index.remove_person(int(pids[500]))
    index.add([fids[500]], [pids[500]], vecs[500:501])
    (got,) = index.search(vecs[500], k=1)
    assert got[0].face_id == fids[500] and got[0].distance == 0.0
    assert len(index) == 1991


def test_save_load_round_trip(tmp_path: Path) -> None:
    fids, pids, vecs = _random_gallery(500)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    path = tmp_path / "c.npz"
    index.save(path)
    loaded = ExactIndex.load(path)
    assert len(loaded) == 500
    np.testing.assert_array_equal(loaded.vectors, vecs)
    assert loaded.face_ids.tolist() == fids.tolist()
    assert loaded.person_id_array.tolist() == pids.tolist()
    assert loaded.search(vecs[:3], k=4) == index.search(vecs[:3], k=4)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temp file left behind
    # A loaded index still accepts adds (buffer growth from an exact-size array).
    loaded.add([1], [1], np.zeros((1, DIM)))
    assert len(loaded) == 501


def test_missing_file_is_empty_index(tmp_path: Path) -> None:
    assert len(ExactIndex.load(tmp_path / "nope.npz")) == 0


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage, not a zip", b"PK\x03\x04truncated"],
)
def test_corrupt_file_raises_storage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(StorageError, match="corrupt"):
        ExactIndex.load(path)


def test_truncated_and_inconsistent_files_raise_storage_error(tmp_path: Path) -> None:
    fids, pids, vecs = _random_gallery(200)
    index = ExactIndex()
    index.add(fids, pids, vecs)
    path = tmp_path / "c.npz"
    index.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StorageError):
        ExactIndex.load(path)
    np.savez(path, format_version=np.array(1), vectors=vecs, face_ids=fids[:5], person_ids=pids)
    with pytest.raises(StorageError, match="inconsistent"):
        ExactIndex.load(path)
    obj = np.array([{"a": 1}], dtype=object)  # pickled payload must be refused, not run
    np.savez(path, format_version=np.array(1), vectors=obj, face_ids=fids, person_ids=pids)
    with pytest.raises(StorageError):
        ExactIndex.load(path)


@pytest.mark.parametrize(
    "name", ["", "Serbia", "../etc", "a/b", "a.b", "serbia\n", "sp ace", "x" * 101]
)
def test_bad_collection_name_refused(tmp_path: Path, name: str) -> None:
    store = IndexStore(tmp_path)
    with pytest.raises(ValueError):
        store.get(name)
    with pytest.raises(ValueError):
        store.update(name, lambda idx: None)
    assert list(tmp_path.iterdir()) == []


def test_store_update_and_reload_on_change(tmp_path: Path) -> None:
    writer, reader = IndexStore(tmp_path), IndexStore(tmp_path)
    assert len(reader.get("serbia")) == 0
    fids, pids, vecs = _random_gallery(30)
    writer.update("serbia", lambda idx: idx.add(fids[:10], pids[:10], vecs[:10]))
    first = reader.get("serbia")
    assert len(first) == 10
    assert reader.get("serbia") is first  # unchanged file: served from cache
    writer.update("serbia", lambda idx: idx.add(fids[10:], pids[10:], vecs[10:]))
    assert len(reader.get("serbia")) == 30
    assert len(first) == 10  # an index handed out earlier is never mutated underneath
    # Incremental person update: only that person's rows change.
    target = int(pids[0])
    new_vecs = vecs[:10] + 0.05

    def replace_person(idx: ExactIndex) -> int:
        idx.remove_person(target)
        idx.add(fids[:10], pids[:10], new_vecs)
        return len(idx)

    assert writer.update("serbia", replace_person) == 30
    latest = reader.get("serbia")
    (got,) = latest.search(new_vecs[0], k=1)
    assert got[0].face_id == fids[0] and got[0].distance < 1e-6
    others = ~np.isin(latest.face_ids, fids[:10])
    np.testing.assert_array_equal(latest.vectors[others], vecs[10:])
    # Collections are independent.
    assert len(reader.get("other")) == 0


def test_update_without_change_does_not_write(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    assert store.update("c", lambda idx: len(idx)) == 0
    assert not store.path("c").exists()


def test_update_error_leaves_file_untouched(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.update("c", lambda idx: idx.add([1], [1], np.ones((1, DIM))))

    def boom(idx: ExactIndex) -> None:
        idx.add([2], [2], np.ones((1, DIM)))
        raise RuntimeError("worker failed")

    with pytest.raises(RuntimeError):
        store.update("c", boom)
    assert len(IndexStore(tmp_path).get("c")) == 1
    assert len(store.get("c")) == 1


def test_store_corrupt_file_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "c.npz").write_bytes(b"not an index")
    with pytest.raises(StorageError):
        IndexStore(tmp_path).get("c")


PERSONS_PER_WORKER = 3
ROUNDS = 20
FACES_PER_PERSON = 4


def _worker(root: str, worker: int) -> None:
    store = IndexStore(root)
    rng = np.random.default_rng(worker)
    for round_ in range(ROUNDS):
        for p in range(PERSONS_PER_WORKER):
            person = worker * 100 + p
            # Each round replaces the person's faces with a new set (one more each round).
            n = FACES_PER_PERSON + round_
            fids = person * 1000 + np.arange(n)
            vecs = rng.standard_normal((n, DIM)).astype(np.float32)

            def change(
                idx: ExactIndex,
                person: int = person,
                fids: np.ndarray = fids,
                vecs: np.ndarray = vecs,
            ) -> None:
                idx.remove_person(person)
                idx.add(fids, np.full(len(fids), person), vecs)

            store.update("shared", change)


@pytest.mark.slow
def test_concurrent_updates_from_processes_lose_nothing(tmp_path: Path) -> None:
    workers = 4
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing shared but the files
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), w)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    index = IndexStore(tmp_path).get("shared")
    expected_persons = {w * 100 + p for w in range(workers) for p in range(PERSONS_PER_WORKER)}
    assert index.person_ids() == expected_persons
    # Every person holds exactly the faces of the final round: no update was lost.
    final = FACES_PER_PERSON + ROUNDS - 1
    assert len(index) == len(expected_persons) * final
    expected_faces = sorted(person * 1000 + i for person in expected_persons for i in range(final))
    assert sorted(index.face_ids.tolist()) == expected_faces
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_confidence_properties() -> None:
    t = 0.55
    assert confidence(0.0, t) == 100.0
    assert confidence(t, t) == 50.0
    assert confidence(0.6, 0.6) == 50.0
    assert 88.0 <= confidence(0.35, t) <= 93.0
    values = [confidence(d, t) for d in np.linspace(0, 3, 301)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert all(0.0 <= v <= 100.0 for v in values)
    assert values[-1] < 1.0
    assert confidence(-0.1, t) == 100.0
    assert confidence(float("inf"), t) == 0.0
    assert confidence(0.4, t) == round(confidence(0.4, t), 1)
    with pytest.raises(ValueError):
        confidence(0.3, 0.0)


def test_best_person_rule() -> None:
    t = 0.55
    assert best_person([], t) is None
    assert best_person([Neighbour(1, 7, 0.7), Neighbour(2, 8, 0.8)], t) is None
    # Three consistent faces of person 2 beat one slightly closer face of person 1
    # (e.g. a mislabelled gallery face).
    nbs = [
        Neighbour(1, 1, 0.30),
        Neighbour(2, 2, 0.32),
        Neighbour(3, 2, 0.34),
        Neighbour(4, 2, 0.36),
        Neighbour(5, 3, 0.60),
    ]
    assert best_person(nbs, t) == (2, 0.32)
    # A single very close face still wins against scattered, distant faces of another person.
    nbs = [Neighbour(1, 1, 0.10), Neighbour(2, 2, 0.50), Neighbour(3, 2, 0.52)]
    assert best_person(nbs, t) == (1, 0.10)
    # Distances beyond the threshold do not count against a person.
    nbs = [Neighbour(1, 1, 0.30), Neighbour(2, 1, 0.90), Neighbour(3, 2, 0.31)]
    assert best_person(nbs, t) == (1, 0.30)


def test_get_serves_previous_version_while_another_thread_reloads(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.update("c", lambda idx: idx.add([1], [1], np.ones((1, DIM))))
    old = store.get("c")
    IndexStore(tmp_path).update("c", lambda idx: idx.add([2], [2], np.ones((1, DIM))))
    lock = store._collection_lock("c")
    with lock:  # simulate a reload in progress in another thread
        assert store.get("c") is old
    assert len(store.get("c")) == 2


def test_duplicate_face_ids_in_file_raise_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    np.savez(
        path,
        format_version=np.array(1, dtype=np.int64),
        vectors=np.zeros((2, DIM), np.float32),
        face_ids=np.array([3, 3]),
        person_ids=np.array([1, 2]),
    )
    with pytest.raises(StorageError, match="duplicate"):
        ExactIndex.load(path)
