"""Shared by tests/index and tests/serve: a tiny random-weight CLAP saved as a checkpoint folder
(what ``--model PATH`` accepts) and short generated clips of distinct kinds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tiny_clap import RATE, tiny_config

KINDS = ["hum", "whistle", "noise", "clicks"]
TOKEN = "s3cret-token"  # the serve tests' bearer token


def save_tiny_model(folder: Path, seed: int = 0, name: str = "tiny-search") -> str:
    """A random-weight model (``seed``) saved as ``folder/model.safetensors`` + ``config.json``."""
    import torch

    from clapkit.models.config import parse_config
    from clapkit.models.factory import create_model
    from clapkit.weights.loading import save_pretrained

    config = parse_config(tiny_config(name), name)
    torch.manual_seed(seed)
    model = create_model(config)
    save_pretrained(model, config, folder)
    return str(folder)


def clip(kind: int, variant: int, seconds: float = 0.6, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng([kind, variant])
    t = np.arange(int(seconds * rate)) / rate
    if kind == 0:
        wave = np.sin(2 * np.pi * (110 + 10 * variant) * t)
    elif kind == 1:
        wave = np.sin(2 * np.pi * (3000 + 100 * variant) * t)
    elif kind == 2:
        wave = rng.standard_normal(t.size)
    else:
        wave = np.zeros(t.size)
        wave[:: rate // (20 + variant)] = 1.0
    return (0.3 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_clips(folder: Path, per_kind: int = 2, seconds: float = 0.6) -> list[Path]:
    """``per_kind`` clips of each kind, some in a sub-folder; returns their paths, sorted."""
    paths = []
    for kind, name in enumerate(KINDS):
        for variant in range(per_kind):
            path = folder / ("sub" if variant % 2 else "") / f"{name}-{variant}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, clip(kind, variant, seconds), RATE)
            paths.append(path)
    return sorted(paths)


def db_state(db_path: Path) -> dict:
    """Everything a test checks after a run: files by path, vectors per file, orphans, duplicates."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        files = {row[0].decode(): {"status": row[1], "sha256": row[2], "vectors": row[3], "error": row[4]}
                 for row in conn.execute("SELECT f.path, f.status, f.sha256, COUNT(v.id), f.error FROM files f "
                                         "LEFT JOIN vectors v ON v.file_id = f.id GROUP BY f.id")}
        orphans = conn.execute("SELECT COUNT(*) FROM vectors WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
        generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        model = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()[0])
    finally:
        conn.close()
    return {"files": files, "orphans": orphans, "generation": generation, "model": model}
