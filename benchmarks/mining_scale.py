"""Mining stage alone at growing sizes: wall time per stage, peak RSS, recall of planted pairs, and agreement
with a brute-force exact reference where that fits in time.

Data: synthetic unit vectors (d = 512) drawn around 2000 cluster centres (real sentence embeddings are
clustered; uniform random vectors would make every IVF index look bad), written as fp16 shards of 100k rows,
the pipeline's on-disk format. The source side holds n_planted noisy copies of target rows (cosine ~0.85 to
their original) among unrelated rows; the rest is unrelated. Each size runs in a fresh subprocess so its peak
RSS is its own. The index is chosen by size as in ``parabeam mine`` (mining.index).

Run: ``python benchmarks/mining_scale.py --sizes 10000,100000,1000000``. Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

D = 512
SHARD = 100_000


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def target_block(centres: np.ndarray, start: int, stop: int, seed: int = 0) -> np.ndarray:
    """Target rows ``start .. stop`` (float32, unit): the same whichever script or side asks for them."""
    rows_rng = np.random.default_rng([seed, start, 0])
    return _unit(centres[rows_rng.integers(0, 2000, stop - start)]
                 + 0.9 * rows_rng.standard_normal((stop - start, D)).astype(np.float32) / np.sqrt(D))


def make_data(n: int, work: str, seed: int = 0) -> tuple[list[str], list[str], int]:
    """fp16 shard files for both sides; source rows [0, n_planted) are noisy copies of target rows with the
    same ids."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((2000, D)).astype(np.float32))
    n_planted = max(100, n // 10)
    os.makedirs(work, exist_ok=True)
    src_files, tgt_files = [], []
    for side, files in (("tgt", tgt_files), ("src", src_files)):
        for start in range(0, n, SHARD):
            stop = min(start + SHARD, n)
            tgt = target_block(centres, start, stop, seed)  # target rows are regenerated for the plants
            if side == "tgt":
                block = tgt
            else:
                other = np.random.default_rng([seed, start, 1])
                block = _unit(centres[other.integers(0, 2000, stop - start)]
                              + 0.9 * other.standard_normal((stop - start, D)).astype(np.float32) / np.sqrt(D))
                planted = np.arange(start, stop) < n_planted
                noise = 0.5 * other.standard_normal((stop - start, D)).astype(np.float32) / np.sqrt(D)
                block[planted] = _unit(tgt[planted] + noise[planted])
            path = f"{work}/{side}-{start // SHARD:05d}.npy"
            np.save(path, block.astype(np.float16))
            files.append(path)
    return src_files, tgt_files, n_planted


def run_one(n: int, work: str, reference: bool, nprobe: int) -> dict:
    from parabeam.mining.index import IndexConfig, factory_string
    from parabeam.mining.mine import MiningConfig, mine, mine_indexed

    started = time.perf_counter()
    src_files, tgt_files, n_planted = make_data(n, work)
    gen_s = time.perf_counter() - started
    logging.getLogger("parabeam").info("wrote %d + %d shards in %.1f s", len(src_files), len(tgt_files), gen_s)

    def loader(files):
        return lambda i: np.load(files[i], mmap_mode="r")

    sizes = [len(np.load(f, mmap_mode="r")) for f in src_files]
    index_config = IndexConfig(nprobe=nprobe)
    config = MiningConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    pairs = mine_indexed(loader(src_files), sizes, loader(tgt_files), sizes, config, index_config, timings)
    wall = time.perf_counter() - started
    correct = (pairs.src == pairs.tgt) & (pairs.src < n_planted)
    row = {
        "n_per_side": n, "index": factory_string(n, D, index_config), "nprobe": nprobe,
        "wall_s": round(wall, 1), **{k + "_s": round(v, 1) for k, v in timings.items()},
        "pairs": len(pairs), "planted": n_planted,
        "recall_planted": round(float(correct.sum() / n_planted), 4),
        "precision_planted": round(float(correct.sum() / max(len(pairs), 1)), 4),
        "data_gen_s": round(gen_s, 1),
    }
    if reference:  # brute-force exact mining on the full arrays (what LASER does in RAM)
        started = time.perf_counter()
        x = np.concatenate([np.load(f).astype(np.float32) for f in src_files])
        y = np.concatenate([np.load(f).astype(np.float32) for f in tgt_files])
        exact = mine(x, y, config)
        row["reference_wall_s"] = round(time.perf_counter() - started, 1)
        ref_pairs = set(zip(exact.src.tolist(), exact.tgt.tolist()))
        got = set(zip(pairs.src.tolist(), pairs.tgt.tolist()))
        row["agreement_with_exact"] = round(len(ref_pairs & got) / max(len(ref_pairs | got), 1), 4)
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--work", default="/tmp/parabeam-scale")
    ap.add_argument("--reference-max", type=int, default=100_000, help="brute-force reference up to this size")
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        print(json.dumps(run_one(args.one, f"{args.work}/{args.one}", args.one <= args.reference_max, args.nprobe)))
        return
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--work", args.work, "--nprobe", str(args.nprobe),
               "--reference-max", str(args.reference_max)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout  # stderr: its progress
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
