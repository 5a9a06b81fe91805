"""Comparable-news mining benchmark: gold translation pairs hidden among other news of the same years, on both sides.

Built from WMT newstest 2008-2020 in ../shared/data/wmt_newstest (real news in both languages, the same domain on
both sides, as on CommonCrawl and in BUCC). For a pair X-en:
  1. every parallel line of every year and direction is read, and deduplicated on normalised text on both sides
     (news repeats itself across years, and an undetected repeat is a true translation the gold would not list):
     a pair is dropped when either side was seen before;
  2. the pairs are shuffled with a fixed seed; the first 2000 (a fifth of them where there are fewer than 10000)
     are the gold; the rest is split in two disjoint halves, the X side of one half and the English side of the
     other are distractors, so no distractor has its translation on the other side;
  3. each side's lines are shuffled and cut into WET documents of 5 to 40 lines.

Then, with the same encoder (``--encoder``, default ``auto``: the bundled encoder ``parabeam mine`` picks for the
pair, muse-v3 or e5-small; embeddings are cached per encoder in the corpus folder):
  - the plain line-level miner (LASER's mine_bitexts logic: exact kNN with faiss IndexFlatIP, ratio margin, k=4,
    max retrieval) on the lines, at 1.2 and at its F1-optimal threshold (an oracle: it looks at the gold);
  - ``parabeam mine --langs X,en`` at its defaults on the WET files;
  - parabeam's own oracle: the mining core (``parabeam.mining.mine.mine_from_knn``, the functions the pipeline
    runs) on the segments and embeddings the pipeline kept, at every threshold on a grid, the best kept;
  - ``--threshold auto`` (computed with the same core from the same candidates).
Scores: exact text (a mined pair must equal a gold line pair) and segment-aware (a pair of sentences of a gold
line and of its translation counts; recall counts gold lines found; news_bucc.SegmentScorer).

Development pairs (defaults were chosen on them): es, tr, pl, ja. The others are for reporting only.
Run: ``python benchmarks/comparable_news.py --langs es,tr,pl,ja [--work DIR] [--encoder SPEC] [--mine-args "..."]``;
prints one JSON line per pair and a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import corpus_vectors, cut_documents, f1_score, read_lines, slug  # noqa: E402
from news_bucc import SegmentScorer, plain_miner  # noqa: E402

DATA = os.path.join(REPO, "..", "shared", "data", "wmt_newstest")
DEV_LANGS = ("es", "tr", "pl", "ja")
HELD_OUT_LANGS = ("it", "hu", "fi", "ro", "et", "lv", "lt", "hi")


def parallel_lines(lang: str) -> list[tuple[str, str]]:
    """Every (X, en) line pair of every year and direction, in a fixed order."""
    pairs: list[tuple[str, str]] = []
    for year in sorted(os.listdir(DATA)):
        folder = os.path.join(DATA, year)
        multi = os.path.join(folder, f"newstest{year}.{lang}")
        if os.path.exists(multi):
            pairs += list(zip(read_lines(multi), read_lines(os.path.join(folder, f"newstest{year}.en"))))
        for direction in (f"{lang}-en", f"en-{lang}"):
            sub = os.path.join(folder, direction)
            for x_file in sorted(glob.glob(os.path.join(sub, f"*.{lang}"))):
                en_file = x_file[: -len(lang)] + "en"
                x, en = read_lines(x_file), read_lines(en_file)
                if len(x) != len(en):
                    raise ValueError(f"{x_file} and {en_file} differ in length")
                pairs += list(zip(x, en))
    return pairs


def build_corpus(lang: str, out_dir: str, seed: int = 0, n_gold: int = 2000) -> dict:
    from parabeam.mining.text import normalise_for_dedup as norm
    from sample.make_sample import write_wet

    seen_x, seen_en, unique = set(), set(), []
    all_pairs = parallel_lines(lang)
    for x, en in all_pairs:
        kx, ken = norm(x), norm(en)
        if not kx or not ken or kx in seen_x or ken in seen_en:
            continue
        seen_x.add(kx)
        seen_en.add(ken)
        unique.append((x, en))
    rng = random.Random(seed)
    rng.shuffle(unique)
    n_gold = min(n_gold, len(unique) // 5) if len(unique) < 10_000 else n_gold
    gold, rest = unique[:n_gold], unique[n_gold:]
    half = len(rest) // 2
    src = [x for x, _ in gold] + [x for x, _ in rest[:half]]
    tgt = [en for _, en in gold] + [en for _, en in rest[half:]]
    rng.shuffle(src)
    rng.shuffle(tgt)
    os.makedirs(out_dir, exist_ok=True)
    for side, lines, code in (("src", src, lang), ("tgt", tgt, "en")):
        docs = [(f"https://{code}.news.example/{n:05d}", "\n".join(doc))
                for n, doc in enumerate(cut_documents(lines, rng))]
        write_wet(os.path.join(out_dir, f"{side}.warc.wet.gz"), docs)
        with open(os.path.join(out_dir, f"{side}.txt"), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    with open(os.path.join(out_dir, "gold.tsv"), "w", encoding="utf-8") as f:
        f.writelines(f"{x}\t{en}\n" for x, en in gold)
    return {"pairs_read": len(all_pairs), "unique_pairs": len(unique), "n_gold": len(gold), "n_src": len(src),
            "n_tgt": len(tgt), "gold": set(gold), "src": src, "tgt": tgt}


def exact_scores(pairs, gold: set) -> dict:
    mined = set(pairs)
    tp = len(mined & gold)
    p, r = tp / max(len(mined), 1), tp / max(len(gold), 1)
    return {"f1": f1_score(p, r), "precision": 100 * p, "recall": 100 * r, "pairs": len(mined)}


def exact_oracle(scored, gold: set) -> dict:
    """Best exact-text F1 over thresholds of scored (src, tgt, score) candidates."""
    best, tp = {"f1": 0.0, "threshold": float("inf")}, 0
    for j, (s, t, sc) in enumerate(sorted(scored, key=lambda c: -c[2]), 1):
        tp += (s, t) in gold
        f1 = f1_score(tp / j, tp / len(gold))
        if f1 > best["f1"]:
            best = {"f1": f1, "threshold": sc}
    return best


def _embed_cached(encoder, texts: list[str], path: str) -> np.ndarray:
    if os.path.exists(path):
        return np.load(path)
    from parabeam.mining.text import clean_sentence

    vecs = encoder.encode([clean_sentence(t) for t in texts])
    np.save(path, vecs)
    return vecs


def plain_line_miner(corpus: dict, corpus_dir: str, encoder, spec: str) -> dict:
    x = _embed_cached(encoder, corpus["src"], corpus_vectors(corpus_dir, "src", spec))
    y = _embed_cached(encoder, corpus["tgt"], corpus_vectors(corpus_dir, "tgt", spec))

    class Fixed:
        def __init__(self, vectors):
            self.vectors = iter(vectors)

        def encode(self, texts):
            return next(self.vectors)

    kept = plain_miner(Fixed([x, y]), corpus["src"], corpus["tgt"])
    oracle = exact_oracle(kept, corpus["gold"])
    return {"plain_f1_at_1.2": exact_scores([(s, t) for s, t, sc in kept if sc >= 1.2], corpus["gold"])["f1"],
            "plain_oracle_f1": oracle["f1"], "plain_oracle_threshold": oracle["threshold"]}


def run_parabeam(lang: str, corpus_dir: str, mine_args: str, name: str = "out",
                 encoder: str = "auto", fresh: bool = True) -> tuple[str, float]:
    """``parabeam mine`` on a corpus folder into ``corpus_dir/name``; ``fresh``: the output (and its embedding
    cache) removed first, else overwritten with the cache reused."""
    out = os.path.join(corpus_dir, name)
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "parabeam.pipelines.cli", "mine", "--input", f"{corpus_dir}/src.warc.wet.gz",
           "--input", f"{corpus_dir}/tgt.warc.wet.gz", "--langs", f"{lang},en", "--output", out,
           "--encoder", encoder, *([] if fresh else ["--overwrite"]), *shlex.split(mine_args)]
    started = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out, time.time() - started


def mined_pairs(out: str) -> list[tuple[str, str]]:
    import pyarrow.dataset as ds

    rows = ds.dataset(f"{out}/bitext", format="parquet").to_table(columns=["src_text", "tgt_text"]).to_pylist()
    return [(r["src_text"], r["tgt_text"]) for r in rows]


def stored(out: str, lang: str):
    """The pipeline's kept segments of one language: texts, fp16 vectors as float32, Segments."""
    import pyarrow.parquet as pq

    from parabeam.mining.passes import Segments

    npy = sorted(glob.glob(f"{out}/_work/embeddings/{lang}/shard-*.npy"))
    meta = sorted(glob.glob(f"{out}/_work/embeddings/{lang}/shard-*.parquet"))
    shards = [np.load(f).astype(np.float32) for f in npy]
    from parabeam.mining.text import text_length

    table = [r for f in meta for r in pq.read_table(f, columns=["text", "source", "offset", "line", "part"])
             .to_pylist()]
    segments = Segments.from_units([(r["source"], r["offset"]) for r in table], [r["line"] for r in table],
                                   [r["part"] for r in table], [text_length(r["text"]) for r in table])
    return [r["text"] for r in table], shards, segments


