"""The mining core of one language pair: the first pass and the finish (second pass, overlap rules).

Both the Beam pipeline (``parabeam.pipelines.select_pairs`` and ``second_pass``) and the in-memory miner
(``parabeam.mining.mine``) call these functions; a rule changes here and nowhere else.

1. ``first_pass(selected, ...)``: the retrieval's candidates (``parabeam.mining.pairs.retrieve``) at the threshold,
   minus weak alternates and overlaps (below). It also plans the second pass: which rows are now paired, and the
   cosine floor of second-pass pairs.
2. ``refill(D, I, ...)`` per query shard: each neighbour list without the paired lines, and new neighbourhood
   means.
3. ``finish(first, selected_again, ...)``: the second pass's candidates at the same threshold and the floor,
   minus weak alternates and overlaps, joined to the first pass's pairs.

Counts come back with the pairs, under the names report.json uses.

Segments. With ``segment=both`` a short line is mined both whole and as its sentences (``parabeam.mining.text``);
``Segments`` gives every row of a language its line and part, so that one piece of text is aligned at most once.

The second pass. The ratio margin divides a pair's cosine by the mean cosine of each side's k nearest neighbours
(Artetxe & Schwenk 2019, sec. 3.1). In news, where many sentences tell the same story, those neighbourhoods hold
the translations of *other* sentences, which lowers a true pair's margin below the threshold; max retrieval
(sec. 3.2) uses each sentence once, so once the first pass has paired those other sentences they no longer
compete. The second pass recomputes the margins among the lines the first pass left unpaired, from the same
search (each list holds ``second_pass_neighbours`` more neighbours than k, and the paired ones are skipped), and
selects again at the same threshold. Thinner neighbourhoods raise every margin, noise included, so its pairs must
also be at least as similar (cosine) as the ``second_pass_floor`` quantile of what the first pass kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from parabeam.mining.config import MiningConfig
from parabeam.mining.margin import knn_means
from parabeam.mining.pairs import MinedPairs, apply_threshold, concat_pairs
from parabeam.mining.text import WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE, is_alternate


@dataclasses.dataclass(frozen=True)
class Segments:
    """What each row of one language is: the line it comes from, its part of it (``Segment.part``) and its
    length (``mining.text.text_length``; None where unknown, e.g. plain vectors)."""

    line: np.ndarray  # (n,) int64: rows cut from the same document line share a value
    part: np.ndarray  # (n,) int64: WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE, or a sentence index
    length: np.ndarray | None = None  # (n,) int64

    def __len__(self) -> int:
        return len(self.line)

    @classmethod
    def whole_lines(cls, n: int, length: np.ndarray | None = None) -> Segments:
        """Every row a line of its own (one sentence per line input, or plain vectors)."""
        return cls(np.arange(n, dtype=np.int64), np.full(n, WHOLE_LINE, dtype=np.int64),
                   None if length is None else np.asarray(length, dtype=np.int64))

    @classmethod
    def from_keys(cls, keys: np.ndarray, part: np.ndarray, length: np.ndarray | None = None) -> Segments:
        """From (n, m) integer keys that name each row's line (e.g. file, document offset, line)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(len(part), -1)
        length = None if length is None else np.asarray(length, dtype=np.int64)
        if len(keys) == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), length)
        _, line = np.unique(keys, axis=0, return_inverse=True)
        return cls(line.reshape(-1).astype(np.int64), np.asarray(part, dtype=np.int64), length)

    @classmethod
    def from_units(cls, docs: Sequence, lines: Sequence[int], parts: Sequence[int],
                   lengths: Sequence[int] | None = None) -> Segments:
        """From a document key (any hashable), a line number and a part (and a length) per row."""
        ids: dict = {}
        doc_ids = np.fromiter((ids.setdefault(d, len(ids)) for d in docs), dtype=np.int64, count=len(docs))
        return cls.from_keys(np.stack([doc_ids, np.asarray(lines, dtype=np.int64)], axis=1), np.asarray(parts),
                             lengths)


def drop_weak_alternates(pairs: MinedPairs, src_parts: np.ndarray, tgt_parts: np.ndarray,
                         threshold: float) -> MinedPairs:
    """Pairs minus those that use an alternate sentence (a sentence of a line that segment=both also mines whole,
    ``parabeam.mining.text.is_alternate``) on either side and score under ``threshold``. The whole line is the
    unit a translated page aligns most often; its sentences are there for the lines whose translation splits or
    merges them, and need stronger evidence than the line. ``*_parts``: ``Segment.part`` per pair."""
    weak = (is_alternate(np.asarray(src_parts)) | is_alternate(np.asarray(tgt_parts))) & (pairs.score < threshold)
    return pairs.take(~weak)


