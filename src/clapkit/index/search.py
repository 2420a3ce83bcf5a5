"""Queries over an index database: by text, by example audio, or by an indexed file ("more like this").

Scores are cosine similarities (vectors are normalised), in [-1, 1]. With ``--segments`` a file
has one vector per window; a hit is the file's best window, with its start and end.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from . import store
from .db import Database, ModelInfo, display_path, from_blobs


@dataclass
class Hit:
    id: int                 # the file's id (``/files/{id}`` in the service)
    path: str
    score: float            # cosine similarity
    duration: float | None
    start: float | None = None  # the best window, for --segments databases
    end: float | None = None
    tags: list[tuple[str, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def to_dict(self, *, segments: bool, paths: bool = True) -> dict:
        out = {"id": self.id, "name": self.name, "score": round(self.score, 6), "duration": self.duration}
        if paths:
            out["path"] = self.path
        if segments:
            out.update(start=self.start, end=self.end)
        if self.tags:
            out["tags"] = [{"label": label, "score": round(score, 4)} for label, score in self.tags]
        return out


def model_mismatch(db_path: Path, recorded: ModelInfo, name: str, weights: str, dim: int) -> str | None:
    if (recorded.name, recorded.weights_sha256, recorded.dim) == (name, weights, dim):
        return None
    return (f"--model: {db_path} was indexed with {recorded.name} (weights {recorded.weights_sha256[:12]}, "
            f"dim {recorded.dim}), not {name} (weights {weights[:12]}, dim {dim}); search with "
            f"--model {recorded.source}, or re-embed the database with clapkit index ... --model <this model> --reindex")


class Searcher:
    """Search one database. ``pipeline`` (from ``clapkit.load``) embeds text and audio queries and
    must be the database's model; without it only vector and "more like this" queries work."""

    def __init__(self, db_path: str | Path, pipeline=None, *, write_cache: bool = True) -> None:
        self.db = Database(db_path)
        self.model = self.db.model
        if self.model is None:
            raise UsageError(f"--db: {db_path} holds no vectors yet; run clapkit index FOLDER --db {db_path}")
        self.pipeline = None
        if pipeline is not None:
            self.attach(pipeline)
        self.write_cache = write_cache
        self.stale_reason: str | None = None  # set when the database moved to a model this service cannot query
        self._lock = threading.RLock()
        self.index = store.load_or_build(self.db, write=write_cache)

    def attach(self, pipeline) -> None:
        """Use ``pipeline`` for text and audio queries; refused unless it is the database's model."""
        from .db import weights_digest

        problem = model_mismatch(self.db.path, self.model, pipeline.name, weights_digest(pipeline.model),
                                 int(pipeline.config.embed_dim))
        if problem:
            raise UsageError(problem)
        self.pipeline = pipeline

    @property
    def segments(self) -> bool:
        return self.model.segments

    def close(self) -> None:
        self.db.close()

    def refresh(self) -> bool:
        """Pick up a re-run of ``clapkit index`` (a new generation); True if the index changed.
        The new index is built on a connection of its own, so searches go on meanwhile."""
        with self._lock:
            generation = self.db.generation
        if generation == self.index.generation:
            return False
        db = Database(self.db.path)
        try:
            model = db.model
            if self.pipeline is not None and model != self.model:
                from .db import weights_digest

                problem = model_mismatch(self.db.path, model, self.pipeline.name, weights_digest(self.pipeline.model),
                                         int(self.pipeline.config.embed_dim))
                if problem:  # re-indexed with another model: keep serving the old index, say why
                    self.stale_reason = problem
                    return False
            index = store.load_or_build(db, write=self.write_cache)
        finally:
            db.close()
        with self._lock:
            self.model, self.index, self.stale_reason = model, index, None
        return True

    def stats(self) -> dict:
        with self._lock:
            counts = self.db.counts()
            tags = self.db.get("tags")
        import json

        return {**counts, "model": self.model.name, "dim": self.model.dim, "segments": self.model.segments,
                "index": self.index.kind, "tags": json.loads(tags)["labels"] if tags else []}

    # ---- queries -----------------------------------------------------------------------------
    def _query_model(self, kind: str):
        if self.pipeline is None:
            raise UsageError(f"{kind} queries need the model (pass a pipeline)")
        if self.stale_reason:  # the database now holds another model's vectors
            raise UsageError(self.stale_reason)
        return self.pipeline

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self._query_model("text").embed_text(texts).numpy()

    def text(self, query: str, top: int = 10, **filters) -> list[Hit]:
        if not query.strip():
            raise UsageError("query: empty; give words describing the sound")
        return self.vector(self.embed_text([query])[0], top, **filters)

    def audio(self, source, top: int = 10, **filters) -> list[Hit]:
        return self.vector(self._query_model("audio").embed_audio([source])[0].numpy(), top, **filters)

    def tagged(self, label: str, top: int = 10, *, min_score: float | None = None) -> list[Hit]:
        """The files tagged ``label``, best first; a hit's score is the tag's cosine."""
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT f.id, f.path, f.duration, t.score FROM tags t JOIN files f ON f.id = t.file_id "
                "WHERE t.label = ? AND f.status = 'ok' AND f.model_key = ? AND t.score >= ? "
                "ORDER BY t.score DESC, f.id LIMIT ?", (label, self.model.key, -2.0 if min_score is None else min_score,
                                                         top)).fetchall()
        hits = [Hit(fid, display_path(raw), score, duration) for fid, raw, duration, score in rows]
        self._add_tags(hits)
        return hits

    def like(self, file_id: int, top: int = 10, **filters) -> list[Hit]:
        """Files like an indexed one (by its stored vector), the file itself left out."""
        with self._lock:
            vector = self.db.file_vector(file_id)
        if vector is None:
            raise UsageError(f"file {file_id}: not in the index")
        return self.vector(vector, top, exclude=file_id, **filters)

    def db_vector(self, file_id: int) -> np.ndarray | None:
        with self._lock:
            return self.db.file_vector(file_id)

    def file_id(self, path: str) -> int | None:
        from .db import path_bytes

        with self._lock:
            row = self.db.conn.execute("SELECT id FROM files WHERE path = ? AND status = 'ok'", (path_bytes(path),)).fetchone()
        return row[0] if row else None

    def vector(self, query: np.ndarray, top: int = 10, *, tag: str | None = None, min_score: float | None = None,
               exclude: int | None = None) -> list[Hit]:
        """The ``top`` files nearest to ``query`` (one hit per file: its best window)."""
        query = np.asarray(query, np.float32).reshape(-1)
        if query.shape[0] != self.model.dim:
            raise UsageError(f"query vector: dimension {query.shape[0]}, the index has {self.model.dim}")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        if tag is not None:
            best = self._exact_in_tag(query, tag, top + (exclude is not None))
        else:
            best = self._nearest_files(query, top + (exclude is not None))
        hits = [h for h in best if h.id != exclude and (min_score is None or h.score >= min_score)][:top]
        self._add_tags(hits)
        return hits

    def _nearest_files(self, query: np.ndarray, files: int) -> list[Hit]:
        index = self.index  # FAISS searches run concurrently; SQLite reads take the lock
        k = files * (4 if self.segments else 1)
        while True:
            k = min(k, max(index.count, 1))
            scores, ids = index.search(query[None], k)
            hits = self._best_per_file(ids[0], scores[0])
            if len(hits) >= files or k >= index.count:
                return hits[:files]
            k *= 4

    def _best_per_file(self, ids: np.ndarray, scores: np.ndarray) -> list[Hit]:
        found = [(int(i), float(s)) for i, s in zip(ids, scores) if i >= 0]
        if not found:
            return []
        with self._lock:
            rows = self._vector_rows([i for i, _ in found])
        hits: dict[int, Hit] = {}
        for vid, score in found:
            if vid not in rows:
                continue  # removed since the index was built: refresh() catches up
            fid, t0, t1, raw, duration = rows[vid]
            if fid not in hits or score > hits[fid].score:
                hits[fid] = Hit(fid, display_path(raw), score, duration, t0, t1)
        return sorted(hits.values(), key=lambda h: (-h.score, h.id))

    def _vector_rows(self, ids: list[int]) -> dict[int, tuple]:
        rows = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for vid, fid, t0, t1, raw, duration in self.db.conn.execute(
                    "SELECT v.id, f.id, v.start_s, v.end_s, f.path, f.duration FROM vectors v JOIN files f ON f.id = v.file_id "
                    f"WHERE v.id IN ({','.join('?' * len(chunk))})", chunk):
                rows[vid] = (fid, t0, t1, raw, duration)
        return rows

    def _exact_in_tag(self, query: np.ndarray, tag: str, files: int) -> list[Hit]:
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT v.id, v.vector FROM tags t JOIN files f ON f.id = t.file_id JOIN vectors v ON v.file_id = f.id "
                "WHERE t.label = ? AND f.status = 'ok' AND f.model_key = ?", (tag, self.model.key)).fetchall()
        if not rows:
            return []
        vectors = from_blobs([r[1] for r in rows], self.model.dim)
        scores = vectors @ query
        order = np.argsort(-scores, kind="stable")
        return self._best_per_file(np.array([rows[i][0] for i in order]), scores[order])[:files]

    def _add_tags(self, hits: list[Hit]) -> None:
        with self._lock:
            for hit in hits:
                hit.tags = [(label, score) for label, score in self.db.conn.execute(
                    "SELECT label, score FROM tags WHERE file_id = ? ORDER BY score DESC, label", (hit.id,))]

    def file(self, file_id: int) -> tuple[str, dict] | None:
        """``(path, metadata)`` of an indexed, readable file; None for any other id."""
        with self._lock:
            row = self.db.conn.execute("SELECT path, duration, sample_rate, channels, size, mtime_ns FROM files "
                                       "WHERE id = ? AND status = 'ok'", (file_id,)).fetchone()
        if row is None:
            return None
        return os.fsdecode(row[0]), {"duration": row[1], "sample_rate": row[2], "channels": row[3],
                                     "size": row[4], "mtime_ns": row[5]}
