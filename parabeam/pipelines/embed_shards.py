"""EmbedShards: ``((lang, shard), [Sentence])`` -> ``ShardRef``: each shard encoded (length-sorted token-budget
batches, GPU when present) and stored as fp16 vectors plus a Parquet of the sentences' metadata, under
``OUTPUT/_work/embeddings``. One encoder per worker process (``sharing.SharedResource``)."""

from __future__ import annotations

import hashlib
import logging
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa

from parabeam.mining.bitext import SHARD_META_SCHEMA, table_to_parquet_bytes
from parabeam.mining.text import clean_sentence
from parabeam.pipelines import storage
from parabeam.pipelines.config import EmbedConfig
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.records import ShardRef, provenance_key
from parabeam.pipelines.sharing import SharedResource, limit_threads, with_hints

log = logging.getLogger("parabeam")


def load_configured_encoder(config: EmbedConfig):
    from parabeam.encoders.registry import load_encoder

    kwargs = {"device": config.device, "precision": config.precision}
    if config.max_tokens is not None:
        kwargs["max_tokens"] = config.max_tokens
    return load_encoder(config.encoder, **kwargs)


class _Embed(CountingDoFn):
    def __init__(self, config: EmbedConfig, work_dir: str, threads: int = 0):
        self.config = config
        self.work_dir = work_dir
        self.threads = threads
        self._model = SharedResource()

    def setup(self):
        self._box = None
        limit_threads(self.threads, torch_too=True)

    @property
    def encoder(self):
        if self._box is None:  # loaded on first use, so a rerun that skips every shard loads nothing
            config = self.config
            self._box = self._model.acquire(lambda: load_configured_encoder(config), tag=repr(config))
        return self._box.value

    def process(self, element):
        (lang, shard_id), sentences = element
        sentences = sorted(sentences, key=provenance_key)
        # the shard's name carries a digest of its content and encoder: a rerun on the same data reuses it
        h = hashlib.sha1(self.config.encoder.encode() + b"|meta-v3")  # v3: alternate sentences' part
        for s in sentences:
            h.update(s.text.encode("utf-8") + b"\0")
        base = storage.join(self.work_dir, "embeddings", lang, f"shard-{shard_id:05d}-{h.hexdigest()[:16]}")
        ref = ShardRef(lang, shard_id, len(sentences), base + ".npy", base + ".parquet")
        if storage.FileSystems.exists(ref.embeddings) and storage.FileSystems.exists(ref.metadata):
            self.count(f"languages/{lang}/embeddings_reused", len(sentences))
            yield ref
            return
        started = time.perf_counter()
        embeddings = self.encoder.encode([clean_sentence(s.text) for s in sentences]).astype(np.float16)  # (n, d)
        seconds = time.perf_counter() - started
        log.info("embedded %s shard %d: %d sentences in %.1f s (%.0f/s)", lang, shard_id, len(sentences), seconds,
                 len(sentences) / max(seconds, 1e-9))
        meta = pa.table(
            {
                "text": [s.text for s in sentences],
                "url": [s.url for s in sentences],
                "digest": [s.digest for s in sentences],
                "source": [s.source for s in sentences],
                "offset": [int(s.offset) for s in sentences],
                "lid_prob": [float(s.lid_prob) for s in sentences],
                "line": [int(s.line) for s in sentences],
                "part": [int(s.part) for s in sentences],
            },
            schema=SHARD_META_SCHEMA,
        )
        storage.write_bytes_atomic(ref.metadata, table_to_parquet_bytes(meta))
        storage.write_bytes_atomic(ref.embeddings, storage.npy_bytes(embeddings))
        self.count(f"languages/{lang}/embedded", len(sentences))
        yield ref


class EmbedShards(beam.PTransform):
    """``((lang, shard), [Sentence])`` -> ``ShardRef``: encode each shard, store fp16 vectors + metadata."""

    def __init__(self, config: EmbedConfig, work_dir: str, hints: dict[str, str] | None = None, threads: int = 0):
        super().__init__()
        self.config = config
        self.work_dir = work_dir
        self.hints = hints or {}
        self.threads = threads

    def expand(self, shards):
        encode = with_hints(beam.ParDo(_Embed(self.config, self.work_dir, self.threads)), self.hints)
        return shards | "Encode" >> encode.with_outputs(STATS, main="shards")
