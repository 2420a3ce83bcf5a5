"""msclap's synthetic parity fixtures in ../shared/parity (read in place, never copied)."""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity"


@lru_cache(maxsize=None)
def _make_weights_module():
    spec = importlib.util.spec_from_file_location("parity_make_weights", PARITY / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def msclap_raw_state(version: str) -> dict[str, torch.Tensor]:
    """The synthetic checkpoint in the released ``.pth`` key layout (version: 2023, 2022, clapcap)."""
    return {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in _make_weights_module().make_weights(version).items()}


def parity_inputs(version: str):
    return np.load(PARITY / f"inputs_{version}.npz")


def parity_golden(version: str, fp64: bool = True):
    return np.load(PARITY / f"golden_{version}{'_fp64' if fp64 else ''}.npz")


def parity_atol(version: str, output: str) -> float:
    return json.loads((PARITY / "tolerances.json").read_text())[version][output]["recommended_atol"]
