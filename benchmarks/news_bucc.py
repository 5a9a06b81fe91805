"""BUCC-style mining benchmark built from real news translations in ../shared/data (NTREX-128, FLORES-200,
Multi30k, TICO-19): a few thousand gold pairs hidden among ~15-20k sentences per side.

For each pair X-en it
  1. builds the corpus: gold = NTREX lines [0, n_gold) in X and English; X-only distractors = the other NTREX
     lines, FLORES first half and Multi30k/TICO lines whose English side is left out; English-only distractors
     = FLORES second half and other Multi30k/TICO lines. Written as BUCC files and as WET input;
  2. runs a plain exact-kNN ratio-margin miner (LASER's mine_bitexts logic: full kNN, ratio margin, k=4,
     max retrieval) on the same encoder and reports its F1 at the F1-optimal threshold (an oracle for it);
  3. runs ``parabeam mine --langs X,en`` at its defaults on the WET files and scores the Parquet against gold.

Run: ``python benchmarks/news_bucc.py --langs de,fr,zh [--work /tmp/newsbucc]``. Prints one JSON line per pair.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
# X -> (NTREX code, FLORES code, extra parallel source: ("multi30k", code) or ("tico19", dir, code))
SOURCES = {
    "de": ("deu", "deu_Latn", ("multi30k", "de")),
    "fr": ("fra", "fra_Latn", ("multi30k", "fr")),
    "cs": ("ces", "ces_Latn", ("multi30k", "cs")),
    "zh": ("zho-CN", "zho_Hans", ("tico19", "en-zh", "zh")),
    "ru": ("rus", "rus_Cyrl", ("tico19", "en-ru", "ru")),
    "es": ("spa", "spa_Latn", ("tico19", "en-es_LA", "es")),
    "ar": ("arb", "arb_Arab", ("tico19", "en-ar", "ar")),
}


def _lines(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return [line.rstrip("\r\n").strip() for line in f]


def _extra(spec) -> tuple[list[str], list[str]]:
    if spec[0] == "multi30k":
        return _lines(f"{DATA}/multi30k/train.{spec[1]}.gz"), _lines(f"{DATA}/multi30k/train.en.gz")
    _, directory, code = spec
    return _lines(f"{DATA}/tico19/{directory}/tico19-test.{code}"), _lines(f"{DATA}/tico19/{directory}/tico19-test.en")


def build_corpus(lang: str, out_dir: str, n_gold: int, n_extra: int) -> dict:
    ntrex_code, flores_code, extra_spec = SOURCES[lang]
    ntrex_x = _lines(f"{DATA}/ntrex128/newstest2019-ref.{ntrex_code}.txt")
    ntrex_en = _lines(f"{DATA}/ntrex128/newstest2019-src.eng.txt")
    flores_x = _lines(f"{DATA}/flores200_devtest/{flores_code}.devtest")
    flores_en = _lines(f"{DATA}/flores200_devtest/eng_Latn.devtest")
    extra_x, extra_en = _extra(extra_spec)
    extra_x, extra_en = extra_x[: 2 * n_extra], extra_en[: 2 * n_extra]
    half_f, half_e = len(flores_x) // 2, len(extra_x) // 2
    gold = [(ntrex_x[i], ntrex_en[i]) for i in range(n_gold)]
    src = [x for x, _ in gold] + ntrex_x[n_gold:] + flores_x[:half_f] + extra_x[:half_e]
    tgt = [e for _, e in gold] + flores_en[half_f:] + extra_en[half_e:]
    rng = np.random.default_rng(0)
    src = [src[i] for i in rng.permutation(len(src)) if src[i]]
    tgt = [tgt[i] for i in rng.permutation(len(tgt)) if tgt[i]]
    os.makedirs(out_dir, exist_ok=True)
    from sample.make_sample import write_wet  # the same WET writer as the bundled sample

    for side, sentences, code in (("src", src, lang), ("tgt", tgt, "en")):
        with open(f"{out_dir}/{side}.tsv", "w", encoding="utf-8") as f:
            f.writelines(f"{code}-{i:06d}\t{s}\n" for i, s in enumerate(sentences))
        docs = [(f"https://{code}.news.example/{i // 8:05d}", "\n".join(sentences[i:i + 8]))
                for i in range(0, len(sentences), 8)]
        write_wet(f"{out_dir}/{side}.warc.wet.gz", docs)
    src_id = {s: f"{lang}-{i:06d}" for i, s in enumerate(src)}
    tgt_id = {s: f"en-{i:06d}" for i, s in enumerate(tgt)}
    with open(f"{out_dir}/gold.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{src_id[x]}\t{tgt_id[e]}\n" for x, e in gold if x in src_id and e in tgt_id)
    return {"n_src": len(src), "n_tgt": len(tgt), "n_gold": len(gold), "gold_texts": set(gold)}


def baseline_f1(lang: str, corpus_dir: str, encoder) -> dict:
    """LASER-style miner: full exact kNN (faiss IndexFlatIP), ratio margin k=4, max retrieval, greedy loop."""
    import faiss

    from encoders.evaluate import best_threshold_f1, read_bucc_gold, read_bucc_sentences

    src_ids, src_texts = read_bucc_sentences(f"{corpus_dir}/src.tsv")
    tgt_ids, tgt_texts = read_bucc_sentences(f"{corpus_dir}/tgt.tsv")
    x, y = encoder.encode(src_texts), encoder.encode(tgt_texts)
    k = 4
    ix, iy = faiss.IndexFlatIP(x.shape[1]), faiss.IndexFlatIP(y.shape[1])
    ix.add(x)
    iy.add(y)
    Dxy, Ixy = iy.search(x, k)
    Dyx, Iyx = ix.search(y, k)
    mx, my = Dxy.mean(1), Dyx.mean(1)
    fwd = Dxy / ((mx[:, None] + my[Ixy]) / 2)
    bwd = Dyx / ((my[:, None] + mx[Iyx]) / 2)
    cands = [(i, Ixy[i, fwd[i].argmax()], fwd[i].max()) for i in range(len(x))]
    cands += [(Iyx[j, bwd[j].argmax()], j, bwd[j].max()) for j in range(len(y))]
    cands.sort(key=lambda c: -c[2])
    seen_s, seen_t, kept = set(), set(), []
    for s, t, sc in cands:
        if s not in seen_s and t not in seen_t:
            seen_s.add(s)
            seen_t.add(t)
            kept.append((src_ids[s], tgt_ids[int(t)], float(sc)))
    result = best_threshold_f1(kept, read_bucc_gold(f"{corpus_dir}/gold.tsv"))
    return {"baseline_f1_oracle": result.f1, "baseline_threshold": result.threshold}


def parabeam_f1(lang: str, corpus_dir: str, gold_texts: set) -> dict:
    import pyarrow.dataset as ds

    out = f"{corpus_dir}/out"
    started = time.time()
    cmd = [sys.executable, "-m", "pipelines.cli", "mine", "--input", f"{corpus_dir}/src.warc.wet.gz",
           "--input", f"{corpus_dir}/tgt.warc.wet.gz", "--langs", f"{lang},en", "--output", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - started
    rows = ds.dataset(f"{out}/bitext", format="parquet").to_table(columns=["src_text", "tgt_text"]).to_pylist()
    mined = {(r["src_text"], r["tgt_text"]) for r in rows}
    tp = len(mined & gold_texts)
    p = tp / max(len(mined), 1)
    r = tp / len(gold_texts)
    return {"parabeam_f1": 200 * p * r / max(p + r, 1e-9), "parabeam_precision": 100 * p,
            "parabeam_recall": 100 * r, "parabeam_pairs": len(mined), "parabeam_wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default="de,fr,zh")
    ap.add_argument("--work", default="/tmp/parabeam-newsbucc")
    ap.add_argument("--n-gold", type=int, default=1500)
    ap.add_argument("--n-extra", type=int, default=8000, help="lines of Multi30k/TICO per side")
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    from encoders.registry import load_encoder

    encoder = load_encoder("default")
    for lang in args.langs.split(","):
        corpus_dir = f"{args.work}/{lang}-en"
        corpus = build_corpus(lang, corpus_dir, args.n_gold, args.n_extra)
        row = {"pair": f"{lang}-en", **{k: v for k, v in corpus.items() if k != "gold_texts"}}
        row.update(baseline_f1(lang, corpus_dir, encoder))
        if not args.skip_pipeline:
            row.update(parabeam_f1(lang, corpus_dir, corpus["gold_texts"]))
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
