"""Sentence splitting, normalisation for dedup, and language identification.

Splitting: BlingFire's sentence breaker (a finite-state model shipped inside the ``blingfire`` wheel) handles
Latin, Cyrillic, Greek, Arabic and CJK full stops; two script rules complete it: Indic dandas (। ॥) end a
sentence, and in Thai, Lao, Khmer and Burmese text, where sentences are separated by spaces rather than
punctuation, whitespace runs split. Lines (paragraphs in WET text) never join across a line break.

LID: py3langid (langid.py's model, 97 languages, shipped inside the wheel), normalised probabilities.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Iterator
from typing import NamedTuple

_SPACE_SEPARATED_SCRIPTS = re.compile(r"[\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]")
_SPACE_RUN = re.compile(r"\s+")
_DANDA = re.compile(r"(?<=[।॥])\s+")
_BURMESE_STOP = re.compile(r"(?<=။)\s*")
_PUNCT_OR_SYMBOL = {"P", "S"}
# BlingFire keeps some sentence ends after short lowercase words ("... im Hafen an. Bienen ..."). Split there
# too: a lowercase word of two or more letters, a full stop, space, then a capital letter, unless the word is a
# common lowercase abbreviation.
_MISSED_END = re.compile(r"\b([^\W\d_]{2,})[.!?]\s+(?=[\"'«„“(]?[^\W\d_])")
# German-style ordinals ("am 6. Juli", "seinen 70. Geburtstag", "(29. September"): BlingFire ends a sentence
# after "6."; rejoin when the number follows an article/preposition that takes an ordinal, an opening bracket or
# starts the sentence, or when the next word is a month name (no language writes "6. July" for a sentence end).
_ORDINAL_END = re.compile(r"(?:^|(?<=[\s(\[]))(\d{1,3})\.$")
_ORDINAL_WORDS = frozenset(
    "am dem den der des die das zum zur vom im ins bis ab seit an auf für fur bei nach vor ein eine einem einen "
    "einer seinen seinem seiner ihren ihrem ihrer jeden jedem jeder zu von det de".split()
)
_MONTHS = frozenset(
    "januar jänner februar feber märz april mai juni juli august september oktober november dezember "
    "januari februari maart mei augustus oktober jan feb mär apr jun jul aug sep sept okt nov dez".split()
)
_LOWER_ABBREVIATIONS = frozenset(
    "etc vs ca bzw usw ggf inkl evtl vgl zzgl approx incl fig no nr vol pp cf al ed eds resp cca env mme mlle".split()
)


SEGMENT_MODES = ("auto", "sentence", "line", "both")

# What a segment is (``Segment.part``): a whole line mined as one unit; a whole line of several sentences that is
# also mined as its sentences (segment=both); or the k-th sentence of a line: k (k >= 0) when the line is split
# only, ALTERNATE_SENTENCE + k when the line is also a unit whole (segment=both), so the sentence is an alternative
# to it. Only the last two overlap each other and WHOLE_MULTI_SENTENCE_LINE (a line and its own sentences).
WHOLE_LINE = -1
WHOLE_MULTI_SENTENCE_LINE = -2
ALTERNATE_SENTENCE = 1 << 14  # fits the int16 metadata column with any index below it; larger indexes are clamped


def is_alternate(part):
    """True (elementwise for arrays) for a sentence of a line that is also a unit whole."""
    return part >= ALTERNATE_SENTENCE


class Segment(NamedTuple):
    text: str
    line: int  # index of the (non-empty) line in the text
    part: int  # WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE, or the sentence's index in its line (+ ALTERNATE_SENTENCE)


def split_segments(text: str, segment: str = "sentence", auto_max_sentences: int = 4) -> Iterator[Segment]:
    """Mining units of ``text`` in order, stripped; empty ones skipped. Works on any script.

    ``segment``:
    - ``auto``: a line (a paragraph of the page) of at most ``auto_max_sentences`` sentences is one unit, whole;
      a longer one is split into its sentences. A translated page keeps its paragraphs, and a translation often
      renders one sentence as two or two as one, so the line is the unit that aligns 1:1 most often; the
      sentences of long paragraphs stay minable on their own.
    - ``sentence``: every line split into sentences.
    - ``line``: every line whole (one sentence per line input, as in BUCC).
    - ``both``: a line of at most ``auto_max_sentences`` sentences both whole and as its sentences, longer ones
      split; selection keeps at most one alignment per piece of text (``mining.passes.drop_overlaps``), and a pair
      that uses one of those sentences needs a higher margin (``alternate_margin``)."""
    if segment not in SEGMENT_MODES:
        raise ValueError(f"segment must be one of {', '.join(SEGMENT_MODES)}; got {segment!r}")
    number = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if segment == "line":
            yield Segment(line, number, WHOLE_LINE)
        else:
            sentences = list(_line_sentences(line))
            if len(sentences) == 1:
                yield Segment(sentences[0], number, WHOLE_LINE)
            elif segment == "auto" and len(sentences) <= auto_max_sentences:
                yield Segment(line, number, WHOLE_LINE)
            else:
                base = 0
                if segment == "both" and len(sentences) <= auto_max_sentences:
                    yield Segment(line, number, WHOLE_MULTI_SENTENCE_LINE)
                    base = ALTERNATE_SENTENCE
                yield from (Segment(sentence, number, base + min(k, ALTERNATE_SENTENCE - 1))
                            for k, sentence in enumerate(sentences))
        number += 1


def split_sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` in order, stripped; empty ones skipped."""
    return (seg.text for seg in split_segments(text, "sentence"))


