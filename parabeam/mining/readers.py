"""Document readers for CommonCrawl-style inputs: WET (.warc.wet[.gz]), CCNet JSON lines, plain text.

Each reader takes an open binary stream and the file's name and yields ``Document`` records; a bad record is
reported through ``on_drop(reason)`` and skipped, a broken file ends its iteration with one ``on_drop`` for the
file. WET parsing uses warcio (the Webrecorder project's WARC library) on plain WARC; gzip (one member
per record, as CommonCrawl writes it) is undone by Python's gzip module.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal, NamedTuple

Format = Literal["wet", "jsonl", "text"]
DropCallback = Callable[[str], None]


class Document(NamedTuple):
    text: str
    url: str
    digest: str
    source: str  # the input file
    offset: int  # byte offset of the record (WET), line number (JSONL) or paragraph start line (text)


def detect_format(path: str) -> Format:
    name = path.lower()
    for suffix in (".gz", ".gzip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".wet", ".warc", ".arc")):
        return "wet"
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "jsonl"
    return "text"


def text_digest(text: str) -> str:
    """A content digest for records that carry none (sha1, as CommonCrawl's WARC-Block-Digest)."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def _maybe_gunzip(stream: BinaryIO, path: str) -> BinaryIO:
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    if head == b"\x1f\x8b" or path.lower().endswith((".gz", ".gzip")):
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    return stream


def read_documents(stream: BinaryIO, path: str, on_drop: DropCallback, fmt: Format | None = None) -> Iterator[Document]:
    fmt = fmt or detect_format(path)
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)  # type: ignore[arg-type]
    reader = {"wet": read_wet, "jsonl": read_jsonl, "text": read_text}[fmt]
    try:
        yield from reader(stream, path, on_drop)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        # a truncated or corrupt compressed file: what was read before stays, the rest of the file is lost
        on_drop("truncated_or_corrupt_file")
        _warn(f"{path}: stopped reading, file is truncated or corrupt ({type(err).__name__}: {err})")


def read_wet(stream: BinaryIO, path: str, on_drop: DropCallback) -> Iterator[Document]:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    # gzip is undone here rather than inside warcio so that a truncated member raises EOFError (warcio would
    # end quietly); offsets are then positions in the decompressed stream
    guarded = _TruncationGuard(_maybe_gunzip(stream, path))
    iterator = ArchiveIterator(guarded)
    try:
        for record in iterator:
            if record.rec_type != "conversion":  # warcinfo / request / response records carry no text
                continue
            payload = record.content_stream().read()
            declared = record.rec_headers.get_header("Content-Length")
            if guarded.truncated and declared is not None and len(payload) < int(declared):
                break  # the record the file was cut in
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                on_drop("invalid_utf8")
                continue
            headers = record.rec_headers
            url = headers.get_header("WARC-Target-URI") or ""
            digest = headers.get_header("WARC-Block-Digest") or text_digest(text)
            yield Document(text, url, digest, path, int(iterator.get_record_offset()))
    except ArchiveLoadFailed as err:
        on_drop("malformed_wet_record")
        _warn(f"{path}: stopped reading, malformed WARC/WET record ({err})")
    if guarded.truncated:
        on_drop("truncated_or_corrupt_file")
        _warn(f"{path}: stopped reading, file is truncated or corrupt ({guarded.error})")


class _TruncationGuard(io.RawIOBase):
    """Reads a decompressing stream in small steps and turns a truncation error into end-of-file plus a flag,
    so the records before the damage are still parsed (a reader buffering ahead would lose them)."""

    def __init__(self, stream: BinaryIO, step: int = 4096):
        self.stream = stream
        self.step = step
        self.truncated = False
        self.error = ""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.truncated:
            return 0
        try:
            data = self.stream.read(min(len(buffer), self.step))
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            self.truncated, self.error = True, f"{type(err).__name__}: {err}"
            return 0
        buffer[: len(data)] = data
        return len(data)


def read_jsonl(stream: BinaryIO, path: str, on_drop: DropCallback) -> Iterator[Document]:
    for line_number, raw in enumerate(_maybe_gunzip(stream, path), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            on_drop("invalid_utf8")
            continue
        except json.JSONDecodeError:
            on_drop("malformed_json")
            continue
        text = record.get("raw_content", record.get("text")) if isinstance(record, dict) else None
        if not isinstance(text, str):
            on_drop("missing_text_field")
            continue
        url = str(record.get("url") or f"{path}#L{line_number}")
        digest = str(record.get("digest") or text_digest(text))
        yield Document(text, url, digest, path, line_number)


def read_text(stream: BinaryIO, path: str, on_drop: DropCallback) -> Iterator[Document]:
    """Plain text: a document is a block of lines separated by a blank line."""
    block: list[str] = []
    block_start = 1
    for line_number, raw in enumerate(_maybe_gunzip(stream, path), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            on_drop("invalid_utf8")
            continue
        if line.strip():
            if not block:
                block_start = line_number
            block.append(line)
        elif block:
            text = "\n".join(block)
            yield Document(text, f"{path}#L{block_start}", text_digest(text), path, block_start)
            block = []
    if block:
        text = "\n".join(block)
        yield Document(text, f"{path}#L{block_start}", text_digest(text), path, block_start)


def _warn(message: str) -> None:
    import logging

    logging.getLogger("parabeam").warning(message)
