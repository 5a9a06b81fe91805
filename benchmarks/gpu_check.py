"""The GPU paths, checked and measured in one short script (for a machine with a CUDA device; CI has none):
1. encoding throughput of the bundled encoder on CUDA in bf16 (and fp32), sentences/s, against the CPU result;
2. exact kNN both ways on CUDA (``mining.knn.exact_knn_both``, torch) against the CPU path: the same neighbours;
3. FAISS GPU flat and IVF search (faiss-gpu), recall against exact, time;
4. the bundled sample mined with ``--device cuda``: the same pairs as on CPU.
Each check prints one JSON line; a check whose requirement is missing (faiss-gpu, CUDA) says so and goes on.

Run: ``python benchmarks/gpu_check.py [--sentences 20000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _say(**row) -> None:
    print(json.dumps(row), flush=True)


def encoding(n: int) -> None:
    import torch

    from parabeam.encoders.registry import load_encoder

    texts = [f"Sentence number {i} about the weather, the markets and the weekend's football." for i in range(n)]
    for device, precision in (("cuda", "bf16"), ("cuda", "fp32"), ("cpu", "fp32")):
        if device == "cuda" and not torch.cuda.is_available():
            _say(check="encoding", device=device, skipped="no CUDA device")
            continue
        encoder = load_encoder("default", device=device, precision=precision)
        sample = texts if device == "cuda" else texts[: min(n, 4000)]
        encoder.encode(sample[:512])
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = encoder.encode(sample)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        _say(check="encoding", device=device, precision=precision, sentences=len(sample),
             sentences_per_s=round(len(sample) / seconds), dim=int(vectors.shape[1]))


def knn(n: int) -> None:
    from parabeam.mining.knn import _cuda_available, exact_knn_both

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 512)).astype(np.float32)
    y = rng.standard_normal((n, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    timings = {}
    results = {}
    for name, gpu in (("cpu", False), ("cuda", True)):
        if gpu and not _cuda_available():
            _say(check="knn", device="cuda", skipped="no CUDA device")
            return
        started = time.perf_counter()
        results[name] = exact_knn_both(x, y, 4, use_gpu=gpu)
        timings[name] = time.perf_counter() - started
    same = all(np.array_equal(results["cpu"][d][1], results["cuda"][d][1]) for d in (0, 1))
    _say(check="knn", n=n, cpu_s=round(timings["cpu"], 2), cuda_s=round(timings["cuda"], 2), same_neighbours=same)


def faiss_gpu(n: int) -> None:
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        _say(check="faiss_gpu", skipped="faiss without GPU support or no GPU (pip install parabeam[gpu])")
        return
    from parabeam.mining.index import IndexConfig, build_index, search, to_gpu_if_available

    rng = np.random.default_rng(1)
    db = rng.standard_normal((n, 512)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = db[:2000] + 0.05 * rng.standard_normal((2000, 512)).astype(np.float32)
    exact = None
    for kind in ("flat", "ivf"):
        config = IndexConfig(kind=kind)
        index, factory = build_index(lambda i: db, [n], 512, config)
        gpu_index = to_gpu_if_available(index, config)
        started = time.perf_counter()
        D, I = search(gpu_index, queries, 4, config.nprobe)
        seconds = time.perf_counter() - started
        exact = I if kind == "flat" else exact
        recall = float((I[:, 0] == exact[:, 0]).mean())
        _say(check="faiss_gpu", factory=factory, n=n, queries=2000, seconds=round(seconds, 3), recall_at_1=recall)


def pipeline() -> None:
    import torch

    if not torch.cuda.is_available():
        _say(check="pipeline", skipped="no CUDA device")
        return
    rows = {}
    for device in ("cpu", "cuda"):
        out = tempfile.mkdtemp(prefix=f"parabeam-gpu-{device}-")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "parabeam.pipelines.cli", "mine", "--input", f"{REPO}/sample/*.gz",
                        "--langs", "de,en,fr,es,zh", "--output", out, "--device", device, "--runner=FnApiRunner"],
                       check=True, capture_output=True)
        import pyarrow.dataset as ds

        table = ds.dataset(f"{out}/bitext", format="parquet").to_table(columns=["src_text", "tgt_text"])
        rows[device] = (sorted(zip(table.column("src_text").to_pylist(), table.column("tgt_text").to_pylist())),
                        time.perf_counter() - started)
    _say(check="pipeline", pairs_cpu=len(rows["cpu"][0]), pairs_cuda=len(rows["cuda"][0]),
         same_pairs=rows["cpu"][0] == rows["cuda"][0], seconds_cpu=round(rows["cpu"][1], 1),
         seconds_cuda=round(rows["cuda"][1], 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--knn", type=int, default=50000)
    ap.add_argument("--index", type=int, default=300000)
    args = ap.parse_args()
    encoding(args.sentences)
    knn(args.knn)
    faiss_gpu(args.index)
    pipeline()


if __name__ == "__main__":
    main()
