"""Comparable news with the noise of real crawls: how many junk pairs parabeam's defaults emit, by kind.

The comparable-news corpora (``benchmarks/comparable_news.py``: WMT newstest gold lines among same-domain news on
both sides) are clean text. A crawl is not: pages repeat boilerplate, carry lines of numbers, quote English inside
the other language, and reprint lines of the other side with small changes. Users of LASER and stopes clean mined
pairs again because the top-scoring pairs are often such junk (LASER issues #129, #198). This benchmark adds four
kinds of noise to the documents of the same corpora (gold and distractor lines unchanged, documents cut the same
way; seed fixed) and mines both versions at parabeam's defaults:

- ``boilerplate``: site furniture (copyright, share buttons, cookie notices, bylines; English, the same text on
  both sides, as on a multilingual site), a line of it in 40% of the documents of each side;
- ``numbers``: number-only lines (dates and times, scores, prices, phone numbers; drawn per line), one in 30% of
  the documents of each side;
- ``english_copy``: an English line of the other side's documents inside an X document (a quote left
  untranslated), in 15% of the X documents;
- ``near_copy``: the same with the copy changed a little (case, punctuation, a number), in 10% of the X documents.

Every mined pair is classed: ``gold`` (exactly a gold pair), the kind of noise a side of it comes from (a pair of
two noise lines counts once, by its X side; copies count by their X side only), or ``wrong`` (two news lines
that are not a gold pair).
Precision, recall and F1 are exact-text against the gold, as in comparable_news; the table shows what the noise
costs and which kinds reach the output: the baseline for pair filters.

Run: ``python benchmarks/noisy_news.py --langs es,tr,pl,ja --work /tmp/noisy [--encoder auto] [--mine-args ...]``
(development languages by default); prints a JSON line per corpus and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import cut_documents, slug  # noqa: E402
from comparable_news import DEV_LANGS, build_corpus, exact_scores, mined_pairs, run_parabeam  # noqa: E402

BOILERPLATE = [
    "© 2019 Example Media Group. All rights reserved.",
    "Share this article on Facebook, Twitter and WhatsApp",
    "We use cookies to improve your experience. By continuing you agree to our cookie policy.",
    "Photo: Reuters",
    "Advertisement",
    "Subscribe to our newsletter for the latest news.",
    "Read more: Top stories of the day",
    "Home | World | Politics | Business | Sport | Culture",
    "Follow us on Instagram",
    "Terms of use | Privacy policy | Contact",
    "Sign in to comment",
    "Most read this week",
]


def number_line(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2008, 2020)
        return f"{day:02d}.{month:02d}.{year} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if kind == 1:
        return f"{rng.randint(0, 5)} - {rng.randint(0, 5)}"
    if kind == 2:
        return f"{rng.randint(1, 999)},{rng.randint(0, 99):02d} € / {rng.randint(1, 999)}.{rng.randint(0, 99):02d} $"
    if kind == 3:
        return f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
    return " ".join(str(rng.randint(1, 100)) for _ in range(rng.randint(3, 8)))


def near_copy(line: str, rng: random.Random) -> str:
    change = rng.randrange(3)
    if change == 0:
        return line.lower()
    if change == 1:
        return line.rstrip(".!?\"'") + " ..."
    digits = [i for i, c in enumerate(line) if c.isdigit()]
    if digits:
        i = rng.choice(digits)
        return line[:i] + str((int(line[i]) + 1) % 10) + line[i + 1:]
    return line.upper()


def noisy_corpus(lang: str, clean_dir: str, out_dir: str, seed: int = 0) -> dict:
    """The clean corpus of ``lang`` (built into ``clean_dir``) and a noisy copy in ``out_dir``; returns the gold and
    the noise lines by kind."""
    from sample.make_sample import write_wet

    corpus = build_corpus(lang, clean_dir)
    rng = random.Random(seed)
    src_docs, tgt_docs = cut_documents(corpus["src"], rng), cut_documents(corpus["tgt"], rng)
    gold_en = {en for _, en in corpus["gold"]}
    english_pool = [line for line in corpus["tgt"] if line not in gold_en]  # distractors: their copies are junk
    noise: dict[str, set[str]] = {"boilerplate": set(BOILERPLATE), "numbers": set(), "english_copy": set(),
                                  "near_copy": set()}

    def insert(doc: list[str], line: str) -> None:
        doc.insert(rng.randint(0, len(doc)), line)

    for docs, is_src in ((src_docs, True), (tgt_docs, False)):
        for doc in docs:
            if rng.random() < 0.4:
                insert(doc, rng.choice(BOILERPLATE))
            if rng.random() < 0.3:
                line = number_line(rng)
                noise["numbers"].add(line)
                insert(doc, line)
            if is_src and rng.random() < 0.15:
                line = rng.choice(english_pool)
                noise["english_copy"].add(line)
                insert(doc, line)
            if is_src and rng.random() < 0.10:
                line = near_copy(rng.choice(english_pool), rng)
                noise["near_copy"].add(line)
                insert(doc, line)
    os.makedirs(out_dir, exist_ok=True)
    for side, docs, code in (("src", src_docs, lang), ("tgt", tgt_docs, "en")):
        write_wet(os.path.join(out_dir, f"{side}.warc.wet.gz"),
                  [(f"https://{code}.news.example/{n:05d}", "\n".join(doc)) for n, doc in enumerate(docs)])
    return {"gold": corpus["gold"], "noise": noise, "n_gold": len(corpus["gold"]),
            "noise_lines": {kind: len(lines) for kind, lines in noise.items()}}


def classify(pairs: list[tuple[str, str]], gold: set, noise: dict[str, set[str]]) -> dict[str, int]:
    """Mined pairs by class. Boilerplate and number lines are on both sides; copies only on the X side (their
    originals are ordinary English distractors, so a pair is a copy by its X side only)."""
    counts = {"gold": 0, **{kind: 0 for kind in noise}, "wrong": 0}
    both_sides = ("boilerplate", "numbers")
    for src, tgt in set(pairs):
        if (src, tgt) in gold:
            counts["gold"] += 1
            continue
        kind = next((k for k, lines in noise.items() if src in lines), None)
        kind = kind or next((k for k in both_sides if tgt in noise[k]), None)
        counts[kind or "wrong"] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default=",".join(DEV_LANGS))
    ap.add_argument("--work", default="/tmp/parabeam-noisy")
    ap.add_argument("--encoder", default="auto")
    ap.add_argument("--mine-args", default="", help="more parabeam mine arguments")
    args = ap.parse_args()
    rows = []
    for lang in args.langs.split(","):
        clean_dir, noisy_dir = os.path.join(args.work, f"{lang}-en"), os.path.join(args.work, f"{lang}-en-noisy")
        corpus = noisy_corpus(lang, clean_dir, noisy_dir)
        row = {"pair": f"{lang}-en", "n_gold": corpus["n_gold"], "noise_lines": corpus["noise_lines"]}
        for name, folder in (("clean", clean_dir), ("noisy", noisy_dir)):
            out, wall = run_parabeam(lang, folder, args.mine_args, name=f"out-{slug(args.encoder)}",
                                     encoder=args.encoder)
            with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
                report = json.load(f)
            pairs = mined_pairs(out)
            scores = exact_scores(pairs, corpus["gold"])
            row[name] = {"f1": round(scores["f1"], 2), "precision": round(scores["precision"], 2),
                         "recall": round(scores["recall"], 2), "pairs": scores["pairs"],
                         "encoder": report["settings"]["encoder"]["resolved"],
                         "threshold": round(report["thresholds"][f"{lang}-en"]["used"], 4),
                         "classes": classify(pairs, corpus["gold"], corpus["noise"]), "wall_s": round(wall, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| pair | encoder | clean F1 (P / R) | noisy F1 (P / R) | noisy pairs | junk: boilerplate | numbers | "
          "english copy | near copy | other wrong |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, n = r["clean"], r["noisy"]
        k = n["classes"]
        print(f"| {r['pair']} | {n['encoder']} | {c['f1']:.2f} ({c['precision']:.1f} / {c['recall']:.1f}) "
              f"| {n['f1']:.2f} ({n['precision']:.1f} / {n['recall']:.1f}) | {n['pairs']} | {k['boilerplate']} "
              f"| {k['numbers']} | {k['english_copy']} | {k['near_copy']} | {k['wrong']} |")


if __name__ == "__main__":
    main()
