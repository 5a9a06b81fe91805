"""Choosing the margin threshold per language pair.

- From a small gold set (``threshold_from_gold``): the F1-optimal threshold over the selected candidates, the
  BUCC practice of LASER (Artetxe & Schwenk 2019, sec. 4.1) and LaBSE; needs a few dozen known pairs that occur
  in the corpus.
- From the score distribution alone (``threshold_from_scores``, ``threshold: auto``, the default): the selected
  candidates' margins are a mixture of a broad mode of unrelated best neighbours (every sentence without a
  translation still has a best candidate) and a mode of translations above it. A two-component Gaussian mixture
  is fitted by EM and the threshold is the lowest score whose posterior for the upper component reaches
  ``posterior``. 0.95 was chosen on the comparable-news development sets (benchmarks/comparable_news.py: es, tr,
  pl, ja with the bundled encoder and the distance margin), where it lands 0.00-0.3 F1 under each pair's
  F1-optimal threshold; 0.9 sat 0.006-0.014 too low on all four (the unrelated mode has a heavier right tail than
  a Gaussian). Where the encoder separates a language poorly, the two modes overlap and no score is that sure;
  then the threshold is the Bayes boundary, where a candidate is as likely a translation as not (posterior 0.5):
  on the Czech-English development corpus (benchmarks/news_bucc.py, the bundled encoder covers Czech poorly) that
  gives 0.060 and F1 ~51 against 32.8 at the fixed fallback, the oracle being 54.1 at 0.045. No gold is needed,
  and margins that shift with the encoder, the corpus or a compressed index are followed.
- A mostly parallel corpus (most sentences have their translation on the other side: aligned sites, a test set)
  breaks that mixture's premise: there is hardly a mode of unrelated best neighbours, so the fit splits the
  translations in two and the threshold lands in their upper tail (Multi30k captions, 95% of lines translated:
  recall 0.07). The check uses a null sample the data gives for free, each sentence's runner-up margin (its
  second-best neighbour is almost never its translation): when the mixture's lower mode sits above the null's
  99th percentile it is not the unrelated mode, and the threshold becomes the null's 95th percentile, a score
  only one unrelated sentence in twenty reaches (``threshold_from_null``). benchmarks/parallel_share.py: on
  the development corpora (es, tr, pl, ja kept with 0-100% as many other lines as gold lines) the mean F1 over
  the 20 corpora is 97.82 with the check, 85.97 without (oracle 98.24); the 95th percentile was chosen over the
  90th (97.64), 97th (97.81), 99th (97.44) and an estimated 5% false discovery rate (Storey 2002; 97.17:
  candidates are best-of scores and rarely fall below the null's median, so the share of unrelated ones is
  underestimated). The check stays silent on all twelve comparable-news corpora.
- For a target precision (``target_precision``, ``--target-precision P``) instead of a margin value: the same
  mixture gives each candidate its posterior of being a translation, and the expected precision of the pairs
  scoring at least t is the mean posterior over them (``precision_curve``); the threshold is the lowest score
  where that estimate still reaches P. Where the null check finds a mostly parallel corpus the mixture means
  nothing, and the estimate is one minus an upper bound of the false discovery rate from the null sample
  (Benjamini & Hochberg 1995; Storey 2002): at most n * P(null >= t) of the n candidates scoring t or more are
  unrelated. report.json records the estimate at the threshold chosen and the curve (report.html draws it);
  the README compares estimated with measured precision on the development corpora.
"""

from __future__ import annotations

import numpy as np

AUTO_POSTERIOR = 0.95  # an encoder may have its own (Encoder.auto_posterior -> MiningConfig.auto_posterior)
OVERLAP_POSTERIOR = 0.5  # where the modes overlap too much for AUTO_POSTERIOR: the Bayes decision boundary
NULL_QUANTILE = 99.0  # a mixture's lower mode above this percentile of the null sample is not the unrelated mode
NULL_THRESHOLD_QUANTILE = 95.0  # then the threshold: this percentile of the null (chosen on es, tr, pl, ja)
MIXTURE_MAX_SCORES = 200_000  # the mixture is fitted on at most this many scores (a fixed-seed sample above)


