"""The pair filters (parabeam.mining.filters) and the threshold for a target precision (mining.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest

from parabeam.mining import filters as F
from parabeam.mining.calibrate import choose_threshold, precision_curve, threshold_for_precision
from parabeam.mining.config import MiningConfig


def test_numbers_read_every_script_and_locale():
    assert F.number_values("٣٤٥ و ١٢") == [345, 12]  # Arabic-Indic
    assert F.number_values("२०१९ में 15") == [2019, 15]  # Devanagari
    assert F.number_values("２０１７年に１５％") == [2017, 15]  # full-width
    assert F.number_values("2万3000円と3億") == [23000, 300000000]  # CJK multipliers, a compound summed
    assert F.number_values("1,500 or 1.500 or 1 500 people in 2019 15") == [1500, 1500, 1500, 2019, 15]
    assert F.number_forms("1.500") == {1500, 500}  # whole and by groups: 1.500 (de) is 1,500 (en)
    assert F.number_forms("12.01.2009") >= {12, 2009}
    assert F.multiplied_values("3,1 Mrd. und 2 mil millones y 1.5万") == [3_100_000_000, 2_000_000_000, 15000]


@pytest.mark.parametrize("src, tgt, cjk, disagree", [
    ("18.01.2009 00:47", "02.11.2009 04:38", False, True),  # lines of numbers alone, other numbers
    ("2 - 1", "2-1", False, False),
    ("１２：３０", "12:30", False, False),
    ("Die Stadt hat 45.000 Einwohner und 12 Schulen.", "The city has 38,000 inhabitants and 17 schools.", False,
     True),
    ("Die Stadt hat 45.000 Einwohner.", "The city has 38,000 inhabitants.", False, False),  # two numbers: kept
    ("Der Preis stieg 2019 um 15 Prozent auf 1,5 Mio.", "In 2019 the price rose by 15 percent to 1.5m.", False,
     False),
    ("El 25 de octubre de 2019, diez personas", "On October 25, 2019, 10 people", False, False),  # one shared
    ("人口１７００万のオランダは７％", "The Netherlands, with 17 million inhabitants, 7 percent", True, False),
    ("負債は約二十億円、3年で45社", "debts of 2 billion yen, 45 companies in three years", True, False),
    ("2030年に1億人、216億ドル", "by 2024 some 50 million people and 7 billion dollars", True, True),
    # a word multiplier, a decimal comma, a CJK century and decade: read alike (NTREX-128, FLORES-200 lines)
    ("Ha alcanzado los 3100 millones de € (3600 millones de $), y no 2200 millones", "It reached €3.1billion "
     "($3.6bn), up from €2.2 billion", False, False),
    ("2000億ドル（1500億ポンド）の品目", "$200 billion (£150 billion) worth of items", True, False),
    ("20 世纪 80 年代，他在《出租车》工作", "During the 1980s he worked on Taxi", True, False),
    ("Se esperan entre 7 y 15 centímetros, hasta 25", "Totals of 3 to 6 inches are expected, up to 10", False,
     True),  # converted units stay a disagreement: the rule cannot tell them from other numbers
])
def test_numbers_disagree(src, tgt, cjk, disagree):
    assert F.numbers_disagree(src, tgt, src_cjk=cjk) is disagree


def test_links_copies_and_skeletons():
    assert F.links("see https://x.org/a. or mail a.b@c.de #MeToo &#39; #1 @bob") == {
        "https://x.org/a", "a.b@c.de", "#metoo"}
    assert F.is_copy("Photo: Reuters", "PHOTO - reuters", 1.0)
    assert not F.is_copy("Photo: Reuters", "Foto: Reuters", 1.0) and F.is_copy("Photo: Reuters", "Foto: Reuters", 0.8)
    assert F.skeleton("Runde 3 von 12!", keep_digits=False) == F.skeleton("runde 4 von 10", keep_digits=False)
    assert F.is_cjk("zh") and F.is_cjk("jpn_Jpan") and not F.is_cjk("en")


def test_filter_reasons_first_rule_and_best_near_duplicate():
    src = F.Side("de", ["Photo: Reuters", "Runde 3 von 12", "Runde 4 von 12", "Ein Satz.", "Noch ein Satz.",
                        "Zwei Sätze."], np.array([0.9, 0.9, 0.9, 0.01, 0.9, 0.9]), np.array([30, 1, 1, 1, 1, 1]))
    tgt = F.Side("en", ["Photo: Reuters", "Round 3 of 12", "Round 4 of 12", "A sentence.", "One more sentence.",
                        "Two sentences."], np.array([0.9] * 6), np.array([30, 1, 1, 1, 1, 1]))
    score = np.array([0.3, 0.2, 0.25, 0.3, 0.3, 0.3])
    assert F.filter_reasons(src, tgt, score, F.FilterConfig()).tolist() == ["copy", None, None, None, None, None]
    reasons = F.filter_reasons(src, tgt, score, F.FilterConfig(near_duplicates=True))
    assert reasons.tolist() == ["copy", "near_duplicate", None, None, None, None]
    with_lid = F.FilterConfig(copy=False, min_lid_prob=0.05, near_duplicates=True)
    assert F.filter_reasons(src, tgt, score, with_lid).tolist() == [
        "boilerplate", "near_duplicate", None, "lid", None, None]
    none = F.FilterConfig(numbers=False, copy=False, boilerplate_copies=0)
    assert none.enabled == () and F.filter_reasons(src, tgt, score, none).tolist() == [None] * 6
    masks = F.rule_masks(src, tgt, score, F.FilterConfig(), F.RULES)
    assert masks["boilerplate"].tolist() == [True, False, False, False, False, False]
    assert not masks["urls"].any()


def test_filter_settings_are_checked():
    with pytest.raises(ValueError, match="copy_overlap"):
        F.FilterConfig(copy_overlap=0)
    with pytest.raises(ValueError, match="boilerplate_copies"):
        F.FilterConfig(boilerplate_copies=-1)
    with pytest.raises(ValueError, match="min_lid_prob"):
        F.FilterConfig(min_lid_prob=2)


def _mixture_scores(n_unrelated=6000, n_true=2000, seed=0):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.02, 0.03, n_unrelated), rng.normal(0.2, 0.04, n_true)])
    truth = np.concatenate([np.zeros(n_unrelated, bool), np.ones(n_true, bool)])
    return scores, truth


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
def test_target_precision_is_met_where_the_scores_are_a_mixture(target):
    scores, truth = _mixture_scores()
    threshold, info = choose_threshold(scores, MiningConfig(target_precision=target))
    assert info["method"] == "from_target_precision" and info["target_precision"] == target
    kept = scores >= threshold
    measured = truth[kept].mean()
    assert measured == pytest.approx(info["estimated_precision"], abs=0.02)
    assert info["estimated_precision"] >= target and measured >= target - 0.02
    lower = choose_threshold(scores, MiningConfig(target_precision=target - 0.1))[0]
    assert lower < threshold  # less precision asked, more pairs


def test_precision_curve_from_the_null_and_an_unreachable_target():
    rng = np.random.default_rng(1)
    null = rng.normal(0.0, 0.03, 4000)
    scores = np.concatenate([rng.normal(0.3, 0.03, 900), rng.normal(0.0, 0.03, 100)])
    thresholds, estimate = precision_curve(scores, None, null)
    assert np.all(np.diff(thresholds) <= 0) and estimate[0] == 1.0
    t, est = threshold_for_precision((thresholds, estimate), 0.95)
    truth = np.arange(1000) < 900
    assert truth[scores >= t].mean() >= 0.95 and est >= 0.95
    # two modes that overlap everywhere: no threshold is 99% sure, so no pair rather than pairs below the target
    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.normal(0.02, 0.03, 6000), rng.normal(0.05, 0.03, 3000)])
    threshold, info = choose_threshold(scores, MiningConfig(target_precision=0.99))
    assert info["method"] == "target_precision_unreachable"
    assert threshold > scores.max() and info["best_estimated_precision"] < 0.99


def test_contradictory_threshold_flags_are_refused(tmp_path, capsys):
    from parabeam.pipelines.cli import main

    with pytest.raises(ValueError, match="contradict"):
        MiningConfig(threshold=0.1, target_precision=0.9)
    with pytest.raises(ValueError, match="target_precision must be"):
        MiningConfig(target_precision=1.5)
    assert main(["mine", "--input", str(tmp_path / "x.txt"), "--langs", "de,en", "--output", str(tmp_path / "o"),
                 "--threshold", "0.1", "--target-precision", "0.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--threshold 0.1 and --target-precision 0.9 contradict" in err


def test_posteriors_rise_with_the_score_whichever_mode_is_wider():
    from parabeam.mining.calibrate import posteriors

    scores = np.array([-0.3, -0.05, 0.0, 0.1, 0.2, 0.6])
    wide_upper = (np.array([0.0, 0.2]), np.array([0.02, 0.1]), np.array([0.7, 0.3]))
    wide_lower = (np.array([0.0, 0.2]), np.array([0.1, 0.02]), np.array([0.7, 0.3]))
    for fit in (wide_upper, wide_lower):
        p = posteriors(scores, fit)
        assert np.all(np.diff(p) >= 0) and p[0] < 0.05 and p[-1] >= p[-2] > 0.9
