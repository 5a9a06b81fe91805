"""The posterior ``threshold: auto`` aims at, per encoder: exact-text F1 of the mining core on the comparable-news
corpora at the mixture's threshold for several posteriors (the choice is made on the development pairs es, tr,
pl, ja). Reads what ``benchmarks/comparable_news.py --work WORK --encoder ENC`` left: the pipeline's stored
segments and embeddings (``WORK/X-en/out-ENC``) and the gold.

Run: ``python benchmarks/auto_posterior.py --work /tmp/cn --encoder e5-small --langs es,tr,pl,ja``. Prints one JSON
line per pair (posterior -> [threshold, F1]) and the mean F1 per posterior.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import slug  # noqa: E402
from comparable_news import exact_scores, stored  # noqa: E402

from parabeam.mining.calibrate import fit_mixture, threshold_from_mixture  # noqa: E402
from parabeam.mining.config import MiningConfig  # noqa: E402
from parabeam.mining.mine import candidates_from_knn, mine_from_knn, search_both  # noqa: E402

POSTERIORS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--encoder", default="e5-small")
    ap.add_argument("--langs", default="es,tr,pl,ja")
    args = ap.parse_args()
    by_posterior: dict[float, list[float]] = {p: [] for p in POSTERIORS}
    for lang in args.langs.split(","):
        corpus = os.path.join(args.work, f"{lang}-en")
        out = os.path.join(corpus, f"out-{slug(args.encoder)}")
        with open(os.path.join(corpus, "gold.tsv"), encoding="utf-8") as f:
            gold = {tuple(line.rstrip("\n").split("\t")[:2]) for line in f if line.strip()}
        with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
            config = MiningConfig(**json.load(f)["settings"]["config"]["mining"])
        src_text, src_shards, src_seg = stored(out, lang)
        tgt_text, tgt_shards, tgt_seg = stored(out, "en")
        fwd, bwd = search_both(src_shards, tgt_shards, config.search_k)
        fit = fit_mixture(candidates_from_knn(fwd, bwd, config).score)
        row = {"pair": f"{lang}-en"}
        for posterior in POSTERIORS:
            threshold = threshold_from_mixture(fit, posterior)
            pairs = mine_from_knn(fwd, bwd, config, float(threshold), src_seg, tgt_seg)
            f1 = exact_scores([(src_text[s], tgt_text[t]) for s, t in zip(pairs.src, pairs.tgt)], gold)["f1"]
            by_posterior[posterior].append(f1)
            row[str(posterior)] = [round(threshold, 4), round(f1, 2)]
        print(json.dumps(row), flush=True)
    print(json.dumps({"mean_f1": {str(p): round(float(np.mean(v)), 2) for p, v in by_posterior.items()}}))


if __name__ == "__main__":
    main()
