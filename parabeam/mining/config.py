"""Settings of the mining stage (neighbours, margin, retrieval, threshold, second pass, overlaps)."""

from __future__ import annotations

import argparse
import dataclasses

from parabeam.mining.knn import QUERY_BLOCK
from parabeam.mining.margin import MARGINS
from parabeam.mining.retrieval import RETRIEVALS
from parabeam.options import option

# Artetxe & Schwenk 2019 use k = 4 neighbours for the margin (sec. 4.1).
DEFAULT_K = 4
# Per margin kind (mining.margin.MARGINS, where each value is explained): what ``threshold: auto`` falls back to,
# and where --keep-candidates starts.
FALLBACK_THRESHOLDS = {name: m.fallback_threshold for name, m in MARGINS.items()}
CANDIDATE_FLOORS = {name: m.candidate_floor for name, m in MARGINS.items()}


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
    # distance: on comparable news (distractors of the same domain as the gold) it beat the ratio margin at each
    # one's best threshold on all four development pairs, by 0.7-1.4 F1 (benchmarks/RESULTS.md)
    margin: str = option(
        "distance", "margin: " + ", ".join(f"{name} ({m.help})" for name, m in MARGINS.items()), choices=MARGINS)
    retrieval: str = option(
        "max", "candidate selection: forward, backward, intersection of both, or max (one-to-one, greedy by score)",
        choices=RETRIEVALS)
    threshold: float | str = option(
        "auto", "margin threshold, or 'auto' to calibrate each pair from its score distribution (mining.calibrate; "
        "falls back to --fallback-threshold when a pair has too few candidates)",
        parse=threshold_value, metavar="X|auto")
    # the posterior 0.95 was chosen on the development corpora with muse-v3, 0.7 with e5-small (README, "Measured
    # figures"): how well two Gaussians describe the scores differs from encoder to encoder
    auto_posterior: float | None = option(
        None, "threshold auto: the lowest score whose posterior for the translation mode reaches P (default: the "
        "encoder's own, chosen on the development corpora: 0.95 for muse-v3, 0.7 for e5-small)", metavar="P")
    target_precision: float | None = option(
        None, "instead of a margin threshold, each pair's lowest threshold whose estimated precision (from the score "
        "distribution: mining.calibrate) reaches P", metavar="P")
    fallback_threshold: float | None = option(
        None, "what threshold auto uses when a pair has too few candidates for a fit (default: the encoder's own, "
        "chosen on the development corpora; else 0.12 for the distance margin, 1.27 for ratio)", metavar="X")
    max_score: float | None = option(
        None, "drop pairs scoring above this (stopes drops > 1.25: usually boilerplate or identical strings)")
    calibration_gold: str | None = option(
        None, "known pairs (src<TAB>tgt per line) that occur in the corpus: each pair's threshold becomes the "
        "F1-optimal one over them (overrides --threshold)", metavar="TSV")
    # off by default: on comparable news it added wrong pairs as often as right ones (benchmarks/RESULTS.md)
    second_pass_neighbours: int = option(
        0, "neighbours searched beyond k for a second pass over what the first leaves unpaired (0: no second "
        "pass; 16 is a good value)", metavar="N")
    second_pass_floor: float = option(
        0.05, "a second-pass pair needs a cosine at least this quantile of the first pass's kept cosines",
        metavar="Q")
    alternate_margin: float = option(
        0.05, "with --segment both, a pair that uses a sentence of a line also mined whole needs threshold + M",
        metavar="M")
    max_length_ratio: float | None = option(
        2.0, "drop pairs whose longer side is more than this many times the shorter (CJK characters count 3)",
        metavar="R")
    candidate_floor: float | None = option(
        None, "with --keep-candidates, keep candidates scoring at least this (default: 0.0 for the distance margin, "
        "1.0 for ratio)", metavar="X")
    query_block: int = option(QUERY_BLOCK, "query rows per block of the in-memory exact search (memory: one "
                              "query_block x 4096 float32 buffer)", cli=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.margin not in MARGINS:
            raise ValueError(f"margin must be one of {', '.join(MARGINS)}; got {self.margin!r}")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {self.retrieval!r}")
        if isinstance(self.threshold, str) and self.threshold != "auto":
            raise ValueError(f"threshold must be a number or 'auto'; got {self.threshold!r}")
        if not self.auto_threshold:
            # the likely slip since the default margin became distance: a ratio threshold kept, no pair mined
            if self.margin == "distance" and self.threshold > 0.8:
                raise ValueError(f"threshold {self.threshold} is not a distance margin (around 0.0-0.3); "
                                 "use --margin ratio for thresholds around 1.2")
        if self.max_score is not None and not self.auto_threshold and self.max_score <= self.threshold:
            raise ValueError(f"max_score ({self.max_score}) must be above threshold ({self.threshold})")
        if self.query_block < 1:
            raise ValueError(f"query_block must be >= 1, got {self.query_block}")
        if self.second_pass_neighbours < 0:
            raise ValueError(f"second_pass_neighbours must be >= 0, got {self.second_pass_neighbours}")
        if not 0.0 <= self.second_pass_floor <= 1.0:
            raise ValueError(f"second_pass_floor is a quantile in [0, 1], got {self.second_pass_floor}")
        if self.max_length_ratio is not None and self.max_length_ratio < 1:
            raise ValueError(f"max_length_ratio must be >= 1 (or None), got {self.max_length_ratio}")
        if self.target_precision is not None:
            if not 0.0 < self.target_precision < 1.0:
                raise ValueError(f"target_precision must be in (0, 1), got {self.target_precision}")
            if not self.auto_threshold:
                raise ValueError(f"--threshold {self.threshold} and --target-precision {self.target_precision} "
                                 "contradict each other: give one")
            if self.calibration_gold:
                raise ValueError("--calibration-gold and --target-precision contradict each other: give one")
        if self.auto_posterior is not None and not 0.5 <= self.auto_posterior < 1.0:
            raise ValueError(f"auto_posterior must be in [0.5, 1), got {self.auto_posterior}")
        if self.alternate_margin < 0:
            raise ValueError(f"alternate_margin must be >= 0, got {self.alternate_margin}")

    @property
    def auto_threshold(self) -> bool:
        return self.threshold == "auto"

    @property
    def fixed_threshold(self) -> float:
        """The threshold to use without calibration (``auto``: the fallback, the encoder's or the margin's)."""
        if not self.auto_threshold:
            return float(self.threshold)
        return FALLBACK_THRESHOLDS[self.margin] if self.fallback_threshold is None else self.fallback_threshold

    @property
    def candidates_from(self) -> float:
        return CANDIDATE_FLOORS[self.margin] if self.candidate_floor is None else self.candidate_floor

    @property
    def search_k(self) -> int:
        """Neighbours to search per sentence: k for the margins, plus the second pass's reserve."""
        return self.k + self.second_pass_neighbours
