"""``parabeam score``: margins of pairs one already has (filtering a bitext). It reads its inputs whole: it must
embed every sentence to find neighbourhoods."""

from __future__ import annotations

import csv
import io

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.pipelines.export import clean_field, open_write
from parabeam.progress import progress


def read_pairs(src: str | None, tgt: str | None, table: str | None) -> tuple[list[str], list[str]]:
    """Pairs to score: two line-aligned text files, or one TSV (with a header naming src and tgt columns) or
    Parquet file (columns src and tgt, or src_text and tgt_text)."""
    if table is not None:
        if table.endswith(".parquet"):
            import pyarrow.parquet as pq

            with FileSystems.open(table, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                data = pq.read_table(f)
            names = data.column_names
            s, t = ("src", "tgt") if "src" in names else ("src_text", "tgt_text")
            if s not in names or t not in names:
                raise ValueError(f"{table}: needs columns src and tgt (or src_text and tgt_text); has {names}")
            return data.column(s).to_pylist(), data.column(t).to_pylist()
        with FileSystems.open(table, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE)
            if not reader.fieldnames or "src" not in reader.fieldnames or "tgt" not in reader.fieldnames:
                raise ValueError(f"{table}: a TSV needs a header line naming its src and tgt columns")
            rows = list(reader)
        return [r["src"] for r in rows], [r["tgt"] for r in rows]
    if src is None or tgt is None:
        raise ValueError("give --src and --tgt (line-aligned files), or --pairs FILE (TSV or Parquet)")
    sides = []
    for path in (src, tgt):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            sides.append([line.rstrip("\r\n") for line in io.TextIOWrapper(f, encoding="utf-8")])
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"{src} has {len(sides[0])} lines but {tgt} has {len(sides[1])}")
    return sides[0], sides[1]


def read_lines(path: str) -> list[str]:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return [line.strip() for line in io.TextIOWrapper(f, encoding="utf-8") if line.strip()]


def score_pairs(src: list[str], tgt: list[str], output: str, *, encoder, k: int, margin: str,
                reference: tuple[str, str] | None = None) -> int:
    """Writes ``score, cosine, src, tgt`` (TSV with a header) for every pair, in input order; returns the count."""
    from parabeam.mining.pair_scores import pair_margins
    from parabeam.mining.text import clean_sentence

    if not src:
        raise ValueError("no pairs to score")
    x = encoder.encode([clean_sentence(s) for s in src])
    y = encoder.encode([clean_sentence(t) for t in tgt])
    x_ref = y_ref = None
    if reference is not None:
        x_ref = encoder.encode([clean_sentence(s) for s in read_lines(reference[0])])
        y_ref = encoder.encode([clean_sentence(t) for t in read_lines(reference[1])])
    scores, cosines = pair_margins(x, y, k=k, margin=margin, x_reference=x_ref, y_reference=y_ref)
    with open_write(output) as out:
        out.write("score\tcosine\tsrc\ttgt\n")
        for s, c, a, b in zip(scores, cosines, src, tgt):
            out.write(f"{s:.6f}\t{c:.6f}\t{clean_field(a)}\t{clean_field(b)}\n")
    progress("scored %d pairs -> %s", len(src), output)
    return len(src)
