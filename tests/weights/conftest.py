"""Hugging Face ClapModel folders (full size, random weights), built once per session."""
from __future__ import annotations

import pytest
from hf_clap import save_hf_clap


@pytest.fixture(scope="session")
def hf_clap_folder(tmp_path_factory):
    """``ClapModel(ClapConfig())``: HTSAT-tiny + RoBERTa-base, unfused, as the issue's proof asks."""
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "clap-htsat-unfused")


@pytest.fixture(scope="session")
def hf_clap_fused_folder(tmp_path_factory):
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "clap-htsat-fused", fusion=True)