def _line_sentences(line: str) -> Iterator[str]:
    for start, end in _sentence_spans(line):
        sentence = line[start:end].strip()
        if not sentence:
            continue
        for part in _split_missed_ends(sentence):
            yield from _split_by_script(part)


_CLOSING = "”’」』）》〉】〕〗〙〛)]}»"


def _sentence_spans(line: str) -> list[tuple[int, int]]:
    """BlingFire's sentence spans of ``line``, corrected: closing quotes and brackets that BlingFire starts a CJK
    sentence with (``…会赢。`` + ``”然后…``) go back to the sentence they close (an ASCII ``"`` only when the
    sentence before has an odd number of them, or it stands alone), and German-style ordinals rejoin. Spans
    index the original line, so a sentence keeps its original characters (no-break spaces included)."""
    import blingfire

    if "\n" not in blingfire.text_to_sentences(line):  # one sentence (most lines): 3x cheaper than the offsets
        return [(0, len(line))]
    _, offsets = blingfire.text_to_sentences_and_offsets(line)
    spans: list[list[int]] = []
    for start, end in offsets:
        if spans:
            moved = start
            while moved < end and line[moved] in _CLOSING:
                moved += 1
            if moved == start and line[start] == '"' and (
                line[spans[-1][0]:spans[-1][1]].count('"') % 2 == 1 or not line[start + 1:end].strip()
            ):
                moved += 1
            if moved > start:
                spans[-1][1] = moved
                start = moved
                while start < end and line[start].isspace():
                    start += 1
            if start < end and _continues_ordinal(line[spans[-1][0]:spans[-1][1]], line[start:end]):
                spans[-1][1] = end
                continue
        if start < end:
            spans.append([start, end])
    return [(a, b) for a, b in spans]


def _continues_ordinal(previous: str, following: str) -> bool:
    match = _ORDINAL_END.search(previous)
    if match is None or not following:
        return False
    before = previous[: match.start(1)].rstrip()
    word_before = before.split()[-1].casefold() if before.split() else ""
    next_word = following.split()[0].strip(".,;:)").casefold()
    return (
        next_word in _MONTHS
        or word_before in _ORDINAL_WORDS
        or not before
        or before.endswith(("(", "["))
        or following[0].islower()
    )


def _split_missed_ends(sentence: str) -> list[str]:
    parts, start = [], 0
    for match in _MISSED_END.finditer(sentence):
        word = match.group(1)
        following = sentence[match.end():].lstrip("\"'«„“(")[:1]
        if word.islower() and word not in _LOWER_ABBREVIATIONS and following.isupper():
            parts.append(sentence[start:match.start(1) + len(word) + 1])
            start = match.end()
    parts.append(sentence[start:])
    return parts


def _split_by_script(sentence: str) -> Iterator[str]:
    parts = _DANDA.split(sentence)
    for part in parts:
        if _SPACE_SEPARATED_SCRIPTS.search(part):
            pieces = _SPACE_RUN.split(_BURMESE_STOP.sub(" ", part))
            # a space-separated run of Latin tokens (names, numbers) inside Thai stays attached to its neighbour
            merged: list[str] = []
            for piece in pieces:
                if merged and not _SPACE_SEPARATED_SCRIPTS.search(piece):
                    merged[-1] = f"{merged[-1]} {piece}"
                else:
                    merged.append(piece)
            yield from (p.strip() for p in merged if p.strip())
        elif part.strip():
            yield part.strip()


