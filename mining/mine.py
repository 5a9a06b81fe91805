"""Mining one language pair from embeddings: kNN both ways, margins, retrieval, threshold.

Pure numpy/FAISS: takes arrays (or lists of shard arrays), returns index pairs. Reading shards from storage and
looking up texts are the caller's business (pipelines/ or a script).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from mining.index import IndexConfig
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
    # fixed: use ``threshold``; auto: per pair from the score distribution (mining.calibrate), ``threshold``
    # as the fallback when the fit fails. ``calibration_gold``: a TSV of known src<TAB>tgt pairs; when given,
    # the threshold per pair is the F1-optimal one over them (it overrides both).
    threshold_mode: Literal["fixed", "auto"] = "fixed"
    calibration_gold: str | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.margin not in MARGINS:
            raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {self.margin!r}")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {self.retrieval!r}")
        if self.max_score is not None and self.max_score <= self.threshold:
            raise ValueError(f"max_score ({self.max_score}) must be above threshold ({self.threshold})")
        if self.threshold_mode not in ("fixed", "auto"):
            raise ValueError(f"threshold_mode must be fixed or auto; got {self.threshold_mode!r}")
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


@dataclasses.dataclass
class Candidates:
    """The best-margin neighbour of every query row in one direction (forward: rows are source sentences and
    ``other`` target ids; backward: the reverse). Row i of the arrays is query row ``first_row + i``."""

    first_row: int
    other: np.ndarray  # (n,) int64, -1 where the database was empty
    score: np.ndarray  # (n,) float32 margin, -inf where there is no neighbour
    cosine: np.ndarray  # (n,) float32


def shard_candidates(
    D: np.ndarray, I: np.ndarray, own_means: np.ndarray, other_means: np.ndarray, margin: str, first_row: int = 0
) -> Candidates:
    """Margin scores of one query shard's k neighbours (``D``, ``I``: (n, k)) and the best one per row.

    ``own_means`` (n,) are the query rows' neighbourhood means, ``other_means`` (N_other,) those of the whole
    other language, so the margin uses global neighbourhoods even when queries come shard by shard."""
    valid = I >= 0
    other_mean = np.asarray(other_means, dtype=np.float32)[np.maximum(I, 0)]  # (n, k)
    scores = margin_scores(D, np.asarray(own_means, dtype=np.float32)[:, None], other_mean, margin)
    scores = np.where(valid, scores, -np.inf)  # (n, k)
    best = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)  # (n,)
    rows = np.arange(len(best))
    return Candidates(
        first_row=first_row,
        other=I[rows, best].astype(np.int64),
        score=scores[rows, best].astype(np.float32),
        cosine=np.where(valid[rows, best], D[rows, best], -np.inf).astype(np.float32),
    )


def _concat(cands: Sequence[Candidates]) -> Candidates:
    cands = sorted(cands, key=lambda c: c.first_row)
    expected = 0
    for c in cands:
        if c.first_row != expected:
            raise ValueError(f"candidate blocks do not tile the rows: expected row {expected}, got {c.first_row}")
        expected += len(c.other)
    if not cands:
        return Candidates(0, np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
    return Candidates(
        0, *(np.concatenate([getattr(c, f) for c in cands]) for f in ("other", "score", "cosine"))
    )


def select(forward: Sequence[Candidates], backward: Sequence[Candidates], retrieval: str) -> MinedPairs:
    """Candidate selection (Artetxe & Schwenk 2019, sec. 3.2) from both directions' best candidates, given as
    blocks in any order: forward (source -> target), backward (target -> source), intersection (a forward pick
    whose target picks it back), max (greedy one-to-one over the union). Sorted by decreasing score."""
    fwd, bwd = _concat(forward), _concat(backward)
    rows_src, rows_tgt = np.arange(len(fwd.other)), np.arange(len(bwd.other))
    f_ok, b_ok = fwd.other >= 0, bwd.other >= 0
    f = (rows_src[f_ok], fwd.other[f_ok], fwd.score[f_ok], fwd.cosine[f_ok])
    b = (bwd.other[b_ok], rows_tgt[b_ok], bwd.score[b_ok], bwd.cosine[b_ok])
    if retrieval == "forward":
        s, t, sc, co = f
    elif retrieval == "backward":
        s, t, sc, co = b
    elif retrieval == "intersection":
        mutual = bwd.other[f[1]] == f[0] if len(bwd.other) else np.zeros(len(f[0]), bool)
        s, t, sc, co = (a[mutual] for a in f)
    elif retrieval == "max":
        s, t, sc, co = (np.concatenate([x, y]) for x, y in zip(f, b))
        keep = greedy_one_to_one(s, t, sc)
        s, t, sc, co = s[keep], t[keep], sc[keep], co[keep]
    else:
        raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {retrieval!r}")
    order = np.lexsort((t, s, -sc))
    return MinedPairs(
        src=s[order].astype(np.int64),
        tgt=t[order].astype(np.int64),
        score=sc[order].astype(np.float32),
        cosine=co[order].astype(np.float32),
    )


def score_candidates(
    src_shards: np.ndarray | Sequence[np.ndarray],
    tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig,
) -> MinedPairs:
    """Every retrieval candidate with its margin, before the threshold (what calibration looks at).
    Exact kNN, shard by shard, each query shard scored against global neighbourhood means."""
    src_shards, tgt_shards = _as_shards(src_shards), _as_shards(tgt_shards)
    k = config.k
    fwd_knn = [knn_sharded(x, tgt_shards, k, query_block=config.query_block) for x in src_shards]
    bwd_knn = [knn_sharded(y, src_shards, k, query_block=config.query_block) for y in tgt_shards]
    return candidates_from_knn(fwd_knn, bwd_knn, config)


def candidates_from_knn(
    fwd_knn: Sequence[tuple[np.ndarray, np.ndarray]], bwd_knn: Sequence[tuple[np.ndarray, np.ndarray]],
    config: MiningConfig,
) -> MinedPairs:
    """Margins and selection from per-shard kNN results ``(D, I)`` in shard order, both directions."""
    mean_src = np.concatenate([knn_means(D) for D, _ in fwd_knn]) if fwd_knn else np.zeros(0, np.float32)
    mean_tgt = np.concatenate([knn_means(D) for D, _ in bwd_knn]) if bwd_knn else np.zeros(0, np.float32)
    if len(mean_src) == 0 or len(mean_tgt) == 0:
        return _empty()
    forward, backward, row = [], [], 0
    for D, I in fwd_knn:
        forward.append(shard_candidates(D, I, mean_src[row : row + len(D)], mean_tgt, config.margin, row))
        row += len(D)
    row = 0
    for D, I in bwd_knn:
        backward.append(shard_candidates(D, I, mean_tgt[row : row + len(D)], mean_src, config.margin, row))
        row += len(D)
    return select(forward, backward, config.retrieval)


def _empty() -> MinedPairs:
    return MinedPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


def drop_overlaps(
    pairs: MinedPairs,
    src_units: tuple[Sequence, np.ndarray, np.ndarray],
    tgt_units: tuple[Sequence, np.ndarray, np.ndarray],
) -> MinedPairs:
    """One alignment per piece of text when segments overlap (``segment=auto`` gives a short line both whole and
    as its sentences): in decreasing score order, a pair is kept unless one of its segments overlaps a segment
    of a pair already kept (a whole line and a sentence of it; ``mining.text.Segment.part``). It generalises
    max retrieval's one-to-one rule (Artetxe & Schwenk 2019, sec. 3.2) from segments to the text they cover: a
    two-sentence line aligned whole to its translation leaves its sentences out, and a sentence aligned alone
    leaves out the line around it. ``*_units`` = (document key per pair, line per pair, part per pair)."""
    from mining.text import WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE

    order = np.argsort(-pairs.score, kind="stable")
    # a pair of two whole one-sentence lines overlaps nothing: only the others need the claims below
    may_overlap = (np.asarray(src_units[2]) != WHOLE_LINE) | (np.asarray(tgt_units[2]) != WHOLE_LINE)
    keep = np.ones(len(pairs), dtype=bool)
    claimed = ({}, {})  # per side: (doc, line) -> "whole" or "part"
    for i in order[may_overlap[order]]:
        units = []
        for side, (docs, lines, parts) in enumerate((src_units, tgt_units)):
            part = int(parts[i])
            if part != WHOLE_LINE:
                units.append((side, (docs[i], int(lines[i])), part))
        if any((key in claimed[side]) and (part == WHOLE_MULTI_SENTENCE_LINE or claimed[side][key] == "whole")
               for side, key, part in units):
            keep[i] = False
            continue
        for side, key, part in units:
            claimed[side][key] = "whole" if part == WHOLE_MULTI_SENTENCE_LINE else claimed[side].get(key, "part")
    return MinedPairs(pairs.src[keep], pairs.tgt[keep], pairs.score[keep], pairs.cosine[keep])


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


def mine_indexed(
    load_src: Callable[[int], np.ndarray],
    src_sizes: Sequence[int],
    load_tgt: Callable[[int], np.ndarray],
    tgt_sizes: Sequence[int],
    config: MiningConfig = MiningConfig(),
    index_config: IndexConfig = IndexConfig(),
    timings: dict[str, float] | None = None,
) -> MinedPairs:
    """Mining with one FAISS index per language (chosen by size, see ``mining.index``), queries shard by
    shard: memory holds the two indexes, one query shard and O(n) candidate arrays, never the raw languages
    (beyond what a Flat index itself stores). ``timings`` receives seconds per stage when given."""
    import time

    from mining.index import build_index, search, to_gpu_if_available

    timings = {} if timings is None else timings
    if not src_sizes or not tgt_sizes or sum(src_sizes) == 0 or sum(tgt_sizes) == 0:
        return _empty()
    d = np.asarray(load_src(0)).shape[1]
    started = time.perf_counter()
    src_index, _ = build_index(load_src, src_sizes, d, index_config)
    tgt_index, _ = build_index(load_tgt, tgt_sizes, d, index_config)
    src_index, tgt_index = to_gpu_if_available(src_index, index_config), to_gpu_if_available(tgt_index, index_config)
    timings["build_indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    fwd = [search(tgt_index, load_src(i), config.k, index_config.nprobe) for i in range(len(src_sizes))]
    bwd = [search(src_index, load_tgt(i), config.k, index_config.nprobe) for i in range(len(tgt_sizes))]
    timings["search"] = time.perf_counter() - started
    del src_index, tgt_index
    started = time.perf_counter()
    pairs = apply_threshold(candidates_from_knn(fwd, bwd, config), config.threshold, config.max_score)
    timings["score_and_select"] = time.perf_counter() - started
    return pairs
