"""Encoding throughput of an encoder on CPU: sentences per second and per CPU-second with 1 and 2 threads, and the
dynamic int8 variant (``--precision int8``) with its Tatoeba accuracy beside fp32's.

Each setting runs in its own process (torch's thread pool is fixed once used). Text: the NTREX-128 German
references (1997 news sentences) from ../shared/data, cleaned as the pipeline cleans them.

Run: ``python benchmarks/encoding.py [--threads 1,2] [--tatoeba]``. Prints one JSON line per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(REPO, "..", "shared", "data")
TATOEBA = ["ara", "cmn", "deu", "fra", "ind", "ita", "jpn", "kor", "nld", "pol", "por", "rus", "spa", "tha", "tur"]


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def worker(threads: int, precision: str, tatoeba: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    from parabeam.encoders.registry import load_encoder
    from parabeam.mining.text import clean_sentence

    encoder = load_encoder("default", device="cpu", precision=precision)
    texts = [clean_sentence(t) for t in _lines(os.path.join(DATA, "ntrex128", "newstest2019-ref.deu.txt"))]
    encoder.encode(texts[:64])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    encoder.encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"threads": threads, "precision": precision, "sentences": len(texts),
           "sentences_per_s": round(len(texts) / wall, 1), "sentences_per_cpu_s": round(len(texts) / cpu, 1)}
    if tatoeba:
        from parabeam.encoders.evaluate import tatoeba_files

        accs = [tatoeba_files(encoder, os.path.join(DATA, "tatoeba", f"tatoeba.{lang}-eng.{lang}"),
                              os.path.join(DATA, "tatoeba", f"tatoeba.{lang}-eng.eng"))["accuracy"] for lang in TATOEBA]
        row["tatoeba_mean"] = round(sum(accs) / len(accs), 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--tatoeba", action="store_true", help="also Tatoeba accuracy (15 languages) per precision")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.worker[2] == "1")))
        return
    for precision in args.precisions.split(","):
        for i, threads in enumerate(args.threads.split(",")):
            with_tatoeba = "1" if args.tatoeba and i == 0 else "0"
            done = subprocess.run([sys.executable, __file__, "--worker", threads, precision, with_tatoeba],
                                  capture_output=True, text=True, check=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
