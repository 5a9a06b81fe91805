"""Threshold calibration from gold pairs and from the score distribution."""

from __future__ import annotations

import numpy as np
import pytest

from parabeam.mining.calibrate import threshold_from_gold, threshold_from_scores


def test_gold_threshold_by_hand():
    scores = np.array([1.5, 1.4, 1.3, 1.2, 1.1])
    is_gold = np.array([True, True, False, True, False])
    # keep top 2: P=1, R=2/4 -> F1 .667; top 4: P=.75, R=.75 -> .75; top 5: .667
    threshold, f1 = threshold_from_gold(scores, is_gold, n_gold=4)
    assert threshold == 1.2 and abs(f1 - 75.0) < 1e-9
    assert threshold_from_gold(scores, np.zeros(5, bool), 4) is None


def test_scores_threshold_separates_two_modes():
    rng = np.random.default_rng(0)
    noise = rng.normal(1.03, 0.05, 4000)
    pairs = rng.normal(1.40, 0.12, 1000)
    t = threshold_from_scores(np.concatenate([noise, pairs, [-np.inf]]))
    assert 1.1 < t < 1.25
    # most true pairs above it, few noise scores
    assert (pairs >= t).mean() > 0.95 and (noise >= t).mean() < 0.01


def test_scores_threshold_needs_enough_scores():
    assert threshold_from_scores(np.array([1.0, 1.5] * 50)) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_threshold_agrees_with_scikit_learns_mixture(seed):
    # an independent reference: scikit-learn's GaussianMixture fitted to the same scores, and the lowest score
    # whose posterior for the upper component reaches 0.9
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.02, 0.03, 6000), rng.normal(0.22, 0.07, 2000)])  # distance margins
    ours = threshold_from_scores(scores, posterior=0.9)
    gm = GaussianMixture(2, random_state=seed).fit(scores[:, None])
    upper = int(np.argmax(gm.means_.ravel()))
    grid = np.linspace(gm.means_.min(), gm.means_.max(), 4001)
    reference = grid[np.flatnonzero(gm.predict_proba(grid[:, None])[:, upper] >= 0.9)[0]]
    assert ours == pytest.approx(reference, abs=2e-3)


def _mostly_parallel(rng, share=0.95, n=6000):
    """Scores shaped like a mostly parallel corpus (Multi30k, 95% of lines translated): one broad mode of
    translations, a few unrelated best neighbours, and the runner-up null below both."""
    pairs = rng.normal(0.12, 0.07, int(share * n))
    unrelated = rng.normal(-0.01, 0.03, n - len(pairs))
    null = rng.normal(-0.04, 0.03, 2 * n)
    return pairs, unrelated, null


def test_mostly_parallel_corpus_switches_to_the_null_and_keeps_the_translations():
    from parabeam.mining.calibrate import choose_threshold
    from parabeam.mining.config import MiningConfig

    pairs, unrelated, null = _mostly_parallel(np.random.default_rng(0))
    scores = np.concatenate([pairs, unrelated])
    config = MiningConfig()
    mixture = threshold_from_scores(scores)
    assert mixture is None or (pairs >= mixture).mean() < 0.7  # the failure the null check exists for
    t, info = choose_threshold(scores, config, null=null)
    assert info["method"] == "from_null" and info["lower_mode"] > info["null_q99"]
    kept_pairs, kept_unrelated = (pairs >= t).sum(), (unrelated >= t).sum()
    assert kept_pairs / len(pairs) > 0.9
    assert kept_pairs / (kept_pairs + kept_unrelated) > 0.97
    assert t == pytest.approx(np.percentile(null, 95))


def test_null_check_stays_silent_on_a_comparable_corpus():
    from parabeam.mining.calibrate import choose_threshold
    from parabeam.mining.config import MiningConfig

    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(0.02, 0.03, 6000), rng.normal(0.22, 0.07, 2000)])
    null = rng.normal(-0.02, 0.03, 16000)
    t, info = choose_threshold(scores, MiningConfig(), null=null)
    assert info["method"] == "from_scores" and t == threshold_from_scores(scores)
    assert "from_null" not in info


def test_threshold_from_null_is_its_95th_percentile():
    from parabeam.mining.calibrate import threshold_from_null

    null = np.concatenate([np.arange(101.0), [np.inf, -np.inf, np.nan]])  # non-finite values are left out
    assert threshold_from_null(null) == pytest.approx(95.0)
    assert threshold_from_null(null, quantile=90) == pytest.approx(90.0)
    assert threshold_from_null(np.array([np.nan])) is None


def test_runner_up_is_the_second_best_margin():
    from parabeam.mining.margin import margin_scores
    from parabeam.mining.pairs import runner_up_scores, shard_candidates

    rng = np.random.default_rng(0)
    D = np.sort(rng.uniform(0.2, 0.9, (50, 4)).astype(np.float32), axis=1)[:, ::-1].copy()
    I = rng.integers(0, 30, (50, 4))
    own, other = rng.uniform(0.2, 0.5, 50).astype(np.float32), rng.uniform(0.2, 0.5, 30).astype(np.float32)
    c = shard_candidates(D, I, own, other, "distance")
    full = margin_scores(D, own[:, None], other[I], "distance")
    for row in range(50):
        assert c.runner_up[row] == pytest.approx(sorted(full[row])[-2])
    assert len(runner_up_scores([c], [c])) == 100


def test_a_large_pair_is_fitted_on_a_sample_with_the_same_threshold():
    from parabeam.mining.calibrate import fit_mixture, threshold_from_mixture

    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.02, 0.03, 80_000), rng.normal(0.2, 0.07, 20_000)])
    full = threshold_from_mixture(fit_mixture(scores, max_scores=len(scores)))
    sampled = threshold_from_mixture(fit_mixture(scores, max_scores=25_000))
    assert sampled == pytest.approx(full, abs=0.005)
    assert sampled == threshold_from_mixture(fit_mixture(scores, max_scores=25_000))  # a fixed seed: reproducible
