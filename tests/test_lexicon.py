"""Word translation pairs induced from parallel sentences (IBM Model 1 both ways, intersected)."""

from __future__ import annotations

import numpy as np
import pytest

from parabeam.encoders.lexicon import ibm1, induce_lexicon, words
from parabeam.encoders.train import Pair, lexicon_pairs


def test_words_strip_punctuation_and_drop_numbers_in_any_script():
    assert words("„Nein“, sagte er: 2019!") == ["nein", "sagte", "er"]
    assert words("Η γάτα (κοιμάται).") == ["η", "γάτα", "κοιμάται"]
    assert words("मैं घर जा रहा हूँ।") == ["मैं", "घर", "जा", "रहा", "हूँ"]
    assert words("... 3,5 %") == []


def test_ibm1_by_hand_on_two_sentences():
    # "a b" / "x y" and "a" / "x": EM must learn t(x|a) high and t(y|b) high (the pigeonhole of Model 1)
    vocab_src, vocab_tgt, ps, pt, prob, count = ibm1([["a", "b"], ["a"]], [["x", "y"], ["x"]], iterations=20)
    t = {(vocab_src[a], vocab_tgt[b]): p for a, b, p in zip(ps, pt, prob)}
    assert t[("a", "x")] > 0.7 and t[("b", "y")] > 0.7
    assert t[("a", "y")] < 0.2
    # each source word's distribution sums to 1
    for word in ("a", "b"):
        assert abs(sum(p for (s, _), p in t.items() if s == word) - 1.0) < 1e-9
    together = {(vocab_src[a], vocab_tgt[b]): int(n) for a, b, n in zip(ps, pt, count) if a != 0}
    assert together[("a", "x")] == 2 and together[("b", "y")] == 1


def test_lexicon_recovers_a_planted_dictionary():
    rng = np.random.default_rng(0)
    letters = "abcdefghij"  # words hold no digits: two letters name word i
    dictionary = {f"w{letters[i // 10]}{letters[i % 10]}": f"v{letters[i // 10]}{letters[i % 10]}" for i in range(40)}
    src_words = list(dictionary)
    en, xx = [], []
    for _ in range(400):
        chosen = list(rng.choice(40, size=5, replace=False))
        en.append(" ".join(src_words[i] for i in chosen))
        xx.append(" ".join(dictionary[src_words[i]] for i in rng.permutation(chosen)))  # another word order
    found = induce_lexicon(en, xx, min_count=2)
    assert set(found) == set(dictionary.items())
    assert induce_lexicon(en, xx, max_entries=5) == found[:5]


def test_lexicon_pairs_only_for_languages_with_enough_data():
    pairs = [Pair(f"dog {i}", f"pes {i}!", "en", "cs") for i in range(15)]
    pairs += [Pair(f"kočka {i}", f"cat {i}", "cs", "en") for i in range(15)]  # either side may be the pivot
    pairs += [Pair(f"hund {i}", f"dog {i}", "de", "en") for i in range(3)]
    extra = lexicon_pairs(pairs, "en", max_entries=10, min_pairs=10)
    assert {(p.src, p.tgt) for p in extra} == {("dog", "pes"), ("cat", "kočka")}
    assert {(p.src_lang, p.tgt_lang) for p in extra} == {("en", "cs")}


def test_distill_with_a_lexicon_trains_on_the_word_pairs(tmp_path):
    pytest.importorskip("transformers")
    from conftest import make_tiny_bert
    from parabeam.encoders.train import config_from_dict, train

    rng = np.random.default_rng(1)
    letters = "abcdefghij"
    en_words = [f"w{a}{b}" for a in letters[:4] for b in letters[:5]]  # 20 words, no digits
    code = {w: "z" + w[1:][::-1] for w in en_words}
    en = [" ".join(rng.choice(en_words, size=4, replace=False)) for _ in range(60)]
    xx = [" ".join(code[w] for w in s.split()) for s in en]
    (tmp_path / "en.txt").write_text("\n".join(en) + "\n")
    (tmp_path / "xx.txt").write_text("\n".join(xx) + "\n")
    model = make_tiny_bert(str(tmp_path / "tiny"), en + xx + en_words + list(code.values()), vocab_size=120, hidden=32)
    data = {"method": "distill", "student": f"hf:{model}", "teacher": f"hf:{model}", "batch_size": 8, "epochs": 1,
            "lexicon": 50, "lexicon_min_pairs": 10, "log_every": 1000, "device": "cpu",
            "train": [{"src": str(tmp_path / "en.txt"), "tgt": str(tmp_path / "xx.txt"), "src_lang": "en",
                       "tgt_lang": "xx"}]}
    card = train(config_from_dict(data), str(tmp_path / "out"))
    assert card["lexicon_pairs"] == 20  # the whole cipher, word for word
    assert card["pairs_by_language"]["en-xx"] == 60 + 20
    assert "word pairs from the lexicon: 20" in (tmp_path / "out" / "README.md").read_text()
