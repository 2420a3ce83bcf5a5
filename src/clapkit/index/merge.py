"""Combine part databases (``DB.part-RANK-of-N``, one per process of a scale-out run) into ``DB``.

Each part is a complete index database of the files whose path hashes to its rank (see
:class:`~clapkit.index.indexer.Part`), built and resumed like any other. Merging copies into the
main database every file row that differs from the part's (with its vectors and tags), removes the
main rows under the parts' folders that no part holds any more, and rebuilds the FAISS cache. A
merge interrupted at any point is simply run again.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import store
from .db import Database, ModelInfo
from .indexer import mismatch_message, under, writer_lock

PART = re.compile(r"\.part-(\d+)-of-(\d+)$")
COLUMNS = "path, size, mtime_ns, sha256, duration, sample_rate, channels, status, error, model_key, tags_key, indexed_at"


@dataclass
class MergeReport:
    parts: int = 0
    copied: int = 0
    unchanged: int = 0
    removed: int = 0
    files: int = 0
    vectors: int = 0
    kind: str = ""

    def summary(self) -> str:
        return (f"merged {self.parts} part(s): {self.copied} file(s) copied, {self.unchanged} unchanged, "
                f"{self.removed} removed; the index holds {self.files} file(s), {self.vectors} vector(s) ({self.kind} search)")


def find_parts(db_path: Path) -> list[Path]:
    """The complete set of parts beside ``db_path`` (one world size, every rank), in rank order."""
    found: dict[int, dict[int, Path]] = {}
    for path in db_path.parent.glob(db_path.name + ".part-*-of-*"):
        match = PART.search(path.name)
        if match and path.name == db_path.name + match.group(0):
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    if not found:
        raise UsageError(f"--merge: no part databases {db_path}.part-RANK-of-N beside {db_path}")
    if len(found) > 1:
        raise UsageError(f"--merge: parts of several runs beside {db_path} (of {', '.join(map(str, sorted(found)))} "
                         "processes); remove the old ones")
    world, ranks = next(iter(found.items()))
    missing = [str(r) for r in range(world) if r not in ranks]
    if missing:
        raise UsageError(f"--merge: {db_path}: parts of rank {', '.join(missing)} of {world} are missing")
    return [ranks[r] for r in range(world)]


def merge_parts(db_path: str | Path, parts: list[Path] | None = None, *, reindex: bool = False,
                index_kind: str | None = None, chunk: int = 256) -> MergeReport:
    db_path = Path(db_path)
    parts = parts or find_parts(db_path)
    report = MergeReport(parts=len(parts))
    opened = [Database(p) for p in parts]
    try:
        models = {db.get("model") for db in opened} - {None}
        if len(models) != 1:
            raise UsageError(f"--merge: the parts of {db_path} were built with different models (or hold nothing)")
        model = ModelInfo.from_json(models.pop())
        roots = sorted({root for db in opened for root in json.loads(db.get("roots", "[]"))})
        with writer_lock(db_path):
            main = Database(db_path, create=True)
            try:
                recorded = main.model
                if recorded is not None and recorded.key != model.key and not reindex:
                    raise UsageError(mismatch_message(db_path, recorded, model))
                with main.transaction():
                    if recorded != model:
                        main.put("model", model.to_json())
                        main.bump_generation()
                    for key in ("tags",):
                        value = opened[0].get(key)
                        if value is not None:
                            main.put(key, value)
                held: set[bytes] = set()
                for part in opened:
                    _copy_part(main, part, held, report, chunk)
                _remove(main, held, [r.encode("utf-8", "surrogateescape") for r in roots], report)
                counts = main.counts()
                report.files, report.vectors = counts["files"], counts["vectors"]
                report.kind = store.load_or_build(main, index_kind).kind
            finally:
                main.close()
    finally:
        for db in opened:
            db.close()
    return report


def _copy_part(main: Database, part: Database, held: set[bytes], report: MergeReport, chunk: int) -> None:
    mine = {row[0]: row[1:] for row in main.conn.execute(f"SELECT {COLUMNS}, id FROM files")}
    rows = part.conn.execute(f"SELECT {COLUMNS}, id FROM files ORDER BY id").fetchall()
    todo = []
    for row in rows:
        held.add(row[0])
        ours = mine.get(row[0])
        # same size, mtime, content, status, model and tags: nothing to copy
        if ours is not None and ours[:10] == row[1:11]:
            report.unchanged += 1
        else:
            todo.append(row)
    for start in range(0, len(todo), chunk):
        with main.transaction() as conn:
            for row in todo[start:start + chunk]:
                values, part_id = row[:-1], row[-1]
                file_id = conn.execute(
                    f"INSERT INTO files ({COLUMNS}) VALUES ({','.join('?' * 12)}) ON CONFLICT(path) DO UPDATE SET "
                    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in COLUMNS.split(",")[1:])
                    + " RETURNING id", values).fetchone()[0]
                conn.execute("DELETE FROM vectors WHERE file_id = ?", (file_id,))
                conn.execute("DELETE FROM tags WHERE file_id = ?", (file_id,))
                conn.executemany("INSERT INTO vectors (file_id, start_s, end_s, vector) VALUES (?, ?, ?, ?)",
                                 [(file_id, *r) for r in part.conn.execute(
                                     "SELECT start_s, end_s, vector FROM vectors WHERE file_id = ? ORDER BY id", (part_id,))])
                conn.executemany("INSERT INTO tags VALUES (?, ?, ?)",
                                 [(file_id, *r) for r in part.conn.execute(
                                     "SELECT label, score FROM tags WHERE file_id = ?", (part_id,))])
            main.bump_generation()
        report.copied += len(todo[start:start + chunk])


def _remove(main: Database, held: set[bytes], roots: list[bytes], report: MergeReport) -> None:
    gone = [fid for fid, raw in main.conn.execute("SELECT id, path FROM files") if raw not in held and under(raw, roots)]
    if gone:
        with main.transaction() as conn:
            for start in range(0, len(gone), 500):
                ids = gone[start:start + 500]
                conn.execute(f"DELETE FROM files WHERE id IN ({','.join('?' * len(ids))})", ids)
            main.bump_generation()
    report.removed = len(gone)
