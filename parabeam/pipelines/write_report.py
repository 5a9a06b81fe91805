"""WriteReport: every stage's ``(name, n)`` counts summed, with the run's settings, each pair's threshold and the
embedding shards mined over (what ``--since`` builds on), as ``OUTPUT/report.json``."""

from __future__ import annotations

import json

import apache_beam as beam

from parabeam.pipelines import storage
from parabeam.pipelines.counting import nest_stats


class _WriteReport(storage.StorageDoFn):
    def __init__(self, output: str, settings: dict):
        self.output = output
        self.settings = settings

    def process(self, counts: dict, thresholds, shards):
        from parabeam.pipelines.earlier import shard_listing

        report = {"settings": self.settings, **nest_stats(counts), "thresholds": dict(sorted(thresholds)),
                  "shards": shard_listing(shards)}
        report["pairs"] = {name: report.get("pairs", {}).get(name, 0) for name in self.settings["pairs"]}
        path = storage.join(self.output, "report.json")
        storage.write_bytes_atomic(path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
        yield path


class WriteReport(beam.PTransform):
    def __init__(self, output: str, settings: dict):
        super().__init__()
        self.output = output
        self.settings = settings

    def expand(self, inputs):
        stats, thresholds, shards = inputs
        return (
            stats
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "ToDict" >> beam.combiners.ToDict()
            | "Write" >> beam.ParDo(_WriteReport(self.output, self.settings), beam.pvalue.AsList(thresholds),
                                    beam.pvalue.AsList(shards))
        )