def _fit_mixture(s: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, standard deviations and weights of a two-component 1-D Gaussian mixture fitted to ``s`` by EM."""
    mu = np.array([np.median(s), np.percentile(s, 99)])
    sd = np.array([s.std(), s.std() / 2])
    w = np.array([0.8, 0.2])
    for _ in range(iters):
        dens = w / (sd * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((s[:, None] - mu) / sd) ** 2)  # (n, 2)
        resp = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
        n_k = np.maximum(resp.sum(axis=0), 1e-12)
        w = n_k / len(s)
        mu = (resp * s[:, None]).sum(axis=0) / n_k
        sd = np.sqrt((resp * (s[:, None] - mu) ** 2).sum(axis=0) / n_k) + 1e-6
    return mu, sd, w


def _finite(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return s[np.isfinite(s)]


Mixture = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_mixture(scores: np.ndarray, iters: int = 200, min_scores: int = 200,
                max_scores: int = MIXTURE_MAX_SCORES) -> Mixture | None:
    """``(means, sds, weights)`` of the two-component mixture on the finite ``scores``; None when there are fewer
    than ``min_scores`` or they do not vary. Above ``max_scores`` the fit uses a fixed-seed sample of that many
    (EM is O(n) per iteration: a million scores took a minute; 200k pin the five parameters far more finely
    than the threshold needs)."""
    s = _finite(scores)
    if len(s) < min_scores or s.std() == 0:
        return None
    if len(s) > max_scores:
        s = np.random.default_rng(0).choice(s, max_scores, replace=False)
    return _fit_mixture(s, iters)


def threshold_from_mixture(fit: Mixture | None, posterior: float = AUTO_POSTERIOR) -> float | None:
    """The lowest score whose posterior for the upper component reaches ``posterior``; None without a fit or
    without a separate upper mode."""
    if fit is None:
        return None
    mu, sd, w = fit
    upper = int(mu.argmax())
    if abs(mu[1] - mu[0]) < 1e-3:
        return None
    grid = np.linspace(mu.min(), mu.max(), 4001)
    dens = w / (sd * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((grid[:, None] - mu) / sd) ** 2)
    post = dens[:, upper] / np.maximum(dens.sum(axis=1), 1e-300)
    above = np.flatnonzero(post >= posterior)
    return float(grid[above[0]]) if len(above) else None


def threshold_from_scores(
    scores: np.ndarray, posterior: float = AUTO_POSTERIOR, iters: int = 200, min_scores: int = 200
) -> float | None:
    """Threshold from a two-component 1-D Gaussian mixture on ``scores``; None when there are too few finite
    scores (< ``min_scores``) or the fit has no separate upper mode."""
    return threshold_from_mixture(fit_mixture(scores, iters, min_scores), posterior)


def threshold_from_null(null: np.ndarray, quantile: float = NULL_THRESHOLD_QUANTILE) -> float | None:
    """The ``quantile``-th percentile of ``null``, a sample of unrelated sentences' scores (runner-up margins):
    a score only that small a share of unrelated candidates reach. None when ``null`` has no finite value."""
    nul = _finite(null)
    return float(np.percentile(nul, quantile)) if len(nul) else None


def best_cut(hits: np.ndarray, n_gold: int) -> tuple[int, float, float, float] | None:
    """For candidates already sorted by decreasing score, ``hits[i]`` telling whether candidate i is gold:
    ``(j, precision, recall, f1)`` of keeping the top j + 1, the F1-optimal cut (the first, i.e. fewest pairs,
    among equal F1). None when no candidate is gold."""
    hits = np.asarray(hits, dtype=bool)
    if not hits.any() or n_gold < 1:
        return None
    tp = np.cumsum(hits)
    kept = np.arange(1, len(hits) + 1)
    f1 = 2 * tp / (kept + n_gold)  # = 2PR / (P + R)
    j = int(f1.argmax())
    return j, float(tp[j] / kept[j]), float(tp[j] / n_gold), float(f1[j])


def threshold_from_gold(scores: np.ndarray, is_gold: np.ndarray, n_gold: int) -> tuple[float, float] | None:
    """``(threshold, f1)``: the F1-optimal threshold over candidates with ``scores`` of which ``is_gold`` are
    known pairs, ``n_gold`` gold pairs in all (those not among the candidates count as missed). None when no
    candidate is gold."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    cut = best_cut(np.asarray(is_gold, dtype=bool)[order], n_gold)
    if cut is None:
        return None
    j, _, _, f1 = cut
    return float(scores[order[j]]), f1 * 100


def posteriors(scores: np.ndarray, fit: Mixture) -> np.ndarray:
    """Each score's posterior for the mixture's upper (translation) component, made non-decreasing in the score:
    below the lower mode's mean it stays at its value there, and above it never falls (whichever Gaussian is wider
    would otherwise win back a far tail: a wide upper mode the far left, a wide lower mode the far right)."""
    s = np.asarray(scores, dtype=np.float64)
    mu, sd, w = fit
    upper, lower = int(mu.argmax()), int(mu.argmin())

    def post(x: np.ndarray) -> np.ndarray:
        dens = w / (sd * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((x[:, None] - mu) / sd) ** 2)
        return np.nan_to_num(dens[:, upper] / np.maximum(dens.sum(axis=1), 1e-300), nan=0.0)

    order = np.argsort(s, kind="stable")
    at_lower_mode = float(post(mu[lower:lower + 1])[0])
    p = np.where(s[order] < mu[lower], at_lower_mode, post(s[order]))
    out = np.empty(len(s))
    out[order] = np.maximum.accumulate(p)
    return out


def precision_curve(scores: np.ndarray, fit: Mixture | None = None, null: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(thresholds, estimated precision)``: for each finite score t, by decreasing t, the estimated precision of
    the candidates scoring at least t. From the mixture's posteriors when ``fit``, else from the ``null`` sample
    (one minus the false discovery rate bound ``n * P(null >= t) / n_t``, n candidates in all and n_t scoring t or
    more); None with neither."""
    s = np.sort(_finite(scores))[::-1]
    if not len(s):
        return None
    kept = np.arange(1, len(s) + 1)
    if fit is not None:
        return s, np.cumsum(posteriors(s, fit)) / kept
    nul = np.sort(_finite(null)) if null is not None else np.zeros(0)
    if not len(nul):
        return None
    above = (len(nul) - np.searchsorted(nul, s, side="left")) / len(nul)  # P(null >= t)
    return s, np.clip(1.0 - len(s) * above / kept, 0.0, 1.0)


def threshold_for_precision(curve: tuple[np.ndarray, np.ndarray] | None, target: float
                            ) -> tuple[float, float] | None:
    """``(threshold, estimated precision)``: the lowest threshold of ``curve`` whose estimate reaches ``target``;
    None when no threshold does."""
    if curve is None:
        return None
    thresholds, estimate = curve
    ok = np.flatnonzero(estimate >= target)
    if not len(ok):
        return None
    j = int(ok[-1])
    return float(thresholds[j]), float(estimate[j])


def curve_points(curve: tuple[np.ndarray, np.ndarray], points: int = 40) -> list[list[float]]:
    """At most ``points`` ``[threshold, estimated precision]`` of a curve, evenly over its candidates (for
    report.json and report.html's calibration plot)."""
    thresholds, estimate = curve
    idx = np.unique(np.linspace(0, len(thresholds) - 1, min(points, len(thresholds))).round().astype(int))
    return [[round(float(thresholds[i]), 5), round(float(estimate[i]), 4)] for i in idx]


def choose_threshold(scores: np.ndarray, config, is_gold: np.ndarray | None = None,
                     n_gold: int = 0, null: np.ndarray | None = None) -> tuple[float, dict]:
    """One pair's threshold from its retrieval candidates' ``scores``: ``config.threshold`` when fixed, from the
    score distribution when it is ``auto`` (``threshold_from_scores``; ``threshold_from_null`` when ``null``, the
    runner-up margins, shows the corpus mostly parallel; the default when the fit fails), from gold when
    ``is_gold`` (which candidates are known pairs, of ``n_gold``) is given. Returns it with every estimate, as
    report.json's ``thresholds.<pair>`` records them."""
    threshold, method = config.fixed_threshold, "fixed"
    fit = fit_mixture(scores)  # once: the posterior (0.95) and 0.5 boundaries and the lower mode all come from it
    auto = threshold_from_mixture(fit, getattr(config, "auto_posterior", None) or AUTO_POSTERIOR)
    overlap = threshold_from_mixture(fit, OVERLAP_POSTERIOR) if auto is None else None
    info: dict = {"candidates": int(len(scores)), "from_scores": auto}
    if overlap is not None:
        info["from_overlapping_scores"] = overlap
    from_null = None
    nul = _finite(null) if null is not None else np.zeros(0)
    lower = float(fit[0].min()) if fit is not None and len(nul) >= 200 else None
    if lower is not None:
        info.update(lower_mode=lower, null_q99=float(np.percentile(nul, NULL_QUANTILE)))
        if lower > info["null_q99"]:  # the fit's lower mode is translations too: a mostly parallel corpus
            from_null = threshold_from_null(nul)
            info["from_null"] = from_null
    target = getattr(config, "target_precision", None)
    curve = precision_curve(scores, fit if from_null is None else None, nul if len(nul) else None)
    if curve is not None:
        info["precision_curve"] = curve_points(curve)
    if target is not None:
        found = threshold_for_precision(curve, target)
        info["target_precision"] = target
        if found is not None:
            threshold, method = found[0], "from_target_precision"
        elif curve is not None:  # no threshold is that sure: no pair rather than pairs below the target
            threshold, method = float(np.nextafter(curve[0][0], np.inf)), "target_precision_unreachable"
            info["best_estimated_precision"] = float(curve[1].max())
        else:
            method = "fixed_fallback"
    elif config.auto_threshold:
        if from_null is not None:
            threshold, method = from_null, "from_null"
        elif auto is not None:
            threshold, method = auto, "from_scores"
        elif overlap is not None:
            threshold, method = overlap, "from_overlapping_scores"
        else:
            method = "fixed_fallback"
    if is_gold is not None:
        found = threshold_from_gold(scores, is_gold, n_gold)
        info.update(gold_pairs=int(n_gold), gold_pairs_among_candidates=int(np.sum(is_gold)))
        if found is not None:
            threshold, method = found[0], "from_gold"
            info["from_gold"], info["gold_f1"] = found
    info.update(used=threshold, method=method)
    if curve is not None and curve[0][0] >= threshold:  # the estimate for the pairs at the threshold used
        info["estimated_precision"] = float(curve[1][np.flatnonzero(curve[0] >= threshold)[-1]])
    return threshold, info
