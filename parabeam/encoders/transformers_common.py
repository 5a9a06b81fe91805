"""What the Hugging Face and sentence-transformers backends (and every backend that saves a BERT-style model) share:
the token limit of a transformers model, sentence-transformers' pooling modes, and writing a sentence-transformers
directory (``write_st_directory``), so that a model parabeam trains loads in sentence-transformers and Hugging Face
as it is. The backends import this module, not each other."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence


@contextlib.contextmanager
def quiet_transformers():
    """transformers' progress bars (loading and writing weights) off inside the block: parabeam shows its own
    progress, and a bar per worker process is noise."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes of a Pooling config, old format or new, in the library's order."""
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:
        modes = tuple(mode for key, mode in LEGACY_POOLING_KEYS.items() if config.get(key))
    unknown = set(modes) - set(POOLING_MODES)
    if unknown or not modes:
        raise ValueError(f"pooling mode(s) {sorted(unknown) or modes} not supported; known: {POOLING_MODES}")
    return tuple(sorted(modes, key=POOLING_MODES.index))


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


def write_st_directory(directory: str, transformer, tokenizer, *, modes: Sequence[str], dense=(),
                       max_seq_length: int | None = None, do_lower_case: bool = False, include_prompt: bool = True,
                       prompts: dict | None = None, default_prompt_name: str | None = None) -> None:
    """A sentence-transformers directory in ``directory``: the Hugging Face model and tokenizer at its root (so it
    is a Hugging Face model too), then Pooling, each ``(torch.nn.Linear, activation name)`` of ``dense`` and
    Normalize, in the library's old config format."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    with quiet_transformers():
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
                                                            LEGACY_POOLING_KEYS.items()},
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