def core_sweep(out: str, lang: str, config, gold: set, grid: np.ndarray) -> dict:
    """parabeam's own oracle: the mining core at each threshold of ``grid`` on what the pipeline kept; and what
    ``--threshold auto`` picks from the same candidates."""
    from parabeam.mining.calibrate import choose_threshold
    from parabeam.mining.mine import candidates_from_knn, mine_from_knn, search_both

    src_text, src_shards, src_seg = stored(out, lang)
    tgt_text, tgt_shards, tgt_seg = stored(out, "en")
    fwd, bwd = search_both(src_shards, tgt_shards, config.search_k)
    candidates = candidates_from_knn(fwd, bwd, config).score
    # the fixed grid and 400 quantiles of the candidates' scores: margins differ in scale from encoder to encoder
    grid = np.unique(np.concatenate([grid, np.round(np.quantile(candidates, np.linspace(0.2, 0.999, 400)), 4)]))
    best = {"f1": 0.0}
    for threshold in grid:
        pairs = mine_from_knn(fwd, bwd, config, float(threshold), src_seg, tgt_seg)
        scored = exact_scores([(src_text[s], tgt_text[t]) for s, t in zip(pairs.src, pairs.tgt)], gold)
        if scored["f1"] > best["f1"]:
            best = {**scored, "threshold": float(threshold)}
    auto, info = choose_threshold(candidates, dataclasses.replace(config, threshold="auto"))
    pairs = mine_from_knn(fwd, bwd, config, auto, src_seg, tgt_seg)
    at_auto = exact_scores([(src_text[s], tgt_text[t]) for s, t in zip(pairs.src, pairs.tgt)], gold)
    return {"parabeam_oracle_f1": best["f1"], "parabeam_oracle_threshold": best.get("threshold"),
            "auto_threshold": auto, "auto_method": info["method"], "auto_f1": at_auto["f1"]}


