"""Language codes: ISO 639-1 (``de``) or NLLB-style (``deu_Latn``), mapped onto the LID model's labels.

Outputs keep the code the user gave; LID and sentence splitting work on the ISO 639-1 label the bundled LID
model (py3langid) predicts.
"""

from __future__ import annotations

import dataclasses
import functools

# ISO 639-1 -> (ISO 639-3 codes that name it, default script). Languages the bundled LID model knows.
_LANGUAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "af": (("afr",), "Latn"),
    "am": (("amh",), "Ethi"),
    "ar": (("ara", "arb"), "Arab"),
    "az": (("aze", "azj"), "Latn"),
    "be": (("bel",), "Cyrl"),
    "bg": (("bul",), "Cyrl"),
    "bn": (("ben",), "Beng"),
    "bs": (("bos",), "Latn"),
    "ca": (("cat",), "Latn"),
    "cs": (("ces", "cze"), "Latn"),
    "cy": (("cym",), "Latn"),
    "da": (("dan",), "Latn"),
    "de": (("deu", "ger"), "Latn"),
    "el": (("ell", "gre"), "Grek"),
    "en": (("eng",), "Latn"),
    "eo": (("epo",), "Latn"),
    "es": (("spa",), "Latn"),
    "et": (("est", "ekk"), "Latn"),
    "eu": (("eus", "baq"), "Latn"),
    "fa": (("fas", "pes", "per"), "Arab"),
    "fi": (("fin",), "Latn"),
    "fr": (("fra", "fre"), "Latn"),
    "ga": (("gle",), "Latn"),
    "gl": (("glg",), "Latn"),
    "gu": (("guj",), "Gujr"),
    "he": (("heb",), "Hebr"),
    "hi": (("hin",), "Deva"),
    "hr": (("hrv",), "Latn"),
    "hu": (("hun",), "Latn"),
    "hy": (("hye", "arm"), "Armn"),
    "id": (("ind",), "Latn"),
    "is": (("isl", "ice"), "Latn"),
    "it": (("ita",), "Latn"),
    "ja": (("jpn",), "Jpan"),
    "ka": (("kat", "geo"), "Geor"),
    "kk": (("kaz",), "Cyrl"),
    "km": (("khm",), "Khmr"),
    "kn": (("kan",), "Knda"),
    "ko": (("kor",), "Hang"),
    "ky": (("kir",), "Cyrl"),
    "lo": (("lao",), "Laoo"),
    "lt": (("lit",), "Latn"),
    "lv": (("lav", "lvs"), "Latn"),
    "mk": (("mkd", "mac"), "Cyrl"),
    "ml": (("mal",), "Mlym"),
    "mn": (("mon", "khk"), "Cyrl"),
    "mr": (("mar",), "Deva"),
    "ms": (("msa", "zsm", "may"), "Latn"),
    "mt": (("mlt",), "Latn"),
    "my": (("mya", "bur"), "Mymr"),
    "ne": (("nep", "npi"), "Deva"),
    "nl": (("nld", "dut"), "Latn"),
    "no": (("nor", "nob"), "Latn"),
    "pa": (("pan",), "Guru"),
    "pl": (("pol",), "Latn"),
    "pt": (("por",), "Latn"),
    "ro": (("ron", "rum"), "Latn"),
    "ru": (("rus",), "Cyrl"),
    "si": (("sin",), "Sinh"),
    "sk": (("slk", "slo"), "Latn"),
    "sl": (("slv",), "Latn"),
    "sq": (("sqi", "als", "alb"), "Latn"),
    "sr": (("srp",), "Cyrl"),
    "sv": (("swe",), "Latn"),
    "sw": (("swa", "swh"), "Latn"),
    "ta": (("tam",), "Taml"),
    "te": (("tel",), "Telu"),
    "th": (("tha",), "Thai"),
    "tl": (("tgl", "fil"), "Latn"),
    "tr": (("tur",), "Latn"),
    "uk": (("ukr",), "Cyrl"),
    "ur": (("urd",), "Arab"),
    "uz": (("uzb", "uzn"), "Latn"),
    "vi": (("vie",), "Latn"),
    "zh": (("zho", "cmn", "chi"), "Hans"),
}
_ISO3_TO_ISO1 = {iso3: iso1 for iso1, (iso3s, _) in _LANGUAGES.items() for iso3 in iso3s}


# Labels of the LID model that are varieties it confuses with a requested language: py3langid labels much
# Simplified Chinese news text ``wuu`` (Wu), English headlines ``pcm`` (Nigerian Pidgin), Arabic ``ary``/``arz``,
# and Indonesian and Malay each other (131 of the first 1500 Indonesian NTREX-128 lines come out ``ms``).
# A sentence with such a label counts as the requested language unless the variety is itself requested.
LID_ALIASES: dict[str, tuple[str, ...]] = {"zh": ("wuu",), "en": ("pcm",), "ar": ("ary", "arz"), "id": ("ms",),
                                           "ms": ("id",)}


