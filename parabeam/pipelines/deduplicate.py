"""Deduplicate: exact dedup on normalised text (``parabeam.mining.text.normalise_for_dedup``), global per
language: one shuffle on ``(lang, normalised text)``, the earliest occurrence kept, with the number of copies
seen (the boilerplate filter reads it: ``parabeam.mining.filters``)."""

from __future__ import annotations

import apache_beam as beam

from parabeam.mining.text import normalise_for_dedup
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.records import provenance_key
from parabeam.pipelines.stage import Run, Stage, tagged


class _KeepFirst(beam.CombineFn):
    """Keeps the earliest occurrence (by file, offset, position) and counts the others."""

    def create_accumulator(self):
        return (None, 0)

    def add_input(self, acc, sentence):
        best, n = acc
        if best is None or provenance_key(sentence) < provenance_key(best):
            best = sentence
        return (best, n + 1)

    def merge_accumulators(self, accs):
        best, total = None, 0
        for b, n in accs:
            total += n
            if b is not None and (best is None or provenance_key(b) < provenance_key(best)):
                best = b
        return (best, total)

    def extract_output(self, acc):
        return acc


class _CountDuplicates(CountingDoFn):
    def process(self, element):
        (lang, _), (sentence, n) = element
        self.count(f"languages/{lang}/dropped/duplicate", n - 1)
        self.count(f"languages/{lang}/kept")
        yield lang, sentence._replace(copies=n)


class Deduplicate(Stage):
    """``(lang, Sentence)`` -> the same, one per normalised text and language."""

    inputs = ("identified",)
    outputs = ("unique", STATS)

    @classmethod
    def for_run(cls, run: Run) -> Deduplicate:
        return cls()

    def expand(self, identified):
        return tagged(
            identified
            | "KeyByNormalised" >> beam.Map(lambda kv: ((kv[0], normalise_for_dedup(kv[1].text)), kv[1]))
            | "KeepFirst" >> beam.CombinePerKey(_KeepFirst())
            | "CountDuplicates" >> self.pardo(_CountDuplicates()).with_outputs(STATS, main="unique"),
            "unique", STATS)
