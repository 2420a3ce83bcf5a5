"""The training loop: one process or a torchrun rank, contrastive steps (with GradCache when the
micro-batch is smaller than the rank's batch) or audio-pretraining steps (:mod:`.pretrain`), exact
checkpoints, validation, and the run's record."""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import ClapkitError, UsageError
from ..models.config import ModelConfig, get_config
from ..models.factory import create_model
from ..pipeline import ClapPipeline
from ..weights.loading import (
    fill_tied,
    load_checkpoint,
    load_pretrained,
    load_state_dict_strict,
    read_checkpoint,
    write_safetensors,
)
from ..weights.registry import PRETRAINED
from . import augment, checkpoint, pretrain
from .config import TrainConfig
from .data import TrainData, ValData
from .distributed import World, wrap
from .loss import caption_ids
from .metrics import RunLog
from .optim import Schedule, build_optimizer
from .step import AnswerStep, ContrastiveStep
from .tasks import TaskMixture


class TrainError(ClapkitError):
    """A run that must stop: too many bad clips or non-finite losses, a refused resume."""


@dataclass
class Position:
    """Where a run is: the next optimizer step and the data position that feeds it."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0


def build_model(config: TrainConfig) -> tuple[nn.Module, ModelConfig]:
    """The model to train: a config's fresh weights, or ``--pretrained`` weights (fine-tuning)."""
    if config.pretrained:
        if config.pretrained in PRETRAINED or not Path(config.pretrained).exists():
            model, model_config, _ = load_pretrained(config.pretrained)
        else:
            model, model_config = load_checkpoint(config.pretrained)
    else:
        model_config = get_config(config.model)
        model = None
    if config.stage == "contrastive" and (model_config.text is None or model_config.caption is not None):
        raise UsageError(f"--model: {model_config.name} is not a contrastive model (it needs a text tower and no "
                         "decoder); for a model with a decoder use --stage audio-pretrain")
    if config.stage == "audio-pretrain" and model_config.caption is None:
        raise UsageError(f"--stage audio-pretrain: --model {model_config.name} has no decoder to answer with; use a "
                         "config with a 'caption' section, e.g. clapkit-small-pretrain")
    if config.stage == "contrastive" and config.loss == "sigmoid" and model_config.init_logit_bias is None:
        model_config = replace(model_config, init_logit_bias=-10.0)
        if model is not None:  # a pretrained CLIP-loss model gains the bias, initialised as SigLIP's
            model.logit_bias = nn.Parameter(torch.full((1,), -10.0))
    if model is None:
        model = create_model(model_config)
        if model_config.text is not None and model_config.caption is None:
            init_text_tower(model, model_config, config.text_weights)
    if config.init_audio:
        init_audio_tower(model, model_config, config.init_audio)
    return model, model_config


def init_audio_tower(model: nn.Module, model_config: ModelConfig, source: str) -> None:
    """Start the audio tower (front end and encoder, not the projection) from another run or
    checkpoint whose audio tower is configured the same; any difference is refused in one line."""
    state, source_config, weights = read_checkpoint(source, text_tower=False)
    if source_config.audio != model_config.audio:
        ours, theirs = asdict(model_config.audio), asdict(source_config.audio)
        differing = [k for k in ours if ours[k] != theirs.get(k)]
        raise UsageError(f"--init-audio: the audio tower of {source} ({source_config.name}) differs from "
                         f"{model_config.name}'s in {', '.join(differing)}")
    prefix = "clap.audio." if source_config.caption is not None else "audio."  # a pretraining run's is inside
    tower = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    load_state_dict_strict(model.audio, tower, str(weights))


