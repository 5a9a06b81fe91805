"""Readers on real and broken files, sentence splitting per script, normalisation, LID, language codes."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections import Counter

import pytest

from conftest import REPO
from mining.languages import language_pairs, parse_language, parse_languages
from mining.readers import read_documents
from mining.text import LanguageIdentifier, normalise_for_dedup, split_sentences

SAMPLE_WET = os.path.join(REPO, "sample", "sample.warc.wet.gz")


def _read(data: bytes, name: str):
    drops: Counter[str] = Counter()
    docs = list(read_documents(io.BytesIO(data), name, lambda reason: drops.update([reason])))
    return docs, drops


def test_wet_sample_reads_every_record():
    with open(SAMPLE_WET, "rb") as f:
        docs, drops = _read(f.read(), "sample.warc.wet.gz")
    assert len(docs) == 19 and not drops
    assert all(d.url.startswith("https://") and d.digest.startswith("sha1:") for d in docs)
    assert {d.url.split("//")[1].split(".")[0] for d in docs} == {"en", "de", "zh"}


def test_truncated_gzip_keeps_what_was_read_and_counts_it():
    with open(SAMPLE_WET, "rb") as f:
        data = f.read()
    docs, drops = _read(data[: len(data) // 2], "broken.warc.wet.gz")
    assert 0 < len(docs) < 19
    assert sum(drops.values()) == 1


def test_jsonl_bad_records_are_skipped_and_counted():
    lines = [
        json.dumps({"url": "u1", "digest": "d1", "raw_content": "Erster Text."}).encode(),
        b"{not json",
        json.dumps({"url": "u2"}).encode(),
        b"\xff\xfe invalid utf8",
        json.dumps({"url": "u3", "text": "Second text."}).encode(),
    ]
    docs, drops = _read(gzip.compress(b"\n".join(lines)), "x.jsonl.gz")
    assert [d.url for d in docs] == ["u1", "u3"]
    assert drops == Counter({"malformed_json": 1, "missing_text_field": 1, "invalid_utf8": 1})


def test_plain_text_documents_are_blank_line_blocks():
    docs, drops = _read(b"line one\nline two\n\nsecond doc\n", "notes.txt")
    assert [d.text for d in docs] == ["line one\nline two", "second doc"]
    assert docs[1].offset == 4 and not drops


@pytest.mark.parametrize(
    "text,expected",
    [
        ("我爱北京。天安门很大！你好吗？", ["我爱北京。", "天安门很大！", "你好吗？"]),
        ("これは文です。次の文です。", ["これは文です。", "次の文です。"]),
        ("สวัสดีครับ วันนี้อากาศดี", ["สวัสดีครับ", "วันนี้อากาศดี"]),
        ("مرحبا بالعالم. كيف حالك اليوم؟ أنا بخير.", ["مرحبا بالعالم.", "كيف حالك اليوم؟", "أنا بخير."]),
        ("Привет всем. Как дела?", ["Привет всем.", "Как дела?"]),
        ("Dr. Smith kam an. Er war müde.\nNeue Zeile", ["Dr. Smith kam an.", "Er war müde.", "Neue Zeile"]),
        ("नमस्ते। आप कैसे हैं?", ["नमस्ते।", "आप कैसे हैं?"]),
    ],
)
def test_split_sentences_by_script(text, expected):
    assert list(split_sentences(text)) == expected


def test_normalise_for_dedup():
    assert normalise_for_dedup("Hello,  WORLD!") == normalise_for_dedup("hello world")
    assert normalise_for_dedup("Ｈｅｌｌｏ") == "hello"
    assert normalise_for_dedup("price 5") != normalise_for_dedup("price 6")


def test_language_identifier():
    lid = LanguageIdentifier()
    assert lid.predict("Das ist ein ganz normaler deutscher Satz über das Wetter.")[0] == "de"
    label, prob = lid.predict("これは日本語の文です。")
    assert label == "ja" and prob > 0.9


def test_language_codes():
    assert parse_language("deu_Latn").lid_label == "de"
    assert parse_language("de").code == "de"
    assert parse_language("zho_Hans").lid_label == "zh"
    with pytest.raises(ValueError, match="unknown language code 'xx'"):
        parse_language("xx")
    with pytest.raises(ValueError, match="twice"):
        parse_languages("de,deu_Latn")
    langs = parse_languages("de,en,fr")
    assert [(a.code, b.code) for a, b in language_pairs(langs)] == [("de", "en"), ("de", "fr"), ("en", "fr")]
    assert [(a.code, b.code) for a, b in language_pairs(langs, pivot="en")] == [("de", "en"), ("en", "fr")]
