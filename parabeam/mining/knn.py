"""Exact k-nearest-neighbour search (inner product = cosine on unit vectors), both directions from one GEMM.

The margin criterion needs each sentence's k nearest neighbours over the *whole* other language, both ways
(Artetxe & Schwenk 2019, sec. 3.1). The forward and backward neighbours are the row and column top-k of the same
similarity matrix, so one blocked matrix product serves both (``exact_knn_both``): LASER's ``mine_bitexts`` and
FAISS's flat search compute it twice. Per block of the matrix:
- the product is numpy's GEMM (the BLAS numpy ships), written into one reused buffer: memory is one block
  (4096 x 4096 float32 = 64 MiB at the defaults), never (block x n);
- the row top-k goes into FAISS's k-heaps of the queries (``faiss.float_minheap_array_t.addn``, C++ and OpenMP),
  which persist across blocks, so nothing is merged afterwards;
- the column top-k (the database rows' lists) needs no transpose: a database block's first query block is
  multiplied the other way round into the same buffer (as cheap as a transpose) and seeds the lists through
  FAISS's heaps; every later block only contributes the entries above a column's current k-th best, found with
  one vectorised comparison (``_ColumnLists``), in the same buffer.
Ties: blocks run in increasing id order and a heap keeps the earlier of equal values, then each list is sorted
by (-similarity, id), so equal similarities resolve to the smaller id whatever the blocking. Fewer than k rows
pad with -inf / -1. With a CUDA device and ``use_gpu``, the same both-ways pass runs in torch on the GPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import numpy as np

QUERY_BLOCK = 4096
DATABASE_BLOCK = 4096


def merge_topk(
    D_acc: np.ndarray, I_acc: np.ndarray, D_new: np.ndarray, I_new: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two (n, *) candidate lists into the k best per row, sorted by decreasing similarity.

    Ties are broken by the smaller database id so the result does not depend on the shard order.
    """
    D = np.concatenate([D_acc, D_new], axis=1)  # (n, k1 + k2) float32
    I = np.concatenate([I_acc, I_new], axis=1)  # (n, k1 + k2) int64
    return sort_neighbours(D, I, k)


def id_key(I: np.ndarray) -> np.ndarray:
    """Sort key of neighbour ids: the id, padding (-1) after every real one."""
    return np.where(I >= 0, I, np.iinfo(np.int64).max)


