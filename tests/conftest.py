"""Shared fixtures: paths into the shared test data (``$CLAPKIT_TEST_DATA``, default ../shared), read in place."""
from __future__ import annotations

from pathlib import Path

import pytest
import shared_data
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_data.require()


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> Path:
    return shared_data.require("tokenizers", "gpt2")


@pytest.fixture(scope="session")
def bert_tokenizer_dir() -> Path:
    return shared_data.require("tokenizers", "bert-base-uncased")


@pytest.fixture(scope="session")
def msclap_checkpoint(tmp_path_factory):
    """``msclap_checkpoint(version)`` -> path of the synthetic checkpoint saved in the released
    ``.pth`` layout (``{"model": state_dict}``), written once per session."""
    from parity import msclap_raw_state

    folder = tmp_path_factory.mktemp("msclap")
    names = {"2023": "CLAP_weights_2023.pth", "2022": "CLAP_weights_2022.pth", "clapcap": "clapcap_weights_2023.pth"}

    def path_for(version: str) -> Path:
        path = folder / names[version]
        if not path.exists():
            torch.save({"model": msclap_raw_state(version)}, path)
        return path

    return path_for
