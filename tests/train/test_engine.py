"""``clapkit train`` end to end on a tiny model: seeded runs are bitwise identical, a SIGKILLed run
resumes bitwise identical, GradCache and DDP give the full batch's gradients, and every fault
(non-finite loss, full disk, bad clips, wrong resume) behaves as documented."""
from __future__ import annotations

import errno
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from shared_data import require
from tiny import (
    assert_same_weights,
    train_on_two_ranks,
    training_process,
    wait_for_checkpoint,
    write_corpus,
    write_model_config,
)

import clapkit
from clapkit.train import checkpoint
from clapkit.train.config import resolve
from clapkit.train.distributed import init_world
from clapkit.train.engine import Trainer
from clapkit.train.main import main

STEPS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("corpus")
    return {"train": write_corpus(folder / "train"), "val": write_corpus(folder / "val", per_label=2, name="val"),
            "model": write_model_config(folder), "model_dropout": write_model_config_named(folder, 0.3),
            "tokenizer": str(require("tokenizers", "gpt2"))}


def write_model_config_named(folder: Path, dropout: float) -> str:
    target = folder / f"dropout-{dropout}"
    target.mkdir()
    return write_model_config(target, dropout)


def args(corpus: dict, out: Path, *extra: str, model: str = "model") -> list[str]:
    return ["--model", corpus[model], "--train", corpus["train"], "--out", str(out), "--steps", str(STEPS),
            "--batch-size", "8", "--lr", "3e-3", "--tokenizer", corpus["tokenizer"], "--save-every", "2",
            "--log-every", "1", *extra]


def weights(run: Path) -> bytes:
    return (run / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference_run(corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "reference"
    assert main(args(corpus, run, "--val", corpus["val"], "--val-every", "3")) == 0
    return run


def test_a_run_folder_holds_everything_and_loads(reference_run, corpus):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "curves.png", "checkpoints/LATEST"):
        assert (reference_run / name).exists(), name
    assert list((reference_run / "tensorboard").iterdir())
    recorded = json.loads((reference_run / "config.json").read_text())
    assert recorded["training"]["steps"] == STEPS and recorded["name"] == "tiny-test"
    records = [json.loads(line) for line in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, STEPS + 1))
    assert {"t2a_r1", "t2a_r10", "a2t_r1", "a2t_r10", "val_loss"} <= set(next(r for r in records if r["kind"] == "val"))
    pipeline = clapkit.load(reference_run, tokenizer=corpus["tokenizer"])
    assert pipeline.embed_text(["a low hum"]).shape == (1, 16)


def test_seeded_runs_are_bitwise_identical(reference_run, corpus, tmp_path):
    assert main(args(corpus, tmp_path / "again", "--val", corpus["val"], "--val-every", "3")) == 0
    assert weights(tmp_path / "again") == weights(reference_run)
    assert main(args(corpus, tmp_path / "other-seed", "--seed", "1")) == 0
    assert weights(tmp_path / "other-seed") != weights(reference_run)


def train_process(corpus: dict, run: Path, *extra: str) -> subprocess.Popen:
    return training_process(args(corpus, run, *extra))


