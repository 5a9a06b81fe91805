"""SecondPass: each shard's neighbour lists without the lines the first pass paired (a side input of one bool per
sentence), new neighbourhood means, retrieval again at the same threshold and the cosine floor, joined to the
first pass's pairs (``parabeam.mining.passes.refill`` and ``finish``; the method is explained there)."""

from __future__ import annotations

import apache_beam as beam

from parabeam.mining.config import MiningConfig
from parabeam.mining.passes import DROP_REASONS
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import Neighbours, pair_name
from parabeam.pipelines.score_margins import ScoreMargins
from parabeam.pipelines.stage import Run, Stage


class _Refill(beam.DoFn):
    def __init__(self, k: int):
        self.k = k

    def process(self, nb: Neighbours, first, means):
        from parabeam.mining.passes import refill

        fp = first.get(nb.pair)
        if fp is None or fp.floor is None:
            return
        rows = slice(nb.first_row, nb.first_row + len(nb.D))
        own, other = (fp.removed_src, fp.removed_tgt) if nb.direction == "fwd" else (fp.removed_tgt, fp.removed_src)
        D, I, refilled = refill(nb.D, nb.I, own[rows], other, means[(nb.pair, nb.direction)][rows], self.k)
        yield nb._replace(D=D, I=I, means=refilled)


CANDIDATES = "candidates"

# report.json's names for the counts of mining.passes.finish: selection.<pair>.candidates and .dropped.<reason>
# (both passes), and the pairs each pass kept (the pairs written are counted after the filters, by FilterPairs)
_COUNT_NAMES = {"first_pass": "first_pass/{}", "second_pass": "second_pass/{}", "pairs": None,
                "candidates": "selection/{}/candidates", **{reason: "selection/{}/dropped/" + reason
                                                           for reason in DROP_REASONS}}


class _FinishPair(CountingDoFn):
    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig):
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.config = config

    def process(self, element, segments):
        from parabeam.mining.pairs import retrieve_tagged
        from parabeam.mining.passes import finish

        name, (firsts, blocks) = element
        if not firsts:
            return
        src_lang, tgt_lang = self.pairs[name]
        blocks = list(blocks)
        again = None
        if firsts[0].floor is not None and blocks:
            again = retrieve_tagged(blocks, self.config.retrieval)[0]
        with self.timed():
            done = finish(firsts[0], again, config=self.config, src=segments[src_lang], tgt=segments[tgt_lang])
        for key, n in done.counts.items():
            if _COUNT_NAMES[key]:
                self.count(_COUNT_NAMES[key].format(name), n)
        if "second_pass" in done.counts:
            progress("%s: %d more pairs in the second pass", name, done.counts["second_pass"])
        if done.candidates is not None:
            yield beam.pvalue.TaggedOutput(CANDIDATES, (name, done.candidates, {"selected": done.selected}))
        yield name, done.pairs, {}


class SecondPass(Stage):
    """``(neighbours, first, means, segments)`` -> ``{"pairs": (pair, MinedPairs, {}), "kept_candidates": (pair,
    MinedPairs, {"selected": bool array}) (with keep_candidates), "stats": counts}``."""

    inputs = ("neighbours", "first", "means", "segments")
    outputs = ("pairs", "kept_candidates", STATS)
    timing = "select"

    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig):
        super().__init__()
        self.pairs = pairs
        self.config = config

    @classmethod
    def for_run(cls, run: Run) -> SecondPass:
        return cls(run.pairs, run.config.mining)

    def expand(self, inputs):
        neighbours, first, means, segments = inputs
        cfg = self.config
        scored = (
            neighbours
            | "Refill" >> beam.ParDo(_Refill(cfg.k), beam.pvalue.AsDict(first), beam.pvalue.AsDict(means))
            | "Margins" >> ScoreMargins(cfg.margin, cfg.k)
        )
        finished = (
            (first, scored["candidates"])
            | "JoinPasses" >> beam.CoGroupByKey()
            | "Finish" >> self.pardo(_FinishPair(self.pairs, cfg), beam.pvalue.AsDict(segments)).with_outputs(
                STATS, CANDIDATES, main="pairs")
        )
        return {"pairs": finished.pairs, "kept_candidates": finished[CANDIDATES], STATS: finished[STATS]}
