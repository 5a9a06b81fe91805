"""Margins of given pairs, without mining (LASER's score mode): each pair's cosine against the neighbourhoods of
its two sides, in the other language's sentences given with them or in a reference sample of that language."""

from __future__ import annotations

import numpy as np

from parabeam.mining.knn import exact_knn
from parabeam.mining.margin import knn_means, margin_scores


def pair_margins(x: np.ndarray, y: np.ndarray, *, k: int = 4, margin: str = "distance",
                 x_reference: np.ndarray | None = None, y_reference: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, cosines)`` (n,) float32 of the pairs ``(x[i], y[i])`` (unit vectors): the margin (Artetxe &
    Schwenk 2019, sec. 3.1) of each pair's cosine over the mean cosine of x[i]'s k nearest neighbours among
    ``y_reference`` (default: all of ``y``) and of y[i]'s among ``x_reference`` (default: all of ``x``)."""
    if x.shape != y.shape:
        raise ValueError(f"pairs need as many source as target vectors, got {x.shape} and {y.shape}")
    cosines = np.einsum("ij,ij->i", x, y).astype(np.float32)  # (n,)
    if not len(x):
        return np.zeros(0, np.float32), cosines
    y_ref = y if y_reference is None else y_reference
    x_ref = x if x_reference is None else x_reference
    D_x, _ = exact_knn(x, y_ref, k)  # (n, k) float32
    D_y, _ = exact_knn(y, x_ref, k)
    return margin_scores(cosines, knn_means(D_x), knn_means(D_y), margin), cosines
