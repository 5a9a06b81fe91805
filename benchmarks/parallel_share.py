"""Mostly parallel corpora: ``threshold: auto`` when most lines have their translation on the other side.

The comparable-news corpora (``benchmarks/comparable_news.py``) hide 2000 (or fewer) gold pairs among news lines
without a translation. Here each corpus keeps all its gold lines on both sides and only ``share`` x as many other
lines (drawn with a fixed seed), from 0 (every line translated) up to the full corpus, reusing the line embeddings
``comparable_news.py`` left in its work folder. For each share the mining core at defaults
(``parabeam.mining.mine.mine``: both passes, ``threshold: auto`` with its null check) against the same calibration
with the null check off and the F1-optimal threshold over the candidates (an oracle: it looks at the
gold). Line-level exact scores.

Development pairs (the null check's settings were chosen on them, as the mining defaults were): es, tr, pl, ja;
the others are for reporting. Run:
``python benchmarks/parallel_share.py --work /tmp/cnF --langs es,tr,pl,ja --shares 0,0.1,0.2,0.5,1`` (after
``python benchmarks/comparable_news.py --work /tmp/cnF --langs ...``); one JSON line per corpus and share, then a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import corpus_vectors, f1_score  # noqa: E402

from parabeam.encoders.registry import calibration  # noqa: E402
from parabeam.mining.calibrate import choose_threshold, threshold_from_gold  # noqa: E402
from parabeam.mining.config import MiningConfig  # noqa: E402
from parabeam.mining.mine import candidates_with_null, mine_from_knn, search_both  # noqa: E402


def _read(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _correct(pairs, hit) -> tuple[int, int]:
    return sum(hit(int(i), int(j)) for i, j in zip(pairs.src, pairs.tgt)), len(pairs)


def one(work: str, lang: str, share: float, seed: int = 0, encoder: str = "muse-v3") -> dict:
    d = f"{work}/{lang}-en"
    src_text, tgt_text = _read(f"{d}/src.txt"), _read(f"{d}/tgt.txt")
    gold = {tuple(line.split("\t")[:2]) for line in _read(f"{d}/gold.tsv") if line}
    gold_src, gold_tgt = {a for a, _ in gold}, {b for _, b in gold}
    rng = np.random.default_rng(seed)

    def rows(texts, gold_side):
        g = [i for i, t in enumerate(texts) if t in gold_side]
        other = [i for i, t in enumerate(texts) if t not in gold_side]
        extra = rng.choice(other, min(len(other), int(round(share * len(g)))), replace=False)
        return np.array(sorted(g + [int(x) for x in extra]))

    rs, rt = rows(src_text, gold_src), rows(tgt_text, gold_tgt)
    S, T = np.load(corpus_vectors(d, "src", encoder))[rs], np.load(corpus_vectors(d, "tgt", encoder))[rt]
    config = MiningConfig(**calibration(encoder, "distance"))  # the encoder's own threshold: auto calibration

    def hit(i: int, j: int) -> bool:
        return (src_text[rs[i]], tgt_text[rt[j]]) in gold

    fwd, bwd = search_both(S, T, config.search_k)
    selected, null = candidates_with_null(fwd, bwd, config)
    threshold, info = choose_threshold(selected.score, config, null=null)
    out = {"pair": f"{lang}-en", "share": share, "gold": len(gold), "src_lines": len(rs), "tgt_lines": len(rt),
           "method": info["method"], "threshold": round(threshold, 4)}
    without_check, _ = choose_threshold(selected.score, config)  # the same calibration, the null check off
    is_gold = np.array([hit(i, j) for i, j in zip(selected.src, selected.tgt)])
    oracle = threshold_from_gold(selected.score, is_gold, len(gold))
    best = oracle[0] if oracle else None
    for name, t in (("defaults", threshold), ("without_check", without_check), ("oracle", best)):
        if t is None:
            continue
        correct, n = _correct(mine_from_knn(fwd, bwd, config, threshold=t), hit)
        p, r = correct / max(n, 1), correct / len(gold)
        out[name] = {"threshold": round(float(t), 4), "precision": round(p, 4), "recall": round(r, 4),
                     "f1": round(f1_score(p, r), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/parabeam-comparable", help="comparable_news.py's --work folder")
    ap.add_argument("--langs", default="es,tr,pl,ja")
    ap.add_argument("--shares", default="0,0.1,0.2,0.5,1")
    ap.add_argument("--encoder", default="muse-v3", help="whose line vectors comparable_news.py left (its --encoder, "
                                                       "resolved)")
    args = ap.parse_args()
    rows = []
    for lang in args.langs.split(","):
        if not os.path.exists(corpus_vectors(f"{args.work}/{lang}-en", "src", args.encoder)):
            raise SystemExit(f"{corpus_vectors(f'{args.work}/{lang}-en', 'src', args.encoder)} missing: run "
                             "benchmarks/comparable_news.py "
                             f"--work {args.work} --langs {lang} first")
        for share in (float(s) for s in args.shares.split(",")):
            rows.append(one(args.work, lang, share, encoder=args.encoder))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| pair | other lines per gold line | defaults F1 (P / R) | method | without the null check F1 "
          "| oracle F1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        d, m, o = r["defaults"], r.get("without_check", {}), r.get("oracle", {})
        print(f"| {r['pair']} | {r['share']:g} | {d['f1']:.2f} ({100 * d['precision']:.1f} / {100 * d['recall']:.1f}) "
              f"| {r['method']} | {m.get('f1', float('nan')):.2f} | {o.get('f1', float('nan')):.2f} |")
    means = {k: np.mean([r[k]["f1"] for r in rows if k in r]) for k in ("defaults", "without_check", "oracle")}
    print(f"| mean of {len(rows)} | | {means['defaults']:.2f} | | {means['without_check']:.2f} "
          f"| {means['oracle']:.2f} |")


if __name__ == "__main__":
    main()
