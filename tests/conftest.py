from __future__ import annotations

import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")


def shared_path(*parts: str) -> str:
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def sample_output(tmp_path_factory):
    """The bundled sample mined at defaults (5 languages, in-process runner), shared by the tests that read it."""
    from parabeam.pipelines.cli import main

    out = str(tmp_path_factory.mktemp("sample") / "out")
    assert main(["mine", "--input", os.path.join(REPO, "sample", "*.gz"), "--langs", "de,en,fr,es,zh", "--output",
                 out, "--runner=FnApiRunner"]) == 0
    return out


@pytest.fixture(scope="session")
def default_encoder():
    from parabeam.encoders.registry import load_encoder

    return load_encoder("default", device="cpu")


def unit_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d) float32 random unit vectors."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_tiny_bert(directory: str, corpus: list[str], vocab_size: int = 200, hidden: int = 32, seed: int = 0) -> str:
    """A random-initialised BERT with a WordPiece tokenizer trained on ``corpus`` on the fly: nothing downloaded."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    return directory


def pytest_collection_modifyitems(config, items):
    """Every test not marked integration, slow or gpu is a unit test (``pytest -m unit`` runs only those)."""
    tiers = {"integration", "slow", "gpu"}
    for item in items:
        if not tiers & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
