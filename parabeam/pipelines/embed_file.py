"""``parabeam embed``: a text file (one sentence per line, any Beam filesystem) -> an ``.npy`` of its L2-normalised
vectors (float32, or float16 with ``--fp16``), row i for line i; LASER's embed script's everyday job. The encoder
code is the pipeline's (``EmbedShards`` loads encoders the same way); lines are read twice (once to count them, for
the file header and the progress), then encoded and written a chunk at a time, so memory holds one chunk."""

from __future__ import annotations

import io
import time

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.pipelines.storage import create_atomic
from parabeam.progress import progress

CHUNK = 20_000


def _lines(path: str):
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        for line in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
            yield line.rstrip("\r\n")


def embed_file(encoder, source: str, target: str, *, fp16: bool = False, chunk: int = CHUNK) -> tuple[int, int]:
    """Writes ``target`` (.npy); returns ``(rows, dim)``. Empty lines get the vector of an empty text."""
    from parabeam.mining.text import clean_sentence

    n = sum(1 for _ in _lines(source))
    dtype = np.float16 if fp16 else np.float32
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (n, encoder.dim)}
    started, done = time.perf_counter(), 0
    with create_atomic(target) as out:
        np.lib.format.write_array_header_1_0(out, header)
        batch: list[str] = []

        def flush():
            nonlocal done
            vectors = encoder.encode([clean_sentence(t) for t in batch]).astype(dtype)  # (len(batch), dim)
            out.write(np.ascontiguousarray(vectors).tobytes())
            done += len(batch)
            seconds = time.perf_counter() - started
            rate = done / max(seconds, 1e-9)
            left = (n - done) / max(rate, 1e-9)
            progress("embedded %d/%d lines, %.0f/s, %d:%02d left", done, n, rate, left // 60, left % 60)
            batch.clear()

        for line in _lines(source):
            batch.append(line)
            if len(batch) == chunk:
                flush()
        if batch:
            flush()
    return n, encoder.dim
