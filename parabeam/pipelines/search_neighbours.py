"""SearchNeighbours: every shard of a pair's languages against the other language's index, k nearest neighbours
both ways, one task per (pair, direction, shard), so memory holds one index and one shard per worker. One index
per worker process (``sharing.SharedResource``).

Against an exact flat index a forward task computes its shard's whole similarity matrix once and takes both the
row top-k (forward) and the column top-k (a partial backward list for every target row); the partial lists are
merged per target shard and the backward tasks are skipped, which halves the work
(``parabeam.mining.knn.exact_knn_both``)."""

from __future__ import annotations

import time

import apache_beam as beam
import numpy as np

from parabeam.mining.index import IndexConfig
from parabeam.pipelines import storage
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import IndexRef, Neighbours, pair_name
from parabeam.pipelines.sharing import SharedResource, limit_threads
from parabeam.pipelines.stage import Run, Stage

PARTIAL_BWD = "partial_bwd"


def shares_gemm(target: IndexRef) -> bool:
    """Whether forward tasks against ``target`` also answer the backward direction: an exact flat index, where
    the forward search computes the whole similarity matrix of the shard against the target language anyway.
    Decided from the index's factory alone, so every worker agrees."""
    return target.factory == "Flat"


def _load_index(path: str, gpu: bool, config: IndexConfig):
    from parabeam.mining.index import deserialize, to_gpu_if_available

    index = deserialize(storage.read_bytes(path))
    return to_gpu_if_available(index, config) if gpu else index


class _Search(CountingDoFn):
    def __init__(self, k: int, config: IndexConfig, threads: int = 0):
        self.k = k
        self.config = config
        self.threads = threads
        self._indexes = SharedResource()

    def setup(self):
        self._box = None  # keeps the process's index alive while this instance uses it
        limit_threads(self.threads, torch_too=True)  # flat indexes are searched with torch (mining.knn)

    def _index(self, ref: IndexRef, gpu: bool = True):
        config = self.config
        self._box = None  # release this instance's hold on the old index before loading the next
        self._box = self._indexes.acquire(lambda: _load_index(ref.path, gpu, config), tag=f"{ref.path}|gpu={gpu}")
        return self._box.value

    def process(self, task, indexes):
        from parabeam.mining.index import search

        direction, pair, ref = task
        name = pair_name(*pair)
        other = pair[1] if direction == "fwd" else pair[0]
        target = indexes.get(other)
        if target is None:  # the other language has no sentence: nothing to pair with
            self.count(f"search/{name}/no_target_sentences", ref.size)
            return
        first_row = indexes[ref.lang].first_row(ref.shard_id)
        if direction == "bwd" and shares_gemm(indexes[ref.lang]):
            self.count(f"search/{name}/bwd", ref.size)  # answered by the forward tasks' shared pass
            return
        queries = storage.load_npy(ref.embeddings)
        self.count(f"search/{name}/{direction}", len(queries))
        started = time.perf_counter()
        if direction == "fwd" and shares_gemm(target):
            with self.timed():
                results = list(self._both_ways(name, target, queries, first_row))
        else:
            with self.timed():
                D, I = search(self._index(target), queries, self.k, self.config.nprobe)
            results = [Neighbours(name, direction, first_row, D, I)]
        progress("searched %s: %s shard %d (%d segments, %s) in %.1f s", name, ref.lang, ref.shard_id, len(queries),
                 "both ways" if direction == "fwd" and shares_gemm(target) else direction,
                 time.perf_counter() - started)
        yield from results

    def _both_ways(self, name: str, target: IndexRef, queries: np.ndarray, first_row: int):
        from parabeam.mining.index import flat_vectors
        from parabeam.mining.knn import exact_knn_both

        vectors = flat_vectors(self._index(target, gpu=False))
        (D, I), (D_bwd, I_bwd) = exact_knn_both(queries, vectors, self.k, use_gpu=self.config.use_gpu)
        yield Neighbours(name, "fwd", first_row, D, I)
        I_bwd = np.where(I_bwd >= 0, I_bwd + first_row, -1)  # global rows of the query language
        start = 0
        for shard in target.shards:  # this shard's top-k for every target row, cut by target shard
            rows = slice(start, start + shard.size)
            yield beam.pvalue.TaggedOutput(PARTIAL_BWD, ((name, shard.shard_id), (start, D_bwd[rows], I_bwd[rows])))
            start += shard.size


class _MergeTopK(beam.CombineFn):
    """Partial backward top-k lists of one target shard (one per source shard) -> the global top-k."""

    def __init__(self, k: int):
        self.k = k

    def create_accumulator(self):
        return None

    def add_input(self, acc, partial):
        from parabeam.mining.knn import merge_topk

        if acc is None:
            return partial
        start, D, I = acc
        return (start, *merge_topk(D, I, partial[1], partial[2], self.k))

    def merge_accumulators(self, accs):
        merged = None
        for acc in accs:
            if acc is not None:
                merged = self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc


class SearchNeighbours(Stage):
    """``(ShardRef, {lang: IndexRef})`` -> ``{"neighbours": Neighbours, "stats": counts}``."""

    inputs = ("embedded", "indexes")
    outputs = ("neighbours", STATS)
    timing = "search"

    def __init__(self, pairs: list[tuple[str, str]], k: int, config: IndexConfig, hints: dict[str, str] | None = None,
                 threads: int = 0):
        super().__init__(hints)
        self.pairs = pairs
        self.k = k
        self.config = config
        self.threads = threads

    @classmethod
    def for_run(cls, run: Run) -> SearchNeighbours:
        return cls(run.pairs, run.config.mining.search_k, run.config.index, cls.run_hints(run), run.config.cpu_threads)

    def expand(self, inputs):
        shard_refs, indexes = inputs
        pairs = self.pairs

        def tasks(ref):
            for pair in pairs:
                if ref.lang == pair[0]:
                    yield "fwd", pair, ref
                if ref.lang == pair[1]:
                    yield "bwd", pair, ref

        searched = (
            shard_refs
            | "Tasks" >> beam.FlatMap(tasks)
            | "SpreadTasks" >> beam.Reshuffle()
            | "Search" >> self.pardo(_Search(self.k, self.config, self.threads), beam.pvalue.AsDict(indexes),
                                     hinted=True).with_outputs(STATS, PARTIAL_BWD, main="neighbours")
        )
        backward = (
            searched[PARTIAL_BWD]
            | "MergeBackward" >> beam.CombinePerKey(_MergeTopK(self.k))
            | "BackwardNeighbours" >> beam.MapTuple(lambda key, acc: Neighbours(key[0], "bwd", *acc))
        )
        neighbours = (searched.neighbours, backward) | "AllNeighbours" >> beam.Flatten()
        return {"neighbours": neighbours, "stats": searched[STATS]}
