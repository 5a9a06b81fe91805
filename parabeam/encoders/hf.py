"""Hugging Face encoders (spec ``hf:PATH_OR_NAME``), LaBSE-style dual encoders with configurable pooling.

LaBSE (Feng et al. 2020) uses the [CLS] vector followed by a dense+tanh pooler and L2 normalisation; most
sentence-transformers models use the mean over tokens. ``pooling`` chooses: ``cls`` (the first token's last
hidden state), ``pooler`` (the model's own pooler output, LaBSE) or ``mean`` (mask-aware mean).
Loading is the standard ``AutoModel``/``AutoTokenizer`` path; nothing here downloads unless the caller passes
a hub name and the environment allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parabeam.encoders.base import TorchEncoder

POOLINGS = ("cls", "mean", "pooler")


class HFEncoder(TorchEncoder):
    def __init__(self, name_or_path: str, *, pooling: str = "cls", **kwargs) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        from transformers import AutoModel, AutoTokenizer

        self.name = f"hf:{name_or_path}"
        self.name_or_path = name_or_path
        self.pooling = pooling
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
        the same vectors (``encoders.st.write_st_directory``): mean or [CLS] pooling as they are, the pooler
        (LaBSE's [CLS] -> dense + tanh) as [CLS] pooling and a Dense layer with the pooler's weights."""
        import copy

        from parabeam.encoders.st import write_st_directory

        dense = []
        if self.pooling == "pooler":
            dense = [(copy.deepcopy(self.model.pooler.dense).cpu(), "Tanh")]
        modes = ("mean",) if self.pooling == "mean" else ("cls",)
        write_st_directory(directory, self.model, self.tokenizer, modes=modes, dense=dense,
                           max_seq_length=self.max_seq_tokens)
        return {"backend": "hf", "model_dir": ".", "pooling": self.pooling}


# model types whose position ids start after the padding index (fairseq's convention): n positions hold n - pad - 1
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl", "data2vec-text")
_NO_LIMIT = 1_000_000  # tokenizers without a limit report a huge model_max_length


def model_token_limit(config, tokenizer, cap: int | None = None) -> int:
    """Tokens one sequence may hold, special tokens included: the model's position table
    (``max_position_embeddings``, less the padding offset where positions start after it) and the tokenizer's
    ``model_max_length``, whichever is smaller, and ``cap`` when given and smaller still."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in _OFFSET_POSITIONS else 0
        limits.append(int(positions) - offset)
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max and model_max < _NO_LIMIT:
        limits.append(int(model_max))
    if cap:
        limits.append(int(cap))
    return max(2, min(limits)) if limits else 512


def pool(model_output, attention_mask, pooling: str):
    """Sentence vectors from a transformers model output; the same code serves inference and training."""
    hidden = model_output.last_hidden_state  # (B, L, H)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if getattr(model_output, "pooler_output", None) is None:
            raise ValueError("pooling 'pooler' needs a model with a pooler head (BERT/LaBSE-style)")
        return model_output.pooler_output
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
