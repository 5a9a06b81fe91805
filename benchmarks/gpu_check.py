"""The GPU paths, checked and measured in one short script (for a machine with a CUDA device; CI has none):
1. encoding with each bundled encoder (muse-v3, e5-small) on CUDA in bf16 and fp32 and on the CPU: sentences/s on
   FLORES-200 text, and the cosine of the CUDA vectors to the CPU fp32 ones, sentence by sentence;
2. Tatoeba accuracy (15 shared languages) of each bundled encoder in bf16 on CUDA, beside the CPU fp32 figure;
3. training e5-small on CUDA (translation ranking, bf16 autocast): pairs/s and the loss going down;
4. exact kNN both ways on CUDA (``mining.knn.exact_knn_both``, torch) against the CPU path: the same neighbours;
5. FAISS GPU flat and IVF search (faiss-gpu), recall against exact, time;
6. the bundled sample mined with ``--device cuda``: the same pairs as on CPU.
Each check prints one JSON line; a check whose requirement is missing (CUDA, faiss-gpu, Apache Beam) says so and
goes on, and one that fails prints its error and goes on.

Run: ``python benchmarks/gpu_check.py [--data ../shared/data] [--checks encoding,tatoeba,train,knn,faiss,pipeline]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import read_lines  # noqa: E402

ENCODERS = ("muse-v3", "e5-small")
TATOEBA = ["ara", "cmn", "deu", "fra", "ind", "ita", "jpn", "kor", "nld", "pol", "por", "rus", "spa", "tha", "tur"]


def _say(**row) -> None:
    print(json.dumps(row), flush=True)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _flores(data: str) -> list[str]:
    folder = os.path.join(data, "flores200_devtest")
    return [t for name in sorted(os.listdir(folder)) if name.endswith(".devtest")
            for t in read_lines(os.path.join(folder, name), strip=False, skip_empty=True)]


def _timed(encoder, texts: list[str]) -> tuple[np.ndarray, float]:
    import torch

    encoder.encode(texts[:256])  # warm-up (CUDA kernels, allocator)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return vectors, time.perf_counter() - started


def encoding(data: str, n: int, encoders=ENCODERS) -> None:
    from parabeam.encoders.registry import load_encoder

    texts = _flores(data)[:n]
    for name in encoders:
        reference, seconds = _timed(load_encoder(name, device="cpu", precision="fp32"), texts[:4000])
        _say(check="encoding", encoder=name, device="cpu", precision="fp32", sentences=min(n, 4000),
             sentences_per_s=round(min(n, 4000) / seconds))
        if not _cuda():
            _say(check="encoding", encoder=name, device="cuda", skipped="no CUDA device")
            continue
        for precision in ("bf16", "fp32"):
            vectors, seconds = _timed(load_encoder(name, device="cuda", precision=precision), texts)
            cos = (vectors[:4000] * reference).sum(axis=1)
            _say(check="encoding", encoder=name, device="cuda", precision=precision, sentences=len(texts),
                 sentences_per_s=round(len(texts) / seconds), cos_to_cpu_fp32_min=round(float(cos.min()), 5),
                 cos_to_cpu_fp32_mean=round(float(cos.mean()), 5))


def tatoeba(data: str, encoders=ENCODERS) -> None:
    from parabeam.encoders.evaluate import tatoeba_accuracy
    from parabeam.encoders.registry import load_encoder

    settings = [("cpu", "fp32")] + ([("cuda", "bf16")] if _cuda() else [])
    for name in encoders:
        for device, precision in settings:
            encoder = load_encoder(name, device=device, precision=precision)
            accs = []
            for lang in TATOEBA:
                folder = os.path.join(data, "tatoeba")
                src = read_lines(os.path.join(folder, f"tatoeba.{lang}-eng.{lang}"), strip=False, skip_empty=True)
                tgt = read_lines(os.path.join(folder, f"tatoeba.{lang}-eng.eng"), strip=False, skip_empty=True)
                accs.append(tatoeba_accuracy(encoder.encode(src), encoder.encode(tgt))["accuracy"])
            _say(check="tatoeba", encoder=name, device=device, precision=precision,
                 mean_accuracy=round(sum(accs) / len(accs), 2))


def train(data: str, minutes: float, device: str = "cuda") -> None:
    if device == "cuda" and not _cuda():
        _say(check="train", skipped="no CUDA device")
        return
    import logging
    import re

    from parabeam.encoders.train import TrainConfig, train
    from parabeam.encoders.train_config import ParallelSource

    flores = os.path.join(data, "flores200_devtest")
    sources = tuple(ParallelSource(os.path.join(flores, "eng_Latn.devtest"), os.path.join(flores, name), "en",
                                   name[:3]) for name in sorted(os.listdir(flores))
                    if name.endswith(".devtest") and not name.startswith("eng"))
    losses: list[float] = []

    class Losses(logging.Handler):  # the loop's progress lines carry the mean loss of the last log_every steps
        def emit(self, record: logging.LogRecord) -> None:
            found = re.search(r"loss ([0-9.]+)", record.getMessage())
            if found:
                losses.append(float(found.group(1)))

    logger = logging.getLogger("parabeam.progress")
    logger.setLevel(logging.INFO)
    logger.addHandler(Losses())
    config = TrainConfig(method="translation-ranking", student="e5-small", batch_size=128, lr=2e-5, warmup_steps=10,
                         epochs=3, max_minutes=minutes, train=sources, device=device, log_every=10,
                         checkpoint_every=10 ** 9)
    card = train(config, tempfile.mkdtemp(prefix="parabeam-gpu-train-"))
    _say(check="train", encoder="e5-small", device=device, steps=card["steps"], batch=128,
         pairs_per_s=round(card["steps"] * 128 / max(card["train_minutes"] * 60, 1e-9)),
         loss_first10=losses[0] if losses else None, loss_last10=losses[-1] if losses else None)


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
    try:
        import faiss
    except ImportError:
        _say(check="faiss_gpu", skipped="faiss is not installed")
        return
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
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        _say(check="pipeline", skipped="apache-beam is not installed")
        return
    if not _cuda():
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
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--checks", default="encoding,tatoeba,train,knn,faiss,pipeline")
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--sentences", type=int, default=26312, help="FLORES sentences to encode (26 files: 26312)")
    ap.add_argument("--train-minutes", type=float, default=1.0)
    ap.add_argument("--knn", type=int, default=50000)
    ap.add_argument("--index", type=int, default=300000)
    args = ap.parse_args()
    encoders = args.encoders.split(",")
    checks = {"encoding": lambda: encoding(args.data, args.sentences, encoders),
              "tatoeba": lambda: tatoeba(args.data, encoders),
              "train": lambda: train(args.data, args.train_minutes), "knn": lambda: knn(args.knn),
              "faiss": lambda: faiss_gpu(args.index), "pipeline": pipeline}
    for name in args.checks.split(","):
        started = time.perf_counter()
        try:
            checks[name]()
        except Exception as err:  # one failing check must not hide the others' figures
            _say(check=name, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-2000:])
        _say(check=name, wall_s=round(time.perf_counter() - started, 1))


if __name__ == "__main__":
    main()
