"""Document readers for CommonCrawl-style inputs: WET (.warc.wet[.gz]), CCNet JSON lines, plain text.

Each reader takes an open binary stream and the file's name and yields ``Document`` records. Nothing is lost
without a count: every event goes to ``on_event(name)`` under the name report.json counts it by:
``documents/dropped/<reason>`` for a record skipped (its neighbours are still read),
``documents/repaired_invalid_utf8`` for a document kept with replacement characters, ``files/truncated`` for a file
that ends in damage.

- WET: a WARC record parser of its own (WARC 1.0/1.1, ISO 28500 sec. 4-5: version line, header fields, blank
  line, ``Content-Length`` bytes of block, two CRLF). A record with a malformed header, a missing or wrong
  Content-Length, or bytes that are not a record, is dropped and counted, and reading resynchronises at the next
  line that starts a record (``WARC/``): one damaged record costs that record, not the rest of the file. Only
  ``conversion`` records (the extracted text) are documents; warcinfo, request, response and metadata records
  are skipped (not documents). gzip (one member per record, as CommonCrawl writes it) is undone by Python's gzip
  module; offsets are byte positions of the record in the decompressed stream.
- A truncated or corrupt gzip file keeps every document read before the damage, counted in ``files/truncated``
  with a warning that says how many documents were read before the cut.
- Text that is not valid UTF-8 is decoded with replacement characters and counted (``repaired_invalid_utf8``);
  a document is dropped (``undecodable``) only when replacement and control characters are more than
  ``UNDECODABLE_SHARE`` of it, which is what a binary file or the wrong encoding gives. A binary file given as
  text therefore counts as a few undecodable documents, not as one drop per line.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal, NamedTuple

Format = Literal["wet", "jsonl", "text"]
EventCallback = Callable[[str], None]
# More than this share of replacement or control characters: not text (a binary file, another encoding)
UNDECODABLE_SHARE = 0.1

log = logging.getLogger("parabeam")


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


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def decode_text(data: bytes, on_event: EventCallback) -> str | None:
    """UTF-8 text of ``data`` (a BOM dropped); invalid bytes replaced and counted; None (counted as dropped) when
    replacement and control characters are more than ``UNDECODABLE_SHARE`` of it."""
    try:
        text = data.decode("utf-8-sig")
        repaired = False
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="replace")
        repaired = True
    if text and len(_CONTROL.findall(text)) > UNDECODABLE_SHARE * len(text):
        on_event("documents/dropped/undecodable")
        return None
    if repaired:
        on_event("documents/repaired_invalid_utf8")
    return text


def _maybe_gunzip(stream: BinaryIO, path: str) -> BinaryIO:
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    if head == b"\x1f\x8b" or path.lower().endswith((".gz", ".gzip")):
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    return stream


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
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
            self.truncated, self.error = True, f"{type(err).__name__}: {err}"
            return 0
        buffer[: len(data)] = data
        return len(data)


def read_documents(stream: BinaryIO, path: str, on_event: EventCallback, fmt: Format | None = None
                   ) -> Iterator[Document]:
    """Every document of one file; see the module docstring for what is counted."""
    fmt = fmt or detect_format(path)
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)  # type: ignore[arg-type]
    guard = _TruncationGuard(_maybe_gunzip(stream, path))
    lines = _Lines(io.BufferedReader(guard, buffer_size=65536), truncated=lambda: guard.truncated)
    reader = {"wet": read_wet, "jsonl": read_jsonl, "text": read_text}[fmt]
    read = 0
    for doc in reader(lines, path, on_event):
        read += 1
        yield doc
    if guard.truncated:
        on_event("files/truncated")
        log.warning("%s: file is truncated or corrupt (%s); %d documents were read before the damage, the rest of "
                    "the file is lost", path, guard.error, read)


class _Lines:
    """A binary stream read by lines or byte counts, that knows its position and can take bytes back."""

    def __init__(self, raw: BinaryIO, truncated: Callable[[], bool] = lambda: False):
        self.raw = raw
        self.pushed = b""
        self.pos = 0
        self.truncated = truncated  # whether the underlying file ended in damage (so far)

    def readline(self) -> bytes:
        if self.pushed:
            end = self.pushed.find(b"\n")
            if end >= 0:
                line, self.pushed = self.pushed[: end + 1], self.pushed[end + 1:]
            else:
                line, self.pushed = self.pushed + self.raw.readline(), b""
        else:
            line = self.raw.readline()
        self.pos += len(line)
        return line

    def read(self, n: int) -> bytes:
        head, self.pushed = self.pushed[:n], self.pushed[n:]
        data = head + (self.raw.read(n - len(head)) if n > len(head) else b"")
        self.pos += len(data)
        return data

    def unread(self, data: bytes) -> None:
        self.pushed = data + self.pushed
        self.pos -= len(data)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


_RECORD_START = re.compile(rb"(?:^|\n)(WARC/1\.[01]\r?\n)")


def _warc_headers(lines: _Lines) -> dict[str, str] | None:
    """Header fields up to the blank line, names lower-cased; None when a line is not a field or the stream ends."""
    headers: dict[str, str] = {}
    while True:
        line = lines.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("utf-8", errors="replace").partition(":")
        if not sep or not name.strip() or " " in name.strip():
            lines.unread(line)  # maybe the next record's start: let the caller resynchronise from it
            return None
        headers[name.strip().lower()] = value.strip()


def read_wet(lines: _Lines, path: str, on_event: EventCallback) -> Iterator[Document]:
    resyncing = False  # inside bytes that are not a record, already counted
    while True:
        line = lines.readline()
        if not line:
            return
        if not line.startswith(b"WARC/1."):
            if line.strip() and not resyncing:
                on_event("documents/dropped/malformed_wet_record")
                resyncing = True
            continue
        resyncing = False
        offset = lines.pos - len(line)
        headers = _warc_headers(lines)
        if headers is None:
            on_event("documents/dropped/malformed_wet_record")
            resyncing = True
            continue
        length = headers.get("content-length", "")
        if not length.isdigit():
            on_event("documents/dropped/bad_content_length")
            resyncing = True
            continue
        block = lines.read(int(length))
        if len(block) < int(length):  # the file ends inside this record (counted once, as truncated or here)
            if not lines.truncated():
                on_event("documents/dropped/malformed_wet_record")
            return
        ending = lines.read(4)
        if not (ending == b"\r\n\r\n" or ending[:2] == b"\n\n" or ending in (b"", b"\r\n", b"\n")):
            # the declared length does not end the record: drop it, then resynchronise at the next record start
            # inside what was read (a length too long) or after it (too short)
            on_event("documents/dropped/bad_content_length")
            rest = block + ending
            found = _RECORD_START.search(rest, 1)
            if found:
                lines.unread(rest[found.start(1):])
            resyncing = True
            continue
        if ending[:2] == b"\n\n":
            lines.unread(ending[2:])
        if headers.get("warc-type") != "conversion":  # warcinfo / request / response records carry no text
            continue
        text = decode_text(block, on_event)
        if text is None:
            continue
        url = headers.get("warc-target-uri", "")
        digest = headers.get("warc-block-digest") or text_digest(text)
        yield Document(text, url, digest, path, offset)


def read_jsonl(lines: _Lines, path: str, on_event: EventCallback) -> Iterator[Document]:
    for line_number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        text_line = decode_text(raw, on_event)
        if text_line is None:
            continue
        try:
            record = json.loads(text_line)
        except json.JSONDecodeError:
            on_event("documents/dropped/malformed_json")
            continue
        text = record.get("raw_content", record.get("text")) if isinstance(record, dict) else None
        if not isinstance(text, str):
            on_event("documents/dropped/missing_text_field")
            continue
        if text and len(_CONTROL.findall(text)) > UNDECODABLE_SHARE * len(text):
            on_event("documents/dropped/undecodable")
            continue
        url = str(record.get("url") or f"{path}#L{line_number}")
        digest = str(record.get("digest") or text_digest(text))
        yield Document(text, url, digest, path, line_number)


def read_text(lines: _Lines, path: str, on_event: EventCallback) -> Iterator[Document]:
    """Plain text: a document is a block of lines separated by a blank line, decoded as a whole."""
    block: list[bytes] = []
    block_start = 1

    def emit():
        text = decode_text(b"".join(block), on_event)
        if text is not None:
            text = "\n".join(line.rstrip("\r") for line in text.split("\n")).strip("\n")
            return Document(text, f"{path}#L{block_start}", text_digest(text), path, block_start)
        return None

    for line_number, raw in enumerate(lines, start=1):
        if raw.strip():
            if not block:
                block_start = line_number
            block.append(raw)
        elif block:
            doc = emit()
            if doc is not None:
                yield doc
            block = []
    if block:
        doc = emit()
        if doc is not None:
            yield doc


