"""Mining one language pair from embeddings: kNN both ways, margins, retrieval, threshold.

Pure numpy/FAISS: takes arrays (or lists of shard arrays), returns index pairs. Reading shards from storage and
looking up texts are the caller's business (pipelines/ or a script).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from parabeam.mining.index import IndexConfig
from parabeam.mining.knn import knn_sharded
from parabeam.mining.margin import MARGINS, knn_means, margin_scores
from parabeam.mining.select import RETRIEVALS, greedy_one_to_one

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
    # Second pass over what the first leaves (``second_pass``): neighbours searched beyond k to refill the
    # neighbourhoods once paired lines leave them (0 turns the pass off), and the cosine floor of its pairs, as a
    # quantile of the cosines of the pairs the first pass kept. Chosen on held-out news (README, "Measured figures").
    second_pass_neighbours: int = 16
    second_pass_floor: float = 0.05
    # segment=auto mines a short line whole and as its sentences; a pair that uses one of those sentences instead
    # of the line needs ``threshold + alternate_margin`` (``drop_weak_alternates``; README, "Measured figures").
    alternate_margin: float = 0.05

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
        if self.second_pass_neighbours < 0:
            raise ValueError(f"second_pass_neighbours must be >= 0, got {self.second_pass_neighbours}")
        if not 0.0 <= self.second_pass_floor <= 1.0:
            raise ValueError(f"second_pass_floor is a quantile in [0, 1], got {self.second_pass_floor}")
        if self.alternate_margin < 0:
            raise ValueError(f"alternate_margin must be >= 0, got {self.alternate_margin}")

    @property
    def search_k(self) -> int:
        """Neighbours to search per sentence: k for the margins, plus the second pass's reserve."""
        return self.k + self.second_pass_neighbours


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
    return candidates_from_knn(*search_both(src_shards, tgt_shards, config.k, config.query_block), config)


def search_both(
    src_shards: np.ndarray | Sequence[np.ndarray], tgt_shards: np.ndarray | Sequence[np.ndarray], k: int,
    query_block: int = 65536,
) -> tuple[list, list]:
    """Exact k nearest neighbours of every shard in the other language, both ways: ``(fwd_knn, bwd_knn)``, one
    ``(D, I)`` per query shard in shard order, ``I`` global rows of the other language."""
    src_shards, tgt_shards = _as_shards(src_shards), _as_shards(tgt_shards)
    fwd_knn = [knn_sharded(x, tgt_shards, k, query_block=query_block) for x in src_shards]
    bwd_knn = [knn_sharded(y, src_shards, k, query_block=query_block) for y in tgt_shards]
    return fwd_knn, bwd_knn


def candidates_from_knn(
    fwd_knn: Sequence[tuple[np.ndarray, np.ndarray]], bwd_knn: Sequence[tuple[np.ndarray, np.ndarray]],
    config: MiningConfig,
) -> MinedPairs:
    """Margins and selection from per-shard kNN results ``(D, I)`` in shard order, both directions (the first
    ``config.k`` columns: lists searched longer for the second pass are cut here)."""
    k = config.k
    fwd_knn = [(D[:, :k], I[:, :k]) for D, I in fwd_knn]
    bwd_knn = [(D[:, :k], I[:, :k]) for D, I in bwd_knn]
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


def filter_pairs(pairs: MinedPairs, keep: np.ndarray) -> MinedPairs:
    return MinedPairs(pairs.src[keep], pairs.tgt[keep], pairs.score[keep], pairs.cosine[keep])


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
    from parabeam.mining.text import WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE

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
    return filter_pairs(pairs, keep)


def drop_weak_alternates(pairs: MinedPairs, src_parts: np.ndarray, tgt_parts: np.ndarray,
                         threshold: float) -> MinedPairs:
    """Pairs minus those that use an alternate sentence (a sentence of a line that segment=auto also mines whole,
    ``mining.text.is_alternate``) on either side and score under ``threshold``. The whole line is the unit a
    translated page aligns most often; its sentences are there for the lines whose translation splits or merges
    them, and need stronger evidence than the line. On the news corpora of ``benchmarks/news_bucc.py`` the pairs
    that used such a sentence were 110 right and 99 wrong, the wrong ones mostly just above the threshold (median
    ratio margin 1.26 against 1.39; benchmarks/RESULTS.md); ``*_parts`` = ``Segment.part`` per pair."""
    from parabeam.mining.text import is_alternate

    weak = (is_alternate(np.asarray(src_parts)) | is_alternate(np.asarray(tgt_parts))) & (pairs.score < threshold)
    return filter_pairs(pairs, ~weak)


def apply_threshold(pairs: MinedPairs, threshold: float, max_score: float | None = None) -> MinedPairs:
    keep = pairs.score >= threshold
    if max_score is not None:
        keep &= pairs.score <= max_score
    return filter_pairs(pairs, keep)


