"""``clapkit eval`` end to end on a tiny random model and offline-style manifests: every task gives its
figures with bootstrap intervals, missing data is a one-line skip, unreadable clips are left out and
named, the files and plots are written, and a second run with another prompt embeds no audio."""
import json

import pytest
import soundfile as sf
from search_support import RATE, clip, save_tiny_model
from shared_data import require

import clapkit
from clapkit.cli import main
from clapkit.eval.cache import EmbeddingCache, audio_key
from clapkit.eval.runner import Evaluator
from clapkit.eval.tasks import TASKS, select_tasks

FAMILIES = ["bass", "flute", "organ"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """<root>/offline/eval_gm.jsonl (3 families x 4 clips, one file broken) and manifest.jsonl (test split)."""
    root = tmp_path_factory.mktemp("data")
    offline = root / "offline"
    (offline / "clips").mkdir(parents=True)
    gm, corpus = [], []
    for kind, family in enumerate(FAMILIES):
        for variant in range(4):
            path = offline / "clips" / f"{family}-{variant}.wav"
            sf.write(path, clip(kind, variant), RATE)
            gm.append({"path": f"clips/{path.name}", "captions": [f"a {family} note"], "labels": [family, f"{family} {variant}"],
                       "split": "eval_gm"})
            corpus.append({"path": f"clips/{path.name}", "captions": [f"a {family} sound", f"the {family} again"],
                           "split": "test" if variant < 3 else "train"})
    (offline / "clips" / "broken.wav").write_bytes(b"RIFF....not audio")
    gm.append({"path": "clips/broken.wav", "captions": ["?"], "labels": ["organ", "organ 9"], "split": "eval_gm"})
    (offline / "eval_gm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gm))
    (offline / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def evaluator(model, data_root, cache_dir, **kw):
    pipeline = clapkit.load(model, tokenizer=str(require("tokenizers", "gpt2")))
    return Evaluator(pipeline, data_root, cache=EmbeddingCache(cache_dir, audio_key(pipeline)), resamples=200,
                     show_progress=False, **kw)


def test_every_offline_task_reports_figures_or_a_one_line_skip(model, data_root, tmp_path):
    outcomes = evaluator(model, data_root, tmp_path / "cache").run(select_tasks("offline"))
    results = {(r.task, r.metric): r for o in outcomes for r in o.results}
    family = results[("offline_gm_family", "accuracy")]
    assert family.n == 12 and 0 <= family.ci_low <= family.value <= family.ci_high <= 1
    assert "1 clip(s) unreadable" in family.status and "broken.wav" in family.status
    assert results[("offline_t2a", "R@10")].value == 1.0  # 9 clips: every clip is within 10
    assert results[("offline_a2t", "R@1")].n == 9
    digits = results[("offline_digits", "accuracy")]
    assert digits.status.startswith("skipped: ") and "eval_digits.jsonl not found" in digits.status and "\n" not in digits.status
    drums = results[("offline_drums", "accuracy")]
    assert drums.value is None and drums.status.startswith("skipped")


def test_a_paper_task_without_its_dataset_names_the_folder_and_layout(model, data_root, tmp_path):
    outcome = evaluator(model, data_root, tmp_path / "cache").run_task(TASKS["esc50"])
    status = outcome.results[0].status
    assert status.startswith("skipped: ") and "ESC-50 not found" in status and "meta/esc50.csv" not in status


def test_a_second_run_with_another_prompt_embeds_no_audio(model, data_root, tmp_path):
    first = evaluator(model, data_root, tmp_path / "cache")
    first.run([TASKS["offline_gm_family"]])
    again = evaluator(model, data_root, tmp_path / "cache", templates=["a recording of a {}", "{}"])
    outcome = again.run_task(TASKS["offline_gm_family"])
    assert first.computed == 12 and again.computed == 0
    assert outcome.results[0].n == 12


def test_the_command_writes_the_report_files(model, data_root, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", "--model", model, "--tokenizer", str(require("tokenizers", "gpt2")), "--tasks",
                 "offline_gm_family,offline_t2a,offline_digits", "--data-root", str(data_root), "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--resamples", "100", "--probe"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["confusion_offline_gm_family.png", "recall_offline_t2a.png", "results.csv", "results.json",
                     "results.md", "tasks_vs_paper.png"]
    report = json.loads((out / "results.json").read_text())
    entries = {(r["task"], r["metric"]) for r in report["results"]}
    assert ("offline_gm_family", "probe accuracy") in entries and ("offline_t2a", "mAP@10") in entries
    assert set(report["results"][0]) == {"name", "metric", "value", "ci_low", "ci_high", "n", "status", "paper",
                                         "paper_2022", "task", "note"}
    assert "| GM instrument families (offline) | accuracy |" in (out / "results.md").read_text()
    assert "offline_digits" in capsys.readouterr().out


def test_the_registry_has_every_paper_task_with_its_figure():
    paper = [t for t in TASKS.values() if not t.offline]
    assert len(paper) == 26
    assert all(t.paper for t in paper)
    assert TASKS["esc50"].paper["accuracy"] == 0.939 and TASKS["esc50"].paper_2022["accuracy"] == 0.826
    assert TASKS["clotho_t2a"].paper == {"R@1": 0.157, "mAP@10": 0.257}
    assert TASKS["nsynth_pitch"].label_text("60") == "C4"


def test_unknown_tasks_are_named(capsys, tmp_path):
    assert main(["eval", "--tasks", "esc50,bogus", "--data-root", str(tmp_path)]) == 2
    assert "unknown task 'bogus'" in capsys.readouterr().err
