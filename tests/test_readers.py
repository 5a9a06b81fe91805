"""Readers on real, broken and fuzzed files: every record is read or counted, one bad record costs only itself."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
from collections import Counter

import pytest

from conftest import REPO
from parabeam.pipelines.readers import read_documents
from sample.make_sample import wet_record

SAMPLE_WET = os.path.join(REPO, "sample", "sample.warc.wet.gz")
SAMPLE_JSONL = os.path.join(REPO, "sample", "sample.jsonl.gz")


def _read(data: bytes, name: str):
    events: Counter[str] = Counter()
    docs = list(read_documents(io.BytesIO(data), name, lambda event: events.update([event])))
    return docs, events


def _drops(events: Counter) -> int:
    return sum(n for name, n in events.items() if name.startswith("documents/dropped/"))


def _records(n: int) -> list[bytes]:
    return [wet_record(f"https://example.org/{i}", f"Document number {i}.\nIt has two lines.", "2026-01-01T00:00:00Z")
            for i in range(n)]


def test_wet_sample_reads_every_record():
    with open(SAMPLE_WET, "rb") as f:
        docs, events = _read(f.read(), "sample.warc.wet.gz")
    assert len(docs) == 19 and not events
    assert all(d.url.startswith("https://") and d.digest.startswith("sha1:") for d in docs)
    assert {d.url.split("//")[1].split(".")[0] for d in docs} == {"en", "de", "zh"}


def test_a_malformed_header_costs_one_record():
    records = _records(12)
    records[5] = records[5].replace(b"Content-Type: text/plain\r\n", b"this is not a header line\r\n")
    docs, events = _read(b"".join(records), "x.warc.wet")
    assert [d.url for d in docs] == [f"https://example.org/{i}" for i in range(12) if i != 5]
    assert events == Counter({"documents/dropped/malformed_wet_record": 1})


@pytest.mark.parametrize("delta", [-7, +25, +10_000])
def test_a_wrong_content_length_costs_one_record(delta):
    records = _records(10)
    length = len(b"Document number 6.\nIt has two lines.")
    records[6] = records[6].replace(f"Content-Length: {length}".encode(), f"Content-Length: {length + delta}".encode())
    docs, events = _read(b"".join(records), "x.warc.wet")
    expected = [i for i in range(10) if i != 6] if delta < 10_000 else list(range(6))
    # a length running past the end of the file ends it there (the last records are inside the claimed block)
    assert [d.url for d in docs] == [f"https://example.org/{i}" for i in expected]
    assert _drops(events) == 1, events
    assert all(d.text.startswith("Document number") for d in docs)


def test_garbage_between_records_is_skipped_and_counted_once():
    records = _records(4)
    data = records[0] + b"\x00\x01garbage line\nmore garbage\n" + b"".join(records[1:])
    docs, events = _read(data, "x.warc.wet")
    assert len(docs) == 4 and events == Counter({"documents/dropped/malformed_wet_record": 1})


def test_truncated_gzip_keeps_what_was_read_and_counts_it():
    with open(SAMPLE_WET, "rb") as f:
        data = f.read()
    docs, events = _read(data[: len(data) // 2], "broken.warc.wet.gz")
    assert 0 < len(docs) < 19
    assert events == Counter({"files/truncated": 1})


def test_jsonl_bad_records_are_skipped_and_counted():
    lines = [
        json.dumps({"url": "u1", "digest": "d1", "raw_content": "Erster Text."}).encode(),
        b"{not json",
        json.dumps({"url": "u2"}).encode(),
        b"\xff\xfe\xfa\xfb invalid utf8",
        json.dumps({"url": "u3", "text": "Second text."}).encode(),
        json.dumps({"url": "u4", "text": "Café au lait et croissants."}, ensure_ascii=False).encode()
        .replace("é".encode(), b"\xe9"),  # a Latin-1 byte
    ]
    docs, events = _read(gzip.compress(b"\n".join(lines)), "x.jsonl.gz")
    assert [d.url for d in docs] == ["u1", "u3", "u4"]
    assert docs[2].text == "Caf\ufffd au lait et croissants."  # repaired, kept, counted
    assert events == Counter({"documents/dropped/malformed_json": 1, "documents/dropped/missing_text_field": 1,
                              "documents/dropped/undecodable": 1, "documents/repaired_invalid_utf8": 1})


def test_plain_text_documents_are_blank_line_blocks():
    docs, events = _read(b"line one\r\nline two\n\nsecond doc\n", "notes.txt")
    assert [d.text for d in docs] == ["line one\nline two", "second doc"]
    assert docs[1].offset == 4 and not events


def test_a_binary_file_counts_documents_not_lines():
    rng = random.Random(0)
    blob = bytes(rng.randrange(256) for _ in range(200_000))
    docs, events = _read(blob, "image.txt")
    n_lines = blob.count(b"\n")
    assert docs == [] and 0 < events["documents/dropped/undecodable"] < n_lines / 10
    assert set(events) == {"documents/dropped/undecodable"}


def _mutate(data: bytes, rng: random.Random, n: int) -> tuple[bytes, list[int]]:
    data = bytearray(data)
    where = sorted(rng.randrange(len(data)) for _ in range(n))
    for i in where:
        data[i] = rng.randrange(256)
    return bytes(data), where


def _spans(records: list[bytes]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for r in records:
        spans.append((start, start + len(r)))
        start += len(r)
    return spans


@pytest.mark.parametrize("seed", range(40))
def test_fuzzed_wet_loses_only_damaged_records(seed):
    rng = random.Random(seed)
    records = _records(30)
    data, where = _mutate(b"".join(records), rng, rng.randint(1, 6))
    docs, events = _read(data, "fuzz.warc.wet")  # no exception, whatever the damage
    by_url = {d.url: d for d in docs}
    spans = _spans(records)
    for i, (start, end) in enumerate(spans):
        damaged = any(start <= w < end for w in where)
        # a record is safe when no byte of it changed and the record before it cannot have swallowed it
        # (a damaged header or length before it may claim its bytes)
        previous_damaged = i > 0 and any(spans[i - 1][0] <= w < spans[i - 1][1] for w in where)
        if not damaged and not previous_damaged:
            assert by_url.get(f"https://example.org/{i}") is not None, (i, where, events)
            assert by_url[f"https://example.org/{i}"].text == f"Document number {i}.\nIt has two lines."
    # nothing lost without a count: every record is a document or one of the counted drops
    assert len(docs) + _drops(events) >= 30 - len(where)


@pytest.mark.parametrize("seed", range(20))
def test_fuzzed_jsonl_and_text_read_or_count_every_record(seed):
    rng = random.Random(seed)
    with open(SAMPLE_JSONL, "rb") as f:
        lines = gzip.decompress(f.read()).splitlines(keepends=True)
    data, where = _mutate(b"".join(lines), rng, rng.randint(1, 8))
    docs, events = _read(data, "fuzz.jsonl")
    records = sum(1 for line in data.split(b"\n") if line.strip())
    assert len(docs) + _drops(events) == records  # one record per non-empty line: read or counted
    blocks = b"first block line\nand another\n\nsecond block\n\n" * 50
    data, _ = _mutate(blocks, rng, rng.randint(1, 20))
    docs, events = _read(data, "fuzz.txt")
    assert len(docs) + _drops(events) >= 90


@pytest.mark.parametrize("seed", range(10))
def test_fuzzed_gzip_never_raises(seed):
    rng = random.Random(seed)
    with open(SAMPLE_WET, "rb") as f:
        data, _ = _mutate(f.read(), rng, rng.randint(1, 4))
    docs, events = _read(data, "fuzz.warc.wet.gz")
    assert len(docs) <= 19
    assert events["files/truncated"] <= 1
