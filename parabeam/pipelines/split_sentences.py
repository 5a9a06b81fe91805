"""SplitSentences: documents -> mining units (sentences, and with segment=auto short lines whole), with length
filters; the splitting is ``parabeam.mining.text``."""

from __future__ import annotations

import apache_beam as beam

from parabeam.mining.readers import Document
from parabeam.mining.text import (
    WHOLE_MULTI_SENTENCE_LINE,
    clean_sentence,
    shared_language_identifier,
    split_segments,
    text_length,
)
from parabeam.pipelines.config import TextConfig
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.records import Sentence


class _Split(CountingDoFn):
    def __init__(self, config: TextConfig):
        self.config = config

    def setup(self):
        self.lid = shared_language_identifier() if self.config.doc_lid_threshold <= 1.0 else None

    def process(self, doc: Document):
        yield from self.timed_iter("split", self._sentences(doc))

    def _sentences(self, doc: Document):
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
                self.count("sentences/out")
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
