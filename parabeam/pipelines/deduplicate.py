"""Deduplicate: exact dedup on normalised text (``parabeam.mining.text.normalise_for_dedup``), global per
language: one shuffle on ``(lang, normalised text)``, the earliest occurrence kept, with the number of copies
seen (the boilerplate filter reads it: ``parabeam.mining.filters``)."""

from __future__ import annotations

import apache_beam as beam

from parabeam.mining.text import normalise_for_dedup
from parabeam.pipelines import storage
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.earlier import IN_EARLIER_RUN
from parabeam.pipelines.records import ShardRef, provenance_key
from parabeam.pipelines.stage import Run, Stage, tagged

SEEN = "seen in an earlier run"  # stands for a text an earlier run (--since) holds, among the sentences of its key


class _KeepFirst(beam.CombineFn):
    """Keeps the earliest occurrence (by file, offset, position), counts the occurrences, and notes whether an
    earlier run holds the text: ``(sentence, n, seen)``."""

    def create_accumulator(self):
        return (None, 0, False)

    def add_input(self, acc, sentence):
        best, n, seen = acc
        if isinstance(sentence, str):  # SEEN
            return (best, n, True)
        if best is None or provenance_key(sentence) < provenance_key(best):
            best = sentence
        return (best, n + 1, seen)

    def merge_accumulators(self, accs):
        best, total, seen = None, 0, False
        for b, n, s in accs:
            total, seen = total + n, seen or s
            if b is not None and (best is None or provenance_key(b) < provenance_key(best)):
                best = b
        return (best, total, seen)

    def extract_output(self, acc):
        return acc


class _CountDuplicates(CountingDoFn):
    def process(self, element):
        (lang, _), (sentence, n, seen) = element
        if sentence is None:  # only an earlier run has the text
            return
        if seen:  # embedded and indexed by an earlier run, whose shards this run searches
            self.count(f"languages/{lang}/dropped/{IN_EARLIER_RUN}", n)
            return
        self.count(f"languages/{lang}/dropped/duplicate", n - 1)
        self.count(f"languages/{lang}/kept")
        yield lang, sentence._replace(copies=n)


class _EarlierTexts(storage.StorageDoFn):
    """An earlier run's shard -> ``((lang, normalised text), SEEN)`` for each of its sentences."""

    def process(self, ref: ShardRef):
        from parabeam.pipelines.metadata import read_columns

        for text in read_columns(ref.metadata, ["text"]).column("text").to_pylist():
            yield (ref.lang, normalise_for_dedup(text)), SEEN


class Deduplicate(Stage):
    """``(lang, Sentence)`` -> the same, one per normalised text and language, none that an earlier run holds."""

    inputs = ("identified",)
    outputs = ("unique", STATS)

    def __init__(self, earlier: tuple[ShardRef, ...] = ()):
        super().__init__()
        self.earlier = earlier

    @classmethod
    def for_run(cls, run: Run) -> Deduplicate:
        return cls(tuple(ref for ref in run.earlier.shards if ref.lang in run.mined_languages))

    def expand(self, identified):
        keyed = identified | "KeyByNormalised" >> beam.Map(
            lambda kv: ((kv[0], normalise_for_dedup(kv[1].text)), kv[1]))
        if self.earlier:
            seen = (identified.pipeline | "EarlierShards" >> beam.Create(list(self.earlier))
                    | "EarlierTexts" >> beam.ParDo(_EarlierTexts()))
            keyed = (keyed, seen) | "WithEarlier" >> beam.Flatten()
        return tagged(
            keyed
            | "KeepFirst" >> beam.CombinePerKey(_KeepFirst())
            | "CountDuplicates" >> self.pardo(_CountDuplicates()).with_outputs(STATS, main="unique"),
            "unique", STATS)
