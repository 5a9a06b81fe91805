"""SelectPairs: each pair's candidates -> its first pass (``parabeam.mining.passes.first_pass``): retrieval
(forward | backward | intersection | max) over all of the pair's candidates (two small arrays per sentence), the
threshold (fixed, calibrated from the score distribution, or from gold pairs: ``mining.calibrate``), weak
alternates and overlaps. Also reads each language's segments (line and part of every row), which the overlap
rules need."""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from parabeam.mining.config import MiningConfig
from parabeam.pipelines import metadata, storage
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import pair_name
from parabeam.pipelines.stage import Run, Stage

THRESHOLDS = "thresholds"


def read_gold_pairs(path: str) -> set[tuple[str, str]]:
    """Known pairs ``src<TAB>tgt``, normalised as dedup normalises (``mining.text.normalise_for_dedup``)."""
    from parabeam.mining.text import normalise_for_dedup as norm

    pairs = set()
    for line in storage.read_bytes(path).decode("utf-8").splitlines():
        if line.strip():
            src, sep, tgt = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}: expected src<TAB>tgt per line, got {line[:80]!r}")
            pairs.add((norm(src), norm(tgt)))
    return pairs


class _ReadSegments(storage.StorageDoFn):
    def process(self, element):
        lang, ref = element
        yield lang, metadata.segments(ref)


def score_distribution(scores: np.ndarray, threshold: float, margin: str, bins: int = 60) -> dict:
    """A histogram of a pair's candidate scores (report.html draws it), over a range that shows both modes and
    the threshold."""
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {"histogram": {"edges": [], "counts": []}}
    lo, hi = np.quantile(finite, [0.002, 0.998])
    lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        hi = lo + 1e-3
    counts, edges = np.histogram(np.clip(finite, lo, hi), bins=bins, range=(lo, hi))
    return {"histogram": {"edges": [round(float(e), 5) for e in edges], "counts": counts.tolist()},
            "candidates_above_threshold": int((finite >= threshold).sum())}


class _SelectPair(CountingDoFn):
    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig, keep_candidates: bool = False):
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.config = config
        self.keep_candidates = keep_candidates

    def setup(self):
        path = self.config.calibration_gold
        self._gold = read_gold_pairs(path) if path else None  # read once per worker, not per pair

    def process(self, element, indexes, segments):
        from parabeam.mining.calibrate import choose_threshold
        from parabeam.mining.pairs import retrieve_tagged, runner_up_scores
        from parabeam.mining.passes import first_pass

        name, blocks = element
        src_lang, tgt_lang = self.pairs[name]
        selected, fwd, bwd = retrieve_tagged(blocks, self.config.retrieval)
        is_gold = None
        if self._gold is not None:
            is_gold = self._known_pairs(selected, indexes[src_lang], indexes[tgt_lang])
        with self.timed():
            threshold, info = choose_threshold(selected.score, self.config, is_gold,
                                               len(self._gold) if self._gold is not None else 0,
                                               null=runner_up_scores(fwd, bwd))
            src, tgt = segments[src_lang], segments[tgt_lang]
            first = first_pass(selected, threshold=threshold, config=self.config, src=src, tgt=tgt,
                               keep_candidates=self.keep_candidates)
            info.update(score_distribution(selected.score, threshold, self.config.margin))
            for step in (-0.05, -0.02, 0.02, 0.05):  # what a nearby threshold would have kept (first pass)
                info[f"pairs_at_{step:+.2f}"] = len(first_pass(selected, threshold=threshold + step,
                                                               config=self.config, src=src, tgt=tgt).pairs)
        if first.floor is not None:
            info["second_pass_floor"] = first.floor
        estimate = (f", estimated precision {info['estimated_precision']:.3f}" if "estimated_precision" in info
                    else "")
        progress("%s: %d candidates, threshold %.3f (%s%s), %d pairs in the first pass", name, len(selected),
                 threshold, info["method"], estimate, len(first.pairs))
        if info["method"] == "target_precision_unreachable":
            progress("%s: no threshold reaches the estimated precision %.3f (at best %.3f): no pair kept; ask for "
                     "less with --target-precision", name, info["target_precision"], info["best_estimated_precision"])
        yield beam.pvalue.TaggedOutput(THRESHOLDS, (name, info))
        yield name, first

    def _known_pairs(self, selected, src_ref, tgt_ref) -> np.ndarray:
        from parabeam.mining.text import normalise_for_dedup as norm

        src_text = metadata.take_columns(src_ref, selected.src, ["text"]).column("text").to_pylist()
        tgt_text = metadata.take_columns(tgt_ref, selected.tgt, ["text"]).column("text").to_pylist()
        return np.array([(norm(s), norm(t)) in self._gold for s, t in zip(src_text, tgt_text)], dtype=bool)


class SelectPairs(Stage):
    """``(candidates, indexes)`` -> ``{"first": (pair, FirstPass), "segments": (lang, Segments),
    "thresholds": (pair, info), "stats": counts}``."""

    inputs = ("candidates", "indexes")
    outputs = ("first", "segments", THRESHOLDS, STATS)
    timing = "select"

    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig, keep_candidates: bool = False):
        super().__init__()
        self.pairs = pairs
        self.config = config
        self.keep_candidates = keep_candidates

    @classmethod
    def for_run(cls, run: Run) -> SelectPairs:
        return cls(run.pairs, run.config.mining, run.config.keep_candidates)

    def expand(self, inputs):
        candidates, indexes = inputs
        segments = indexes | "ReadSegments" >> beam.ParDo(_ReadSegments())
        first = (
            candidates
            | "GroupByPair" >> beam.GroupByKey()
            | "FirstPass" >> self.pardo(_SelectPair(self.pairs, self.config, self.keep_candidates),
                                        beam.pvalue.AsDict(indexes),
                                        beam.pvalue.AsDict(segments)).with_outputs(STATS, THRESHOLDS, main="first")
        )
        return {"first": first.first, "segments": segments, "thresholds": first[THRESHOLDS], "stats": first[STATS]}
