"""The index database: one SQLite file holding the collection's files, their vectors and tags.

Tables (``schema`` 1):

- ``meta(key, value)``: the model the vectors come from (name, source, weights sha256, dimension,
  window policy, hop, segments), the tag vocabulary, and ``generation``, a counter raised by
  every transaction that changes a vector (the FAISS cache is stamped with it).
- ``files``: one row per file seen: ``path`` (the absolute path as bytes, exactly as the file
  system spells it), ``size``, ``mtime_ns``, ``sha256`` (of the content), ``duration``,
  ``sample_rate``, ``channels``, ``status`` (``ok`` or ``error``), ``error`` (one line),
  ``model_key`` (the model and window policy its vectors were made with), ``tags_key``.
- ``vectors``: ``id`` (never reused: the FAISS cache is updated by id), ``file_id``, ``start_s``, ``end_s`` (the window, for ``--segments``; the whole file
  otherwise) and ``vector``, a float32 blob, L2-normalised: the source of truth for the FAISS index.
- ``tags``: ``file_id``, ``label``, ``score`` (cosine of the file's vector and the label's prompt).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

SCHEMA = 1
TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER, mtime_ns INTEGER, sha256 TEXT,
    duration REAL, sample_rate INTEGER, channels INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error TEXT,
    model_key TEXT,
    tags_key TEXT,
    indexed_at REAL
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start_s REAL, end_s REAL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_file ON vectors(file_id);
CREATE TABLE IF NOT EXISTS tags (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    label TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (file_id, label)
);
CREATE INDEX IF NOT EXISTS tags_label ON tags(label, score);
"""


