"""WriteBitext: each pair's final pairs -> ``OUTPUT/bitext/pair=L1-L2/part-NNNNN.parquet`` (and with
``--keep-candidates`` every candidate, with a ``selected`` column, -> ``OUTPUT/candidates/pair=L1-L2/``).

The pairs hold row ids; the text and provenance come from the shards' metadata through a keyed join: the rows
each output file needs are grouped by shard, each shard's metadata is read once (only the columns written), and
the rows go back to their file, which is assembled columnar and written row group by row group under a
temporary name, renamed when complete."""

from __future__ import annotations

import math
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from parabeam.pipelines import metadata, storage
from parabeam.pipelines.bitext import BITEXT_SCHEMA, CANDIDATE_SCHEMA
from parabeam.pipelines.counting import STATS, CountingDoFn, progress
from parabeam.pipelines.records import pair_name
from parabeam.pipelines.stage import Run, Stage, tagged

ROWS_PER_FILE = 200_000
ROWS_PER_GROUP = 50_000
# metadata columns written for each side (as src_<name> / tgt_<name>)
SIDE_COLUMNS = ["text", "url", "digest", "source", "offset", "lid_prob", "copies"]
SCORES = "scores"


class Lookup(NamedTuple):
    """Rows one output file needs from one shard."""

    pair: str
    chunk: int
    side: str  # "src" | "tgt"
    positions: np.ndarray  # (m,) int64: rows of the output file
    rows: np.ndarray  # (m,) int64: rows in the shard
    shard: str  # "lang/NNNNN", the output's shard column


class FilePart(NamedTuple):
    """What an output file gets from one place: its scores, or one side's rows from one shard."""

    kind: str  # SCORES | "src" | "tgt"
    scores: tuple[np.ndarray, np.ndarray, dict] | None = None  # (n,) float32 margin and cosine, extra columns
    lookup: Lookup | None = None
    table: pa.Table | None = None  # SIDE_COLUMNS of lookup.rows


def _plan(element, indexes, pairs: dict[str, tuple[str, str]]):
    """(pair, MinedPairs, extra columns) -> one ``(shard metadata path, Lookup)`` per file, side and shard, and the
    file's scores (with its slice of the extra columns)."""
    name, found, extra = element
    src_lang, tgt_lang = pairs[name]
    for chunk in range(max(1, math.ceil(len(found) / ROWS_PER_FILE))):
        sel = slice(chunk * ROWS_PER_FILE, (chunk + 1) * ROWS_PER_FILE)
        columns = {key: np.asarray(values)[sel] for key, values in extra.items()}
        yield beam.pvalue.TaggedOutput(SCORES, ((name, chunk), FilePart(SCORES, scores=(found.score[sel],
                                                                                   found.cosine[sel], columns))))
        for side, lang, rows in (("src", src_lang, found.src[sel]), ("tgt", tgt_lang, found.tgt[sel])):
            ref = indexes[lang]
            for s, positions, local in metadata.locate(ref, rows):
                shard = ref.shards[s]
                yield shard.metadata, Lookup(name, chunk, side, positions, local, f"{lang}/{shard.shard_id:05d}")


class _ReadRows(storage.StorageDoFn):
    """One shard's metadata, read once, for every file that needs rows of it."""

    def process(self, element):
        path, lookups = element
        table = metadata.read_columns(path, SIDE_COLUMNS)
        for lk in lookups:
            yield (lk.pair, lk.chunk), FilePart(lk.side, lookup=lk, table=table.take(pa.array(lk.rows)))


def _side_columns(parts: list[FilePart], side: str, n: int) -> dict[str, pa.Array]:
    """Columns ``<side>_<name>`` of one output file from its parts, in file order."""
    mine = [p for p in parts if p.kind == side]
    positions = np.concatenate([p.lookup.positions for p in mine]) if mine else np.zeros(0, np.int64)
    if len(positions) != n or not np.array_equal(np.sort(positions), np.arange(n)):
        raise RuntimeError(f"the {side} side of an output file got {len(positions)} rows for {n} pairs")
    if not mine:
        return {f"{side}_{name}": pa.array([], BITEXT_SCHEMA.field(f"{side}_{name}").type)
                for name in [*SIDE_COLUMNS, "shard", "row"]}
    order = pa.array(np.argsort(positions, kind="stable"))
    table = pa.concat_tables([p.table for p in mine]).take(order)
    columns = {f"{side}_{name}": table.column(name) for name in SIDE_COLUMNS}
    shards = np.concatenate([np.full(len(p.lookup.rows), p.lookup.shard, dtype=object) for p in mine])
    columns[f"{side}_shard"] = pa.array(shards, pa.string()).take(order)
    columns[f"{side}_row"] = pa.array(np.concatenate([p.lookup.rows for p in mine]), pa.int64()).take(order)
    return columns


