from __future__ import annotations

import pytest
from search_support import save_tiny_model, write_clips
from shared_data import require


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """Two tiny random-weight models with the same architecture and different weights."""
    folder = tmp_path_factory.mktemp("models")
    return {"a": save_tiny_model(folder / "a", seed=0), "b": save_tiny_model(folder / "b", seed=1)}


@pytest.fixture(scope="session")
def tokenizer() -> str:
    return str(require("tokenizers", "gpt2"))


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    write_clips(folder)
    return folder
