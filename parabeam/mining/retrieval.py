"""The retrieval strategies (forward | backward | intersection | max, Artetxe & Schwenk 2019, sec. 3.2) and the
one-to-one matching of ``max`` ("max. strategy"). Applying them to candidates, and the threshold, live in
``parabeam.mining.pairs`` (``retrieve``, ``apply_threshold``)."""

from __future__ import annotations

import numpy as np

RETRIEVALS: tuple[str, ...] = ("forward", "backward", "intersection", "max")


def greedy_one_to_one(src: np.ndarray, tgt: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Boolean mask of the candidates kept by greedy one-to-one matching in decreasing score order.

    Same result as walking the candidates sorted by score and keeping a pair whose source and target are both
    still unused (LASER's ``max`` mode), but vectorised: in each round every candidate that ranks first among
    the remaining candidates of both its source and its target is kept (greedy would keep it, since nothing
    ranked above it can block it), then every candidate sharing a side with a kept one is dropped (greedy would
    reach the kept one first). Ties are broken by position, so the result is deterministic.
    """
    n = len(score)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    order = np.lexsort((np.arange(n), -np.asarray(score, dtype=np.float64)))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    _, src_c = np.unique(src, return_inverse=True)
    _, tgt_c = np.unique(tgt, return_inverse=True)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        best_src = np.full(src_c.max() + 1, n, dtype=np.int64)
        best_tgt = np.full(tgt_c.max() + 1, n, dtype=np.int64)
        np.minimum.at(best_src, src_c[idx], rank[idx])
        np.minimum.at(best_tgt, tgt_c[idx], rank[idx])
        winners = idx[(best_src[src_c[idx]] == rank[idx]) & (best_tgt[tgt_c[idx]] == rank[idx])]
        keep[winners] = True
        used_src = np.zeros(src_c.max() + 1, dtype=bool)
        used_tgt = np.zeros(tgt_c.max() + 1, dtype=bool)
        used_src[src_c[winners]] = True
        used_tgt[tgt_c[winners]] = True
        alive &= ~(used_src[src_c] | used_tgt[tgt_c])
    return keep


def greedy_one_to_one_loop(src: np.ndarray, tgt: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Plain loop version of :func:`greedy_one_to_one` (the reference the tests compare against)."""
    n = len(score)
    order = np.lexsort((np.arange(n), -np.asarray(score, dtype=np.float64)))
    keep = np.zeros(n, dtype=bool)
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    for i in order:
        if src[i] not in seen_src and tgt[i] not in seen_tgt:
            keep[i] = True
            seen_src.add(int(src[i]))
            seen_tgt.add(int(tgt[i]))
    return keep
