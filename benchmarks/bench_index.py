"""``clapkit index`` throughput on a folder of real recordings against the model-only embedding time.

Files: the first ``--files`` recordings of the Free Spoken Digit Dataset from the shared test data
(``$CLAPKIT_TEST_DATA/data/fsdd/recordings``: real 8 kHz WAV speech, ~0.5 s each), or ``--folder``.
Model: clapkit-small's architecture with random weights (the compute is the real model's).

Three figures, files per second:
- model only: the windows decoded and resampled beforehand (untimed), then only the encoder
  (``encode_audio`` in batches of ``--batch-size``);
- ``clapkit index`` from scratch: walking, hashing, decoding, resampling, encoding, SQLite
  transactions and the FAISS file;
- ``clapkit index`` again with nothing changed (stat only).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", help="a folder of audio files (default: FSDD from the shared test data)")
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    import clapkit
    from clapkit.index.indexer import Indexer
    from clapkit.models.config import get_config
    from clapkit.models.factory import create_model
    from clapkit.weights.loading import save_pretrained

    shared = Path(os.environ.get("CLAPKIT_TEST_DATA") or ROOT.parent / "shared")
    source = Path(args.folder) if args.folder else shared / "data" / "fsdd" / "recordings"
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".oga", ".mp3"))[: args.files]
    if not files:
        raise SystemExit(f"no audio files in {source}")
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "audio"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        torch.manual_seed(0)
        config = get_config("clapkit-small")
        model_dir = save_pretrained(create_model(config), config, tmp / "model")
        pipeline = clapkit.load(model_dir)
        seconds = sum(__import__("soundfile").info(str(f)).duration for f in files)
        print(f"bench_index: {len(files)} files ({seconds:.0f} s of audio) from {source}, model {pipeline.name} "
              f"(random weights, {pipeline.config.audio.frontend.clip_seconds:g} s windows), batch {args.batch_size}, "
              f"{torch.get_num_threads()} threads")

        windows = [w for f in files for w in pipeline._item_windows(0, str(f), None)]
        pipeline._encode_windows(windows[: args.batch_size])  # warm-up

        def model_only_run() -> float:
            start = time.perf_counter()
            for i in range(0, len(windows), args.batch_size):
                pipeline._encode_windows(windows[i:i + args.batch_size])
            return time.perf_counter() - start

        def index_run(db: Path) -> float:
            start = time.perf_counter()
            report = Indexer(pipeline, db, source=str(model_dir), batch_size=args.batch_size, progress=False).run([str(folder)])
            assert report.files == len(files) and not report.failed, report.summary()
            return time.perf_counter() - start

        # alternated and the best of two each: this machine is shared, so single runs are noisy
        runs = [model_only_run(), index_run(tmp / "first.db"), model_only_run(), index_run(tmp / "bench.db")]
        model_only, full = min(runs[0], runs[2]), min(runs[1], runs[3])
        print(f"model only: {len(windows)} windows in {model_only:.1f} s = {len(files) / model_only:.1f} files/s "
              f"(runs: {runs[0]:.1f} s, {runs[2]:.1f} s)")
        db = tmp / "bench.db"
        print(f"clapkit index from scratch: {full:.1f} s = {len(files) / full:.1f} files/s "
              f"({full / model_only:.2f}x the model-only time; runs: {runs[1]:.1f} s, {runs[3]:.1f} s)")
        start = time.perf_counter()
        report = Indexer(pipeline, db, source=str(model_dir), batch_size=args.batch_size, progress=False).run([str(folder)])
        again = time.perf_counter() - start
        assert report.unchanged == len(files)
        print(f"clapkit index again, nothing changed: {again:.2f} s ({len(files) / again:.0f} files/s)")
        np.testing.assert_equal(report.vectors, len(files))


if __name__ == "__main__":
    main()
