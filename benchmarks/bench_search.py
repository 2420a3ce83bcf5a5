"""Vector search at collection scale: exact vs IVF (what ``clapkit index`` builds beyond
``EXACT_LIMIT``) vs HNSW, on synthetic clustered unit vectors of the model's dimension.

Prints, for each index: build time, memory (serialised size), single-query top-10 latency
(median and p95 over the queries, one query per call, as the service issues them) and recall@10
against exact search. Goal: <= 20 ms at recall@10 >= 0.95 at 1M vectors on a 2-core machine.

    python benchmarks/bench_search.py                       # 1M x 512 (clapkit-small's dimension)
    python benchmarks/bench_search.py --n 200000 --hnsw-n 50000

Data (synthetic; no million real embeddings exist here): ``--clusters`` random centres (sounds of
one kind), each vector its centre plus Gaussian noise of norm ``--noise``. By default centres and
noise live in a ``--intrinsic``-dimensional latent space mapped into the model's dimension with
power-law scales (plus 5% isotropic noise): embeddings of real models have such a decaying
spectrum and a low intrinsic dimension. ``--intrinsic 0`` puts the noise in all dimensions
equally: with noise >= 1.5 the top 10 are then close to random points, the worst case for any ANN
index — run both; the README quotes both. Figures are for this data, not a promise for every
collection; ``clapkit index --index-kind flat`` is always exact.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clapkit.index import store  # noqa: E402


def clustered(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator, noise: float,
              basis: np.ndarray | None = None, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors: a random centre plus noise of norm ``noise``; with ``basis`` (latent -> dim,
    decaying scales) centres and noise live in a low-dimensional latent space, plus 5% isotropic noise."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        width = centres.shape[1]
        z = centres[rng.integers(len(centres), size=m)] + rng.standard_normal((m, width), dtype=np.float32) * (noise / np.sqrt(width))
        if basis is not None:
            z = z @ basis
            z /= np.linalg.norm(z, axis=1, keepdims=True)
            z += rng.standard_normal((m, dim), dtype=np.float32) * (0.05 / np.sqrt(dim))
        out[start:start + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out


def latency(index: store.VectorIndex, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    """Median and p95 milliseconds of one-query searches (as ``clapkit search`` and the service
    issue them: ``VectorIndex.search`` runs a single query on one OpenMP thread), and the ids found."""
    index.search(queries[:1], k)  # warm-up
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None], k)
        times.append((time.perf_counter() - start) * 1000)
        found.append(ids[0])
    return float(np.median(times)), float(np.percentile(times, 95)), np.array(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def size_mb(index: store.VectorIndex) -> float:
    return store.faiss().serialize_index(index.index).nbytes / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=20000)
    parser.add_argument("--noise", type=float, default=1.5, help="noise norm relative to the centre's (1)")
    parser.add_argument("--intrinsic", type=int, default=64,
                        help="latent dimension of the data (0: isotropic noise in all dims, the worst case)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 48, 64])
    parser.add_argument("--hnsw-n", type=int, default=100_000, help="HNSW is measured on this many (its build is slow)")
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128])
    args = parser.parse_args()
    faiss = store.faiss()
    print(f"bench_search: n={args.n:,} dim={args.dim} clusters={args.clusters} noise={args.noise} intrinsic={args.intrinsic or args.dim} queries={args.queries} "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs")
    rng = np.random.default_rng(0)
    width = args.intrinsic or args.dim
    centres = rng.standard_normal((args.clusters, width), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = None
    if args.intrinsic:  # a random orthonormal map with power-law scales, like an embedding's spectrum
        q, _ = np.linalg.qr(rng.standard_normal((args.dim, width)))
        basis = (q * (np.arange(1, width + 1) ** -0.5)).T.astype(np.float32)
    start = time.perf_counter()
    vectors = clustered(args.n, args.dim, centres, rng, args.noise, basis)
    queries = clustered(args.queries, args.dim, centres, rng, args.noise, basis)
    ids = np.arange(args.n, dtype=np.int64)
    print(f"data: {time.perf_counter() - start:.1f} s to generate, {vectors.nbytes / 2**20:.0f} MiB of vectors")

    start = time.perf_counter()
    exact = store.build(ids, vectors, args.dim, "flat")
    built = time.perf_counter() - start
    start = time.perf_counter()
    _, truth = exact.search(queries, 10)
    batch = time.perf_counter() - start
    p50, p95, _ = latency(exact, queries[:30])
    print(f"exact (IndexFlatIP): build {built:.1f} s, {size_mb(exact):.0f} MiB, top-10 {p50:.1f} ms median / "
          f"{p95:.1f} ms p95 per query; {args.queries} queries batched in {batch:.2f} s")
    small = store.build(ids[:store.EXACT_LIMIT], vectors[:store.EXACT_LIMIT], args.dim, "flat")
    p50, p95, _ = latency(small, queries)
    print(f"exact at EXACT_LIMIT={store.EXACT_LIMIT:,}: top-10 {p50:.2f} ms median / {p95:.2f} ms p95 per query")
    del small

    start = time.perf_counter()
    ivf = store.build(ids, vectors, args.dim, "ivf")
    built = time.perf_counter() - start
    print(f"IVF-Flat (clapkit's default beyond {store.EXACT_LIMIT:,}): nlist={ivf.index.nlist}, build {built:.1f} s "
          f"(train + add), {size_mb(ivf):.0f} MiB")
    for nprobe in args.nprobe:
        ivf.index.nprobe = nprobe
        p50, p95, found = latency(ivf, queries)
        mark = "  <- default" if nprobe == store.IVF_NPROBE else ""
        print(f"  nprobe={nprobe:3d}: top-10 {p50:.2f} ms median / {p95:.2f} ms p95, recall@10 {recall(found, truth):.3f}{mark}")
    del ivf

    m = min(args.hnsw_n, args.n)
    start = time.perf_counter()
    hnsw = store.build(ids[:m], vectors[:m], args.dim, "hnsw")
    built = time.perf_counter() - start
    _, truth_m = store.build(ids[:m], vectors[:m], args.dim, "flat").search(queries, 10)
    print(f"HNSW (M={store.HNSW_M}, efConstruction={store.HNSW_EF_CONSTRUCTION}) on the first {m:,}: build {built:.1f} s "
          f"({built / m * 1e6:.0f} us/vector: ~{built / m * args.n / 60:.0f} min for {args.n:,}), {size_mb(hnsw):.0f} MiB")
    inner = faiss.downcast_index(hnsw.index.index)
    for ef in args.ef:
        inner.hnsw.efSearch = ef
        p50, p95, found = latency(hnsw, queries)
        print(f"  efSearch={ef:3d}: top-10 {p50:.2f} ms median / {p95:.2f} ms p95, recall@10 {recall(found, truth_m):.3f}")


if __name__ == "__main__":
    main()
