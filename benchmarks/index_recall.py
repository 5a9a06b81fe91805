"""Recall@k of the approximate indexes against exact search, at the sizes where ``--index auto`` picks them.

Data: mining_scale.py's synthetic clustered d=512 vectors (fp16 shards). The index is built as ``parabeam mine``
builds it (mining.index.build_index: seeded training sample, shard-by-shard adds), then ``--queries`` source rows
(half planted translations, half unrelated) are searched with the index and by brute force (exact inner product
over every target shard). recall@k = |index top-k  ∩  exact top-k| / k, averaged over queries; recall@1 = the
index's first neighbour is the exact first neighbour. The margin uses the k=4 neighbourhood, so recall@4 is the
figure that matters for mining.

Run: ``python benchmarks/index_recall.py --n 1000000 --kinds ivf,ivfpq``. One JSON line per index kind.
(auto picks IVF-Flat from 200k and OPQ+IVF+PQ from 5M vectors; ``--kinds`` forces a kind at ``--n``.)
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

from mining_scale import SHARD, D, make_data  # noqa: E402


def exact_topk(queries: np.ndarray, tgt_files: list[str], k: int) -> np.ndarray:
    """Ids of the exact top-k by inner product, shard by shard (ties by smaller id)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    offset = 0
    for path in tgt_files:
        shard = np.load(path).astype(np.float32)
        sims = queries @ shard.T
        ids = np.broadcast_to(np.arange(offset, offset + len(shard)), sims.shape)
        all_s, all_i = np.concatenate([best_s, sims], axis=1), np.concatenate([best_i, ids], axis=1)
        order = np.lexsort((all_i, -all_s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, order, 1), np.take_along_axis(all_i, order, 1)
        offset += len(shard)
    return best_i


def main() -> None:
    import faiss

    from parabeam.mining.index import IndexConfig, build_index, factory_string, search

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--kinds", default="ivf,ivfpq")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--train-size", type=int, default=IndexConfig().train_size,
                    help="vectors sampled to train IVF/OPQ/PQ (mining.index.IndexConfig.train_size)")
    ap.add_argument("--work", default="/tmp/parabeam-scale")
    args = ap.parse_args()
    work = f"{args.work}/{args.n}"
    src_files, tgt_files, n_planted = make_data(args.n, work)
    rng = np.random.default_rng(1)
    rows = np.concatenate([rng.choice(n_planted, args.queries // 2, replace=False),
                           rng.choice(np.arange(n_planted, args.n), args.queries - args.queries // 2, replace=False)])
    queries = np.stack([np.asarray(np.load(src_files[r // SHARD], mmap_mode="r")[r % SHARD], dtype=np.float32)
                        for r in rows])
    started = time.perf_counter()
    exact = exact_topk(queries, tgt_files, args.k)
    exact_s = time.perf_counter() - started
    sizes = [len(np.load(f, mmap_mode="r")) for f in tgt_files]
    for kind in args.kinds.split(","):
        config = IndexConfig(kind=kind, nprobe=args.nprobe, train_size=args.train_size)
        started = time.perf_counter()
        index, factory = build_index(lambda i: np.load(tgt_files[i], mmap_mode="r"), sizes, D, config)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        _, got = search(index, queries, args.k, args.nprobe)
        search_s = time.perf_counter() - started
        overlap = [len(set(a) & set(b)) / args.k for a, b in zip(got.tolist(), exact.tolist())]
        print(json.dumps({
            "n": args.n, "index": factory, "auto_would_pick": factory_string(args.n, D), "nprobe": args.nprobe,
            "k": args.k, "train_size": args.train_size, "queries": len(queries),
            f"recall@{args.k}": round(float(np.mean(overlap)), 4),
            "recall@1": round(float(np.mean(got[:, 0] == exact[:, 0])), 4),
            "planted_found_at_1": round(float(np.mean(got[: args.queries // 2, 0] == rows[: args.queries // 2])), 4),
            "build_s": round(build_s, 1), "search_ms_per_query": round(1000 * search_s / len(queries), 2),
            "exact_ms_per_query": round(1000 * exact_s / len(queries), 2),
            "index_bytes_per_vector": round(len(faiss.serialize_index(index)) / args.n, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }), flush=True)
        del index


if __name__ == "__main__":
    main()
