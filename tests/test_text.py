"""Readers on real and broken files, sentence splitting per script, normalisation, LID, language codes."""

from __future__ import annotations

import pytest

from parabeam.mining.languages import (
    close_varieties,
    code_by_lid_label,
    fold_aliases,
    language_pairs,
    parse_language,
    parse_languages,
)
from parabeam.mining.text import (
    ALTERNATE_SENTENCE,
    LanguageIdentifier,
    clean_sentence,
    decide_language,
    is_alternate,
    normalise_for_dedup,
    split_segments,
    split_sentences,
    text_length,
)


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
        # closing quotes stay with the sentence they close (BlingFire starts the next CJK sentence with them)
        ("他说：“我们会赢。”然后离开了。", ["他说：“我们会赢。”", "然后离开了。"]),
        # German ordinals rejoin, keeping the original no-break space; an English sentence end after a number
        # does not
        ("In der 25.\xa0Minute traf er. Am Samstag (29. September) kam es.",
         ["In der 25.\xa0Minute traf er.", "Am Samstag (29. September) kam es."]),
        ("Er feierte seinen 70. Geburtstag.", ["Er feierte seinen 70. Geburtstag."]),
        ("He was 25. He then left.", ["He was 25.", "He then left."]),
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


def test_text_length_weighs_cjk_characters():
    assert text_length("Hallo") == 5
    assert text_length("您曾说感到胸痛") == 21  # a full sentence in 7 characters passes min_chars=8
    assert text_length("Tokyo東京") == 5 + 2 * 3
    assert text_length("とうきょう") == 10 and text_length("서울") == 5


def test_lid_falls_back_to_a_confident_document():
    ranked = [("pcm", 0.11), ("da", 0.10), ("en", 0.09)]
    # unsure sentence in a confidently English document: English, with the sentence's own probability for it
    assert decide_language(ranked, 0.5, "en", 0.99, 0.9) == ("en", 0.09, True)
    # the document is not confident enough, or its language is not among the sentence's guesses: unchanged
    assert decide_language(ranked, 0.5, "en", 0.8, 0.9) == ("pcm", 0.11, False)
    assert decide_language(ranked, 0.5, "de", 0.99, 0.9) == ("pcm", 0.11, False)
    # a confident sentence keeps its own label even inside a document of another language
    assert decide_language([("en", 0.95), ("de", 0.03)], 0.5, "de", 0.99, 0.9) == ("en", 0.95, False)

    # rank and ratio limits: a doc label far down the list is taken only when nearly as likely as the top one
    flat = [("ca", 0.021), ("lv", 0.020), ("pt", 0.020), ("hr", 0.019), ("pcm", 0.019), ("en", 0.015)]
    assert decide_language(flat, 0.5, "en", 0.99, 0.9, fallback_rank=5) == ("ca", 0.021, False)
    assert decide_language(flat, 0.5, "en", 0.99, 0.9, fallback_rank=5, fallback_ratio=0.1) == ("en", 0.015, True)
    peaked = [("id", 0.40), ("jv", 0.12), ("ms", 0.10), ("tl", 0.05), ("ace", 0.04), ("en", 0.03)]
    assert decide_language(peaked, 0.5, "en", 0.99, 0.9, fallback_rank=5, fallback_ratio=0.1) == ("id", 0.40, False)
    assert decide_language(peaked, 0.5, "en", 0.99, 0.9, fallback_rank=6, fallback_ratio=0.1) == ("en", 0.03, True)


def test_lid_document_fallback_keeps_unsure_short_lines_of_a_confident_page():
    # real py3langid outputs: English at rank 12 and 7 of these, each far above 1/10 of the top label
    lid = LanguageIdentifier()
    for text in ('"No, no, no, no , no.', "Indonesia Tsunami Toll Soars Above 800."):
        ranked = lid.rank(clean_sentence(text))
        assert ranked[0][1] < 0.5 and "en" not in [label for label, _ in ranked[:5]]
        assert decide_language(ranked, 0.5, "en", 0.99, 0.9, 5, 0.1)[:3:2] == ("en", True)
    # a confident French quote in a German page stays French
    ranked = lid.rank(clean_sentence("Il faut bien le faire."))
    assert decide_language(ranked, 0.5, "de", 0.99, 0.9, 5, 0.1)[0] == "fr"


def test_lid_aliases_map_confused_varieties_unless_requested():
    assert code_by_lid_label(parse_languages("zh,en")) == {"zh": "zh", "en": "en", "wuu": "zh", "pcm": "en"}
    mapping = code_by_lid_label(parse_languages("zh,en,ar"))
    assert mapping["ary"] == "ar" and mapping["arz"] == "ar"
    lid = LanguageIdentifier()
    # py3langid labels this Simplified Chinese news sentence Wu; with zh requested it counts as zh
    label, _ = lid.predict("星期四，莫斯科市长Sergei Sobyanin将封城日期延长至5月1日。")
    assert code_by_lid_label(parse_languages("zh,en")).get(label) == "zh"
    # Indonesian and Malay: each counts as the other unless both are requested
    label, _ = lid.predict("Saya tidak tahu apa yang terjadi.")  # Indonesian, labelled Malay
    assert label == "ms" and code_by_lid_label(parse_languages("id,en"))[label] == "id"
    assert code_by_lid_label(parse_languages("id,ms,en"))["ms"] == "ms"


def test_fold_aliases_sums_a_requested_languages_labels():
    ranked = [("ms", 0.45), ("id", 0.40), ("jv", 0.10), ("en", 0.05)]
    assert fold_aliases(ranked, parse_languages("id,en")) == [("id", pytest.approx(0.85)), ("jv", 0.10), ("en", 0.05)]
    assert fold_aliases(ranked, parse_languages("id,ms,en")) == ranked  # both requested: nothing folds
    assert fold_aliases([("wuu", 0.3), ("ja", 0.35), ("zh", 0.3)], parse_languages("zh_Hans,en")) == [
        ("zh", pytest.approx(0.6)), ("ja", 0.35)]


