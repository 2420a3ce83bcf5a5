"""The FAISS index: a cache of the database's vectors, rebuilt from SQLite whenever it is stale.

The file ``DB.faiss`` starts with a 24-byte header (magic, the database generation it was built
from, the vector count) followed by FAISS's own serialisation; it is written to a temporary file
and renamed into place, so a reader sees either the old file or the new one, and a file whose
generation is not the database's is ignored and rebuilt. Ids in the index are ``vectors.id``.

Below ``EXACT_LIMIT`` vectors the index is exact (``IndexFlatIP``: inner product of normalised
vectors = cosine). Above it, IVF-Flat with ``nlist ≈ 2·√n`` lists, searched with ``nprobe``
lists — the operating point measured by ``benchmarks/bench_search.py`` (recall@10 and latency at
1M vectors) — unless the caller asks for ``hnsw`` or ``flat``.
"""
from __future__ import annotations

import fcntl
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

MAGIC = b"CKFAISS1"
HEADER = struct.Struct("<8sQQ")
EXACT_LIMIT = 50_000       # up to here exact search is a few ms on 2 cores (bench_search.py)
IVF_NPROBE = 96            # lists searched at 1M vectors: recall@10 0.98 in ~5 ms (bench_search.py)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96
KINDS = ("auto", "flat", "ivf", "hnsw")


def faiss():
    try:
        import faiss as module
    except ImportError:
        raise UsageError("sound search needs FAISS: pip install 'clapkit[search]' (faiss-cpu)") from None
    return module


@dataclass
class VectorIndex:
    index: object  # a faiss index whose ids are vectors.id
    kind: str
    generation: int
    count: int
    updated: tuple[int, int] | None = None  # (added, removed) when brought up to date in place

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of shape ``(Q, k)``, best first; id -1 pads when fewer than k exist."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
        if self.count == 0:
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        if len(queries) > 1:
            return self.index.search(queries, k)
        # One query, one OpenMP thread: waking a second one costs milliseconds on a busy machine
        # (~8 ms measured for HNSW on 2 cores); the setting is the calling thread's own.
        f = faiss()
        threads = f.omp_get_max_threads()
        f.omp_set_num_threads(1)
        try:
            return self.index.search(queries, k)
        finally:
            f.omp_set_num_threads(threads)


