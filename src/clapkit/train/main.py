"""``clapkit train`` and ``torchrun --nproc-per-node N -m clapkit.train``: one entry for both.

The flags are defined without importing torch, so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ClapkitError, one_line
from .config import PRESETS, TrainConfig
from .tasks import TASKS

FLAGS = {  # flag -> help; the default and the type come from TrainConfig
    "stage": "contrastive (audio-text pairs) or audio-pretrain (the audio tower answers prompted tasks through a "
             "decoder, as the paper's HTSAT-22; --model a config with a decoder, e.g. clapkit-small-pretrain)",
    "model": "model config name (see src/clapkit/models/configs) or config file",
    "pretrained": "start from these weights (registry name or checkpoint path): fine-tuning",
    "train": "training manifest (.jsonl) or WebDataset shard pattern (repeatable)",
    "val": "validation manifest or shard pattern (repeatable): zero-shot retrieval R@1/R@10",
    "out": "the run folder",
    "steps": "optimizer steps to run", "epochs": "epochs to run (instead of --steps)",
    "batch_size": "global batch size, across all ranks",
    "micro_batch_size": "GradCache chunk per rank (below the per-rank batch: less memory, same gradients)",
    "lr": "peak learning rate", "wd": "weight decay (not on gains, biases, logit scale)",
    "loss": "clip (symmetric cross-entropy) or sigmoid (SigLIP pairwise)",
    "optimizer": "adam or adamw", "schedule": "plateau, cosine or constant", "warmup": "linear warm-up steps",
    "plateau_factor": "plateau: learning-rate factor", "plateau_patience": "plateau: validations without improvement",
    "precision": "fp32, bf16 (autocast) or fp16 (autocast + gradient scaler)",
    "grad_checkpointing": "recompute block activations in the backward pass (less memory)",
    "compile": "torch.compile the model", "distributed": "ddp, or fsdp (FSDP2 fully_shard) for big towers",
    "batchnorm": "train (each rank's batch statistics, as open_clip), frozen (running statistics: GradCache and "
                 "N ranks then equal one process exactly) or sync (SyncBatchNorm, CUDA)",
    "seed": "seed of the initial weights, the data order, crops and caption choice",
    "save_every": "checkpoint every N steps", "val_every": "validate every N steps", "log_every": "log every N steps",
    "workers": "data-loading worker processes per rank",
    "init_audio": "run folder or checkpoint whose audio tower (front end and encoder) this run starts from",
    "tasks": "audio-pretrain: the task mixture as task=weight,... (default: every task at its default weight: "
             + ", ".join(f"{name}={task.weight:g}" for name, task in TASKS.items()) + ")",
    "band_limit": "probability that a training clip is band-limited to 8, 11.025 or 16 kHz (telephone-like audio)",
    "gain_db": "make each training clip quieter by a random 0 to GAIN_DB dB (level invariance; 0: off)",
    "noise": "probability that a training clip gets a recording's noise floor: white to brown Gaussian noise at a "
             "random 10-40 dB SNR",
    "spec_augment": "SpecAugment on the log-mel as TIMExFRAMES,MELxBANDS, e.g. 2x50,2x8: two time masks of up to "
                    "50 frames and two masks of up to 8 mel bands per training clip, filled with the clip's mean",
    "lock_text": "freeze the text tower (LiT-style)", "lock_audio": "freeze the audio tower",
    "tokenizer": "tokenizer folder or hub name (default: the model's)",
    "text_weights": "Hugging Face folder (BertModel/GPT2Model) the fresh text tower starts from; 'none' for random "
                    "(default: the config's declared init, e.g. all-MiniLM-L6-v2 for clapkit-small)",
    "resume": "continue this run folder from its latest checkpoint, bit for bit",
    "force_resume": "resume even if the model config or the data differ from the run's",
    "max_bad_fraction": "stop when more than this fraction of the clips read cannot be decoded",
    "max_nonfinite_steps": "stop after this many non-finite losses in a row",
    "device": "cpu, cuda or mps",
}
LISTS = {"train", "val"}
SWITCHES = {"grad_checkpointing", "compile", "lock_text", "lock_audio", "force_resume"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every training option as a flag; a flag left out keeps the config file's or the default."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        name, flag = field.name, "--" + field.name.replace("_", "-")
        default = getattr(defaults, name)
        help_text = f"{FLAGS[name]} (default: {default})"
        if name in SWITCHES:
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        elif name in LISTS:
            parser.add_argument(flag, action="append", default=None, help=help_text)
        else:
            kind = _scalar_type(hints[name])
            choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Literal else None
            parser.add_argument(flag, type=kind, choices=choices, default=None, help=help_text)
    parser.add_argument("--config", help="the same options from a YAML/JSON file (unknown keys refused)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="paper: Adam 1e-3, plateau x0.1 patience 15, batch 1536")


def _scalar_type(hint):
    import typing

    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = options[0]
    if typing.get_origin(kind) is typing.Literal:
        return str
    return kind if kind in (int, float) else str


def run(args: argparse.Namespace) -> int:
    """Resolve the options and train (every rank of a torchrun job runs this)."""
    from .config import resolve

    flags = {k: v for k, v in vars(args).items() if k in FLAGS and v is not None}
    if args.resume and "out" not in flags:
        flags["out"] = args.resume
    config = resolve(_with_run_options(flags), config_file=args.config, preset=args.preset)

    from .distributed import init_world, shutdown
    from .engine import Trainer

    world = init_world(config.device)
    try:
        return Trainer(config, world).run()
    finally:
        shutdown(world)


def _with_run_options(flags: dict) -> dict:
    """On ``--resume``, the run's recorded options, overridden by the flags given now."""
    if not flags.get("resume"):
        return flags
    import json
    from pathlib import Path

    from ..errors import UsageError

    recorded_path = Path(flags["resume"]) / "config.json"
    if not recorded_path.is_file():
        raise UsageError(f"--resume: {flags['resume']} is not a run folder (no config.json)")
    recorded = json.loads(recorded_path.read_text()).get("training", {})
    changed = [k for k in ("model", "train", "pretrained", "batch_size", "seed")
               if k in flags and flags[k] != recorded.get(k)]
    if changed and not flags.get("force_resume"):
        raise UsageError(f"--resume: {', '.join('--' + k.replace('_', '-') for k in changed)} differ from the run's "
                         "recorded options; an exact resume needs the same, or add --force-resume")
    return {**recorded, **flags, "resume": flags["resume"]}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="contrastive pretraining and fine-tuning, audio pretraining "
                                   "(torchrun for many GPUs)")
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m clapkit.train`` / torchrun entry: the same options as ``clapkit train``."""
    parser = argparse.ArgumentParser(prog="clapkit train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ClapkitError as e:
        print(f"clapkit train: error: {one_line(e, limit=2000)}", file=sys.stderr)
        return 2
