"""Pair filters: rules that drop a mined pair for what its text shows, after selection (``FilterPairs``).

Margins rank pairs by what the encoder sees; some junk scores high all the same (LASER issues #129 and #198:
digits, symbols, boilerplate and untranslated lines among the top pairs), and NMT teams clean mined bitext again
with OpusFilter or bicleaner's hard rules before training. Each rule here looks at one thing an encoder is blind
to, and names the reason it drops a pair (report.json counts ``selection.<pair>.dropped.<rule>``; with
``--keep-candidates`` the candidates keep the reason, and ``parabeam export --allow RULE`` puts them back):

- ``numbers``: the two sides do not carry the same numbers: a line of numbers alone (a date, a score, a price)
  paired with a line of other numbers, or two sides that both carry numbers, three or more in all, not one of
  them shared. Digits of every script count (``int`` reads Arabic-Indic, Devanagari, full-width digits); a number
  is compared whole and by its groups, so that 1,5 and 1.5, 1.500 and 1,500 and 1 500 compare alike across
  locales; a number followed by a word for thousands, millions or billions is also read multiplied out (3.1
  billion = 3100 millones), as is a Chinese, Japanese or Korean number followed by a multiplier (2万3000 = 23000,
  2000億 = 200 billion), and a CJK century and decade as a year (20 世纪 80 年代 = the 1980s); a CJK side that
  writes numbers in characters is not checked that way (issue 26: on held-out zh-en news 288 of 1,754 right
  pairs disagree on their digits when compared naively). Sides that merely differ in a number or two are kept:
  translations spell out, round and drop numbers.
- ``urls``: the sides do not carry the same URLs, e-mail addresses and hashtags.
- ``copy``: a side copies the other: after case, punctuation and spaces are removed the two are the same, or
  their characters overlap above ``copy_overlap`` (untranslated text; boilerplate in one language on both
  sides).
- ``boilerplate``: a side's text occurred at least ``boilerplate_copies`` times in the input (the duplicates
  Deduplicate counted): site furniture repeated across pages.
- ``lid``: a side's language-identification probability for its language is below ``min_lid_prob`` (the
  document fallback keeps short lines of the page's language whatever their own score).
- ``near_duplicate``: the pair differs from a better-scoring kept pair only by numbers, case, punctuation or
  spaces (templated lines: scores, dates, prices): the best one is kept.

Which rules are on by default, and their bounds, were chosen on the development corpora of
``benchmarks/noisy_news.py`` and ``benchmarks/comparable_news.py`` (es, tr, pl, ja; ``benchmarks/pair_filters.py``),
the README's table has the figures: on, numbers (no right pair dropped), copy and boilerplate; off, urls (nothing to
find there), lid (it dropped right pairs: short headlines score low) and near_duplicate (what it found, the number
rule found too, and it dropped right pairs that differ by a number).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from parabeam.options import option

# the rules in the order they are tried: a pair dropped by several is counted under the first
RULES = ("copy", "boilerplate", "lid", "urls", "numbers", "near_duplicate")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Which pair filters run (``parabeam.mining.filters``), and their bounds; validated on construction."""

    numbers: bool = option(True, "drop pairs whose numbers disagree: a line of numbers alone paired with other "
                           "numbers, or sides with 3+ numbers in all and none shared (digits of any script)",
                           flag="--filter-numbers")
    urls: bool = option(False, "drop pairs whose sides carry different URLs, e-mail addresses or hashtags",
                        flag="--filter-urls")
    copy: bool = option(True, "drop pairs whose sides are the same text, or overlap above --copy-overlap "
                        "(untranslated or copied lines)", flag="--filter-copies")
    copy_overlap: float = option(1.0, "the character overlap (difflib ratio, 0-1) above which a side counts as a "
                                 "copy of the other", metavar="R")
    boilerplate_copies: int = option(10, "drop pairs with a side whose text occurred at least N times in the "
                                     "input (0: off)", metavar="N")
    min_lid_prob: float = option(0.0, "drop pairs with a side whose language-identification probability for "
                                 "its language is below P (0: off)", metavar="P")
    near_duplicates: bool = option(False, "drop pairs that differ from a better-scoring kept pair only by numbers, "
                                   "case, punctuation or spaces", flag="--filter-near-duplicates")

    def __post_init__(self) -> None:
        if not 0.0 < self.copy_overlap <= 1.0:
            raise ValueError(f"copy_overlap must be in (0, 1], got {self.copy_overlap}")
        if self.boilerplate_copies < 0:
            raise ValueError(f"boilerplate_copies must be >= 0 (0: off), got {self.boilerplate_copies}")
        if not 0.0 <= self.min_lid_prob <= 1.0:
            raise ValueError(f"min_lid_prob must be in [0, 1] (0: off), got {self.min_lid_prob}")

    @property
    def enabled(self) -> tuple[str, ...]:
        on = {"numbers": self.numbers, "urls": self.urls, "copy": self.copy,
              "boilerplate": self.boilerplate_copies > 0, "lid": self.min_lid_prob > 0,
              "near_duplicate": self.near_duplicates}
        return tuple(rule for rule in RULES if on[rule])


