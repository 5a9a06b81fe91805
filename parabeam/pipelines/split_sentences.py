"""SplitSentences: documents -> mining units (by ``segment``: lines of few sentences whole, the others split into
sentences), with length filters; the splitting is ``parabeam.mining.text``."""

from __future__ import annotations

from parabeam.mining.text import (
    WHOLE_MULTI_SENTENCE_LINE,
    clean_sentence,
    shared_language_identifier,
    split_segments,
    text_length,
)
from parabeam.pipelines.config import TextConfig
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.readers import Document
from parabeam.pipelines.records import Sentence
from parabeam.pipelines.stage import Run, Stage, tagged


class _Split(CountingDoFn):
    def __init__(self, config: TextConfig):
        self.config = config

    def setup(self):
        self.lid = shared_language_identifier() if self.config.doc_lid_threshold <= 1.0 else None

    def process(self, doc: Document):
        yield from self.timed_iter(self._sentences(doc))

    def _sentences(self, doc: Document):
        doc_label, doc_prob = "", 0.0
        if self.lid is not None:  # document-level LID (the first 20k characters) for the sentence fallback
            doc_label, doc_prob = self.lid.predict(clean_sentence(doc.text[:20_000]))
        position = 0
        for segment in split_segments(doc.text, self.config.segment, self.config.auto_max_sentences):
            self.count("sentences/in")
            if segment.part == WHOLE_MULTI_SENTENCE_LINE:  # a line that segment=both also splits
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


class SplitSentences(Stage):
    """Documents -> sentences, with length filters."""

    inputs = ("documents",)
    outputs = ("sentences", STATS)
    timing = "split"

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config

    @classmethod
    def for_run(cls, run: Run) -> SplitSentences:
        return cls(run.config.text)

    def expand(self, docs):
        return tagged(docs | "Split" >> self.pardo(_Split(self.config)).with_outputs(STATS, main="sentences"),
                      "sentences", STATS)
