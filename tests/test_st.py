"""sentence-transformers directories read by parabeam, against the library's own vectors; LaBSE's pooling both
ways; trained models that load in sentence-transformers; parabeam embed with every kind of spec. Tiny random
models built here (nothing downloaded)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import make_tiny_bert

st = pytest.importorskip("sentence_transformers")


def _st_modules():
    """The library's module classes: ``sentence_transformer.modules`` from 6.x on, ``models`` before it."""
    try:
        from sentence_transformers.sentence_transformer import modules
    except ImportError:
        from sentence_transformers import models as modules
    return modules

TEXTS = ["Der Zug fährt um sieben Uhr ab.", "The train leaves at seven.", "a b c", "Hallo Welt, das ist ein Test.",
         "this is a considerably longer sentence with many more tokens than the others have in it"]
CORPUS = TEXTS + ["hello world this is a test", "hallo welt das ist ein test", "more words here for the vocab"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(str(tmp_path_factory.mktemp("bert")), CORPUS)


def _build(path: str, bert: str, mode, dense=None, prompt=None, include_prompt=True, max_seq_length=None):
    import torch
    from sentence_transformers import SentenceTransformer

    models = _st_modules()

    transformer = models.Transformer(bert, max_seq_length=max_seq_length)
    hidden = transformer.auto_model.config.hidden_size
    modules = [transformer, models.Pooling(hidden, pooling_mode=mode,
                                           include_prompt=include_prompt)]
    if dense:
        torch.manual_seed(1)
        width = hidden * (len(mode) if isinstance(mode, list) else 1)
        modules.append(models.Dense(width, dense, activation_function=torch.nn.Tanh()))
    modules.append(models.Normalize())
    kwargs = {"prompts": {"query": prompt}, "default_prompt_name": "query"} if prompt else {}
    SentenceTransformer(modules=modules, device="cpu", **kwargs).save(path)
    return path


def _reference(path: str) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu").encode(TEXTS, normalize_embeddings=True, batch_size=2)


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens",
                                  ["cls", "mean"]])
def test_vectors_equal_the_librarys(tiny_bert, tmp_path, mode):
    from parabeam.encoders.registry import load_encoder

    path = _build(str(tmp_path / "st"), tiny_bert, mode, dense=24 if mode == "mean" else None)
    ours = load_encoder(path, device="cpu").encode(TEXTS)  # detected by modules.json
    np.testing.assert_allclose(ours, _reference(path), atol=1e-4)
    assert np.allclose(load_encoder(f"st:{path}", device="cpu").encode(TEXTS), ours, atol=1e-6)


@pytest.mark.parametrize("include_prompt", [True, False])
def test_prompts_apply_as_in_the_library(tiny_bert, tmp_path, include_prompt):
    from parabeam.encoders.registry import load_encoder

    path = _build(str(tmp_path / "st"), tiny_bert, "mean", prompt="query: ", include_prompt=include_prompt)
    ours = load_encoder(path, device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, _reference(path), atol=1e-4)
    without = _build(str(tmp_path / "plain"), tiny_bert, "mean")
    assert not np.allclose(ours, load_encoder(without, device="cpu").encode(TEXTS), atol=1e-3)
    # a prompt the config names but does not make the default (multilingual-e5's "query: "), by name
    np.testing.assert_allclose(load_encoder(f"st:{path}#prompt=query", device="cpu").encode(TEXTS), ours, atol=1e-6)
    np.testing.assert_allclose(load_encoder(f"st:{path}#prompt=document", device="cpu").encode(TEXTS),
                               load_encoder(without, device="cpu").encode(TEXTS), atol=1e-5)


def test_sequence_length_comes_from_the_model(tiny_bert, tmp_path):
    # the tiny model has 64 positions: longer input is cut there, not at a fixed 256 (which would crash)
    from parabeam.encoders.registry import load_encoder

    long_text = [" ".join(["words here"] * 200)]
    hf = load_encoder(f"hf:{tiny_bert}", device="cpu")
    assert hf.max_seq_tokens == 64 and hf.encode(long_text).shape == (1, 32)
    path = _build(str(tmp_path / "st"), tiny_bert, "mean", max_seq_length=16)
    encoder = load_encoder(path, device="cpu")
    assert encoder.max_seq_tokens == 16
    np.testing.assert_allclose(encoder.encode(long_text + TEXTS),
                               st.SentenceTransformer(path, device="cpu").encode(long_text + TEXTS,
                                                                                normalize_embeddings=True), atol=1e-4)


