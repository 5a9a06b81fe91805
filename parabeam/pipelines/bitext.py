"""The mined-bitext Parquet schema (a fixed contract: the README's "Output" section) and its writer/reader helpers.

One explicit ``pyarrow.schema``: the eight required columns first, then provenance (which document, shard and
row each side came from), the LID confidence of each side, and the encoder and run that produced the pair.
"""

from __future__ import annotations

import pyarrow as pa

BITEXT_SCHEMA = pa.schema(
    [
        ("src_lang", pa.string()),
        ("tgt_lang", pa.string()),
        ("src_text", pa.string()),
        ("tgt_text", pa.string()),
        ("score", pa.float32()),
        ("cosine", pa.float32()),
        ("src_url", pa.string()),
        ("tgt_url", pa.string()),
        ("src_digest", pa.string()),
        ("tgt_digest", pa.string()),
        ("src_source", pa.string()),
        ("tgt_source", pa.string()),
        ("src_offset", pa.int64()),
        ("tgt_offset", pa.int64()),
        ("src_shard", pa.string()),
        ("tgt_shard", pa.string()),
        ("src_row", pa.int64()),
        ("tgt_row", pa.int64()),
        ("src_lid_prob", pa.float32()),
        ("tgt_lid_prob", pa.float32()),
        ("src_copies", pa.int32()),  # how often the side's normalised text occurred in the input
        ("tgt_copies", pa.int32()),
        ("encoder", pa.string()),
        ("run_id", pa.string()),
    ]
)
# ``--keep-candidates``: every retrieval candidate above a low floor, whether the run selected it, and the pair
# filter that dropped it after selection (``parabeam.mining.filters``; null for the others)
CANDIDATE_SCHEMA = BITEXT_SCHEMA.append(pa.field("selected", pa.bool_())).append(pa.field("filter", pa.string()))
REQUIRED_COLUMNS = ("src_lang", "tgt_lang", "src_text", "tgt_text", "score", "cosine", "src_url", "tgt_url")

# Per-shard sentence metadata written next to each embedding shard (row i describes embedding row i).
SHARD_META_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("url", pa.string()),
        ("digest", pa.string()),
        ("source", pa.string()),
        ("offset", pa.int64()),
        ("lid_prob", pa.float32()),
        ("line", pa.int32()),  # line of the document; with part, tells overlapping segments apart
        ("part", pa.int16()),  # mining.text.Segment.part
        ("length", pa.int32()),  # mining.text.text_length (CJK characters count 3), for the length-ratio filter
        ("copies", pa.int32()),  # occurrences of the normalised text in the input (Deduplicate)
    ]
)


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def parquet_bytes_to_table(data: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))
