"""Checkpoints of ``parabeam train`` (model, optimiser, step, RNG state; a rerun with the same output resumes),
the optimiser they hold, and weight-space merging with the initial weights (WiSE-FT)."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

CHECKPOINT_DIR = "checkpoint"
INITIAL_WEIGHTS = "initial.pt"  # in CHECKPOINT_DIR: the trainable weights before training, for merge_alpha
STATE = "state.pt"


def rows_used(encoder, texts: Sequence[str], n_rows: int):
    """Bool mask over an embedding table's ``n_rows`` rows: True where a piece occurs in ``texts``."""
    import torch

    mask = torch.zeros(n_rows, dtype=torch.bool)
    for ids in encoder.token_ids(texts):
        mask[ids] = True
    return mask


def merge_weights(model, initial: dict, alpha: float, rows: dict | None = None) -> int:
    """Weight-space ensembling (WiSE-FT: Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", sec. 3):
    each parameter named in ``initial`` (name -> its value before training) becomes
    ``theta0 + alpha * (theta - theta0)``. ``rows`` (name -> bool mask over the parameter's first dimension) limits
    a parameter to the masked rows; its other rows keep their trained values. Returns how many values moved."""
    import torch

    params = dict(model.named_parameters())
    moved = 0
    with torch.no_grad():
        for name, start in initial.items():
            param = params[name]
            merged = start.to(param.device) + alpha * (param - start.to(param.device))
            mask = (rows or {}).get(name)
            if mask is None:
                param.copy_(merged)
                moved += param.numel()
            else:
                mask = mask.to(param.device)
                param[mask] = merged[mask]
                moved += int(mask.sum()) * (param.numel() // param.shape[0])
    return moved


class TrainingOptimizer:
    """AdamW on dense parameters (gradient norm clipped at 1) and SparseAdam with sparse gradients on the token
    embedding table ``table`` (``Encoder.token_embedding``: muse-v3's 128k x 512 rows, e5-small's 250k x 384): a
    batch touches a few thousand rows, and a dense Adam step over all 65M embedding weights of muse-v3 cost 2-3 s
    per step on 2 cores."""

    def __init__(self, model, lr: float, table=None):
        import torch

        self.sparse = None
        if isinstance(table, torch.nn.Embedding) and table.weight.requires_grad:
            table.sparse = True
            self.sparse = torch.optim.SparseAdam([table.weight], lr=lr)
        self.dense_params = [p for p in model.parameters()
                             if p.requires_grad and (self.sparse is None or p is not table.weight)]
        self.dense = torch.optim.AdamW(self.dense_params, lr=lr, weight_decay=0.0) if self.dense_params else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in (self.dense, self.sparse):
            if opt is not None:
                opt.zero_grad(set_to_none=set_to_none)

    def step(self, lr: float) -> None:
        import torch

        if self.dense_params:
            torch.nn.utils.clip_grad_norm_(self.dense_params, 1.0)
        for opt in (self.dense, self.sparse):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr
                opt.step()

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict() if self.dense else None,
                "sparse": self.sparse.state_dict() if self.sparse else None}

    def load_state_dict(self, state: dict) -> None:
        if self.dense is not None and state.get("dense"):
            self.dense.load_state_dict(state["dense"])
        if self.sparse is not None and state.get("sparse"):
            self.sparse.load_state_dict(state["sparse"])


class TrainState:
    """Where training stands: optimiser steps, epoch, batch within it, seconds trained, and what the run
    recorded before training (new vocabulary pieces, the "before" evaluation)."""

    def __init__(self, new_pieces: int = 0, eval_before: dict | None = None):
        self.step = 0
        self.epoch = 0
        self.batch_pos = 0
        self.trained_s = 0.0
        self.new_pieces = new_pieces
        self.eval_before = eval_before or {}


class Checkpoint:
    """The checkpoint folder ``OUTPUT/checkpoint/``: the student (as an encoder directory), the optimiser, the
    training state and RNG states, written every ``checkpoint_every`` steps and on stop; with ``merge_alpha``
    also the initial weights. It only serves resuming: the model is the rest of ``OUTPUT``."""

    def __init__(self, output: str):
        self.dir = os.path.join(output, CHECKPOINT_DIR)
        self.state_path = os.path.join(self.dir, STATE)

    def exists(self) -> bool:
        return os.path.exists(self.state_path)

    def save(self, student, optimizer: TrainingOptimizer, state: TrainState, method: str) -> None:
        import torch

        from parabeam.encoders.model_card import save_model

        os.makedirs(self.dir, exist_ok=True)
        save_model(student, self.dir, {"method": method, "checkpoint": True})
        torch.save({"optimizer": optimizer.state_dict(), "step": state.step, "epoch": state.epoch,
                    "batch_pos": state.batch_pos, "trained_s": state.trained_s, "new_pieces": state.new_pieces,
                    "eval_before": state.eval_before, "py_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state()}, self.state_path + ".tmp")
        os.replace(self.state_path + ".tmp", self.state_path)

    def restore(self, optimizer: TrainingOptimizer) -> TrainState:
        """The saved state, with the optimiser and the RNGs put back as they were."""
        import torch

        saved = torch.load(self.state_path, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState(saved["new_pieces"], saved["eval_before"])
        state.step, state.epoch, state.batch_pos, state.trained_s = (saved["step"], saved["epoch"],
                                                                     saved["batch_pos"], saved["trained_s"])
        random.setstate(saved["py_rng"])
        torch.set_rng_state(saved["torch_rng"])
        return state

    def initial_weights(self, model, resuming: bool) -> dict:
        """The trainable weights before training (saved on a fresh start, read back on a resumed one)."""
        import torch

        path = os.path.join(self.dir, INITIAL_WEIGHTS)
        if resuming:
            if not os.path.exists(path):
                raise ValueError(f"{self.dir} has no {INITIAL_WEIGHTS}: the run was started without merge_alpha, so "
                                 "its initial weights are gone; start over with --no-resume")
            return torch.load(path, map_location="cpu")
        initial = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
        os.makedirs(self.dir, exist_ok=True)
        torch.save(initial, path)
        return initial
