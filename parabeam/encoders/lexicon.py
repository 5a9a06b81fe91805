"""Word translation pairs induced from sentence-aligned parallel text, to give distillation word-level signal.

Distilling sentence vectors alone (Reimers & Gurevych 2020) from a few thousand news sentences teaches a student
little about single words: the network is free to match the teacher from names, numbers and a few frequent
pieces, which is enough for long news sentences but not for short everyday ones (Tatoeba). A bilingual lexicon
read off the same parallel text adds pairs like (``man``, ``muž``) whose only signal is the word itself.

Alignment model: IBM Model 1 (Brown et al. 1993, sec. 4.1), trained by EM in both directions; a word pair is kept
when each word is the other's most probable translation among the top ``top_k`` of its direction (the usual
intersection heuristic for symmetrising directional alignments, Och & Ney 2003, sec. 4.1) and it was seen at least
``min_count`` times together.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Sequence

import numpy as np

NULL = 0  # index of the empty word every source sentence carries (IBM Model 1's e_0)


def words(text: str) -> list[str]:
    """Lower-cased words of any script: whitespace tokens with punctuation and symbols stripped from both ends;
    tokens holding a digit, and tokens left empty, are dropped."""
    out = []
    for token in text.lower().split():
        start, end = 0, len(token)
        while start < end and unicodedata.category(token[start])[0] in "PSZ":
            start += 1
        while end > start and unicodedata.category(token[end - 1])[0] in "PSZ":
            end -= 1
        word = token[start:end]
        if word and not any(ch.isdigit() for ch in word):
            out.append(word)
    return out


@dataclasses.dataclass
class _Corpus:
    """Sentence pairs as word ids, flattened to one row per (sentence, target position, source word) link."""

    src_vocab: list[str]
    tgt_vocab: list[str]
    link_src: np.ndarray  # (L,) source word id (NULL for the empty word)
    link_tgt: np.ndarray  # (L,) target word id
    link_group: np.ndarray  # (L,) id of the target token the link explains
    link_sentence: np.ndarray  # (L,) id of the sentence pair the link is in


def _corpus(src_sents: Sequence[list[str]], tgt_sents: Sequence[list[str]]) -> _Corpus:
    src_ids: dict[str, int] = {"<null>": NULL}
    tgt_ids: dict[str, int] = {}
    link_src, link_tgt, link_group, link_sentence = [], [], [], []
    group = 0
    for sentence, (s_words, t_words) in enumerate(zip(src_sents, tgt_sents)):
        if not s_words or not t_words:
            continue
        s = np.array([NULL] + [src_ids.setdefault(w, len(src_ids)) for w in s_words], dtype=np.int64)
        for w in t_words:
            t = tgt_ids.setdefault(w, len(tgt_ids))
            link_src.append(s)
            link_tgt.append(np.full(len(s), t, dtype=np.int64))
            link_group.append(np.full(len(s), group, dtype=np.int64))
            link_sentence.append(np.full(len(s), sentence, dtype=np.int64))
            group += 1

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    return _Corpus(list(src_ids), list(tgt_ids), cat(link_src), cat(link_tgt), cat(link_group), cat(link_sentence))


def ibm1(src_sents: Sequence[list[str]], tgt_sents: Sequence[list[str]], iterations: int = 5):
    """IBM Model 1 translation table t(target word | source word) by EM, uniform start.

    Returns ``(src_vocab, tgt_vocab, pair_src, pair_tgt, prob, count)`` over the word pairs that co-occur:
    ``prob`` = t(tgt | src) and ``count`` = sentences they share."""
    c = _corpus(src_sents, tgt_sents)
    n_tgt = max(len(c.tgt_vocab), 1)
    # one id per co-occurring (src, tgt) pair
    key = c.link_src * n_tgt + c.link_tgt
    pair_keys, pair_of_link = np.unique(key, return_inverse=True)
    pair_src, pair_tgt = pair_keys // n_tgt, pair_keys % n_tgt
    t = np.full(len(pair_keys), 1.0 / n_tgt)
    n_groups = int(c.link_group.max()) + 1 if len(c.link_group) else 0
    for _ in range(iterations):
        p = t[pair_of_link]
        norm = np.bincount(c.link_group, weights=p, minlength=n_groups)  # sum over the sentence's source words
        counts = np.bincount(pair_of_link, weights=p / norm[c.link_group], minlength=len(pair_keys))
        totals = np.bincount(pair_src, weights=counts, minlength=len(c.src_vocab))
        t = counts / np.maximum(totals[pair_src], 1e-12)
    # sentences in which each pair co-occurs: distinct (sentence, pair) links; the empty word counts none
    shared = np.unique(c.link_sentence * len(pair_keys) + pair_of_link) % max(len(pair_keys), 1)
    count = np.bincount(shared, minlength=len(pair_keys)).astype(np.int64)
    count[pair_src == NULL] = 0
    return c.src_vocab, c.tgt_vocab, pair_src, pair_tgt, t, count


def _best(vocab_a, vocab_b, pa, pb, prob, top_k: int) -> dict[str, list[str]]:
    """For each word of side a (the model's source side, whose id 0 is NULL), its top_k words of side b by prob."""
    order = np.lexsort((-prob, pa))
    best: dict[str, list[str]] = {}
    for i in order:
        if pa[i] == NULL:
            continue
        lst = best.setdefault(vocab_a[pa[i]], [])
        if len(lst) < top_k:
            lst.append(vocab_b[pb[i]])
    return best


def induce_lexicon(pivot_texts: Sequence[str], other_texts: Sequence[str], min_count: int = 2, top_k: int = 3,
                   iterations: int = 5, max_entries: int | None = None) -> list[tuple[str, str]]:
    """Word pairs ``(pivot word, other word)`` from line-aligned sentences (IBM Model 1 both ways, intersected).

    A pair is kept when the other word's best pivot translation is the pivot word, the pivot word lists the other
    word among its ``top_k`` translations (one English word has many inflected forms in Czech or Finnish), both
    were seen together in at least ``min_count`` sentence pairs, and the two strings differ (names and numbers
    need no teaching). Sorted by co-occurrence count, most frequent first; at most ``max_entries``."""
    if len(pivot_texts) != len(other_texts):
        raise ValueError(f"{len(pivot_texts)} pivot sentences but {len(other_texts)} others")
    pivot_words = [words(s) for s in pivot_texts]
    other_words = [words(s) for s in other_texts]
    # t(other | pivot): the other side generated from the pivot, and the reverse
    pv, ov, ps, os_, p_op, count = ibm1(pivot_words, other_words, iterations)
    ov2, pv2, os2, ps2, p_po, _ = ibm1(other_words, pivot_words, iterations)
    pivot_top = _best(pv, ov, ps, os_, p_op, top_k)  # pivot word -> its likeliest other words
    other_best = _best(ov2, pv2, os2, ps2, p_po, 1)  # other word -> its likeliest pivot word
    together = {(pv[a], ov[b]): int(n) for a, b, n in zip(ps, os_, count) if a != NULL}
    pairs = []
    for other, (pivot,) in other_best.items():
        n = together.get((pivot, other), 0)
        if n >= min_count and other != pivot and other in pivot_top.get(pivot, ()):
            pairs.append((n, pivot, other))
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    if max_entries is not None:
        pairs = pairs[:max_entries]
    return [(p, o) for _, p, o in pairs]
