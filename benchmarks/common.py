"""Small helpers the benchmarks share (imported as ``common`` with benchmarks/ on the path)."""

from __future__ import annotations

import os


def slug(spec: str) -> str:
    """An encoder spec as a file name part (``e5-small``, ``hf__models_LaBSE``)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in spec).strip("_")


def corpus_vectors(corpus_dir: str, side: str, spec: str) -> str:
    """Where ``benchmarks/comparable_news.py`` keeps a corpus side's line vectors (``side``: src or tgt) for an
    encoder."""
    return os.path.join(corpus_dir, f"{side}.{slug(spec)}.npy")
