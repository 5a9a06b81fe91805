"""FAISS indexes per language, chosen by corpus size, trained on a seeded sample, filled shard by shard.

Choice (``IndexConfig.kind = "auto"``), for n vectors of dimension d (inner product = cosine on unit vectors):
- n < ``flat_max`` (default 200k): ``Flat``, exact; the margin is then exactly LASER's.
- n < ``pq_min`` (default 5M): ``IVF{nlist},Flat``, nlist ~ 4 sqrt(n) rounded to a power of two (FAISS's
  guideline of 4-16 sqrt(n) lists); memory 4 d bytes per vector, recall set by ``nprobe``.
- above: ``OPQ{m},IVF{nlist},PQ{2m}x4fsr``, the compressed index of CCMatrix (Schwenk et al. 2021, sec. 3),
  which mined billions of sentences with OPQ + IVF + PQ, here with m = d / 4 bytes per vector (128 at d = 512;
  d / 8 loses about a quarter of planted pairs at a fixed margin threshold in tests/test_index.py's setting, d / 4
  none). The codes are FAISS's 4-bit "fast scan" PQ (André et al. 2015, "Cache locality is not enough"; 2m
  sub-quantisers of 16 centroids on the residual to the list centroid, distance tables in SIMD registers): at
  the same 128 bytes it searched 21.8x faster than 8-bit ``PQ{m}`` (9,829 against 450.4 queries/s, 10^6 vectors,
  2,976 per list, nprobe 32) with about the same similarity error (mean |error| of the 4-neighbour mean 0.023
  against 0.020) and the same planted-pair recall; on real news it cost 0.16-0.63 F1 more than the 8-bit codes
  (benchmarks/RESULTS.md, "Fast-scan PQ"), the price of mining 10^7 a language in an hour on two cores. PQ
  similarities are approximate, so margins shift: calibrate the threshold for this index
  (``mining.calibrate``). faiss-gpu has no fast-scan index, so ``to_gpu_if_available`` leaves it on the CPU; to
  search on a GPU give an 8-bit PQ factory string, e.g. ``--index OPQ64,IVF4096,PQ64`` (faiss-gpu's IVF-PQ
  takes codes of at most 96 bytes).
``kind`` may also be ``flat``, ``ivf``, ``ivfpq`` or any FAISS factory string.

Training uses a seeded sample drawn evenly from every shard (so the centroids see the whole language), then
vectors are added shard by shard, so building never holds more than the index plus one shard. Indexes are
saved with FAISS's own serialisation (bytes, so any Beam filesystem can hold them). With ``faiss-gpu`` and a
visible GPU, search runs on all GPUs, the index sharded across them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from parabeam.mining.knn import sort_neighbours
from parabeam.options import option

log = logging.getLogger("parabeam")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    kind: str = option("auto", "auto (by size) | flat | ivf | ivfpq | a FAISS factory string",
                       flag="--index", metavar="KIND")
    flat_max: int = option(200_000, "auto: below this many vectors an exact Flat index", cli=False)
    pq_min: int = option(5_000_000, "auto: from this many vectors OPQ + IVF + PQ", cli=False)
    nprobe: int = option(32, "IVF lists visited per query")
    train_size: int = option(131_072, "at most this many sampled vectors train IVF/PQ (and >= 39 per list)",
                             cli=False)
    pq_m: int | None = option(None, "bytes per vector of the PQ codes (2 four-bit sub-quantisers a byte); "
                              "default d / 4", cli=False)
    use_gpu: bool = option(True, "search on GPU when faiss has GPU support and a GPU is visible", cli=False)
    seed: int = option(0, "seed of the training sample", cli=False)

    def __post_init__(self) -> None:
        if self.flat_max < 1 or self.pq_min < self.flat_max:
            raise ValueError(f"need 1 <= flat_max <= pq_min, got {self.flat_max} and {self.pq_min}")
        if self.nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {self.nprobe}")
        if self.train_size < 1000:
            raise ValueError(f"train_size must be >= 1000, got {self.train_size}")


def n_lists(n: int) -> int:
    """IVF list count for n vectors: 4 sqrt(n) rounded to a power of two, between 64 and 65536."""
    return int(min(65536, max(64, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))


def factory_string(n: int, d: int, config: IndexConfig = IndexConfig()) -> str:
    """The FAISS factory string for a language of ``n`` vectors of dimension ``d``."""
    kind = config.kind
    if kind == "auto":
        kind = "flat" if n < config.flat_max else "ivf" if n < config.pq_min else "ivfpq"
    if kind == "flat":
        return "Flat"
    # no more lists than the sample can train (FAISS warns below 39 points per centroid)
    nlist = min(n_lists(n), max(1, min(n, config.train_size) // 39))
    if kind == "ivf":
        return f"IVF{nlist},Flat"
    if kind == "ivfpq":
        m = config.pq_m or max(1, d // 4)
        while m > 0 and d % (2 * m):  # the OPQ rotation's m blocks, and 2m sub-quantisers, must divide d
            m -= 1
        if m < 1:
            raise ValueError(f"ivfpq needs an even dimension, got d = {d}: give --index a FAISS factory string")
        return f"OPQ{m},IVF{nlist},PQ{2 * m}x4fsr"
    return kind  # a factory string given as is


def _sample_rows(sizes: Sequence[int], n_sample: int, seed: int) -> list[np.ndarray]:
    """Sorted row ids to take from each shard: ``n_sample`` in all, spread in proportion to shard sizes."""
    total = int(sum(sizes))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(n_sample, total), replace=False))
    bounds = np.cumsum([0, *sizes])
    return [chosen[(chosen >= lo) & (chosen < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:])]


def build_index(
    load_shard: Callable[[int], np.ndarray],
    sizes: Sequence[int],
    d: int,
    config: IndexConfig = IndexConfig(),
    factory: str | None = None,
):
    """An index over shards ``0 .. len(sizes)-1`` (``load_shard(i)`` returns shard i as (n_i, d), any float
    dtype); ids are global rows in shard order. Returns ``(index, factory)``."""
    import faiss

    n = int(sum(sizes))
    factory = factory or factory_string(n, d, config)
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        picks = _sample_rows(sizes, config.train_size, config.seed)
        sample = np.concatenate(
            [np.asarray(load_shard(i), dtype=np.float32)[rows] for i, rows in enumerate(picks) if len(rows)]
        )
        log.info("training %s on %d of %d vectors", factory, len(sample), n)
        index.train(sample)  # FAISS's k-means is seeded (ClusteringParameters.seed), so training is repeatable
        del sample
    for i in range(len(sizes)):
        shard = np.ascontiguousarray(load_shard(i), dtype=np.float32)
        if shard.shape[1:] != (d,):
            raise ValueError(f"shard {i} has shape {shard.shape}, expected (n, {d})")
        index.add(shard)
    return index, factory


def set_nprobe(index, nprobe: int) -> None:
    """Sets nprobe on the IVF layer of ``index`` (a no-op for indexes without one)."""
    import faiss

    try:
        faiss.extract_index_ivf(index).nprobe = nprobe
    except RuntimeError:  # not an IVF index
        pass


def to_gpu_if_available(index, config: IndexConfig = IndexConfig()):
    """The index on every visible GPU, sharded across them, when faiss-gpu is installed; else unchanged."""
    import faiss

    if not config.use_gpu or not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True  # split the database across GPUs rather than replicate it
    options.useFloat16 = True
    try:
        on_gpu = faiss.index_cpu_to_all_gpus(index, co=options)
    except RuntimeError as e:  # e.g. fast-scan PQ, which faiss-gpu does not implement
        log.warning("this index (%s) cannot go to the GPU, so it is searched on the CPU: %s",
                    type(index).__name__, str(e).strip().splitlines()[-1] if str(e).strip() else e)
        return index
    log.info("index on %d GPU(s)", faiss.get_num_gpus())
    return on_gpu


def flat_vectors(index) -> np.ndarray:
    """The (ntotal, d) float32 vectors of a CPU ``IndexFlat``, in place (no copy; valid while ``index`` lives)."""
    import faiss

    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def search(index, queries: np.ndarray, k: int, nprobe: int = 32, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by inner product: ``D`` (n, k) float32, ``I`` (n, k) int64; rows sorted by
    decreasing similarity, ties by smaller id (as ``mining.knn``); missing neighbours are -inf / -1."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if isinstance(index, faiss.IndexFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        # exact flat index on the CPU: blocked GEMM on its vectors in place (see mining.knn.exact_knn)
        from parabeam.mining.knn import exact_knn

        return exact_knn(queries, flat_vectors(index), k)
    set_nprobe(index, nprobe)
    D = np.full((len(queries), k), -np.inf, dtype=np.float32)
    I = np.full((len(queries), k), -1, dtype=np.int64)
    kk = min(k, index.ntotal)
    for start in range(0, len(queries), block):
        if kk == 0:
            break
        d_blk, i_blk = index.search(queries[start : start + block], kk)
        D[start : start + block, :kk], I[start : start + block, :kk] = sort_neighbours(d_blk, i_blk)
    return D, I


def serialize(index) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes):
    import faiss

    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