# The second pass. The ratio margin divides a pair's cosine by the mean cosine of each side's k nearest
# neighbours (Artetxe & Schwenk 2019, sec. 3.1). In news, where many sentences tell the same story, those
# neighbourhoods hold the translations of *other* sentences, which lowers a true pair's margin below the
# threshold; max retrieval (sec. 3.2) uses each sentence once, so once the first pass has paired those other
# sentences they no longer compete. The second pass recomputes the margins among the lines the first pass left
# unpaired, from the same search (each list holds ``second_pass_neighbours`` more neighbours than k, and the
# paired ones are skipped), and selects again at the same threshold. Thinner neighbourhoods raise every margin,
# noise included, so its pairs must also be at least as similar (cosine) as the ``second_pass_floor`` quantile of
# what the first pass kept. On held-out news (README) it adds 15-71 pairs per 1500 gold at about the precision of
# the first pass; where the first pass already finds every translation (the sample corpus) the floor keeps it
# from adding noise.


def refill_neighbours(
    D: np.ndarray, I: np.ndarray, removed_rows: np.ndarray, removed_other: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's first ``k`` neighbours that the first pass left unpaired, from its longer list (``D``,
    ``I``: (n, K), sorted). ``removed_rows`` (n,) marks query rows the first pass paired (they get no neighbour),
    ``removed_other`` (N_other,) the other language's. Padding: -inf / -1 where fewer than k remain."""
    keep = (I >= 0) & ~np.asarray(removed_other, dtype=bool)[np.maximum(I, 0)]
    keep &= ~np.asarray(removed_rows, dtype=bool)[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept columns first, in their original order
    D2 = np.take_along_axis(np.where(keep, D, -np.inf), order, axis=1).astype(np.float32)
    I2 = np.take_along_axis(np.where(keep, I, -1), order, axis=1).astype(np.int64)
    if D2.shape[1] < k:  # lists shorter than k (a small other language)
        pad = k - D2.shape[1]
        D2 = np.pad(D2, ((0, 0), (0, pad)), constant_values=-np.inf)
        I2 = np.pad(I2, ((0, 0), (0, pad)), constant_values=-1)
    return D2, I2


def refilled_means(D: np.ndarray, first_means: np.ndarray) -> np.ndarray:
    """Neighbourhood means over the refilled lists; a row with no neighbour left keeps its first-pass mean (the
    higher, safer denominator) so that it cannot inflate the margins of the rows that have it as a neighbour."""
    empty = ~np.isfinite(D).any(axis=1) if D.shape[1] else np.ones(len(D), bool)
    return np.where(empty, np.asarray(first_means, dtype=np.float32), knn_means(D)).astype(np.float32)


def cosine_floor(kept: MinedPairs, quantile: float) -> float | None:
    """The second pass's cosine floor: the ``quantile`` of the first pass's kept cosines (None: nothing kept,
    so there is no second pass)."""
    cos = kept.cosine[np.isfinite(kept.cosine)]
    return float(np.quantile(cos, quantile)) if len(cos) else None


def used_rows(rows: np.ndarray, n: int, line_keys: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: rows that ``rows`` (the first pass's kept pairs, one side) use. With ``line_keys`` ((n, m) ints
    naming each row's line, e.g. document, offset, line: ``line_keys_of``), every segment of a used line counts
    as used."""
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    if line_keys is not None and mask.any():
        keys = np.ascontiguousarray(line_keys, dtype=np.int64)
        whole = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()  # one value per row
        mask = np.isin(whole, whole[mask])
    return mask


def line_keys_of(units: tuple[Sequence, np.ndarray, np.ndarray]) -> np.ndarray:
    """(n, 2) int64 line keys from ``units`` (document key, line, part of every row)."""
    ids: dict = {}
    docs = np.fromiter((ids.setdefault(d, len(ids)) for d in units[0]), dtype=np.int64, count=len(units[0]))
    return np.stack([docs, np.asarray(units[1], dtype=np.int64)], axis=1) if len(docs) else np.zeros((0, 2), np.int64)


def concat_pairs(*parts: MinedPairs) -> MinedPairs:
    """Pairs of several passes as one list, by decreasing score."""
    src, tgt, score, cos = (np.concatenate([getattr(p, f) for p in parts]) for f in ("src", "tgt", "score", "cosine"))
    order = np.lexsort((tgt, src, -score))
    return MinedPairs(src[order], tgt[order], score[order], cos[order])


def _take_units(units, rows):
    if units is None:
        return None
    docs, lines, parts = units
    return [docs[r] for r in rows], np.asarray(lines)[rows], np.asarray(parts)[rows]


def mine_from_knn(
    fwd_knn: Sequence[tuple[np.ndarray, np.ndarray]], bwd_knn: Sequence[tuple[np.ndarray, np.ndarray]],
    config: MiningConfig, threshold: float | None = None,
    src_units: tuple[Sequence, np.ndarray, np.ndarray] | None = None,
    tgt_units: tuple[Sequence, np.ndarray, np.ndarray] | None = None,
) -> MinedPairs:
    """Both passes from kNN lists searched ``config.search_k`` deep (``search_both``): first-pass pairs at
    ``threshold`` (default ``config.threshold``), overlaps dropped when ``*_units`` (document key, line, part of
    every row) are given, then the second pass over the lines left unpaired."""
    threshold = config.threshold if threshold is None else threshold

    def without_overlaps(pairs: MinedPairs) -> MinedPairs:
        if src_units is None:
            return pairs
        pairs = drop_weak_alternates(pairs, np.asarray(src_units[2])[pairs.src], np.asarray(tgt_units[2])[pairs.tgt],
                                     threshold + config.alternate_margin)
        return drop_overlaps(pairs, _take_units(src_units, pairs.src), _take_units(tgt_units, pairs.tgt))

    first = without_overlaps(apply_threshold(candidates_from_knn(fwd_knn, bwd_knn, config), threshold,
                                             config.max_score))
    floor = cosine_floor(first, config.second_pass_floor)
    if config.second_pass_neighbours == 0 or floor is None:
        return first
    n_src, n_tgt = sum(len(D) for D, _ in fwd_knn), sum(len(D) for D, _ in bwd_knn)
    keys_src, keys_tgt = (None, None) if src_units is None else (line_keys_of(src_units), line_keys_of(tgt_units))
    removed_src, removed_tgt = used_rows(first.src, n_src, keys_src), used_rows(first.tgt, n_tgt, keys_tgt)
    k = config.k
    means_src = np.concatenate([knn_means(D[:, :k]) for D, _ in fwd_knn])
    means_tgt = np.concatenate([knn_means(D[:, :k]) for D, _ in bwd_knn])

    def refill(knn, removed_own, removed_other, first_means):
        out, row = [], 0
        for D, I in knn:
            D2, I2 = refill_neighbours(D, I, removed_own[row : row + len(D)], removed_other, k)
            out.append((D2, I2, refilled_means(D2, first_means[row : row + len(D)]), row))
            row += len(D)
        return out

    fwd2 = refill(fwd_knn, removed_src, removed_tgt, means_src)
    bwd2 = refill(bwd_knn, removed_tgt, removed_src, means_tgt)
    new_src = np.concatenate([m for *_, m, _ in fwd2])
    new_tgt = np.concatenate([m for *_, m, _ in bwd2])
    forward = [shard_candidates(D, I, new_src[r : r + len(D)], new_tgt, config.margin, r) for D, I, _, r in fwd2]
    backward = [shard_candidates(D, I, new_tgt[r : r + len(D)], new_src, config.margin, r) for D, I, _, r in bwd2]
    second = without_overlaps(second_pass_select(select(forward, backward, config.retrieval), threshold, floor,
                                                 config))
    return concat_pairs(first, second)


def second_pass_select(selected: MinedPairs, threshold: float, floor: float, config: MiningConfig) -> MinedPairs:
    """The second pass's selected candidates that pass the threshold (and ``max_score``) and the cosine floor."""
    pairs = apply_threshold(selected, threshold, config.max_score)
    return filter_pairs(pairs, pairs.cosine >= floor)


def mine(
    src_shards: np.ndarray | Sequence[np.ndarray],
    tgt_shards: np.ndarray | Sequence[np.ndarray],
    config: MiningConfig = MiningConfig(),
) -> MinedPairs:
    """Pairs of source/target rows whose margin passes ``config.threshold`` under ``config.retrieval``, from
    both passes (each row is its own line)."""
    fwd_knn, bwd_knn = search_both(src_shards, tgt_shards, config.search_k, config.query_block)
    if not fwd_knn or not bwd_knn:
        return _empty()
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
    """Mining with one FAISS index per language (chosen by size, see ``mining.index``), queries shard by
    shard: memory holds the two indexes, one query shard and O(n) candidate arrays, never the raw languages
    (beyond what a Flat index itself stores). ``timings`` receives seconds per stage when given."""
    import time

    from parabeam.mining.index import build_index, search, to_gpu_if_available

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
    k = config.search_k
    fwd = [search(tgt_index, load_src(i), k, index_config.nprobe) for i in range(len(src_sizes))]
    bwd = [search(src_index, load_tgt(i), k, index_config.nprobe) for i in range(len(tgt_sizes))]
    timings["search"] = time.perf_counter() - started
    del src_index, tgt_index
    started = time.perf_counter()
    pairs = mine_from_knn(fwd, bwd, config)
    timings["score_and_select"] = time.perf_counter() - started
    return pairs