@dataclasses.dataclass(frozen=True)
class Side:
    """What the rules read of one side of a language pair's pairs (row i of each array: pair i)."""

    lang: str  # the requested language's code ("zh", "ja", "en", "jpn_Jpan")
    text: Sequence[str]
    lid_prob: np.ndarray | None = None  # (m,) float
    copies: np.ndarray | None = None  # (m,) int: how often the text occurred in the input


# --- numbers -----------------------------------------------------------------------------------------------------

# a number: digits of any script, groups joined by a decimal or thousands separator (1,500 / 1.5 / 12.01.2009), or
# by a space before a group of exactly three digits (1 500)
_NUMBER = re.compile(r"\d+(?:[.,'\u066b\u066c]\d+|[ \u00a0\u202f]\d{3}(?!\d))*")
_GROUP = re.compile(r"\d+")
# CJK multipliers after a number: 2万 = 20000, 3億 = 300000000 (Chinese, Japanese, Korean)
_MULTIPLIERS = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "兆": 10**12,
                "만": 10**4, "억": 10**8, "천": 1000, "조": 10**12}
# words for thousands, millions and billions after a number (3.1 billion = 3100 millones = 3,1 Mrd.), in the
# languages of the bundled encoders' development and held-out sets and a few more; a number followed by one is also
# read multiplied out
_WORD_MULTIPLIERS = {
    **dict.fromkeys(["thousand", "thousands", "mil", "mille", "tys", "tysięcy", "tysiące", "bin", "тыс", "тысяч",
                     "tuhat", "ezer", "mii"], 10**3),
    **dict.fromkeys(["million", "millions", "mn", "mln", "mio", "millionen", "millón", "millones", "milhão",
                     "milhões", "milione", "milioni", "milion", "miliony", "milionów", "milyon", "млн", "миллион",
                     "миллиона", "миллионов", "miljoona", "miljoonaa", "millió", "milioane"], 10**6),
    **dict.fromkeys(["billion", "billions", "bn", "milliard", "milliards", "milliarde", "milliarden", "mrd",
                     "bilhão", "bilhões", "miliardo", "miliardi", "miliard", "miliardy", "miliardów", "milyar",
                     "млрд", "миллиард", "миллиарда", "миллиардов", "miljardi", "miljardia", "milliárd",
                     "miliarde"], 10**9),
    **dict.fromkeys(["trillion", "trillions", "billón", "billones"], 10**12),
}
_WORD_AFTER = re.compile(r"\s?([^\W\d_]+)\.?(?:\s([^\W\d_]+))?")
# a CJK century and decade: 20 世纪 80 年代 = the 1980s
_CENTURY_DECADE = re.compile(r"(\d+)\s*世纪\s*(\d+)\s*年代")
# numbers written in CJK characters (a side that has them may write any number in words)
_CJK_NUMERALS = frozenset("〇零一二三四五六七八九十百千万萬亿億兆两兩")
CJK_LANGS = frozenset({"zh", "ja", "ko", "yue", "wuu", "zho", "jpn", "kor", "cmn"})
MIN_NUMBERS = 3  # distinct numbers on the two sides together before disjoint sides count as disagreeing


def is_cjk(lang: str) -> bool:
    """Whether ``lang`` (ISO 639-1/3 or NLLB-style ``zho_Hans``) writes in Chinese, Japanese or Korean script."""
    return lang.split("_")[0].split("-")[0].lower() in CJK_LANGS


def number_values(text: str) -> list[int]:
    """The numbers of ``text`` as integers, separators dropped (``int`` reads every script's decimal digits), a
    CJK multiplier applied and its compounds summed (2万3000 = 23000)."""
    values: list[int] = []
    chain_end = -1  # where the last multiplied number ended: a number right there continues it
    for m in _NUMBER.finditer(text):
        value = int("".join(_GROUP.findall(m.group())))
        multiplier = _MULTIPLIERS.get(text[m.end():m.end() + 1])
        if multiplier and not any(c in m.group() for c in ".,"):
            value *= multiplier
        if m.start() == chain_end and values:
            values[-1] += value
        else:
            values.append(value)
        chain_end = m.end() + 1 if multiplier else -1
    return values


