"""Exact k-nearest-neighbour search over a database held as shards, merged into the global top-k.

The margin criterion needs each sentence's k nearest neighbours over the *whole* other language (Artetxe &
Schwenk 2019, sec. 3.1), not within one shard. Searching shard by shard and merging the per-shard top-k into a
running global top-k gives exactly the unsharded answer while memory stays bounded by one database shard plus
one block of queries. Vectors are unit length, so inner product = cosine.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def merge_topk(
    D_acc: np.ndarray, I_acc: np.ndarray, D_new: np.ndarray, I_new: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two (n, *) candidate lists into the k best per row, sorted by decreasing similarity.

    Ties are broken by the smaller database id so the result does not depend on the shard order.
    """
    D = np.concatenate([D_acc, D_new], axis=1)  # (n, k1 + k2) float32
    I = np.concatenate([I_acc, I_new], axis=1)  # (n, k1 + k2) int64
    # sort by (-similarity, id): lexsort's last key is the primary one
    order = np.lexsort((I, -D), axis=1)[:, :k]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def knn_sharded(
    queries: np.ndarray,
    database_shards: Iterable[np.ndarray],
    k: int,
    *,
    query_block: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product kNN of ``queries`` against the concatenation of ``database_shards``.

    Returns ``D`` (n_q, k) float32 similarities and ``I`` (n_q, k) int64 global row ids (the offset of a shard
    is the total size of the shards before it). If the database has fewer than k rows, the missing columns
    hold similarity -inf and id -1. Shards may be float16 (as stored on disk); they are searched in float32.
    """
    import faiss

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_q = queries.shape[0]
    D_out = np.full((n_q, k), -np.inf, dtype=np.float32)  # (n_q, k) float32
    I_out = np.full((n_q, k), -1, dtype=np.int64)  # (n_q, k) int64
    offset = 0
    for shard in database_shards:
        shard = np.ascontiguousarray(shard, dtype=np.float32)
        if shard.ndim != 2 or shard.shape[1] != queries.shape[1]:
            raise ValueError(f"database shard of shape {shard.shape} does not match query dim {queries.shape[1]}")
        if len(shard) == 0:
            continue
        k_shard = min(k, len(shard))
        for start in range(0, n_q, query_block):
            stop = min(start + query_block, n_q)
            D, I = faiss.knn(queries[start:stop], shard, k_shard, metric=faiss.METRIC_INNER_PRODUCT)
            D_out[start:stop], I_out[start:stop] = merge_topk(
                D_out[start:stop], I_out[start:stop], D, I + offset, k
            )
        offset += len(shard)
    return D_out, I_out


def knn_bruteforce(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference implementation with a full similarity matrix (tests and benchmarks only)."""
    sim = queries.astype(np.float32) @ database.astype(np.float32).T  # (n_q, n_db)
    order = np.lexsort((np.broadcast_to(np.arange(sim.shape[1]), sim.shape), -sim), axis=1)[:, :k]
    return np.take_along_axis(sim, order, axis=1), order.astype(np.int64)
