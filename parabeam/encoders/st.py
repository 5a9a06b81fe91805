"""sentence-transformers model directories (spec ``st:DIR``, or any directory with a ``modules.json``).

Most multilingual encoders people mine with ship in this layout (LaBSE, paraphrase-multilingual-*, multilingual-e5,
bge-m3): a ``modules.json`` naming a chain of modules, each in its own folder with its config. parabeam reads the
modules itself instead of depending on the sentence-transformers package: a model needs no extra install, runs
under parabeam's length-sorted token-budget batching, device and precision handling like every other encoder,
and trains with the same loop; the library has changed its module classes and config formats between major
versions, and both the old (v2-v5: ``pooling_mode_cls_token`` ...) and the new (v6: ``pooling_mode``) formats are
read. The modules supported are those these models use:
- Transformer: the Hugging Face model and tokenizer in the module folder, ``max_seq_length`` (else the
  tokenizer's and the position table's limit), ``do_lower_case``;
- Pooling: cls, mean, max, mean_sqrt_len_tokens, weightedmean, lasttoken (several: concatenated, in that order),
  ``include_prompt`` (False: the prompt's tokens are left out of the pooling);
- Dense: a linear layer and its activation;
- Normalize.
Prompts: ``config_sentence_transformers.json``'s default prompt (or the one ``st:DIR#prompt=NAME`` names, e.g.
``query`` for multilingual-e5, whose config names none) is put before every text, as the library does.
The parity tests (tests/test_st.py) pin the vectors to ``SentenceTransformer(DIR).encode(texts,
normalize_embeddings=True)`` within 1e-4 on tiny models the library builds.

``transformers_common.write_st_directory`` writes the layout (in the old format, which every version reads), so a
model parabeam trains from a Hugging Face or sentence-transformers student is also a sentence-transformers model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from parabeam.encoders import digests
from parabeam.encoders.base import TorchEncoder, spec_options
from parabeam.encoders.transformers_common import (
    model_token_limit,
    pool,
    pooling_modes,
    quiet_transformers,
    write_st_directory,
)

_ACTIVATIONS = {"Tanh", "ReLU", "GELU", "Sigmoid", "Identity", "SiLU", "LeakyReLU", "ELU", "Softplus"}


def is_st_directory(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "modules.json"))


def _read_json(path: str, default=None):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _module_kind(entry: dict) -> str:
    kind = entry.get("type", "").rsplit(".", 1)[-1]
    if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
        raise ValueError(f"sentence-transformers module {entry.get('type')!r} is not supported (parabeam reads "
                         "Transformer, Pooling, Dense and Normalize)")
    return kind


def _activation(name: str):
    import torch

    short = (name or "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
    if short not in _ACTIVATIONS or not name.startswith("torch."):
        raise ValueError(f"Dense activation {name!r} is not supported; known: torch.nn {sorted(_ACTIVATIONS)}")
    return getattr(torch.nn, short)()


def _load_state(folder: str) -> dict:
    import torch

    safetensors = os.path.join(folder, "model.safetensors")
    if os.path.exists(safetensors):
        from safetensors.torch import load_file

        return load_file(safetensors)
    return torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)


class STEncoder(TorchEncoder):
    """A sentence-transformers directory run by parabeam (see the module docstring)."""

    backend = "st"
    options = ("prompt",)
    requires = ("transformers", "transformers")

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """``st:DIR[#prompt=NAME]``, or a folder with a ``modules.json``."""
        return spec.startswith("st:") or is_st_directory(spec)

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> STEncoder:
        path, options = spec_options(spec.removeprefix("st:"), cls.options)
        if not os.path.isdir(path):
            raise ValueError(f"encoder spec {spec!r}: {path} is not a folder")
        return cls(path, prompt_name=options.get("prompt"), **kwargs)

    @classmethod
    def fingerprint(cls, spec: str) -> str:
        path, _, options = spec.removeprefix("st:").partition("#")
        if not os.path.isdir(path):
            raise ValueError(f"encoder spec {spec!r}: {path} is not a folder")
        return digests.combine(cls.backend, options, digests.tree_digest(path, skip=("checkpoint",)))

    @classmethod
    def load_saved(cls, directory: str, entries: dict, **kwargs) -> STEncoder:
        return cls(os.path.normpath(os.path.join(directory, entries.get("model_dir", "."))), **kwargs)

    def __init__(self, path: str, *, prompt_name: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = f"st:{path}"
        self.path = path
        entries = _read_json(os.path.join(path, "modules.json"))
        if not entries:
            raise ValueError(f"{path}: modules.json lists no module")
        kinds = [_module_kind(e) for e in entries]
        if kinds[0] != "Transformer":
            raise ValueError(f"{path}: the first module must be a Transformer, got {kinds[0]}")
        folder = lambda entry: os.path.join(path, entry.get("path", ""))  # noqa: E731
        transformer_dir = folder(entries[0])
        st_config = _read_json(os.path.join(transformer_dir, "sentence_bert_config.json"), {})
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(transformer_dir)
            transformer = AutoModel.from_pretrained(transformer_dir)
        self.do_lower_case = bool(st_config.get("do_lower_case", False))
        cap = st_config.get("max_seq_length") or self.max_seq_tokens
        self.max_seq_tokens = model_token_limit(transformer.config, self.tokenizer, cap)
        self.modes: tuple[str, ...] = ("mean",)
        self.include_prompt = True
        dense = []
        self.normalize = False
        dim = int(transformer.config.hidden_size)
        for entry, kind in zip(entries[1:], kinds[1:]):
            config = _read_json(os.path.join(folder(entry), "config.json"), {})
            if kind == "Pooling":
                self.modes = pooling_modes(config)
                self.include_prompt = bool(config.get("include_prompt", True))
                dim = dim * len(self.modes)
            elif kind == "Dense":
                linear = torch.nn.Linear(config["in_features"], config["out_features"], bias=config.get("bias", True))
                state = _load_state(folder(entry))
                linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
                dense.append(torch.nn.Sequential(linear, _activation(config.get("activation_function"))))
                dim = config["out_features"]
            else:
                self.normalize = True
        self._dim = dim
        settings = _read_json(os.path.join(path, "config_sentence_transformers.json"), {})
        self.prompts = settings.get("prompts") or {}
        self.default_prompt_name = settings.get("default_prompt_name")
        name = prompt_name or self.default_prompt_name
        if prompt_name is not None and prompt_name not in self.prompts:
            raise ValueError(f"{path} has no prompt {prompt_name!r}; its prompts: {sorted(self.prompts)}")
        self.prompt = self.prompts.get(name, "") if name else ""
        self.prompt_length = self._prompt_length(self.prompt) if self.prompt else 0
        self.model = self._ready(torch.nn.ModuleDict({"transformer": transformer, "dense": torch.nn.ModuleList(dense)}))

    @property
    def dim(self) -> int:
        return self._dim

    def _prompt_length(self, prompt: str) -> int:
        """Tokens of the prompt at the start of every text, its trailing special token left out (as the library
        counts them for ``include_prompt: false``)."""
        ids = self.tokenizer(prompt)["input_ids"]
        if ids and ids[-1] in set(self.tokenizer.all_special_ids):
            return len(ids) - 1
        return len(ids)

    def _texts(self, texts: Sequence[str]) -> list[str]:
        texts = [self.prompt + t for t in texts]
        return [t.lower() for t in texts] if self.do_lower_case else texts

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(self._texts(texts), truncation=True, max_length=self.max_seq_tokens)
        return enc["input_ids"]

    def _embed(self, ids, mask):
        hidden = self.model["transformer"](input_ids=ids, attention_mask=mask).last_hidden_state.float()  # (B, L, H)
        pool_mask = mask
        if not self.include_prompt and self.prompt_length:
            pool_mask = mask.clone()
            pool_mask[:, : self.prompt_length] = 0
        vectors = pool(hidden, pool_mask, self.modes)
        for layer in self.model["dense"]:
            vectors = layer(vectors)
        return vectors

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        import torch

        padded = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt")
        with torch.inference_mode(), self._autocast():
            out = self._embed(padded["input_ids"].to(self.device), padded["attention_mask"].to(self.device))
        return out.float().cpu().numpy()

    def token_embedding(self):
        return self.model["transformer"].get_input_embeddings()

    def embed_for_training(self, texts: Sequence[str]):
        """(B, dim) unit vectors with gradients."""
        import torch

        enc = self.tokenizer(self._texts(texts), truncation=True, max_length=self.max_seq_tokens, padding=True,
                             return_tensors="pt").to(self.device)
        with self._autocast():
            out = self._embed(enc["input_ids"], enc["attention_mask"]).float()
        return torch.nn.functional.normalize(out, dim=-1)

    def save(self, directory: str) -> dict:
        """The model as a sentence-transformers directory (``directory`` itself); returns the registry entries."""
        dense = [(layer[0], type(layer[1]).__name__) for layer in self.model["dense"]]
        write_st_directory(directory, self.model["transformer"], self.tokenizer, modes=self.modes, dense=dense,
                           max_seq_length=self.max_seq_tokens, do_lower_case=self.do_lower_case,
                           include_prompt=self.include_prompt, prompts=self.prompts,
                           default_prompt_name=self.default_prompt_name)
        return {"model_dir": "."}


