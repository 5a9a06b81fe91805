"""End to end: the real Beam pipeline on the bundled sample, with known planted pairs."""

from __future__ import annotations

import csv
import gzip
import json
import os

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from parabeam.pipelines.bitext import BITEXT_SCHEMA, REQUIRED_COLUMNS
from parabeam.pipelines.cli import main

SAMPLE = os.path.join(REPO, "sample")
pytestmark = pytest.mark.integration
BEAM_ARGS = ["--runner=FnApiRunner"]


def _pair_key(src_lang, tgt_lang, src_text, tgt_text):
    return frozenset([(src_lang, src_text), (tgt_lang, tgt_text)])


@pytest.fixture
def sample_run(sample_output):
    return sample_output


def test_sample_planted_pairs_precision_recall(sample_run):
    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        gold = {_pair_key(r["src_lang"], r["tgt_lang"], r["src_text"], r["tgt_text"])
                for r in csv.DictReader(f, delimiter="\t")}
    rows = ds.dataset(os.path.join(sample_run, "bitext"), format="parquet").to_table().to_pylist()
    mined = {_pair_key(r["src_lang"], r["tgt_lang"], r["src_text"], r["tgt_text"]) for r in rows}
    true_positives = len(mined & gold)
    assert true_positives / len(mined) >= 0.9, f"precision {true_positives / len(mined):.3f}"
    assert true_positives / len(gold) >= 0.9, f"recall {true_positives / len(gold):.3f}"


def test_output_schema_and_partitions(sample_run):
    partitions = sorted(os.listdir(os.path.join(sample_run, "bitext")))
    assert len(partitions) == 10 and "pair=de-en" in partitions
    table = pq.read_table(os.path.join(sample_run, "bitext", "pair=de-en", "part-00000.parquet"))
    assert table.schema.equals(BITEXT_SCHEMA)
    for column in REQUIRED_COLUMNS:
        assert table.column(column).null_count == 0
    row = table.slice(0, 1).to_pylist()[0]
    assert row["src_lang"] == "de" and row["tgt_lang"] == "en"
    assert row["score"] >= 0.12 and 0 < row["cosine"] <= 1
    assert row["src_url"].startswith("https://de.example.org/") and row["tgt_url"].startswith("https://en.")


