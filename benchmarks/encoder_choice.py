"""Development figures for choosing between the bundled encoders (``--encoder auto``) and for choosing what to train
e5-small on (``conf/e5-ranking.yaml``): Tatoeba-style accuracy (%, mean of both directions) of each bundled encoder
on data no evaluation in the README uses:
- FLORES-200 devtest lines 500-1011, each language against English (news and wiki sentences, 25 languages);
- Multi30k val captions (1014 image captions in cs, de, fr against English: short everyday sentences).

Run: ``python benchmarks/encoder_choice.py [--encoders e5-small,muse-v3]``. Prints one JSON line per set and
language and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, read_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", default="e5-small,muse-v3")
    args = ap.parse_args()
    from parabeam.encoders.evaluate import tatoeba_accuracy
    from parabeam.encoders.registry import load_encoder

    names = args.encoders.split(",")
    encoders = {name: load_encoder(name, device="cpu") for name in names}
    flores = os.path.join(DATA, "flores200_devtest")
    english = read_lines(os.path.join(flores, "eng_Latn.devtest"), strip=False)[500:]
    english_vectors = {name: enc.encode(english) for name, enc in encoders.items()}
    sets = [("flores 500+", name[:8], read_lines(os.path.join(flores, name), strip=False)[500:], None)
            for name in sorted(os.listdir(flores)) if name.endswith(".devtest") and not name.startswith("eng")]
    captions_en = read_lines(os.path.join(DATA, "multi30k", "val.en.gz"), strip=False)
    sets += [("multi30k val", lang, read_lines(os.path.join(DATA, "multi30k", f"val.{lang}.gz"), strip=False),
              captions_en)
             for lang in ("cs", "de", "fr")]
    rows = []
    for set_name, lang, texts, targets in sets:
        row = {"set": set_name, "lang": lang}
        for name, enc in encoders.items():
            y = english_vectors[name] if targets is None else enc.encode(targets)
            row[name] = round(tatoeba_accuracy(enc.encode(texts), y)["accuracy"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| set | language | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for row in rows:
        print(f"| {row['set']} | {row['lang']} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
