"""Walk folders, embed new or changed audio files and store them: the engine of ``clapkit index``.

A run compares each file's size and modification time with its row; a changed one is hashed
(sha256) and re-embedded only if its content changed (a file whose content is already indexed under
another path, such as a renamed one, gets a copy of those vectors). Files that disappeared from the
walked folders are removed. Results are written in transactions of ``batch_files`` files, so a run
killed at any moment loses at most one batch of work and never leaves half a file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ClapkitError, UsageError, one_line
from . import store
from .db import Database, ModelInfo, display_path, path_bytes, to_blob, weights_digest
from .main import DEFAULT_TEMPLATE  # noqa: F401 - defined beside the command line, which stays light


@dataclass
class Report:
    """What a run did; ``failed`` lists ``(path, one-line cause)`` for every file that is not indexed."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    tagged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    vectors: int = 0
    kind: str = ""

    def summary(self) -> str:
        return (f"indexed {self.added} new and {self.changed} changed file(s), {self.reused} copied from identical "
                f"content, {self.unchanged} unchanged, {self.removed} removed, {len(self.failed)} failed; "
                f"the index holds {self.files} file(s), {self.vectors} vector(s) ({self.kind} search)")


@dataclass
class Part:
    """This process's share of the files: those whose path hashes to ``rank`` modulo ``world``
    (stable when files are added, so a re-run re-embeds nothing that moved between parts)."""

    rank: int
    world: int

    def owns(self, raw_path: bytes) -> bool:
        return zlib.crc32(raw_path) % self.world == self.rank

    def db_path(self, db: Path) -> Path:
        return db.with_name(f"{db.name}.part-{self.rank}-of-{self.world}")


def model_info(pipeline, source: str, segments: bool, tokenizer: str | None = None) -> ModelInfo:
    rate = pipeline.sample_rate
    return ModelInfo(name=pipeline.name, source=source, weights_sha256=weights_digest(pipeline.model),
                     dim=int(pipeline.config.embed_dim), policy=pipeline.policy,
                     hop_seconds=round(pipeline.hop_samples / rate, 6) if pipeline.hop_samples else None,
                     clip_seconds=round(pipeline.clip_samples / rate, 6), segments=bool(segments), tokenizer=tokenizer)


def mismatch_message(db_path: Path, recorded: ModelInfo, given: ModelInfo) -> str:
    return (f"--db: {db_path} was built with {recorded.describe()}, not {given.describe()}; "
            f"use --model {recorded.source} (and the same --segments/--hop), or re-embed it in place "
            f"with: clapkit index ... --db {db_path} --model {given.source} --reindex")


@contextmanager
def writer_lock(db_path: Path) -> Iterator[None]:
    """One writer per database: a second ``clapkit index`` on it is refused, not interleaved."""
    lock_path = db_path.with_name(db_path.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"--db: {db_path} is being written by another clapkit index; wait for it to finish") from None
        yield
    finally:
        handle.close()


def read_labels(path: str) -> list[str]:
    """A label vocabulary: one label per line; blank lines and ``#`` comments skipped, duplicates once."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--tags: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
    labels = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")))
    if not labels:
        raise UsageError(f"--tags: {path} has no labels (one per line)")
    return labels


# ---- walking ------------------------------------------------------------------------------------


def walk(roots: list[str]) -> tuple[list[bytes], list[tuple[str, str]], list[bytes]]:
    """``(files, problems, protected)``: the audio files under ``roots`` (absolute, as bytes, sorted),
    the entries that could not be walked, and the prefixes under which nothing may be removed
    (unreadable or missing folders: an unmounted disk must not empty the index)."""
    from ..cli.infer import _walk

    files: list[str] = []
    problems: list[tuple[str, str]] = []
    protected: list[bytes] = []
    for root in roots:
        if os.path.isdir(root):
            found: list[tuple[str, str]] = []
            _walk(root, files, found)
            problems += found
            protected += [path_bytes(p) for p, cause in found if "loop" not in cause]
        elif os.path.exists(root):
            files.append(root)
        else:
            problems.append((root, f"{root}: no such file or folder (nothing under it removed from the index)"))
            protected.append(path_bytes(root))
    return sorted(set(path_bytes(f) for f in files)), problems, protected


def under(raw: bytes, roots: list[bytes]) -> bool:
    return any(raw == root or raw.startswith(root.rstrip(b"/") + b"/") for root in roots)


def sha256_file(path: bytes) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def window_times(count: int, duration: float | None, clip: float, hop: float | None) -> list[tuple[float, float]]:
    """Start and end (seconds) of each of a file's ``count`` windows under the sliding policy."""
    hop = hop or clip
    if duration is None:
        return [(k * hop, k * hop + clip) for k in range(count)]
    regular = 1 if duration <= clip else int(math.floor((duration - clip) / hop + 1e-6)) + 1
    times = []
    for k in range(count):
        start = k * hop if k < regular else max(duration - clip, 0.0)
        times.append((round(start, 3), round(min(start + clip, duration), 3)))
    return times


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class _Item:
    raw: bytes
    stat: os.stat_result | None
    action: str                  # embed, touch, reuse, fail
    sha256: str | None = None
    info: object = None          # AudioInfo
    error: str | None = None
    row_id: int | None = None    # the existing row (touch) or the row to copy from (reuse)
    vectors: np.ndarray | None = None
    times: list[tuple[float, float]] | None = None