def _as_decimal(number: str) -> float:
    """A number's text read with its last separator as the decimal point when one or two digits follow it (3.1,
    3,15), else as an integer (1.500, 1,500)."""
    groups = _GROUP.findall(number)
    if len(groups) > 1 and len(groups[-1]) <= 2:
        return float("".join(groups[:-1]) + "." + groups[-1])
    return float("".join(groups))


def multiplied_values(text: str) -> list[int]:
    """The numbers of ``text`` followed by a word for thousands, millions or billions (``_WORD_MULTIPLIERS``; "mil
    millones" is a thousand millions) or a CJK multiplier, multiplied out: 3.1 billion -> 3100000000."""
    out = []
    for m in _NUMBER.finditer(text):
        after = _WORD_AFTER.match(text, m.end())
        multiplier = _MULTIPLIERS.get(text[m.end():m.end() + 1])
        if after and not multiplier:
            first, second = after.group(1).lower(), (after.group(2) or "").lower()
            multiplier = _WORD_MULTIPLIERS.get(first)
            if multiplier == 10**3 and _WORD_MULTIPLIERS.get(second) == 10**6:
                multiplier = 10**9
        if multiplier:
            out.append(int(round(_as_decimal(m.group()) * multiplier)))
    return out


def number_forms(text: str, values: list[int] | None = None) -> frozenset[int]:
    """Every reading of the numbers of ``text`` of two digits or more: each number whole and each group of its
    digits (12.01.2009 is also 12 and 2009; 1.500 is also 1500 and 500), so that locales compare alike; multiplied
    out by a word or character that follows (``multiplied_values``); a CJK century and decade as a year (20 世纪
    80 年代 is 1980). ``values``: ``number_values(text)`` where the caller has it."""
    forms = {v for v in (number_values(text) if values is None else values) if v >= 10}
    forms.update(v for g in _GROUP.findall(text) if (v := int(g)) >= 10)
    forms.update(v for v in multiplied_values(text) if v >= 10)
    forms.update((int(c) - 1) * 100 + int(d) for c, d in _CENTURY_DECADE.findall(text))
    return frozenset(forms)


def is_number_line(text: str) -> bool:
    """A line of numbers alone (dates, scores, prices, phone numbers): digits, punctuation and symbols only."""
    return any(c.isdigit() for c in text) and not skeleton(text, keep_digits=False)


def spells_numbers(text: str) -> bool:
    """Whether ``text`` writes a number in CJK characters (a numeral not used as a multiplier after digits)."""
    return any(c in _CJK_NUMERALS and not (i and text[i - 1].isdigit()) for i, c in enumerate(text))


def numbers_disagree(src: str, tgt: str, src_cjk: bool = False, tgt_cjk: bool = False) -> bool:
    """Whether the numbers of two sides disagree: a line of numbers alone whose digit groups differ from the other
    side's, or sides that both carry numbers, at least ``MIN_NUMBERS`` in all, none of them shared (in any
    reading: ``number_forms``). A CJK side that writes numbers in characters may spell out the other's numbers,
    so it is not checked that way."""
    if is_number_line(src) or is_number_line(tgt):
        return sorted(int(g) for g in _GROUP.findall(src)) != sorted(int(g) for g in _GROUP.findall(tgt))
    if (src_cjk and spells_numbers(src)) or (tgt_cjk and spells_numbers(tgt)):
        return False
    src_values, tgt_values = number_values(src), number_values(tgt)
    a, b = {v for v in src_values if v >= 10}, {v for v in tgt_values if v >= 10}
    if not a or not b or len(a) + len(b) < MIN_NUMBERS:
        return False
    return number_forms(src, src_values).isdisjoint(number_forms(tgt, tgt_values))


# --- URLs, e-mail addresses, hashtags ----------------------------------------------------------------------------

_LINKS = re.compile(r"(?:https?://|www\.)[^\s<>\"']+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?<![\w&])#\w*[^\W\d]\w*")


def links(text: str) -> frozenset[str]:
    """URLs, e-mail addresses and hashtags of ``text``, lower-cased, without trailing punctuation (@handles are
    left out: "@S" is also a brand, written out on the other side)."""
    return frozenset(m.group().rstrip(".,;:!?)]}\"'").lower() for m in _LINKS.finditer(text))


