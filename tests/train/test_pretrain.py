"""``clapkit train --stage audio-pretrain`` end to end on a tiny model: the answer loss falls, a run
resumes bitwise, validation scores each task, a contrastive run takes the pretrained audio tower bit
for bit, and the run answers prompts (``clapkit caption --prompt``). Offline: the decoder's WordPiece
vocabulary comes from the installed all-MiniLM-L6-v2 package."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import (
    assert_same_weights,
    tiny_model_config,
    tiny_pretrain_config,
    train_on_two_ranks,
    training_process,
    wait_for_checkpoint,
    write_corpus,
)

import clapkit
from clapkit.models.clapcap import question_sequences
from clapkit.models.config import parse_config
from clapkit.models.factory import create_model
from clapkit.train.config import resolve
from clapkit.train.distributed import init_world
from clapkit.train.engine import Trainer, init_audio_tower
from clapkit.train.main import main
from clapkit.train.metrics import read_metrics

STEPS = 40
PITCH = {0: 45, 1: 93, 2: None, 3: None}  # the tonal sounds get notes: A 2 and A 6
FAMILY = {0: "low tone", 1: "high tone", 2: "noise", 3: "clicks"}


def add_fields(manifest: str) -> str:
    """The tiny corpus with task fields: a family per sound kind, notes for the tonal ones."""
    lines = []
    for line in Path(manifest).read_text().splitlines():
        record = json.loads(line)
        label = int(Path(record["path"]).stem.split("-")[1])
        record["family"] = FAMILY[label]
        if PITCH[label] is not None:
            record["pitch"] = PITCH[label]
        lines.append(json.dumps(record))
    Path(manifest).write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("pretrain-corpus")
    model = folder / "tiny-pretrain.json"
    model.write_text(json.dumps(tiny_pretrain_config()))
    return {"train": add_fields(write_corpus(folder / "train")),
            "val": add_fields(write_corpus(folder / "val", per_label=2, name="val")), "model": str(model)}


def args(corpus: dict, out: Path, *extra: str) -> list[str]:
    return ["--stage", "audio-pretrain", "--model", corpus["model"], "--train", corpus["train"], "--out", str(out),
            "--steps", str(STEPS), "--batch-size", "8", "--lr", "1e-2", "--save-every", "8", "--log-every", "1",
            "--tasks", "label=1,family=1,note=1", *extra]


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain-runs") / "reference"
    assert main(args(corpus, out, "--val", corpus["val"], "--val-every", "20")) == 0
    return out


def test_the_answer_loss_falls_and_validation_scores_each_task(run):
    records = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses) == STEPS and sum(losses[-4:]) / 4 < 0.6 * sum(losses[:4]) / 4
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [20, 40] and val[1]["val_loss"] < val[0]["val_loss"]
    tasks = val[1]["tasks"]
    assert set(tasks) == {"label", "family", "note"}
    assert tasks["label"]["questions"] == tasks["family"]["questions"] == 8 and tasks["note"]["questions"] == 4
    assert all(0 <= t["accuracy"] <= 1 and t["majority"] == pytest.approx(0.25 if n != "note" else 0.5)
               for n, t in tasks.items())
    mixture = next(r for r in records if r["kind"] == "tasks")["tasks"]
    assert {r["task"]: r["clips"] for r in mixture} == {"label": 24, "family": 24, "note": 12}
    assert sum(r["share"] for r in mixture) == pytest.approx(1.0)
    assert (run / "curves.png").stat().st_size > 0


def test_a_seeded_run_is_bitwise_identical_and_resumes_exactly(run, corpus, tmp_path):
    again = tmp_path / "again"
    assert main(args(corpus, again, "--val", corpus["val"], "--val-every", "20")) == 0
    assert (again / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()
    stopped = tmp_path / "stopped"
    process = training_process(args(corpus, stopped, "--val", corpus["val"], "--val-every", "12"))
    wait_for_checkpoint(stopped, "step-8", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert main(["--resume", str(stopped)]) == 0
    assert (stopped / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()


def test_micro_batches_accumulate_the_whole_batchs_gradient(corpus, tmp_path):
    config = resolve({"stage": "audio-pretrain", "model": corpus["model"], "train": [corpus["train"]], "steps": 1,
                      "out": str(tmp_path / "run"), "batch_size": 8, "batchnorm": "frozen"})
    run = Trainer(config, init_world("cpu"))
    run._set_train_mode()
    batch = next(run.data.batches(0))
    input_ids, targets = question_sequences(run.pipeline.tokenizer, batch.prompts, batch.captions)
    gradients = []
    for micro in (None, 3):
        run.optimizer.zero_grad(set_to_none=True)
        loss = run.step.backward(batch.waveforms, input_ids, targets, micro)
        gradients.append((float(loss), {n: p.grad.clone() for n, p in run.model.named_parameters() if p.grad is not None}))
    (whole_loss, whole), (chunked_loss, chunked) = gradients
    assert chunked_loss == pytest.approx(whole_loss, rel=1e-6) and whole.keys() == chunked.keys()
    assert len(whole) == len([p for p in run.model.parameters() if p.requires_grad])
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-5, atol=1e-6, msg=name)


def test_two_ddp_ranks_equal_one_process_at_the_same_global_batch(corpus, tmp_path):
    """Ranks hold different numbers of answer tokens: the loss is scaled so that DDP's average is
    still the global token mean."""
    steps = ["--steps", "4", "--save-every", "4"]
    assert main([*args(corpus, tmp_path / "single", "--batchnorm", "frozen"), *steps]) == 0
    train_on_two_ranks([*args(corpus, tmp_path / "ddp", "--batchnorm", "frozen"), *steps])
    assert_same_weights(tmp_path / "single", tmp_path / "ddp", steps=4, lr=1e-2, atol=1e-5)


def test_a_contrastive_run_starts_from_the_pretrained_audio_tower_bit_for_bit(run):
    config = parse_config(tiny_model_config(), "tiny-test")
    model = create_model(config)
    init_audio_tower(model, config, str(run))
    pretrained = load_file(run / "model.safetensors")
    tower = {k.removeprefix("clap."): v for k, v in pretrained.items() if k.startswith("clap.audio.")}
    state = model.state_dict()
    assert tower and all(torch.equal(state[k], v) for k, v in tower.items())


def test_the_run_answers_prompts(run):
    model = clapkit.load(run)
    clip = torch.randn(8000).numpy()
    answer = model.caption([clip], sample_rate=16000, prompt="which instrument family is playing?")
    assert len(answer) == 1 and isinstance(answer[0], str) and "[SEP]" not in answer[0]
    # the greedy answer is the decoder's argmax given the prompt: check it against teacher forcing
    greedy = model.caption([clip], sample_rate=16000, prompt="which instrument family is playing?", beam_size=1)[0]
    ids, targets = question_sequences(model.tokenizer, ["which instrument family is playing?"], [greedy])
    with torch.no_grad():
        logits = model.model(torch.from_numpy(clip)[None], ids, targets != -100)
    assert logits.argmax(-1).tolist() == targets[targets != -100].tolist()


def test_caption_cli_answers_a_prompt_with_the_apis_answer(run, tmp_path, capsys):
    import soundfile as sf

    from clapkit.cli import main as cli

    wav = tmp_path / "a.wav"
    sf.write(wav, torch.randn(8000).numpy() * 0.1, 16000)
    assert cli(["caption", str(wav), "--model", str(run), "--prompt", "which note is played?", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["caption"] == clapkit.load(run).caption([str(wav)], prompt="which note is played?")[0]


@pytest.mark.parametrize("extra, message", [
    (["--stage", "contrastive", "--tasks", "label"], "--tasks: the task mixture is an option of --stage audio-pretrain"),
    (["--lock-audio"], "--lock-audio: not an option of --stage audio-pretrain"),
    (["--tasks", "colour"], "--tasks: unknown task 'colour'"),
])
def test_wrong_options_are_refused_in_one_line(corpus, tmp_path, capsys, extra, message):
    assert main([*args(corpus, tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_stage_and_the_model_must_agree(corpus, tmp_path, capsys):
    contrastive = tmp_path / "contrastive.json"
    contrastive.write_text(json.dumps(tiny_model_config()))
    pretrain_args = args(corpus, tmp_path / "a")
    assert main([*pretrain_args[:2], "--model", str(contrastive), *pretrain_args[4:]]) == 2
    assert "has no decoder to answer with" in capsys.readouterr().err
    assert main(["--model", corpus["model"], "--train", corpus["train"], "--out", str(tmp_path / "b"),
                 "--steps", "1", "--batch-size", "8"]) == 2
    assert "is not a contrastive model" in capsys.readouterr().err
