"""Candidate pairs of one language pair: each sentence's best neighbour by margin, retrieval, thresholds.

Pure numpy. ``Candidates`` hold one direction's best neighbour per query row, block by block (a shard of
queries at a time, scored against neighbourhood means of the whole other language); ``retrieve`` turns both
directions into pairs (Artetxe & Schwenk 2019, sec. 3.2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from parabeam.mining.margin import margin_scores
from parabeam.mining.retrieval import RETRIEVALS, greedy_one_to_one


@dataclasses.dataclass
class MinedPairs:
    """Pairs as parallel arrays (row ids into the source / target embedding order)."""

    src: np.ndarray  # (m,) int64
    tgt: np.ndarray  # (m,) int64
    score: np.ndarray  # (m,) float32 margin
    cosine: np.ndarray  # (m,) float32

    def __len__(self) -> int:
        return len(self.src)

    def keys(self) -> np.ndarray:
        """(m,) int64: one key per (src, tgt) row pair, to match pairs between two sets."""
        return self.src.astype(np.int64) * (1 << 32) + self.tgt.astype(np.int64)

    def take(self, keep: np.ndarray) -> MinedPairs:
        """The pairs a boolean mask or an index array selects."""
        return MinedPairs(self.src[keep], self.tgt[keep], self.score[keep], self.cosine[keep])


def empty_pairs() -> MinedPairs:
    return MinedPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


@dataclasses.dataclass
class Candidates:
    """The best-margin neighbour of every query row in one direction (forward: rows are source sentences and
    ``other`` target ids; backward: the reverse). Row i of the arrays is query row ``first_row + i``."""

    first_row: int
    other: np.ndarray  # (n,) int64, -1 where the database was empty
    score: np.ndarray  # (n,) float32 margin, -inf where there is no neighbour
    cosine: np.ndarray  # (n,) float32
    # (n,) float32: the margin of the row's second-best neighbour, -inf where there is none. A sentence's
    # runner-up is (almost) never its translation, so these are a sample of the scores unrelated sentences get:
    # the null distribution ``threshold: auto`` checks its mixture fit against (parabeam.mining.calibrate).
    runner_up: np.ndarray


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
    if scores.shape[1] > 1:
        runner_up = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2]
    else:
        runner_up = np.full(len(best), -np.inf)
    return Candidates(
        first_row=first_row,
        other=I[rows, best].astype(np.int64),
        score=scores[rows, best].astype(np.float32),
        cosine=np.where(valid[rows, best], D[rows, best], -np.inf).astype(np.float32),
        runner_up=runner_up.astype(np.float32),
    )


def concat_candidates(blocks: Sequence[Candidates]) -> Candidates:
    """Blocks of one direction, in any order, as one block from row 0; they must tile the rows."""
    blocks = sorted(blocks, key=lambda c: c.first_row)
    expected = 0
    for c in blocks:
        if c.first_row != expected:
            raise ValueError(f"candidate blocks do not tile the rows: expected row {expected}, got {c.first_row}")
        expected += len(c.other)
    if not blocks:
        return Candidates(0, np.zeros(0, np.int64), *(np.zeros(0, np.float32) for _ in range(3)))
    return Candidates(0, *(np.concatenate([getattr(c, f) for c in blocks])
                           for f in ("other", "score", "cosine", "runner_up")))


def runner_up_scores(forward: Sequence[Candidates], backward: Sequence[Candidates]) -> np.ndarray:
    """Both directions' finite runner-up margins (``Candidates.runner_up``), blocks in any order: the null sample."""
    r = np.concatenate([c.runner_up for c in (*forward, *backward)] or [np.zeros(0, np.float32)])
    return r[np.isfinite(r)]


def retrieve_tagged(blocks: Iterable[tuple[str, Candidates]], retrieval: str) -> tuple[MinedPairs, list, list]:
    """``retrieve`` over candidate blocks tagged with their direction (``"fwd"`` or ``"bwd"``, as the pipeline's
    searches tag them), in any order: ``(selected, forward blocks, backward blocks)``."""
    blocks = list(blocks)
    forward, backward = [c for d, c in blocks if d == "fwd"], [c for d, c in blocks if d == "bwd"]
    return retrieve(forward, backward, retrieval), forward, backward


def retrieve(forward: Sequence[Candidates], backward: Sequence[Candidates], retrieval: str) -> MinedPairs:
    """Candidate selection (Artetxe & Schwenk 2019, sec. 3.2) from both directions' best candidates, given as
    blocks in any order: forward (source -> target), backward (target -> source), intersection (a forward pick
    whose target picks it back), max (greedy one-to-one over the union). Sorted by decreasing score."""
    fwd, bwd = concat_candidates(forward), concat_candidates(backward)
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
    return sort_pairs(MinedPairs(s.astype(np.int64), t.astype(np.int64), sc.astype(np.float32),
                                 co.astype(np.float32)))


def sort_pairs(pairs: MinedPairs) -> MinedPairs:
    """By decreasing score, then source and target row (a total order: output does not depend on block order)."""
    return pairs.take(np.lexsort((pairs.tgt, pairs.src, -pairs.score)))


def apply_threshold(pairs: MinedPairs, threshold: float, max_score: float | None = None) -> MinedPairs:
    keep = pairs.score >= threshold
    if max_score is not None:
        keep &= pairs.score <= max_score
    return pairs.take(keep)


def concat_pairs(*parts: MinedPairs) -> MinedPairs:
    """Pairs of several passes as one list, by decreasing score."""
    return sort_pairs(MinedPairs(*(np.concatenate([getattr(p, f) for p in parts])
                                   for f in ("src", "tgt", "score", "cosine"))))
