"""Any supported checkpoint -> clapkit's own format (``model.safetensors`` + ``config.json``), or
-> ONNX graphs (:mod:`.onnx`)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UsageError
from ..models.config import ModelConfig
from ..models.factory import create_model
from .formats.hf_clap import TOKENIZER_FILES
from .loading import fetch, load_state_dict_strict, read_checkpoint, save_pretrained
from .registry import PRETRAINED

TOKENIZER_FOLDER = "tokenizer"
_VOCABULARY_FILES = (*TOKENIZER_FILES, "vocab.txt")


def convert_checkpoint(source: str | Path, out: str | Path, *, variant: str | None = None,
                       tokenizer: str | Path | None = None, slim_text: bool = False) -> tuple[Path, ModelConfig]:
    """Write ``source`` (msclap .pth, LAION .pt, Hugging Face ClapModel folder or clapkit folder) to
    the new folder ``out`` in clapkit's format. A tokenizer that lives in a local folder (the Hugging
    Face folder's own, or ``tokenizer``) is copied into ``out/tokenizer`` so that the result loads
    offline (not needed with ``slim_text``: the text encoder and its tokenizer then come from the
    config's declared init package). The folder appears complete or not at all."""
    def write(model, config, folder):
        save_pretrained(model, config, folder, slim_text=slim_text)

    return _write_folder(source, out, variant, tokenizer, write, copy_tokenizer=not slim_text)


def export_checkpoint(source: str | Path, out: str | Path, *, variant: str | None = None,
                      tokenizer: str | Path | None = None, int8: bool = False) -> tuple[Path, ModelConfig]:
    """Write ``source`` (a registry name or any checkpoint :func:`convert_checkpoint` reads) as ONNX
    graphs into the new folder ``out`` (see :mod:`clapkit.weights.onnx`), with its local tokenizer."""
    from .onnx import export_onnx

    def write(model, config, folder):
        export_onnx(model, config, folder, int8=int8)

    return _write_folder(source, out, variant, tokenizer, write, copy_tokenizer=True)


def _write_folder(source, out, variant, tokenizer, write, *, copy_tokenizer: bool) -> tuple[Path, ModelConfig]:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out: {out} already exists and is not an empty folder; choose a new one")
    if str(source) in PRETRAINED:
        spec = PRETRAINED[str(source)]
        source, variant = fetch(spec), variant or spec.config
    state_dict, config, weights = read_checkpoint(source, variant)
    model = create_model(config)
    load_state_dict_strict(model, state_dict, str(weights))
    tokenizer_folder = Path(tokenizer) if tokenizer else _local_tokenizer(config) if copy_tokenizer else None
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if tokenizer_folder is not None and config.text is not None:
            _copy_tokenizer(tokenizer_folder, staging / TOKENIZER_FOLDER)
            config = dataclasses.replace(config, text=dataclasses.replace(config.text, tokenizer=TOKENIZER_FOLDER))
        write(model, config, staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, config


def _local_tokenizer(config: ModelConfig) -> Path | None:
    if config.text is None:
        return None
    folder = Path(config.text.tokenizer).expanduser()
    return folder if folder.is_dir() else None


def _copy_tokenizer(folder: Path, target: Path) -> None:
    files = [folder / name for name in _VOCABULARY_FILES if (folder / name).is_file()]
    if not files:
        raise UsageError(f"--tokenizer: {folder} holds no tokenizer files ({', '.join(_VOCABULARY_FILES)})")
    target.mkdir()
    for file in files:
        shutil.copy2(file, target / file.name)
