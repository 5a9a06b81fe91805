"""Margin-based scoring (Artetxe & Schwenk 2019, "Margin-based Parallel Corpus Mining with Multilingual
Sentence Embeddings", sec. 3.1).

A candidate pair's cosine is compared with the average cosine of each side's k nearest neighbours in the other
language, which corrects for "hubs" (sentences close to everything):

    margin(x, y) = f( cos(x, y),  (mean_{z in NN_k(x)} cos(x, z) + mean_{z in NN_k(y)} cos(y, z)) / 2 )

with f(a, b) = a / b (ratio), a - b (distance) or a (absolute: plain cosine).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


def _ratio(cosine: np.ndarray, denom: np.ndarray) -> np.ndarray:
    # a neighbourhood mean <= 0 means a degenerate space; keep the score finite and low rather than flip sign
    return np.where(denom > 1e-6, cosine / np.maximum(denom, 1e-6), -np.inf).astype(np.float32)


def _distance(cosine: np.ndarray, denom: np.ndarray) -> np.ndarray:
    return (cosine - denom).astype(np.float32)


def _absolute(cosine: np.ndarray, denom: np.ndarray) -> np.ndarray:
    return cosine.copy()


@dataclasses.dataclass(frozen=True)
class Margin:
    """One margin kind: ``score(cosine, mean of the two neighbourhood means)`` and the policies that depend on its
    scale."""

    score: Callable[[np.ndarray, np.ndarray], np.ndarray]
    help: str
    #: what ``threshold: auto`` falls back to when a pair has too few candidates for a fit (< 200) or its scores
    #: show no separate mode of translations (mining.calibrate), unless the encoder has its own
    #: (``Encoder.fallback_thresholds``, which ``parabeam mine`` puts into ``fallback_threshold``): the middle of
    #: the F1-optimal thresholds of the comparable-news development sets with muse-v3 (distance 0.100-0.150, ratio
    #: 1.24-1.31; benchmarks/RESULTS.md); the cosine (absolute) one is a rough value for muse-v3 only
    fallback_threshold: float
    #: --keep-candidates keeps candidates from here up (LASER's threshold 0 keeps every candidate; these drop only
    #: candidates whose cosine is below their neighbourhoods' mean)
    candidate_floor: float


# The one table of margin kinds: adding one is a row here and its score function; the command-line choices, the
# settings' validation and the per-margin defaults all read it.
MARGINS: dict[str, Margin] = {
    "ratio": Margin(_ratio, "cosine / mean", fallback_threshold=1.27, candidate_floor=1.0),
    "distance": Margin(_distance, "cosine - neighbourhood mean", fallback_threshold=0.12, candidate_floor=0.0),
    "absolute": Margin(_absolute, "cosine", fallback_threshold=0.75, candidate_floor=0.3),
}


def knn_means(D: np.ndarray) -> np.ndarray:
    """Mean similarity of each row's k neighbours, ignoring -inf padding (database smaller than k)."""
    finite = np.isfinite(D)
    counts = np.maximum(finite.sum(axis=1), 1)
    return (np.where(finite, D, 0.0).sum(axis=1) / counts).astype(np.float32)  # (n,)


def margin_scores(
    cosine: np.ndarray, knn_mean_src: np.ndarray, knn_mean_tgt: np.ndarray, margin: str = "ratio"
) -> np.ndarray:
    """Margin of candidate pairs; all three arguments broadcast against each other."""
    if margin not in MARGINS:
        raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {margin!r}")
    cosine = np.asarray(cosine, dtype=np.float32)
    denom = (np.asarray(knn_mean_src, dtype=np.float32) + np.asarray(knn_mean_tgt, dtype=np.float32)) / 2
    return MARGINS[margin].score(cosine, denom)
