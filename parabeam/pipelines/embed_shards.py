"""EmbedShards: ``((lang, shard), [Sentence])`` -> ``ShardRef``: each shard encoded (length-sorted token-budget
batches, GPU when present) and stored as fp16 vectors plus a Parquet of the sentences' metadata, under
``OUTPUT/_work/embeddings``. One encoder per worker process (``sharing.SharedResource``).

Both files are named by a digest of everything that determines their content, so a rerun reuses exactly what is
still valid and nothing else: the vectors by the encoder's files (``encoders.registry.encoder_fingerprint``: the
weights' and tokenizer's content, not the spec's name), the device type and precision, the batch budget, the text
cleaning's code and the texts; the metadata by its schema and every value in it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa

from parabeam.mining.text import CLEANING_VERSION, clean_sentence, text_length
from parabeam.pipelines import storage
from parabeam.pipelines.bitext import SHARD_META_SCHEMA, table_to_parquet_bytes
from parabeam.pipelines.config import EmbedConfig
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import ShardRef, provenance_key
from parabeam.pipelines.sharing import SharedResource, limit_threads
from parabeam.pipelines.stage import Run, Stage, tagged

log = logging.getLogger("parabeam")


def load_configured_encoder(config: EmbedConfig):
    from parabeam.encoders.registry import load_encoder

    kwargs = {"device": config.device, "precision": config.precision}
    if config.max_tokens is not None:
        kwargs["max_tokens"] = config.max_tokens
    return load_encoder(config.encoder, **kwargs)


# the metadata files' version: derived from their schema, so a schema change can never reuse an old file
META_VERSION = hashlib.sha256(SHARD_META_SCHEMA.to_string().encode()).hexdigest()[:16]


def vector_settings(config: EmbedConfig) -> str:
    """Everything but the texts that determines a shard's vectors, as a string for cache keys."""
    from parabeam.encoders.base import run_settings
    from parabeam.encoders.registry import encoder_fingerprint

    device, precision = run_settings(config.device, config.precision)
    return json.dumps({"encoder": encoder_fingerprint(config.encoder), "device": device.split(":")[0],
                       "precision": precision, "max_tokens": config.max_tokens,
                       "cleaning": CLEANING_VERSION}, sort_keys=True)


def _meta_row(s) -> tuple:
    return (s.text, s.url, s.digest, s.source, int(s.offset), float(s.lid_prob), int(s.line), int(s.part),
            text_length(s.text), int(s.copies))


class _EmbedProgress:
    """Progress of one shard's encoding: a line every ``every`` seconds with the count, rate and time left."""

    def __init__(self, name: str, started: float, every: float = 15.0):
        self.name, self.started, self.every, self.last = name, started, every, started

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        left = (total - done) / max(rate, 1e-9)
        progress("embedding %s: %d/%d segments, %.0f/s, %d:%02d left", self.name, done, total, rate,
                 left // 60, left % 60)


class _Embed(CountingDoFn):
    def __init__(self, config: EmbedConfig, work_dir: str, threads: int = 0):
        self.config = config
        self.work_dir = work_dir
        self.threads = threads
        self._model = SharedResource()

    def setup(self):
        self._box = None
        limit_threads(self.threads, torch_too=True)
        self._settings = vector_settings(self.config).encode()

    @property
    def encoder(self):
        if self._box is None:  # loaded on first use, so a rerun that skips every shard loads nothing
            config = self.config
            self._box = self._model.acquire(lambda: load_configured_encoder(config), tag=repr(config))
        return self._box.value

    def process(self, element):
        (lang, shard_id), sentences = element
        sentences = sorted(sentences, key=provenance_key)
        vectors, meta = hashlib.sha256(self._settings), hashlib.sha256(META_VERSION.encode())
        for s in sentences:
            vectors.update(s.text.encode("utf-8") + b"\0")
            meta.update(repr(_meta_row(s)).encode("utf-8") + b"\0")
        folder = storage.join(self.work_dir, "embeddings", lang)
        ref = ShardRef(lang, shard_id, len(sentences),
                       storage.join(folder, f"shard-{shard_id:05d}-{vectors.hexdigest()[:20]}.npy"),
                       storage.join(folder, f"shard-{shard_id:05d}-{meta.hexdigest()[:20]}.parquet"))
        if not storage.FileSystems.exists(ref.metadata):
            storage.write_bytes_atomic(ref.metadata, table_to_parquet_bytes(_meta_table(sentences)))
        if storage.FileSystems.exists(ref.embeddings):
            self.count(f"languages/{lang}/embeddings_reused", len(sentences))
            yield ref
            return
        started = time.perf_counter()
        report = _EmbedProgress(f"{lang} shard {shard_id}", started)
        with self.timed():
            encoder = self.encoder
            texts = [clean_sentence(s.text) for s in sentences]
            embeddings = encoder.encode(texts, progress=report).astype(np.float16)  # (n, d)
            storage.write_bytes_atomic(ref.embeddings, storage.npy_bytes(embeddings))
        seconds = time.perf_counter() - started
        progress("embedded %s shard %d: %d segments in %.1f s (%.0f/s)", lang, shard_id, len(sentences), seconds,
                 len(sentences) / max(seconds, 1e-9))
        self.count(f"languages/{lang}/embedded", len(sentences))
        yield ref


def _meta_table(sentences) -> pa.Table:
    rows = [_meta_row(s) for s in sentences]
    return pa.table({name: [r[i] for r in rows] for i, name in enumerate(SHARD_META_SCHEMA.names)},
                    schema=SHARD_META_SCHEMA)


class EmbedShards(Stage):
    """``((lang, shard), [Sentence])`` -> ``ShardRef``: encode each shard, store fp16 vectors + metadata."""

    inputs = ("shards",)
    outputs = ("embedded", STATS)
    timing = "embed"

    def __init__(self, config: EmbedConfig, work_dir: str, hints: dict[str, str] | None = None, threads: int = 0,
                 earlier: tuple[ShardRef, ...] = ()):
        super().__init__(hints)
        self.config = config
        self.work_dir = work_dir
        self.threads = threads
        self.earlier = earlier

    @classmethod
    def for_run(cls, run: Run) -> EmbedShards:
        earlier = tuple(ref for ref in run.earlier.shards if ref.lang in run.mined_languages)
        return cls(run.config.embed, run.work, cls.run_hints(run), run.config.cpu_threads, earlier)

    def expand(self, shards):
        encode = self.pardo(_Embed(self.config, self.work_dir, self.threads), hinted=True)
        out = tagged(shards | "Encode" >> encode.with_outputs(STATS, main="embedded"), "embedded", STATS)
        if self.earlier:  # --since: the earlier runs' shards join the new ones (parabeam.pipelines.earlier)
            earlier = shards.pipeline | "EarlierShards" >> beam.Create(list(self.earlier))
            counts = earlier | "CountEarlier" >> beam.Map(lambda ref: (f"languages/{ref.lang}/from_earlier_runs",
                                                                      ref.size))
            out = {"embedded": (out["embedded"], earlier) | "WithEarlier" >> beam.Flatten(),
                   STATS: (out[STATS], counts) | "AllCounts" >> beam.Flatten()}
        return out
