"""A side virtual environment for checks against reference code that cannot share clapkit's
environment (other pins, heavy imports); built from PyPI, so its tests are slow-marked. Without PyPI
the test is skipped with the reason, except under CI, where that fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def side_python(folder: Path, *, no_deps: list[str], with_deps: list[str] = ()) -> str:
    """Python of a venv in ``folder`` that sees clapkit's packages plus the given ones."""
    pip = str(folder / "bin" / "pip")
    steps = [[sys.executable, "-m", "venv", "--system-site-packages", str(folder)],
             [pip, "install", "-q", "--no-deps", *no_deps]]
    if with_deps:
        steps.append([pip, "install", "-q", *with_deps])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            reason = f"cannot build the side environment ({' '.join(step[:4])}…): {done.stderr[-300:]}"
            if os.environ.get("CI", "").lower() in ("true", "1"):
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    return str(folder / "bin" / "python")