def test_segment_modes():
    text = "Der Zug fährt um sieben Uhr ab. Er ist oft voll.\nEin einzelner Satz steht hier.\n" \
           "Erstens regnet es. Zweitens ist es kalt. Drittens ist der Bus weg."
    assert [tuple(s) for s in split_segments(text)] == [
        ("Der Zug fährt um sieben Uhr ab.", 0, 0), ("Er ist oft voll.", 0, 1),
        ("Ein einzelner Satz steht hier.", 1, -1),
        ("Erstens regnet es.", 2, 0), ("Zweitens ist es kalt.", 2, 1), ("Drittens ist der Bus weg.", 2, 2)]
    assert [s.text for s in split_segments(text, "line")] == text.split("\n")
    assert {s.part for s in split_segments(text, "line")} == {-1}
    # auto: a line of at most auto_max_sentences sentences is one unit, whole; longer paragraphs are split
    assert [(s.text, s.part) for s in split_segments(text, "auto", auto_max_sentences=2)] == [
        ("Der Zug fährt um sieben Uhr ab. Er ist oft voll.", -1), ("Ein einzelner Satz steht hier.", -1),
        ("Erstens regnet es.", 0), ("Zweitens ist es kalt.", 1), ("Drittens ist der Bus weg.", 2)]
    assert [s.part for s in split_segments(text, "auto", auto_max_sentences=3)] == [-1, -1, -1]
    # both: a line of <= 2 sentences whole (part -2) and as its sentences, which are alternates to it; longer
    # paragraphs split only
    alt = ALTERNATE_SENTENCE
    assert [(s.text, s.part) for s in split_segments(text, "both", auto_max_sentences=2)] == [
        ("Der Zug fährt um sieben Uhr ab. Er ist oft voll.", -2), ("Der Zug fährt um sieben Uhr ab.", alt),
        ("Er ist oft voll.", alt + 1), ("Ein einzelner Satz steht hier.", -1),
        ("Erstens regnet es.", 0), ("Zweitens ist es kalt.", 1), ("Drittens ist der Bus weg.", 2)]
    assert [is_alternate(s.part) for s in split_segments(text, "both", 2)] == [False, True, True] + [False] * 4
    assert not any(is_alternate(s.part) for s in split_segments(text, "sentence"))
    assert not any(is_alternate(s.part) for s in split_segments(text, "auto"))
    assert sum(s.part == -2 for s in split_segments(text, "both", auto_max_sentences=3)) == 2
    assert list(split_sentences(text)) == [s.text for s in split_segments(text)]
    with pytest.raises(ValueError, match="segment"):
        list(split_segments(text, "paragraph"))


def test_close_varieties_yield_to_a_confident_document_of_the_requested_language():
    from parabeam.pipelines.config import TextConfig
    from parabeam.pipelines.identify_language import _Identify
    from parabeam.pipelines.records import Sentence

    galician_looking = "A cidade costeira continuou a ser abalada por réplicas no sábado."  # NTREX-128, Portuguese
    lid = LanguageIdentifier()
    ranked = lid.rank(clean_sentence(galician_looking))
    assert ranked[0][0] == "gl" and ranked[0][1] > 0.6 and ranked[1][0] == "pt"  # real py3langid output
    # doubted only inside a confident Portuguese document
    assert decide_language(ranked, 0.5, "pt", 0.99, 0.9, 5, 0.1, frozenset({"gl"}))[:3:2] == ("pt", True)
    assert decide_language(ranked, 0.5, "pt", 0.8, 0.9, 5, 0.1, frozenset({"gl"}))[0] == "gl"
    assert decide_language(ranked, 0.5, "pt", 0.99, 0.9, 5, 0.1)[0] == "gl"
    # the document's language must still be among the sentence's ranks: a confident French quote stays French
    french = lid.rank(clean_sentence("Il faut bien le faire."))
    assert decide_language(french, 0.5, "de", 0.99, 0.9, 5, 0.1, frozenset({"fr"}))[0] == "fr"
    # a variety another requested language owns is never doubted
    assert close_varieties(parse_languages("pt,en"))["pt"] == frozenset({"gl"})
    assert close_varieties(parse_languages("pt,gl,en"))["pt"] == frozenset()
    assert close_varieties(parse_languages("cs,sk,en")) == {"cs": frozenset(), "sk": frozenset(), "en": frozenset()}

    def identify(langs: str, doc_label: str, doc_prob: float) -> tuple[list, dict]:
        stage = _Identify(TextConfig(), parse_languages(langs))
        stage.setup()
        stage.start_bundle()
        sentence = Sentence(galician_looking, "u", "d", "s", 0, 0, doc_lid_label=doc_label, doc_lid_prob=doc_prob)
        return [code for code, _ in stage.process(sentence)], dict(stage._counts)

    codes, counts = identify("pt,en", "pt", 0.99)
    assert codes == ["pt"] and counts == {"languages/pt/identified": 1, "languages/pt/identified_by_document": 1,
                                          "languages/pt/identified_over_close_variety": 1}
    assert identify("pt,en", "pt", 0.5) == ([], {"sentences/dropped/other_language": 1})  # unsure page: counted
    assert identify("pt,gl,en", "pt", 0.99)[0] == ["gl"]  # Galician requested too: it stays Galician
    assert identify("pt,en", "gl", 0.99) == ([], {"sentences/dropped/other_language": 1})  # a Galician page
