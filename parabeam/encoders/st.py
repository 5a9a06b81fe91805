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

``write_st_directory`` writes the layout (in the old format, which every version reads), so a model parabeam
trains from a Hugging Face or sentence-transformers student is also a sentence-transformers model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from parabeam.encoders.base import TorchEncoder

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
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


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes of a Pooling config, old format or new, in the library's order."""
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:
        modes = tuple(mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key))
    unknown = set(modes) - set(POOLING_MODES)
    if unknown or not modes:
        raise ValueError(f"pooling mode(s) {sorted(unknown) or modes} not supported; known: {POOLING_MODES}")
    return tuple(sorted(modes, key=POOLING_MODES.index))


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


def pool(hidden, mask, modes: Sequence[str]):
    """Sentence vectors from token vectors ``hidden`` (B, L, H) and the attention ``mask`` (B, L), as the library's
    Pooling module computes them (right-padded input)."""
    import torch

    out = []
    float_mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    for mode in modes:
        if mode == "cls":
            first = mask.to(torch.int).argmax(dim=1)  # the first position still attended to
            out.append(hidden[torch.arange(len(hidden), device=hidden.device), first])
        elif mode == "max":
            out.append(hidden.masked_fill(float_mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * float_mask).sum(dim=1)
            count = float_mask.sum(dim=1).clamp_min(1e-9)
            out.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            weights = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype).view(1, -1, 1)
            weighted = float_mask * weights
            out.append((hidden * weighted).sum(dim=1) / weighted.sum(dim=1).clamp_min(1e-9))
        elif mode == "lasttoken":
            last = mask.sum(dim=1).to(torch.long).clamp_min(1) - 1
            out.append(hidden[torch.arange(len(hidden), device=hidden.device), last])
    return torch.cat(out, dim=-1)


class STEncoder(TorchEncoder):
    """A sentence-transformers directory run by parabeam (see the module docstring)."""

    def __init__(self, path: str, *, prompt_name: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        import torch
        from transformers import AutoModel, AutoTokenizer

        from parabeam.encoders.hf import model_token_limit

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
        hidden = self.model["transformer"](input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
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
        return {"backend": "st", "model_dir": "."}


def write_st_directory(directory: str, transformer, tokenizer, *, modes: Sequence[str], dense=(),
                       max_seq_length: int | None = None, do_lower_case: bool = False, include_prompt: bool = True,
                       prompts: dict | None = None, default_prompt_name: str | None = None) -> None:
    """A sentence-transformers directory in ``directory``: the Hugging Face model and tokenizer at its root (so it
    is a Hugging Face model too), then Pooling, each ``(torch.nn.Linear, activation name)`` of ``dense`` and
    Normalize, in the library's old config format."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    transformer.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    hidden = int(transformer.config.hidden_size)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]

    def add(kind: str, config: dict | None) -> str:
        idx = len(modules)
        folder = f"{idx}_{kind}"
        modules.append({"idx": idx, "name": str(idx), "path": folder, "type": f"sentence_transformers.models.{kind}"})
        os.makedirs(os.path.join(directory, folder), exist_ok=True)
        if config is not None:
            with open(os.path.join(directory, folder, "config.json"), "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2)
        return os.path.join(directory, folder)

    with open(os.path.join(directory, "sentence_bert_config.json"), "w", encoding="utf-8") as f:
        json.dump({"max_seq_length": max_seq_length, "do_lower_case": do_lower_case}, f, indent=2)
    add("Pooling", {"word_embedding_dimension": hidden, **{key: mode in modes for key, mode in
                                                            _LEGACY_POOLING_KEYS.items()},
                    "include_prompt": include_prompt})
    for linear, activation in dense:
        folder = add("Dense", {"in_features": linear.in_features, "out_features": linear.out_features,
                               "bias": linear.bias is not None,
                               "activation_function": f"torch.nn.modules.activation.{activation}"
                               if activation != "Identity" else "torch.nn.modules.linear.Identity"})
        save_file({f"linear.{k}": v.detach().cpu().contiguous() for k, v in linear.state_dict().items()},
                  os.path.join(folder, "model.safetensors"))
    add("Normalize", None)
    with open(os.path.join(directory, "modules.json"), "w", encoding="utf-8") as f:
        json.dump(modules, f, indent=2)
    with open(os.path.join(directory, "config_sentence_transformers.json"), "w", encoding="utf-8") as f:
        json.dump({"prompts": prompts or {}, "default_prompt_name": default_prompt_name,
                   "similarity_fn_name": "cosine"}, f, indent=2)
