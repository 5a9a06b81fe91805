"""The whole pipeline on a corpus made from ../shared/data, at 1x, 4x, 16x size with a fixed shard size:
sentences/s end to end, the ratio of end-to-end wall time to encoding the same sentences alone, peak memory, and
precision / recall against the translations the sources give (the larger sizes are mostly parallel: at 16x
nearly every line's translation is in the corpus).

Corpus: German and English WET files (20 lines per document) from Multi30k train, NTREX-128 and FLORES-200
devtest lines, ``--base`` lines per language at 1x (distinct lines, so dedup does not shrink the larger sizes).
Each size runs ``parabeam mine --langs de,en --shard-size S`` in a subprocess with the CLI's default local runner
(DirectRunner, multi-processing, 2 workers), cold (a fresh output directory). Peak memory is the largest sum of
resident memory over the process tree (launcher + Beam workers), sampled every 0.2 s. Then the encoder alone
(one process, model loaded once, not timed) encodes exactly the sentences the pipeline kept (its shard metadata)
in the same batches-by-token-budget way; the ratio divides the pipeline's wall time by that encoding time.

Run: ``python benchmarks/pipeline_scale.py [--base 1900 --sizes 1,4,16 --shard-size 2000 --runner R]``. One JSON
line per size.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data")

from common import f1_score, read_lines  # noqa: E402


def _lines(path: str) -> list[str]:
    return [line for line in read_lines(path) if line]


SOURCES = (("multi30k/train.de.gz", "multi30k/train.en.gz"),
           ("ntrex128/newstest2019-ref.deu.txt", "ntrex128/newstest2019-src.eng.txt"),
           ("flores200_devtest/deu_Latn.devtest", "flores200_devtest/eng_Latn.devtest"))


def gold_pairs() -> set[tuple[str, str]]:
    """(German, English) lines that translate each other in the three sources (same line number)."""
    return {(de, en) for d, e in SOURCES for de, en in zip(read_lines(f"{DATA}/{d}"), read_lines(f"{DATA}/{e}"))
            if de and en}


def accuracy(out: str, corpus: str, gold: set[tuple[str, str]]) -> dict:
    """Precision and recall of the mined pairs against the gold pairs whose both sides are in the corpus (as
    lines: a pair counts when its texts are a gold pair's lines)."""
    import gzip

    import pyarrow.parquet as pq

    present = {}
    for lang in ("de", "en"):
        with gzip.open(f"{corpus}/{lang}.warc.wet.gz", "rt", encoding="utf-8", errors="replace") as f:
            present[lang] = {line.strip() for line in f}
    reachable = {(d, e) for d, e in gold if d in present["de"] and e in present["en"]}
    files = glob.glob(f"{out}/bitext/pair=de-en/*.parquet")
    mined = pq.read_table(files, columns=["src_text", "tgt_text"]).to_pylist() if files else []
    correct = sum((m["src_text"].strip(), m["tgt_text"].strip()) in reachable for m in mined)
    p, r = correct / max(len(mined), 1), correct / max(len(reachable), 1)
    return {"gold_pairs_present": len(reachable), "correct": correct, "precision": round(p, 4),
            "recall": round(r, 4), "f1": round(f1_score(p, r), 2)}


def pools() -> dict[str, list[str]]:
    """Distinct lines per language; the two sides' line orders are shuffled apart so most lines have no
    translation on the other side, as in web text."""
    import random

    out = {}
    for lang, m30k, ntrex, flores in (("de", "de", "newstest2019-ref.deu.txt", "deu_Latn"),
                                      ("en", "en", "newstest2019-src.eng.txt", "eng_Latn")):
        lines = (_lines(f"{DATA}/multi30k/train.{m30k}.gz") + _lines(f"{DATA}/ntrex128/{ntrex}")
                 + _lines(f"{DATA}/flores200_devtest/{flores}.devtest"))
        lines = list(dict.fromkeys(lines))
        random.Random(lang).shuffle(lines)
        out[lang] = lines
    return out


def write_corpus(pool: dict[str, list[str]], n: int, out_dir: str) -> None:
    from sample.make_sample import write_wet

    os.makedirs(out_dir, exist_ok=True)
    for lang, lines in pool.items():
        if len(lines) < n:
            raise SystemExit(f"only {len(lines)} distinct {lang} lines, {n} asked")
        docs = [(f"https://{lang}.bench.example/{i // 20:06d}", "\n".join(lines[i:i + 20])) for i in range(0, n, 20)]
        write_wet(f"{out_dir}/{lang}.warc.wet.gz", docs)


def run_pipeline(corpus: str, out: str, shard_size: int, beam_args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "parabeam.pipelines.cli", "mine", "--input", f"{corpus}/*.warc.wet.gz",
           "--langs", "de,en",
           "--output", out, "--shard-size", str(shard_size), *beam_args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"pipeline failed:\n{stderr[-3000:]}")
    report = json.load(open(f"{out}/report.json", encoding="utf-8"))
    return {"wall_s": wall, "peak_tree_rss_gib": peak / 2**30, "report": report}


def encode_alone(out: str) -> dict:
    import pyarrow.parquet as pq

    from parabeam.encoders.registry import load_encoder
    from parabeam.mining.text import clean_sentence

    started = time.perf_counter()
    encoder = load_encoder("default")
    load_s = time.perf_counter() - started
    texts = []
    for path in sorted(glob.glob(f"{out}/_work/embeddings/*/*.parquet")):
        texts.extend(clean_sentence(t) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist())
    started = time.perf_counter()
    encoder.encode(texts)
    return {"encode_s": time.perf_counter() - started, "model_load_s": load_s, "n": len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=int, default=1900, help="lines per language at 1x (16x must fit the ~32k pool)")
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--shard-size", type=int, default=2000)
    ap.add_argument("--work", default="/tmp/parabeam-pipeline-scale")
    ap.add_argument("--runner", help="a Beam runner instead of the CLI's default local one, e.g. FnApiRunner")
    args = ap.parse_args()
    beam_args = [f"--runner={args.runner}"] if args.runner else []
    pool, gold = pools(), gold_pairs()
    for mult in (int(s) for s in args.sizes.split(",")):
        n = args.base * mult
        corpus, out = f"{args.work}/corpus-{mult}x", f"{args.work}/out-{mult}x"
        shutil.rmtree(out, ignore_errors=True)
        write_corpus(pool, n, corpus)
        run = run_pipeline(corpus, out, args.shard_size, beam_args)
        # the encoder alone, in a fresh process, on the sentences the pipeline kept
        enc = json.loads(subprocess.run(
            [sys.executable, __file__, "--encode-only", out], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout.strip().splitlines()[-1])
        report = run["report"]
        kept = sum(v.get("kept", 0) for v in report["languages"].values())
        print(json.dumps({
            "size": f"{mult}x", "runner": args.runner or "DirectRunner x2 (CLI default)",
            "lines_per_language": n, "shard_size": args.shard_size,
            "sentences_in": report["sentences"]["in"], "sentences_embedded": enc["n"], "kept": kept,
            "pairs": report["pairs"].get("de-en", 0),
            "end_to_end_s": round(run["wall_s"], 1),
            "sentences_per_s": round(report["sentences"]["in"] / run["wall_s"], 1),
            "encode_alone_s": round(enc["encode_s"], 1), "model_load_s": round(enc["model_load_s"], 1),
            "ratio_end_to_end_over_encoding": round(run["wall_s"] / enc["encode_s"], 2),
            "peak_tree_rss_gib": round(run["peak_tree_rss_gib"], 2),
            "threshold": report["thresholds"]["de-en"]["used"], "method": report["thresholds"]["de-en"]["method"],
            **accuracy(out, corpus, gold),
        }), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--encode-only":
        print(json.dumps(encode_alone(sys.argv[2])))
    else:
        main()
