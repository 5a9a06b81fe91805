"""Small helpers the benchmarks share (imported as ``common`` with benchmarks/ on the path)."""

from __future__ import annotations

import gzip
import os
import random
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data")  # ../shared/data beside the checkout (SOURCES.md there)
if REPO not in sys.path:  # the benchmarks import parabeam from the checkout they belong to
    sys.path.insert(0, REPO)


def slug(spec: str) -> str:
    """An encoder spec as a file name part (``e5-small``, ``hf__models_LaBSE``)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in spec).strip("_")


def corpus_vectors(corpus_dir: str, side: str, spec: str) -> str:
    """Where ``benchmarks/comparable_news.py`` keeps a corpus side's line vectors (``side``: src or tgt) for an
    encoder."""
    return os.path.join(corpus_dir, f"{side}.{slug(spec)}.npy")


def f1_score(precision: float, recall: float) -> float:
    """F1 in percent from precision and recall given as fractions."""
    return 200 * precision * recall / max(precision + recall, 1e-9)


def read_lines(path: str, *, strip: bool = True, skip_empty: bool = False) -> list[str]:
    """The lines of a text file (``.gz`` read as gzip), line ends removed and only ``\\n`` / ``\\r\\n`` taken as
    ends; ``strip``: surrounding white space too; ``skip_empty``: no blank lines."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f]
    if strip:
        lines = [line.strip() for line in lines]
    return [line for line in lines if line.strip()] if skip_empty else lines


def cut_documents(lines: list[str], rng: random.Random, low: int = 5, high: int = 40) -> list[list[str]]:
    """``lines`` in order, cut into documents of ``low`` to ``high`` lines (sizes drawn from ``rng``)."""
    docs, start = [], 0
    while start < len(lines):
        size = rng.randint(low, high)
        docs.append(lines[start:start + size])
        start += size
    return docs