def sigkill_and_resume(corpus: dict, run: Path, kill_after: list[str]) -> None:
    for name in kill_after:
        process = train_process(corpus, run, "--val", corpus["val"], "--val-every", "3",
                                *(["--resume", str(run)] if (run / "checkpoints").exists() else []))
        wait_for_checkpoint(run, name, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert main(["--resume", str(run)]) == 0


def test_a_sigkilled_run_resumes_bitwise_identical(reference_run, corpus, tmp_path):
    sigkill_and_resume(corpus, tmp_path / "killed", ["step-2"])
    assert weights(tmp_path / "killed") == weights(reference_run)


@pytest.mark.slow
def test_killed_at_three_points_and_resumed_ends_bitwise_identical(reference_run, corpus, tmp_path):
    sigkill_and_resume(corpus, tmp_path / "killed3", ["step-2", "step-4", "step-6"])
    assert weights(tmp_path / "killed3") == weights(reference_run)


def test_sigterm_saves_and_exits_cleanly(corpus, tmp_path):
    run = tmp_path / "terminated"
    process = train_process(corpus, run, "--save-every", "100")
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0 and "checkpoint saved" in err and "--resume" in err
    assert checkpoint.latest(run) is not None


def test_resuming_with_another_cpu_thread_count_warns_that_the_bits_will_differ(corpus, tmp_path, capsys):
    saved = trainer(corpus, tmp_path / "run").save()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        trainer(corpus, tmp_path / "other").resume(saved)
    finally:
        torch.set_num_threads(threads)
    warning = capsys.readouterr().err
    assert f"saved by a run with {threads} CPU threads" in warning and f"OMP_NUM_THREADS={threads}" in warning
    trainer(corpus, tmp_path / "same").resume(saved)
    assert "CPU threads" not in capsys.readouterr().err


# ---- gradients: GradCache and DDP equal the full batch ------------------------------------------

def trainer(corpus: dict, out: Path, *extra: str, model: str = "model") -> Trainer:
    from clapkit.train.main import FLAGS

    flags = {"model": corpus[model], "train": [corpus["train"]], "out": str(out), "steps": 2, "batch_size": 8,
             "tokenizer": corpus["tokenizer"], "batchnorm": "frozen"}
    for key, value in zip(extra[::2], extra[1::2]):
        assert key in FLAGS
        flags[key] = value
    return Trainer(resolve(flags), init_world("cpu"))


def gradients_after(step, trainer: Trainer, batch, rng_seed: int) -> dict[str, torch.Tensor]:
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer._set_train_mode()
    torch.manual_seed(rng_seed)
    tokens = trainer.pipeline.tokenizer(batch.captions)
    from clapkit.train.loss import caption_ids

    step(batch.waveforms, tokens, caption_ids(batch.captions))
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_gradcache_equals_the_full_batch_without_dropout(corpus, tmp_path):
    run = trainer(corpus, tmp_path / "gc", "micro_batch_size", 2)
    batch = next(run.data.batches(0))
    full = gradients_after(run.step.full_batch_backward, run, batch, 0)
    cached = gradients_after(lambda a, t, i: run.step.gradcache_backward(a, t, i, 2), run, batch, 0)
    assert full.keys() == cached.keys() and len(full) == len(list(run.model.parameters()))
    for name in full:
        torch.testing.assert_close(cached[name], full[name], rtol=1e-5, atol=1e-5, msg=name)


def test_gradcache_replays_dropout_exactly(corpus, tmp_path):
    """With dropout, chunks draw their masks in another order than one big batch, so the reference
    is the same chunked forward kept in one graph: GradCache's second pass must reproduce it."""
    run = trainer(corpus, tmp_path / "gc-dropout", model="model_dropout")
    batch = next(run.data.batches(0))

    def chunked_in_one_graph(audio, tokens, ids):
        outs = [run.step.forward(audio[i:i + 2], {k: v[i:i + 2] for k, v in tokens.items()}) for i in range(0, 8, 2)]
        merged = {k: torch.cat([o[k] for o in outs]) if outs[0][k].ndim else outs[0][k] for k in outs[0]}
        run.step.loss(merged, ids).backward()

    reference = gradients_after(chunked_in_one_graph, run, batch, 3)
    cached = gradients_after(lambda a, t, i: run.step.gradcache_backward(a, t, i, 2), run, batch, 3)
    without_replay = gradients_after(run.step.full_batch_backward, run, batch, 3)
    for name in reference:
        torch.testing.assert_close(cached[name], reference[name], rtol=1e-5, atol=1e-5, msg=name)
    assert any(not torch.allclose(without_replay[n], reference[n], atol=1e-4) for n in reference)  # dropout acts


def test_two_ddp_ranks_equal_one_process_at_the_same_global_batch(corpus, tmp_path):
    assert main(args(corpus, tmp_path / "single", "--batchnorm", "frozen")) == 0
    train_on_two_ranks(args(corpus, tmp_path / "ddp", "--batchnorm", "frozen"))
    assert_same_weights(tmp_path / "single", tmp_path / "ddp", steps=STEPS, lr=3e-3, atol=1e-6)


# ---- faults ----------------------------------------------------------------------------------------

def test_a_non_finite_loss_skips_the_step_and_too_many_stop_the_run(corpus, tmp_path, monkeypatch, capsys):
    from clapkit.train.step import ContrastiveStep

    real_loss = ContrastiveStep.loss
    calls = {"n": 0}

    def nan_on_third(self, out, ids):
        calls["n"] += 1
        loss = real_loss(self, out, ids)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(ContrastiveStep, "loss", nan_on_third)
    assert main(args(corpus, tmp_path / "one-nan")) == 0
    records = [json.loads(line) for line in (tmp_path / "one-nan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("skipped_nonfinite")] == [3]
    assert records[-1]["nonfinite_steps"] == 1

    monkeypatch.setattr(ContrastiveStep, "loss", lambda self, out, ids: real_loss(self, out, ids) * float("nan"))
    assert main(args(corpus, tmp_path / "all-nan", "--max-nonfinite-steps", "2")) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("clapkit train: error: 3 non-finite losses in a row at step 3") and "Traceback" not in err


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(corpus, tmp_path, monkeypatch, capsys):
    real_save = torch.save
    saves = {"n": 0}

    def disk_fills(obj, path, *a, **k):
        if str(path).endswith("state.pt"):
            saves["n"] += 1
            if saves["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", disk_fills)
    run = tmp_path / "full-disk"
    assert main(args(corpus, run)) == 2
    err = capsys.readouterr().err
    assert "checkpoint step-4 not saved (No space left on device" in err and "(step-2) is intact" in err
    assert checkpoint.latest(run).name == "step-2" and not list((run / "checkpoints").glob(".tmp-*"))
    checkpoint.load(checkpoint.latest(run), 0)  # still complete


def test_bad_clips_are_listed_and_too_many_stop_the_run(corpus, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    lines = Path(corpus["train"]).read_text().splitlines()
    train_dir = Path(corpus["train"]).parent
    for line in lines:
        record = json.loads(line)
        record["path"] = str(train_dir / record["path"])
        (folder / "train.jsonl").open("a").write(json.dumps(record) + "\n")
    (folder / "broken.wav").write_bytes(b"not audio at all")
    (folder / "train.jsonl").open("a").write(json.dumps({"path": "broken.wav", "captions": ["a broken clip"]}) + "\n")
    corpus = {**corpus, "train": str(folder / "train.jsonl")}
    assert main(args(corpus, tmp_path / "some-bad", "--steps", "3")) == 0
    records = [json.loads(line) for line in (tmp_path / "some-bad" / "metrics.jsonl").read_text().splitlines()]
    listed = [clip["clip"] for r in records if r["kind"] == "bad_clips" for clip in r["clips"]]
    assert any("broken.wav" in name for name in listed)
    assert main(args(corpus, tmp_path / "too-many-bad", "--steps", "12", "--max-bad-fraction", "0")) == 2
    assert "could not be read" in capsys.readouterr().err


def test_a_resume_with_other_options_is_refused(reference_run, corpus, tmp_path, capsys):
    assert main(["--resume", str(reference_run), "--model", "msclap-2022"]) == 2
    assert "--model differ from the run's recorded options" in capsys.readouterr().err
    events = sorted((reference_run / "tensorboard").iterdir())
    assert main(args(corpus, reference_run)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted((reference_run / "tensorboard").iterdir()) == events  # the refused run wrote nothing there
    assert main(["--resume", str(tmp_path / "nothing-here")]) == 2
    assert "not a run folder" in capsys.readouterr().err


# ---- options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_finite_losses(corpus, tmp_path, precision):
    run = tmp_path / precision
    assert main(args(corpus, run, "--precision", precision, "--steps", "3")) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert load_file(run / "model.safetensors")["audio_projection.linear1.weight"].dtype == torch.float32


def test_activation_checkpointing_keeps_the_gradients(corpus, tmp_path):
    plain = trainer(corpus, tmp_path / "plain")
    recomputed = trainer(corpus, tmp_path / "recomputed", "grad_checkpointing", True)
    batch = next(plain.data.batches(0))
    expected = gradients_after(plain.step.full_batch_backward, plain, batch, 0)
    actual = gradients_after(recomputed.step.full_batch_backward, recomputed, batch, 0)
    assert {n.replace("._checkpoint_wrapped_module", "") for n in actual} == set(expected)
    for name, grad in actual.items():
        torch.testing.assert_close(grad, expected[name.replace("._checkpoint_wrapped_module", "")], rtol=1e-5, atol=1e-6)


def test_locked_text_tower_keeps_its_weights(corpus, tmp_path):
    run = tmp_path / "lit"
    assert main(args(corpus, run, "--lock-text", "--steps", "2")) == 0
    before = trainer(corpus, tmp_path / "fresh").model.state_dict()  # the same seed: the same initial weights
    after = load_file(run / "model.safetensors")
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("text.encoder."))
    assert not torch.equal(after["text_projection.linear1.weight"], before["text_projection.linear1.weight"])
    assert not torch.equal(after["audio_projection.linear1.weight"], before["audio_projection.linear1.weight"])


def test_a_config_file_and_the_paper_preset_resolve_with_flags_winning(corpus, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(f"model: {corpus['model']}\ntrain: [{corpus['train']}]\nsteps: 9\nlr: 0.01\n")
    config = resolve({"out": str(tmp_path / "r"), "lr": 0.02}, config_file=str(path))
    assert (config.steps, config.lr, config.model) == (9, 0.02, corpus["model"])
    paper = resolve({"out": "r", "train": ["t.jsonl"], "val": ["v.jsonl"], "epochs": 1}, preset="paper")
    assert (paper.optimizer, paper.lr, paper.schedule, paper.plateau_factor, paper.plateau_patience, paper.batch_size) \
        == ("adam", 1e-3, "plateau", 0.1, 15, 1536)
    path.write_text("stepz: 9\n")
    with pytest.raises(clapkit.ClapkitError, match=r"train.yaml: unknown key stepz"):
        resolve({"out": "r"}, config_file=str(path))


def test_fine_tuning_starts_from_pretrained_weights(reference_run, corpus, tmp_path):
    run = tmp_path / "finetuned"
    assert main(["--pretrained", str(reference_run), *args(corpus, run, "--steps", "1", "--lr", "1e-6")[2:]]) == 0
    start, tuned = load_file(reference_run / "model.safetensors"), load_file(run / "model.safetensors")
    assert max((tuned[k] - start[k]).abs().max().item() for k in start if "running_" not in k and start[k].is_floating_point()) < 1e-4


def test_fsdp2_ranks_train_like_one_process(corpus, tmp_path):
    single = tmp_path / "single"
    assert main(args(corpus, single, "--batchnorm", "frozen", "--steps", "3")) == 0
    sharded = args(corpus, tmp_path / "fsdp", "--batchnorm", "frozen", "--steps", "3", "--distributed", "fsdp",
                   "--val", corpus["val"], "--val-every", "3")
    train_on_two_ranks(sharded)
    assert_same_weights(single, tmp_path / "fsdp", steps=3, lr=3e-3, atol=1e-6)
    records = [json.loads(line) for line in (tmp_path / "fsdp" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "val" for r in records)  # validation ran through the pipeline on the sharded model


@pytest.mark.slow
def test_compiled_model_trains(corpus, tmp_path):
    assert main(args(corpus, tmp_path / "compiled", "--compile", "--steps", "2")) == 0


def test_init_audio_starts_from_another_runs_audio_tower_bit_for_bit(reference_run, corpus, tmp_path):
    started = trainer(corpus, tmp_path / "handover", "init_audio", str(reference_run)).model.state_dict()
    fresh = trainer(corpus, tmp_path / "fresh").model.state_dict()
    source = load_file(reference_run / "model.safetensors")
    audio = [k for k in source if k.startswith("audio.") and k in started]
    assert audio and all(torch.equal(started[k], source[k]) for k in audio)
    # the projections and the text tower start fresh, as in any new run
    assert torch.equal(started["audio_projection.linear1.weight"], fresh["audio_projection.linear1.weight"])
    assert torch.equal(started["text_projection.linear1.weight"], fresh["text_projection.linear1.weight"])


def test_init_audio_refuses_another_audio_tower_in_one_line(reference_run, corpus, tmp_path, capsys):
    config = json.loads(Path(corpus["model"]).read_text())
    config["audio"]["args"]["embed_dim"] *= 2
    other = tmp_path / "other-model.json"
    other.write_text(json.dumps(config))
    code = main(["--model", str(other), *args(corpus, tmp_path / "run", "--init-audio", str(reference_run))[2:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--init-audio" in err[0] and "differs" in err[0] and "args" in err[0]
    assert main(args(corpus, tmp_path / "both", "--init-audio", str(reference_run), "--pretrained",
                     str(reference_run))) == 2


def test_spec_augment_changes_training_and_seeded_runs_stay_bitwise_identical(reference_run, corpus, tmp_path):
    for name in ("a", "b"):
        assert main(args(corpus, tmp_path / name, "--val", corpus["val"], "--val-every", "3",
                         "--spec-augment", "2x8,2x4")) == 0
    assert weights(tmp_path / "a") == weights(tmp_path / "b")
    assert weights(tmp_path / "a") != weights(reference_run)
    assert load_file(tmp_path / "a" / "model.safetensors").keys() == load_file(reference_run / "model.safetensors").keys()