def init_text_tower(model: nn.Module, model_config: ModelConfig, text_weights: str | None) -> None:
    """Start a fresh text tower from a Hugging Face folder: ``text_weights``, else the config's
    declared init (checked against its sha256); ``"none"`` or neither leaves it random."""
    from ..weights.formats.hf_text import init_folder, load_text_encoder

    init = model_config.text.init
    if text_weights == "none" or (text_weights is None and init is None):
        return
    folder = Path(text_weights) if text_weights else init_folder(init)
    sha256 = init.sha256 if init is not None and text_weights is None else None
    state = load_text_encoder(folder, model_config.text, sha256)
    load_state_dict_strict(model.text.encoder, state, str(folder))


class Trainer:
    def __init__(self, config: TrainConfig, world: World) -> None:
        self.config, self.world = config, world
        self.run_dir = Path(config.out)
        self.pretraining = config.stage == "audio-pretrain"
        self.stop_signal: int | None = None
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model, self.model_config = build_model(config)
        self.model.to(world.device)
        if config.spec_augment:
            augment.attach(self.model.audio.encoder, augment.SpecAugment.parse(config.spec_augment))
        self._lock_towers()
        if config.grad_checkpointing:
            self._checkpoint_activations()
        if config.batchnorm == "sync" and world.distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.wrapped = wrap(self.model, world, config.distributed)
        if config.compile:
            self.wrapped = torch.compile(self.wrapped)
        self.pipeline = ClapPipeline(self.model, self.model_config, config.tokenizer)
        self.mixture = TaskMixture.parse(config.tasks) if self.pretraining else None
        frontend = self.model_config.audio.frontend
        self.data = TrainData(config.train, sample_rate=frontend.sample_rate, clip_samples=self.model_config.clip_samples,
                              global_batch_size=config.batch_size, seed=config.seed, rank=world.rank,
                              world_size=world.world_size, workers=config.workers, fill=frontend.short_clip,
                              augment=augment.WaveAugment(band_limit=config.band_limit, gain_db=config.gain_db,
                                                          noise=config.noise),
                              mixture=self.mixture)
        # Each --val source is its own retrieval set, reported under its name.
        self.vals = {source: ValData([source], sample_rate=frontend.sample_rate, fill=frontend.short_clip,
                                     clip_samples=self.model_config.clip_samples) for source in config.val}
        self.total_steps = config.steps or config.epochs * self.data.steps_per_epoch
        self.optimizer = build_optimizer(self.model, config)
        self.schedule = Schedule(self.optimizer, config, self.total_steps)
        self.scaler = torch.amp.GradScaler(world.device.type, enabled=config.precision == "fp16")
        if self.pretraining:
            self.step = AnswerStep(self.wrapped, config.precision, world.device, self.scaler, world)
        else:
            self.step = ContrastiveStep(self.model, self.wrapped, config.loss, config.precision, world.device,
                                        self.scaler)
        self.position = Position()
        self.counters = {"clips": 0, "bad_clips": 0, "nonfinite_steps": 0, "nonfinite_in_a_row": 0}
        self.log: RunLog | None = None  # opened by run(), once the run folder is known to be this run's

    # ---- set-up -------------------------------------------------------------------------------
    def _lock_towers(self) -> None:
        """LiT-style: a locked tower (encoder) keeps its weights; its projection still learns.
        A fusion model's fusion layers are always kept: training clips are window-long, so they
        never reach them (and DDP needs every trained parameter to get a gradient)."""
        if self.pretraining:
            pretrain.freeze_unused(self.model)
        patch_embed = getattr(self.model.audio.encoder, "patch_embed", None)
        for unused in (getattr(patch_embed, "fusion_model", None), getattr(patch_embed, "mel_conv2d", None)):
            if unused is not None:
                unused.requires_grad_(False)
        if self.config.loss == "sigmoid" and getattr(self.model, "logit_scale_text", None) is not None:
            self.model.logit_scale_text.requires_grad_(False)  # one logit matrix: one scale
        if self.config.lock_audio:
            self.model.audio.requires_grad_(False)
        if self.config.lock_text:
            self.model.text.requires_grad_(False)

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.config.batchnorm == "frozen":
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        if self.config.lock_audio:  # a locked tower also keeps its dropout and BatchNorm still
            self.model.audio.eval()
        if self.config.lock_text:
            self.model.text.eval()

    def _checkpoint_activations(self) -> None:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            apply_activation_checkpointing,
        )

        from ..models.bert import BertLayer
        from ..models.cnn14 import ConvBlock
        from ..models.gpt2 import Block
        from ..models.htsat import SwinTransformerBlock

        blocks = (SwinTransformerBlock, ConvBlock, Block, BertLayer)
        apply_activation_checkpointing(self.model, check_fn=lambda module: isinstance(module, blocks))

    def train_step(self, batch) -> dict:
        self._set_train_mode()
        device = self.world.device
        audio = batch.waveforms.to(device)
        if self.pretraining:
            input_ids, targets = pretrain.batch_sequences(self.pipeline.tokenizer, batch, device)
            loss = self.step.backward(audio, input_ids, targets, self.config.micro_batch_size)
        else:
            tokens = {k: v.to(device) for k, v in self.pipeline.tokenizer(batch.captions).items()}
            ids = caption_ids(batch.captions).to(device)
            loss = self.step.backward(audio, tokens, ids, self.config.micro_batch_size)
        finite = self.world.sum(float(torch.isfinite(loss).item())) == self.world.world_size
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.counters["nonfinite_in_a_row"] = 0
        else:
            self.counters["nonfinite_steps"] += 1
            self.counters["nonfinite_in_a_row"] += 1
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.item()), "finite": finite}

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        self._prepare_run_dir()
        self.log = RunLog(self.run_dir, self.world.is_main)
        if self.mixture is not None and self.position.step == 0:
            rows = pretrain.print_mixture(self.mixture, [clip.fields for clip in self.data.clips], self._say)
            self.log.write({"kind": "tasks", "tasks": rows, "unanswerable_clips": self.data.unanswerable})
        previous_handlers = self._install_signal_handlers()
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.position.step, desc="train", unit="step",
                   disable=not self.world.is_main, file=sys.stderr, dynamic_ncols=True)
        self._started, self._samples = time.perf_counter(), 0
        try:
            while self.position.step < self.total_steps:
                for batch in self.data.batches(self.position.epoch, self.position.step_in_epoch):
                    if self._advance(batch, bar):
                        self._say(f"stopped by signal {self.stop_signal} at step {self.position.step}; checkpoint "
                                  f"saved, continue with: clapkit train --resume {self.run_dir}")
                        return 0
                    if self.position.step >= self.total_steps:
                        break
                else:  # the epoch's data ran out
                    self.position.epoch, self.position.step_in_epoch = self.position.epoch + 1, 0
        finally:
            bar.close()
            self.log.close()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        self._save_final()
        return 0

    def _advance(self, batch, bar) -> bool:
        """One optimizer step and what follows it (log, validation, checkpoint); True when a signal
        asked the run to stop (the checkpoint is then saved)."""
        self.schedule.set_step(self.position.step)
        result = self.train_step(batch)
        self._account(batch, result)
        self.position.step += 1
        self.position.step_in_epoch += 1
        self._samples += self.config.batch_size
        rate = self._samples / (time.perf_counter() - self._started)
        bar.update(1)
        bar.set_postfix(loss=f"{result['loss']:.4f}", samples_per_s=f"{rate:.1f}")
        self._log_step(result, rate)
        done = self.position.step >= self.total_steps
        if self.vals and (self.position.step % self.config.val_every == 0 or done):
            self.validate()
        stop = self._stop_requested()
        if stop or self.position.step % self.config.save_every == 0 or done:
            self.save()
        return stop

    def _account(self, batch, result: dict) -> None:
        read = self.world.sum(len(batch.indices) + len(batch.failures))
        bad = self.world.sum(len(batch.failures))
        self.counters["clips"] += int(read)
        self.counters["bad_clips"] += int(bad)
        if bad:
            failures = [failure for rank_failures in self.world.gather(batch.failures) for failure in rank_failures]
            self.log.write({"kind": "bad_clips", "step": self.position.step + 1,
                            "clips": [{"index": i, "clip": name, "cause": cause} for i, name, cause in failures]})
        fraction = self.counters["bad_clips"] / max(1, self.counters["clips"])
        if self.counters["clips"] >= 20 and fraction > self.config.max_bad_fraction:
            raise TrainError(f"{self.counters['bad_clips']} of {self.counters['clips']} clips could not be read "
                             f"({fraction:.0%} > --max-bad-fraction {self.config.max_bad_fraction:.0%}); "
                             f"see the bad_clips lines of {self.run_dir / 'metrics.jsonl'}")
        if self.counters["nonfinite_in_a_row"] > self.config.max_nonfinite_steps:
            raise TrainError(f"{self.counters['nonfinite_in_a_row']} non-finite losses in a row at step "
                             f"{self.position.step + 1}; lower --lr or use --precision fp32 (the last checkpoint is intact)")

    def _log_step(self, result: dict, rate: float) -> None:
        step = self.position.step
        if step % self.config.log_every and step != self.total_steps and result["finite"]:
            return
        scale = {} if self.pretraining else {"logit_scale": float(full(self.model.logit_scale).detach().exp().item())}
        self.log.write({"kind": "train", "step": step, "epoch": self.position.epoch, "loss": result["loss"],
                        "skipped_nonfinite": not result["finite"], "lr": self.optimizer.param_groups[0]["lr"],
                        **scale, "samples_per_s": rate, "bad_clips": self.counters["bad_clips"],
                        "nonfinite_steps": self.counters["nonfinite_steps"]})

    # ---- validation ---------------------------------------------------------------------------
    def validate(self) -> list[dict]:
        """Each ``--val`` set: zero-shot retrieval through the public pipeline around the live model
        (audio pretraining: the loss and accuracy of each task's answers); the plateau schedule
        follows the mean validation loss."""
        records = []
        with unsharded(self.model):
            for name, val in self.vals.items():
                if self.pretraining:
                    record = pretrain.validate_answers(self.model, self.pipeline.tokenizer, val, self.mixture)
                else:
                    record = retrieval(self.pipeline, val, self.model_config.audio.frontend.sample_rate)
                records.append({"kind": "val", "set": name, "step": self.position.step, **record})
        self.schedule.validated(sum(r["val_loss"] for r in records) / len(records))
        for record in records:
            self.log.write(record)
        return records

    # ---- checkpoints --------------------------------------------------------------------------
    def _full_state(self) -> tuple[dict, dict]:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_state_dict,
        )

        return get_state_dict(self.model, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def save(self) -> Path:
        model_state, optimizer_state = self._full_state()
        state = {"position": vars(self.position).copy(), "optimizer": optimizer_state,
                 "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                 "counters": dict(self.counters), "world_size": self.world.world_size,
                 "cpu_threads": torch.get_num_threads()}
        return checkpoint.save(self.run_dir, self.position.step, model_state, state, self.world.rank, self.world.barrier)

    def resume(self, folder: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_state_dict,
        )

        model_state, state, rng = checkpoint.load(folder, self.world.rank)
        if state["world_size"] != self.world.world_size:
            raise TrainError(f"{folder}: saved by {state['world_size']} process(es), resumed by "
                             f"{self.world.world_size}; exact resumption needs the same number")
        saved_threads = state.get("cpu_threads", torch.get_num_threads())
        if saved_threads != torch.get_num_threads() and self.world.device.type == "cpu":
            self._say(f"warning: {folder} was saved by a run with {saved_threads} CPU threads per process and "
                      f"resumes with {torch.get_num_threads()}; CPU sums then round differently, so the weights "
                      f"will not be bit for bit those of an uninterrupted run (OMP_NUM_THREADS={saved_threads} keeps them)")
        set_state_dict(self.model, self.optimizer, model_state_dict=fill_tied(self.model, model_state),
                       optim_state_dict=state["optimizer"],
                       options=StateDictOptions(full_state_dict=True))
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.counters.update(state["counters"])
        self.position = Position(**state["position"])
        checkpoint.set_rng_state(rng)

    def _prepare_run_dir(self) -> None:
        found = checkpoint.latest(self.run_dir)
        if self.config.resume:
            if found is None:
                raise TrainError(f"--resume: {self.run_dir} has no complete checkpoint")
            self.resume(found)
            self._say(f"resumed from {found} (step {self.position.step}, epoch {self.position.epoch})")
            return
        if found is not None or (self.run_dir / "metrics.jsonl").exists():
            raise UsageError(f"--out: {self.run_dir} already holds a run; continue it with --resume {self.run_dir} "
                             "or choose another folder")
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record = {**self.model_config.to_dict(), "training": self.config.to_dict()}
            (self.run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        self.world.barrier()
        torch.manual_seed(self.config.seed + self.world.rank)  # dropout differs per rank, as open_clip

    def _save_final(self) -> None:
        model_state, _ = self._full_state()
        if self.world.is_main:
            tmp = self.run_dir / ".model.safetensors.tmp"
            write_safetensors(model_state, tmp)
            tmp.replace(self.run_dir / "model.safetensors")
            self._say(f"wrote {self.run_dir / 'model.safetensors'}; load it with clapkit.load({str(self.run_dir)!r})")

    # ---- signals and messages -----------------------------------------------------------------
    def _install_signal_handlers(self) -> dict:
        """SIGTERM/SIGINT finish the current step, save and exit; returns the handlers they replace."""
        def handler(signum, frame):
            self.stop_signal = signum

        return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}

    def _stop_requested(self) -> bool:
        return self.world.sum(float(self.stop_signal is not None)) > 0

    def _say(self, text: str) -> None:
        if self.world.is_main:
            print(f"clapkit train: {text}", file=sys.stderr, flush=True)


def retrieval(pipeline: ClapPipeline, val: ValData, sample_rate: int) -> dict[str, float]:
    """Text→audio and audio→text R@1/R@10 and the symmetric contrastive loss over a validation set
    (each clip's first caption is its query; crops from the start)."""
    parts, captions = [], []
    for batch in val.batches():
        parts.append(pipeline.embed_audio(batch.waveforms, sample_rate=sample_rate))
        captions += batch.captions
    audio, text = torch.cat(parts), pipeline.embed_text(captions)
    scores = pipeline.similarity(audio, text)  # (N, N): clip i's caption is text i
    n, target = len(captions), torch.arange(len(captions))
    loss = (nn.functional.cross_entropy(scores, target) + nn.functional.cross_entropy(scores.T, target)) / 2
    return {"val_loss": float(loss), "clips": n, "chance_r1": 1 / n, "chance_r10": min(1.0, 10 / n),
            **recall(scores.T, "t2a"), **recall(scores, "a2t")}


def full(parameter: torch.Tensor) -> torch.Tensor:
    """A parameter's whole value, FSDP2's sharded DTensors gathered (a collective: every rank calls it)."""
    return parameter.full_tensor() if hasattr(parameter, "full_tensor") else parameter


@contextlib.contextmanager
def unsharded(model: nn.Module):
    """FSDP2 gathers the root's parameters only around ``forward``; the pipeline calls
    ``encode_audio``/``encode_text``, so gather them for the validation's duration."""
    if not hasattr(model, "unshard"):
        yield
        return
    model.unshard()
    try:
        yield
    finally:
        model.reshard()


def recall(scores: torch.Tensor, prefix: str) -> dict[str, float]:
    """R@1 and R@10 of square ``scores`` whose diagonal holds the matches (rows are queries)."""
    rank = (scores > scores.diagonal()[:, None]).sum(1)  # how many candidates beat the match
    return {f"{prefix}_r1": float((rank < 1).float().mean()), f"{prefix}_r10": float((rank < 10).float().mean())}


