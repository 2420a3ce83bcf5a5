"""Checkpoints that resume bit for bit: model, optimizer, schedule, gradient scaler, the exact data
position and every RNG state (Python, NumPy, torch CPU and CUDA) of every rank.

A checkpoint is the folder ``checkpoints/step-N/`` (``model.safetensors``, ``state.pt``,
``rng-rank{r}.pt``). It is written under a temporary name, every file fsynced, then renamed, and
``checkpoints/LATEST`` is replaced atomically after it: a crash or a full disk at any moment leaves
the previous checkpoint whole. ``state.pt`` holds only tensors and plain values, so it is read back
with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import ClapkitError
from ..weights.loading import write_safetensors


class CheckpointError(ClapkitError):
    """A checkpoint that cannot be written or read; the message says whether an older one is intact."""


def rng_state() -> dict:
    """This process's RNG states, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                                                     "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = run_dir / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    folder = run_dir / "checkpoints" / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def _fsynced(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save(run_dir: Path, step: int, model_state: dict[str, torch.Tensor], state: dict, rank: int,
         barrier=lambda: None) -> Path:
    """Write ``checkpoints/step-N`` atomically (every rank calls this; rank 0 writes the shared files)."""
    folder = run_dir / "checkpoints" / f"step-{step}"
    tmp = run_dir / "checkpoints" / f".tmp-step-{step}"
    previous = latest(run_dir)
    try:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier()
        torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
        _fsynced(tmp / f"rng-rank{rank}.pt")
        if rank == 0:
            write_safetensors(model_state, tmp / "model.safetensors")
            torch.save(state, tmp / "state.pt")
            for name in ("model.safetensors", "state.pt"):
                _fsynced(tmp / name)
        barrier()
        if rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            pointer = run_dir / "checkpoints" / ".LATEST.tmp"
            pointer.write_text(folder.name + "\n")
            _fsynced(pointer)
            os.replace(pointer, run_dir / "checkpoints" / "LATEST")
        barrier()
    except OSError as e:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous checkpoint ({previous.name}) is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"checkpoint step-{step} not saved ({e.strerror or type(e).__name__}: "
                              f"{e.filename or run_dir}); {kept}") from None
    return folder


def load(folder: Path, rank: int) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """``(model state, training state, this rank's RNG state)`` of a checkpoint folder."""
    from safetensors.torch import load_file

    try:
        model_state = load_file(str(folder / "model.safetensors"))
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        rng = torch.load(folder / f"rng-rank{rank}.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"{folder}: cannot read checkpoint ({e})") from None
    return model_state, state, rng
