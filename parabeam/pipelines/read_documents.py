"""ReadDocuments: input files -> ``Document`` records (WET, CCNet JSON lines or plain text, plain or gzip).

The parsing is ``parabeam.pipelines.readers``; a bad record or file is counted by reason and skipped.
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.readers import read_documents
from parabeam.pipelines.stage import Run, Stage, tagged

log = logging.getLogger("parabeam")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Every file the patterns match, on any Beam filesystem; a clear error for a pattern matching nothing."""
    import os

    paths: list[str] = []
    for pattern in patterns:
        if "://" not in pattern and os.path.isdir(pattern):
            raise ValueError(f"input {pattern} is a folder; give a glob of files, e.g. {os.path.join(pattern, '*.gz')}")
        try:
            result = FileSystems.match([pattern])[0]
        except Exception as err:  # Beam raises BeamIOError for unreachable or malformed paths
            raise FileNotFoundError(f"cannot list input {pattern!r}: {err}") from err
        matched = sorted(m.path for m in result.metadata_list if m.size_in_bytes is None or m.size_in_bytes >= 0)
        folders = [m for m in matched if m.endswith("/") or ("://" not in m and os.path.isdir(m))]
        if folders:
            raise ValueError(f"input {pattern!r} matches folder(s) {folders[:3]}; give a glob of files")
        if not matched:
            raise FileNotFoundError(f"input {pattern!r} matches no file")
        paths.extend(matched)
    return sorted(set(paths))


class _ReadFile(CountingDoFn):
    """Counts, so that every stage balances: files ``in`` = ``read`` + ``dropped``; documents ``in`` (records
    met) = ``out`` (passed on) + ``dropped`` by reason."""

    def _event(self, name: str) -> None:
        self.count(name)
        if name.startswith("documents/dropped/"):
            self.count("documents/in")
        elif name == "files/truncated":  # what the damaged file still gave, for report.json
            self.count("documents/read_from_truncated_files", self._read)

    def process(self, path: str):
        self.count("files/in")
        try:
            stream = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as err:  # unreadable file: counted and reported, the run goes on with the others
            self.count("files/dropped/unreadable")
            log.warning("cannot open %s: %s", path, err)
            return
        self.count("files/read")
        self._read = 0
        with stream:
            for doc in self.timed_iter(read_documents(stream, path, self._event)):
                self._read += 1
                self.count("documents/in")
                self.count("documents/out")
                yield doc


class ReadDocuments(Stage):
    """File paths -> ``Document`` records (WET, CCNet JSONL or plain text, plain or gzip)."""

    outputs = ("documents", STATS)
    timing = "read"

    def __init__(self, paths: list[str]):
        super().__init__()
        self.paths = paths

    @classmethod
    def for_run(cls, run: Run) -> ReadDocuments:
        return cls(run.paths)

    def expand(self, pbegin):
        return tagged(
            pbegin
            | "ListFiles" >> beam.Create(self.paths)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ParseFiles" >> self.pardo(_ReadFile()).with_outputs(STATS, main="documents"),
            "documents", STATS)