# Han ideographs, kana and Hangul syllables: one such character carries about what three Latin letters do.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
# What one character of these scripts carries, in Latin letters of its English translation: least squares of
# English length on character counts over FLORES-200 + NTREX (zh, ko) and WMT (ja) parallel lines gave 3.4-4.7
# per Han character, 1.4-2.2 per kana and 2.5-2.6 per Hangul syllable; rounded down, so that no script is
# counted longer than it is.
HAN_WEIGHT, KANA_WEIGHT, HANGUL_WEIGHT = 3.0, 2.0, 2.5


def text_length(sentence: str) -> int:
    """Length in Latin-letter equivalents: characters, with Han ideographs counting 3, kana 2 and Hangul 2.5, so
    one threshold suits every script in the min/max filters (a 7-character Chinese sentence is a full sentence;
    7 Latin letters are not) and in the length-ratio filter of pairs."""
    han, kana, hangul = (len(p.findall(sentence)) for p in (_HAN, _KANA, _HANGUL))
    return int(round(len(sentence) + (HAN_WEIGHT - 1) * han + (KANA_WEIGHT - 1) * kana + (HANGUL_WEIGHT - 1) * hangul))


def normalise_for_dedup(sentence: str) -> str:
    """The dedup key: NFKC, case-folded, punctuation and symbols removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", sentence).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in _PUNCT_OR_SYMBOL else ch for ch in text)
    return " ".join(text.split())


def clean_sentence(sentence: str) -> str:
    """What the encoder sees: NFKC with whitespace collapsed (the output keeps the original text)."""
    return " ".join(unicodedata.normalize("NFKC", sentence).split())


def code_digest(function) -> str:
    """A digest of a function's compiled code (instructions, constants, names): it changes when the function's
    logic does, not when a comment does. Cache keys use it so that nobody has to bump a version by hand."""
    import hashlib

    code = function.__code__
    return hashlib.sha256(repr((code.co_code, code.co_consts, code.co_names)).encode()).hexdigest()[:16]


# what the text cleaning before encoding is, in embedding cache keys (Python's and Unicode's versions with it)
CLEANING_VERSION = f"{code_digest(clean_sentence)}|unicode-{unicodedata.unidata_version}"


class LanguageIdentifier:
    """Thin wrapper around py3langid: ``predict(text) -> (label, probability)``."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as _Identifier

        self._model = _Identifier.from_model_file(MODEL_FILE, norm_probs=True)

    def predict(self, text: str) -> tuple[str, float]:
        label, prob = self._model.classify(text)
        return label, float(prob)

    def rank(self, text: str, top: int | None = None) -> list[tuple[str, float]]:
        """The ``top`` (default: all) most probable labels with their probabilities, best first."""
        return [(label, float(prob)) for label, prob in self._model.rank(text)[:top]]


@functools.lru_cache(maxsize=1)
def shared_language_identifier() -> LanguageIdentifier:
    """One LID model per process, shared by the stages that use it (loading it costs ~1 s)."""
    return LanguageIdentifier()


def decide_language(
    ranked: list[tuple[str, float]], threshold: float, doc_label: str, doc_prob: float, doc_threshold: float,
    fallback_rank: int | None = None, fallback_ratio: float = 0.0, doubted: Collection[str] = (),
) -> tuple[str, float, bool]:
    """A sentence's language from its ranked LID labels and its document's label: ``(label, prob, by_document)``.

    The sentence's own top label wins when its probability reaches ``threshold``. Otherwise, when the document is
    identified with probability >= ``doc_threshold``, the sentence takes the document's label if that label is among
    its ``fallback_rank`` best (default: all of ``ranked``) or has at least ``fallback_ratio`` times the top label's
    probability (the LID is unsure on headlines and short lines: "No, no, no, no, no." spreads its probability
    over dozens of languages, English at rank 12 with 0.69 of the top one's; a sentence inside a confidently
    English page that the LID finds nearly as English as anything is English). Otherwise the top label is
    returned with its low probability, for the caller to drop.

    A top label in ``doubted`` (close varieties of the document's language, mining.languages.CLOSE_VARIETIES) is
    not trusted over a confident document whatever its probability: py3langid calls a Portuguese news sentence
    0.64 Galician and 0.35 Portuguese; in a page identified as Portuguese it is Portuguese."""
    label, prob = ranked[0]
    confident_document = doc_prob >= doc_threshold
    if prob >= threshold and not (confident_document and label in doubted):
        return label, prob, False
    if confident_document:
        for rank, (candidate, candidate_prob) in enumerate(ranked):
            if candidate == doc_label and (
                fallback_rank is None or rank < fallback_rank or candidate_prob >= fallback_ratio * prob > 0
            ):
                return candidate, candidate_prob, True
    return label, prob, False
