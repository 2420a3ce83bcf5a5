"""A tiny trainable CLAP (HTSAT + GPT-2, a few thousand parameters per block) and a small corpus of
synthetic clips with label captions, for training tests that run in seconds on a CPU."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tiny_clap import RATE, tiny_config

LABELS = ["low hum", "high whistle", "noise burst", "clicks"]


def tiny_model_config(dropout: float = 0.0) -> dict:
    return tiny_config("tiny-test", depths=(2, 2), dropout=dropout)


def write_model_config(folder: Path, dropout: float = 0.0) -> str:
    path = folder / "tiny-model.json"
    path.write_text(json.dumps(tiny_model_config(dropout)))
    return str(path)


def clip(label: int, variant: int, seconds: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng([label, variant])
    t = np.arange(int(seconds * RATE)) / RATE
    if label == 0:
        wave = np.sin(2 * np.pi * (110 + 10 * variant) * t)
    elif label == 1:
        wave = np.sin(2 * np.pi * (3000 + 100 * variant) * t)
    elif label == 2:
        wave = rng.standard_normal(t.size) * (t < seconds / 2)
    else:
        wave = np.zeros(t.size)
        wave[:: RATE // (20 + variant)] = 1.0
    return (0.3 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_corpus(folder: Path, per_label: int = 6, name: str = "train") -> str:
    """Clips of four sound kinds with two caption wordings each; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for label, text in enumerate(LABELS):
        for variant in range(per_label):
            path = folder / f"{name}-{label}-{variant}.wav"
            sf.write(path, clip(label, variant), RATE)
            lines.append({"path": path.name, "captions": [f"a {text}", f"the sound of a {text}"],
                          "labels": [text], "split": name, "source": "synthetic", "licence": "CC0-1.0"})
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(manifest)


def tiny_pretrain_config(dropout: float = 0.0) -> dict:
    """The tiny model's audio tower with a one-block decoder over all-MiniLM-L6-v2's WordPiece
    vocabulary (read from its installed package: no network, no shared files)."""
    from clapkit.models.config import get_config, parse_config

    config = tiny_model_config(dropout)
    config.update(name="tiny-pretrain", text=None, caption={
        "decoder": {"arch": "gpt2-lm", "tokenizer": "sentence-transformers/all-MiniLM-L6-v2",
                    "tokenizer_style": "bert",
                    "tokenizer_init": get_config("clapkit-small-pretrain").caption.decoder.tokenizer_init.__dict__,
                    "args": {"vocab_size": 30522, "n_positions": 64, "n_embd": 16, "n_layer": 1, "n_head": 2}},
        "prefix_length": 2, "mapper_layers": 1, "normalize_prefix": False, "beam_size": 2, "max_length": 8,
        "stop": "eos"})
    parse_config(config, "tiny-pretrain")
    return config


def wait_for_checkpoint(run: Path, name: str, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        pointer = run / "checkpoints" / "LATEST"
        if pointer.is_file() and pointer.read_text().strip() == name:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} did not appear (exit {process.poll()}): {process.stderr.read() if process.poll() is not None else ''}")


def train_on_two_ranks(argv: list[str]) -> None:
    """``clapkit train`` as two torchrun ranks (gloo, one thread each)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(port), "-m", "clapkit.train", *argv],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


def assert_same_weights(single: Path, ddp: Path, steps: int, lr: float, atol: float) -> None:
    """Two runs' final weights agree within ``atol``; attention key biases (exactly zero gradient:
    softmax ignores a constant shift, so Adam's update there is normalised rounding noise) within
    the learning rate per step."""
    from safetensors.torch import load_file

    expected_state, actual_state = load_file(single / "model.safetensors"), load_file(ddp / "model.safetensors")
    assert expected_state.keys() == actual_state.keys()
    for name in expected_state:
        expected, actual = split_key_bias(name, expected_state[name]), split_key_bias(name, actual_state[name])
        torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=atol, msg=name)
        assert all(abs(d) <= steps * lr for d in (actual[1] - expected[1]).tolist()), name


def split_key_bias(name: str, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(everything but the attention key bias, the key bias)`` of one parameter."""
    if not name.endswith(("attn.qkv.bias", "attn.c_attn.bias")):
        return tensor.reshape(-1), tensor.reshape(-1)[:0]
    query, key, value = tensor.chunk(3)
    return torch.cat([query, value]), key


def training_process(arguments: list[str]) -> subprocess.Popen:
    """``python -m clapkit.train ARGUMENTS`` with this process's thread count: CPU reductions, and so
    the bits of the weights, depend on it, and the runs it is compared with train in this process."""
    return subprocess.Popen([sys.executable, "-m", "clapkit.train", *arguments], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
