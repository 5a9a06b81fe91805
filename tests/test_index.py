"""FAISS index choice, building from shards, search order, I/O, and index-based mining against exact mining."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import unit_vectors
from parabeam.mining.index import (
    IndexConfig,
    build_index,
    deserialize,
    factory_string,
    n_lists,
    search,
    serialize,
    to_gpu_if_available,
)
from parabeam.mining.knn import knn_bruteforce
from parabeam.mining.mine import MiningConfig, mine, mine_indexed


def _loader(shards):
    return lambda i: shards[i]


def test_factory_choice_by_size():
    cfg = IndexConfig(flat_max=1000, pq_min=100_000, train_size=50_000)
    assert factory_string(999, 512, cfg) == "Flat"
    assert factory_string(50_000, 512, cfg) == f"IVF{n_lists(50_000)},Flat"
    assert factory_string(10**6, 512, cfg) == f"OPQ128,IVF{50_000 // 39},PQ256x4fsr"  # lists capped by the sample
    assert factory_string(10**6, 512, IndexConfig(kind="ivfpq", pq_m=64)).startswith("OPQ64,")
    assert factory_string(10**6, 384, IndexConfig(kind="ivfpq")).endswith(",PQ192x4fsr")  # 96 bytes a vector
    assert factory_string(10**6, 6, IndexConfig(kind="ivfpq")).endswith(",PQ2x4fsr")  # d / 4 rounded to fit
    with pytest.raises(ValueError, match="even dimension"):
        factory_string(10**6, 7, IndexConfig(kind="ivfpq"))
    assert factory_string(10**6, 512, IndexConfig(train_size=10**6)) == f"IVF{n_lists(10**6)},Flat"
    assert factory_string(10, 512, IndexConfig(kind="IVF4,SQ8")) == "IVF4,SQ8"
    assert n_lists(10**6) == 4096 and n_lists(10) == 64


def test_flat_index_built_from_shards_equals_bruteforce():
    rng = np.random.default_rng(0)
    db, queries = unit_vectors(rng, 500, 32), unit_vectors(rng, 60, 32)
    shards = [db[:123], db[123:400], db[400:]]
    index, factory = build_index(_loader(shards), [len(s) for s in shards], 32)
    assert factory == "Flat" and index.ntotal == 500
    D, I = search(index, queries, 5)
    D_ref, I_ref = knn_bruteforce(queries, db, 5)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5)


def test_ivf_with_every_list_probed_is_exact_and_survives_serialisation():
    rng = np.random.default_rng(1)
    db, queries = unit_vectors(rng, 4000, 16), unit_vectors(rng, 50, 16)
    shards = [db[:1500], db[1500:]]
    cfg = IndexConfig(kind="ivf", train_size=4000)
    index, factory = build_index(_loader(shards), [1500, 2500], 16, cfg)
    assert factory.startswith("IVF")
    nlist = int(factory[3:].split(",")[0])
    restored = deserialize(serialize(index))
    D, I = search(restored, queries, 4, nprobe=nlist)
    D_ref, I_ref = knn_bruteforce(queries, db, 4)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5)


def test_search_pads_when_database_is_smaller_than_k():
    rng = np.random.default_rng(2)
    index, _ = build_index(_loader([unit_vectors(rng, 2, 8)]), [2], 8)
    D, I = search(index, unit_vectors(rng, 3, 8), 4)
    assert (I[:, 2:] == -1).all() and np.isneginf(D[:, 2:]).all() and (I[:, :2] >= 0).all()


@pytest.mark.parametrize("retrieval", ["forward", "backward", "intersection", "max"])
@pytest.mark.parametrize("margin", ["ratio", "distance", "absolute"])
def test_flat_indexed_mining_equals_exact_mining(margin, retrieval):
    rng = np.random.default_rng(3)
    tgt = unit_vectors(rng, 400, 24)
    planted = tgt[:150] + 0.05 * rng.standard_normal((150, 24)).astype(np.float32)
    src = np.concatenate([planted, unit_vectors(rng, 200, 24)])
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    config = MiningConfig(margin=margin, retrieval=retrieval, threshold=-10.0)
    exact = mine(src, tgt, config)
    src_shards, tgt_shards = [src[:100], src[100:]], [tgt[:300], tgt[300:]]
    indexed = mine_indexed(_loader(src_shards), [100, 250], _loader(tgt_shards), [300, 100], config)
    np.testing.assert_array_equal(exact.src, indexed.src)
    np.testing.assert_array_equal(exact.tgt, indexed.tgt)
    np.testing.assert_allclose(exact.score, indexed.score, rtol=1e-5, atol=1e-6)  # distance margins near 0


@pytest.mark.slow  # PQ training: 30-70 s on 2 cores
@pytest.mark.parametrize("kind", ["IVF64,PQ16", "ivfpq"])
def test_ivfpq_mining_finds_planted_pairs(kind):
    rng = np.random.default_rng(4)
    centres = unit_vectors(rng, 40, 64)
    tgt = centres[rng.integers(0, 40, 12000)] + 0.6 * rng.standard_normal((12000, 64)).astype(np.float32) / 8
    tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
    src = tgt[:500] + 0.2 * rng.standard_normal((500, 64)).astype(np.float32) / 8
    src = np.concatenate([src / np.linalg.norm(src, axis=1, keepdims=True), unit_vectors(rng, 3000, 64)])
    cfg = IndexConfig(kind=kind, train_size=12000, nprobe=16)
    timings: dict[str, float] = {}
    mining = MiningConfig(margin="ratio", threshold=1.1)
    pairs = mine_indexed(_loader([src]), [len(src)], _loader([tgt]), [len(tgt)], mining, cfg, timings)
    recall = ((pairs.src == pairs.tgt) & (pairs.src < 500)).sum() / 500
    assert recall >= 0.9, recall
    assert set(timings) == {"build_indexes", "search", "score_and_select"}


def test_index_config_rejects_bad_values():
    with pytest.raises(ValueError, match="flat_max"):
        IndexConfig(flat_max=10, pq_min=5)
    with pytest.raises(ValueError, match="nprobe"):
        IndexConfig(nprobe=0)


def test_an_index_faiss_gpu_cannot_hold_stays_on_the_cpu(monkeypatch, caplog):
    """faiss-gpu has no fast-scan PQ: cloning raises, and the CPU index is searched instead, with a warning."""
    import logging

    import faiss

    def refuse(index, co=None):
        raise RuntimeError("Error in index_cpu_to_gpu: This index type is not implemented on GPU.")

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", type("Options", (), {}), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", refuse, raising=False)
    index = faiss.IndexFlatIP(8)
    with caplog.at_level(logging.WARNING, logger="parabeam"):
        assert to_gpu_if_available(index) is index
    assert any("searched on the CPU" in r.getMessage() and "not implemented on GPU" in r.getMessage()
               for r in caplog.records)
    assert to_gpu_if_available(index, IndexConfig(use_gpu=False)) is index