class Indexer:
    def __init__(self, pipeline, db_path: str | Path, *, source: str, tokenizer: str | None = None,
                 segments: bool = False, reindex: bool = False, batch_files: int = 32, batch_size: int = 16,
                 tags: str | None = None, template: str = DEFAULT_TEMPLATE, tag_top: int = 5,
                 retry_errors: bool = False, index_kind: str | None = None, part: Part | None = None,
                 progress: bool = True) -> None:
        self.pipeline = pipeline
        self.main_db_path = Path(db_path)
        self.part = part
        self.db_path = part.db_path(self.main_db_path) if part else self.main_db_path
        if segments and pipeline.policy != "sliding":
            raise UsageError(f"--segments: needs sliding windows; {pipeline.name} embeds clips with the "
                             f"{pipeline.policy!r} policy")
        self.info = model_info(pipeline, source, segments, tokenizer)
        self.reindex, self.batch_files, self.batch_size = reindex, batch_files, batch_size
        self.tags, self.template, self.tag_top = tags, template, tag_top
        self.retry_errors, self.index_kind, self.show_progress = retry_errors, index_kind, progress
        self.report = Report()
        self.commits = 0

    def run(self, roots: list[str]) -> Report:
        if self.index_kind is not None:
            store.choose_kind(0, self.index_kind)  # checked before any work
        labels = read_labels(self.tags) if self.tags else None
        with writer_lock(self.db_path):
            db = Database(self.db_path, create=True)
            try:
                self._check_model(db)
                if labels is not None:
                    self._set_vocabulary(db, labels)
                if self.part:  # what the merge may remove from the main database
                    with db.transaction():
                        known = set(json.loads(db.get("roots", "[]")))
                        db.put("roots", json.dumps(sorted(known | {os.fsdecode(path_bytes(r)) for r in roots})))
                files, problems, protected = walk(roots)
                if self.part:
                    files = [f for f in files if self.part.owns(f)]
                self._embed(db, files)
                self._remove_missing(db, files, [path_bytes(r) for r in roots], protected)
                self._tag(db)
                self._finish(db, files, problems)
            finally:
                db.close()
        return self.report

    # ---- steps -------------------------------------------------------------------------------
    def _check_model(self, db: Database) -> None:
        recorded = db.model
        if recorded is not None and recorded.key != self.info.key and not self.reindex:
            raise UsageError(mismatch_message(self.db_path, recorded, self.info))
        if recorded != self.info:  # a new model, or the same one from another path or tokenizer
            with db.transaction():
                db.put("model", self.info.to_json())
                if recorded is not None and recorded.key != self.info.key:
                    db.bump_generation()  # vectors of the old model leave the index until re-embedded

    def _set_vocabulary(self, db: Database, labels: list[str]) -> None:
        vocabulary = json.dumps({"labels": labels, "template": self.template, "top": self.tag_top})
        if db.get("tags") != vocabulary:
            with db.transaction():
                db.put("tags", vocabulary)

    def _embed(self, db: Database, files: list[bytes]) -> None:
        key = self.info.key
        rows = {raw: (fid, size, mtime, sha, status, mkey) for fid, raw, size, mtime, sha, status, mkey in
                db.conn.execute("SELECT id, path, size, mtime_ns, sha256, status, model_key FROM files")}
        todo: list[tuple[bytes, os.stat_result | None]] = []
        for raw in files:
            try:
                st = os.stat(raw)
            except OSError:
                st = None  # the decoder names the cause
            row = rows.get(raw)
            same = row is not None and st is not None and row[1] == st.st_size and row[2] == st.st_mtime_ns
            if same and row[4] == "ok" and row[5] == key:
                self.report.unchanged += 1
            elif same and row[4] == "error" and not self.retry_errors:
                pass  # reported with the failures at the end
            else:
                todo.append((raw, st))
        self._rows = rows
        pending: list[_Item] = []
        queued: list[_Item] = []  # handed to the pipeline, in order
        from ..cli.infer import progress

        with progress(len(todo), "index") as bar:
            self._bar = bar

            def feed() -> Iterator[bytes]:
                for raw, st in todo:
                    item = self._plan(db, raw, st)
                    if item.action == "embed":
                        queued.append(item)
                        yield os.fsdecode(raw)
                    else:
                        pending.append(item)
                        bar.update(1)
                        if len(pending) >= self.batch_files:
                            self._commit(db, pending)

            windows = "all"
            for index, result in self.pipeline.iter_audio_embeddings(feed(), batch_size=self.batch_size,
                                                                     normalize=False, windows=windows):
                item = queued[index]
                queued[index] = None  # type: ignore[call-overload]  # free the memory of written items
                if isinstance(result, ClapkitError):
                    item.action, item.error = "fail", one_line(result)
                else:
                    self._vectors(item, result)
                pending.append(item)
                bar.update(1)
                if len(pending) >= self.batch_files:
                    self._commit(db, pending)
            self._commit(db, pending)

    def _plan(self, db: Database, raw: bytes, st: os.stat_result | None) -> _Item:
        """What to do with a new or changed file: embed, only refresh its stat, copy, or record a failure."""
        from ..audio import AudioError, audio_info, describe

        name = describe(os.fsdecode(raw))  # printable on one line, like the decoder's own messages
        if st is None:
            try:
                os.stat(raw)
            except OSError as e:
                return _Item(raw, None, "fail", error=f"{name}: {e.strerror or 'cannot read'}")
        try:
            sha = sha256_file(raw)
        except OSError as e:
            return _Item(raw, st, "fail", error=f"{name}: cannot read ({e.strerror})")
        row = self._rows.get(raw)
        key = self.info.key
        if row is not None and row[3] == sha and row[4] == "ok" and row[5] == key:
            return _Item(raw, st, "touch", sha256=sha, row_id=row[0])
        twin = db.conn.execute("SELECT id FROM files WHERE sha256 = ? AND status = 'ok' AND model_key = ? LIMIT 1",
                               (sha, key)).fetchone()
        try:
            info = audio_info(os.fsdecode(raw), name=name)
        except AudioError as e:
            return _Item(raw, st, "fail", sha256=sha, error=one_line(e))
        if twin is not None:
            return _Item(raw, st, "reuse", sha256=sha, info=info, row_id=twin[0])
        return _Item(raw, st, "embed", sha256=sha, info=info)

    def _vectors(self, item: _Item, windows) -> None:
        import torch.nn.functional as F

        if self.info.segments:
            vectors = F.normalize(windows, dim=-1)
            item.times = window_times(len(vectors), item.info.duration, self.info.clip_seconds, self.info.hop_seconds)
        else:
            vectors = F.normalize(windows.mean(0), dim=-1)[None]
            item.times = [(0.0, round(item.info.duration, 3) if item.info.duration is not None else None)]
        item.vectors = vectors.numpy().astype(np.float32)

    def _commit(self, db: Database, items: list[_Item]) -> None:
        """Write a batch of files in one transaction, then forget it."""
        if not items:
            return
        now, key = time.time(), self.info.key
        changed_vectors = False
        with db.transaction() as conn:
            for item in items:
                existing = self._rows.get(item.raw)
                if item.action == "touch":
                    conn.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                                 (item.stat.st_size, item.stat.st_mtime_ns, item.row_id))
                    self.report.unchanged += 1
                    continue
                info = item.info
                values = (item.raw, item.stat.st_size if item.stat else None, item.stat.st_mtime_ns if item.stat else None,
                          item.sha256, getattr(info, "duration", None), getattr(info, "sample_rate", None),
                          getattr(info, "channels", None), "error" if item.action == "fail" else "ok", item.error,
                          None if item.action == "fail" else key, now)
                file_id = conn.execute(
                    "INSERT INTO files (path, size, mtime_ns, sha256, duration, sample_rate, channels, status, error, "
                    "model_key, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                    "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
                    "duration = excluded.duration, sample_rate = excluded.sample_rate, channels = excluded.channels, "
                    "status = excluded.status, error = excluded.error, model_key = excluded.model_key, "
                    "tags_key = NULL, indexed_at = excluded.indexed_at RETURNING id", values).fetchone()[0]
                had_vectors = conn.execute("DELETE FROM vectors WHERE file_id = ?", (file_id,)).rowcount
                conn.execute("DELETE FROM tags WHERE file_id = ?", (file_id,))
                changed_vectors = changed_vectors or had_vectors > 0
                if item.action == "fail":
                    self.report.failed.append((display_path(item.raw), item.error))
                    continue
                if item.action == "reuse":
                    # The twin may have been re-embedded or failed earlier in this run: copy only while it is
                    # still this content, embedded by this model; otherwise leave the file for the next run.
                    copied = conn.execute(
                        "INSERT INTO vectors (file_id, start_s, end_s, vector) SELECT ?, v.start_s, v.end_s, v.vector "
                        "FROM vectors v JOIN files f ON f.id = v.file_id WHERE v.file_id = ? AND f.sha256 = ? "
                        "AND f.status = 'ok' AND f.model_key = ? ORDER BY v.id",
                        (file_id, item.row_id, item.sha256, key)).rowcount
                    if copied <= 0:
                        conn.execute("UPDATE files SET model_key = NULL WHERE id = ?", (file_id,))
                        self.report.failed.append((display_path(item.raw), "its identical twin changed during this "
                                                   "run; it will be embedded on the next run"))
                        continue
                    self.report.reused += 1
                else:
                    conn.executemany("INSERT INTO vectors (file_id, start_s, end_s, vector) VALUES (?, ?, ?, ?)",
                                     [(file_id, start, end, to_blob(v)) for v, (start, end) in zip(item.vectors, item.times)])
                    if existing is None:
                        self.report.added += 1
                    else:
                        self.report.changed += 1
                changed_vectors = True
            if changed_vectors:
                db.bump_generation()
            self.commits += 1
            _kill_hook(f"before-commit-{self.commits}")
        _kill_hook(f"after-commit-{self.commits}")
        items.clear()

    def _remove_missing(self, db: Database, files: list[bytes], roots: list[bytes], protected: list[bytes]) -> None:
        present = set(files)
        gone = [(fid, raw) for fid, raw in db.conn.execute("SELECT id, path FROM files")
                if raw not in present and under(raw, roots) and not under(raw, protected)
                and (self.part is None or self.part.owns(raw))]
        if not gone:
            return
        with db.transaction() as conn:
            for start in range(0, len(gone), 500):
                chunk = [fid for fid, _ in gone[start:start + 500]]
                conn.execute(f"DELETE FROM files WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            db.bump_generation()
        self.report.removed = len(gone)

    def _tag(self, db: Database) -> None:
        """Zero-shot tags of every indexed file not yet tagged with the current vocabulary."""
        text = db.get("tags")
        if not text:
            return
        report = tag_files(db, self.pipeline, json.loads(text))
        self.report.tagged = report

    def _finish(self, db: Database, files: list[bytes], problems: list[tuple[str, str]]) -> None:
        counts = db.counts()
        self.report.files, self.report.vectors = counts["files"], counts["vectors"]
        reported = {path for path, _ in self.report.failed}
        present = set(files)
        for raw, error in db.conn.execute("SELECT path, error FROM files WHERE status = 'error'"):
            if raw in present and display_path(raw) not in reported:
                self.report.failed.append((display_path(raw), error))
        self.report.failed += problems
        if self.part:  # searched after the merge; a part needs no FAISS file
            self.report.kind = "none until merged"
            return
        self.report.kind = store.load_or_build(db, self.index_kind).kind


def tags_key(vocabulary: dict) -> str:
    return hashlib.sha256(json.dumps(vocabulary, sort_keys=True).encode()).hexdigest()[:16]


def tag_files(db: Database, pipeline, vocabulary: dict, chunk: int = 1024) -> int:
    """Store each file's ``top`` best labels with their cosine scores; returns how many files were tagged."""
    labels, template, top = vocabulary["labels"], vocabulary["template"], int(vocabulary["top"])
    key, model = tags_key(vocabulary), db.model
    todo = [fid for (fid,) in db.conn.execute(
        "SELECT id FROM files WHERE status = 'ok' AND model_key = ? AND tags_key IS NOT ? ORDER BY id", (model.key, key))]
    if not todo:
        return 0
    text = pipeline.embed_text([template.format(label) for label in labels]).numpy()
    for start in range(0, len(todo), chunk):
        ids = todo[start:start + chunk]
        with db.transaction() as conn:
            for fid in ids:
                vector = db.file_vector(fid)
                if vector is None:  # no vectors (yet): nothing to tag
                    continue
                scores = text @ vector
                best = np.argsort(-scores, kind="stable")[:top]
                conn.execute("DELETE FROM tags WHERE file_id = ?", (fid,))
                conn.executemany("INSERT INTO tags VALUES (?, ?, ?)",
                                 [(fid, labels[j], round(float(scores[j]), 6)) for j in best])
                conn.execute("UPDATE files SET tags_key = ? WHERE id = ?", (key, fid))
    return len(todo)


def _kill_hook(point: str) -> None:
    store._test_hook(point)


def index_files(pipeline, roots: list[str], db_path: str | Path, **options) -> Report:
    """Index the audio files under ``roots`` into ``db_path`` (see :class:`Indexer` for the options)."""
    return Indexer(pipeline, db_path, **options).run(roots)


