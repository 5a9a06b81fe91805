"""Sentence splitting, normalisation for dedup, and language identification.

Splitting: BlingFire's sentence breaker (a finite-state model shipped inside the ``blingfire`` wheel) handles
Latin, Cyrillic, Greek, Arabic and CJK full stops; two script rules complete it: Indic dandas (। ॥) end a
sentence, and in Thai, Lao, Khmer and Burmese text, where sentences are separated by spaces rather than
punctuation, whitespace runs split. Lines (paragraphs in WET text) never join across a line break.

LID: py3langid (langid.py's model, 97 languages, shipped inside the wheel), normalised probabilities.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_SPACE_SEPARATED_SCRIPTS = re.compile(r"[\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]")
_SPACE_RUN = re.compile(r"\s+")
_DANDA = re.compile(r"(?<=[।॥])\s+")
_BURMESE_STOP = re.compile(r"(?<=။)\s*")
_PUNCT_OR_SYMBOL = {"P", "S"}
# BlingFire keeps some sentence ends after short lowercase words ("... im Hafen an. Bienen ..."). Split there
# too: a lowercase word of two or more letters, a full stop, space, then a capital letter, unless the word is a
# common lowercase abbreviation.
_MISSED_END = re.compile(r"\b([^\W\d_]{2,})[.!?]\s+(?=[\"'«„“(]?[^\W\d_])")
_LOWER_ABBREVIATIONS = frozenset(
    "etc vs ca bzw usw ggf inkl evtl vgl zzgl approx incl fig no nr vol pp cf al ed eds resp cca env mme mlle".split()
)


def split_sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` in order, stripped; empty ones skipped. Works on any script."""
    import blingfire

    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for sentence in blingfire.text_to_sentences(line).split("\n"):
            for part in _split_missed_ends(sentence):
                yield from _split_by_script(part)


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


def normalise_for_dedup(sentence: str) -> str:
    """The dedup key: NFKC, case-folded, punctuation and symbols removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", sentence).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in _PUNCT_OR_SYMBOL else ch for ch in text)
    return " ".join(text.split())


def clean_sentence(sentence: str) -> str:
    """What the encoder sees: NFKC with whitespace collapsed (the output keeps the original text)."""
    return " ".join(unicodedata.normalize("NFKC", sentence).split())


class LanguageIdentifier:
    """Thin wrapper around py3langid: ``predict(text) -> (label, probability)``."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as _Identifier

        self._model = _Identifier.from_model_file(MODEL_FILE, norm_probs=True)

    def predict(self, text: str) -> tuple[str, float]:
        label, prob = self._model.classify(text)
        return label, float(prob)
