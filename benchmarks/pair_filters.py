"""What the pair filters do, rule by rule, and how well ``--target-precision`` estimates precision.

1. Comparable news, clean and with crawl noise (``benchmarks/noisy_news.py``: WMT newstest gold lines among
   same-domain news, plus boilerplate, number lines, English copies and near copies): each corpus is mined once at
   the defaults with ``--keep-candidates``. The pairs selection kept before the filters are the candidates that are
   selected or carry a ``filter`` reason; every filter setting below is applied to them with the library's own
   rules (``parabeam.mining.filters.filter_reasons``; the run's own output must equal the "defaults" row), and
   exact-text precision, recall and F1 against the gold are reported: no filter, the defaults, the defaults
   without each rule, and each rule alone (the URL rule and an LID floor of 0.02 included, both off by default).
2. ``--target-precision P``: each noisy corpus mined again (embeddings reused from the output's cache) for several
   P; the precision the run estimated for its threshold (report.json) beside the precision measured on the
   written pairs.
3. Fully parallel sets (NTREX-128, FLORES-200 devtest, TICO-19: every line has its translation, many carry
   numbers, dates and names): the right pairs the default filters drop, and the wrong ones.

Development languages by default (es, tr, pl, ja); the rules and bounds were chosen on their comparable-news
corpora only. Run: ``python benchmarks/pair_filters.py --work /tmp/noisyf [--langs es,tr,pl,ja] [--encoder auto]
[--targets 0.8,0.9,0.95,0.98] [--parallel es,ja,zh]``; prints JSON lines and Markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shlex
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, cut_documents, read_lines, slug  # noqa: E402
from comparable_news import DEV_LANGS, exact_scores, mined_pairs, run_parabeam  # noqa: E402
from noisy_news import noisy_corpus  # noqa: E402

from parabeam.mining.filters import RULES, FilterConfig, Side, filter_reasons  # noqa: E402

DEFAULTS = FilterConfig()
OFF = {"numbers": {"numbers": False}, "urls": {"urls": False}, "copy": {"copy": False},
       "boilerplate": {"boilerplate_copies": 0}, "lid": {"min_lid_prob": 0.0},
       "near_duplicate": {"near_duplicates": False}}
ON = {"numbers": {"numbers": True}, "urls": {"urls": True}, "copy": {"copy": True},
      "boilerplate": {"boilerplate_copies": DEFAULTS.boilerplate_copies or 10},
      "lid": {"min_lid_prob": DEFAULTS.min_lid_prob or 0.02}, "near_duplicate": {"near_duplicates": True}}
NONE = FilterConfig(**{k: v for off in OFF.values() for k, v in off.items()})


def settings() -> dict[str, FilterConfig]:
    out = {"no filter": NONE, "defaults": DEFAULTS}
    out.update({f"defaults without {rule}": dataclasses.replace(DEFAULTS, **OFF[rule]) for rule in DEFAULTS.enabled})
    out.update({f"{rule} alone": dataclasses.replace(NONE, **ON[rule]) for rule in RULES})
    return out


def mine(corpus_dir: str, lang: str, encoder: str, *extra: str) -> tuple[str, dict]:
    """``parabeam mine`` into ``corpus_dir/out-<encoder>``, its embedding cache reused across calls; returns the
    output folder and its report.json."""
    out, _ = run_parabeam(lang, corpus_dir, shlex.join(extra), name=f"out-{slug(encoder)}", encoder=encoder,
                          fresh=False)
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        return out, json.load(f)


def before_filters(out: str, lang: str) -> tuple[Side, Side, np.ndarray, list[tuple[str, str]]]:
    """The pairs selection kept (before the filters) from a --keep-candidates run: sides, scores, texts."""
    import pyarrow.dataset as ds

    rows = [r for r in ds.dataset(f"{out}/candidates", format="parquet").to_table().to_pylist()
            if r["selected"] or r["filter"] is not None]
    side = lambda name, code: Side(code, [r[f"{name}_text"] for r in rows],  # noqa: E731
                                   np.array([r[f"{name}_lid_prob"] for r in rows], np.float64),
                                   np.array([r[f"{name}_copies"] for r in rows], np.int64))
    return (side("src", lang), side("tgt", "en"), np.array([r["score"] for r in rows]),
            [(r["src_text"], r["tgt_text"]) for r in rows])


def ablation(out: str, lang: str, gold: set) -> dict:
    src, tgt, score, texts = before_filters(out, lang)
    written = set(mined_pairs(out))
    rows = {}
    for name, config in settings().items():
        keep = filter_reasons(src, tgt, score, config) == None  # noqa: E711
        kept = [pair for pair, k in zip(texts, keep) if k]
        if name == "defaults" and set(kept) != written:
            raise RuntimeError(f"{out}: the defaults applied here differ from the run's own output")
        dropped = [pair for pair, k in zip(texts, keep) if not k]
        rows[name] = {**{k: round(v, 2) for k, v in exact_scores(kept, gold).items()},
                      "right_dropped": sum(p in gold for p in dropped),
                      "wrong_dropped": sum(p not in gold for p in dropped)}
    return rows


def parallel_sets(lang: str) -> dict[str, list[tuple[str, str]]]:
    """(X, en) line pairs of the fully parallel sets that have ``lang``."""
    flores = {"es": "spa_Latn", "tr": "tur_Latn", "pl": "pol_Latn", "ja": "jpn_Jpan", "zh": "zho_Hans"}
    ntrex = {"es": "spa", "tr": "tur", "pl": "pol", "ja": "jpn", "zh": "zho-CN"}
    tico = {"es": "es_LA", "zh": "zh"}
    out = {}
    if lang in flores and os.path.exists(f"{DATA}/flores200_devtest/{flores[lang]}.devtest"):
        out["flores"] = list(zip(read_lines(f"{DATA}/flores200_devtest/{flores[lang]}.devtest"),
                                 read_lines(f"{DATA}/flores200_devtest/eng_Latn.devtest")))
    if lang in ntrex and os.path.exists(f"{DATA}/ntrex128/newstest2019-ref.{ntrex[lang]}.txt"):
        out["ntrex"] = list(zip(read_lines(f"{DATA}/ntrex128/newstest2019-ref.{ntrex[lang]}.txt"),
                                read_lines(f"{DATA}/ntrex128/newstest2019-src.eng.txt")))
    if lang in tico:
        folder = f"{DATA}/tico19/en-{tico[lang]}"
        x = sorted(f for f in os.listdir(folder) if f.endswith(f".{tico[lang]}")) if os.path.isdir(folder) else []
        if x:
            out["tico"] = list(zip(read_lines(f"{folder}/{x[0]}"), read_lines(f"{folder}/{x[0][:-len(tico[lang])]}en")))
    return out


def parallel_run(name: str, lang: str, pairs: list[tuple[str, str]], work: str, encoder: str) -> dict:
    from sample.make_sample import write_wet

    pairs = [(x, en) for x, en in dict.fromkeys(pairs) if x and en]
    folder = os.path.join(work, f"{name}-{lang}-en")
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(0)
    for side, code in ((0, lang), (1, "en")):
        docs = [(f"https://{code}.{name}.example/{n:05d}", "\n".join(doc))
                for n, doc in enumerate(cut_documents([p[side] for p in pairs], rng))]
        write_wet(os.path.join(folder, f"{'src' if side == 0 else 'tgt'}.warc.wet.gz"), docs)
    out, _ = mine(folder, lang, encoder, "--keep-candidates")
    rows = ablation(out, lang, set(pairs))
    return {"set": name, "pair": f"{lang}-en", "lines": len(pairs),
            **{k: rows[k] for k in ("no filter", "defaults")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default=",".join(DEV_LANGS))
    ap.add_argument("--work", default="/tmp/parabeam-noisy")
    ap.add_argument("--encoder", default="auto")
    ap.add_argument("--targets", default="0.8,0.9,0.95,0.98", help="target precisions to check ('' for none)")
    ap.add_argument("--parallel", default="", help="languages to check on NTREX / FLORES / TICO ('' for none)")
    args = ap.parse_args()
    table, calibration, parallel = {}, [], []
    for lang in [code for code in args.langs.split(",") if code]:
        clean_dir, noisy_dir = os.path.join(args.work, f"{lang}-en"), os.path.join(args.work, f"{lang}-en-noisy")
        corpus = noisy_corpus(lang, clean_dir, noisy_dir)
        for kind, folder in (("clean", clean_dir), ("noisy", noisy_dir)):
            out, report = mine(folder, lang, args.encoder, "--keep-candidates")
            table[f"{lang} {kind}"] = rows = ablation(out, lang, corpus["gold"])
            print(json.dumps({"corpus": f"{lang}-en {kind}", "encoder": report["settings"]["encoder"]["resolved"],
                              **rows}), flush=True)
        for target in [float(t) for t in args.targets.split(",") if t]:
            out, report = mine(noisy_dir, lang, args.encoder, "--target-precision", str(target))
            info = report["thresholds"][f"{lang}-en"]
            scores = exact_scores(mined_pairs(out), corpus["gold"])
            row = {"pair": f"{lang}-en", "target": target, "method": info["method"],
                   "threshold": round(info["used"], 4), "estimated": info.get("estimated_precision"),
                   "measured": round(scores["precision"] / 100, 4), "recall": round(scores["recall"], 2),
                   "f1": round(scores["f1"], 2), "pairs": scores["pairs"]}
            calibration.append(row)
            print(json.dumps(row), flush=True)
    for lang in [code for code in args.parallel.split(",") if code]:
        for name, pairs in parallel_sets(lang).items():
            parallel.append(parallel_run(name, lang, pairs, args.work, args.encoder))
            print(json.dumps(parallel[-1]), flush=True)
    if table:
        corpora = list(table)
        print("\n| filters | " + " | ".join(corpora) + " | mean F1 | mean P | right dropped | wrong dropped |")
        print("|---|" + "---|" * (len(corpora) + 4))
        for name in settings():
            cells = [table[c][name] for c in corpora]
            print(f"| {name} | " + " | ".join(f"{c['f1']:.2f} (P {c['precision']:.1f})" for c in cells)
                  + f" | {np.mean([c['f1'] for c in cells]):.2f} | {np.mean([c['precision'] for c in cells]):.2f}"
                  f" | {sum(c['right_dropped'] for c in cells)} | {sum(c['wrong_dropped'] for c in cells)} |")
    if calibration:
        print("\n| pair | target precision | threshold | estimated | measured precision | recall | F1 |")
        print("|---|---|---|---|---|---|---|")
        for r in calibration:
            est = "-" if r["estimated"] is None else f"{r['estimated']:.3f}"
            print(f"| {r['pair']} | {r['target']} | {r['threshold']} ({r['method']}) | {est} | {r['measured']:.3f} "
                  f"| {r['recall']:.2f} | {r['f1']:.2f} |")
    if parallel:
        print("\n| set | pair | lines | no filter F1 (P / R) | defaults F1 (P / R) | right dropped | wrong dropped |")
        print("|---|---|---|---|---|---|---|")
        for r in parallel:
            a, b = r["no filter"], r["defaults"]
            print(f"| {r['set']} | {r['pair']} | {r['lines']} | {a['f1']:.2f} ({a['precision']:.1f} / "
                  f"{a['recall']:.1f}) | {b['f1']:.2f} ({b['precision']:.1f} / {b['recall']:.1f}) | "
                  f"{b['right_dropped']} | {b['wrong_dropped']} |")


if __name__ == "__main__":
    main()
