"""Settings of the mining stage (neighbours, margin, retrieval, threshold, second pass, overlaps)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

from parabeam.mining.margin import MARGINS
from parabeam.mining.select import RETRIEVALS
from parabeam.options import option

# Artetxe & Schwenk 2019 use k = 4 neighbours for the margin (sec. 4.1).
DEFAULT_K = 4
# The fixed ratio-margin threshold, and what ``threshold: auto`` falls back to when the score distribution has no
# separate upper mode (mining.calibrate).
DEFAULT_THRESHOLD = 1.2


def threshold_value(text: str) -> float | str:
    """``--threshold``: a number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


@dataclasses.dataclass(frozen=True)
class MiningConfig:
    """Settings of the mining stage; validated on construction."""

    k: int = option(DEFAULT_K, "neighbours per sentence for the margin's neighbourhood means "
                    "(Artetxe & Schwenk 2019 use 4)")
    margin: Literal["ratio", "distance", "absolute"] = option(
        "ratio", "margin: ratio (cosine / neighbourhood mean), distance (cosine - mean) or absolute (cosine)")
    retrieval: Literal["forward", "backward", "intersection", "max"] = option(
        "max", "candidate selection: forward, backward, intersection of both, or max (one-to-one, greedy by score)")
    threshold: float | str = option(
        DEFAULT_THRESHOLD, "margin threshold, or 'auto' to calibrate each pair from its score distribution "
        "(mining.calibrate; falls back to 1.2 when the scores show no separate mode of translations)",
        parse=threshold_value, metavar="X|auto")
    max_score: float | None = option(
        None, "drop pairs scoring above this (stopes drops > 1.25: usually boilerplate or identical strings)")
    calibration_gold: str | None = option(
        None, "known pairs (src<TAB>tgt per line) that occur in the corpus: each pair's threshold becomes the "
        "F1-optimal one over them (overrides --threshold)", metavar="TSV")
    second_pass_neighbours: int = option(
        16, "neighbours searched beyond k for the second pass over what the first leaves unpaired (0: no second "
        "pass)", metavar="N")
    second_pass_floor: float = option(
        0.05, "a second-pass pair needs a cosine at least this quantile of the first pass's kept cosines",
        metavar="Q")
    alternate_margin: float = option(
        0.05, "with --segment auto, a pair that uses a sentence of a line also mined whole needs threshold + M",
        metavar="M")
    query_block: int = option(65536, "query rows per block of the in-memory exact search", cli=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.margin not in MARGINS:
            raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {self.margin!r}")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {self.retrieval!r}")
        if isinstance(self.threshold, str) and self.threshold != "auto":
            raise ValueError(f"threshold must be a number or 'auto'; got {self.threshold!r}")
        if self.max_score is not None and not self.auto_threshold and self.max_score <= self.threshold:
            raise ValueError(f"max_score ({self.max_score}) must be above threshold ({self.threshold})")
        if self.query_block < 1:
            raise ValueError(f"query_block must be >= 1, got {self.query_block}")
        if self.second_pass_neighbours < 0:
            raise ValueError(f"second_pass_neighbours must be >= 0, got {self.second_pass_neighbours}")
        if not 0.0 <= self.second_pass_floor <= 1.0:
            raise ValueError(f"second_pass_floor is a quantile in [0, 1], got {self.second_pass_floor}")
        if self.alternate_margin < 0:
            raise ValueError(f"alternate_margin must be >= 0, got {self.alternate_margin}")

    @property
    def auto_threshold(self) -> bool:
        return self.threshold == "auto"

    @property
    def fixed_threshold(self) -> float:
        """The threshold to use without calibration (``auto`` falls back to the default)."""
        return DEFAULT_THRESHOLD if self.auto_threshold else float(self.threshold)

    @property
    def search_k(self) -> int:
        """Neighbours to search per sentence: k for the margins, plus the second pass's reserve."""
        return self.k + self.second_pass_neighbours
