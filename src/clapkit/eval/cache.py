"""Audio embeddings cached on disk, keyed by what determines them: the audio tower's weights and
config, the window policy, and the file's content. A re-run with other prompts or metrics embeds
only text. One SQLite file; every batch is committed as it is computed, so a killed run keeps what
it did."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError


def audio_key(pipeline) -> str:
    """sha256 of everything an audio embedding depends on: the audio tower's and audio projection's
    tensors, the audio config, the window policy and hop, and the channel rule."""
    digest = hashlib.sha256()
    settings = {"audio": pipeline.config.to_dict()["audio"],
                "policy": pipeline.policy, "hop": pipeline.hop_samples, "msclap_compat": pipeline.msclap_compat,
                "dtype": str(pipeline.compute_dtype)}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in sorted(pipeline.model.state_dict().items()):
        if name.startswith(("audio.", "audio_projection.", "clap.audio.", "clap.audio_projection.")):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """``embed(pipeline, paths, sha256s)`` -> {index: normalised embedding or AudioError}, computing
    only what is not stored under this model's key."""

    def __init__(self, path: Path | None, model_key: str) -> None:
        self.model_key = model_key
        self.db = None
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(Path(path) / "audio_embeddings.sqlite")
            self.db.execute("CREATE TABLE IF NOT EXISTS embedding (model TEXT, file TEXT, vector BLOB, "
                            "PRIMARY KEY (model, file))")

    def _stored(self, sha256s: Sequence[str]) -> dict[str, np.ndarray]:
        if self.db is None:
            return {}
        found = {}
        unique = sorted(set(sha256s))
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            rows = self.db.execute(f"SELECT file, vector FROM embedding WHERE model = ? AND file IN "
                                   f"({','.join('?' * len(part))})", [self.model_key, *part])
            found.update({file: np.frombuffer(vector, dtype=np.float32) for file, vector in rows})
        return found

    def embed(self, pipeline, paths: Sequence[str], sha256s: Sequence[str], batch_size: int = 32,
              progress: Callable[[int], None] | None = None) -> tuple[dict[int, np.ndarray], dict[int, str], int]:
        """Returns (embeddings by index, errors by index, how many were computed now)."""
        stored = self._stored(sha256s)
        embeddings = {i: stored[h] for i, h in enumerate(sha256s) if h in stored}
        todo = [i for i in range(len(paths)) if i not in embeddings]
        if progress is not None and embeddings:
            progress(len(embeddings))
        errors, pending = {}, []
        for position, result in pipeline.iter_audio_embeddings([paths[i] for i in todo], batch_size=batch_size):
            index = todo[position]
            if isinstance(result, AudioError):
                errors[index] = str(result)
            else:
                embeddings[index] = result.numpy().astype(np.float32)
                pending.append((self.model_key, sha256s[index], embeddings[index].tobytes()))
            if len(pending) >= batch_size:
                self._write(pending)
            if progress is not None:
                progress(1)
        self._write(pending)
        return embeddings, errors, len(todo) - len(errors)

    def _write(self, rows: list) -> None:
        if self.db is not None and rows:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?, ?)", rows)
        rows.clear()