def choose_kind(count: int, kind: str = "auto") -> str:
    if kind not in KINDS:
        raise UsageError(f"--index-kind: {kind!r} is not one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if count <= EXACT_LIMIT else "ivf"


def build(ids: np.ndarray, vectors: np.ndarray, dim: int, kind: str = "auto", *, nprobe: int = IVF_NPROBE,
          nlist: int | None = None, generation: int = 0) -> VectorIndex:
    """A FAISS index over ``vectors`` (normalised float32, ``(n, dim)``) with ``ids``."""
    f = faiss()
    count = len(ids)
    kind = choose_kind(count, kind)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(count, dim)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if kind == "ivf" and count < 1000:
        kind = "flat"  # too few to train lists on
    if kind == "flat":
        index = f.IndexIDMap2(f.IndexFlatIP(dim))
        index.add_with_ids(vectors, ids)
    elif kind == "hnsw":
        inner = f.IndexHNSWFlat(dim, HNSW_M, f.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
        index = f.IndexIDMap2(inner)
        index.add_with_ids(vectors, ids)
    else:
        nlist = nlist or max(16, min(count // 39, int(2 * math.sqrt(count))))
        index = f.IndexIVFFlat(f.IndexFlatIP(dim), dim, nlist, f.METRIC_INNER_PRODUCT)
        sample = vectors
        if count > nlist * 64:  # k-means on a fixed, seeded sample: the same index for the same data
            sample = vectors[np.sort(np.random.default_rng(0).choice(count, nlist * 64, replace=False))]
        index.train(sample)
        index.add_with_ids(vectors, ids)
        index.nprobe = min(nprobe, nlist)
    return VectorIndex(index, kind, generation, count)


def index_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".faiss")


def save(vector_index: VectorIndex, path: Path) -> None:
    """Write atomically: a temporary file beside ``path``, flushed, then renamed over it."""
    data = faiss().serialize_index(vector_index.index)
    _remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while writing: a leftover is a temporary nobody holds
        with os.fdopen(fd, "wb") as out:
            out.write(HEADER.pack(MAGIC, vector_index.generation, vector_index.count))
            out.write(memoryview(data))
            out.flush()
            os.fsync(out.fileno())
        _test_hook("faiss-written")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _remove_leftovers(path: Path) -> None:
    """Temporary files of writers killed before their rename (not those of a writer at work)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            with open(leftover, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink()
        except OSError:
            continue  # being written, or already gone


def read(path: Path, generation: int | None) -> VectorIndex | None:
    """The cached index if it exists and was built from ``generation`` (any, for None); else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            if len(head) != HEADER.size:
                return None
            magic, built_from, count = HEADER.unpack(head)
            if magic != MAGIC or (generation is not None and built_from != generation):
                return None
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError:
        return None
    try:
        index = faiss().deserialize_index(data)
    except RuntimeError:
        return None  # damaged: rebuilt from the database
    inner = faiss().downcast_index(index.index) if hasattr(index, "index") else index
    kind = "ivf" if hasattr(index, "nprobe") else "hnsw" if hasattr(inner, "hnsw") else "flat"
    if kind == "ivf":
        index.nprobe = min(IVF_NPROBE, index.nlist)
    return VectorIndex(index, kind, built_from, count)


MAX_UPDATE_FRACTION = 0.2  # beyond this share of vectors added or removed, rebuild (IVF lists drift)


def load_or_build(db, kind: str | None = None, *, write: bool = True) -> VectorIndex:
    """The database's index: the cached file when it is current; a stale flat or IVF file brought
    up to date by adding and removing the vectors that changed (ids are never reused); else built
    from SQLite. Written back when ``write`` (a read-only place keeps it in memory).

    ``kind`` (auto, flat, ivf or hnsw) is recorded in the database, so that later runs and searches
    keep it; None keeps the recorded one (auto when none is)."""
    recorded = db.get("index_kind", "auto")
    changed = kind is not None and kind != recorded
    if changed:
        choose_kind(0, kind)
        with db.transaction():
            db.put("index_kind", kind)
    kind = kind or recorded
    generation = db.generation
    path = index_path(db.path)
    dim = db.model.dim if db.model else 1
    if not changed:
        cached = read(path, None)
        if cached is not None and cached.generation == generation:
            return cached
        if (cached is not None and same_database(cached.generation, generation)
                and (updated := _update(cached, db, dim, generation, kind)) is not None):
            _save_quietly(updated, path, write)
            return updated
    chunks = list(db.current_vectors())
    ids = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
    vectors = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros((0, dim), np.float32)
    built = build(ids, vectors, dim, kind, generation=generation)
    _save_quietly(built, path, write)
    return built


def _save_quietly(index: VectorIndex, path: Path, write: bool) -> None:
    if write:
        try:
            save(index, path)
        except OSError:
            pass  # a read-only folder: searching still works from memory


def index_ids(vector_index: VectorIndex) -> np.ndarray:
    """The ids an index holds, sorted."""
    f, index = faiss(), vector_index.index
    if vector_index.kind == "ivf":
        lists = index.invlists
        parts = [f.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(index.nlist)
                 if lists.list_size(i)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return np.sort(f.vector_to_array(index.id_map))


def same_database(cached: int, current: int) -> bool:
    """Whether a cache built at generation ``cached`` can come from the database now at ``current``:
    each database starts its generations at a random multiple of 2**20 (``db.Database``), so a cache
    left by a deleted database of the same name is rebuilt, not patched by ids that were reused."""
    return cached >> 20 == current >> 20 and cached <= current


def _update(cached: VectorIndex, db, dim: int, generation: int, kind: str) -> VectorIndex | None:
    """``cached`` brought to ``generation`` in place, or None where a rebuild is the better answer."""
    if cached.kind == "hnsw" or cached.index.d != dim:
        return None  # HNSW cannot remove vectors
    current = db.current_ids()
    expected = choose_kind(len(current), kind)
    if expected != cached.kind and not (expected == "ivf" and cached.kind == "flat" and len(current) < 1000):
        return None  # crossed EXACT_LIMIT
    held = index_ids(cached)
    new, gone = np.setdiff1d(current, held), np.setdiff1d(held, current)
    if len(new) + len(gone) > max(1000, MAX_UPDATE_FRACTION * len(current)):
        return None
    if len(gone):
        cached.index.remove_ids(faiss().IDSelectorBatch(gone))
    if len(new):
        cached.index.add_with_ids(db.vectors_by_id(new), new)
    cached.generation, cached.count, cached.updated = generation, len(current), (len(new), len(gone))
    return cached


def _test_hook(point: str) -> None:
    """Tests kill the process here (``CLAPKIT_INDEX_TEST_KILL=<point>``) to check crash safety."""
    if os.environ.get("CLAPKIT_INDEX_TEST_KILL") == point:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