def test_labse_pooling_both_ways(tiny_bert, tmp_path):
    """LaBSE (Feng et al. 2020): [CLS], dense + tanh, L2. The same weights as a Hugging Face model with its
    pooler (hf:DIR#pooling=pooler) and as a sentence-transformers directory (CLS pooling, a Dense layer holding the
    pooler's weights, Normalize) give the same vectors, in parabeam and in the library."""
    import torch
    from sentence_transformers import SentenceTransformer

    models = _st_modules()
    from transformers import BertModel

    from parabeam.encoders.registry import load_encoder

    bert = BertModel.from_pretrained(tiny_bert)  # has a pooler: dense + tanh over [CLS]
    transformer = models.Transformer(tiny_bert)
    dense = models.Dense(32, 32, activation_function=torch.nn.Tanh())
    dense.linear.load_state_dict(bert.pooler.dense.state_dict())
    st_path = str(tmp_path / "labse-st")
    SentenceTransformer(modules=[transformer, models.Pooling(32, pooling_mode="cls"), dense, models.Normalize()],
                        device="cpu").save(st_path)
    hf_vectors = load_encoder(f"hf:{tiny_bert}#pooling=pooler", device="cpu").encode(TEXTS)
    np.testing.assert_allclose(load_encoder(st_path, device="cpu").encode(TEXTS), hf_vectors, atol=1e-5)
    np.testing.assert_allclose(_reference(st_path), hf_vectors, atol=1e-4)


def _train(student: str, out: str, tmp_path) -> dict:
    from parabeam.encoders.train import config_from_dict, train

    src = tmp_path / "src.txt"
    tgt = tmp_path / "tgt.txt"
    src.write_text("\n".join(f"hello world number {i}" for i in range(24)) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(f"hallo welt nummer {i}" for i in range(24)) + "\n", encoding="utf-8")
    config = config_from_dict({"method": "translation-ranking", "student": student, "batch_size": 8, "epochs": 1,
                               "lr": 1e-3, "train": [{"src": str(src), "tgt": str(tgt), "src_lang": "en",
                                                      "tgt_lang": "de"}]})
    return train(config, out)


@pytest.mark.parametrize("kind", ["st", "hf-mean", "hf-pooler"])
def test_a_trained_student_loads_in_the_library_with_the_same_vectors(tiny_bert, tmp_path, kind):
    from transformers import AutoModel

    from parabeam.encoders.registry import load_encoder

    student = {"st": _build(str(tmp_path / "student"), tiny_bert, "mean", dense=16),
               "hf-mean": f"hf:{tiny_bert}#pooling=mean", "hf-pooler": f"hf:{tiny_bert}#pooling=pooler"}[kind]
    out = str(tmp_path / "trained")
    card = _train(student, out, tmp_path)
    assert card["steps"] >= 1
    ours = load_encoder(out, device="cpu").encode(TEXTS)
    before = load_encoder(student, device="cpu").encode(TEXTS)
    assert not np.allclose(ours, before, atol=1e-4)  # it trained
    np.testing.assert_allclose(_reference(out), ours, atol=1e-4)  # SentenceTransformer(OUT) gives parabeam's vectors
    assert os.path.exists(os.path.join(out, "README.md"))  # the model card
    AutoModel.from_pretrained(out)  # and a Hugging Face model
    with open(os.path.join(out, "parabeam_encoder.json"), encoding="utf-8") as f:
        assert json.load(f)["backend"] == ("st" if kind == "st" else "hf")


@pytest.mark.integration
def test_embed_with_every_kind_of_spec(tiny_bert, tmp_path):
    from parabeam.encoders.registry import load_encoder
    from parabeam.pipelines.cli import main

    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    st_dir = _build(str(tmp_path / "st"), tiny_bert, "mean")
    trained = str(tmp_path / "trained")
    _train(st_dir, trained, tmp_path)
    for spec in ("default", f"hf:{tiny_bert}", st_dir, trained):
        out = tmp_path / "v.npy"
        assert main(["embed", "--encoder", spec, "--input", str(lines), "--output", str(out)]) == 0
        vectors = np.load(out)
        assert vectors.shape[0] == len(TEXTS) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(vectors, load_encoder(spec, device="cpu").encode(TEXTS), atol=1e-5)
    assert main(["embed", "--input", str(lines), "--output", str(tmp_path / "h.npy"), "--fp16"]) == 0
    assert np.load(tmp_path / "h.npy").dtype == np.float16
