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
from parabeam.pipelines.sharing import limit_threads, with_hints


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
        with self.timed("index"):
            index, _ = build_index(lambda i: storage.load_npy(refs[i].embeddings), sizes, d, self.config, factory)
            storage.write_bytes_atomic(path, serialize(index))
        self.count(f"languages/{lang}/indexed", index.ntotal)
        progress("built the %s index (%s, %d vectors) in %.1f s", lang, factory, index.ntotal,
                 time.perf_counter() - started)
        yield lang, ref


class BuildIndexes(beam.PTransform):
    def __init__(self, config: IndexConfig, work_dir: str, languages: list[str], hints: dict[str, str] | None = None,
                 threads: int = 0):
        super().__init__()
        self.config = config
        self.work_dir = work_dir
        self.languages = set(languages)
        self.hints = hints or {}
        self.threads = threads

    def expand(self, shard_refs):
        wanted = self.languages
        return (
            shard_refs
            | "KeyByLanguage" >> beam.Map(lambda ref: (ref.lang, ref))
            | "OnlyMinedLanguages" >> beam.Filter(lambda kv: kv[0] in wanted)
            | "GroupByLanguage" >> beam.GroupByKey()
            | "Build" >> with_hints(beam.ParDo(_BuildIndex(self.config, self.work_dir, self.threads)),
                                    self.hints).with_outputs(STATS, main="indexes")
        )
