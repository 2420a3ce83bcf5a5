"""``clapkit classify | embed | caption | models``: the released models from the command line."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..audio.io import AUDIO_SUFFIXES
from . import UserError



def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given; directories expanded recursively to the audio files under them, sorted."""
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(given)  # a missing file is reported by the audio reader, with the others
    if not files:
        raise UserError("no audio files found in " + ", ".join(paths))
    return files


def progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=total < 2 or not sys.stderr.isatty())


def load_model(args):
    import torch

    from ..inference import load

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    return load(args.model, variant=args.variant, tokenizer=args.tokenizer, device=args.device, dtype=dtype,
                hop_seconds=args.hop)


def report_failures(failures: list[tuple[str, str]]) -> int:
    for name, cause in failures:
        print(f"clapkit: failed: {cause}", file=sys.stderr)
    if failures:
        print(f"clapkit: {len(failures)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


def audio_embeddings(model, files: list[str], batch_size: int, failures: list, desc: str):
    """Yield (file, embedding) for each readable file; unreadable ones go to ``failures``."""
    with progress(len(files), desc) as bar:
        for index, result in model.iter_audio_embeddings(files, batch_size=batch_size):
            bar.update(1)
            if isinstance(result, Exception):
                failures.append((files[index], str(result)))
            else:
                yield files[index], result


def cmd_classify(args) -> int:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise UserError("--labels needs at least one label, comma-separated")
    model, files, failures = load_model(args), expand_inputs(args.files), []
    text = model.embed_text([args.template.format(label) for label in labels])
    for file, embedding in audio_embeddings(model, files, args.batch_size, failures, "classify"):
        scores = model.similarity(embedding[None], text)[0]
        probs = scores.sigmoid() if args.multilabel else scores.softmax(-1)
        top = sorted(zip(labels, probs.tolist()), key=lambda lp: -lp[1])[: args.top]
        if args.json:
            print(json.dumps({"file": file, "top": [{"label": label, "prob": round(p, 6)} for label, p in top]}), flush=True)
        else:
            print(f"{file}\t" + "  ".join(f"{label} ({p:.3f})" for label, p in top), flush=True)
    return report_failures(failures)


def save_npz_atomic(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cmd_embed(args) -> int:
    model, failures = load_model(args), []
    files = expand_inputs(args.files) if args.files else []
    rows = list(audio_embeddings(model, files, args.batch_size, failures, "embed"))
    dim = model.config["embed_dim"]
    arrays = {"audio_files": np.array([f for f, _ in rows], dtype=str),
              "audio": np.stack([e.numpy() for _, e in rows]) if rows else np.zeros((0, dim), np.float32)}
    if args.text:
        arrays.update(texts=np.array(args.text, dtype=str), text=model.embed_text(args.text).numpy())
    save_npz_atomic(Path(args.out), **arrays)
    print(f"wrote {len(rows)} audio and {len(args.text or [])} text embeddings to {args.out}", file=sys.stderr)
    return report_failures(failures)


def cmd_caption(args) -> int:
    from ..audio import AudioError

    model, files, failures = load_model(args), expand_inputs(args.files), []
    with progress(len(files), "caption") as bar:
        for file in files:
            try:
                caption = model.caption([file], beam_size=args.beam_size)[0]
            except AudioError as e:
                failures.append((file, str(e)))
            else:
                print(json.dumps({"file": file, "caption": caption}) if args.json else f"{file}\t{caption}", flush=True)
            bar.update(1)
    return report_failures(failures)


def cmd_models(args) -> int:
    from ..weights.registry import PRETRAINED, download_hint, local_candidates

    for spec in PRETRAINED.values():
        present = next((p for p in local_candidates(spec) if p.is_file()), None)
        where = f"present: {present}" if present else f"not present; {download_hint(spec)}"
        print(f"{spec.name}\t{spec.description}\n\t{where}")
    return 0


def _model_options(parser) -> None:
    parser.add_argument("--model", default="msclap-2023", help="registry name (see `clapkit models`) or checkpoint path")
    parser.add_argument("--variant", help="architecture of a checkpoint path whose keys do not say it")
    parser.add_argument("--tokenizer", help="tokenizer hub name or local folder (for offline use)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hop", type=float, help="seconds between windows of long clips (default: the clip length)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="zero-shot classification of audio files")
    p.add_argument("files", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--labels", required=True, help="comma-separated class labels")
    p.add_argument("--template", default="this is the sound of {}")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--multilabel", action="store_true", help="independent sigmoid scores instead of a softmax")
    _model_options(p)
    p.set_defaults(handler=cmd_classify)

    p = subparsers.add_parser("embed", help="audio and text embeddings to an .npz file")
    p.add_argument("files", nargs="*", help="audio files or folders")
    p.add_argument("--text", action="append", help="a text to embed (repeatable)")
    p.add_argument("--out", required=True)
    _model_options(p)
    p.set_defaults(handler=cmd_embed)

    p = subparsers.add_parser("caption", help="captions from a clapcap model")
    p.add_argument("files", nargs="+")
    p.add_argument("--beam-size", type=int, default=5)
    _model_options(p)
    p.set_defaults(handler=cmd_caption, model="msclap-clapcap")

    p = subparsers.add_parser("models", help="known models, whether their weights are here, where to get them")
    p.set_defaults(handler=cmd_models)
