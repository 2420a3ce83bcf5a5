"""Crash safety and scale-out: ``clapkit index`` SIGKILLed at several points (between batches, inside a
batch's transaction, between writing the FAISS file and renaming it) is finished by the next run —
nothing duplicated, orphaned or lost; part databases merge into the same index as one run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from search_support import db_state

import clapkit
from clapkit.cli import main
from clapkit.index import store
from clapkit.index.db import Database

SRC = str(Path(clapkit.__file__).resolve().parents[1])


def run_index(clips, db, model, tokenizer, kill: str | None = None, *extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("CLAPKIT_INDEX_TEST_KILL", None)
    if kill:
        env["CLAPKIT_INDEX_TEST_KILL"] = kill
    return subprocess.run([sys.executable, "-m", "clapkit.cli", "index", str(clips), "--db", str(db), "--model", model,
                           "--tokenizer", tokenizer, "--batch-files", "2", "--json", *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def vectors_by_path(db: Path) -> dict[str, np.ndarray]:
    d = Database(db)
    try:
        return {os.fsdecode(raw): np.frombuffer(blob, "<f4").copy() for raw, blob in d.conn.execute(
            "SELECT f.path, v.vector FROM files f JOIN vectors v ON v.file_id = f.id ORDER BY v.id")}
    finally:
        d.close()


def assert_consistent(db: Path) -> dict:
    state = db_state(db)
    assert state["orphans"] == 0
    assert all(f["vectors"] == (1 if f["status"] == "ok" else 0) for f in state["files"].values()), state["files"]
    return state


def test_sigkill_at_any_point_then_rerun_is_consistent_and_complete(clips, tmp_path, tiny_models, tokenizer):
    reference = tmp_path / "reference.db"
    assert main(["index", str(clips), "--db", str(reference), "--model", tiny_models["a"], "--tokenizer", tokenizer]) == 0
    db = tmp_path / "sounds.db"
    done = 0
    # batches of 2 files: killed after the 1st commit, inside the 2nd transaction, after the 1st again
    for kill, committed in [("after-commit-1", 2), ("before-commit-2", 2), ("after-commit-1", 2)]:
        result = run_index(clips, db, tiny_models["a"], tokenizer, kill)
        assert result.returncode == -signal.SIGKILL, result.stderr
        state = assert_consistent(db)
        done += committed
        assert len(state["files"]) == done  # the killed transaction left nothing; earlier batches kept
    # the last batch, then killed between writing the FAISS file and renaming it into place
    result = run_index(clips, db, tiny_models["a"], tokenizer, "faiss-written")
    assert result.returncode == -signal.SIGKILL
    state = assert_consistent(db)
    assert len(state["files"]) == 8
    assert store.read(store.index_path(db), state["generation"]) is None  # the cache is stale, not half-written
    # searching now rebuilds the index from the database
    assert main(["search", "anything", "--db", str(db), "--top", "20", "--tokenizer", tokenizer]) == 0

    result = run_index(clips, db, tiny_models["a"], tokenizer)
    assert result.returncode == 0, result.stderr
    assert '"added": 0' in result.stdout and '"unchanged": 8' in result.stdout  # nothing embedded twice
    assert_consistent(db)
    assert not list(tmp_path.glob(".sounds.db.faiss.*.tmp"))
    assert store.read(store.index_path(db), db_state(db)["generation"]).count == 8
    got, want = vectors_by_path(db), vectors_by_path(reference)
    assert sorted(got) == sorted(want)
    for path in want:
        np.testing.assert_allclose(got[path], want[path], atol=1e-6)  # batch company: float rounding only


def test_a_damaged_or_foreign_faiss_file_is_rebuilt(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    assert main(["index", str(clips), "--db", str(db), "--model", tiny_models["a"], "--tokenizer", tokenizer]) == 0
    path = store.index_path(db)
    generation = db_state(db)["generation"]
    path.write_bytes(store.HEADER.pack(store.MAGIC, generation, 8) + b"garbage")
    assert store.read(path, generation) is None
    capsys.readouterr()
    assert main(["search", "hum", "--db", str(db), "--top", "3", "--tokenizer", tokenizer]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert store.read(path, generation).count == 8


def test_parts_merge_into_the_same_index_as_one_run(clips, tmp_path, tiny_models, tokenizer, capsys):
    single, db = tmp_path / "single.db", tmp_path / "merged.db"
    common = ["--model", tiny_models["a"], "--tokenizer", tokenizer]
    assert main(["index", str(clips), "--db", str(single), *common]) == 0
    for rank in range(2):
        assert main(["index", str(clips), "--db", str(db), "--part", f"{rank}/2", *common]) == 0
    assert sorted(p.name for p in tmp_path.glob("merged.db.part-*-of-2")) == ["merged.db.part-0-of-2", "merged.db.part-1-of-2"]
    sizes = [len(db_state(tmp_path / f"merged.db.part-{r}-of-2")["files"]) for r in range(2)]
    assert sum(sizes) == 8 and min(sizes) > 0  # disjoint shares
    assert main(["index", "--merge", "--db", str(db)]) == 0
    got, want = vectors_by_path(db), vectors_by_path(single)
    assert sorted(got) == sorted(want)
    for path in want:
        np.testing.assert_allclose(got[path], want[path], atol=1e-6)  # batch company: float rounding only
    # a deletion reaches the merged index through the parts; a second merge changes nothing else
    (clips / "hum-0.wav").unlink()
    for rank in range(2):
        assert main(["index", str(clips), "--db", str(db), "--part", f"{rank}/2", *common]) == 0
    capsys.readouterr()
    assert main(["index", "--merge", "--db", str(db)]) == 0
    assert "0 file(s) copied, 7 unchanged, 1 removed" in capsys.readouterr().err
    assert sorted(vectors_by_path(db)) == sorted(p for p in want if not p.endswith("/hum-0.wav"))
    assert_consistent(db)


def test_merge_needs_every_part(tmp_path, capsys):
    Database(tmp_path / "x.db.part-0-of-3", create=True).close()
    assert main(["index", "--merge", "--db", str(tmp_path / "x.db")]) == 2
    assert "rank 1, 2 of 3 are missing" in capsys.readouterr().err


def test_torchrun_two_processes_index_and_merge(clips, tmp_path, tiny_models, tokenizer):
    pytest.importorskip("torch.distributed.run")
    db = tmp_path / "dist.db"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                             str(29500 + os.getpid() % 1000), "-m", "clapkit.index", str(clips), "--db", str(db),
                             "--model", tiny_models["a"], "--tokenizer", tokenizer],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "merged 2 part(s)" in result.stderr
    state = assert_consistent(db)
    assert len(state["files"]) == 8


def test_a_killed_reindex_is_finished_by_the_next_run(clips, tmp_path, tiny_models, tokenizer):
    db = tmp_path / "sounds.db"
    assert main(["index", str(clips), "--db", str(db), "--model", tiny_models["a"], "--tokenizer", tokenizer]) == 0
    result = run_index(clips, db, tiny_models["b"], tokenizer, "after-commit-2", "--reindex")
    assert result.returncode == -signal.SIGKILL
    state = assert_consistent(db)
    b_key = [f for f in state["files"].values()]
    assert len(b_key) == 8
    from clapkit.index.search import Searcher

    searcher = Searcher(db)
    assert searcher.stats()["files"] == 4 and searcher.stats()["stale"] == 4  # only the new model's vectors are searched
    searcher.close()
    result = run_index(clips, db, tiny_models["b"], tokenizer)  # no --reindex needed to finish it
    assert result.returncode == 0, result.stderr
    assert '"changed": 4' in result.stdout
    d = Database(db)
    assert d.counts() == {"files": 8, "failed": 0, "stale": 0, "vectors": 8}
    d.close()
