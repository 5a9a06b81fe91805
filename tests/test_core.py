"""The mining core (``parabeam.mining.passes`` through the in-memory miner) against a naive reference miner written
here in plain loops from the definitions: LASER's margin mining (Artetxe & Schwenk 2019: k nearest neighbours by
cosine, ratio margin over both sides' neighbourhood means, the best-margin neighbour per sentence, forward /
backward / intersection / max retrieval), then this project's rules: the threshold (+ the alternate margin for
sentences of lines also mined whole), one alignment per piece of text, and the second pass among the lines the
first pass left unpaired with its cosine floor."""

from __future__ import annotations

import numpy as np
import pytest

from parabeam.mining.mine import MiningConfig, mine_from_knn, search_both
from parabeam.mining.passes import Segments
from parabeam.mining.text import ALTERNATE_SENTENCE, WHOLE_LINE, WHOLE_MULTI_SENTENCE_LINE


def _naive_candidates(sim, rows, cols, k, retrieval, margin_kind="ratio"):
    """LASER's candidates among ``rows`` x ``cols`` of ``sim``: list of (score, src, tgt, cosine), by loops."""
    def neighbours(i, among, cosine):
        ranked = sorted(among, key=lambda j: (-cosine(i, j), j))  # ties: the smaller id first
        return ranked[:k]

    fwd_cos, bwd_cos = (lambda i, j: sim[i][j]), (lambda j, i: sim[i][j])
    nn_src = {i: neighbours(i, cols, fwd_cos) for i in rows}
    nn_tgt = {j: neighbours(j, rows, bwd_cos) for j in cols}
    mean_src = {i: sum(sim[i][j] for j in nn) / len(nn) for i, nn in nn_src.items() if nn}
    mean_tgt = {j: sum(sim[i][j] for i in nn) / len(nn) for j, nn in nn_tgt.items() if nn}

    def margin(i, j):
        mean = (mean_src[i] + mean_tgt[j]) / 2
        return sim[i][j] / mean if margin_kind == "ratio" else sim[i][j] - mean

    forward, backward = {}, {}
    for i, nn in nn_src.items():
        if nn:
            best = max(nn, key=lambda j: (margin(i, j), -nn.index(j)))  # the first among equal margins
            forward[i] = (margin(i, best), i, best, sim[i][best])
    for j, nn in nn_tgt.items():
        if nn:
            best = max(nn, key=lambda i: (margin(i, j), -nn.index(i)))
            backward[j] = (margin(best, j), best, j, sim[best][j])
    if retrieval == "forward":
        return list(forward.values())
    if retrieval == "backward":
        return list(backward.values())
    if retrieval == "intersection":
        return [c for c in forward.values() if c[2] in backward and backward[c[2]][1] == c[1]]
    union = list(forward.values()) + list(backward.values())  # max: greedy one-to-one by decreasing score
    kept, used_src, used_tgt = [], set(), set()
    for c in sorted(union, key=lambda c: -c[0]):
        if c[1] not in used_src and c[2] not in used_tgt:
            kept.append(c)
            used_src.add(c[1])
            used_tgt.add(c[2])
    return kept


def _naive_rules(cands, threshold, alternate_margin, src_units, tgt_units, floor=None, lengths=None, ratio=None):
    """Threshold, the cosine floor, the length ratio, the alternate margin, then one alignment per piece of text."""
    out = []
    for score, i, j, cos in cands:
        if ratio is not None and max(lengths[0][i], lengths[1][j]) > ratio * min(lengths[0][i], lengths[1][j]):
            continue
        alternate = src_units[i][1] >= ALTERNATE_SENTENCE or tgt_units[j][1] >= ALTERNATE_SENTENCE
        if score < threshold or (alternate and score < threshold + alternate_margin):
            continue
        if floor is not None and cos < floor:
            continue
        out.append((score, i, j, cos))
    kept, claims = [], ({}, {})
    for c in sorted(out, key=lambda c: -c[0]):
        segments = [(side, units[row]) for side, units, row in ((0, src_units, c[1]), (1, tgt_units, c[2]))]
        overlaps = False
        for side, (line, part) in segments:
            if part == WHOLE_LINE or line not in claims[side]:
                continue
            # a whole multi-sentence line overlaps any claim on its line; a sentence overlaps a claimed whole line
            if part == WHOLE_MULTI_SENTENCE_LINE or claims[side][line] == "whole":
                overlaps = True
        if overlaps:
            continue
        kept.append(c)
        for side, (line, part) in segments:
            if part != WHOLE_LINE:
                claims[side][line] = "whole" if part == WHOLE_MULTI_SENTENCE_LINE else claims[side].get(line, "part")
    return kept


def naive_mine(x, y, src_units, tgt_units, *, k, threshold, retrieval, alternate_margin, floor_quantile,
               second_pass=True, margin="ratio", lengths=None, ratio=None):
    """Both passes by the definitions; ``*_units``: (line id, part) per row. Returns {(src, tgt): score}."""
    sim = [[float(np.dot(a, b)) for b in y] for a in x]
    first = _naive_rules(_naive_candidates(sim, list(range(len(x))), list(range(len(y))), k, retrieval, margin),
                         threshold, alternate_margin, src_units, tgt_units, lengths=lengths, ratio=ratio)
    result = {(i, j): s for s, i, j, _ in first}
    if not second_pass or not first:
        return result
    cosines = sorted(c for *_, c in first)
    floor = float(np.quantile(cosines, floor_quantile))
    used_src_lines = {src_units[i][0] for _, i, _, _ in first}
    used_tgt_lines = {tgt_units[j][0] for _, _, j, _ in first}
    rows = [i for i in range(len(x)) if src_units[i][0] not in used_src_lines]
    cols = [j for j in range(len(y)) if tgt_units[j][0] not in used_tgt_lines]
    if rows and cols:
        again = _naive_rules(_naive_candidates(sim, rows, cols, k, retrieval, margin), threshold, alternate_margin,
                             src_units, tgt_units, floor, lengths, ratio)
        result.update({(i, j): s for s, i, j, _ in again})
    return result


