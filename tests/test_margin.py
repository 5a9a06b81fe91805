"""Tier 1: hand-computed margin cases; tier 2: vectorised paths against loops and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import unit_vectors
from parabeam.mining.knn import exact_knn, exact_knn_both, knn_bruteforce, knn_sharded, merge_topk
from parabeam.mining.margin import knn_means, margin_scores
from parabeam.mining.mine import MiningConfig, mine, mine_from_knn, score_candidates, search_both
from parabeam.mining.pairs import MinedPairs
from parabeam.mining.passes import (
    Segments,
    cosine_floor,
    drop_overlaps,
    drop_weak_alternates,
    refill_neighbours,
    refilled_means,
    used_rows,
)
from parabeam.mining.retrieval import greedy_one_to_one, greedy_one_to_one_loop
from parabeam.mining.text import ALTERNATE_SENTENCE


def test_ratio_margin_3x3_by_hand():
    # cosine matrix of 3 source x 3 target sentences, k = 2
    sim = np.array([[0.9, 0.5, 0.1], [0.4, 0.8, 0.6], [0.2, 0.3, 0.7]], dtype=np.float32)
    k = 2
    # each row's 2 best: src0 (0.9, 0.5) -> 0.7; src1 (0.8, 0.6) -> 0.7; src2 (0.7, 0.3) -> 0.5
    mean_src = np.sort(sim, axis=1)[:, ::-1][:, :k].mean(axis=1)
    # each column's 2 best: tgt0 (0.9, 0.4) -> 0.65; tgt1 (0.8, 0.5) -> 0.65; tgt2 (0.7, 0.6) -> 0.65
    mean_tgt = np.sort(sim, axis=0)[::-1][:k].mean(axis=0)
    np.testing.assert_allclose(mean_src, [0.7, 0.7, 0.5], atol=1e-6)
    np.testing.assert_allclose(mean_tgt, [0.65, 0.65, 0.65], atol=1e-6)
    ratio = margin_scores(sim, mean_src[:, None], mean_tgt[None, :], "ratio")
    # (0,0): 0.9 / ((0.7 + 0.65) / 2) = 0.9 / 0.675
    assert ratio[0, 0] == pytest.approx(0.9 / 0.675, rel=1e-6)
    # (2,2): 0.7 / ((0.5 + 0.65) / 2) = 0.7 / 0.575
    assert ratio[2, 2] == pytest.approx(0.7 / 0.575, rel=1e-6)
    distance = margin_scores(sim, mean_src[:, None], mean_tgt[None, :], "distance")
    assert distance[1, 1] == pytest.approx(0.8 - 0.675, abs=1e-6)
    absolute = margin_scores(sim, mean_src[:, None], mean_tgt[None, :], "absolute")
    assert absolute[1, 2] == pytest.approx(0.6)


def test_knn_means_ignore_padding():
    D = np.array([[0.5, 0.3, -np.inf]], dtype=np.float32)
    assert knn_means(D)[0] == pytest.approx(0.4)


def test_sharded_knn_equals_bruteforce():
    rng = np.random.default_rng(1)
    queries, database = unit_vectors(rng, 300, 32), unit_vectors(rng, 1000, 32)
    D_ref, I_ref = knn_bruteforce(queries, database, 7)
    shards = [database[:123], database[123:500], database[500:501], database[501:]]
    D, I = knn_sharded(queries, shards, 7, query_block=64)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, atol=1e-5)


def test_merge_topk_breaks_ties_by_id():
    D, I = merge_topk(np.array([[0.5, 0.1]]), np.array([[9, 3]]), np.array([[0.5, 0.2]]), np.array([[2, 4]]), 3)
    np.testing.assert_array_equal(I, [[2, 9, 4]])


def test_knn_smaller_database_than_k():
    rng = np.random.default_rng(2)
    D, I = knn_sharded(unit_vectors(rng, 3, 8), [unit_vectors(rng, 2, 8)], 4)
    assert (I[:, 2:] == -1).all() and np.isneginf(D[:, 2:]).all()


def test_greedy_one_to_one_matches_loop():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 200
        src, tgt = rng.integers(0, 40, n), rng.integers(0, 40, n)
        score = rng.integers(0, 30, n).astype(np.float32)  # many ties on purpose
        np.testing.assert_array_equal(greedy_one_to_one(src, tgt, score), greedy_one_to_one_loop(src, tgt, score))


def _planted(rng, n_pairs=200, n_noise=300, d=48, noise=0.35):
    tgt = unit_vectors(rng, n_pairs + n_noise, d)
    src = tgt[:n_pairs] + noise * rng.standard_normal((n_pairs, d)).astype(np.float32) / np.sqrt(d)
    src = np.concatenate([src, rng.standard_normal((n_noise, d)).astype(np.float32)])
    return src / np.linalg.norm(src, axis=1, keepdims=True), tgt


@pytest.mark.parametrize("retrieval", ["forward", "backward", "intersection", "max"])
@pytest.mark.parametrize("margin", ["ratio", "distance", "absolute"])
def test_sharded_mining_equals_unsharded(margin, retrieval):
    rng = np.random.default_rng(4)
    src, tgt = _planted(rng)
    config = MiningConfig(margin=margin, retrieval=retrieval, threshold=-10.0)
    whole = score_candidates(src, tgt, config)
    sharded = score_candidates([src[:77], src[77:400], src[400:]], [tgt[:250], tgt[250:]], config)
    np.testing.assert_array_equal(whole.src, sharded.src)
    np.testing.assert_array_equal(whole.tgt, sharded.tgt)
    np.testing.assert_allclose(whole.score, sharded.score, rtol=1e-5, atol=1e-6)  # distance margins near 0


def test_max_retrieval_is_one_to_one_and_finds_planted_pairs():
    rng = np.random.default_rng(5)
    src, tgt = _planted(rng)
    # random 48-d noise reaches ratio margins of ~1.35 against 500 targets; planted pairs score far above
    pairs = mine(src, tgt, MiningConfig(margin="ratio", threshold=1.4))
    assert len(set(pairs.src)) == len(pairs) and len(set(pairs.tgt)) == len(pairs)
    correct = (pairs.src == pairs.tgt) & (pairs.src < 200)
    assert correct.sum() / 200 >= 0.95  # recall of planted pairs
    assert correct.mean() >= 0.95  # precision


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="margin"):
        MiningConfig(margin="cosine")
    with pytest.raises(ValueError, match="k must be"):
        MiningConfig(k=0)


def test_exact_knn_blocks_and_ties():
    # small integer vectors: every inner product is an exact integer in float32 whatever the BLAS, so equal
    # similarities are exact ties by construction (unit vectors tie only up to rounding, which BLAS builds differ in)
    rng = np.random.default_rng(4)
    database = rng.integers(-3, 4, (50, 16)).astype(np.float32)
    database[[7, 20, 33, 41]] = database[3]  # five copies of one vector, spread over blocks of 6
    queries = np.concatenate([database[3:4], rng.integers(-3, 4, (20, 16)).astype(np.float32)])
    D_ref, I_ref = knn_bruteforce(queries, database, 4)
    D, I = exact_knn(queries, database, 4, query_block=5, database_block=6)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_array_equal(I[0], [3, 7, 20, 33])  # equal similarities: smaller ids first
    np.testing.assert_array_equal(D, D_ref)
    D, I = exact_knn(queries[:2], database[:2], 4)  # fewer rows than k
    assert (I[:, 2:] == -1).all() and np.isneginf(D[:, 2:]).all()


def test_exact_knn_both_directions_from_one_pass():
    rng = np.random.default_rng(5)
    # integer vectors: exact ties by construction (see test_exact_knn_blocks_and_ties)
    queries, database = (rng.integers(-3, 4, (n, 16)).astype(np.float32) for n in (37, 53))
    database[[10, 30]] = queries[2]  # a tie in both directions
    (D_f, I_f), (D_b, I_b) = exact_knn_both(queries, database, 4, query_block=8, database_block=11)
    D_ref, I_ref = knn_bruteforce(queries, database, 4)
    np.testing.assert_array_equal(I_f, I_ref)
    np.testing.assert_allclose(D_f, D_ref, atol=1e-5)
    D_ref, I_ref = knn_bruteforce(database, queries, 4)
    np.testing.assert_array_equal(I_b, I_ref)
    np.testing.assert_allclose(D_b, D_ref, atol=1e-5)
    assert I_f[2, 0] == 10 and I_f[2, 1] == 30  # equal similarities: smaller id first


def test_drop_overlaps_keeps_one_alignment_per_text():
    # source: doc A line 0 = whole two-sentence line (row 0) and its sentences (rows 1, 2); doc A line 1 (row 3)
    # target: doc B line 0 whole (row 0) and its sentences (rows 1, 2); doc B line 1 (row 3)
    alt = ALTERNATE_SENTENCE  # the sentences of a line also mined whole (segment=auto)
    src = Segments.from_units([("A", 0)] * 4, [0, 0, 0, 1], [-2, alt, alt + 1, -1])
    tgt = Segments.from_units([("B", 0)] * 4, [0, 0, 0, 1], [-2, alt, alt + 1, -1])

    def run(src_rows, tgt_rows, score):
        pairs = MinedPairs(np.array(src_rows), np.array(tgt_rows), np.array(score, np.float32),
                           np.zeros(len(src_rows), np.float32))
        kept = drop_overlaps(pairs, src, tgt)
        return sorted(zip(kept.src.tolist(), kept.tgt.tolist()))

    # the whole lines align best: their sentences' pairs go
    assert run([0, 1, 2, 3], [0, 1, 2, 3], [1.5, 1.3, 1.4, 1.2]) == [(0, 0), (3, 3)]
    # a sentence pair scores best: the whole-line pair goes, the other sentence pair stays
    assert run([0, 1, 2], [0, 1, 2], [1.3, 1.5, 1.25]) == [(1, 1), (2, 2)]
    # a whole line against a single-sentence line, and a sentence of that whole line elsewhere
    assert run([0, 1], [3, 1], [1.4, 1.3]) == [(0, 3)]


def test_weak_alternates_need_the_extra_margin():
    alt = ALTERNATE_SENTENCE
    # source rows: 0 = a two-sentence line mined whole, 1 and 2 its sentences, 3 a sentence of a longer paragraph
    # (split only: not an alternate); target rows 0-3 are one-sentence lines
    src_parts, tgt_parts = np.array([-2, alt, alt + 1, 0]), np.array([-1, -1, -1, -1])
    pairs = MinedPairs(np.array([1, 0, 2, 3]), np.array([0, 1, 2, 3]), np.array([1.22, 1.21, 1.30, 1.21], np.float32),
                       np.zeros(4, np.float32))
    kept = drop_weak_alternates(pairs, src_parts[pairs.src], tgt_parts[pairs.tgt], 1.25)
    # the sentence pair at 1.22 < 1.25 goes; the one at 1.30 stays; whole lines and split-only sentences need 1.2
    assert sorted(zip(kept.src.tolist(), kept.tgt.tolist())) == [(0, 1), (2, 2), (3, 3)]
    assert len(drop_weak_alternates(pairs, src_parts[pairs.src], tgt_parts[pairs.tgt], 1.2)) == 4
    # an alternate on the target side counts the same
    flipped = MinedPairs(pairs.tgt, pairs.src, pairs.score, pairs.cosine)
    assert len(drop_weak_alternates(flipped, tgt_parts[flipped.src], src_parts[flipped.tgt], 1.25)) == 3
    # without the margin, the 1.22 sentence pair claims line 0 first and the whole line's pair at 1.21 is lost
    src = Segments.from_units([("A", 0)] * 4, [0, 0, 0, 1], src_parts)
    tgt = Segments.from_units([("B", i) for i in range(4)], [0] * 4, tgt_parts)
    two = MinedPairs(np.array([1, 0]), np.array([0, 1]), np.array([1.22, 1.21], np.float32), np.zeros(2, np.float32))
    assert drop_overlaps(two, src, tgt).src.tolist() == [1]
    strict = drop_weak_alternates(two, src_parts[two.src], tgt_parts[two.tgt], 1.25)
    assert drop_overlaps(strict, src, tgt).src.tolist() == [0]
    with pytest.raises(ValueError, match="alternate_margin"):
        MiningConfig(alternate_margin=-0.1)


@pytest.mark.gpu
def test_exact_knn_both_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(6)
    queries, database = unit_vectors(rng, 300, 64), unit_vectors(rng, 700, 64)
    (D_cpu, I_cpu), (Db_cpu, Ib_cpu) = exact_knn_both(queries, database, 4, use_gpu=False)
    (D_gpu, I_gpu), (Db_gpu, Ib_gpu) = exact_knn_both(queries, database, 4, query_block=128, database_block=256)
    np.testing.assert_array_equal(I_gpu, I_cpu)
    np.testing.assert_array_equal(Ib_gpu, Ib_cpu)
    np.testing.assert_allclose(D_gpu, D_cpu, atol=1e-4)
    np.testing.assert_allclose(Db_gpu, Db_cpu, atol=1e-4)


def test_refill_neighbours_by_hand():
    D = np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.4, 0.3, 0.2], [0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    I = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, -1, -1]])
    removed_other = np.array([False, True, False, True])  # other rows 1 and 3 were paired
    removed_rows = np.array([False, False, True])  # query row 2 was paired: no neighbour left
    D2, I2 = refill_neighbours(D, I, removed_rows, removed_other, k=2)
    np.testing.assert_array_equal(I2, [[0, 2], [2, 0], [-1, -1]])
    np.testing.assert_allclose(D2[:2], [[0.9, 0.7], [0.4, 0.2]])
    assert np.isneginf(D2[2]).all()
    # row 2 has no neighbour left: it keeps its first-pass mean, the others average what is left
    np.testing.assert_allclose(refilled_means(D2, np.array([0.1, 0.2, 0.75])), [0.8, 0.3, 0.75], rtol=1e-6)


def test_used_rows_counts_every_segment_of_a_used_line():
    docs = [("a", 0), ("a", 0), ("a", 0), ("b", 0), ("a", 0)]
    lines = np.array([1, 1, 1, 1, 2])
    parts = np.array([-2, 0, 1, -1, -1])  # row 0: line 1 whole, rows 1-2 its sentences
    np.testing.assert_array_equal(used_rows(np.array([1]), Segments.whole_lines(5)), [False, True, False, False, False])
    segments = Segments.from_units(docs, lines, parts)
    assert len(set(segments.line[:3])) == 1 and len(set(segments.line)) == 3  # rows 0-2 share doc a, line 1
    np.testing.assert_array_equal(used_rows(np.array([1]), segments), [True, True, True, False, False])
    np.testing.assert_array_equal(used_rows(np.array([3, 4]), segments), [False, False, False, True, True])


def _crowded_story(weak_translation: float = 0.6):
    """Two translations about one story (they share a direction, so each is the other's second neighbour), 8
    clear background pairs, 10 unpaired sentences per side; every vector shares a common direction."""
    E = np.eye(128, dtype=np.float32)
    common, story = 0.8 * E[127], E[0]
    src, tgt = [], []
    src.append(common + story + 1.25 * E[1] + 0.3 * E[10]), tgt.append(common + story + 1.25 * E[1] + 0.3 * E[11])
    src.append(common + story + weak_translation * E[2] + 0.5 * E[12])
    tgt.append(common + story + weak_translation * E[2] + 0.5 * E[13])
    for i in range(8):
        src.append(common + E[20 + i] + 0.6 * E[40 + i]), tgt.append(common + E[20 + i] + 0.6 * E[50 + i])
    for i in range(10):
        src.append(common + E[60 + i]), tgt.append(common + E[80 + i])
    unit = lambda v: np.stack(v) / np.linalg.norm(np.stack(v), axis=1, keepdims=True)  # noqa: E731
    return unit(src), unit(tgt)


def test_second_pass_finds_the_pair_its_story_crowded_out():
    x, y = _crowded_story()
    config = MiningConfig(k=2, margin="ratio", threshold=1.2, second_pass_neighbours=2)
    fwd, bwd = search_both(x, y, config.search_k)
    first = mine_from_knn(fwd, bwd, MiningConfig(k=2, margin="ratio", threshold=1.2, second_pass_neighbours=0))
    # first pass: pair 1 (cosine 0.889) has pair 0 as second neighbour on both sides (0.603), so its margin
    # 0.889 / ((0.889 + 0.603) / 2) = 1.19 stays under 1.2; pair 0 (cosine 0.973) passes
    assert sorted(zip(first.src.tolist(), first.tgt.tolist())) == [(i, i) for i in [0, *range(2, 10)]]
    both = mine_from_knn(fwd, bwd, config)
    assert sorted(zip(both.src.tolist(), both.tgt.tolist())) == [(i, i) for i in range(10)]
    # second pass: pair 0 has left both neighbourhoods; the next neighbour is an unpaired sentence (0.333)
    added = both.src == 1
    assert x[1] @ y[1] == pytest.approx(0.8889, abs=1e-4) and x[1] @ y[11] == pytest.approx(0.3332, abs=1e-4)
    assert both.score[added][0] == pytest.approx(0.8889 / ((0.8889 + 0.3332) / 2), abs=1e-3)
    # the floor: the 5% quantile of the first pass's cosines (0.82, the background pairs)
    assert cosine_floor(first, 0.05) == pytest.approx(0.82, abs=1e-3)
    # a floor above pair 1's cosine (0.889) keeps the second pass from adding it
    strict = mine_from_knn(fwd, bwd, MiningConfig(k=2, margin="ratio", threshold=1.2, second_pass_neighbours=2,
                                                  second_pass_floor=0.99))
    assert len(strict) == len(first)


def test_second_pass_adds_nothing_when_the_first_pass_kept_nothing():
    x, y = _crowded_story()
    config = MiningConfig(margin="ratio", threshold=5.0, second_pass_neighbours=16)
    assert len(mine(x, y, config)) == 0
    with pytest.raises(ValueError, match="second_pass_floor"):
        MiningConfig(second_pass_floor=1.5)
    with pytest.raises(ValueError, match="second_pass_neighbours"):
        MiningConfig(second_pass_neighbours=-1)


@pytest.mark.parametrize("blocks", [(3, 5), (64, 7), (4096, 4096)])
def test_both_ways_search_over_shards_equals_bruteforce_with_ties(blocks):
    from parabeam.mining.knn import exact_knn_both, knn_both_sharded

    rng = np.random.default_rng(7)
    # small integers: many exact ties in both directions, whatever the BLAS
    x, y = (rng.integers(-2, 3, (n, 8)).astype(np.float32) for n in (61, 47))
    (D_f, I_f), (D_b, I_b) = exact_knn_both(x, y, 5, query_block=blocks[0], database_block=blocks[1])
    for (D, I), (Dr, Ir) in (((D_f, I_f), knn_bruteforce(x, y, 5)), ((D_b, I_b), knn_bruteforce(y, x, 5))):
        np.testing.assert_array_equal(I, Ir)
        np.testing.assert_array_equal(D, Dr)
    fwd, bwd = knn_both_sharded([x[:20], x[20:]], [y[:30], y[30:40], y[40:]], 5)
    np.testing.assert_array_equal(np.concatenate([I for _, I in fwd]), I_f)
    np.testing.assert_array_equal(np.concatenate([I for _, I in bwd]), I_b)
