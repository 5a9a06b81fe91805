"""IdentifyLanguage: sentences -> ``(lang_code, Sentence)`` for the requested languages above the LID confidence,
with the document-level fallback (``parabeam.mining.text.decide_language``)."""

from __future__ import annotations

from parabeam.mining.languages import Language, close_varieties, code_by_lid_label, fold_aliases
from parabeam.mining.text import clean_sentence, decide_language, shared_language_identifier
from parabeam.pipelines.config import TextConfig
from parabeam.pipelines.counting import STATS, CountingDoFn
from parabeam.pipelines.records import Sentence
from parabeam.pipelines.stage import Run, Stage, tagged


class _Identify(CountingDoFn):
    def __init__(self, config: TextConfig, languages: list[Language]):
        self.config = config
        self.languages = languages
        self.code_by_label = code_by_lid_label(languages)
        self.varieties = close_varieties(languages)

    def setup(self):
        self.lid = shared_language_identifier()

    def process(self, sentence: Sentence):
        with self.timed():
            decided = self._decide(sentence)
        if decided is not None:
            yield decided

    def _decide(self, sentence: Sentence):
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
            return code, sentence._replace(lid_label=label, lid_prob=prob)
        return None


class IdentifyLanguage(Stage):
    """Sentences -> ``(lang_code, Sentence)`` for the requested languages above the LID threshold."""

    inputs = ("sentences",)
    outputs = ("identified", STATS)
    timing = "identify"

    def __init__(self, config: TextConfig, languages: list[Language]):
        super().__init__()
        self.config = config
        self.languages = languages

    @classmethod
    def for_run(cls, run: Run) -> IdentifyLanguage:
        return cls(run.config.text, run.languages)

    def expand(self, sentences):
        return tagged(sentences | "LID" >> self.pardo(_Identify(self.config, self.languages)).with_outputs(
            STATS, main="identified"), "identified", STATS)
