"""``clapkit classify | embed | caption | models``: the released models from the command line.

Options are checked when parsed (by the same checks as the API); torch and the models are
imported only inside the handlers, so ``--help`` and option errors answer at once.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .. import options
from ..audio.formats import has_audio_suffix
from ..errors import ClapkitError, UsageError
from ..weights.registry import DEFAULT_MODEL


def _checked(check, name: str):
    """An argparse ``type=`` from an option check: its UsageError becomes argparse's one-line error."""
    def parse(text: str):
        try:
            return check(name, text)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
    return parse


def _number(kind, check, expected: str):
    """A parser of ``kind`` (int, float) followed by an option check; unparsable text is named."""
    def parse(name: str, text: str):
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"{name}: must be {expected}, got {text!r}") from None
        return check(name, value)
    return parse


_int = _number(int, options.positive_int, "a whole number of at least 1")
_hop = _number(float, options.hop_seconds, "a finite number of seconds above 0")


# ---- inputs and outputs ------------------------------------------------------------------------


def expand_inputs(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files as given, folders expanded recursively (following links, each folder once) to the
    entries with an audio suffix, sorted. Returns ``(files, problems)``: entries that cannot be
    files (loops, unreadable folders) are problems, reported with the failed inputs."""
    files, problems = [], []
    for given in paths:
        if os.path.isdir(given):
            _walk(given, files, problems)
        else:
            files.append(given)  # missing, broken link, FIFO…: the decoder names the cause
    if not files and not problems:
        raise UsageError("no audio files found in " + ", ".join(paths))
    return files, problems


def _walk(root: str, files: list[str], problems: list[tuple[str, str]]) -> None:
    seen: set[tuple[int, int]] = set()

    def visit(folder: str) -> None:
        try:
            info = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            problems.append((folder, f"{folder}: cannot read folder ({e.strerror})"))
            return
        if (info.st_dev, info.st_ino) in seen:
            problems.append((folder, f"{folder}: symbolic link loop (folder already visited)"))
            return
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = os.path.join(folder, entry.name)
            if _is_dir(path, problems):
                visit(path)
            elif has_audio_suffix(entry.name):
                files.append(path)

    visit(root)


def _is_dir(path: str, problems: list[tuple[str, str]]) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as e:
        if os.path.islink(path) and e.errno == errno.ELOOP:
            problems.append((path, f"{path}: symbolic link loop"))
        return False


def check_output_file(out: str) -> Path:
    """Fail before any work if ``out`` cannot be written: empty, a folder, under a file, read-only."""
    if not out:
        raise UsageError("--out: empty path")
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out: {out} is a folder; give a file name such as {path / 'embeddings.npz'}")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--out: cannot write {out} ({blocking} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".clapkit-check-"):
            pass
    except OSError as e:
        raise UsageError(f"--out: cannot write {out} ({e.strerror or type(e).__name__})") from None
    return path


def save_npz_atomic(path: Path, **arrays) -> None:
    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=total < 2 or not sys.stderr.isatty())


def printable(path: str) -> str:
    """A path as text that can always be printed (undecodable bytes shown as escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def report_failures(failures: list[tuple[str, str]]) -> int:
    for _, cause in failures:
        print(f"clapkit: failed: {printable(cause)}", file=sys.stderr)
    if failures:
        print(f"clapkit: {len(failures)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


# ---- commands ---------------------------------------------------------------------------------


def load_model(args, *, audio_only: bool = False):
    from ..pipeline import load

    return load(args.model, variant=args.variant, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
                hop_seconds=args.hop, policy=args.policy, audio_only=audio_only)


def audio_embeddings(model, files: list[str], batch_size: int, failures: list, desc: str) -> Iterator:
    """Yield (file, embedding) for each readable file as soon as it is done; failures are collected."""
    with progress(len(files), desc) as bar:
        for index, result in model.iter_audio_embeddings(files, batch_size=batch_size):
            bar.update(1)
            if isinstance(result, ClapkitError):
                failures.append((files[index], str(result)))
            else:
                yield files[index], result


def cmd_classify(args) -> int:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise UsageError("--labels: needs at least one label, comma-separated")
    files, failures = expand_inputs(args.files)
    model = load_model(args)
    text = model.embed_text([args.template.format(label) for label in labels])
    for file, embedding in audio_embeddings(model, files, args.batch_size, failures, "classify"):
        scores = model.similarity(embedding[None], text)[0]
        probs = scores.sigmoid() if args.multilabel else scores.softmax(-1)
        top = sorted(zip(labels, probs.tolist()), key=lambda lp: -lp[1])[: args.top]
        name = printable(file)
        if args.json:
            print(json.dumps({"file": name, "top": [{"label": label, "prob": round(p, 6)} for label, p in top]}), flush=True)
        else:
            print(f"{name}\t" + "  ".join(f"{label} ({p:.3f})" for label, p in top), flush=True)
    return report_failures(failures)


def cmd_embed(args) -> int:
    import numpy as np

    from .embed import check_output_folder, embed_to_folder

    if not args.out:
        raise UsageError("--out: empty path")
    to_file = args.out.endswith(".npz")
    out = check_output_file(args.out) if to_file else check_output_folder(args.out)
    files, failures = expand_inputs(args.files) if args.files else ([], [])
    if not files and not args.text:
        raise UsageError("embed: give audio files or folders, or --text")
    model = load_model(args, audio_only=not args.text)  # no text tower to build when no text is asked for
    if not to_file:
        return embed_to_folder(args, model, files, failures)
    rows = list(audio_embeddings(model, files, args.batch_size, failures, "embed"))
    arrays = {"audio_files": np.array([printable(f) for f, _ in rows], dtype=str),
              "audio": np.stack([e.numpy() for _, e in rows]) if rows else np.zeros((0, model.config.embed_dim), np.float32)}
    if args.text:
        arrays.update(texts=np.array(args.text, dtype=str), text=model.embed_text(args.text).numpy())
    save_npz_atomic(out, **arrays)
    print(f"wrote {len(rows)} audio and {len(args.text or [])} text embeddings to {out}", file=sys.stderr)
    return report_failures(failures)


def cmd_caption(args) -> int:
    files, failures = expand_inputs(args.files)
    model = load_model(args)
    if model.config.caption is None:
        raise UsageError(f"--model: {model.name} cannot caption: it has no caption decoder (use msclap-clapcap)")
    with progress(len(files), "caption") as bar:
        for file in files:
            try:
                caption = model.caption([file], beam_size=args.beam_size, prompt=args.prompt)[0]
            except ClapkitError as e:
                failures.append((file, str(e)))
            else:
                name = printable(file)
                print(json.dumps({"file": name, "caption": caption}) if args.json else f"{name}\t{caption}", flush=True)
            bar.update(1)
    return report_failures(failures)


def cmd_models(args) -> int:
    """Every registered model: its architecture, licence and source, each place ``load`` looks for
    it (in order) and what is there."""
    from ..hub import hub_reachable
    from ..weights.loading import hub_cached
    from ..weights.registry import (
        PRETRAINED,
        download_hint,
        local_candidates,
        shipped_path,
    )

    hub = "reachable" if hub_reachable() else "unreachable (offline)"
    for spec in PRETRAINED.values():
        if spec.shipped:
            print(f"{spec.name}\t{spec.description}")
            print(f"\tformat: {spec.checkpoint_format}; licence: {spec.licence}")
            print(f"\tsource: {spec.source}; sha256: {spec.sha256}")
            print(f"\tready: shipped inside the package ({shipped_path(spec)}); the default model")
            continue
        cached = hub_cached(spec)
        places = [(str(path), (path / "config.json").is_file() if spec.is_folder else path.is_file())
                  for path in local_candidates(spec)]
        places.append((str(cached) if cached else f"Hugging Face cache: {spec.hub_repo}/{spec.filename}", cached is not None))
        found = next((where for where, present in places if present), None)
        architecture = spec.config or "read from the folder's config.json"
        print(f"{spec.name}\t{spec.description}")
        print(f"\tarchitecture: {architecture}; format: {spec.checkpoint_format}; licence: {spec.licence}")
        print(f"\tsource: {spec.source}; sha256: {spec.sha256 or 'not pinned'}")
        print(f"\t{'ready: ' + found if found else 'not present; ' + download_hint(spec)}")
        for where, present in places:
            print(f"\t  {'found ' if present else 'absent'}  {where}")
        print(f"\t  then the Hub: {spec.hub_repo} ({hub})")
    return 0


def _model_options(parser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"registry name (see `clapkit models`) or checkpoint path (default: {DEFAULT_MODEL}, shipped)")
    parser.add_argument("--variant", help="architecture of a checkpoint path whose keys do not say it")
    parser.add_argument("--tokenizer", help="tokenizer hub name or local folder (for offline use)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "int8"],
                        help="bfloat16 runs float32 (with a warning) on CPUs without native bf16; int8: dynamic "
                             "quantisation of the Linear layers (CPU)")
    parser.add_argument("--batch-size", type=_checked(_int, "--batch-size"), default=16,
                        help="windows encoded together (default: 16)")
    parser.add_argument("--hop", type=_checked(_hop, "--hop"),
                        help="seconds between windows of long clips (default: the clip length)")
    parser.add_argument("--policy", choices=["sliding", "start", "center", "fusion"],
                        help="clips longer than the model's window: sliding windows averaged (default), the "
                             "start or centre window, or LAION fusion (the default of fusion models)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="zero-shot classification of audio files")
    p.add_argument("files", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--labels", required=True, help="comma-separated class labels")
    p.add_argument("--template", type=_checked(lambda name, text: options.template(text, name), "--template"), default="this is the sound of {}",
                   help="prompt with one '{}' for the label (default: 'this is the sound of {}')")
    p.add_argument("--top", type=_checked(_int, "--top"), default=3, help="labels shown per file (default: 3)")
    p.add_argument("--multilabel", action="store_true", help="independent sigmoid scores instead of a softmax")
    _model_options(p)
    p.set_defaults(handler=cmd_classify)

    p = subparsers.add_parser("embed", help="audio and text embeddings to an .npz file or a resumable folder of shards")
    p.add_argument("files", nargs="*", help="audio files or folders")
    p.add_argument("--text", action="append", help="a text to embed (repeatable)")
    p.add_argument("--out", required=True,
                   help="an .npz file, or a folder: shards written as the run goes, resumed when run again")
    p.add_argument("--shard-size", type=_checked(_int, "--shard-size"), default=1000,
                   help="files per shard in folder mode (default: 1000)")
    _model_options(p)
    p.set_defaults(handler=cmd_embed)

    p = subparsers.add_parser("caption", help="captions from a clapcap model; answers from an audio-pretraining run")
    p.add_argument("files", nargs="+")
    p.add_argument("--beam-size", type=_checked(_int, "--beam-size"), default=None,
                   help="beams (default: the model's)")
    p.add_argument("--prompt", help="a question for a model trained with clapkit train --stage audio-pretrain, "
                                    "e.g. 'which instrument family is playing?'")
    _model_options(p)
    p.set_defaults(handler=cmd_caption, model="msclap-clapcap")

    p = subparsers.add_parser("models", help="known models, where load looks for each, and what is there")
    p.set_defaults(handler=cmd_models)
