"""Shared fixtures: paths into ../shared (read in place)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> Path:
    return SHARED / "tokenizers" / "gpt2"


@pytest.fixture(scope="session")
def bert_tokenizer_dir() -> Path:
    return SHARED / "tokenizers" / "bert-base-uncased"