def _corpus(seed: int, n_lines: int = 40, d: int = 24):
    """Lines of one or two sentences on both sides; most source lines have a translation, split the same way or
    merged into one sentence; a shared 'topic' direction crowds neighbourhoods. Rows as parabeam mines them with
    segment=auto: a two-sentence line is a row whole and a row per sentence."""
    rng = np.random.default_rng(seed)
    topic = rng.standard_normal(d)

    def unit(v):
        return v / np.linalg.norm(v)

    def side(lines, noise):
        vectors, units = [], []
        for line_id, (sentences, merged) in enumerate(lines):
            noisy = [unit(s + noise * rng.standard_normal(d)) for s in sentences]
            if len(noisy) == 1 or merged:
                vectors.append(unit(sum(noisy)))
                units.append((line_id, WHOLE_LINE))
            else:
                vectors.append(unit(sum(noisy)))
                units.append((line_id, WHOLE_MULTI_SENTENCE_LINE))
                for n, v in enumerate(noisy):
                    vectors.append(v)
                    units.append((line_id, ALTERNATE_SENTENCE + n))
        return np.array(vectors, dtype=np.float32), units

    content = [[topic * 0.8 + rng.standard_normal(d) for _ in range(1 + (rng.random() < 0.3))]
               for _ in range(n_lines)]
    src_lines = [(c, False) for c in content]
    tgt_lines = [(c, rng.random() < 0.2) for c in content[: int(0.75 * n_lines)]]  # some merge two sentences
    tgt_lines += [([topic * 0.8 + rng.standard_normal(d)], False) for _ in range(n_lines // 4)]
    order = rng.permutation(len(tgt_lines))
    tgt_lines = [tgt_lines[i] for i in order]
    x, src_units = side(src_lines, 0.6)
    y, tgt_units = side(tgt_lines, 0.6)
    return x, y, src_units, tgt_units


def _core(x, y, src_units, tgt_units, config, lengths=None):
    fwd, bwd = search_both(x, y, config.search_k)
    segs = [Segments(np.array([u[0] for u in units], np.int64), np.array([u[1] for u in units], np.int64),
                     None if lengths is None else np.asarray(side_lengths))
            for units, side_lengths in zip((src_units, tgt_units), lengths or (None, None))]
    pairs = mine_from_knn(fwd, bwd, config, src=segs[0], tgt=segs[1])
    return {(int(s), int(t)): float(sc) for s, t, sc in zip(pairs.src, pairs.tgt, pairs.score)}


@pytest.mark.parametrize("margin,threshold", [("ratio", 1.1), ("distance", 0.06)])
@pytest.mark.parametrize("retrieval", ["max", "forward", "backward", "intersection"])
@pytest.mark.parametrize("seed", [0, 3, 4])
def test_core_equals_the_naive_reference_miner(seed, retrieval, margin, threshold):
    x, y, src_units, tgt_units = _corpus(seed)
    # the second pass searches deep enough that refilled lists are the exact neighbours among what is left
    rng = np.random.default_rng(seed)
    lengths = (rng.integers(10, 60, len(x)).tolist(), rng.integers(10, 60, len(y)).tolist())  # some ratios > 2
    config = MiningConfig(k=4, retrieval=retrieval, margin=margin, threshold=threshold, alternate_margin=0.05,
                          second_pass_neighbours=len(x) + len(y), second_pass_floor=0.05, max_length_ratio=2.0)
    want = naive_mine(x, y, src_units, tgt_units, k=4, threshold=threshold, retrieval=retrieval, alternate_margin=0.05,
                      floor_quantile=0.05, margin=margin, lengths=lengths, ratio=2.0)
    got = _core(x, y, src_units, tgt_units, config, lengths)
    assert sorted(got) == sorted(want)
    np.testing.assert_allclose([got[p] for p in sorted(got)], [want[p] for p in sorted(want)], rtol=1e-5)
    assert len(got) >= 10  # the corpus is not trivially empty at this threshold


def test_the_reference_exercises_every_rule():
    # on these corpora the rules being compared actually fire: the second pass adds pairs, alternates are
    # dropped by the extra margin, and whole lines and sentences compete for the same text
    x, y, src_units, tgt_units = _corpus(0)
    kw = dict(k=4, threshold=1.1, retrieval="max", floor_quantile=0.05)
    one_pass = naive_mine(x, y, src_units, tgt_units, alternate_margin=0.05, second_pass=False, **kw)
    both = naive_mine(x, y, src_units, tgt_units, alternate_margin=0.05, **kw)
    no_margin = naive_mine(x, y, src_units, tgt_units, alternate_margin=0.0, second_pass=False, **kw)
    assert len(both) > len(one_pass)
    assert no_margin != one_pass
    parts = [src_units[i][1] for i, _ in both]
    assert any(p == WHOLE_MULTI_SENTENCE_LINE for p in parts) and any(p >= ALTERNATE_SENTENCE for p in parts)
