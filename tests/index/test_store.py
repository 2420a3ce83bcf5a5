"""The FAISS cache: exact search equals brute force; a stale flat or IVF file is brought up to date
by adding and removing the changed vectors (equal to a rebuild's content), and rebuilt when too
much changed or the kind must change; vector ids are never reused."""
from __future__ import annotations

import numpy as np
import pytest

from clapkit.index import store
from clapkit.index.db import Database, ModelInfo, to_blob

pytest.importorskip("faiss")
DIM = 16


def fill(db: Database, start: int, count: int, rng) -> None:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    key = db.model.key
    with db.transaction() as conn:
        for i, v in zip(range(start, start + count), vectors):
            fid = conn.execute("INSERT INTO files (path, status, model_key) VALUES (?, 'ok', ?) RETURNING id",
                               (f"/x/{i}.wav".encode(), key)).fetchone()[0]
            conn.execute("INSERT INTO vectors (file_id, start_s, end_s, vector) VALUES (?, 0, 1, ?)", (fid, to_blob(v)))
        db.bump_generation()


def remove(db: Database, paths: list[int]) -> None:
    with db.transaction() as conn:
        conn.executemany("DELETE FROM files WHERE path = ?", [(f"/x/{i}.wav".encode(),) for i in paths])
        db.bump_generation()


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "v.db", create=True)
    with d.transaction():
        d.put("model", ModelInfo("m", "m", "0" * 64, DIM, "sliding", None, 1.0, False).to_json())
    yield d
    d.close()


def test_exact_search_is_brute_force(db):
    fill(db, 0, 300, np.random.default_rng(0))
    index = store.load_or_build(db)
    ids = db.current_ids()
    vectors = db.vectors_by_id(ids)
    query = vectors[7] + 0.1
    scores, found = index.search(query[None], 10)
    expected = np.argsort(-(vectors @ query))[:10]
    assert index.kind == "flat" and list(found[0]) == list(ids[expected])
    np.testing.assert_allclose(scores[0], (vectors @ query)[expected], rtol=1e-5)


@pytest.mark.parametrize("kind_limit", [100_000, 500], ids=["flat", "ivf"])
def test_a_stale_cache_is_updated_in_place_to_what_a_rebuild_holds(db, monkeypatch, kind_limit):
    monkeypatch.setattr(store, "EXACT_LIMIT", kind_limit)
    rng = np.random.default_rng(1)
    fill(db, 0, 3000, rng)
    first = store.load_or_build(db)
    assert first.kind == ("flat" if kind_limit > 3000 else "ivf") and first.updated is None
    remove(db, list(range(0, 200, 2)))
    fill(db, 3000, 150, rng)
    updated = store.load_or_build(db)
    assert updated.updated == (150, 100) and updated.kind == first.kind
    np.testing.assert_array_equal(store.index_ids(updated), db.current_ids())
    on_disk = store.read(store.index_path(db.path), db.generation)
    assert on_disk is not None and on_disk.count == 3050
    np.testing.assert_array_equal(store.index_ids(on_disk), db.current_ids())
    new_id = db.current_ids()[-1]
    _, found = on_disk.search(db.vectors_by_id(np.array([new_id])), 1)
    assert found[0][0] == new_id

    remove(db, list(range(1, 3000, 2)))  # half the collection: rebuilt, not patched
    rebuilt = store.load_or_build(db)
    assert rebuilt.updated is None
    np.testing.assert_array_equal(store.index_ids(rebuilt), db.current_ids())


def test_vector_ids_are_never_reused(db):
    fill(db, 0, 3, np.random.default_rng(2))
    top = db.current_ids()[-1]
    remove(db, [2])
    fill(db, 3, 1, np.random.default_rng(3))
    assert db.current_ids()[-1] == top + 1


def test_only_temporaries_of_dead_writers_are_cleaned_up(db):
    import fcntl

    fill(db, 0, 10, np.random.default_rng(4))
    path = store.index_path(db.path)
    dead = path.with_name(f".{path.name}.dead.tmp")
    dead.write_bytes(b"half")
    alive = path.with_name(f".{path.name}.alive.tmp")
    with open(alive, "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another writer, still at work
        store.load_or_build(db)
        assert not dead.exists() and alive.exists()
    assert store.read(path, db.generation).count == 10


def test_an_explicit_kind_is_recorded_and_kept_by_later_updates(db, monkeypatch):
    monkeypatch.setattr(store, "EXACT_LIMIT", 500)
    rng = np.random.default_rng(5)
    fill(db, 0, 2000, rng)
    assert store.load_or_build(db, "flat").kind == "flat"  # would be IVF by size
    fill(db, 2000, 10, rng)
    again = store.load_or_build(db)  # a search, or a re-run without --index-kind
    assert again.kind == "flat" and again.updated == (10, 0)
    assert store.load_or_build(db, "auto").kind == "ivf" and db.get("index_kind") == "auto"


def test_a_rebuilt_database_never_patches_the_old_databases_cache(tmp_path):
    from clapkit.index.db import Database
    from clapkit.index.store import same_database

    first, second = Database(tmp_path / "a.db", create=True), Database(tmp_path / "b.db", create=True)
    assert first.generation >> 20 != second.generation >> 20  # random starts
    assert same_database(first.generation, first.generation + 3)
    assert not same_database(first.generation, second.generation) and not same_database(first.generation + 1, first.generation)
    first.close()
    second.close()
