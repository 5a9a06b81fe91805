"""``parabeam export`` (mined Parquet -> TSV, Moses line-aligned files, JSON lines) and ``parabeam score`` (margins of
pairs one already has). Both stream: export reads one Parquet row group at a time and writes as it goes, on any
Beam filesystem; score reads its inputs whole (it must embed every sentence to find neighbourhoods)."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.progress import progress

log = logging.getLogger("parabeam")
FORMATS = ("tsv", "moses", "jsonl")
EXPORT_COLUMNS = ["src_lang", "tgt_lang", "src_text", "tgt_text", "score", "cosine", "src_url", "tgt_url"]


def _open_write(path: str):
    return io.TextIOWrapper(FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED),
                            encoding="utf-8", newline="\n")


def _pair_files(output: str, folder: str, pair: str | None) -> dict[str, list[str]]:
    pattern = FileSystems.join(output, folder, f"pair={pair or '*'}", "*.parquet")
    found: dict[str, list[str]] = {}
    for m in FileSystems.match([pattern])[0].metadata_list:
        name = m.path.rstrip("/").rsplit("/", 2)[-2].split("=", 1)[1]
        found.setdefault(name, []).append(m.path)
    return {name: sorted(paths) for name, paths in sorted(found.items())}


def _rows(paths: list[str], min_score: float | None) -> Iterator[dict]:
    """Rows of the Parquet files, one row group at a time, scoring at least ``min_score``."""
    import pyarrow.parquet as pq

    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = pq.ParquetFile(f)
            for batch in reader.iter_batches(columns=EXPORT_COLUMNS):
                for row in batch.to_pylist():
                    if min_score is None or row["score"] >= min_score:
                        yield row


def _clean(text: str) -> str:
    """One line of a line-aligned file: no tab or line break inside."""
    return " ".join(text.replace("\t", " ").splitlines())


def export(output: str, fmt: str, path: str, *, pair: str | None = None, min_score: float | None = None) -> dict:
    """Writes the run's pairs in ``fmt``; returns ``{pair: rows written}``. With ``min_score`` and a candidates/
    folder (``--keep-candidates``), the candidates are read, so the threshold can move either way; otherwise
    the selected pairs, so it can only rise."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    folder = "bitext"
    if min_score is not None and _pair_files(output, "candidates", pair):
        folder = "candidates"
    pairs = _pair_files(output, folder, pair)
    if not pairs:
        raise FileNotFoundError(f"no mined pairs under {output}/{folder}" + (f" for {pair}" if pair else ""))
    log.info("exporting %s from %s/%s", ", ".join(pairs), output, folder)
    written: dict[str, int] = {}
    if fmt == "moses":
        for name, files in pairs.items():
            src_lang, tgt_lang = name.split("-", 1)
            stem = path if len(pairs) == 1 else f"{path}.{name}"
            with _open_write(f"{stem}.{src_lang}") as src, _open_write(f"{stem}.{tgt_lang}") as tgt:
                n = 0
                for row in _rows(files, min_score):
                    src.write(_clean(row["src_text"]) + "\n")
                    tgt.write(_clean(row["tgt_text"]) + "\n")
                    n += 1
            written[name] = n
            progress("exported %s: %d pairs to %s.%s and %s.%s", name, n, stem, src_lang, stem, tgt_lang)
        return written
    with _open_write(path) as out:
        if fmt == "tsv":
            out.write("src\ttgt\tscore\tcosine\n")
        for name, files in pairs.items():
            n = 0
            for row in _rows(files, min_score):
                if fmt == "tsv":
                    out.write(f"{_clean(row['src_text'])}\t{_clean(row['tgt_text'])}\t{row['score']:.6f}\t"
                              f"{row['cosine']:.6f}\n")
                else:
                    out.write(json.dumps({"src_lang": row["src_lang"], "tgt_lang": row["tgt_lang"],
                                          "src": row["src_text"], "tgt": row["tgt_text"],
                                          "score": round(row["score"], 6), "cosine": round(row["cosine"], 6),
                                          "src_url": row["src_url"], "tgt_url": row["tgt_url"]},
                                         ensure_ascii=False) + "\n")
                n += 1
            written[name] = n
    progress("exported %s to %s", ", ".join(f"{name}: {n} pairs" for name, n in written.items()), path)
    return written


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
    with _open_write(output) as out:
        out.write("score\tcosine\tsrc\ttgt\n")
        for s, c, a, b in zip(scores, cosines, src, tgt):
            out.write(f"{s:.6f}\t{c:.6f}\t{_clean(a)}\t{_clean(b)}\n")
    progress("scored %d pairs -> %s", len(src), output)
    return len(src)
