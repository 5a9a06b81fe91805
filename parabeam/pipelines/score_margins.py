"""ScoreMargins: neighbour lists -> each query row's best candidate by margin (``parabeam.mining.pairs``), with the
neighbourhood means of the whole other language (a side input of one float per sentence and pair), not of one
shard: the margin's neighbourhoods are global (Artetxe & Schwenk 2019, sec. 3.1)."""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from parabeam.pipelines.records import Neighbours
from parabeam.pipelines.stage import Run, Stage


def _means_block(nb: Neighbours, k: int):
    from parabeam.mining.margin import knn_means

    return (nb.pair, nb.direction), (nb.first_row, knn_means(nb.D[:, :k]) if nb.means is None else nb.means)


def _concat_blocks(blocks) -> np.ndarray:
    blocks = sorted(blocks, key=lambda b: b[0])
    return np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.float32)


class _Score(beam.DoFn):
    def __init__(self, margin: str, k: int):
        self.margin = margin
        self.k = k

    def process(self, nb: Neighbours, means):
        from parabeam.mining.pairs import shard_candidates

        other = "bwd" if nb.direction == "fwd" else "fwd"
        own = means[(nb.pair, nb.direction)][nb.first_row : nb.first_row + len(nb.D)]
        k = self.k
        yield nb.pair, (nb.direction, shard_candidates(nb.D[:, :k], nb.I[:, :k], own, means[(nb.pair, other)],
                                                       self.margin, nb.first_row))


class ScoreMargins(Stage):
    """``Neighbours`` -> ``{"candidates": (pair, (direction, Candidates)), "means": ((pair, direction), (n,))}``."""

    inputs = ("neighbours",)
    outputs = ("candidates", "means")

    def __init__(self, margin: str, k: int):
        super().__init__()
        self.margin = margin
        self.k = k

    @classmethod
    def for_run(cls, run: Run) -> ScoreMargins:
        return cls(run.config.mining.margin, run.config.mining.k)

    def expand(self, neighbours):
        k = self.k
        means = (
            neighbours
            | "MeansPerShard" >> beam.Map(_means_block, k)
            | "GroupMeans" >> beam.GroupByKey()
            | "ConcatMeans" >> beam.MapTuple(lambda key, blocks: (key, _concat_blocks(blocks)))
        )
        candidates = neighbours | "Score" >> beam.ParDo(_Score(self.margin, k), beam.pvalue.AsDict(means))
        return {"candidates": candidates, "means": means}
