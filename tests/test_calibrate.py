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
