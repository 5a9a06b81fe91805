"""Every margin x retrieval mode on the news BUCC-style corpora, on the sentences and embeddings the pipeline kept.

Reads what ``benchmarks/news_bucc.py`` left in its work directory (the corpus, the gold, and the pipeline's fp16
embedding shards with their metadata), scores all candidates with ``mining.mine.score_candidates`` for each of
the 3 margins (Artetxe & Schwenk 2019, sec. 3.1: ratio, distance, absolute = plain cosine) and 4 retrievals
(forward, backward, intersection, max), and reports sentence-aware F1 (news_bucc.SegmentScorer):
- at the mode's F1-optimal threshold (an oracle: it looks at the gold), which compares the modes themselves;
- at the threshold ``--threshold auto`` would pick (mining.calibrate, from the score distribution, no gold);
- for the ratio margin, at the default 1.2.
The baseline the issue names is max retrieval with the ratio margin (LASER's mine_bitexts default).

Run: ``python benchmarks/news_bucc.py --langs de,zh`` once, then ``python benchmarks/news_modes.py --langs de,zh``.
One JSON line per pair and mode.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from news_bucc import SegmentScorer  # noqa: E402


def _tsv(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)


def _kept(out_dir: str, code: str) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    texts, vecs = [], []
    for meta in sorted(glob.glob(f"{out_dir}/_work/embeddings/{code}/shard-*.parquet")):
        texts += pq.read_table(meta, columns=["text"]).column("text").to_pylist()
        vecs.append(np.load(meta[: -len(".parquet")] + ".npy").astype(np.float32))
    if not vecs:
        raise SystemExit(f"no embedding shards under {out_dir}/_work/embeddings/{code}: run news_bucc.py first")
    return texts, np.concatenate(vecs)


def main() -> None:
    from parabeam.mining.calibrate import threshold_from_scores
    from parabeam.mining.mine import MiningConfig, score_candidates

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default="de,zh")
    ap.add_argument("--work", default="/tmp/parabeam-newsbucc")
    args = ap.parse_args()
    for lang in args.langs.split(","):
        corpus = f"{args.work}/{lang}-en"
        src_text, tgt_text = _tsv(f"{corpus}/src.tsv"), _tsv(f"{corpus}/tgt.tsv")
        gold = {(src_text[a], tgt_text[b]) for a, b in _tsv(f"{corpus}/gold.tsv").items()}
        scorer = SegmentScorer(gold)
        xs, x = _kept(f"{corpus}/out", lang)
        ys, y = _kept(f"{corpus}/out", "en")
        for margin in ("ratio", "distance", "absolute"):
            for retrieval in ("max", "intersection", "forward", "backward"):
                cands = score_candidates(x, y, MiningConfig(margin=margin, retrieval=retrieval, threshold=-9.0))
                scored = [(xs[i], ys[j], float(s)) for i, j, s in zip(cands.src, cands.tgt, cands.score)]
                best = scorer.best_threshold(scored)
                auto = threshold_from_scores(np.asarray(cands.score, dtype=np.float64))
                row = {"pair": f"{lang}-en", "margin": margin, "retrieval": retrieval,
                       "f1_oracle": round(best["f1"], 2), "oracle_threshold": round(best["threshold"], 3)}
                if auto is not None:
                    row["auto_threshold"] = round(auto, 3)
                    row["f1_auto"] = round(scorer.score([(s, t) for s, t, sc in scored if sc >= auto])["f1"], 2)
                if margin == "ratio":
                    row["f1_at_1.2"] = round(scorer.score([(s, t) for s, t, sc in scored if sc >= 1.2])["f1"], 2)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
