"""Optimizer and learning-rate schedule from the training options."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters; as open_clip, no weight decay on gains, biases
    and the logit scale (1-D parameters)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.wd}, {"params": no_decay, "weight_decay": 0.0}]
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr)


class Schedule:
    """Linear warm-up, then constant, cosine to 0 over ``total_steps``, or a plateau rule (multiply
    by ``factor`` after ``patience`` validations without a lower validation loss).

    State is plain numbers (``state_dict``), so checkpoints resume it exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> None:
        self.optimizer = optimizer
        self.kind, self.base_lr, self.warmup = config.schedule, config.lr, config.warmup
        self.total_steps = total_steps
        self.factor, self.patience = config.plateau_factor, config.plateau_patience
        self.plateau_scale, self.best, self.bad_validations = 1.0, math.inf, 0
        self.set_step(0)

    def lr_at(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return self.base_lr * (step + 1) / self.warmup
        if self.kind == "cosine":
            progress = (step - self.warmup) / max(1, self.total_steps - self.warmup)
            return self.base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if self.kind == "plateau":
            return self.base_lr * self.plateau_scale
        return self.base_lr

    def set_step(self, step: int) -> None:
        """Set the learning rate for optimizer step ``step`` (0-based)."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def validated(self, val_loss: float) -> None:
        """The plateau rule, after each validation."""
        if self.kind != "plateau":
            return
        if val_loss < self.best:
            self.best, self.bad_validations = val_loss, 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.plateau_scale *= self.factor
            self.bad_validations = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale, self.best, self.bad_validations = state["plateau_scale"], state["best"], state["bad_validations"]
