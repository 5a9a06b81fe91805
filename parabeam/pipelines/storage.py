"""Small helpers over Beam's FileSystems so every stage works on local disk, gs://, s3:// or hdfs:// alike."""

from __future__ import annotations

import contextlib
import io
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


@contextlib.contextmanager
def create_atomic(path: str):
    """A binary stream to a temporary name beside ``path``, renamed to ``path`` when the block completes (and
    removed if it fails), so readers never see half a file."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield f
    except BaseException:
        try:
            FileSystems.delete([tmp])
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_bytes_atomic(path: str, data: bytes) -> None:
    with create_atomic(path) as f:
        f.write(data)


class _CountingWriter:
    """A write-only stream that knows its position: Parquet's writer asks for it, and not every Beam filesystem's
    upload stream can tell."""

    def __init__(self, raw):
        self.raw = raw
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        self.raw.write(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True


def write_parquet_atomic(path: str, table, rows_per_group: int) -> None:
    """``table`` as Parquet (zstd) at ``path``, streamed row group by row group to a temporary name beside it,
    renamed when complete."""
    import pyarrow.parquet as pq

    with create_atomic(path) as f:
        with pq.ParquetWriter(_CountingWriter(f), table.schema, compression="zstd") as writer:
            for start in range(0, max(table.num_rows, 1), rows_per_group):
                writer.write_table(table.slice(start, rows_per_group))


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def load_npy(path: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)


def npy_shape(path: str) -> tuple[int, ...]:
    """The array shape from a .npy header, reading only the header's bytes."""
    fmt = np.lib.format
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            return fmt.read_array_header_1_0(f)[0]
        if version == (2, 0):
            return fmt.read_array_header_2_0(f)[0]
    return load_npy(path).shape  # a format version without a public header reader


def delete_matching(pattern: str) -> int:
    """Delete every file matching ``pattern``; returns how many."""
    matches = FileSystems.match([pattern])[0].metadata_list
    if matches:
        FileSystems.delete([m.path for m in matches])
    return len(matches)


class StorageDoFn(beam.DoFn):
    """A DoFn that reads or writes through ``FileSystems``: it carries the launching pipeline's options to the
    worker. Remote filesystems read their settings (S3 endpoint and keys, GCS project) from options that Beam
    installs per process, and not every worker installs them (an external worker pool's SDK harness does not),
    so the options travel inside the pickled DoFn: captured when the DoFn is serialised on the launcher,
    installed when it is deserialised on the worker."""

    def __getstate__(self):
        state = dict(self.__dict__)
        options = getattr(FileSystems, "_pipeline_options", None)
        state["_filesystem_options"] = options.get_all_options(drop_default=True) if options is not None else None
        return state

    def __setstate__(self, state):
        state = dict(state)
        flags = state.pop("_filesystem_options", None)
        self.__dict__.update(state)
        if flags is not None:
            FileSystems.set_options(PipelineOptions.from_dictionary(flags))
