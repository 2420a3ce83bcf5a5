"""Where the shared test fixtures live (msclap parity goldens, tokenizers, FSDD), found through one setting.

``CLAPKIT_TEST_DATA`` names the folder; it defaults to ``../shared`` beside the checkout. A test that
needs a missing fixture is skipped with a reason naming the setting, except under CI (``CI=true``),
where the absence is a failure: CI can never pass by skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SETTING = "CLAPKIT_TEST_DATA"
DEFAULT = Path(__file__).resolve().parents[2] / "shared"


def root() -> Path:
    return Path(os.environ.get(SETTING) or DEFAULT)


def require(*parts: str) -> Path:
    """``root()/parts``, or skip (fail under CI) the calling test when it is missing."""
    path = root().joinpath(*parts)
    if path.exists():
        return path
    reason = (f"needs the shared test data: {path} is missing; set {SETTING} to the folder holding "
              "parity/, tokenizers/ and data/fsdd (default: ../shared beside the checkout)")
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason + " — under CI its absence is a failure", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
