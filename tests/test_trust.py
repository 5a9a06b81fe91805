"""Runs a user can trust: no stale results, no output mixed across runs, nothing lost without a count, misspelt
options and bad input refused up front, and the same output after a crash as after a clean run."""

from __future__ import annotations

import glob
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import REPO, make_tiny_bert
from parabeam.pipelines.cli import main

SAMPLE = os.path.join(REPO, "sample")
FAST = ["--runner=FnApiRunner"]
pytestmark = pytest.mark.integration


def _rows(out: str) -> list[tuple]:
    """Every output row, all columns but run_id, in file order."""
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "bitext", "pair=*", "*.parquet"))):
        table = pq.read_table(path)
        names = [n for n in table.column_names if n != "run_id"]
        rows += [(os.path.relpath(path, out), *(r[n] for n in names)) for r in table.select(names).to_pylist()]
    return rows


def _assert_same_rows(got: list[tuple], want: list[tuple]) -> None:
    """Equal rows: every value exactly, but scores and cosines (float32) within 1e-5, since runners give
    their workers different thread counts and a GEMM's rounding depends on them."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert [x for x in g if not isinstance(x, float)] == [x for x in w if not isinstance(x, float)]
        np.testing.assert_allclose([x for x in g if isinstance(x, float)], [x for x in w if isinstance(x, float)],
                                   rtol=1e-5)


def _report(out: str) -> dict:
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        return json.load(f)


def _sample_texts() -> list[str]:
    import csv

    with open(os.path.join(SAMPLE, "gold.tsv"), encoding="utf-8") as f:
        return sorted({r[k] for r in csv.DictReader(f, delimiter="\t") for k in ("src_text", "tgt_text")})


def test_a_retrained_model_in_the_same_folder_is_not_served_from_the_cache(tmp_path):
    model, out = str(tmp_path / "model"), str(tmp_path / "out")
    make_tiny_bert(model, _sample_texts(), seed=0)
    args = ["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en", "--output", out, "--encoder", f"hf:{model}",
            *FAST]
    assert main(args) == 0
    first = _report(out)
    assert first["languages"]["de"]["embedded"] == first["languages"]["de"]["kept"]
    scores_before = sorted(r[5] for r in _rows(out))
    assert main(args) == 0  # unchanged model: every shard reused
    assert _report(out)["languages"]["de"]["embeddings_reused"] == first["languages"]["de"]["kept"]
    make_tiny_bert(model, _sample_texts(), seed=1)  # "retrained" into the same folder
    assert main(args) == 0
    again = _report(out)
    assert "embeddings_reused" not in again["languages"]["de"]
    assert again["languages"]["de"]["embedded"] == first["languages"]["de"]["kept"]
    assert sorted(r[5] for r in _rows(out)) != scores_before


def test_a_rerun_with_fewer_languages_replaces_the_whole_output(tmp_path):
    out = str(tmp_path / "out")
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en,fr", "--output", out, *FAST]) == 0
    first = _report(out)
    assert sorted(os.listdir(os.path.join(out, "bitext"))) == ["pair=de-en", "pair=de-fr", "pair=en-fr"]
    assert main(["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en", "--output", out, *FAST]) == 0
    assert os.listdir(os.path.join(out, "bitext")) == ["pair=de-en"]
    report = _report(out)
    assert list(report["pairs"]) == ["de-en"]
    assert report["settings"]["replaces"] == {"run_id": first["settings"]["run_id"],
                                              "pairs": ["de-en", "de-fr", "en-fr"]}
    rows = ds.dataset(os.path.join(out, "bitext"), format="parquet").to_table()
    assert rows.num_rows == report["pairs"]["de-en"]
    assert not os.path.exists(os.path.join(out, "_work", "staging")) or not os.listdir(
        os.path.join(out, "_work", "staging"))


CLEAN_ARGS = ["--input", f"{SAMPLE}/*.gz", "--langs", "de,en,fr", "--shard-size", "5"]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """A clean run of CLEAN_ARGS with the default runner (local worker processes), as a user starts it; on success
    its stderr holds parabeam's progress lines (forwarded from the workers) and nothing of Beam's start-up chatter
    (which goes to a file)."""
    out = str(tmp_path_factory.mktemp("clean") / "out")
    done = subprocess.run([sys.executable, "-m", "parabeam.pipelines.cli", "mine", *CLEAN_ARGS, "--output", out],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("parabeam: ") for line in lines), done.stderr
    assert any(line.startswith("parabeam: embedded de shard") for line in lines), done.stderr
    rows = _rows(out)
    assert len(rows) >= 50
    return rows


def test_a_failed_run_leaves_the_previous_output_and_a_rerun_repairs(tmp_path, monkeypatch, capsys, clean_run):
    from parabeam.pipelines import storage

    out = str(tmp_path / "out")
    base = ["mine", "--input", f"{SAMPLE}/*.gz", "--output", out, *FAST]
    assert main([*base, "--langs", "de,en"]) == 0
    before, report_before = _rows(out), _report(out)
    write = storage.write_bytes_atomic

    def failing_write(path, data):  # an exception in one worker: writing one French shard fails
        if path.endswith(".npy") and f"{os.sep}fr{os.sep}" in path:
            raise OSError("injected failure in one worker")
        write(path, data)

    with monkeypatch.context() as patch:
        patch.setattr(storage, "write_bytes_atomic", failing_write)
        assert main(["mine", *CLEAN_ARGS, "--output", out, *FAST]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("parabeam: error:")]  # progress lines aside
    assert len(errors) == 1 and "injected failure in one worker" in errors[0] and "Traceback" not in err
    assert _rows(out) == before and _report(out) == report_before  # untouched
    assert main(["mine", *CLEAN_ARGS, "--output", out, *FAST]) == 0
    _assert_same_rows(_rows(out), clean_run)


def test_kill_9_mid_run_then_the_same_command_gives_the_clean_output(tmp_path, clean_run):
    out = str(tmp_path / "out")
    command = [sys.executable, "-m", "parabeam.pipelines.cli", "mine", *CLEAN_ARGS, "--output", out, *FAST]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not glob.glob(os.path.join(out, "_work", "embeddings", "*", "*.npy")):  # killed while embedding
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(out, "report.json"))
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    _assert_same_rows(_rows(out), clean_run)


def test_a_misspelt_option_is_an_error_that_names_the_right_one(tmp_path, capsys):
    args = ["mine", "--input", f"{SAMPLE}/*.gz", "--langs", "de,en", "--output", str(tmp_path / "o")]
    assert main([*args, "--treshold", "1.5"]) == 2
    assert "unknown option --treshold; did you mean --threshold?" in capsys.readouterr().err
    assert main([*args, "--direct_num_worker=2"]) == 2
    assert "did you mean --direct_num_workers?" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")  # refused before any work


def test_bad_input_is_refused_up_front_in_one_line(tmp_path, capsys):
    def error(argv) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    mine = ["mine", "--langs", "de,en"]
    (tmp_path / "afile").write_text("x")
    assert "is a file" in error([*mine, "--input", f"{SAMPLE}/*.gz", "--output", str(tmp_path / "afile")])
    assert "cannot write to output" in error([*mine, "--input", f"{SAMPLE}/*.gz", "--output",
                                              str(tmp_path / "afile" / "below")])
    assert "is a folder" in error([*mine, "--input", SAMPLE, "--output", str(tmp_path / "o")])
    assert not os.path.exists(tmp_path / "o")  # refused before anything was created
    assert "matches no file" in error([*mine, "--input", str(tmp_path / "none*.wet"), "--output", str(tmp_path / "o")])
    assert "unknown language code 'qq'" in error(["mine", "--langs", "de,qq", "--input", f"{SAMPLE}/*.gz",
                                                  "--output", str(tmp_path / "o")])
    assert "unknown encoder spec 'laser3'" in error([*mine, "--input", f"{SAMPLE}/*.gz", "--output",
                                                     str(tmp_path / "o"), "--encoder", "laser3"])
    assert "no bundled encoder covers mt (considered: muse-v3" in error(["mine", "--langs", "mt,en", "--input",
                                                                          f"{SAMPLE}/*.gz", "--output",
                                                                          str(tmp_path / "o")])
    # a missing model folder is refused before the pipeline starts
    nomodel = tmp_path / "nomodel"
    for spec, says in ((f"st:{nomodel}", f"{nomodel} is not a folder"),
                       (f"hf:{nomodel}", "not a local directory and not in the Hugging Face cache")):
        assert says in error([*mine, "--input", f"{SAMPLE}/*.gz", "--output", str(tmp_path / "o"), "--encoder", spec])
    assert not os.path.exists(tmp_path / "o")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "one.txt").write_text("Hallo.\n")
    assert "is empty" in error(["eval", "tatoeba", "--src", str(tmp_path / "empty.txt"), "--tgt",
                                str(tmp_path / "one.txt")])
    assert "is empty" in error(["eval", "xsim", "--src", str(tmp_path / "one.txt"), "--tgt",
                                str(tmp_path / "empty.txt")])
    import pyarrow as pa

    pq.write_table(pa.table({"src": ["a"], "tgt": ["b"]}), tmp_path / "wrong.parquet")
    err = error(["train", "--bitext", str(tmp_path / "wrong.parquet"), "--output", str(tmp_path / "m")])
    assert "lacks column(s) src_lang, tgt_lang, src_text, tgt_text, score" in err


def _bad_corpus(folder) -> None:
    """Inputs with every kind of damage the readers count."""
    from sample.make_sample import wet_record

    good = [wet_record(f"https://de.example.org/{i}", text, "2026-01-01T00:00:00Z") for i, text in enumerate([
        "Der alte Leuchtturm an der Nordklippe wurde letzten Sommer repariert.",
        "Meine Großmutter baut in ihrem kleinen Garten Tomaten und Bohnen an.",
        "Der Zug in die Hauptstadt fährt jeden Morgen um sieben Uhr ab.",
        "Kurz.",
        "Die Kinder spielten den ganzen Nachmittag Fußball im Park hinter der Schule.",
    ])]
    good[1] = good[1].replace(b"Content-Type: text/plain\r\n", b"broken header line\r\n")
    (folder / "bad.warc.wet").write_bytes(b"".join(good) + b"trailing garbage\n")
    with open(os.path.join(SAMPLE, "sample.warc.wet.gz"), "rb") as f:
        data = f.read()
    (folder / "cut.warc.wet.gz").write_bytes(data[: len(data) // 2])
    lines = [json.dumps({"url": "https://en.example.org/a",
                         "raw_content": "The old lighthouse on the northern cliff was repaired last summer."}).encode(),
             b"{broken json", json.dumps({"url": "https://en.example.org/b"}).encode(), b"\xff\xfe\xfd\xfc\xfb"]
    (folder / "docs.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    (folder / "notes.txt").write_bytes(bytes(range(256)) * 40)


@pytest.mark.parametrize("corpus", ["sample", "bad"])
def test_every_stage_balances(tmp_path, corpus, sample_output):
    if corpus == "bad":
        _bad_corpus(tmp_path)
        out = str(tmp_path / "out")
        assert main(["mine", "--input", str(tmp_path / "*.*"), "--langs", "de,en,zh", "--output", out, *FAST]) == 0
    else:
        out = sample_output
    r = _report(out)
    dropped = lambda node: sum((node.get("dropped") or {}).values())  # noqa: E731
    files, docs, sentences, langs = r["files"], r["documents"], r["sentences"], r["languages"]
    assert files["in"] == files["read"] + dropped(files)
    assert docs["in"] == docs["out"] + dropped(docs)
    # splitting: every segment is passed on or dropped by length
    assert sentences["in"] == sentences["out"] + sentences.get("dropped", {}).get("too_short", 0) + \
        sentences.get("dropped", {}).get("too_long", 0)
    # LID: every passed-on segment is identified as a requested language or dropped for a reason
    assert sentences["out"] == sentences.get("dropped", {}).get("other_language", 0) + sum(
        v.get("identified", 0) + v.get("dropped", {}).get("lid_low_confidence", 0) for v in langs.values())
    for code, v in langs.items():
        after_lid = {k: n for k, n in (v.get("dropped") or {}).items() if k != "lid_low_confidence"}
        assert v.get("identified", 0) == v.get("kept", 0) + sum(after_lid.values()), code  # duplicate, in_earlier_run
        assert v.get("kept", 0) == v.get("embedded", 0) + v.get("embeddings_reused", 0), code
        assert v.get("indexed", 0) == v.get("kept", 0) + v.get("from_earlier_runs", 0), code
    from parabeam.mining.filters import RULES
    from parabeam.pipelines.earlier import IN_EARLIER_RUN

    for name, n in r["pairs"].items():
        selection = r.get("selection", {}).get(name, {})
        filtered = sum(selection.get("dropped", {}).get(rule, 0) for rule in (*RULES, IN_EARLIER_RUN))
        assert n == r.get("first_pass", {}).get(name, 0) + r.get("second_pass", {}).get(name, 0) - filtered
        assert n == selection.get("candidates", 0) - sum(selection.get("dropped", {}).values())
    if corpus == "bad":
        assert files["truncated"] == 1
        assert docs["dropped"]["malformed_wet_record"] == 2  # the broken header and the trailing garbage
        assert docs["dropped"]["malformed_json"] == 1 and docs["dropped"]["missing_text_field"] == 1
        assert docs["dropped"]["undecodable"] >= 1
        assert r["pairs"]["de-en"] >= 1


def test_missing_parent_folders_of_the_output_are_created(tmp_path):
    # the README's first command writes to out/sample on a fresh clone, where out/ does not exist yet
    from parabeam.pipelines.output import OutputDir

    root = tmp_path / "out" / "deeper" / "sample"
    OutputDir(str(root)).check()
    assert root.is_dir() and os.listdir(root / "_work") == []  # the write probe is gone again