def sort_neighbours(D: np.ndarray, I: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists (n, m) in the order every search in parabeam returns: decreasing similarity, equal ones by
    the smaller id, padding (-1, similarity -inf) last; the first ``k`` columns (default: all)."""
    D = np.where(I >= 0, D, -np.inf).astype(np.float32)
    order = np.lexsort((id_key(I), -D), axis=1)[:, :k]  # lexsort's last key is the primary one
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


class _Heaps:
    """k-best (largest) lists of n rows, filled block by block (FAISS's heap arrays over numpy memory)."""

    def __init__(self, n: int, k: int):
        import faiss

        self.faiss = faiss
        self.D = np.empty((n, k), dtype=np.float32)  # (n, k) float32
        self.I = np.empty((n, k), dtype=np.int64)  # (n, k) int64
        heaps = faiss.float_minheap_array_t()  # a min-heap per row keeps the k largest
        heaps.k, heaps.nh = k, n
        heaps.val, heaps.ids = faiss.swig_ptr(self.D), faiss.swig_ptr(self.I)
        heaps.heapify()
        self.heaps = heaps

    def add(self, block: np.ndarray, first_row: int, first_id: int) -> None:
        """Rows ``first_row ..`` take the columns of ``block`` (C-contiguous float32) as ids ``first_id ..``.

        FAISS's max-keeping heaps prefer the *larger* id among equal values, so ids go in negated (-2 - id, clear
        of the padding id -1) and come out restored: blocks arrive in increasing id order, an equal value does not
        displace a kept one, and among equal values the larger real id leaves first, so the smaller id wins."""
        rows, cols = block.shape
        if rows and cols:
            ids = -2 - np.arange(first_id, first_id + cols, dtype=np.int64)  # (cols,) shared by every row
            self.heaps.addn_with_ids(cols, self.faiss.swig_ptr(block), self.faiss.swig_ptr(ids), 0, first_row, rows)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self.heaps.reorder()
        return sort_neighbours(self.D, np.where(self.I <= -2, -2 - self.I, -1))  # -1: heapify's padding


class _ColumnLists:
    """k-best lists of the database rows, filled from blocks in (query, database) layout without transposing
    them: the first block for these rows comes in the other layout and goes through FAISS's heaps; every later one
    only keeps the entries above a column's current k-th best (``block > kth``, one vectorised pass), which
    after the first block are few (about k x block / queries seen), and merges them in by (-similarity, id)."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.D = np.full((n, k), -np.inf, dtype=np.float32)  # (n, k) float32, sorted by (-similarity, id)
        self.I = np.full((n, k), -1, dtype=np.int64)  # (n, k) int64

    def first(self, columns: np.ndarray, first_row: int, first_id: int) -> None:
        """Rows ``first_row ..`` start from the rows of ``columns`` (database rows x queries) as ids ``first_id ..``."""
        heaps = _Heaps(len(columns), self.k)
        heaps.add(columns, 0, first_id)
        rows = slice(first_row, first_row + len(columns))
        self.D[rows], self.I[rows] = heaps.result()

    def add(self, block: np.ndarray, first_row: int, first_id: int) -> None:
        """Columns of ``block`` (queries x database rows) are database rows ``first_row ..``; its rows are ids
        ``first_id ..``, all larger than the ids already kept (so an equal value does not displace a kept one)."""
        rows = slice(first_row, first_row + block.shape[1])
        kth = self.D[rows, self.k - 1]  # (cols,) the value to beat per column
        flat = np.flatnonzero(block > kth)  # 1-d: several times faster than a 2-d nonzero
        if not len(flat):
            return
        q, c = np.divmod(flat, block.shape[1])
        touched = np.unique(c)  # (t,) sorted
        where = np.searchsorted(touched, c)  # candidate -> its column's place in `touched`
        group = np.concatenate([np.repeat(np.arange(len(touched)), self.k), where])
        values = np.concatenate([self.D[rows][touched].ravel(), block[q, c]])
        ids = np.concatenate([self.I[rows][touched].ravel(), q + first_id])
        order = np.lexsort((id_key(ids), -values, group))
        starts = np.searchsorted(group[order], np.arange(len(touched)))  # every group has >= k entries
        keep = order[(starts[:, None] + np.arange(self.k)[None, :]).ravel()]
        target = touched + first_row
        self.D[target] = values[keep].reshape(-1, self.k)
        self.I[target] = ids[keep].reshape(-1, self.k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.D, self.I


def _cuda_available() -> bool:
    """A CUDA device torch can use, without importing torch on machines that have none (its import alone costs
    a few hundred MiB of memory)."""
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidia0"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def exact_knn_both(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    *,
    query_block: int = QUERY_BLOCK,
    database_block: int = DATABASE_BLOCK,
    use_gpu: bool = True,
    both: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """``(D, I)`` of every query's k best database rows, and (``both``) of every database row's k best queries,
    from one pass of blocked GEMM: ``D`` (n, k) float32 sorted by decreasing similarity, ``I`` (n, k) int64."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    database = np.ascontiguousarray(database, dtype=np.float32)
    if use_gpu and len(queries) and len(database) and _cuda_available():
        return _exact_knn_both_torch(queries, database, k, query_block, database_block, both)
    n_q, n_db = len(queries), len(database)
    fwd, bwd = _Heaps(n_q, k), (_ColumnLists(n_db, k) if both else None)
    buffer = np.empty(query_block * database_block, dtype=np.float32)
    for db_start in range(0, n_db, database_block):
        block_db = database[db_start:db_start + database_block]
        for q_start in range(0, n_q, query_block):
            block_q = queries[q_start:q_start + query_block]
            size = len(block_q) * len(block_db)
            sims = np.matmul(block_q, block_db.T, out=buffer[:size].reshape(len(block_q), len(block_db)))
            fwd.add(sims, q_start, db_start)
            if bwd is not None and q_start == 0:  # the forward heaps are done with the buffer
                columns = np.matmul(block_db, block_q.T, out=buffer[:size].reshape(len(block_db), len(block_q)))
                bwd.first(columns, db_start, q_start)
            elif bwd is not None:
                bwd.add(sims, db_start, q_start)
    return fwd.result(), (bwd.result() if bwd is not None else None)


def _exact_knn_both_torch(queries, database, k, query_block, database_block, both):
    """The same both-ways pass on CUDA: torch GEMM and top-k per block, merged with ``merge_topk``."""
    import torch

    device = torch.device("cuda")
    n_q, n_db = len(queries), len(database)
    fwd = (np.full((n_q, k), -np.inf, dtype=np.float32), np.full((n_q, k), -1, dtype=np.int64))
    bwd = (np.full((n_db, k), -np.inf, dtype=np.float32), np.full((n_db, k), -1, dtype=np.int64))
    slack = 4  # extra candidates per block, so ties at the k-th place still resolve to the smaller id
    for db_start in range(0, n_db, database_block):
        db_rows = slice(db_start, db_start + database_block)
        block = torch.from_numpy(database[db_rows]).to(device)
        for q_start in range(0, n_q, query_block):
            q_rows = slice(q_start, q_start + query_block)
            sims = torch.from_numpy(queries[q_rows]).to(device) @ block.T  # (q, b) float32
            values, ids = torch.topk(sims, min(k + slack, sims.shape[1]), dim=1)
            fwd[0][q_rows], fwd[1][q_rows] = merge_topk(
                fwd[0][q_rows], fwd[1][q_rows], values.cpu().numpy(), ids.cpu().numpy() + db_start, k)
            if both:
                values, ids = torch.topk(sims, min(k + slack, sims.shape[0]), dim=0)  # (keep, b)
                bwd[0][db_rows], bwd[1][db_rows] = merge_topk(
                    bwd[0][db_rows], bwd[1][db_rows], values.T.cpu().numpy(), ids.T.cpu().numpy() + q_start, k)
    return fwd, (bwd if both else None)


def exact_knn(queries: np.ndarray, database: np.ndarray, k: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of ``queries`` (n_q, d) in ``database`` (n_db, d): one direction of
    ``exact_knn_both``."""
    return exact_knn_both(queries, database, k, both=False, **kwargs)[0]


def knn_sharded(
    queries: np.ndarray,
    database_shards: Iterable[np.ndarray],
    k: int,
    *,
    query_block: int = QUERY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product kNN of ``queries`` against the concatenation of ``database_shards``.

    Returns ``D`` (n_q, k) float32 similarities and ``I`` (n_q, k) int64 global row ids (the offset of a shard
    is the total size of the shards before it). If the database has fewer than k rows, the missing columns
    hold similarity -inf and id -1. Shards may be float16 (as stored on disk); they are searched in float32.
    """
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
        D, I = exact_knn(queries, shard, k, query_block=query_block)
        D_out, I_out = merge_topk(D_out, I_out, D, np.where(I >= 0, I + offset, -1), k)
        offset += len(shard)
    return D_out, I_out


def knn_both_sharded(
    src_shards: list[np.ndarray], tgt_shards: list[np.ndarray], k: int, *, query_block: int = QUERY_BLOCK
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """Exact kNN of every source shard in the whole target side and of every target shard in the whole source
    side, one GEMM per (source shard, target shard): ``(fwd, bwd)``, one ``(D, I)`` per shard in shard order with
    global row ids of the other side."""
    src = [np.ascontiguousarray(s, dtype=np.float32) for s in src_shards]
    tgt = [np.ascontiguousarray(t, dtype=np.float32) for t in tgt_shards]
    src_offsets = np.cumsum([0] + [len(s) for s in src])
    tgt_offsets = np.cumsum([0] + [len(t) for t in tgt])
    empty = lambda n: (np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64))  # noqa: E731
    fwd, bwd = [empty(len(s)) for s in src], [empty(len(t)) for t in tgt]
    for a, s in enumerate(src):
        for b, t in enumerate(tgt):
            if not len(s) or not len(t):
                continue
            (Df, If), (Db, Ib) = exact_knn_both(s, t, k, query_block=query_block)
            fwd[a] = merge_topk(*fwd[a], Df, np.where(If >= 0, If + tgt_offsets[b], -1), k)
            bwd[b] = merge_topk(*bwd[b], Db, np.where(Ib >= 0, Ib + src_offsets[a], -1), k)
    return fwd, bwd


def knn_bruteforce(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference implementation with a full similarity matrix (tests and benchmarks only)."""
    sim = queries.astype(np.float32) @ database.astype(np.float32).T  # (n_q, n_db)
    order = np.lexsort((np.broadcast_to(np.arange(sim.shape[1]), sim.shape), -sim), axis=1)[:, :k]
    return np.take_along_axis(sim, order, axis=1), order.astype(np.int64)
