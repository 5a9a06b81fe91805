"""Mining one language pair from embeddings: kNN both ways, margins, retrieval, threshold.

Pure numpy/FAISS: takes arrays (or lists of shard arrays), returns index pairs. Reading shards from storage and
looking up texts are the caller's business (pipelines/ or a script).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from mining.knn import knn_sharded
from mining.margin import MARGINS, knn_means, margin_scores
from mining.select import RETRIEVALS, greedy_one_to_one

# Artetxe & Schwenk 2019 use k = 4 neighbours for the margin (sec. 4.1).
DEFAULT_K = 4


@dataclasses.dataclass(frozen=True)
class MiningConfig:
    """Settings of the mining stage; validated on construction."""

    k: int = DEFAULT_K
    margin: Literal["ratio", "distance", "absolute"] = "ratio"
    retrieval: Literal["forward", "backward", "intersection", "max"] = "max"
    # Default chosen on held-out FLORES/NTREX news data with the default encoder (README, "Measured figures").
    threshold: float = 1.2
    # Scores above this are dropped (stopes drops > 1.25: usually boilerplate or identical strings).
    max_score: float | None = None
    query_block: int = 65536

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.margin not in MARGINS:
            raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {self.margin!r}")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {self.retrieval!r}")
        if self.max_score is not None and self.max_score <= self.threshold:
            raise ValueError(f"max_score ({self.max_score}) must be above threshold ({self.threshold})")
        if self.query_block < 1:
            raise ValueError(f"query_block must be >= 1, got {self.query_block}")


@dataclasses.dataclass
class MinedPairs:
    """Selected pairs as parallel arrays (row ids into the source / target embedding order)."""

    src: np.ndarray  # (m,) int64
    tgt: np.ndarray  # (m,) int64
    score: np.ndarray  # (m,) float32 margin
    cosine: np.ndarray  # (m,) float32

    def __len__(self) -> int:
        return len(self.src)


def _as_shards(x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [x] if isinstance(x, np.ndarray) else list(x)


def score_candidates(
    src_shards: np.ndarray | Sequence[np.ndarray],
    tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig,
) -> MinedPairs:
    """Every retrieval candidate with its margin, before the threshold (what calibration looks at)."""
    src_shards, tgt_shards = _as_shards(src_shards), _as_shards(tgt_shards)
    src = np.concatenate(src_shards).astype(np.float32) if src_shards else np.zeros((0, 1), np.float32)
    tgt = np.concatenate(tgt_shards).astype(np.float32) if tgt_shards else np.zeros((0, 1), np.float32)
    empty = MinedPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
    if len(src) == 0 or len(tgt) == 0:
        return empty
    k = config.k
    D_fwd, I_fwd = knn_sharded(src, tgt_shards, k, query_block=config.query_block)  # (n_src, k)
    D_bwd, I_bwd = knn_sharded(tgt, src_shards, k, query_block=config.query_block)  # (n_tgt, k)
    mean_src = knn_means(D_fwd)  # (n_src,) neighbourhood of each source sentence among the targets
    mean_tgt = knn_means(D_bwd)  # (n_tgt,)
    valid_fwd, valid_bwd = I_fwd >= 0, I_bwd >= 0
    fwd_scores = margin_scores(D_fwd, mean_src[:, None], mean_tgt[np.maximum(I_fwd, 0)], config.margin)
    bwd_scores = margin_scores(D_bwd, mean_src[np.maximum(I_bwd, 0)], mean_tgt[:, None], config.margin)
    fwd_scores = np.where(valid_fwd, fwd_scores, -np.inf)
    bwd_scores = np.where(valid_bwd, bwd_scores, -np.inf)
    # best candidate per source (forward) and per target (backward), by margin
    fwd_best = fwd_scores.argmax(axis=1)  # (n_src,)
    bwd_best = bwd_scores.argmax(axis=1)  # (n_tgt,)
    rows_src, rows_tgt = np.arange(len(src)), np.arange(len(tgt))
    fwd = (rows_src, I_fwd[rows_src, fwd_best], fwd_scores[rows_src, fwd_best], D_fwd[rows_src, fwd_best])
    bwd = (I_bwd[rows_tgt, bwd_best], rows_tgt, bwd_scores[rows_tgt, bwd_best], D_bwd[rows_tgt, bwd_best])

    if config.retrieval == "forward":
        s, t, sc, co = fwd
    elif config.retrieval == "backward":
        s, t, sc, co = bwd
    elif config.retrieval == "intersection":
        # keep a forward pick whose target picks it back
        back_of_target = I_bwd[fwd[1], bwd_best[fwd[1]]]
        mutual = back_of_target == rows_src
        s, t, sc, co = (a[mutual] for a in fwd)
    else:  # max: greedy one-to-one over the union of both directions' best candidates
        s, t, sc, co = (np.concatenate([a, b]) for a, b in zip(fwd, bwd))
        keep = greedy_one_to_one(s, t, sc)
        s, t, sc, co = s[keep], t[keep], sc[keep], co[keep]
    order = np.lexsort((t, s, -sc))
    return MinedPairs(
        src=s[order].astype(np.int64),
        tgt=t[order].astype(np.int64),
        score=sc[order].astype(np.float32),
        cosine=co[order].astype(np.float32),
    )


def apply_threshold(pairs: MinedPairs, threshold: float, max_score: float | None = None) -> MinedPairs:
    keep = pairs.score >= threshold
    if max_score is not None:
        keep &= pairs.score <= max_score
    return MinedPairs(pairs.src[keep], pairs.tgt[keep], pairs.score[keep], pairs.cosine[keep])


def mine(
    src_shards: np.ndarray | Sequence[np.ndarray],
    tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig = MiningConfig(),
) -> MinedPairs:
    """Pairs of source/target rows whose margin passes ``config.threshold`` under ``config.retrieval``."""
    return apply_threshold(score_candidates(src_shards, tgt_shards, config), config.threshold, config.max_score)
