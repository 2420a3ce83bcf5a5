"""``clapkit index`` / ``clapkit search`` on generated clips with a tiny random-weight model: what is
stored equals what the pipeline computes, re-runs are incremental (changed, deleted, renamed and
unreadable files), a database built with another model is refused, segments and tags work."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from search_support import RATE, clip, db_state

import clapkit
from clapkit.cli import main
from clapkit.errors import UsageError
from clapkit.index.db import Database
from clapkit.index.store import index_path, read


def index(db, *args, model, tokenizer, capsys=None) -> tuple[int, dict | None]:
    code = main(["index", *map(str, args), "--db", str(db), "--model", model, "--tokenizer", tokenizer, "--json",
                 "--batch-files", "3"])
    report = None
    if capsys is not None:
        captured = capsys.readouterr()
        out = captured.out.strip()
        report = {**json.loads(out.splitlines()[-1]), "stderr": captured.err} if out else {"stderr": captured.err}
    return code, report


def search(db, capsys, *args) -> list[dict]:
    assert main(["search", *map(str, args), "--db", str(db), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_index_stores_the_pipelines_embeddings_and_search_ranks_by_cosine(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    code, report = index(db, clips, model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    assert code == 0 and report["added"] == 8 and report["failed"] == 0 and report["index"] == "flat"
    state = db_state(db)
    assert sorted(state["files"]) == sorted(str(p) for p in clips.rglob("*.wav"))
    assert all(f["status"] == "ok" and f["vectors"] == 1 for f in state["files"].values()) and state["orphans"] == 0
    assert state["model"]["name"] == "tiny-search" and state["model"]["dim"] == 16 and not state["model"]["segments"]

    model = clapkit.load(tiny_models["a"], tokenizer=tokenizer)
    files = sorted(clips.rglob("*.wav"))
    expected = model.embed_audio([str(f) for f in files]).numpy()
    stored = Database(db)
    by_path = {os.fsdecode(raw): np.frombuffer(blob, "<f4") for raw, blob in stored.conn.execute(
        "SELECT f.path, v.vector FROM files f JOIN vectors v ON v.file_id = f.id")}
    stored.close()
    np.testing.assert_allclose(np.stack([by_path[str(f)] for f in files]), expected, atol=1e-6)

    hits = search(db, capsys, "a high whistle", "--top", "5")
    query = model.embed_text(["a high whistle"]).numpy()[0]
    cosines = {str(f): float(e @ query) for f, e in zip(files, expected)}
    best = sorted(cosines, key=lambda p: -cosines[p])[:5]
    assert [h["path"] for h in hits] == best
    assert [h["score"] for h in hits] == pytest.approx([cosines[p] for p in best], abs=1e-5)
    assert all(h["name"] == os.path.basename(h["path"]) and h["duration"] == pytest.approx(0.6) for h in hits)
    # the FAISS cache is on disk, stamped with the database's generation
    assert read(index_path(db), db_state(db)["generation"]) is not None


def test_search_like_an_indexed_file_leaves_it_out_and_like_a_new_file_embeds_it(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    capsys.readouterr()
    target = clips / "hum-0.wav"
    hits = search(db, capsys, "--like", target, "--top", "3")
    assert len(hits) == 3 and str(target) not in [h["path"] for h in hits]
    outside = tmp_path / "query.wav"
    shutil.copy(target, outside)
    hits = search(db, capsys, "--like", outside, "--top", "1")
    assert hits[0]["path"] == str(target) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_rerun_embeds_only_new_and_changed_files_and_removes_deleted_ones(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    args = dict(model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    assert index(db, clips, **args)[0] == 0
    generation = db_state(db)["generation"]
    code, report = index(db, clips, **args)
    assert code == 0 and report["added"] == report["changed"] == report["removed"] == 0 and report["unchanged"] == 8
    assert db_state(db)["generation"] == generation  # nothing written, the FAISS cache stays valid

    sf.write(clips / "hum-0.wav", clip(1, 7), RATE)  # new content
    (clips / "noise-0.wav").unlink()
    shutil.move(clips / "sub" / "clicks-1.wav", clips / "renamed.wav")
    sf.write(clips / "sub" / "new.wav", clip(2, 9), RATE)
    os.utime(clips / "whistle-0.wav", ns=(1, 10**18))  # touched, same content: not re-embedded
    code, report = index(db, clips, **args)
    assert code == 0
    assert (report["added"], report["changed"], report["reused"], report["removed"]) == (1, 1, 1, 2)
    state = db_state(db)
    assert sorted(state["files"]) == sorted(str(p) for p in clips.rglob("*.wav"))
    assert all(f["vectors"] == 1 for f in state["files"].values()) and state["orphans"] == 0
    paths = [h["path"] for h in search(db, capsys, "noise", "--top", "20")]
    assert str(clips / "noise-0.wav") not in paths and str(clips / "renamed.wav") in paths and len(paths) == 8


def test_unreadable_files_are_recorded_reported_and_the_rest_indexed(clips, tmp_path, tiny_models, tokenizer, capsys):
    (clips / "broken.wav").write_bytes(b"RIFF not really")
    (clips / "empty.flac").write_bytes(b"")
    db = tmp_path / "sounds.db"
    code, report = index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.wav" in err and "empty.flac" in err and "2 input(s) failed" in err and "Traceback" not in err
    state = db_state(db)
    assert state["files"][str(clips / "broken.wav")]["status"] == "error"
    assert state["files"][str(clips / "broken.wav")]["error"].startswith(str(clips / "broken.wav"))
    assert sum(f["status"] == "ok" for f in state["files"].values()) == 8
    # still reported on a re-run, and fixed files are picked up
    sf.write(clips / "broken.wav", clip(0, 3), RATE)
    code, _ = index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)
    err = capsys.readouterr().err
    assert code == 1 and "empty.flac" in err and "broken.wav" not in err
    assert db_state(db)["files"][str(clips / "broken.wav")]["status"] == "ok"


def test_another_model_is_refused_in_one_line_and_reindex_re_embeds_in_place(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    capsys.readouterr()
    assert index(db, clips, model=tiny_models["b"], tokenizer=tokenizer)[0] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reindex" in err and tiny_models["a"] in err
    assert main(["search", "dog", "--db", str(db), "--model", tiny_models["b"], "--tokenizer", tokenizer]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tiny-search" in err and tiny_models["a"] in err and "Traceback" not in err

    code, report = index(db, clips, "--reindex", model=tiny_models["b"], tokenizer=tokenizer, capsys=capsys)
    assert code == 0 and report["changed"] == 8
    expected = clapkit.load(tiny_models["b"]).embed_audio([str(clips / "hum-0.wav")]).numpy()[0]
    hits = search(db, capsys, "--like", clips / "hum-0.wav", "--top", "1", "--model", tiny_models["b"], "--tokenizer", tokenizer)
    assert hits[0]["path"] != str(clips / "hum-0.wav")
    state = Database(db)
    fid = state.conn.execute("SELECT id FROM files WHERE path = ?", (os.fsencode(str(clips / "hum-0.wav")),)).fetchone()[0]
    np.testing.assert_allclose(state.file_vector(fid), expected, atol=1e-6)
    state.close()


def test_segments_name_the_best_time_range_once_per_file(tmp_path, tiny_models, tokenizer, capsys):
    folder = tmp_path / "long"
    folder.mkdir()
    wave = np.concatenate([clip(0, 0, 1.0), clip(1, 0, 1.0), clip(3, 0, 0.7)])  # 2.7 s: hum, whistle, clicks
    sf.write(folder / "long.wav", wave, RATE)
    sf.write(folder / "short.wav", clip(2, 0, 0.3), RATE)
    db = tmp_path / "seg.db"
    assert main(["index", str(folder), "--db", str(db), "--model", tiny_models["a"], "--tokenizer", tokenizer,
                 "--segments", "--hop", "0.25"]) == 0
    state = db_state(db)
    # 0.5 s windows every 0.25 s over 2.7 s: starts 0 … 2.0 (9), then one aligned to the end (2.2)
    assert state["files"][str(folder / "long.wav")]["vectors"] == 10
    assert state["files"][str(folder / "short.wav")]["vectors"] == 1
    capsys.readouterr()
    model = clapkit.load(tiny_models["a"], tokenizer=tokenizer, hop_seconds=0.25)
    windows = model.embed_audio([str(folder / "long.wav")], windows="all")[0].numpy()
    segment = wave[int(1.25 * RATE):int(1.75 * RATE)]
    sf.write(tmp_path / "q.wav", segment, RATE)
    hits = search(db, capsys, "--like", tmp_path / "q.wav", "--top", "5")
    assert [h["name"] for h in hits] == ["long.wav", "short.wav"]  # one hit per file
    assert (hits[0]["start"], hits[0]["end"]) == (1.25, 1.75) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(np.linalg.norm(windows, axis=1), 1, atol=1e-5)


def test_tags_are_stored_as_cosines_and_filter_the_search(clips, tmp_path, tiny_models, tokenizer, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("# sound kinds\nhum\nwhistle\n\nnoise\nclicks\nhum\n")
    db = tmp_path / "sounds.db"
    assert main(["index", str(clips), "--db", str(db), "--model", tiny_models["a"], "--tokenizer", tokenizer,
                 "--tags", str(labels), "--tag-top", "2"]) == 0
    capsys.readouterr()
    model = clapkit.load(tiny_models["a"], tokenizer=tokenizer)
    text = model.embed_text([f"this is the sound of {x}" for x in ["hum", "whistle", "noise", "clicks"]]).numpy()
    audio = model.embed_audio([str(clips / "hum-0.wav")]).numpy()[0]
    hits = search(db, capsys, "--like", clips / "whistle-0.wav", "--top", "20")
    tags = {h["path"]: h["tags"] for h in hits}[str(clips / "hum-0.wav")]
    expected = sorted(zip(["hum", "whistle", "noise", "clicks"], text @ audio), key=lambda t: -t[1])[:2]
    assert [(t["label"], t["score"]) for t in tags] == [(label, pytest.approx(s, abs=1e-4)) for label, s in expected]

    label = expected[0][0]
    tagged = search(db, capsys, "anything", "--tag", label, "--top", "20")
    assert tagged and all(label in [t["label"] for t in h["tags"]] for h in tagged)
    assert len(tagged) < 8 or all(len(h["tags"]) == 2 for h in tagged)
    assert search(db, capsys, "anything", "--tag", "no such label") == []
    by_tag = search(db, capsys, "--tag", label, "--top", "20")  # a tag alone: its files by the tag's cosine
    scores = [next(t["score"] for t in h["tags"] if t["label"] == label) for h in by_tag]
    assert [h["score"] for h in by_tag] == pytest.approx(scores, abs=1e-4) and scores == sorted(scores, reverse=True)
    cut = sorted(scores)[len(scores) // 2]
    assert all(h["score"] >= cut for h in search(db, capsys, "--tag", label, "--min-score", str(cut)))
    assert search(db, capsys, "anything", "--min-score", "1") == []
    with pytest.raises(SystemExit):  # argparse refuses it in one line
        main(["search", "x", "--db", str(db), "--min-score", "2"])
    assert "must be a cosine score between -1 and 1" in capsys.readouterr().err


def test_missing_folder_removes_nothing_and_symlink_loops_are_reported(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    os.symlink(clips, clips / "sub" / "loop")
    code, report = index(db, clips, model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    assert code == 1 and report["files"] == 8  # each file once; the loop is a failure
    assert "symbolic link loop" in report["stderr"]
    moved = tmp_path / "unmounted"
    shutil.move(clips, moved)
    code, report = index(db, clips, model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    assert code == 1 and report["removed"] == 0 and report["files"] == 8


@pytest.mark.parametrize("argv, cause", [
    (["search", "dog", "--db", "{tmp}/none.db"], "does not exist"),
    (["search", "--db", "{tmp}/x.db"], "give a text query"),
    (["search", "dog", "--db", "{tmp}/plain.txt"], "not a clapkit index"),
    (["index", "{tmp}", "--db", "{tmp}/x.db", "--tags", "{tmp}/none.txt"], "--tags"),
])
def test_bad_invocations_are_one_line(tmp_path, capsys, argv, cause):
    (tmp_path / "plain.txt").write_text("hello")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and cause in err and "Traceback" not in err


def test_the_example_clips_and_generated_audio_are_found_by_example(clips, tmp_path, tiny_models, tokenizer, capsys):
    examples = Path(__file__).resolve().parents[2] / "examples"
    db = tmp_path / "sounds.db"
    code, report = index(db, examples, clips, model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    audio_examples = [p for p in examples.iterdir() if p.suffix in (".oga", ".flac")]
    assert code == 0 and report["files"] == len(audio_examples) + 8  # the examples and the 8 generated clips
    for name in ("bell.oga", "camera-shutter.oga"):
        hits = search(db, capsys, "--like", examples / name, "--top", "10", "--model", tiny_models["a"])
        assert hits[0]["name"] != name and name not in [h["name"] for h in hits]  # an indexed file leaves itself out
        copy = tmp_path / f"copy-{name}"
        shutil.copy(examples / name, copy)
        hits = search(db, capsys, "--like", copy, "--top", "1")
        assert hits[0]["path"] == str(examples / name) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_another_hop_or_segments_setting_is_refused_like_another_model(clips, tmp_path, tiny_models, tokenizer, capsys):
    db = tmp_path / "sounds.db"
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    for extra in (["--segments"], ["--hop", "0.25"]):
        capsys.readouterr()
        assert main(["index", str(clips), "--db", str(db), "--tokenizer", tokenizer, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--reindex" in err
    # without --model a re-run uses the database's own model
    assert main(["index", str(clips), "--db", str(db), "--tokenizer", tokenizer]) == 0


def test_an_open_searcher_picks_up_a_rerun(clips, tmp_path, tiny_models, tokenizer):
    from clapkit.index.search import Searcher

    db = tmp_path / "sounds.db"
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    searcher = Searcher(db)
    assert searcher.refresh() is False
    target = clips / "hum-0.wav"
    shutil.copy(target, clips / "late.wav")
    (clips / "noise-0.wav").unlink()
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    before = {h.name for h in searcher.like(searcher.file_id(str(target)), 20)}
    assert "late.wav" not in before
    assert searcher.refresh() is True
    after = {h.name for h in searcher.like(searcher.file_id(str(target)), 20)}
    assert "late.wav" in after and "noise-0.wav" not in after and len(after) == 7
    searcher.close()


def test_file_names_that_are_not_utf8_are_indexed_and_shown_escaped(tmp_path, tiny_models, tokenizer, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"caf\xe9 \x1b[31m.wav")
    with open(raw, "wb") as f:
        sf.write(f, clip(0, 0), RATE, format="WAV")
    db = tmp_path / "sounds.db"
    code, report = index(db, folder, model=tiny_models["a"], tokenizer=tokenizer, capsys=capsys)
    assert code == 0 and report["files"] == 1
    hits = search(db, capsys, "anything")
    assert hits[0]["path"] == str(folder) + "/caf\\xe9 \x1b[31m.wav"
    main(["search", "anything", "--db", str(db)])
    out = capsys.readouterr().out
    assert "caf\\xe9 \\x1b[31m.wav" in out and "\x1b" not in out and out.count("\n") == 1


def test_help_answers_without_importing_torch_numpy_or_faiss():
    import subprocess
    import sys

    code = ("import sys, clapkit.cli as c; p = c.build_parser(); "
            "print(any(m in sys.modules for m in ('torch', 'numpy', 'faiss', 'fastapi')))")
    env = {**os.environ, "PYTHONPATH": str(Path(clapkit.__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "False", done.stderr
    for command in ("index", "search", "serve"):
        done = subprocess.run([sys.executable, "-m", "clapkit.cli", command, "--help"], capture_output=True, text=True,
                              timeout=60, env=env)
        assert done.returncode == 0 and f"usage: clapkit {command}" in done.stdout


def test_segments_need_sliding_windows(tmp_path, tiny_models):
    from clapkit.errors import UsageError
    from clapkit.index.indexer import Indexer

    model = clapkit.load(tiny_models["a"], policy="start")
    with pytest.raises(UsageError, match="--segments: needs sliding windows; tiny-search embeds clips with the 'start'"):
        Indexer(model, tmp_path / "x.db", source="x", segments=True)


def test_a_searcher_with_a_model_keeps_its_index_when_the_database_is_reindexed_with_another(
        clips, tmp_path, tiny_models, tokenizer):
    from clapkit.index.search import Searcher

    db = tmp_path / "sounds.db"
    assert index(db, clips, model=tiny_models["a"], tokenizer=tokenizer)[0] == 0
    searcher = Searcher(db, clapkit.load(tiny_models["a"], tokenizer=tokenizer))
    assert len(searcher.text("a high whistle", 3)) == 3
    assert index(db, clips, "--reindex", model=tiny_models["b"], tokenizer=tokenizer)[0] == 0
    assert searcher.refresh() is False  # model b's vectors must not be scored against model a's queries
    assert "tiny-search" in searcher.stale_reason and "--reindex" in searcher.stale_reason
    with pytest.raises(UsageError, match="was indexed with tiny-search"):
        searcher.text("a high whistle", 3)
    searcher.close()