# thresholds parabeam's oracle tries, per margin
THRESHOLD_GRIDS = {"ratio": np.round(np.arange(1.0, 1.6, 0.005), 3),
                   "distance": np.round(np.arange(-0.05, 0.35, 0.002), 3),
                   "absolute": np.round(np.arange(0.3, 1.0, 0.005), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default=",".join(DEV_LANGS))
    ap.add_argument("--work", default="/tmp/parabeam-comparable")
    ap.add_argument("--encoder", default="auto", help="encoder spec for every miner (auto: parabeam mine's choice "
                                                       "per pair)")
    ap.add_argument("--mine-args", default="", help="more parabeam mine arguments, e.g. '--threshold 1.25'")
    ap.add_argument("--no-sweep", action="store_true", help="skip parabeam's oracle and auto (core sweep)")
    args = ap.parse_args()
    from parabeam.encoders.registry import load_encoder, resolve_spec
    from parabeam.mining.config import MiningConfig

    encoders = {}
    rows = []
    for lang in args.langs.split(","):
        spec = resolve_spec(args.encoder, [lang, "en"])
        if spec not in encoders:
            encoders[spec] = load_encoder(spec)
        corpus_dir = os.path.join(args.work, f"{lang}-en")
        corpus = build_corpus(lang, corpus_dir)
        row = {"pair": f"{lang}-en", "held_out": lang not in DEV_LANGS, "encoder": spec,
               **{k: v for k, v in corpus.items() if isinstance(v, int)}}
        row.update(plain_line_miner(corpus, corpus_dir, encoders[spec], spec))
        out, wall = run_parabeam(lang, corpus_dir, args.mine_args, name=f"out-{slug(spec)}", encoder=spec)
        with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
            report = json.load(f)
        mined = mined_pairs(out)
        exact = exact_scores(mined, corpus["gold"])
        segment = SegmentScorer(corpus["gold"]).score(sorted(set(mined)))
        row.update({"parabeam_f1": exact["f1"], "parabeam_precision": exact["precision"],
                    "parabeam_recall": exact["recall"], "parabeam_pairs": exact["pairs"],
                    "parabeam_segment_f1": segment["f1"],
                    "threshold_used": report["thresholds"][f"{lang}-en"]["used"],
                    "threshold_method": report["thresholds"][f"{lang}-en"]["method"], "parabeam_wall_s": wall})
        if not args.no_sweep:
            config = MiningConfig(**{k: v for k, v in report["settings"]["config"]["mining"].items()})
            row.update(core_sweep(out, lang, config, corpus["gold"], THRESHOLD_GRIDS[config.margin]))
        rows.append(row)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print()
    print("| pair | encoder | gold / lines per side | plain @1.2 | plain oracle (thr) | **parabeam defaults** exact F1 "
          "(P / R) | threshold used | segment-aware F1 | parabeam oracle (thr) | auto (thr) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pair']}{' (held out)' if r['held_out'] else ''} | {r['encoder']} | {r['n_gold']} / {r['n_src']}, "
              f"{r['n_tgt']} "
              f"| {r['plain_f1_at_1.2']:.2f} | {r['plain_oracle_f1']:.2f} ({r['plain_oracle_threshold']:.3f}) "
              f"| **{r['parabeam_f1']:.2f}** ({r['parabeam_precision']:.1f} / {r['parabeam_recall']:.1f}) "
              f"| {r['threshold_used']:.3f} ({r['threshold_method']}) | {r['parabeam_segment_f1']:.2f} "
              + (f"| {r['parabeam_oracle_f1']:.2f} ({r['parabeam_oracle_threshold']:.3f}) "
                 f"| {r['auto_f1']:.2f} ({r['auto_threshold']:.3f}) |" if "auto_f1" in r else "| - | - |"))


if __name__ == "__main__":
    main()
