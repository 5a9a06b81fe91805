"""Mining one language pair in memory, from embeddings: kNN both ways, margins, then the mining core.

Pure numpy/FAISS: takes arrays (or lists of shard arrays), returns row pairs. The selection rules are those of
``parabeam.mining.passes``, which the Beam pipeline calls too; this module only composes them over arrays held
in memory (benchmarks, evaluation, scripts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from parabeam.mining.calibrate import choose_threshold
from parabeam.mining.config import DEFAULT_K, MiningConfig
from parabeam.mining.index import IndexConfig
from parabeam.mining.knn import QUERY_BLOCK, knn_both_sharded
from parabeam.mining.margin import knn_means
from parabeam.mining.pairs import MinedPairs, empty_pairs, retrieve, runner_up_scores, shard_candidates
from parabeam.mining.passes import Segments, finish, first_pass, refill

log = logging.getLogger("parabeam")

__all__ = ["DEFAULT_K", "MinedPairs", "MiningConfig", "candidates_from_knn", "mine", "mine_from_knn", "mine_indexed",
           "score_candidates", "search_both"]

Knn = Sequence[tuple[np.ndarray, np.ndarray]]  # one (D, I) per query shard, in shard order


def _as_shards(x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [x] if isinstance(x, np.ndarray) else list(x)


def search_both(
    src_shards: np.ndarray | Sequence[np.ndarray], tgt_shards: np.ndarray | Sequence[np.ndarray], k: int,
    query_block: int = QUERY_BLOCK,
) -> tuple[list, list]:
    """Exact k nearest neighbours of every shard in the other language, both ways: ``(fwd_knn, bwd_knn)``, one
    ``(D, I)`` per query shard in shard order, ``I`` global rows of the other language. One GEMM per pair of
    shards serves both directions (``mining.knn.exact_knn_both``)."""
    return knn_both_sharded(_as_shards(src_shards), _as_shards(tgt_shards), k, query_block=query_block)


def _means(knn: Knn, k: int) -> np.ndarray:
    return np.concatenate([knn_means(D[:, :k]) for D, _ in knn]) if knn else np.zeros(0, np.float32)


def _candidates(knn: Knn, own_means: np.ndarray, other_means: np.ndarray, margin: str, k: int) -> list:
    out, row = [], 0
    for D, I in knn:
        out.append(shard_candidates(D[:, :k], I[:, :k], own_means[row : row + len(D)], other_means, margin, row))
        row += len(D)
    return out


def candidates_from_knn(fwd_knn: Knn, bwd_knn: Knn, config: MiningConfig) -> MinedPairs:
    """Every retrieval candidate with its margin, before any threshold, from per-shard kNN lists (their first
    ``config.k`` columns: lists searched longer for the second pass are cut here)."""
    return candidates_with_null(fwd_knn, bwd_knn, config)[0]


def candidates_with_null(fwd_knn: Knn, bwd_knn: Knn, config: MiningConfig) -> tuple[MinedPairs, np.ndarray]:
    """``candidates_from_knn`` and both directions' runner-up margins (the null sample calibration checks)."""
    mean_src, mean_tgt = _means(fwd_knn, config.k), _means(bwd_knn, config.k)
    if len(mean_src) == 0 or len(mean_tgt) == 0:
        return empty_pairs(), np.zeros(0, np.float32)
    fwd = _candidates(fwd_knn, mean_src, mean_tgt, config.margin, config.k)
    bwd = _candidates(bwd_knn, mean_tgt, mean_src, config.margin, config.k)
    return retrieve(fwd, bwd, config.retrieval), runner_up_scores(fwd, bwd)


def score_candidates(
    src_shards: np.ndarray | Sequence[np.ndarray], tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig,
) -> MinedPairs:
    """Every retrieval candidate with its margin, before the threshold (what calibration looks at). Exact kNN,
    shard by shard, each query shard scored against global neighbourhood means."""
    return candidates_from_knn(*search_both(src_shards, tgt_shards, config.k, config.query_block), config)


