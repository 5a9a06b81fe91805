"""Beam stages from sharded sentences to Parquet bitext: EmbedShards, MinePairs, WriteBitext, WriteReport.

Stages hand each other file paths on the run's output filesystem (fp16 embedding shards, Parquet metadata),
never local temp files, so any runner can place them on any worker.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from mining.bitext import BITEXT_SCHEMA, SHARD_META_SCHEMA, parquet_bytes_to_table, table_to_parquet_bytes
from mining.mine import MinedPairs, MiningConfig, mine
from pipelines import storage
from pipelines.config import EmbedConfig
from pipelines.counting import STATS, CountingDoFn, nest_stats
from pipelines.text_stages import _provenance_key

ROWS_PER_FILE = 200_000


class ShardRef(NamedTuple):
    lang: str
    shard_id: int
    size: int
    embeddings: str  # path of the (n, d) float16 .npy
    metadata: str  # path of the Parquet with one row per embedding row


class _Embed(CountingDoFn):
    def __init__(self, config: EmbedConfig, work_dir: str):
        self.config = config
        self.work_dir = work_dir

    def setup(self):
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:  # loaded on first use, so a rerun that skips every shard loads nothing
            from encoders.registry import load_encoder

            kwargs = {"device": self.config.device, "precision": self.config.precision}
            if self.config.max_tokens is not None:
                kwargs["max_tokens"] = self.config.max_tokens
            self._encoder = load_encoder(self.config.encoder, **kwargs)
        return self._encoder

    def process(self, element):
        from mining.text import clean_sentence

        (lang, shard_id), sentences = element
        sentences = sorted(sentences, key=_provenance_key)
        # the shard's name carries a digest of its content and encoder: a rerun on the same data reuses it
        h = hashlib.sha1(self.config.encoder.encode())
        for s in sentences:
            h.update(s.text.encode("utf-8") + b"\0")
        base = storage.join(self.work_dir, "embeddings", lang, f"shard-{shard_id:05d}-{h.hexdigest()[:16]}")
        ref = ShardRef(lang, shard_id, len(sentences), base + ".npy", base + ".parquet")
        if storage.FileSystems.exists(ref.embeddings) and storage.FileSystems.exists(ref.metadata):
            self.count(f"languages/{lang}/embeddings_reused", len(sentences))
            yield ref
            return
        embeddings = self.encoder.encode([clean_sentence(s.text) for s in sentences]).astype(np.float16)  # (n, d)
        meta = pa.table(
            {
                "text": [s.text for s in sentences],
                "url": [s.url for s in sentences],
                "digest": [s.digest for s in sentences],
                "source": [s.source for s in sentences],
                "offset": [int(s.offset) for s in sentences],
                "lid_prob": [float(s.lid_prob) for s in sentences],
            },
            schema=SHARD_META_SCHEMA,
        )
        storage.write_bytes_atomic(ref.metadata, table_to_parquet_bytes(meta))
        storage.write_bytes_atomic(ref.embeddings, storage.npy_bytes(embeddings))
        self.count(f"languages/{lang}/embedded", len(sentences))
        yield ref


class EmbedShards(beam.PTransform):
    """``((lang, shard), [Sentence])`` -> ``ShardRef``: encode each shard, store fp16 vectors + metadata."""

    def __init__(self, config: EmbedConfig, work_dir: str):
        super().__init__()
        self.config = config
        self.work_dir = work_dir

    def expand(self, shards):
        return shards | "Encode" >> beam.ParDo(_Embed(self.config, self.work_dir)).with_outputs(STATS, main="shards")


def pair_name(src: str, tgt: str) -> str:
    return f"{src}-{tgt}"


class _MinePair(CountingDoFn):
    def __init__(self, config: MiningConfig, encoder_name: str, run_id: str):
        self.config = config
        self.encoder_name = encoder_name
        self.run_id = run_id

    def process(self, pair, shards_by_lang):
        src_lang, tgt_lang = pair
        name = pair_name(src_lang, tgt_lang)
        src_refs = sorted(shards_by_lang.get(src_lang, []), key=lambda r: r.shard_id)
        tgt_refs = sorted(shards_by_lang.get(tgt_lang, []), key=lambda r: r.shard_id)
        src_emb = [storage.load_npy(r.embeddings) for r in src_refs]
        tgt_emb = [storage.load_npy(r.embeddings) for r in tgt_refs]
        pairs = mine(src_emb, tgt_emb, self.config) if src_emb and tgt_emb else _no_pairs()
        self.count(f"pairs/{name}", len(pairs))
        src_meta = _ShardRows(src_refs)
        tgt_meta = _ShardRows(tgt_refs)
        for chunk, start in enumerate(range(0, max(len(pairs), 1), ROWS_PER_FILE)):
            sel = slice(start, start + ROWS_PER_FILE)
            table = _bitext_table(
                src_lang, tgt_lang, pairs, sel, src_meta, tgt_meta, self.encoder_name, self.run_id
            )
            yield name, chunk, table


def _no_pairs() -> MinedPairs:
    return MinedPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


class _ShardRows:
    """Looks up sentence metadata by global row id (row ids run over the shards in shard order)."""

    def __init__(self, refs: list[ShardRef]):
        self.refs = refs
        self.offsets = np.cumsum([0] + [r.size for r in refs])
        self.tables = [parquet_bytes_to_table(storage.read_bytes(r.metadata)) for r in refs]

    def take(self, rows: np.ndarray) -> dict[str, list]:
        shard_idx = np.searchsorted(self.offsets, rows, side="right") - 1
        keys = ("text", "url", "digest", "source", "offset", "lid_prob")
        out: dict[str, list] = {k: [None] * len(rows) for k in keys}
        out["shard"] = [None] * len(rows)
        out["row"] = [0] * len(rows)
        for s in np.unique(shard_idx):
            positions = np.flatnonzero(shard_idx == s)
            local = rows[positions] - self.offsets[s]
            taken = self.tables[s].take(pa.array(local)).to_pydict()
            ref = self.refs[s]
            for key, values in taken.items():
                for pos, value in zip(positions, values):
                    out[key][pos] = value
            for pos, row in zip(positions, local):
                out["shard"][pos] = f"{ref.lang}/{ref.shard_id:05d}"
                out["row"][pos] = int(row)
        return out


def _bitext_table(src_lang, tgt_lang, pairs, sel, src_meta, tgt_meta, encoder_name, run_id) -> pa.Table:
    src_rows, tgt_rows = pairs.src[sel], pairs.tgt[sel]
    s = src_meta.take(src_rows) if len(src_rows) else {}
    t = tgt_meta.take(tgt_rows) if len(tgt_rows) else {}
    n = len(src_rows)
    columns = {
        "src_lang": [src_lang] * n,
        "tgt_lang": [tgt_lang] * n,
        "src_text": s.get("text", []),
        "tgt_text": t.get("text", []),
        "score": pairs.score[sel],
        "cosine": pairs.cosine[sel],
        "src_url": s.get("url", []),
        "tgt_url": t.get("url", []),
        "src_digest": s.get("digest", []),
        "tgt_digest": t.get("digest", []),
        "src_source": s.get("source", []),
        "tgt_source": t.get("source", []),
        "src_offset": s.get("offset", []),
        "tgt_offset": t.get("offset", []),
        "src_shard": s.get("shard", []),
        "tgt_shard": t.get("shard", []),
        "src_row": s.get("row", []),
        "tgt_row": t.get("row", []),
        "src_lid_prob": s.get("lid_prob", []),
        "tgt_lid_prob": t.get("lid_prob", []),
        "encoder": [encoder_name] * n,
        "run_id": [run_id] * n,
    }
    return pa.table(columns, schema=BITEXT_SCHEMA)


class MinePairs(beam.PTransform):
    """Language pairs + all ShardRefs -> ``(pair, chunk, pyarrow.Table)``: exact kNN over every shard of the
    other language (global neighbourhoods), margin scoring, retrieval and threshold (``mining.mine``)."""

    def __init__(self, pairs: list[tuple[str, str]], config: MiningConfig, encoder_name: str, run_id: str):
        super().__init__()
        self.pairs = pairs
        self.config = config
        self.encoder_name = encoder_name
        self.run_id = run_id

    def expand(self, shard_refs):
        by_lang = (
            shard_refs
            | "KeyByLanguage" >> beam.Map(lambda ref: (ref.lang, ref))
            | "GroupByLanguage" >> beam.GroupByKey()
            | "ListShards" >> beam.MapTuple(lambda lang, refs: (lang, list(refs)))
        )
        return (
            shard_refs.pipeline
            | "ListPairs" >> beam.Create(self.pairs)
            | "SpreadPairs" >> beam.Reshuffle()
            | "Mine"
            >> beam.ParDo(
                _MinePair(self.config, self.encoder_name, self.run_id), beam.pvalue.AsDict(by_lang)
            ).with_outputs(STATS, main="tables")
        )


class _WriteTable(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, element):
        name, chunk, table = element
        path = storage.join(self.output, "bitext", f"pair={name}", f"part-{chunk:05d}.parquet")
        storage.write_bytes_atomic(path, table_to_parquet_bytes(table))
        yield path


class WriteBitext(beam.PTransform):
    """Writes ``DIR/bitext/pair=L1-L2/part-NNNNN.parquet`` (temporary name, renamed when complete)."""

    def __init__(self, output: str):
        super().__init__()
        self.output = output

    def expand(self, tables):
        return tables | "WriteParquet" >> beam.ParDo(_WriteTable(self.output))


class _WriteReport(beam.DoFn):
    def __init__(self, output: str, settings: dict):
        self.output = output
        self.settings = settings

    def process(self, counts: dict):
        report = {"settings": self.settings, **nest_stats(counts)}
        path = storage.join(self.output, "report.json")
        storage.write_bytes_atomic(path, json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
        yield path


class WriteReport(beam.PTransform):
    """Sums every stage's ``(name, n)`` counts and writes ``DIR/report.json`` with the run's settings."""

    def __init__(self, output: str, settings: dict):
        super().__init__()
        self.output = output
        self.settings = settings

    def expand(self, stats):
        return (
            stats
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "ToDict" >> beam.combiners.ToDict()
            | "Write" >> beam.ParDo(_WriteReport(self.output, self.settings))
        )