class _WriteFile(CountingDoFn):
    def __init__(self, output: str, pairs: dict[str, tuple[str, str]], encoder_name: str, run_id: str, folder: str,
                 schema: pa.Schema):
        self.output = output
        self.pairs = pairs
        self.encoder_name = encoder_name
        self.run_id = run_id
        self.folder = folder
        self.schema = schema

    def process(self, element):
        with self.timed():
            path, n = self._write(element)
        progress("wrote %s/%s (%d rows)", self.folder, path.split(f"/{self.folder}/", 1)[-1], n)
        yield path

    def _write(self, element):
        (name, chunk), parts = element
        parts = list(parts)
        score, cosine, extra = next(p.scores for p in parts if p.kind == SCORES)
        n = len(score)
        src_lang, tgt_lang = self.pairs[name]
        columns = {"src_lang": pa.array([src_lang] * n, pa.string()), "tgt_lang": pa.array([tgt_lang] * n, pa.string()),
                   "score": pa.array(score, pa.float32()), "cosine": pa.array(cosine, pa.float32()),
                   "encoder": pa.array([self.encoder_name] * n, pa.string()),
                   "run_id": pa.array([self.run_id] * n, pa.string())}
        columns.update(_side_columns(parts, "src", n))
        columns.update(_side_columns(parts, "tgt", n))
        columns.update({key: pa.array(values) for key, values in extra.items()})
        table = pa.table({f.name: columns[f.name].cast(f.type) for f in self.schema}, schema=self.schema)
        path = storage.join(self.output, self.folder, f"pair={name}", f"part-{chunk:05d}.parquet")
        storage.write_parquet_atomic(path, table, ROWS_PER_GROUP)
        return path, n


class WriteBitext(Stage):
    """``((pair, MinedPairs, extra columns), indexes)`` -> written file paths (and counts)."""

    inputs = ("filtered", "indexes")
    outputs = ("files", STATS)
    timing = "write"
    folder = "bitext"
    schema = BITEXT_SCHEMA

    def __init__(self, output: str, pairs: list[tuple[str, str]], encoder_name: str, run_id: str):
        super().__init__()
        self.output = output
        self.pairs = {pair_name(a, b): (a, b) for a, b in pairs}
        self.encoder_name = encoder_name
        self.run_id = run_id

    @classmethod
    def for_run(cls, run: Run) -> WriteBitext:
        return cls(run.output, run.pairs, run.config.embed.encoder, run.run_id)

    def expand(self, inputs):
        found, indexes = inputs
        planned = found | "PlanLookups" >> beam.FlatMap(_plan, beam.pvalue.AsDict(indexes), self.pairs).with_outputs(
            SCORES, main="lookups")
        rows = (
            planned.lookups
            | "GroupByShard" >> beam.GroupByKey()
            | "ReadRows" >> beam.ParDo(_ReadRows())
        )
        main = self.outputs[0]
        return tagged(
            (rows, planned[SCORES])
            | "BothParts" >> beam.Flatten()
            | "GroupByFile" >> beam.GroupByKey()
            | "WriteParquet" >> self.pardo(_WriteFile(self.output, self.pairs, self.encoder_name, self.run_id,
                                                      self.folder, self.schema)).with_outputs(STATS, main=main),
            main, STATS)


class WriteCandidates(WriteBitext):
    """With --keep-candidates: every candidate above the floor, with its ``selected`` flag, to
    ``OUTPUT/candidates/``."""

    inputs = ("filtered_candidates", "indexes")
    outputs = ("candidate_files", STATS)
    folder = "candidates"
    schema = CANDIDATE_SCHEMA

    @classmethod
    def enabled(cls, run: Run) -> bool:
        return run.config.keep_candidates
