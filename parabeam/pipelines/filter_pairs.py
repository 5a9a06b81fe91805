"""FilterPairs: each pair's selected pairs -> those the pair filters keep (``parabeam.mining.filters``: numbers,
copies, boilerplate, language identification, URLs, near duplicates), counted by rule as drops of the selection
(``selection.<pair>.dropped.<rule>`` in report.json, the funnel of report.html); with --since, also the pairs an
earlier run wrote (``in_earlier_run``: ``parabeam.pipelines.earlier``). With --keep-candidates the
candidates go through too: a filtered pair stays among them, no longer selected, with the rule in its ``filter``
column (``parabeam export --allow RULE`` takes it back).

The rules read each side's text, LID probability and copy count from the shards' metadata: per language pair one
read of those columns for the rows its pairs use."""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from parabeam.mining.filters import FilterConfig, Side, filter_reasons
from parabeam.pipelines import metadata
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.earlier import IN_EARLIER_RUN, pair_keys, written_pair_keys
from parabeam.pipelines.records import IndexRef, pair_name
from parabeam.pipelines.stage import Run, Stage

FILTERED_CANDIDATES = "filtered_candidates"
RULE_COLUMNS = ["text", "lid_prob", "copies"]


def _take(side: Side, keep: np.ndarray) -> Side:
    text = [t for t, k in zip(side.text, keep) if k]
    return Side(side.lang, text, None if side.lid_prob is None else side.lid_prob[keep],
                None if side.copies is None else side.copies[keep])


def side(ref: IndexRef, lang: str, rows: np.ndarray) -> Side:
    """What the rules read of ``rows`` of one language, from its shards' metadata."""
    if not len(rows):
        return Side(lang, [], np.zeros(0, np.float32), np.zeros(0, np.int64))
    table = metadata.take_columns(ref, rows, RULE_COLUMNS)
    return Side(lang, table.column("text").to_pylist(), table.column("lid_prob").to_numpy(),
                table.column("copies").to_numpy())


class _FilterPair(CountingDoFn):
    def __init__(self, pairs: list[tuple[str, str]], config: FilterConfig, earlier: tuple[str, ...] = ()):
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.config = config
        self.earlier = earlier  # outputs of the runs --since builds on

    def process(self, element, indexes):
        name, (found, candidates) = element
        if not found:
            return
        (pairs, _), = found
        src_lang, tgt_lang = self.pairs[name]
        with self.timed():
            reasons = np.full(len(pairs), None, dtype=object)
            if (self.config.enabled or self.earlier) and len(pairs):
                src = side(indexes[src_lang], src_lang, pairs.src)
                tgt = side(indexes[tgt_lang], tgt_lang, pairs.tgt)
                if self.earlier:  # written by a run --since builds on: not written again
                    written = written_pair_keys(list(self.earlier), src_lang, tgt_lang)
                    reasons[np.isin(pair_keys(src.text, tgt.text), written)] = IN_EARLIER_RUN
                if self.config.enabled:
                    fresh = reasons == None  # noqa: E711 (elementwise)
                    verdicts = filter_reasons(_take(src, fresh), _take(tgt, fresh), pairs.score[fresh], self.config)
                    reasons[np.flatnonzero(fresh)] = verdicts
        kept = reasons == None  # noqa: E711 (elementwise)
        rules = (*self.config.enabled, *((IN_EARLIER_RUN,) if self.earlier else ()))
        for rule in rules:
            self.count(f"selection/{name}/dropped/{rule}", int(np.sum(reasons == rule)))
        self.count(f"pairs/{name}", int(kept.sum()))
        if len(pairs) > kept.sum():
            progress("%s: the pair filters dropped %d of %d pairs (%s)", name, len(pairs) - kept.sum(), len(pairs),
                     ", ".join(f"{rule} {n}" for rule in rules if (n := int(np.sum(reasons == rule)))))
        for pool, extra in candidates:  # with --keep-candidates: the same decisions, by pair
            reason = np.full(len(pool), None, dtype=object)
            if len(pairs):
                keys, wanted = pairs.keys(), pool.keys()
                order = np.argsort(keys, kind="stable")
                at = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
                hit = keys[order][at] == wanted
                reason[hit] = reasons[order[at[hit]]]
            selected = np.asarray(extra["selected"], dtype=bool) & (reason == None)  # noqa: E711
            yield beam.pvalue.TaggedOutput(FILTERED_CANDIDATES, (name, pool, {**extra, "selected": selected,
                                                                             "filter": reason}))
        yield name, pairs.take(kept), {}


class FilterPairs(Stage):
    """``(pairs, kept_candidates, indexes)`` -> ``{"filtered": (pair, MinedPairs, {}), "filtered_candidates":
    (pair, MinedPairs, {"selected", "filter"}), "stats": counts}``."""

    inputs = ("pairs", "kept_candidates", "indexes")
    outputs = ("filtered", FILTERED_CANDIDATES, STATS)
    timing = "filter"

    def __init__(self, pairs: list[tuple[str, str]], config: FilterConfig, earlier: tuple[str, ...] = ()):
        super().__init__()
        self.pairs = pairs
        self.config = config
        self.earlier = earlier

    @classmethod
    def for_run(cls, run: Run) -> FilterPairs:
        return cls(run.pairs, run.config.filters, tuple(run.earlier.outputs))

    def expand(self, inputs):
        pairs, candidates, indexes = inputs
        by_name = lambda element: (element[0], (element[1], element[2]))  # noqa: E731
        filtered = (
            (pairs | "KeyPairs" >> beam.Map(by_name), candidates | "KeyCandidates" >> beam.Map(by_name))
            | "JoinCandidates" >> beam.CoGroupByKey()
            | "Filter" >> self.pardo(_FilterPair(self.pairs, self.config, self.earlier),
                                     beam.pvalue.AsDict(indexes)).with_outputs(
                STATS, FILTERED_CANDIDATES, main="filtered")
        )
        return {"filtered": filtered.filtered, FILTERED_CANDIDATES: filtered[FILTERED_CANDIDATES],
                STATS: filtered[STATS]}