# Close varieties the LID gives single sentences of a requested language, confidently, where the page as a whole
# comes out right. Counted on NTREX-128 (sentences labelled another language at >= 0.5 by py3langid, ad-hoc count):
# Portuguese 9 of 2061 `gl`, Czech 4 of 2048 `sk`, Hindi 3 of 2037 `ne`, Dutch 2 of 2108 `af`, Ukrainian 2 of 2149
# `be`, Bulgarian 2 of 2024 `ru`. Listed with them: the same pairs the other way round, and two groups of standards
# that differ by little on the page (hr/sr/bs, da/no/nn, bg/mk; not measured, no data here). Inside a document
# identified as the requested language, such a sentence is decided like an unsure one (mining.text.decide_language:
# the document's language must still be among its LID ranks); elsewhere its label stands, so a Galician page is
# not mined as Portuguese. Unlike LID_ALIASES, nothing is folded without the document's support.
CLOSE_VARIETIES: dict[str, tuple[str, ...]] = {
    "pt": ("gl",), "gl": ("pt",),
    "cs": ("sk",), "sk": ("cs",),
    "hi": ("ne",), "ne": ("hi",),
    "nl": ("af",), "af": ("nl",),
    "uk": ("be",), "be": ("uk",),
    "bg": ("ru", "mk"), "mk": ("bg",),
    "hr": ("sr", "bs"), "sr": ("hr", "bs"), "bs": ("hr", "sr"),
    "da": ("no", "nn"), "no": ("da", "nn"), "nn": ("no", "da"),
}


def close_varieties(langs: list[Language]) -> dict[str, frozenset[str]]:
    """Requested language's LID label -> the close varieties doubted inside its documents, leaving out any label a
    requested language owns (in a pt,gl job a `gl` sentence stays Galician)."""
    owned = set(code_by_lid_label(langs))
    return {lang.lid_label: frozenset(v for v in CLOSE_VARIETIES.get(lang.lid_label, ()) if v not in owned)
            for lang in langs}


def code_by_lid_label(langs: list[Language]) -> dict[str, str]:
    """LID label -> the requested code it counts as: each language's own label, then its aliases (never taking
    a label another requested language owns)."""
    mapping = {lang.lid_label: lang.code for lang in langs}
    for lang in langs:
        for alias in LID_ALIASES.get(lang.lid_label, ()):
            mapping.setdefault(alias, lang.code)
    return mapping


def fold_aliases(ranked: list[tuple[str, float]], langs: list[Language]) -> list[tuple[str, float]]:
    """LID ranking with every alias folded into the requested language's own label, probabilities summed, best
    first: a sentence that py3langid finds 0.45 Malay and 0.40 Indonesian is 0.85 Indonesian in an id job."""
    owner = _alias_owners(tuple(langs))
    folded: dict[str, float] = {}
    for label, prob in ranked:
        key = owner.get(label, label)
        folded[key] = folded.get(key, 0.0) + prob
    return sorted(folded.items(), key=lambda kv: -kv[1])


@functools.lru_cache(maxsize=8)
def _alias_owners(langs: tuple[Language, ...]) -> dict[str, str]:
    """LID label -> the own label of the requested language it counts as (built once per language set)."""
    own = {lang.code: lang.lid_label for lang in langs}
    return {label: own[code] for label, code in code_by_lid_label(list(langs)).items()}


@dataclasses.dataclass(frozen=True)
class Language:
    """A requested language: the code as the user wrote it and the LID label it maps to."""

    code: str
    lid_label: str
    script: str


def parse_language(code: str) -> Language:
    """``de``, ``deu``, ``deu_Latn`` (NLLB/FLORES style) -> Language; a clear error for anything else."""
    raw = code.strip()
    base, _, script = raw.partition("_")
    base = base.lower()
    iso1 = base if base in _LANGUAGES else _ISO3_TO_ISO1.get(base)
    if iso1 is None or not raw:
        raise ValueError(
            f"unknown language code {code!r}: use ISO 639-1 (e.g. de) or NLLB-style (e.g. deu_Latn); "
            f"known: {', '.join(sorted(_LANGUAGES))}"
        )
    return Language(code=raw, lid_label=iso1, script=script or _LANGUAGES[iso1][1])


def parse_languages(spec: str) -> list[Language]:
    """A comma-separated list of codes; at least two, no language twice."""
    codes = [c for c in (part.strip() for part in spec.split(",")) if c]
    langs = [parse_language(c) for c in codes]
    if len(langs) < 2:
        raise ValueError(f"--langs needs at least two languages (e.g. de,en); got {spec!r}")
    labels = [lang.lid_label for lang in langs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--langs names a language twice: {spec!r}")
    return langs


def language_pairs(langs: list[Language], pivot: str | None = None) -> list[tuple[Language, Language]]:
    """Every unordered pair (in the order given), or only pairs with ``pivot`` when one is named."""
    pairs = [(a, b) for i, a in enumerate(langs) for b in langs[i + 1 :]]
    if pivot is None:
        return pairs
    pivot_label = parse_language(pivot).lid_label
    if pivot_label not in {lang.lid_label for lang in langs}:
        raise ValueError(f"--pivot {pivot} is not one of --langs")
    return [(a, b) for a, b in pairs if pivot_label in (a.lid_label, b.lid_label)]
