"""Beam stages from input files to deduplicated, sharded sentences: ReadDocuments, SplitSentences,
IdentifyLanguage, Deduplicate, Shard. DoFns stay thin; the work is in ``mining.readers`` and ``mining.text``."""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parabeam.mining.languages import Language, close_varieties, code_by_lid_label, fold_aliases
from parabeam.mining.readers import Document, read_documents
from parabeam.mining.text import (
    WHOLE_MULTI_SENTENCE_LINE,
    clean_sentence,
    decide_language,
    normalise_for_dedup,
    shared_language_identifier,
    split_segments,
    text_length,
)
from parabeam.pipelines.config import TextConfig
from parabeam.pipelines.counting import STATS, CountingDoFn


class Sentence(NamedTuple):
    text: str  # as it appeared in the document (stripped)
    url: str
    digest: str  # document digest
    source: str
    offset: int  # document offset in its file
    position: int  # sentence index within the document
    lid_label: str = ""
    lid_prob: float = 0.0
    doc_lid_label: str = ""  # the document's language by the LID, for the fallback in IdentifyLanguage
    doc_lid_prob: float = 0.0
    line: int = 0  # line of the document the segment is from
    part: int = -1  # mining.text.Segment.part: a whole line (-1, -2 when it holds several sentences) or a sentence


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
            import logging

            logging.getLogger("parabeam").warning("cannot open %s: %s", path, err)
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


class _Split(CountingDoFn):
    def __init__(self, config: TextConfig):
        self.config = config

    def setup(self):
        self.lid = shared_language_identifier() if self.config.doc_lid_threshold <= 1.0 else None

    def process(self, doc: Document):
        doc_label, doc_prob = "", 0.0
        if self.lid is not None:  # document-level LID (the first 20k characters) for the sentence fallback
            doc_label, doc_prob = self.lid.predict(clean_sentence(doc.text[:20_000]))
        position = 0
        for segment in split_segments(doc.text, self.config.segment, self.config.auto_max_sentences):
            self.count("sentences/in")
            if segment.part == WHOLE_MULTI_SENTENCE_LINE:  # also a unit of its own in segment=auto
                self.count("sentences/whole_lines")
            length = text_length(segment.text)
            if length < self.config.min_chars:
                self.count("sentences/dropped/too_short")
            elif length > self.config.max_chars:
                self.count("sentences/dropped/too_long")
            else:
                yield Sentence(
                    segment.text, doc.url, doc.digest, doc.source, doc.offset, position,
                    doc_lid_label=doc_label, doc_lid_prob=doc_prob, line=segment.line, part=segment.part,
                )
            position += 1


class SplitSentences(beam.PTransform):
    """Documents -> sentences, with length filters."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config

    def expand(self, docs):
        return docs | "Split" >> beam.ParDo(_Split(self.config)).with_outputs(STATS, main="sentences")


class _Identify(CountingDoFn):
    def __init__(self, config: TextConfig, languages: list[Language]):
        self.config = config
        self.languages = languages
        self.code_by_label = code_by_lid_label(languages)
        self.varieties = close_varieties(languages)

    def setup(self):
        self.lid = shared_language_identifier()

    def process(self, sentence: Sentence):
        cfg = self.config
        text = clean_sentence(sentence.text)
        label, prob = self.lid.predict(text)
        # close varieties of the document's language (Galician in a Portuguese page) are not trusted on their own
        doubted = self.varieties.get(sentence.doc_lid_label, frozenset())
        # the ranked list matters only below the threshold or for a doubted label, for aliases and the document
        # fallback (ranking costs more); aliases of a requested language add their probability to it
        ranked = ([(label, prob)] if prob >= cfg.lid_threshold and label not in doubted
                  else fold_aliases(self.lid.rank(text), self.languages))
        top = ranked[0][0]
        label, prob, by_document = decide_language(
            ranked, cfg.lid_threshold, sentence.doc_lid_label, sentence.doc_lid_prob, cfg.doc_lid_threshold,
            cfg.lid_fallback_rank, cfg.lid_fallback_ratio, doubted,
        )
        code = self.code_by_label.get(label)
        if code is None:
            self.count("sentences/dropped/other_language")
        elif prob < cfg.lid_threshold and not by_document:
            self.count(f"languages/{code}/dropped/lid_low_confidence")
        else:
            self.count(f"languages/{code}/identified")
            if by_document:
                self.count(f"languages/{code}/identified_by_document")
                if top in doubted:
                    self.count(f"languages/{code}/identified_over_close_variety")
            yield code, sentence._replace(lid_label=label, lid_prob=prob)


class IdentifyLanguage(beam.PTransform):
    """Sentences -> ``(lang_code, Sentence)`` for the requested languages above the LID threshold."""

    def __init__(self, config: TextConfig, languages: list[Language]):
        super().__init__()
        self.config = config
        self.languages = languages

    def expand(self, sentences):
        return sentences | "LID" >> beam.ParDo(_Identify(self.config, self.languages)).with_outputs(
            STATS, main="identified"
        )


def _provenance_key(s: Sentence) -> tuple:
    return (s.source, s.offset, s.position, s.url)


class _KeepFirst(beam.CombineFn):
    """Keeps the earliest occurrence (by file, offset, position) and counts the others."""

    def create_accumulator(self):
        return (None, 0)

    def add_input(self, acc, sentence):
        best, n = acc
        if best is None or _provenance_key(sentence) < _provenance_key(best):
            best = sentence
        return (best, n + 1)

    def merge_accumulators(self, accs):
        best, total = None, 0
        for b, n in accs:
            total += n
            if b is not None and (best is None or _provenance_key(b) < _provenance_key(best)):
                best = b
        return (best, total)

    def extract_output(self, acc):
        return acc


class _CountDuplicates(CountingDoFn):
    def process(self, element):
        (lang, _), (sentence, n) = element
        self.count(f"languages/{lang}/dropped/duplicate", n - 1)
        self.count(f"languages/{lang}/kept")
        yield lang, sentence


class Deduplicate(beam.PTransform):
    """Exact dedup on normalised text, global per language: one shuffle on ``(lang, normalised text)``."""

    def expand(self, identified):
        return (
            identified
            | "KeyByNormalised" >> beam.Map(lambda kv: ((kv[0], normalise_for_dedup(kv[1].text)), kv[1]))
            | "KeepFirst" >> beam.CombinePerKey(_KeepFirst())
            | "CountDuplicates" >> beam.ParDo(_CountDuplicates()).with_outputs(STATS, main="unique")
        )


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def shard_of(sentence: Sentence, n_shards: int) -> int:
    # after dedup each kept sentence is the earliest occurrence, so its own text is a deterministic key
    return stable_hash(sentence.text) % n_shards


class Shard(beam.PTransform):
    """``(lang, Sentence)`` -> ``((lang, shard_id), [Sentence, ...])``: ceil(count / shard_size) shards per
    language, assignment by a hash of the normalised text (deterministic across runs and runners)."""

    def __init__(self, shard_size: int):
        super().__init__()
        self.shard_size = shard_size

    def expand(self, unique):
        counts = unique | "CountPerLanguage" >> beam.combiners.Count.PerKey()
        size = self.shard_size

        def assign(kv, counts):
            lang, sentence = kv
            n_shards = max(1, math.ceil(counts[lang] / size))
            return (lang, shard_of(sentence, n_shards)), sentence

        return (
            unique
            | "AssignShard" >> beam.Map(assign, counts=beam.pvalue.AsDict(counts))
            | "GroupShards" >> beam.GroupByKey()
        )