# --- copies and near duplicates ----------------------------------------------------------------------------------


def skeleton(text: str, keep_digits: bool = True) -> str:
    """``text`` case-folded, NFKC, without punctuation, symbols and spaces (and without digits unless
    ``keep_digits``)."""
    out = []
    for c in unicodedata.normalize("NFKC", text).casefold():
        cat = unicodedata.category(c)
        if cat[0] in "LM" or (keep_digits and cat[0] == "N"):
            out.append(c)
    return "".join(out)


def is_copy(src: str, tgt: str, overlap: float) -> bool:
    """Whether one side copies the other: the same skeleton, or characters overlapping above ``overlap``."""
    a, b = skeleton(src), skeleton(tgt)
    if a == b:
        return True
    if not a or not b or min(len(a), len(b)) / max(len(a), len(b)) < overlap:
        return False  # ratio() <= 2 * min / (len(a) + len(b)): too different in length to reach the bound
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= overlap


# --- all rules ---------------------------------------------------------------------------------------------------


def rule_masks(src: Side, tgt: Side, score: np.ndarray, config: FilterConfig,
               rules: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """For each rule (``config.enabled``, or ``rules``), a bool array: which of the pairs it would drop on its own
    (``near_duplicate`` against the best-scoring pair of each group, whatever the other rules drop)."""
    m = len(src.text)
    rules = config.enabled if rules is None else tuple(rules)
    out: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule == "numbers":
            s_cjk, t_cjk = is_cjk(src.lang), is_cjk(tgt.lang)
            mask = [numbers_disagree(a, b, s_cjk, t_cjk) for a, b in zip(src.text, tgt.text)]
        elif rule == "urls":
            mask = [links(a) != links(b) for a, b in zip(src.text, tgt.text)]
        elif rule == "copy":
            mask = [is_copy(a, b, config.copy_overlap) for a, b in zip(src.text, tgt.text)]
        elif rule == "boilerplate":
            bound = config.boilerplate_copies or np.iinfo(np.int64).max
            mask = np.zeros(m, bool)
            for side in (src, tgt):
                if side.copies is not None:
                    mask |= np.asarray(side.copies, dtype=np.int64) >= bound
        elif rule == "lid":
            mask = np.zeros(m, bool)
            for side in (src, tgt):
                if side.lid_prob is not None:
                    mask |= np.asarray(side.lid_prob, dtype=np.float64) < config.min_lid_prob
        elif rule == "near_duplicate":
            mask = near_duplicates(src.text, tgt.text, score)
        else:
            raise ValueError(f"unknown filter rule {rule!r}; known: {', '.join(RULES)}")
        out[rule] = np.asarray(mask, dtype=bool).reshape(m)
    return out


def near_duplicates(src: Sequence[str], tgt: Sequence[str], score: np.ndarray, keep: np.ndarray | None = None
                    ) -> np.ndarray:
    """Which pairs repeat a better-scoring pair up to numbers, case, punctuation and spaces; among the pairs
    ``keep`` marks (the others neither count nor are marked). Ties go to the earlier pair."""
    m = len(src)
    keep = np.ones(m, bool) if keep is None else np.asarray(keep, dtype=bool)
    dropped = np.zeros(m, bool)
    seen: set[tuple[str, str]] = set()
    for i in np.argsort(-np.asarray(score, dtype=np.float64), kind="stable"):
        if not keep[i]:
            continue
        key = (skeleton(src[i], keep_digits=False), skeleton(tgt[i], keep_digits=False))
        if key in seen:
            dropped[i] = True
        else:
            seen.add(key)
    return dropped


def filter_reasons(src: Side, tgt: Side, score: np.ndarray, config: FilterConfig) -> np.ndarray:
    """(m,) object array: the first rule (in ``RULES`` order) that drops each pair, None for a pair kept.
    Near duplicates are judged among the pairs the other rules keep."""
    m = len(src.text)
    reasons = np.full(m, None, dtype=object)
    masks = rule_masks(src, tgt, score, config, [r for r in config.enabled if r != "near_duplicate"])
    for rule, mask in masks.items():
        reasons[mask & (reasons == None)] = rule  # noqa: E711 (elementwise)
    if "near_duplicate" in config.enabled:
        reasons[near_duplicates(src.text, tgt.text, score, keep=reasons == None)] = "near_duplicate"  # noqa: E711
    return reasons
