"""What users get around the miner: report.html, export, score, kept candidates, progress lines, the CLI's help."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from parabeam.pipelines.cli import build_parser, main

SAMPLE = os.path.join(REPO, "sample")


@pytest.fixture(scope="module")
def candidates_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cand") / "out")
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en,zh", "--output", out, "--keep-candidates",
                 "--runner=FnApiRunner"]) == 0
    return out


def _report(out):
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.integration
def test_kept_candidates_carry_the_selected_pairs(candidates_run):
    for pair in ("de-en", "de-zh", "en-zh"):
        bitext = pq.read_table(os.path.join(candidates_run, "bitext", f"pair={pair}")).to_pylist()
        cands = pq.read_table(os.path.join(candidates_run, "candidates", f"pair={pair}")).to_pylist()
        selected = {(r["src_text"], r["tgt_text"]) for r in cands if r["selected"]}
        assert selected == {(r["src_text"], r["tgt_text"]) for r in bitext}
        assert len(cands) > len(bitext) and min(r["score"] for r in cands) >= 0.0  # the distance margin's floor
        threshold = _report(candidates_run)["thresholds"][pair]["used"]
        assert all(r["score"] < threshold for r in cands if not r["selected"])


@pytest.mark.integration
def test_export_formats_and_moving_the_threshold(candidates_run, tmp_path):
    assert main(["export", candidates_run, "--format", "tsv", "--output", str(tmp_path / "all.tsv")]) == 0
    with open(tmp_path / "all.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert list(rows[0]) == ["src", "tgt", "score", "cosine"]
    assert len(rows) == sum(_report(candidates_run)["pairs"].values())
    # below the run's threshold: read from the kept candidates, so more pairs come out
    assert main(["export", candidates_run, "--format", "jsonl", "--output", str(tmp_path / "low.jsonl"),
                 "--min-score", "0.0", "--pair", "de-en"]) == 0
    low = [json.loads(line) for line in open(tmp_path / "low.jsonl", encoding="utf-8")]
    assert len(low) > _report(candidates_run)["pairs"]["de-en"] and {r["src_lang"] for r in low} == {"de"}
    assert main(["export", candidates_run, "--format", "moses", "--output", str(tmp_path / "m"),
                 "--pair", "de-en"]) == 0
    de = open(tmp_path / "m.de", encoding="utf-8").read().splitlines()
    en = open(tmp_path / "m.en", encoding="utf-8").read().splitlines()
    assert len(de) == len(en) == _report(candidates_run)["pairs"]["de-en"]
    pairs = {(r["src_text"], r["tgt_text"]) for r in
             pq.read_table(os.path.join(candidates_run, "bitext", "pair=de-en")).to_pylist()}
    assert set(zip(de, en)) == pairs
    assert main(["export", candidates_run, "--format", "moses", "--output", str(tmp_path / "every")]) == 0
    assert (tmp_path / "every.de-zh.zh").exists()  # several pairs: one pair of files each


def test_export_streams_row_groups(tmp_path):
    # a file of several row groups is read one group at a time
    import pyarrow as pa

    from parabeam.pipelines.bitext import BITEXT_SCHEMA
    from parabeam.pipelines.export import export

    n = 1000
    columns = {f.name: pa.array([f"{f.name}{i}" for i in range(n)]) if pa.types.is_string(f.type) else
               pa.array(np.linspace(0, 1, n), type=f.type) if pa.types.is_floating(f.type) else
               pa.array(np.arange(n), type=f.type) for f in BITEXT_SCHEMA}
    folder = tmp_path / "run" / "bitext" / "pair=de-en"
    folder.mkdir(parents=True)
    pq.write_table(pa.table(columns, schema=BITEXT_SCHEMA), folder / "part-00000.parquet", row_group_size=100)
    assert pq.ParquetFile(folder / "part-00000.parquet").num_row_groups == 10
    assert export(str(tmp_path / "run"), "tsv", str(tmp_path / "o.tsv"), min_score=0.5) == {"de-en": 500}


def test_pair_margins_by_hand():
    from parabeam.mining.pair_scores import pair_margins

    # 2-d unit vectors: x0 = y0 exactly, x1 at 90 degrees of y0 and 45 of y1
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    r = np.float32(np.sqrt(0.5))
    y = np.array([[1.0, 0.0], [r, r]], np.float32)
    scores, cos = pair_margins(x, y, k=1, margin="distance")
    np.testing.assert_allclose(cos, [1.0, r], atol=1e-6)
    # k=1: x0's best neighbour is y0 (1.0), y0's is x0 (1.0): 1 - 1 = 0; x1's best is y1 (0.707), y1's is x0 or
    # x1 (both 0.707): 0.707 - 0.707 = 0
    np.testing.assert_allclose(scores, [0.0, 0.0], atol=1e-6)
    scores, _ = pair_margins(x, y, k=2, margin="ratio")
    # k=2 means: x0 (1, .707) -> .854; y0 (1, 0) -> .5; pair 0: 1 / ((.854 + .5) / 2)
    assert scores[0] == pytest.approx(1 / ((1 + r) / 2 / 2 + 0.25), rel=1e-5)


@pytest.mark.integration
def test_score_keeps_input_order_and_reads_tsv_and_parquet(tmp_path):
    import pyarrow as pa

    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        gold = [r for r in csv.DictReader(f, delimiter="\t") if (r["src_lang"], r["tgt_lang"]) == ("en", "de")]
    src = [r["tgt_text"] for r in gold[:12]]  # German
    tgt = [r["src_text"] for r in gold[:12]]  # English
    assert len(src) == 12
    tgt_shuffled = tgt[1:] + tgt[:1]  # every pair wrong
    (tmp_path / "s.txt").write_text("\n".join(src + src) + "\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("\n".join(tgt + tgt_shuffled) + "\n", encoding="utf-8")
    assert main(["score", "--src", str(tmp_path / "s.txt"), "--tgt", str(tmp_path / "t.txt"), "--output",
                 str(tmp_path / "out.tsv")]) == 0
    with open(tmp_path / "out.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [r["src"] for r in rows] == src + src and [r["tgt"] for r in rows] == tgt + tgt_shuffled
    scores = np.array([float(r["score"]) for r in rows])
    assert scores[:12].min() > scores[12:].max()  # translations above mismatches
    pq.write_table(pa.table({"src_text": src, "tgt_text": tgt}), tmp_path / "p.parquet")
    assert main(["score", "--pairs", str(tmp_path / "p.parquet"), "--output", str(tmp_path / "p.tsv")]) == 0
    (tmp_path / "p.tsv.in").write_text("src\ttgt\n" + "".join(f"{a}\t{b}\n" for a, b in zip(src, tgt)),
                                       encoding="utf-8")
    assert main(["score", "--pairs", str(tmp_path / "p.tsv.in"), "--output", str(tmp_path / "q.tsv")]) == 0
    assert open(tmp_path / "p.tsv", encoding="utf-8").read() == open(tmp_path / "q.tsv", encoding="utf-8").read()


def test_report_html_is_self_contained_with_two_plots_per_pair(sample_output):
    with open(os.path.join(sample_output, "report.html"), encoding="utf-8") as f:
        page = f.read()
    with open(os.path.join(sample_output, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    pairs = report["settings"]["pairs"]
    # per pair the score histogram and the estimated precision by threshold (mining.calibrate.precision_curve)
    assert page.count("<svg") == 2 * len(pairs) == 20 and page.count("estimated precision of the candidates") >= 10
    for pair in pairs:
        curve = report["thresholds"][pair]["precision_curve"]
        assert [t for t, _ in curve] == sorted((t for t, _ in curve), reverse=True)
        assert all(0.0 <= p <= 1.0 for _, p in curve) and 0 < report["thresholds"][pair]["estimated_precision"] <= 1
    import re

    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)  # nothing fetched from a network
    assert "<script" not in page and "<link" not in page and "Funnel" in page and "Time per stage" in page


@pytest.mark.slow
def test_report_html_renders_in_chromium(sample_output, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package chromium)")
    from PIL import Image

    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,4200",
                    f"file://{sample_output}/report.html"], check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    blue = (image[..., 2] > 150) & (image[..., 0] < 80) & (image[..., 1] > 90) & (image[..., 1] < 160)  # bars
    red = (image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)  # threshold lines
    rows_with_bars = np.flatnonzero(blue.sum(axis=1) > 10)
    # ten plots, each with its bars and its threshold line drawn
    blocks = np.split(rows_with_bars, np.flatnonzero(np.diff(rows_with_bars) > 40) + 1)
    assert len(blocks) == 10, len(blocks)
    assert red.sum() > 10 * 100


def test_every_option_has_help_and_version(capsys):
    parser = build_parser()
    subparsers = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    todo = list(subparsers.choices.items())
    while todo:
        name, sub = todo.pop()
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                todo.extend(action.choices.items())
            elif action.option_strings and action.dest != "help":
                assert action.help, f"parabeam {name} {action.option_strings[0]} has no help"
    with pytest.raises(SystemExit):
        main(["--version"])
    from parabeam import __version__

    assert capsys.readouterr().out.strip() == f"parabeam {__version__}"