def drop_overlaps(pairs: MinedPairs, src: Segments, tgt: Segments) -> MinedPairs:
    """One alignment per piece of text when segments overlap (``segment=both`` gives a short line both whole and
    as its sentences): in decreasing score order, a pair is kept unless one of its segments overlaps a segment
    of a pair already kept (a whole line and a sentence of it). It generalises max retrieval's one-to-one rule
    (Artetxe & Schwenk 2019, sec. 3.2) from segments to the text they cover: a two-sentence line aligned whole
    to its translation leaves its sentences out, and a sentence aligned alone leaves out the line around it."""
    order = np.argsort(-pairs.score, kind="stable")
    src_line, src_part = src.line[pairs.src], src.part[pairs.src]
    tgt_line, tgt_part = tgt.line[pairs.tgt], tgt.part[pairs.tgt]
    # a pair of two whole one-sentence lines overlaps nothing: only the others need the claims below
    may_overlap = (src_part != WHOLE_LINE) | (tgt_part != WHOLE_LINE)
    keep = np.ones(len(pairs), dtype=bool)
    claimed: tuple[dict, dict] = ({}, {})  # per side: line -> "whole" or "part"
    for i in order[may_overlap[order]]:
        units = [(side, int(lines[i]), int(parts[i]))
                 for side, (lines, parts) in enumerate(((src_line, src_part), (tgt_line, tgt_part)))
                 if parts[i] != WHOLE_LINE]
        if any(line in claimed[side] and (part == WHOLE_MULTI_SENTENCE_LINE or claimed[side][line] == "whole")
               for side, line, part in units):
            keep[i] = False
            continue
        for side, line, part in units:
            claimed[side][line] = "whole" if part == WHOLE_MULTI_SENTENCE_LINE else claimed[side].get(line, "part")
    return pairs.take(keep)


def length_ratio_ok(pairs: MinedPairs, src: Segments, tgt: Segments, max_ratio: float | None) -> np.ndarray:
    """(m,) bool: pairs whose longer side is at most ``max_ratio`` times the shorter (lengths weighted per script,
    ``mining.text.text_length``); all True without lengths or a ratio. A pair of very unequal lengths is a partial
    or unrelated match far more often than a translation: on the comparable-news development sets, of the pairs
    above the F1-optimal threshold with a ratio over 2, 4 of 36 were gold (benchmarks/RESULTS.md)."""
    if max_ratio is None or src.length is None or tgt.length is None or not len(pairs):
        return np.ones(len(pairs), dtype=bool)
    a, b = src.length[pairs.src], tgt.length[pairs.tgt]
    return np.maximum(a, b) <= max_ratio * np.maximum(np.minimum(a, b), 1)


def resolve_overlaps(pairs: MinedPairs, src: Segments, tgt: Segments, alternate_threshold: float,
                     max_length_ratio: float | None = None) -> tuple[MinedPairs, dict[str, int]]:
    """The length-ratio filter, ``drop_weak_alternates`` then ``drop_overlaps``, with how many each dropped."""
    proportionate = pairs.take(length_ratio_ok(pairs, src, tgt, max_length_ratio))
    kept = drop_weak_alternates(proportionate, src.part[proportionate.src], tgt.part[proportionate.tgt],
                                alternate_threshold)
    final = drop_overlaps(kept, src, tgt)
    return final, {"length_ratio": len(pairs) - len(proportionate), "weak_alternates": len(proportionate) - len(kept),
                   "overlaps": len(kept) - len(final)}


def _select_and_filter(selected: MinedPairs, threshold: float, config: MiningConfig, src: Segments, tgt: Segments,
                       floor: float | None = None) -> tuple[MinedPairs, dict[str, int]]:
    """Candidates -> pairs: the threshold (and ``max_score``, and a cosine floor), then ``resolve_overlaps``;
    counts under the names of ``DROP_REASONS``."""
    passing = apply_threshold(selected, threshold, config.max_score)
    if floor is not None:
        passing = passing.take(passing.cosine >= floor)
    pairs, counts = resolve_overlaps(passing, src, tgt, threshold + config.alternate_margin, config.max_length_ratio)
    return pairs, {"candidates": len(selected), "below_threshold": len(selected) - len(passing), **counts}


# why a retrieval candidate is not a pair, in the order the rules apply (report.json: selection.<pair>.dropped)
DROP_REASONS = ("below_threshold", "length_ratio", "weak_alternates", "overlaps")


def cosine_floor(kept: MinedPairs, quantile: float) -> float | None:
    """The second pass's cosine floor: the ``quantile`` of the first pass's kept cosines (None: nothing kept,
    so there is no second pass)."""
    cos = kept.cosine[np.isfinite(kept.cosine)]
    return float(np.quantile(cos, quantile)) if len(cos) else None


