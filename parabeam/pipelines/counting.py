"""Counting every event that matters twice over: as a Beam counter (visible in the runner's UI while the job
runs) and as a ``stats`` side output that the pipeline itself sums into report.json, which works the same on
every runner, including those whose metrics API is partial. Busy time per stage is counted the same way
(``seconds/<stage>`` in milliseconds: the time the stage's own work took, summed over workers), and progress
lines go to the ``parabeam.progress`` logger, which the CLI shows without -v (worker processes' lines included)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from parabeam.pipelines.storage import StorageDoFn
from parabeam.progress import PROGRESS, progress

STATS = "stats"
NAMESPACE = "parabeam"
__all__ = ["NAMESPACE", "PROGRESS", "STATS", "CountingDoFn", "nest_stats", "progress"]


class CountingDoFn(StorageDoFn):
    """A DoFn with ``self.count(name, n)``; counts leave as ``(name, n)`` on the ``stats`` output per bundle.
    ``timing``: the stage's name for its busy time (``Stage.pardo`` sets it)."""

    timing: str | None = None

    def start_bundle(self):
        self._counts: Counter[str] = Counter()
        self._seconds: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self._counts[name] += n
            beam.metrics.Metrics.counter(NAMESPACE, name).inc(n)

    @contextlib.contextmanager
    def timed(self):
        """Counts the block's wall time under ``seconds/<timing>`` (milliseconds)."""
        stage = self._timing()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[stage] += time.perf_counter() - started

    def timed_iter(self, items: Iterator) -> Iterator:
        """``items`` with the time spent producing them (not consuming them downstream) counted as ``timed``."""
        stage, items = self._timing(), iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self._seconds[stage] += time.perf_counter() - started
                return
            self._seconds[stage] += time.perf_counter() - started
            yield item

    def _timing(self) -> str:
        return self.timing or "unstaged"  # a DoFn run outside a stage (a unit test)

    def finish_bundle(self):
        for stage, seconds in self._seconds.items():
            self.count(f"seconds/{stage}", int(round(1000 * seconds)))
        self._seconds = Counter()
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