def mine_from_knn(fwd_knn: Knn, bwd_knn: Knn, config: MiningConfig, threshold: float | None = None,
                  src: Segments | None = None, tgt: Segments | None = None) -> MinedPairs:
    """Both passes from kNN lists searched ``config.search_k`` deep (``search_both``), at ``threshold`` (default:
    the config's, calibrated as ``parabeam.mining.calibrate.choose_threshold`` does when it is ``auto``).
    ``src``/``tgt``: what each row is (default: every row its own line)."""
    n_src, n_tgt = sum(len(D) for D, _ in fwd_knn), sum(len(D) for D, _ in bwd_knn)
    src = Segments.whole_lines(n_src) if src is None else src
    tgt = Segments.whole_lines(n_tgt) if tgt is None else tgt
    if n_src == 0 or n_tgt == 0:
        return empty_pairs()
    selected, null = candidates_with_null(fwd_knn, bwd_knn, config)
    if threshold is None:
        threshold, _ = choose_threshold(selected.score, config, null=null)
    first = first_pass(selected, threshold=threshold, config=config, src=src, tgt=tgt)
    if first.floor is None:
        return finish(first, None, config=config, src=src, tgt=tgt).pairs
    k = config.k

    def refilled(knn: Knn, removed_own: np.ndarray, removed_other: np.ndarray, means: np.ndarray):
        out, row = [], 0
        for D, I in knn:
            rows = slice(row, row + len(D))
            out.append(refill(D, I, removed_own[rows], removed_other, means[rows], k))
            row += len(D)
        return out

    fwd2 = refilled(fwd_knn, first.removed_src, first.removed_tgt, _means(fwd_knn, k))
    bwd2 = refilled(bwd_knn, first.removed_tgt, first.removed_src, _means(bwd_knn, k))
    mean_src = np.concatenate([m for *_, m in fwd2])
    mean_tgt = np.concatenate([m for *_, m in bwd2])
    again = retrieve(_candidates([(D, I) for D, I, _ in fwd2], mean_src, mean_tgt, config.margin, k),
                     _candidates([(D, I) for D, I, _ in bwd2], mean_tgt, mean_src, config.margin, k), config.retrieval)
    return finish(first, again, config=config, src=src, tgt=tgt).pairs


def mine(
    src_shards: np.ndarray | Sequence[np.ndarray],
    tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig = MiningConfig(),
) -> MinedPairs:
    """Pairs of source/target rows whose margin passes the threshold under ``config.retrieval``, from both
    passes (each row is its own line)."""
    fwd_knn, bwd_knn = search_both(src_shards, tgt_shards, config.search_k, config.query_block)
    if not fwd_knn or not bwd_knn:
        return empty_pairs()
    return mine_from_knn(fwd_knn, bwd_knn, config)


def mine_indexed(
    load_src: Callable[[int], np.ndarray],
    src_sizes: Sequence[int],
    load_tgt: Callable[[int], np.ndarray],
    tgt_sizes: Sequence[int],
    config: MiningConfig = MiningConfig(),
    index_config: IndexConfig = IndexConfig(),
    timings: dict[str, float] | None = None,
) -> MinedPairs:
    """Mining with one FAISS index per language (chosen by size, see ``parabeam.mining.index``), queries shard
    by shard: memory holds the two indexes, one query shard and O(n) candidate arrays, never the raw languages
    (beyond what a Flat index itself stores). ``timings`` receives seconds per stage when given."""
    from parabeam.mining.index import build_index, search, to_gpu_if_available

    timings = {} if timings is None else timings
    if not src_sizes or not tgt_sizes or sum(src_sizes) == 0 or sum(tgt_sizes) == 0:
        return empty_pairs()
    d = np.asarray(load_src(0)).shape[1]
    started = time.perf_counter()
    src_index, _ = build_index(load_src, src_sizes, d, index_config)
    tgt_index, _ = build_index(load_tgt, tgt_sizes, d, index_config)
    src_index, tgt_index = to_gpu_if_available(src_index, index_config), to_gpu_if_available(tgt_index, index_config)
    timings["build_indexes"] = time.perf_counter() - started
    log.info("built both indexes in %.1f s", timings["build_indexes"])
    started = time.perf_counter()
    k = config.search_k

    def searched(index, load, sizes, direction):
        out = []
        for i in range(len(sizes)):
            out.append(search(index, load(i), k, index_config.nprobe))
            if (i + 1) % 10 == 0 or i + 1 == len(sizes):
                log.info("searched %s: %d of %d query shards, %.1f s", direction, i + 1, len(sizes),
                         time.perf_counter() - started)
        return out

    fwd = searched(tgt_index, load_src, src_sizes, "source -> target")
    bwd = searched(src_index, load_tgt, tgt_sizes, "target -> source")
    timings["search"] = time.perf_counter() - started
    del src_index, tgt_index
    started = time.perf_counter()
    pairs = mine_from_knn(fwd, bwd, config)
    timings["score_and_select"] = time.perf_counter() - started
    return pairs
