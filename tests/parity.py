"""msclap's synthetic parity fixtures in ``$CLAPKIT_TEST_DATA/parity`` (read in place, never copied).
Each helper skips the calling test (fails it under CI) when the fixtures are absent."""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache

import numpy as np
import torch
from shared_data import require


@lru_cache(maxsize=None)
def _make_weights_module():
    spec = importlib.util.spec_from_file_location("parity_make_weights", require("parity", "make_weights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def msclap_raw_state(version: str) -> dict[str, torch.Tensor]:
    """The synthetic checkpoint in the released ``.pth`` key layout (version: 2023, 2022, clapcap)."""
    return {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in _make_weights_module().make_weights(version).items()}


def parity_inputs(version: str):
    return np.load(require("parity", f"inputs_{version}.npz"))


def parity_golden(version: str, fp64: bool = True):
    return np.load(require("parity", f"golden_{version}{'_fp64' if fp64 else ''}.npz"))


def parity_atol(version: str, output: str) -> float:
    return json.loads(require("parity", "tolerances.json").read_text())[version][output]["recommended_atol"]
