"""Shard: ``(lang, Sentence)`` -> ``((lang, shard_id), [Sentence, ...])``, ceil(count / shard_size) shards per
language, assigned by a hash of the text (deterministic across runs and runners)."""

from __future__ import annotations

import hashlib
import math

import apache_beam as beam

from parabeam.pipelines.records import Sentence
from parabeam.pipelines.stage import Run, Stage


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def shard_of(sentence: Sentence, n_shards: int) -> int:
    # after dedup each kept sentence is the earliest occurrence, so its own text is a deterministic key
    return stable_hash(sentence.text) % n_shards


class Shard(Stage):
    """``(lang, Sentence)`` -> ``((lang, shard), [Sentence])``: shards of about ``shard_size`` sentences, by a
    stable hash of the text."""

    inputs = ("unique",)
    outputs = ("shards",)

    def __init__(self, shard_size: int):
        super().__init__()
        self.shard_size = shard_size

    @classmethod
    def for_run(cls, run: Run) -> Shard:
        return cls(run.config.shard_size)

    def expand(self, unique):
        counts = unique | "CountPerLanguage" >> beam.combiners.Count.PerKey()
        size = self.shard_size

        def assign(kv, counts):
            lang, sentence = kv
            n_shards = max(1, math.ceil(counts[lang] / size))
            return (lang, shard_of(sentence, n_shards)), sentence

        return {"shards": (
            unique
            | "AssignShard" >> beam.Map(assign, counts=beam.pvalue.AsDict(counts))
            | "GroupShards" >> beam.GroupByKey()
        )}
