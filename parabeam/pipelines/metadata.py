"""Reading the sentence metadata stored beside each embedding shard, a few columns at a time.

Row ids run over a language's shards in index order (``records.IndexRef``). Selection needs only each row's
line and part (``segments``); the writer needs the text and provenance of the rows it writes
(``write_bitext``); gold calibration needs the text of its candidates (``take_columns``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from parabeam.mining.passes import Segments
from parabeam.pipelines import storage
from parabeam.pipelines.records import IndexRef


def read_columns(path: str, columns: list[str]) -> pa.Table:
    """Only ``columns`` of a shard's metadata Parquet (a seekable stream reads only their column chunks)."""
    import pyarrow.parquet as pq

    with storage.FileSystems.open(path, compression_type=storage.CompressionTypes.UNCOMPRESSED) as f:
        if getattr(f, "seekable", lambda: False)():
            return pq.read_table(f, columns=columns)
        return pq.read_table(pa.BufferReader(f.read()), columns=columns)


def segments(ref: IndexRef) -> Segments:
    """Every row's line (file, document offset, line), part and length, for one language, columnar."""
    files: dict[str, int] = {}
    keys, parts, lengths = [], [], []
    for shard in ref.shards:
        table = read_columns(shard.metadata, ["source", "offset", "line", "part", "length"])
        source = table.column("source").combine_chunks().dictionary_encode()
        file_ids = np.array([files.setdefault(v, len(files)) for v in source.dictionary.to_pylist()], np.int64)
        indices = source.indices.to_numpy(zero_copy_only=False)
        keys.append(np.stack([
            file_ids[indices] if len(file_ids) else np.zeros(0, np.int64),
            table.column("offset").to_numpy().astype(np.int64),
            table.column("line").to_numpy().astype(np.int64),
        ], axis=1))
        parts.append(table.column("part").to_numpy().astype(np.int64))
        lengths.append(table.column("length").to_numpy().astype(np.int64))
    if not keys:
        return Segments.whole_lines(0)
    return Segments.from_keys(np.concatenate(keys), np.concatenate(parts), np.concatenate(lengths))


def locate(ref: IndexRef, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Global ``rows`` by shard: ``(shard index, positions in rows, local rows in the shard)`` per shard used."""
    rows = np.asarray(rows, dtype=np.int64)
    offsets = ref.offsets()
    shard_idx = np.searchsorted(offsets, rows, side="right") - 1
    out = []
    for s in np.unique(shard_idx):
        positions = np.flatnonzero(shard_idx == s)
        out.append((int(s), positions, rows[positions] - offsets[s]))
    return out


def take_columns(ref: IndexRef, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """``columns`` of global ``rows``, in the order of ``rows``."""
    parts, order = [], []
    for s, positions, local in locate(ref, rows):
        parts.append(read_columns(ref.shards[s].metadata, columns).take(pa.array(local)))
        order.append(positions)
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    table = pa.concat_tables(parts)
    return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
