"""``clapkit serve`` under load: 32 concurrent clients for 30 s against ``GET /search`` on localhost.

Builds a database of ``--n`` synthetic vectors for a clapkit-small model with random weights (the
real architecture: HTSAT-32 audio tower, all-MiniLM-L6-v2 text tower, so each query pays the real
text-encoder cost; the weights do not change the time), starts ``clapkit serve`` in a subprocess and
drives it with ``--clients`` asyncio clients (httpx, keep-alive), each sending its next text query
as soon as the last answer arrives. Prints requests/s, p50/p95/p99 latency and errors, and how many
model calls the micro-batcher made. The clients share the machine with the server (2 cores here).

    python benchmarks/bench_service.py [--n 100000] [--clients 32] [--seconds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

WORDS = ["dog", "rain", "door", "engine", "bird", "glass", "crowd", "wind", "bell", "footsteps", "thunder", "piano",
         "siren", "keyboard", "water", "fire", "applause", "laughter", "train", "helicopter"]
PLACES = ["in a kitchen", "far away", "close up", "in a hall", "outdoors", "on a street", "in the forest", "underwater"]


def build_db(folder: Path, n: int) -> tuple[Path, Path]:
    """A random-weight clapkit-small saved as a checkpoint, and a database of n random vectors for it."""
    import torch

    from clapkit.index.db import Database, to_blob
    from clapkit.index.indexer import model_info
    from clapkit.models.config import get_config
    from clapkit.models.factory import create_model
    from clapkit.pipeline import ClapPipeline
    from clapkit.weights.loading import save_pretrained

    torch.manual_seed(0)
    config = get_config("clapkit-small")
    model_dir = save_pretrained(create_model(config), config, folder / "clapkit-small-random")
    import clapkit

    pipeline: ClapPipeline = clapkit.load(model_dir)
    db = Database(folder / "bench.db", create=True)
    info = model_info(pipeline, str(model_dir), segments=False)
    rng = np.random.default_rng(0)
    with db.transaction() as conn:
        db.put("model", info.to_json())
        for start in range(0, n, 10_000):
            vectors = rng.standard_normal((min(10_000, n - start), info.dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for i, v in enumerate(vectors, start):
                fid = conn.execute("INSERT INTO files (path, size, mtime_ns, sha256, duration, sample_rate, channels, status, "
                                   "model_key) VALUES (?, 1, 1, ?, 5.0, 44100, 1, 'ok', ?) RETURNING id",
                                   (f"/sounds/{i:07d}.wav".encode(), f"{i:064x}", info.key)).fetchone()[0]
                conn.execute("INSERT INTO vectors (file_id, start_s, end_s, vector) VALUES (?, 0, 5, ?)", (fid, to_blob(v)))
        db.bump_generation()
    from clapkit.index import store

    kind = store.load_or_build(db).kind
    db.close()
    print(f"database: {n:,} vectors of dim {info.dim} ({kind} search), model {info.name} (random weights)")
    return folder / "bench.db", model_dir


async def drive(url: str, clients: int, seconds: float) -> tuple[list[float], int, int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(number: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        rng = np.random.default_rng(number)
        while time.perf_counter() < stop:
            q = f"{WORDS[rng.integers(len(WORDS))]} {PLACES[rng.integers(len(PLACES))]} {rng.integers(1000)}"
            start = time.perf_counter()
            try:
                response = await http.get(url + "/search", params={"q": q, "top": 10})
                ok = response.status_code == 200 and len(response.json()["hits"]) == 10
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return latencies, errors, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, model = build_db(Path(tmp), args.n)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        server = subprocess.Popen([sys.executable, "-m", "clapkit.cli", "serve", "--db", str(db), "--model", str(model),
                                   "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("the server did not start: " + (server.stderr.read() if server.poll() is not None else ""))
                time.sleep(0.5)
            asyncio.run(drive(url, 4, 3))  # warm-up
            before = httpx.get(url + "/info").json()["text_batches"]
            latencies, errors, count = asyncio.run(drive(url, args.clients, args.seconds))
            after = httpx.get(url + "/info").json()["text_batches"]
        finally:
            server.terminate()
            server.wait(30)
    ms = np.array(latencies) * 1000
    print(f"bench_service: {args.clients} clients for {args.seconds:g} s against GET /search (top 10), "
          f"server and clients on {os.cpu_count()} CPUs")
    print(f"requests: {count} in {args.seconds:g} s = {count / args.seconds:.1f} req/s; errors: {errors}")
    calls, queries = after["model_calls"] - before["model_calls"], after["queries"] - before["queries"]
    print(f"micro-batching: {queries} text queries in {calls} model calls ({queries / max(calls, 1):.1f} per call)")
    print(f"latency: p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms")
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "requests": count, "errors": errors,
                      "rps": round(count / args.seconds, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
                      "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1)}))


if __name__ == "__main__":
    main()
