"""``clapkit embed``: audio (and text) embeddings, to one ``.npz`` or, for large collections, to a
folder of shards that is written as it goes and resumes after a kill.

Folder layout (``--out DIR``)::

    DIR/meta.json            the model, its window policy and the embedding size (a resume must match)
    DIR/shard-00000.npz      paths (str, as given) and audio (n, D) float32, L2-normalised
    DIR/failures.jsonl       {"path", "error"} per unreadable file of the last run
    DIR/text.npz             texts and text (n, D), when --text is given

Each shard is written whole (temporary file, then rename) every ``--shard-size`` files, so a killed
run loses at most the files of one unfinished shard; the next run skips every path already in a shard.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ..errors import UsageError

META = "meta.json"


def read_shards(folder: str | Path) -> tuple[list[str], "np.ndarray"]:  # noqa: F821 - numpy imported lazily
    """All paths and embeddings of an embedding folder, in shard order."""
    import numpy as np

    paths, rows = [], []
    for shard in sorted(Path(folder).glob("shard-*.npz")):
        with np.load(shard) as data:
            paths += [str(p) for p in data["paths"]]
            rows.append(data["audio"])
    return paths, (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32))


class ShardWriter:
    """Appends (path, embedding) rows; every ``size`` rows become the next shard file."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder, self.size = folder, size
        self.rows: list[tuple[str, object]] = []
        self.next_index = len(list(folder.glob("shard-*.npz")))

    def add(self, path: str, embedding) -> None:
        self.rows.append((path, embedding))
        if len(self.rows) >= self.size:
            self.flush()

    def flush(self) -> None:
        import numpy as np

        if not self.rows:
            return
        target = self.folder / f"shard-{self.next_index:05d}.npz"
        _atomic_npz(target, paths=np.array([p for p, _ in self.rows], dtype=str),
                    audio=np.stack([e.numpy() for _, e in self.rows]).astype(np.float32))
        self.rows.clear()
        self.next_index += 1


def _atomic_npz(path: Path, **arrays) -> None:
    from .infer import save_npz_atomic

    save_npz_atomic(path, **arrays)


def check_output_folder(out: str) -> Path:
    """The shard folder: new, empty, or an embedding folder to resume; anything else is refused."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out: {out} is a file; give a new folder (or a name ending in .npz for one file)")
    if path.is_dir() and any(path.iterdir()) and not (path / META).is_file():
        raise UsageError(f"--out: {out} is a folder that holds other files, not an embedding folder to resume; "
                         "give a new folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".clapkit-check-"):
            pass
    except OSError as e:
        raise UsageError(f"--out: cannot write {out} ({e.strerror or type(e).__name__})") from None
    return path


def embed_to_folder(args, model, files: list[str], failures: list) -> int:
    """Stream ``files`` into shards under ``args.out``, skipping those a previous run finished."""
    from .infer import audio_embeddings, printable, report_failures

    folder = Path(args.out)
    meta = {"model": model.name, "embed_dim": model.config.embed_dim, "policy": model.policy,
            "hop_samples": model.hop_samples, "sample_rate": model.sample_rate}
    if (folder / META).is_file():
        recorded = json.loads((folder / META).read_text())
        if recorded != meta:
            raise UsageError(f"--out: {folder} holds embeddings from {recorded.get('model')} ({recorded}); "
                             f"this run would add {meta['model']} ({meta}); give another folder")
    else:
        (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    done = set(read_shards(folder)[0])
    todo = [f for f in files if printable(f) not in done]
    writer = ShardWriter(folder, args.shard_size)
    for file, embedding in audio_embeddings(model, todo, args.batch_size, failures, "embed"):
        writer.add(printable(file), embedding)
    writer.flush()
    if args.text:
        import numpy as np

        _atomic_npz(folder / "text.npz", texts=np.array(args.text, dtype=str), text=model.embed_text(args.text).numpy())
    with (folder / "failures.jsonl").open("w", encoding="utf-8") as f:
        for path, error in failures:
            f.write(json.dumps({"path": printable(path), "error": error}) + "\n")
    asked = set(todo)
    embedded = len(todo) - sum(1 for path, _ in failures if path in asked)
    print(f"embedded {embedded} file(s) into {folder} ({len(done)} already there, {len(failures)} failed); "
          f"{writer.next_index} shard(s)", file=sys.stderr)
    return report_failures(failures)
