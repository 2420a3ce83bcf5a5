"""Training options as one typed config: the ``clapkit train`` flags, a ``--config`` file (JSON/YAML,
unknown keys refused) and ``--preset paper`` all resolve into :class:`TrainConfig`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ..config import parse, read_config_file
from ..errors import UsageError


@dataclass
class TrainConfig:
    """Every training option; ``config.json`` in a run folder records them, resolved."""

    stage: Literal["contrastive", "audio-pretrain"] = "contrastive"
    model: str = "msclap-2023"                    # model config name (models/configs) or file
    pretrained: str | None = None                 # weights to start from (registry name or path): fine-tuning
    init_audio: str | None = None                 # a run or checkpoint whose audio tower starts this one
    train: list[str] = field(default_factory=list)  # manifests or WebDataset shard patterns
    val: list[str] = field(default_factory=list)
    out: str = ""                                 # the run folder
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 64                          # global, across ranks
    micro_batch_size: int | None = None           # GradCache chunk (per rank); None: the whole per-rank batch
    lr: float = 1e-3
    wd: float = 0.0
    loss: Literal["clip", "sigmoid"] = "clip"
    optimizer: Literal["adam", "adamw"] = "adam"
    schedule: Literal["plateau", "cosine", "constant"] = "cosine"
    warmup: int = 0                               # steps of linear warm-up
    plateau_factor: float = 0.1
    plateau_patience: int = 15                    # validations without improvement of the val loss
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_checkpointing: bool = False
    compile: bool = False
    distributed: Literal["ddp", "fsdp"] = "ddp"
    batchnorm: Literal["train", "frozen", "sync"] = "train"  # frozen: running statistics, as at inference
    seed: int = 0
    save_every: int = 1000
    val_every: int = 1000
    log_every: int = 10
    workers: int = 0
    band_limit: float = 0.0                       # probability of band-limiting a training clip to 8-16 kHz
    gain_db: float = 0.0                          # training clips made quieter by a random 0 to gain_db dB
    noise: float = 0.0                            # probability of adding a noise floor (10-40 dB SNR) to a clip
    spec_augment: str | None = None               # "TxW,FxV": SpecAugment masks on the log-mel (training only)
    tasks: str | None = None                      # audio-pretrain: "task=weight,..."; None: every task
    lock_text: bool = False
    lock_audio: bool = False
    tokenizer: str | None = None
    text_weights: str | None = None               # HF folder for a fresh text tower; "none": random
    resume: str | None = None
    force_resume: bool = False
    max_bad_fraction: float = 0.05                # stop when more of the clips read so far fail
    max_nonfinite_steps: int = 5                  # stop after this many non-finite losses in a row
    device: str = "cpu"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # The paper's recipe: Adam 1e-3, plateau x0.1 with patience 15 on the validation loss, random
    # 7 s crops at 44.1 kHz (the msclap-2023 config's clip), batch 1,536.
    "paper": {"optimizer": "adam", "lr": 1e-3, "wd": 0.0, "schedule": "plateau", "plateau_factor": 0.1,
              "plateau_patience": 15, "batch_size": 1536, "model": "msclap-2023"},
}


def resolve(flags: dict, *, config_file: str | None = None, preset: str | None = None) -> TrainConfig:
    """Defaults, then the preset, then the config file, then the flags given on the command line."""
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"--preset: unknown {preset!r}; known: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if config_file is not None:
        data = read_config_file(config_file)
        parse(TrainConfig, data, config_file)  # unknown or mistyped keys are named with the file
        values.update(data)
    values.update(flags)
    config = parse(TrainConfig, values, "training options")
    check(config)
    return config


def check(config: TrainConfig) -> None:
    """Cross-option rules, each a one-line error naming the option."""
    if not config.out and not config.resume:
        raise UsageError("--out: a run folder is required")
    if not config.train and not config.resume:
        raise UsageError("--train: at least one manifest or shard pattern is required")
    if (config.steps is None) == (config.epochs is None) and not config.resume:
        raise UsageError("give exactly one of --steps and --epochs")
    for name in ("steps", "epochs", "batch_size", "micro_batch_size", "save_every", "val_every", "log_every"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if config.micro_batch_size is not None and config.micro_batch_size > config.batch_size:
        raise UsageError(f"--micro-batch-size ({config.micro_batch_size}) is larger than --batch-size ({config.batch_size})")
    if config.lr <= 0 or config.wd < 0 or config.warmup < 0 or config.workers < 0:
        raise UsageError("--lr must be above 0; --wd, --warmup and --workers at least 0")
    if config.init_audio and config.pretrained:
        raise UsageError("--init-audio and --pretrained together: --pretrained already sets the audio tower")
    if config.stage == "audio-pretrain":
        for name in ("lock_text", "lock_audio"):
            if getattr(config, name):
                raise UsageError(f"--{name.replace('_', '-')}: not an option of --stage audio-pretrain, which trains "
                                 "the audio tower and the decoder")
        if config.pretrained:
            raise UsageError("--pretrained: --stage audio-pretrain starts fresh or takes an audio tower with --init-audio")
    elif config.tasks is not None:
        raise UsageError("--tasks: the task mixture is an option of --stage audio-pretrain")
    if config.lock_text and config.lock_audio:
        raise UsageError("--lock-text and --lock-audio together leave nothing to train")
    if config.schedule == "plateau" and not config.val:
        raise UsageError("--schedule plateau steps on the validation loss: give --val")
    if config.spec_augment is not None:
        from .augment import SpecAugment

        SpecAugment.parse(config.spec_augment)
    if not 0 <= config.max_bad_fraction <= 1:
        raise UsageError(f"--max-bad-fraction: must be within [0, 1], got {config.max_bad_fraction}")
