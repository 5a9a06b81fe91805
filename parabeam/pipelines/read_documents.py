"""ReadDocuments: input files -> ``Document`` records (WET, CCNet JSON lines or plain text, plain or gzip).

The parsing is ``parabeam.mining.readers``; a bad record or file is counted by reason and skipped.
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.mining.readers import read_documents
from parabeam.pipelines.counting import STATS, CountingDoFn

log = logging.getLogger("parabeam")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Every file the patterns match, on any Beam filesystem; a clear error for a pattern matching nothing."""
    paths: list[str] = []
    for pattern in patterns:
        try:
            result = FileSystems.match([pattern])[0]
        except Exception as err:  # Beam raises BeamIOError for unreachable or malformed paths
            raise FileNotFoundError(f"cannot list input {pattern!r}: {err}") from err
        matched = sorted(m.path for m in result.metadata_list if m.size_in_bytes is None or m.size_in_bytes >= 0)
        if not matched:
            raise FileNotFoundError(f"input {pattern!r} matches no file")
        paths.extend(matched)
    return sorted(set(paths))


class _ReadFile(CountingDoFn):
    def process(self, path: str):
        self.count("files/in")
        try:
            stream = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as err:  # unreadable file: counted and reported, the run goes on with the others
            self.count("files/dropped/unreadable")
            log.warning("cannot open %s: %s", path, err)
            return
        with stream:
            for doc in read_documents(stream, path, lambda reason: self.count(f"documents/dropped/{reason}")):
                self.count("documents/in")
                yield doc


class ReadDocuments(beam.PTransform):
    """File paths -> ``Document`` records (WET, CCNet JSONL or plain text, plain or gzip)."""

    def __init__(self, paths: list[str]):
        super().__init__()
        self.paths = paths

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self.paths)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ParseFiles" >> beam.ParDo(_ReadFile()).with_outputs(STATS, main="documents")
        )
