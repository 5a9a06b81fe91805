"""One language's index at a size too large to mine whole here: build time per phase, size, peak memory, and the
recall and rate of a sample of queries, from which a full run's search time is extrapolated.

Data: mining_scale.py's synthetic clustered unit vectors (d = 512, 2000 centres), the target side only, written as
fp16 shards of 100k rows; queries: ``--queries`` noisy copies of random target rows (the same noise as
mining_scale's planted pairs: cosine ~0.88 to their original) and as many unrelated vectors. The index is built by
``parabeam.mining.index.build_index``, as ``parabeam mine`` builds it (``--index auto``: the size rule; or a FAISS
factory string), saved, and read back memory-mapped where FAISS can (``IO_FLAG_MMAP``). recall@k: the planted
query's original row among its k nearest neighbours (the margin uses k = 4).

``--exact`` also searches every shard exactly and reports, per index, the mean absolute error of the first
neighbour's similarity and of the k-neighbour mean (what the margin divides by), and the share of exact
neighbours found.

Run: ``python benchmarks/index_scale.py --n 10000000 [--index "auto;FACTORY;..."] [--queries 5000] [--exact]``.
Prints a JSON line per phase as it goes and a summary line per index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mining_scale import SHARD, D, _unit, target_block  # noqa: E402


def rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def say(**row) -> None:
    print(json.dumps({**row, "peak_rss_gib": rss_gib()}), flush=True)


def target_shards(n: int, work: str, seed: int = 0) -> list[str]:
    """The target side of mining_scale.make_data: the same rows, without the source side."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((2000, D)).astype(np.float32))
    os.makedirs(work, exist_ok=True)
    files = []
    for start in range(0, n, SHARD):
        path = f"{work}/tgt-{start // SHARD:05d}.npy"
        if not os.path.exists(path):
            block = target_block(centres, start, min(start + SHARD, n), seed)
            np.save(path + ".tmp.npy", block.astype(np.float16))
            os.replace(path + ".tmp.npy", path)
        files.append(path)
    return files


def main() -> None:
    from parabeam.mining.index import IndexConfig, build_index, factory_string, search
    from parabeam.mining.knn import knn_sharded

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--index", default="auto",
                    help="auto (the size rule) or a FAISS factory string; several separated by ';'")
    ap.add_argument("--queries", type=int, default=5000, help="planted queries (and as many unrelated ones)")
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--exact", action="store_true",
                    help="also search exactly (every shard) and report each index's similarity error")
    ap.add_argument("--work", default="/tmp/parabeam-index-scale")
    args = ap.parse_args()
    import faiss

    started = time.perf_counter()
    files = target_shards(args.n, f"{args.work}/{args.n}")
    sizes = [SHARD] * (args.n // SHARD) + ([args.n % SHARD] if args.n % SHARD else [])
    say(phase="data", n=args.n, shards=len(files), seconds=round(time.perf_counter() - started, 1))

    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(args.n, args.queries, replace=False))
    originals = np.concatenate([np.load(files[s], mmap_mode="r")[ids[ids // SHARD == s] % SHARD].astype(np.float32)
                                for s in np.unique(ids // SHARD)])
    planted = _unit(originals + 0.5 * rng.standard_normal(originals.shape).astype(np.float32) / np.sqrt(D))
    centres = _unit(np.random.default_rng(0).standard_normal((2000, D)).astype(np.float32))
    unrelated = _unit(centres[rng.integers(0, 2000, args.queries)]
                      + 0.9 * rng.standard_normal((args.queries, D)).astype(np.float32) / np.sqrt(D))
    queries = np.concatenate([planted, unrelated])
    exact = None
    if args.exact:
        started = time.perf_counter()
        exact = knn_sharded(queries, (np.load(f) for f in files), args.k)  # every shard, exactly
        say(phase="exact", queries=len(queries), seconds=round(time.perf_counter() - started, 1))

    for kind in args.index.split(";"):
        config = IndexConfig(kind=kind, nprobe=args.nprobe)
        factory = factory_string(args.n, D, config)
        started = time.perf_counter()
        index, _ = build_index(lambda i: np.load(files[i]), sizes, D, config, factory)
        build_s = time.perf_counter() - started
        path = f"{args.work}/{args.n}/{factory.replace(',', '_')}.faiss"
        faiss.write_index(index, path)
        size_gib = os.path.getsize(path) / 2**30
        say(phase="build", factory=factory, seconds=round(build_s, 1), index_gib=round(size_gib, 2))
        del index
        try:  # an index FAISS cannot map is read into memory instead
            index, mapped = faiss.read_index(path, faiss.IO_FLAG_MMAP), True
        except RuntimeError:
            index, mapped = faiss.read_index(path), False

        started = time.perf_counter()
        sims, neighbours = search(index, queries, args.k, nprobe=args.nprobe)
        search_s = time.perf_counter() - started
        del index
        found = neighbours[: args.queries] == ids[:, None]
        rate = len(queries) / search_s
        row = dict(phase="search", factory=factory, queries=len(queries), seconds=round(search_s, 2),
                   queries_per_s=round(rate, 1), memory_mapped=mapped, recall_at_1=round(float(found[:, 0].mean()), 4),
                   recall_at_k=round(float(found.any(axis=1).mean()), 4), k=args.k, nprobe=args.nprobe)
        if exact is not None:
            # what the margin reads: the first neighbour's similarity, and the mean of the k (Artetxe & Schwenk
            # 2019, eq. 3); the error of the mean is what shifts every margin
            row.update(
                error_top1=round(float(np.abs(sims[:, 0] - exact[0][:, 0]).mean()), 4),
                error_mean_k=round(float(np.abs(sims.mean(1) - exact[0].mean(1)).mean()), 4),
                bias_mean_k=round(float((sims.mean(1) - exact[0].mean(1)).mean()), 4),
                same_neighbours_k=round(float((neighbours[:, :, None] == exact[1][:, None, :]).any(2).mean()), 4))
        say(**row)
        # a full run: both languages' indexes, and every sentence of each side searched in the other's index
        say(phase="summary", n_per_side=args.n, factory=factory, build_one_index_s=round(build_s, 1),
            index_gib=round(size_gib, 2), queries_per_s=round(rate, 1),
            extrapolated_full_run_s=round(2 * build_s + 2 * args.n / rate),
            extrapolated_full_run_h=round((2 * build_s + 2 * args.n / rate) / 3600, 1))


if __name__ == "__main__":
    main()
