"""One round of the loop on data built from ../shared/data: mine -> train on the mined pairs -> mine again ->
evaluate, with every step a ``parabeam`` command (the README's recipe), and F1 and held-out accuracy before and
after.

Corpora (``--lang``):
- ``ar`` (and the other ``news_bucc.SOURCES`` languages): news_bucc's BUCC-style corpus: 1500 NTREX-128 gold
  line pairs among FLORES-200 and TICO-19 (or Multi30k) distractors on each side.
- ``cs`` (one of the ten languages muse-v3 covers poorly): Multi30k train, 29k Czech-English caption pairs;
  ``--n-gold`` pairs planted, ``--n-extra`` other lines per side as distractors.
- with ``--comparable WORK``: the comparable-news corpus of ``--lang`` that ``benchmarks/comparable_news.py
  --work WORK`` built (WMT newstest gold lines among same-domain news), scored on exact text as that benchmark
  scores it.
The first two are written as WET files, 8 lines per document. The only training data of the round are the pairs
parabeam mines from the corpus (no gold is used for training).

Steps (subprocesses, as a user would run them), starting from ``--encoder`` (a bundled encoder, or a model
from ``parabeam train``):
  1. ``parabeam mine --langs X,en --encoder ENC`` -> round 0 pairs; F1 against the gold (sentence-aware
     scoring, ``news_bucc.SegmentScorer``; exact text as well on comparable news);
  2. ``parabeam train --method METHOD --student ENC --bitext ROUND0/bitext [--train-parts PARTS --lr LR]``:
     ``distill`` (default): the student learns to put each X sentence on the teacher's (ENC's) vector of its mined
     English side (Reimers & Gurevych 2020, sec. 2); ``translation-ranking``: in-batch ranking with additive
     margin (Feng et al. 2020); ``--train-minutes`` of training at most;
  3. ``parabeam mine`` again with ``--encoder MODEL`` -> round 1 pairs and F1;
  4. held out from corpus and training: the shared Tatoeba set of X where there is one (ar: ara-eng), the
     xsim error (margin-based, LASER/NLLB's measure) on FLORES-200 devtest X-eng for cs; and Tatoeba deu-eng,
     to show a language outside the round stays where it was.

Run: ``python benchmarks/loop_round.py [--lang ar --encoder muse-v3 --train-minutes 10]``, or on comparable news
``python benchmarks/loop_round.py --lang hu --comparable /tmp/cn --encoder e5-small --method translation-ranking
--train-parts all --lr 2e-5``. Prints one JSON line per round and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import read_lines  # noqa: E402
from comparable_news import exact_scores  # noqa: E402
from news_bucc import DATA, SegmentScorer, build_corpus  # noqa: E402

TATOEBA = {"ar": "ara", "zh": "cmn", "de": "deu", "fr": "fra", "ru": "rus", "es": "spa", "it": "ita", "ja": "jpn",
           "pl": "pol", "tr": "tur"}
FLORES = {"cs": "ces_Latn", "fi": "fin_Latn", "ro": "ron_Latn", "hi": "hin_Deva", "tr": "tur_Latn", "pl": "pol_Latn",
          "es": "spa_Latn", "it": "ita_Latn", "ja": "jpn_Jpan"}


def captions_corpus(out_dir: str, n_gold: int, n_extra: int) -> set[tuple[str, str]]:
    from sample.make_sample import write_wet

    cs, en = read_lines(f"{DATA}/multi30k/train.cs.gz"), read_lines(f"{DATA}/multi30k/train.en.gz")
    if n_gold + 2 * n_extra > len(cs):
        raise SystemExit(f"Multi30k has {len(cs)} lines; n_gold + 2 n_extra = {n_gold + 2 * n_extra}")
    gold = {(cs[i], en[i]) for i in range(n_gold) if cs[i] and en[i]}
    src = cs[:n_gold] + cs[n_gold:n_gold + n_extra]
    tgt = en[:n_gold] + en[n_gold + n_extra:n_gold + 2 * n_extra]
    rng = np.random.default_rng(0)
    os.makedirs(out_dir, exist_ok=True)
    for side, lines, code in (("src", src, "cs"), ("tgt", tgt, "en")):
        lines = [lines[i] for i in rng.permutation(len(lines)) if lines[i]]
        docs = [(f"https://{code}.loop.example/{i // 8:05d}", "\n".join(lines[i:i + 8]))
                for i in range(0, len(lines), 8)]
        write_wet(f"{out_dir}/{side}.warc.wet.gz", docs)
    return gold


def parabeam(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "parabeam.pipelines.cli", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def mine(lang: str, corpus: str, out: str, encoder: str, scorer: SegmentScorer, gold: set | None = None) -> dict:
    """``gold``: also exact-text scores (comparable news)."""
    import pyarrow.dataset as ds

    shutil.rmtree(out, ignore_errors=True)
    wall = parabeam("mine", "--input", f"{corpus}/*.warc.wet.gz", "--langs", f"{lang},en", "--output", out,
                    "--encoder", encoder)
    rows = ds.dataset(f"{out}/bitext", format="parquet").to_table(columns=["src_text", "tgt_text"]).to_pylist()
    pairs = sorted({(r["src_text"], r["tgt_text"]) for r in rows})
    scored = scorer.score(pairs)
    exact = {f"exact_{k}": round(v, 2) for k, v in exact_scores(pairs, gold).items()} if gold else {}
    return {**{k: round(v, 2) for k, v in scored.items()}, **exact, "mine_wall_s": round(wall, 1)}


def evaluate(lang: str, encoder_spec: str) -> dict:
    from parabeam.encoders import evaluate as ev
    from parabeam.encoders.registry import load_encoder

    encoder = load_encoder(encoder_spec)
    out = {}
    if lang in FLORES:
        src = ev.read_lines(f"{DATA}/flores200_devtest/{FLORES[lang]}.devtest")
        tgt = ev.read_lines(f"{DATA}/flores200_devtest/eng_Latn.devtest")
        out[f"flores_{lang}_xsim_error"] = round(ev.xsim_error(encoder.encode(src), encoder.encode(tgt)), 2)
    for code in sorted({TATOEBA.get(lang), "deu"} - {None}):
        path = f"{DATA}/tatoeba/tatoeba.{code}-eng.{code}"
        if os.path.exists(path):
            out[f"tatoeba_{code}_accuracy"] = round(ev.tatoeba_files(encoder, path, path[:-3] + "eng")["accuracy"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lang", default="ar", help="cs (Multi30k captions) or a news_bucc language (ar, zh, ...)")
    ap.add_argument("--work", default="/tmp/parabeam-loop")
    ap.add_argument("--encoder", default="muse-v3", help="round 0 encoder and round 1 student")
    ap.add_argument("--comparable", metavar="WORK", help="use the comparable-news corpus comparable_news.py built")
    ap.add_argument("--method", default="distill", choices=["distill", "translation-ranking"])
    ap.add_argument("--train-parts", default="embeddings", choices=["embeddings", "all"])
    ap.add_argument("--lr", default="0.001")
    ap.add_argument("--epochs", default="8")
    ap.add_argument("--train-args", default="", help="more parabeam train arguments, e.g. '--warmup-steps 5'")
    ap.add_argument("--n-gold", type=int, default=None, help="gold pairs (default: 4000 for cs, 1500 news)")
    ap.add_argument("--n-extra", type=int, default=8000, help="distractor lines per side")
    ap.add_argument("--train-minutes", type=float, default=10.0)
    ap.add_argument("--min-score", type=float, default=None,
                    help="mined pairs kept for training (default: every pair parabeam mine kept)")
    args = ap.parse_args()
    lang = args.lang
    corpus, model = f"{args.work}/corpus-{lang}", f"{args.work}/model-{lang}-round1"
    exact_gold = None
    if args.comparable:
        corpus = f"{args.comparable}/{lang}-en"
        with open(f"{corpus}/gold.tsv", encoding="utf-8") as f:
            gold = exact_gold = {tuple(line.rstrip("\n").split("\t")[:2]) for line in f if line.strip()}
    elif lang == "cs":
        gold = captions_corpus(corpus, args.n_gold or 4000, args.n_extra)
    else:
        gold = build_corpus(lang, corpus, args.n_gold or 1500, args.n_extra)["gold_texts"]
        for side in ("src", "tgt"):  # news_bucc also writes BUCC files; the round reads the WET files only
            os.remove(f"{corpus}/{side}.tsv")
    scorer = SegmentScorer(gold)
    r0 = {"round": 0, "encoder": args.encoder,
          **mine(lang, corpus, f"{args.work}/{lang}-round0", args.encoder, scorer, exact_gold),
          **evaluate(lang, args.encoder)}
    print(json.dumps(r0), flush=True)
    shutil.rmtree(model, ignore_errors=True)
    train_wall = parabeam(
        "train", "--method", args.method, "--student", args.encoder, "--teacher", args.encoder,
        "--bitext", f"{args.work}/{lang}-round0/bitext",
        *(["--min-score", str(args.min_score)] if args.min_score is not None else []),
        "--train-parts", args.train_parts, "--lr", args.lr, "--epochs", args.epochs,
        "--max-minutes", str(args.train_minutes), *shlex.split(args.train_args), "--output", model)
    r1 = {"round": 1, "encoder": model, "train_wall_s": round(train_wall, 1),
          **mine(lang, corpus, f"{args.work}/{lang}-round1", model, scorer, exact_gold), **evaluate(lang, model)}
    print(json.dumps(r1), flush=True)
    rounds = [r0, r1]
    keys = [k for k in r1 if k not in ("round", "encoder", "train_wall_s", "mine_wall_s")]
    print(json.dumps({"lang": lang, "summary": {k: [r.get(k) for r in rounds] for k in keys}, "n_gold": len(gold),
                      "n_extra": args.n_extra}), flush=True)


if __name__ == "__main__":
    main()
