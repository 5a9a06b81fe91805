"""BuildIndexes: ``ShardRef``s -> ``(lang, IndexRef)``: one FAISS index per language, chosen by size
(``parabeam.mining.index``), trained on a seeded sample, filled shard by shard, saved under OUTPUT/_work/indexes;
built once per language and shared by every pair that language is in."""

from __future__ import annotations

import hashlib
import time

import apache_beam as beam

from parabeam.mining.index import IndexConfig
from parabeam.pipelines import storage
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import IndexRef
from parabeam.pipelines.sharing import limit_threads
from parabeam.pipelines.stage import Run, Stage, tagged


class _BuildIndex(CountingDoFn):
    def __init__(self, config: IndexConfig, work_dir: str, threads: int = 0):
        self.config = config
        self.work_dir = work_dir
        self.threads = threads

    def setup(self):
        limit_threads(self.threads)

    def process(self, element):
        from parabeam.mining.index import build_index, factory_string, serialize

        lang, refs = element
        refs = sorted(refs, key=lambda r: r.shard_id)
        sizes = [r.size for r in refs]
        d = storage.npy_shape(refs[0].embeddings)[1]  # the header only: the shards are read once, to build
        factory = factory_string(sum(sizes), d, self.config)
        h = hashlib.sha1(f"{factory}|{self.config.seed}|{self.config.train_size}".encode())
        for r in refs:
            h.update(r.embeddings.encode())  # shard names carry a digest of their content
        path = storage.join(self.work_dir, "indexes", f"{lang}-{h.hexdigest()[:16]}.faiss")
        ref = IndexRef(lang, path, factory, tuple(refs))
        if storage.FileSystems.exists(path):
            self.count(f"languages/{lang}/index_reused")
            self.count(f"languages/{lang}/indexed", sum(sizes))
            yield lang, ref
            return
        started = time.perf_counter()
        with self.timed():
            index, _ = build_index(lambda i: storage.load_npy(refs[i].embeddings), sizes, d, self.config, factory)
            storage.write_bytes_atomic(path, serialize(index))
        self.count(f"languages/{lang}/indexed", index.ntotal)
        progress("built the %s index (%s, %d vectors) in %.1f s", lang, factory, index.ntotal,
                 time.perf_counter() - started)
        yield lang, ref


class BuildIndexes(Stage):
    """``ShardRef`` -> ``(lang, IndexRef)``: one FAISS index per mined language over all its shards."""

    inputs = ("embedded",)
    outputs = ("indexes", STATS)
    timing = "index"

    def __init__(self, config: IndexConfig, work_dir: str, languages: list[str], hints: dict[str, str] | None = None,
                 threads: int = 0):
        super().__init__(hints)
        self.config = config
        self.work_dir = work_dir
        self.languages = set(languages)
        self.threads = threads

    @classmethod
    def for_run(cls, run: Run) -> BuildIndexes:
        return cls(run.config.index, run.work, run.mined_languages, cls.run_hints(run), run.config.cpu_threads)

    def expand(self, shard_refs):
        wanted = self.languages
        return tagged(
            shard_refs
            | "KeyByLanguage" >> beam.Map(lambda ref: (ref.lang, ref))
            | "OnlyMinedLanguages" >> beam.Filter(lambda kv: kv[0] in wanted)
            | "GroupByLanguage" >> beam.GroupByKey()
            | "Build" >> self.pardo(_BuildIndex(self.config, self.work_dir, self.threads),
                                    hinted=True).with_outputs(STATS, main="indexes"),
            "indexes", STATS)
