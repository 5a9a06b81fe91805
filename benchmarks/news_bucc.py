"""BUCC-style mining benchmark built from real news translations in ../shared/data (NTREX-128, FLORES-200,
Multi30k, TICO-19): a few thousand gold pairs hidden among ~15-20k sentences per side.

For each pair X-en it
  1. builds the corpus: gold = NTREX lines [0, n_gold) in X and English; X-only distractors = the other NTREX
     lines, FLORES first half and Multi30k/TICO lines whose English side is left out; English-only distractors
     = FLORES second half and other Multi30k/TICO lines. Written as BUCC files and as WET input;
  2. runs a plain exact-kNN ratio-margin miner (LASER's mine_bitexts logic: full kNN, ratio margin, k=4,
     max retrieval) on the same encoder over the gold-aligned lines (the BUCC files) and reports its F1 at the
     F1-optimal threshold (an oracle for it) and at 1.2;
  3. runs ``parabeam mine --langs X,en`` at its defaults on the WET files and scores the Parquet against gold;
  4. runs the same plain miner on exactly the sentences the pipeline kept (its shard metadata), which separates
     what mining does from what splitting, LID and dedup do.

Scoring the pipeline is segment-aware: the pipeline splits documents into sentences, so an NTREX line holding two
sentences reaches it as two. A mined pair is correct when its source is a sentence of a gold source line and its
target a sentence of that line's translation; recall counts the gold lines with at least one correct mined pair.
The exact-text figures (a mined pair must equal a whole gold line pair) are printed too.

Run: ``python benchmarks/news_bucc.py --langs de,fr,zh [--work /tmp/newsbucc]``. Prints one JSON line per pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import f1_score, read_lines  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
# X -> (NTREX code, FLORES code, extra parallel source: ("multi30k", code) or ("tico19", dir, code))
SOURCES = {
    "de": ("deu", "deu_Latn", ("multi30k", "de")),
    "fr": ("fra", "fra_Latn", ("multi30k", "fr")),
    "cs": ("ces", "ces_Latn", ("multi30k", "cs")),
    "zh": ("zho-CN", "zho_Hans", ("tico19", "en-zh", "zh")),
    "ru": ("rus", "rus_Cyrl", ("tico19", "en-ru", "ru")),
    "es": ("spa", "spa_Latn", ("tico19", "en-es_LA", "es_LA")),
    "ar": ("arb", "arb_Arab", ("tico19", "en-ar", "ar")),
    "pt": ("por", "por_Latn", ("tico19", "en-pt_BR", "pt_BR")),
    "id": ("ind", "ind_Latn", ("tico19", "en-id", "id")),
}


def _extra(spec) -> tuple[list[str], list[str]]:
    if spec[0] == "multi30k":
        return read_lines(f"{DATA}/multi30k/train.{spec[1]}.gz"), read_lines(f"{DATA}/multi30k/train.en.gz")
    _, directory, code = spec
    folder = f"{DATA}/tico19/{directory}"
    return read_lines(f"{folder}/tico19-test.{code}"), read_lines(f"{folder}/tico19-test.en")


def build_corpus(lang: str, out_dir: str, n_gold: int, n_extra: int) -> dict:
    ntrex_code, flores_code, extra_spec = SOURCES[lang]
    ntrex_x = read_lines(f"{DATA}/ntrex128/newstest2019-ref.{ntrex_code}.txt")
    ntrex_en = read_lines(f"{DATA}/ntrex128/newstest2019-src.eng.txt")
    flores_x = read_lines(f"{DATA}/flores200_devtest/{flores_code}.devtest")
    flores_en = read_lines(f"{DATA}/flores200_devtest/eng_Latn.devtest")
    extra_x, extra_en = _extra(extra_spec)
    extra_x, extra_en = extra_x[: 2 * n_extra], extra_en[: 2 * n_extra]
    half_f, half_e = len(flores_x) // 2, len(extra_x) // 2
    gold = [(ntrex_x[i], ntrex_en[i]) for i in range(n_gold)]
    src = [x for x, _ in gold] + ntrex_x[n_gold:] + flores_x[:half_f] + extra_x[:half_e]
    tgt = [e for _, e in gold] + flores_en[half_f:] + extra_en[half_e:]
    rng = np.random.default_rng(0)
    src = [src[i] for i in rng.permutation(len(src)) if src[i]]
    tgt = [tgt[i] for i in rng.permutation(len(tgt)) if tgt[i]]
    os.makedirs(out_dir, exist_ok=True)
    from sample.make_sample import write_wet  # the same WET writer as the bundled sample

    for side, sentences, code in (("src", src, lang), ("tgt", tgt, "en")):
        with open(f"{out_dir}/{side}.tsv", "w", encoding="utf-8") as f:
            f.writelines(f"{code}-{i:06d}\t{s}\n" for i, s in enumerate(sentences))
        docs = [(f"https://{code}.news.example/{i // 8:05d}", "\n".join(sentences[i:i + 8]))
                for i in range(0, len(sentences), 8)]
        write_wet(f"{out_dir}/{side}.warc.wet.gz", docs)
    src_id = {s: f"{lang}-{i:06d}" for i, s in enumerate(src)}
    tgt_id = {s: f"en-{i:06d}" for i, s in enumerate(tgt)}
    with open(f"{out_dir}/gold.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{src_id[x]}\t{tgt_id[e]}\n" for x, e in gold if x in src_id and e in tgt_id)
    return {"n_src": len(src), "n_tgt": len(tgt), "n_gold": len(gold), "gold_texts": set(gold)}


def plain_miner(encoder, src_texts: list[str], tgt_texts: list[str], k: int = 4) -> list[tuple[str, str, float]]:
    """LASER-style miner: full exact kNN (faiss IndexFlatIP), ratio margin, max retrieval with a greedy loop.
    Returns every selected pair ``(src_text, tgt_text, score)`` before any threshold."""
    import faiss

    x, y = encoder.encode(src_texts), encoder.encode(tgt_texts)
    ix, iy = faiss.IndexFlatIP(x.shape[1]), faiss.IndexFlatIP(y.shape[1])
    ix.add(x)
    iy.add(y)
    Dxy, Ixy = iy.search(x, k)
    Dyx, Iyx = ix.search(y, k)
    mx, my = Dxy.mean(1), Dyx.mean(1)
    fwd = Dxy / ((mx[:, None] + my[Ixy]) / 2)
    bwd = Dyx / ((my[:, None] + mx[Iyx]) / 2)
    cands = [(i, Ixy[i, fwd[i].argmax()], fwd[i].max()) for i in range(len(x))]
    cands += [(Iyx[j, bwd[j].argmax()], j, bwd[j].max()) for j in range(len(y))]
    cands.sort(key=lambda c: -c[2])
    seen_s, seen_t, kept = set(), set(), []
    for s, t, sc in cands:
        if s not in seen_s and t not in seen_t:
            seen_s.add(s)
            seen_t.add(t)
            kept.append((src_texts[s], tgt_texts[int(t)], float(sc)))
    return kept


class SegmentScorer:
    """Scores mined text pairs against gold line pairs, sentence-aware: a pair is correct when its source is a
    sentence of a gold source line and its target a sentence of that line's translation (compared after
    parabeam's dedup normalisation, since dedup keeps one spelling of sentences that differ only in punctuation
    or case); recall counts gold lines with at least one correct pair."""

    def __init__(self, gold_texts: set[tuple[str, str]]):
        from parabeam.mining.text import normalise_for_dedup, split_sentences

        self.norm = normalise_for_dedup
        self.n_gold = len(gold_texts)
        self.src_of: dict[str, set[int]] = {}
        # gold lines whose translation has another number of sentences: no sentence-level miner pairs them 1:1
        self.uneven = {g for g, (x, e) in enumerate(sorted(gold_texts))
                       if len(list(split_sentences(x))) != len(list(split_sentences(e)))}
        self.tgt_of: dict[str, set[int]] = {}
        for g, (x, e) in enumerate(sorted(gold_texts)):
            for piece in [x, *split_sentences(x)]:
                self.src_of.setdefault(self.norm(piece), set()).add(g)
            for piece in [e, *split_sentences(e)]:
                self.tgt_of.setdefault(self.norm(piece), set()).add(g)

    def hits(self, src: str, tgt: str) -> set[int]:
        return self.src_of.get(self.norm(src), set()) & self.tgt_of.get(self.norm(tgt), set())

    def found(self, pairs) -> set[int]:
        return set().union(*(self.hits(s, t) for s, t in pairs)) if pairs else set()

    def score(self, pairs) -> dict:
        correct, found = 0, set()
        for s, t in pairs:
            hit = self.hits(s, t)
            correct += bool(hit)
            found |= hit
        p, r = correct / max(len(pairs), 1), len(found) / self.n_gold
        return {"f1": f1_score(p, r), "precision": 100 * p, "recall": 100 * r, "pairs": len(pairs)}

    def best_threshold(self, scored: list[tuple[str, str, float]]) -> dict:
        """F1 at the F1-optimal threshold over ``scored`` (an oracle: it uses the gold)."""
        ordered = sorted(scored, key=lambda c: -c[2])
        best, found, correct = {"f1": 0.0, "threshold": float("inf")}, set(), 0
        for j, (s, t, sc) in enumerate(ordered, 1):
            hit = self.hits(s, t)
            correct += bool(hit)
            found |= hit
            f1 = f1_score(correct / j, len(found) / self.n_gold)
            if f1 > best["f1"]:
                best = {"f1": f1, "threshold": sc}
        return best


def baseline_f1(corpus_dir: str, encoder, scorer: SegmentScorer) -> dict:
    """The plain miner on the gold-aligned lines (the BUCC files): F1 at the oracle threshold and at 1.2."""
    from parabeam.encoders.evaluate import read_bucc_sentences

    _, src_texts = read_bucc_sentences(f"{corpus_dir}/src.tsv")
    _, tgt_texts = read_bucc_sentences(f"{corpus_dir}/tgt.tsv")
    kept = plain_miner(encoder, src_texts, tgt_texts)
    best = scorer.best_threshold(kept)
    at_default = [(s, t) for s, t, sc in kept if sc >= 1.2]
    return {"baseline_lines_f1_oracle": best["f1"], "baseline_lines_threshold": best["threshold"],
            "baseline_lines_f1_at_1.2": scorer.score(at_default)["f1"], "_lines_found": scorer.found(at_default)}


def baseline_same_sentences_f1(out_dir: str, lang: str, encoder, scorer: SegmentScorer) -> dict:
    """The plain miner on exactly the sentences the pipeline kept (read back from its shard metadata)."""
    import glob

    import pyarrow.parquet as pq

    def texts(code: str) -> list[str]:
        files = sorted(glob.glob(f"{out_dir}/_work/embeddings/{code}/shard-*.parquet"))
        return [t for f in files for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]

    kept = plain_miner(encoder, texts(lang), texts("en"))
    best = scorer.best_threshold(kept)
    return {"baseline_sentences_f1_oracle": best["f1"], "baseline_sentences_threshold": best["threshold"],
            "baseline_sentences_f1_at_1.2": scorer.score([(s, t) for s, t, sc in kept if sc >= 1.2])["f1"]}


def parabeam_f1(lang: str, corpus_dir: str, scorer: SegmentScorer, gold_texts: set, segment: str = "",
                mine_args: str = "", encoder: str = "auto") -> dict:
    import shlex
    import shutil

    import pyarrow.dataset as ds

    out = f"{corpus_dir}/out"
    shutil.rmtree(out, ignore_errors=True)  # a cold run: no embedding shards reused from an earlier one
    started = time.time()
    cmd = [sys.executable, "-m", "parabeam.pipelines.cli", "mine", "--input", f"{corpus_dir}/src.warc.wet.gz",
           "--input", f"{corpus_dir}/tgt.warc.wet.gz", "--langs", f"{lang},en", "--output", out, "--encoder", encoder]
    cmd += ["--segment", segment] if segment else []
    cmd += shlex.split(mine_args)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - started
    rows = ds.dataset(f"{out}/bitext", format="parquet").to_table(columns=["src_text", "tgt_text"]).to_pylist()
    mined = sorted({(r["src_text"], r["tgt_text"]) for r in rows})
    scored = scorer.score(mined)
    exact_tp = len(set(mined) & gold_texts)
    with open(f"{out}/report.json") as f:
        report = json.load(f)
    return {"parabeam_f1": scored["f1"], "parabeam_precision": scored["precision"],
            "parabeam_recall": scored["recall"], "parabeam_pairs": scored["pairs"],
            "parabeam_f1_exact_text": f1_score(exact_tp / max(len(mined), 1), exact_tp / len(gold_texts)),
            "parabeam_wall_s": round(wall, 1), "_parabeam_found": scorer.found(mined),
            "parabeam_second_pass_pairs": report.get("second_pass", {}).get(f"{lang}-en", 0),
            "dropped": {"sentences": report["sentences"].get("dropped", {}),
                        **{k: v.get("dropped", {}) for k, v in report["languages"].items()}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", default="de,fr,zh")
    ap.add_argument("--work", default="/tmp/parabeam-newsbucc")
    ap.add_argument("--n-gold", type=int, default=1500)
    ap.add_argument("--n-extra", type=int, default=8000, help="lines of Multi30k/TICO per side")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--segment", default="", help="parabeam mine --segment (default: the CLI's default)")
    ap.add_argument("--mine-args", default="", help="more parabeam mine arguments, e.g. '--second-pass-neighbours 0'")
    ap.add_argument("--encoder", default="auto", help="encoder spec for every miner (auto: parabeam mine's choice "
                                                       "per pair)")
    args = ap.parse_args()
    from parabeam.encoders.registry import load_encoder, resolve_spec

    encoders = {}
    for lang in args.langs.split(","):
        spec = resolve_spec(args.encoder, [lang, "en"])
        encoder = encoders[spec] = encoders.get(spec) or load_encoder(spec)
        corpus_dir = f"{args.work}/{lang}-en"
        corpus = build_corpus(lang, corpus_dir, args.n_gold, args.n_extra)
        row = {"pair": f"{lang}-en", "encoder": spec, "segment": args.segment or "default",
               **{k: v for k, v in corpus.items() if k != "gold_texts"}}
        scorer = SegmentScorer(corpus["gold_texts"])
        row.update(baseline_f1(corpus_dir, encoder, scorer))
        if not args.skip_pipeline:
            row.update(parabeam_f1(lang, corpus_dir, scorer, corpus["gold_texts"], args.segment, args.mine_args,
                                   spec))
            row.update(baseline_same_sentences_f1(f"{corpus_dir}/out", lang, encoder, scorer))
            only_lines = row["_lines_found"] - row["_parabeam_found"]
            row["found_only_by_line_miner"] = len(only_lines)
            row["of_those_uneven_sentence_counts"] = len(only_lines & scorer.uneven)
        row = {k: v for k, v in row.items() if not k.startswith("_")}
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