@dataclass(frozen=True)
class ModelInfo:
    """What makes two sets of vectors comparable: the model, its weights and the window policy."""

    name: str              # the config's name (e.g. clapkit-small)
    source: str            # what --model said (registry name or checkpoint path): the default for search
    weights_sha256: str    # sha256 of the weights (see weights_digest)
    dim: int
    policy: str            # window policy of long files
    hop_seconds: float | None
    clip_seconds: float
    segments: bool         # one vector per window (True) or per file (the mean, False)
    tokenizer: str | None = None  # recorded as the default for text queries; not part of the key

    @property
    def key(self) -> str:
        identity = {k: v for k, v in asdict(self).items() if k not in ("source", "tokenizer")}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        hop = f", hop {self.hop_seconds:g} s" if self.hop_seconds else ""
        return (f"{self.name} (weights {self.weights_sha256[:12]}, dim {self.dim}, "
                f"{'segments' if self.segments else 'per file'}{hop})")

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def weights_digest(model) -> str:
    """sha256 over the model's state (names, shapes and float32 values, in name order): the same
    for the same weights whatever the dtype or device they were loaded at."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype)
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def path_bytes(path: str | bytes) -> bytes:
    return os.fsencode(os.path.abspath(path))


def display_path(raw: bytes) -> str:
    """A stored path as printable text (bytes that are not UTF-8 shown as escapes)."""
    return raw.decode("utf-8", "backslashreplace")


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32, copy=False)


class Database:
    """An index database. ``create=True`` makes a new one where none exists; otherwise a missing
    file or a file that is not a clapkit index is a one-line :class:`UsageError`."""

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"--db: {self.path} is a folder; give a file name such as {self.path / 'sounds.db'}")
        exists = self.path.exists()
        if not exists and not create:
            raise UsageError(f"--db: {self.path} does not exist; build it first with: clapkit index FOLDER --db {self.path}")
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"--db: cannot create {self.path} ({e.strerror})") from None
        try:
            if readonly:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60,
                                            isolation_level=None, check_same_thread=False)
            else:
                self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                try:
                    self.conn.execute("PRAGMA journal_mode = WAL")  # readers go on while an index run writes
                    self.conn.execute("PRAGMA synchronous = NORMAL")
                except sqlite3.OperationalError:
                    pass  # a read-only place: searching still works
            tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise UsageError(f"--db: {self.path} is not a clapkit index database ({e})") from None
        if exists and tables and "meta" not in tables:
            raise UsageError(f"--db: {self.path} is an SQLite file but not a clapkit index (no meta table)")
        if not tables:
            if readonly or (exists and self.path.stat().st_size and not create):
                raise UsageError(f"--db: {self.path} is not a clapkit index database")
            with self.transaction():
                for statement in TABLES.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                # A random start: a database deleted and built again never meets its old FAISS cache
                # file at the same generation (the cache is matched by generation alone).
                start = secrets.randbits(40) << 20
                self.conn.execute("INSERT INTO meta VALUES ('schema', ?), ('generation', ?)", (str(SCHEMA), str(start)))
        schema = self.get("schema")
        if schema != str(SCHEMA):
            raise UsageError(f"--db: {self.path} has index schema {schema}, this clapkit reads schema {SCHEMA}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it is on disk after the block, or none of it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta --------------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          (key, value))

    @property
    def generation(self) -> int:
        return int(self.get("generation", "0"))

    def bump_generation(self) -> None:
        """Inside a transaction that changes vectors: the FAISS cache of earlier generations is stale."""
        self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    @property
    def model(self) -> ModelInfo | None:
        text = self.get("model")
        return ModelInfo.from_json(text) if text else None

    @property
    def dim(self) -> int:
        model = self.model
        if model is None:
            raise UsageError(f"--db: {self.path} holds no vectors yet; run clapkit index FOLDER --db {self.path}")
        return model.dim

    # ---- reading -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        model = self.model
        key = model.key if model else ""
        one = lambda sql, *args: self.conn.execute(sql, args).fetchone()[0]  # noqa: E731
        return {"files": one("SELECT COUNT(*) FROM files WHERE status = 'ok' AND model_key = ?", key),
                "failed": one("SELECT COUNT(*) FROM files WHERE status = 'error'"),
                "stale": one("SELECT COUNT(*) FROM files WHERE status = 'ok' AND model_key IS NOT ?", key),
                "vectors": one("SELECT COUNT(*) FROM vectors v JOIN files f ON f.id = v.file_id WHERE f.model_key = ?", key)}

    def current_vectors(self, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` chunks of every vector made with the database's model, by id."""
        model = self.model
        if model is None:
            return
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT v.id, v.vector FROM vectors v JOIN files f ON f.id = v.file_id "
                "WHERE f.model_key = ? AND f.status = 'ok' AND v.id > ? ORDER BY v.id LIMIT ?",
                (model.key, last, batch)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield np.array([r[0] for r in rows], np.int64), from_blobs([r[1] for r in rows], model.dim)

    def current_ids(self) -> np.ndarray:
        """The ids of every vector made with the database's model, sorted."""
        model = self.model
        return np.fromiter((r[0] for r in self.conn.execute(
            "SELECT v.id FROM vectors v JOIN files f ON f.id = v.file_id WHERE f.model_key = ? AND f.status = 'ok' "
            "ORDER BY v.id", (model.key if model else "",))), np.int64)

    def vectors_by_id(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of ``ids``, in that order."""
        blobs = []
        for start in range(0, len(ids), 900):
            chunk = [int(i) for i in ids[start:start + 900]]
            found = dict(self.conn.execute(f"SELECT id, vector FROM vectors WHERE id IN ({','.join('?' * len(chunk))})", chunk))
            blobs += [found[i] for i in chunk]
        return from_blobs(blobs, self.model.dim)

    def file_vector(self, file_id: int) -> np.ndarray | None:
        """A file's vector (the normalised mean of its windows with --segments), or None."""
        model = self.model
        blobs = [r[0] for r in self.conn.execute(
            "SELECT v.vector FROM vectors v JOIN files f ON f.id = v.file_id "
            "WHERE f.id = ? AND f.status = 'ok' AND f.model_key = ?", (file_id, model.key if model else ""))]
        if not blobs:
            return None
        mean = from_blobs(blobs, model.dim).mean(0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
