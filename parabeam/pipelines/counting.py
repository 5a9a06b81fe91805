"""Counting every event that matters twice over: as a Beam counter (visible in the runner's UI while the job
runs) and as a ``stats`` side output that the pipeline itself sums into report.json, which works the same on
every runner, including those whose metrics API is partial."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from parabeam.pipelines.storage import StorageDoFn

STATS = "stats"
NAMESPACE = "parabeam"


class CountingDoFn(StorageDoFn):
    """A DoFn with ``self.count(name, n)``; counts leave as ``(name, n)`` on the ``stats`` output per bundle."""

    def start_bundle(self):
        self._counts: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self._counts[name] += n
            beam.metrics.Metrics.counter(NAMESPACE, name).inc(n)

    def finish_bundle(self):
        for name, n in self._counts.items():
            yield beam.pvalue.TaggedOutput(STATS, WindowedValue((name, n), MIN_TIMESTAMP, [GlobalWindow()]))
        self._counts = Counter()


def nest_stats(flat: dict[str, int]) -> dict:
    """``{"a/b/c": 1}`` -> ``{"a": {"b": {"c": 1}}}`` for report.json."""
    out: dict = {}
    for key in sorted(flat):
        node = out
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    return out
