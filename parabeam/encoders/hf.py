"""Hugging Face encoders (spec ``hf:PATH_OR_NAME``), LaBSE-style dual encoders with configurable pooling.

LaBSE (Feng et al. 2020) uses the [CLS] vector followed by a dense+tanh pooler and L2 normalisation; most
sentence-transformers models use the mean over tokens. ``pooling`` chooses: ``cls`` (the first token's last
hidden state), ``pooler`` (the model's own pooler output, LaBSE) or ``mean`` (mask-aware mean).
Loading is the standard ``AutoModel``/``AutoTokenizer`` path; nothing here downloads unless the caller passes
a hub name and the environment allows it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from parabeam.encoders import digests
from parabeam.encoders.base import TorchEncoder, spec_options
from parabeam.encoders.transformers_common import model_token_limit, quiet_transformers, write_st_directory

POOLINGS = ("cls", "mean", "pooler")


class HFEncoder(TorchEncoder):
    """``hf:PATH_OR_NAME[#pooling=cls|mean|pooler]``: a transformers model and its tokenizer."""

    backend = "hf"
    options = ("pooling",)
    requires = ("transformers", "transformers")

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec.startswith("hf:")

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> HFEncoder:
        name, options = spec_options(spec[3:], cls.options)
        if not name:
            raise ValueError("encoder spec 'hf:' needs a path or model name, e.g. hf:/models/LaBSE")
        return cls(name, **options, **kwargs)

    @classmethod
    def fingerprint(cls, spec: str) -> str:
        name, _, options = spec[3:].partition("#")
        path = name if os.path.isdir(name) else _hf_snapshot(name)
        return digests.combine(cls.backend, options, digests.tree_digest(path, skip=("checkpoint",)))

    @classmethod
    def load_saved(cls, directory: str, entries: dict, **kwargs) -> HFEncoder:
        return cls(os.path.normpath(os.path.join(directory, entries.get("model_dir", "."))),
                   pooling=entries.get("pooling", "cls"), **kwargs)

    def __init__(self, name_or_path: str, *, pooling: str = "cls", **kwargs) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        from transformers import AutoModel, AutoTokenizer

        self.name = f"hf:{name_or_path}"
        self.name_or_path = name_or_path
        self.pooling = pooling
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            self.model = AutoModel.from_pretrained(name_or_path)
        self.model = self._ready(self.model)
        self._dim = int(self.model.config.hidden_size)
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"the tokenizer of {name_or_path} has no pad token; set one before using it here")
        self.max_seq_tokens = model_token_limit(self.model.config, self.tokenizer, self.max_seq_tokens)

    @property
    def dim(self) -> int:
        return self._dim

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_tokens, add_special_tokens=True)
        return enc["input_ids"]

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        import torch

        padded = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt")
        ids = padded["input_ids"].to(self.device)  # (B, L)
        mask = padded["attention_mask"].to(self.device)  # (B, L)
        with torch.inference_mode(), self._autocast():
            out = self.model(input_ids=ids, attention_mask=mask)
            emb = pool(out, mask, self.pooling)
        return emb.float().cpu().numpy()

    def token_embedding(self):
        return self.model.get_input_embeddings()

    def embed_for_training(self, texts: Sequence[str]):
        """(B, H) unit vectors with gradients."""
        import torch

        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_tokens, padding=True,
                             return_tensors="pt").to(self.device)
        with self._autocast():
            out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            emb = pool(out, enc["attention_mask"], self.pooling).float()
        return torch.nn.functional.normalize(emb, dim=-1)

    def save(self, directory: str) -> dict:
        """The model in ``directory`` as a Hugging Face model that is also a sentence-transformers model giving
        the same vectors (``transformers_common.write_st_directory``): mean or [CLS] pooling as they are, the
        pooler (LaBSE's [CLS] -> dense + tanh) as [CLS] pooling and a Dense layer with the pooler's weights."""
        import copy

        dense = []
        if self.pooling == "pooler":
            dense = [(copy.deepcopy(self.model.pooler.dense).cpu(), "Tanh")]
        modes = ("mean",) if self.pooling == "mean" else ("cls",)
        write_st_directory(directory, self.model, self.tokenizer, modes=modes, dense=dense,
                           max_seq_length=self.max_seq_tokens)
        return {"model_dir": ".", "pooling": self.pooling}


def pool(model_output, attention_mask, pooling: str):
    """Sentence vectors from a transformers model output; the same code serves inference and training."""
    hidden = model_output.last_hidden_state.float()  # (B, L, H); pooled in fp32 whatever the weights' precision
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if getattr(model_output, "pooler_output", None) is None:
            raise ValueError("pooling 'pooler' needs a model with a pooler head (BERT/LaBSE-style)")
        return model_output.pooler_output.float()
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _hf_snapshot(name: str) -> str:
    """The local folder of a hub model already in the Hugging Face cache (nothing is downloaded)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception as err:
        raise ValueError(f"encoder hf:{name}: not a local directory and not in the Hugging Face cache ({err}); "
                         "point hf: at a local copy of the model") from err
