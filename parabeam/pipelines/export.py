"""``parabeam export``: mined Parquet -> TSV, Moses line-aligned files, JSON lines. It streams: one Parquet row group
at a time is read and written as it goes, on any Beam filesystem."""

from __future__ import annotations

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


def open_write(path: str):
    return io.TextIOWrapper(FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED),
                            encoding="utf-8", newline="\n")


def _pair_files(output: str, folder: str, pair: str | None) -> dict[str, list[str]]:
    pattern = FileSystems.join(output, folder, f"pair={pair or '*'}", "*.parquet")
    found: dict[str, list[str]] = {}
    for m in FileSystems.match([pattern])[0].metadata_list:
        name = m.path.rstrip("/").rsplit("/", 2)[-2].split("=", 1)[1]
        found.setdefault(name, []).append(m.path)
    return {name: sorted(paths) for name, paths in sorted(found.items())}


def _rows(paths: list[str], min_score: float | None, allow: frozenset[str] | None = None) -> Iterator[dict]:
    """Rows of the Parquet files, one row group at a time, scoring at least ``min_score``. ``allow`` (candidates
    files only): the pair filters whose drops come back; a candidate a filter dropped is left out otherwise, and
    without ``min_score`` a candidate counts only if the run selected it or an allowed filter dropped it."""
    import pyarrow.parquet as pq

    columns = EXPORT_COLUMNS if allow is None else [*EXPORT_COLUMNS, "selected", "filter"]
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = pq.ParquetFile(f)
            for batch in reader.iter_batches(columns=columns):
                for row in batch.to_pylist():
                    if allow is not None:
                        allowed = row["filter"] is not None and row["filter"] in allow
                        if row["filter"] is not None and not allowed:
                            continue
                        if min_score is None and not (row["selected"] or allowed):
                            continue
                    if min_score is None or row["score"] >= min_score:
                        yield row


def clean_field(text: str) -> str:
    """One line of a line-aligned file: no tab or line break inside."""
    return " ".join(text.replace("\t", " ").splitlines())


def export(output: str, fmt: str, path: str, *, pair: str | None = None, min_score: float | None = None,
           allow: tuple[str, ...] = ()) -> dict:
    """Writes the run's pairs in ``fmt``; returns ``{pair: rows written}``. With ``min_score`` and a candidates/
    folder (``--keep-candidates``), the candidates are read, so the threshold can move either way; otherwise
    the selected pairs, so it can only rise. ``allow``: pair filters (``parabeam.mining.filters.RULES``) whose
    drops are put back, from the candidates (the run must have kept them)."""
    from parabeam.mining.filters import RULES

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    unknown = sorted(set(allow) - set(RULES))
    if unknown:
        raise ValueError(f"unknown pair filter(s) {', '.join(unknown)} for --allow; known: {', '.join(RULES)}")
    folder = "bitext"
    has_candidates = bool(_pair_files(output, "candidates", pair))
    if allow and not has_candidates:
        raise FileNotFoundError(f"--allow puts back pairs from {output}/candidates, and there is none: mine with "
                                "--keep-candidates")
    if (min_score is not None or allow) and has_candidates:
        folder = "candidates"
    filters = frozenset(allow) if folder == "candidates" else None
    pairs = _pair_files(output, folder, pair)
    if not pairs:
        raise FileNotFoundError(f"no mined pairs under {output}/{folder}" + (f" for {pair}" if pair else ""))
    log.info("exporting %s from %s/%s", ", ".join(pairs), output, folder)
    written: dict[str, int] = {}
    if fmt == "moses":
        for name, files in pairs.items():
            src_lang, tgt_lang = name.split("-", 1)
            stem = path if len(pairs) == 1 else f"{path}.{name}"
            with open_write(f"{stem}.{src_lang}") as src, open_write(f"{stem}.{tgt_lang}") as tgt:
                n = 0
                for row in _rows(files, min_score, filters):
                    src.write(clean_field(row["src_text"]) + "\n")
                    tgt.write(clean_field(row["tgt_text"]) + "\n")
                    n += 1
            written[name] = n
            progress("exported %s: %d pairs to %s.%s and %s.%s", name, n, stem, src_lang, stem, tgt_lang)
        return written
    with open_write(path) as out:
        if fmt == "tsv":
            out.write("src\ttgt\tscore\tcosine\n")
        for name, files in pairs.items():
            n = 0
            for row in _rows(files, min_score, filters):
                if fmt == "tsv":
                    out.write(f"{clean_field(row['src_text'])}\t{clean_field(row['tgt_text'])}\t{row['score']:.6f}\t"
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