def test_report_counts(sample_run):
    with open(os.path.join(sample_run, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["files"]["in"] == 2
    assert report["documents"]["in"] == 32
    # every language's planted duplicate is counted, once
    for lang in ("de", "en", "fr", "es", "zh"):
        assert report["languages"][lang]["dropped"]["duplicate"] == 1
    rows = ds.dataset(os.path.join(sample_run, "bitext"), format="parquet").to_table()
    assert sum(report["pairs"].values()) == rows.num_rows
    # nothing lost silently: sentences in = dropped by a reason + identified
    sentences = report["sentences"]
    identified = sum(v["identified"] + sum(v.get("dropped", {}).get(r, 0) for r in ["lid_low_confidence"])
                     for v in report["languages"].values())
    assert sentences["in"] == identified + sum(sentences.get("dropped", {}).values())
    assert report["settings"]["config"]["mining"]["threshold"] == "auto"
    # the sample is small: each pair has too few candidates for a fit, so auto falls back to the margin's default
    assert {v["method"] for v in report["thresholds"].values()} == {"fixed_fallback"}


def test_write_then_read_schema(tmp_path):
    from parabeam.pipelines.bitext import parquet_bytes_to_table, table_to_parquet_bytes

    table = BITEXT_SCHEMA.empty_table()
    assert parquet_bytes_to_table(table_to_parquet_bytes(table)).schema.equals(BITEXT_SCHEMA)


def test_bad_inputs_fail_with_one_line(tmp_path, capsys):
    assert main(["mine", "--input", str(tmp_path / "nothing*.wet"), "--langs", "de,en", "--output",
                 str(tmp_path / "o"), *BEAM_ARGS]) == 2
    assert "matches no file" in capsys.readouterr().err
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,qq", "--output", str(tmp_path / "o")]) == 2
    assert "unknown language code 'qq'" in capsys.readouterr().err


def test_broken_file_is_counted_not_fatal(tmp_path):
    with open(os.path.join(SAMPLE, "sample.warc.wet.gz"), "rb") as f:
        data = f.read()
    (tmp_path / "cut.warc.wet.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "good.jsonl.gz").write_bytes(open(os.path.join(SAMPLE, "sample.jsonl.gz"), "rb").read())
    out = tmp_path / "out"
    assert main(["mine", "--input", str(tmp_path / "*.gz"), "--langs", "fr,es", "--output", str(out),
                 *BEAM_ARGS]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["files"] == {"in": 2, "read": 2, "truncated": 1}
    assert 0 < report["documents"]["read_from_truncated_files"] < 19
    assert report["pairs"]["fr-es"] >= 18


def _mined_rows(out) -> list[tuple]:
    table = ds.dataset(os.path.join(out, "bitext"), format="parquet").to_table(
        columns=["src_lang", "tgt_lang", "src_text", "tgt_text", "score"])
    return sorted((r["src_lang"], r["tgt_lang"], r["src_text"], r["tgt_text"], round(r["score"], 5))
                  for r in table.to_pylist())


def test_small_shards_mine_the_same_pairs_as_one_shard(sample_run, tmp_path):
    # 7 sentences per shard: kNN, margins and selection run shard by shard against global neighbourhoods
    out = str(tmp_path / "sharded")
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en,fr,es,zh", "--output", out,
                 "--shard-size", "7", *BEAM_ARGS]) == 0
    report = json.loads(open(os.path.join(out, "report.json"), encoding="utf-8").read())
    assert report["settings"]["config"]["shard_size"] == 7
    sharded, whole = _mined_rows(out), _mined_rows(sample_run)
    # the same pairs; scores equal up to encoder batching (a shard's batches pad differently: ~1e-5)
    assert [r[:4] for r in sharded] == [r[:4] for r in whole]
    np.testing.assert_allclose([r[4] for r in sharded], [r[4] for r in whole], atol=1e-4)
    _assert_pairs_equal_library(out, "de", "en")


def _assert_pairs_equal_library(out: str, src: str, tgt: str, config=None) -> None:
    """The pipeline's pairs (kNN of both directions from one GEMM pass per shard, merged across shards; the
    second pass over refilled lists) equal the library's exact two-pass miner (``mining.mine.mine_from_knn``:
    knn per direction) on the stored embeddings."""
    import glob

    from parabeam.mining.mine import MiningConfig, mine_from_knn, search_both
    from parabeam.mining.passes import Segments

    config = config or MiningConfig()

    def shards(lang):
        files = sorted(glob.glob(os.path.join(out, "_work", "embeddings", lang, "shard-*.npy")))
        return [np.load(f) for f in files]

    def units(lang):
        files = sorted(glob.glob(os.path.join(out, "_work", "embeddings", lang, "shard-*.parquet")))
        meta = [r for f in files
                for r in pq.read_table(f, columns=["source", "offset", "line", "part", "length"]).to_pylist()]
        return Segments.from_units([(r["source"], r["offset"]) for r in meta], [r["line"] for r in meta],
                                   [r["part"] for r in meta], [r["length"] for r in meta])

    src_shards, tgt_shards = shards(src), shards(tgt)
    assert len(src_shards) > 1 and len(tgt_shards) > 1
    fwd, bwd = search_both(src_shards, tgt_shards, config.search_k)
    expected = mine_from_knn(fwd, bwd, config, src=units(src), tgt=units(tgt))
    offsets = {lang: np.cumsum([0] + [len(x) for x in s]) for lang, s in ((src, src_shards), (tgt, tgt_shards))}
    table = pq.read_table(os.path.join(out, "bitext", f"pair={src}-{tgt}")).to_pylist()

    def global_row(shard, row):
        lang, shard_id = shard.split("/")
        return int(offsets[lang][int(shard_id)] + row)

    got = sorted((global_row(r["src_shard"], r["src_row"]), global_row(r["tgt_shard"], r["tgt_row"]), r["score"])
                 for r in table)
    want = sorted(zip(expected.src.tolist(), expected.tgt.tolist(), expected.score.tolist()))
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-5)


class _TableEncoder:
    """Stands in for the encoder: a fixed vector per sentence (``encode`` as ``encoders.base.Encoder``)."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def encode(self, texts, progress=None):
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def test_second_pass_in_the_pipeline(tmp_path, monkeypatch):
    # 20 German and 20 English sentences with hand-made embeddings (tests/test_margin.py, _crowded_story):
    # the first pass misses German 1 - English 1, whose neighbourhoods hold pair 0; the second pass finds it
    from test_margin import _crowded_story

    from parabeam.mining.mine import MiningConfig
    from parabeam.mining.text import clean_sentence

    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if (r["src_lang"], r["tgt_lang"]) == ("en", "de")]
    german, english = [r["tgt_text"] for r in rows[:20]], [r["src_text"] for r in rows[:20]]
    x, y = _crowded_story()
    vectors = {clean_sentence(t): v for t, v in [*zip(german, x), *zip(english, y)]}
    monkeypatch.setattr("parabeam.encoders.registry.load_encoder", lambda spec, **kwargs: _TableEncoder(vectors))
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"raw_content": "\n".join(lines), "url": f"https://{lang}.example.org/",
                                          "digest": lang}) + "\n"
                              for lang, lines in (("de", german), ("en", english))), encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["mine", "--input", str(corpus), "--langs", "de,en", "--output", out, "--k", "2",
                 "--margin", "ratio", "--threshold", "1.2", "--second-pass-neighbours", "16", "--shard-size", "7",
                 *BEAM_ARGS]) == 0
    report = json.loads(open(os.path.join(out, "report.json"), encoding="utf-8").read())
    assert report["first_pass"]["de-en"] == 9 and report["second_pass"]["de-en"] == 1
    assert report["pairs"]["de-en"] == 10
    assert report["thresholds"]["de-en"]["second_pass_floor"] == pytest.approx(0.82, abs=2e-3)
    mined = {(r["src_text"], r["tgt_text"]) for r in pq.read_table(os.path.join(out, "bitext")).to_pylist()}
    assert mined == {(german[i], english[i]) for i in range(10)}
    _assert_pairs_equal_library(out, "de", "en", MiningConfig(k=2, margin="ratio", threshold=1.2,
                                                              second_pass_neighbours=16))


def test_threshold_calibrated_from_gold_pairs(tmp_path):
    gold = tmp_path / "gold.tsv"
    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if (r["src_lang"], r["tgt_lang"]) == ("en", "de")]
    gold.write_text("".join(f"{r['tgt_text']}\t{r['src_text']}\n" for r in rows[:10]), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en", "--output", str(out),
                 "--calibration-gold", str(gold), "--index", "flat", *BEAM_ARGS]) == 0
    info = json.loads((out / "report.json").read_text())["thresholds"]["de-en"]
    assert info["method"] == "from_gold" and info["gold_pairs"] == 10
    assert info["gold_pairs_among_candidates"] == 10 and info["gold_f1"] > 0
    scores = [r[4] for r in _mined_rows(out)]
    assert min(scores) >= round(info["used"], 5) - 1e-4


def test_cpu_threads_follow_the_runner():
    from apache_beam.options.pipeline_options import PipelineOptions

    from parabeam.pipelines.config import cpu_threads_for_runner

    local = ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]
    assert cpu_threads_for_runner(PipelineOptions([*local, "--direct_num_workers=2"]), cores=2) == 1
    assert cpu_threads_for_runner(PipelineOptions([*local, "--direct_num_workers=2"]), cores=16) == 8
    assert cpu_threads_for_runner(PipelineOptions([*local, "--direct_num_workers=0"]), cores=16) == 1
    assert cpu_threads_for_runner(PipelineOptions(["--runner=DataflowRunner"]), cores=4) == 1
    assert cpu_threads_for_runner(PipelineOptions(["--runner=DataflowRunner",
                                                   "--experiments=no_use_multiple_sdk_containers"]), cores=4) == 0
    assert cpu_threads_for_runner(PipelineOptions(["--runner=FnApiRunner"]), cores=4) == 0


def test_a_mostly_parallel_corpus_keeps_its_pairs(tmp_path):
    # 400 Multi30k captions on each side, every one with its translation: there is no mode of unrelated
    # neighbours, so the mixture alone would cut into the translations; the pipeline's runner-up null sees it
    from conftest import shared_path

    def captions(lang):
        with gzip.open(shared_path("multi30k", f"train.{lang}.gz"), "rt", encoding="utf-8") as f:
            return [next(f).strip() for _ in range(400)]

    docs = [json.dumps({"raw_content": "\n".join(lines[i:i + 20]), "url": f"https://{lang}.example.org/{i}",
                        "digest": f"{lang}{i}"}) + "\n"
            for lang, lines in (("de", captions("de")), ("en", captions("en"))) for i in range(0, 400, 20)]
    corpus = tmp_path / "captions.jsonl"
    corpus.write_text("".join(docs), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["mine", "--input", str(corpus), "--langs", "de,en", "--output", str(out), *BEAM_ARGS]) == 0
    info = json.loads((out / "report.json").read_text())["thresholds"]["de-en"]
    assert info["method"] == "from_null" and info["lower_mode"] > info["null_q99"]
    gold = set(zip(captions("de"), captions("en")))
    mined = [(r["src_text"], r["tgt_text"]) for r in pq.read_table(out / "bitext").to_pylist()]
    correct = sum(pair in gold for pair in mined)
    assert correct / len(mined) > 0.95 and correct / len(gold) > 0.9


def test_pair_filters_drop_junk_with_reasons_and_export_puts_them_back(tmp_path, monkeypatch):
    # 20 true pairs and four kinds of junk, each junk pair given one shared vector (as an encoder blind to what
    # the filters read would): the pipeline keeps the true pairs, drops each junk pair for its reason, counts the
    # drops, and keeps the dropped pairs among the candidates for `export --allow`
    from parabeam.mining.text import clean_sentence

    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if (r["src_lang"], r["tgt_lang"]) == ("en", "de")]
    true = [(r["tgt_text"], r["src_text"]) for r in rows[:20]]
    junk = {"numbers": ("Die Stadt hat 45.000 Einwohner und 12 Schulen.",
                        "The city has 38,000 inhabitants and 17 schools."),
            "copy": ("Interview: Angela Merkel", "Interview: Angela Merkel"),
            "boilerplate": ("Alle Rechte vorbehalten, Nachdruck verboten.", "All rights reserved, no reprints.")}
    # two pairs of one template: the lower-scoring one is the near duplicate
    templates = [("Ergebnis nach Runde 3 von 12", "Result after round 3 of 12"),
                 ("Ergebnis nach Runde 4 von 12", "Result after round 4 of 12")]
    rng = np.random.default_rng(0)
    vectors = {}
    for de, en in [*true, *junk.values(), *templates]:
        v = rng.normal(size=32)
        vectors[clean_sentence(de)] = vectors[clean_sentence(en)] = v / np.linalg.norm(v)
    monkeypatch.setattr("parabeam.encoders.registry.load_encoder", lambda spec, **kwargs: _TableEncoder(vectors))
    docs = []
    for side, lang in ((0, "de"), (1, "en")):
        lines = [pair[side] for pair in [*true, junk["numbers"], junk["copy"], *templates]]
        for d in range(12):  # the boilerplate line on every page
            docs.append({"raw_content": "\n".join([*lines[d::12], junk["boilerplate"][side]]),
                         "url": f"https://{lang}.example.org/{d}", "digest": f"{lang}{d}"})
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["mine", "--input", str(corpus), "--langs", "de,en", "--output", out, "--keep-candidates",
                 "--threshold", "0.1", "--filter-near-duplicates", *BEAM_ARGS]) == 0
    candidates = pq.read_table(os.path.join(out, "candidates")).to_pylist()
    score = {(r["src_text"], r["tgt_text"]): r["score"] for r in candidates}
    junk["near_duplicate"], kept = sorted(templates, key=score.get)
    report = json.loads(open(os.path.join(out, "report.json"), encoding="utf-8").read())
    dropped = report["selection"]["de-en"]["dropped"]
    assert {rule: dropped.get(rule, 0) for rule in junk} == {rule: 1 for rule in junk}
    mined = {(r["src_text"], r["tgt_text"]) for r in pq.read_table(os.path.join(out, "bitext")).to_pylist()}
    assert mined == {*true, kept} and report["pairs"]["de-en"] == 21
    reasons = {(r["src_text"], r["tgt_text"]): r["filter"] for r in candidates if r["filter"]}
    assert reasons == {pair: rule for rule, pair in junk.items()}
    assert not any(r["selected"] for r in candidates if r["filter"])
    copies = {r["src_text"]: r["src_copies"] for r in candidates}
    assert copies[junk["boilerplate"][0]] == 12 and copies[true[0][0]] == 1
    assert main(["export", out, "--format", "tsv", "--output", str(tmp_path / "back.tsv"),
                 "--allow", "numbers,copy"]) == 0
    with open(tmp_path / "back.tsv", encoding="utf-8") as f:
        back = {(r["src"], r["tgt"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
    assert back == {*true, kept, junk["numbers"], junk["copy"]}


def _sample_documents() -> list:
    from parabeam.pipelines.readers import read_documents

    docs = []
    for name in ("sample.warc.wet.gz", "sample.jsonl.gz"):
        with open(os.path.join(SAMPLE, name), "rb") as f:
            docs += list(read_documents(f, name, lambda *event: None))
    return docs


def _write_snapshot(path, docs) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"url": d.url, "digest": d.digest, "raw_content": d.text}) + "\n" for d in docs)
    return str(path)


def _pairs_by_language(out) -> set:
    return {(r["src_lang"], r["tgt_lang"], r["src_text"], r["tgt_text"])
            for r in pq.read_table(os.path.join(out, "bitext")).to_pylist()}


def test_since_mines_a_new_snapshot_against_an_earlier_run(tmp_path):
    # the sample as two crawl snapshots: every other document in A; the rest in B, which also repeats a third of
    # A's documents (pages crawled again). A, then B --since A, gives the pairs of one run over both, B writes no
    # pair A wrote, and B embeds none of A's sentences
    docs = _sample_documents()
    a_docs, b_docs = docs[0::2], docs[1::2] + docs[0::6]
    a_file = _write_snapshot(tmp_path / "a.jsonl.gz", a_docs)
    b_file = _write_snapshot(tmp_path / "b.jsonl.gz", b_docs)
    langs = ["--langs", "de,en,fr,es,zh", *BEAM_ARGS]
    a, b, both = (str(tmp_path / name) for name in ("a", "b", "both"))
    assert main(["mine", "--input", a_file, "--output", a, *langs]) == 0
    assert main(["mine", "--input", b_file, "--output", b, "--since", a, *langs]) == 0
    assert main(["mine", "--input", a_file, "--input", b_file, "--output", both, *langs]) == 0
    pairs_a, pairs_b, pairs_both = _pairs_by_language(a), _pairs_by_language(b), _pairs_by_language(both)
    assert pairs_a and pairs_b and not pairs_a & pairs_b
    assert pairs_a | pairs_b == pairs_both
    report_a, report_b = _report(a), _report(b)
    assert report_b["settings"]["since"] == [{"output": a, "run_id": report_a["settings"]["run_id"]}]
    for lang, counts in report_b["languages"].items():
        earlier = report_a["languages"][lang]
        # every sentence of B that A holds was dropped before embedding; A's shards were searched instead
        assert counts.get("embedded", 0) + counts.get("embeddings_reused", 0) == counts.get("kept", 0)
        assert counts["from_earlier_runs"] == earlier["kept"]
        assert counts["indexed"] == counts.get("kept", 0) + earlier["kept"] == _report(both)["languages"][lang]["kept"]
        assert counts["dropped"]["in_earlier_run"] > 0
    assert sum(v["dropped"].get("in_earlier_run", 0) for v in report_b["selection"].values()) > 0
    # a third snapshot on top of B carries A's shards along: B's report lists the union (one new shard per language)
    for lang, shards in report_b["shards"].items():
        assert len(shards) == len(report_a["shards"][lang]) + (1 if report_b["languages"][lang].get("kept") else 0)
        assert {s["embeddings"] for s in report_a["shards"][lang]} <= {s["embeddings"] for s in shards}


def test_since_refuses_another_encoder_and_a_missing_run(tmp_path, capsys):
    a = str(tmp_path / "a")
    assert main(["mine", "--input", f"{SAMPLE}/sample.jsonl.gz", "--langs", "fr,es", "--output", a,
                 "--encoder", "muse-v3", *BEAM_ARGS]) == 0
    capsys.readouterr()
    for args, message in (
            (["--since", a, "--encoder", "e5-small"], "was mined with another encoder (muse-v3"),
            (["--since", str(tmp_path / "nothing")], "no report.json there"),
            (["--since", str(tmp_path / "b")], "is the output itself"),
            (["--since", str(tmp_path / "x" / ".." / "b") + "/"], "is the output itself")):
        assert main(["mine", "--input", f"{SAMPLE}/sample.jsonl.gz", "--langs", "fr,es", "--output",
                     str(tmp_path / "b"), *args, *BEAM_ARGS]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err


def _report(out) -> dict:
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        return json.load(f)


def test_target_precision_in_the_pipeline(tmp_path):
    out = str(tmp_path / "out")
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en", "--output", out, "--target-precision",
                 "0.9", *BEAM_ARGS]) == 0
    info = _report(out)["thresholds"]["de-en"]
    assert info["method"] == "from_target_precision" and info["target_precision"] == 0.9
    assert info["estimated_precision"] >= 0.9 and info["precision_curve"]
    scores = [r["score"] for r in pq.read_table(os.path.join(out, "bitext")).to_pylist()]
    assert scores and min(scores) >= info["used"] - 1e-6
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "estimated precision of the candidates above it: " in page