def used_rows(rows: np.ndarray, segments: Segments) -> np.ndarray:
    """(n,) bool: the rows of every line that ``rows`` (one side of the kept pairs) use; a sentence paired
    alone takes its line's other segments out too."""
    mask = np.zeros(len(segments), dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    if mask.any():
        mask = np.isin(segments.line, segments.line[mask])
    return mask


@dataclasses.dataclass
class FirstPass:
    """One pair's first-pass result and the plan of its second pass."""

    pairs: MinedPairs  # kept pairs, overlaps dropped
    threshold: float
    counts: dict[str, int]
    floor: float | None  # the second pass's cosine floor; None: no second pass
    removed_src: np.ndarray | None  # (n_src,) bool: rows of lines the first pass paired
    removed_tgt: np.ndarray | None  # (n_tgt,) bool
    candidates: MinedPairs | None = None  # every retrieval candidate, when asked for (keep_candidates)


def first_pass(selected: MinedPairs, *, threshold: float, config: MiningConfig, src: Segments,
               tgt: Segments, keep_candidates: bool = False) -> FirstPass:
    """The pairs of the retrieval's candidates ``selected`` that pass ``threshold`` (and ``max_score``), minus
    pairs of very unequal lengths, weak alternates and overlaps; with the second pass's floor and removed rows
    when it runs."""
    pairs, counts = _select_and_filter(selected, threshold, config, src, tgt)
    counts["first_pass"] = len(pairs)
    candidates = selected if keep_candidates else None
    floor = cosine_floor(pairs, config.second_pass_floor) if config.second_pass_neighbours else None
    if floor is None:
        return FirstPass(pairs, threshold, counts, None, None, None, candidates)
    return FirstPass(pairs, threshold, counts, floor, used_rows(pairs.src, src), used_rows(pairs.tgt, tgt),
                     candidates)


def refill_neighbours(
    D: np.ndarray, I: np.ndarray, removed_rows: np.ndarray, removed_other: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's first ``k`` neighbours that the first pass left unpaired, from its longer list (``D``,
    ``I``: (n, K), sorted). ``removed_rows`` (n,) marks query rows the first pass paired (they get no neighbour),
    ``removed_other`` (N_other,) the other language's. Padding: -inf / -1 where fewer than k remain."""
    keep = (I >= 0) & ~np.asarray(removed_other, dtype=bool)[np.maximum(I, 0)]
    keep &= ~np.asarray(removed_rows, dtype=bool)[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept columns first, in their original order
    D2 = np.take_along_axis(np.where(keep, D, -np.inf), order, axis=1).astype(np.float32)  # (n, <=k)
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


def refill(D: np.ndarray, I: np.ndarray, removed_rows: np.ndarray, removed_other: np.ndarray,
           first_means: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query shard's second-pass neighbours: ``(D2, I2, means2)`` (``refill_neighbours``,
    ``refilled_means``); ``first_means`` are the shard rows' first-pass neighbourhood means."""
    D2, I2 = refill_neighbours(D, I, removed_rows, removed_other, k)
    return D2, I2, refilled_means(D2, first_means)


@dataclasses.dataclass
class Finished:
    """One pair's final pairs (both passes, by decreasing score) and every count; with ``keep_candidates`` also
    every candidate (of either pass) and whether it was selected."""

    pairs: MinedPairs
    counts: dict[str, int]
    candidates: MinedPairs | None = None
    selected: np.ndarray | None = None  # (len(candidates),) bool


def finish(first: FirstPass, selected_again: MinedPairs | None, *, config: MiningConfig, src: Segments,
           tgt: Segments) -> Finished:
    """The second pass's candidates ``selected_again`` (retrieval over the refilled lists) at the first pass's
    threshold and cosine floor, minus weak alternates and overlaps, joined to the first pass's pairs. None (or
    a first pass without a floor): the first pass's pairs alone."""
    counts = dict(first.counts)
    pairs = first.pairs
    if first.floor is not None and selected_again is not None:
        second, second_counts = _select_and_filter(selected_again, first.threshold, config, src, tgt, first.floor)
        for key, value in second_counts.items():
            counts[key] = counts.get(key, 0) + value
        counts["second_pass"] = len(second)
        pairs = concat_pairs(pairs, second)
    counts["pairs"] = len(pairs)
    if first.candidates is None:
        return Finished(pairs, counts)
    pool = first.candidates if selected_again is None else concat_pairs(first.candidates, selected_again)
    _, unique = np.unique(pool.keys(), return_index=True)
    pool = pool.take(np.sort(unique))  # a pair proposed by both passes once
    pool = pool.take(pool.score >= config.candidates_from)
    return Finished(pairs, counts, pool, np.isin(pool.keys(), pairs.keys()))
