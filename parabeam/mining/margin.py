"""Margin-based scoring (Artetxe & Schwenk 2019, "Margin-based Parallel Corpus Mining with Multilingual
Sentence Embeddings", sec. 3.1).

A candidate pair's cosine is compared with the average cosine of each side's k nearest neighbours in the other
language, which corrects for "hubs" (sentences close to everything):

    margin(x, y) = f( cos(x, y),  (mean_{z in NN_k(x)} cos(x, z) + mean_{z in NN_k(y)} cos(y, z)) / 2 )

with f(a, b) = a / b (ratio), a - b (distance) or a (absolute: plain cosine).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

MarginKind = Literal["ratio", "distance", "absolute"]
MARGINS: tuple[str, ...] = ("ratio", "distance", "absolute")


def knn_means(D: np.ndarray) -> np.ndarray:
    """Mean similarity of each row's k neighbours, ignoring -inf padding (database smaller than k)."""
    finite = np.isfinite(D)
    counts = np.maximum(finite.sum(axis=1), 1)
    return (np.where(finite, D, 0.0).sum(axis=1) / counts).astype(np.float32)  # (n,)


def margin_scores(
    cosine: np.ndarray, knn_mean_src: np.ndarray, knn_mean_tgt: np.ndarray, margin: MarginKind = "ratio"
) -> np.ndarray:
    """Margin of candidate pairs; all three arguments broadcast against each other."""
    cosine = np.asarray(cosine, dtype=np.float32)
    if margin == "absolute":
        return cosine.copy()
    denom = (np.asarray(knn_mean_src, dtype=np.float32) + np.asarray(knn_mean_tgt, dtype=np.float32)) / 2
    if margin == "ratio":
        # a neighbourhood mean <= 0 means a degenerate space; keep the score finite and low rather than flip sign
        return np.where(denom > 1e-6, cosine / np.maximum(denom, 1e-6), -np.inf).astype(np.float32)
    if margin == "distance":
        return (cosine - denom).astype(np.float32)
    raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {margin!r}")
