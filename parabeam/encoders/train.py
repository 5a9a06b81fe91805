"""Encoder training on parallel sentences: translation ranking and multilingual knowledge distillation.

Methods
- ``translation-ranking``: a dual encoder with shared weights, in-batch negatives, bidirectional softmax with
  additive margin (Yang et al. 2019, "Improving Multilingual Sentence Embedding using Bi-directional Dual Encoder
  with Additive Margin Softmax", sec. 3; LaBSE, Feng et al. 2020, sec. 3.1):
  loss = CE(s * (U V^T - m I), diag) over both directions, U/V unit vectors of the two sides.
- ``distill``: Reimers & Gurevych 2020, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
  Distillation", sec. 2: a frozen teacher embeds the pivot-language side s; the student learns
  MSE(student(s), teacher(s)) + MSE(student(t), teacher(s)) for its translation t.

Data: Parquet written by ``parabeam mine`` (filtered by score and language pair) and line-aligned text files.
Batches never hold the same sentence twice (a duplicate would be a false in-batch negative). Checkpoints (model,
optimiser, step, RNG state) are written every ``checkpoint_every`` steps and on stop, and a rerun with the same
output resumes from the last one. Progress is logged with loss and pairs/s. The output directory is an encoder
spec every ``--encoder`` flag accepts, with a model card (data, method, before/after figures).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("parabeam")
# training progress (step, loss, pairs/s): the CLI shows this logger at INFO even without --verbose
progress = logging.getLogger("parabeam.progress")

METHODS = ("translation-ranking", "distill")
CHECKPOINT_DIR = "checkpoint"
INITIAL_WEIGHTS = "initial.pt"  # in CHECKPOINT_DIR: the trainable weights before training, for merge_alpha


@dataclasses.dataclass(frozen=True)
class ParallelSource:
    """Line-aligned files (``src`` line i translates ``tgt`` line i), optionally a line range [start, stop)."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    start: int = 0
    stop: int | None = None


@dataclasses.dataclass(frozen=True)
class BitextSource:
    """Parquet from ``parabeam mine`` (a directory or glob), pairs scoring at least ``min_score``."""

    path: str
    min_score: float = 1.2
    pairs: tuple[str, ...] = ()  # e.g. ("de-en",); empty: all


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    method: str = "distill"
    student: str = "default"
    teacher: str = "default"  # distill only
    pivot: str = "en"  # distill: the language the teacher embeds
    train: tuple[ParallelSource | BitextSource, ...] = ()
    eval: tuple[ParallelSource, ...] = ()  # Tatoeba-style accuracy before and after
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 5e-4
    warmup_steps: int = 100
    epochs: int = 1
    max_minutes: float | None = None  # stop (and save) after this much training time
    scale: float = 20.0  # translation ranking: logit scale
    margin: float = 0.3  # translation ranking: additive margin (LaBSE's 0.3)
    extend_vocab: int = 0  # default encoder: train this many new SentencePiece pieces (0: keep the vocabulary)
    # all: every weight trains; embeddings: only the token embedding table (the network that reads it stays the
    # teacher's, which limits drift on the languages the model already covers)
    train_parts: str = "all"
    # distill: add up to this many word pairs per language, induced from that language's training pairs
    # (encoders/lexicon.py), for every language with at least lexicon_min_pairs pairs; 0: none
    lexicon: int = 0
    lexicon_min_pairs: int = 1000
    # after training, move the trained weights back toward the initial student's: theta0 + merge_alpha * (theta -
    # theta0) (weight-space ensembling, WiSE-FT: Wortsman et al. 2022, "Robust fine-tuning of zero-shot models",
    # sec. 3); None: keep the trained weights. With merge_langs, only the embedding rows of pieces that these
    # languages' training text uses are moved; rows that only the other languages use keep their trained values
    merge_alpha: float | None = None
    merge_langs: tuple[str, ...] = ()
    # distill: only pairs of these languages also train the student's pivot side onto the teacher's vector (the
    # term that holds the pivot language in place); the other pairs train their translation side only (1.3x the
    # steps per minute on conf/distill.yaml, benchmarks/RESULTS.md run H). Empty: every pair trains both sides
    anchor_langs: tuple[str, ...] = ()
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (in-batch negatives)")
        if self.grad_accum < 1 or self.epochs < 1:
            raise ValueError("grad_accum and epochs must be >= 1")
        if not self.train:
            raise ValueError("no training data: give at least one parallel or bitext source")
        if self.lexicon < 0 or self.lexicon_min_pairs < 0:
            raise ValueError("lexicon and lexicon_min_pairs must be >= 0")
        if self.train_parts not in ("all", "embeddings"):
            raise ValueError(f"train_parts must be all or embeddings; got {self.train_parts!r}")
        if self.merge_alpha is not None and not 0.0 < self.merge_alpha <= 1.0:
            raise ValueError(f"merge_alpha must be in (0, 1]; got {self.merge_alpha}")
        if self.merge_langs and self.merge_alpha is None:
            raise ValueError("merge_langs needs merge_alpha")


def _resolve(path: str, root: str | None) -> str:
    return path if os.path.isabs(path) or root is None else os.path.join(root, path)


def config_from_dict(data: dict[str, Any], data_root: str | None = None) -> TrainConfig:
    """A TrainConfig from YAML/JSON data; relative data paths are taken from ``data_root`` when given."""
    data = dict(data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - known - {"data_root"}
    if unknown:
        raise ValueError(f"unknown training config key(s) {sorted(unknown)}; known: {sorted(known)}")
    root = data_root or data.pop("data_root", None)
    data.pop("data_root", None)

    def source(item: dict):
        item = dict(item)
        if "bitext" in item:
            return BitextSource(path=_resolve(item.pop("bitext"), root), min_score=float(item.pop("min_score", 1.2)),
                                pairs=tuple(item.pop("pairs", ())))
        lines = item.pop("lines", None) or [0, None]
        return ParallelSource(src=_resolve(item.pop("src"), root), tgt=_resolve(item.pop("tgt"), root),
                              src_lang=item.pop("src_lang"), tgt_lang=item.pop("tgt_lang"), start=int(lines[0]),
                              stop=None if lines[1] is None else int(lines[1]))

    data["train"] = tuple(source(x) for x in data.get("train", ()))
    data["eval"] = tuple(source(x) for x in data.get("eval", ()))
    for key in ("merge_langs", "anchor_langs"):
        if isinstance(data.get(key), str):
            data[key] = data[key].split(",")
        data[key] = tuple(str(x).strip() for x in data.get(key) or ())
    return TrainConfig(**data)


@dataclasses.dataclass(frozen=True)
class Pair:
    src: str
    tgt: str
    src_lang: str
    tgt_lang: str


def _read_lines(path: str) -> list[str]:
    import gzip

    if not os.path.exists(path):
        raise FileNotFoundError(f"training data file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def read_parallel(source: ParallelSource) -> list[Pair]:
    src, tgt = _read_lines(source.src), _read_lines(source.tgt)
    if len(src) != len(tgt):
        raise ValueError(f"{source.src} has {len(src)} lines but {source.tgt} has {len(tgt)}")
    rows = range(source.start, len(src) if source.stop is None else min(source.stop, len(src)))
    return [Pair(src[i].strip(), tgt[i].strip(), source.src_lang, source.tgt_lang)
            for i in rows if src[i].strip() and tgt[i].strip()]


def read_bitext(source: BitextSource) -> list[Pair]:
    import pyarrow.dataset as ds

    path = source.path
    files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)) if os.path.isdir(path) \
        else sorted(glob.glob(path))
    if not files:
        raise FileNotFoundError(f"no Parquet bitext under {path}")
    table = ds.dataset(files, format="parquet").to_table(
        columns=["src_lang", "tgt_lang", "src_text", "tgt_text", "score"])
    pairs = []
    for row in table.to_pylist():
        name = f"{row['src_lang']}-{row['tgt_lang']}"
        if row["score"] >= source.min_score and (not source.pairs or name in source.pairs):
            pairs.append(Pair(row["src_text"], row["tgt_text"], row["src_lang"], row["tgt_lang"]))
    return pairs


def load_pairs(sources: Sequence[ParallelSource | BitextSource]) -> list[Pair]:
    pairs: list[Pair] = []
    for source in sources:
        got = read_bitext(source) if isinstance(source, BitextSource) else read_parallel(source)
        log.info("training data: %d pairs from %s", len(got), getattr(source, "path", None) or source.src)
        pairs.extend(got)
    return list(dict.fromkeys(pairs))  # exact duplicate pairs once


def lexicon_pairs(pairs: Sequence[Pair], pivot: str, max_entries: int, min_pairs: int) -> list[Pair]:
    """Word pairs (``encoders.lexicon.induce_lexicon``) for each language paired with ``pivot`` in at least
    ``min_pairs`` of ``pairs``, as extra training pairs pivot word -> word."""
    from parabeam.encoders.lexicon import induce_lexicon

    by_lang: dict[str, tuple[list[str], list[str]]] = {}
    for p in pairs:
        if p.src_lang == pivot and p.tgt_lang != pivot:
            lang, piv, other = p.tgt_lang, p.src, p.tgt
        elif p.tgt_lang == pivot and p.src_lang != pivot:
            lang, piv, other = p.src_lang, p.tgt, p.src
        else:
            continue
        texts = by_lang.setdefault(lang, ([], []))
        texts[0].append(piv)
        texts[1].append(other)
    extra = []
    for lang, (piv, other) in sorted(by_lang.items()):
        if len(piv) < min_pairs:
            continue
        found = induce_lexicon(piv, other, max_entries=max_entries)
        log.info("lexicon %s-%s: %d word pairs from %d sentence pairs", pivot, lang, len(found), len(piv))
        extra.extend(Pair(a, b, pivot, lang) for a, b in found)
    return extra


def batches_without_duplicates(pairs: Sequence[Pair], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches in which no sentence appears twice (on either side): a pair whose sentence is already in
    an open batch goes to another one. A pair that ends up alone (no other pair left to rank against) is left
    out of the epoch, with a warning."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    # length bucketing: within windows of 16 batches, similar lengths go together (less padding per batch);
    # the batch order is shuffled again below
    window = 16 * batch_size
    order = [i for start in range(0, len(order), window)
             for i in sorted(order[start:start + window], key=lambda j: len(pairs[j].src) + len(pairs[j].tgt))]
    # first fit: a pair joins the oldest open batch that holds neither of its sentences, else opens one
    open_batches: list[tuple[list[int], set[str]]] = []
    out: list[list[int]] = []
    for i in order:
        p = pairs[i]
        for k, (batch, seen) in enumerate(open_batches):
            if p.src not in seen and p.tgt not in seen:
                batch.append(i)
                seen.update((p.src, p.tgt))
                if len(batch) == batch_size:
                    out.append(batch)
                    del open_batches[k]
                break
        else:
            open_batches.append(([i], {p.src, p.tgt}))
    out.extend(batch for batch, _ in open_batches)
    # a pair left alone has nothing to rank against: it joins a batch without its sentences, one over the size
    lone = [b[0] for b in out if len(b) == 1]
    out = [b for b in out if len(b) >= 2]
    dropped = 0
    for i in lone:
        p = pairs[i]
        home = next((b for b in out if len(b) <= batch_size
                     and all(p.src not in (pairs[j].src, pairs[j].tgt) and p.tgt not in (pairs[j].src, pairs[j].tgt)
                             for j in b)), None)
        if home is None:
            dropped += 1
        else:
            home.append(i)
    if dropped:  # only when one sentence has more translations than there are batches to spread them over
        log.warning("%d pair(s) left out of this epoch: every batch already holds their sentence", dropped)
    rng.shuffle(out)
    return out


def ranking_loss(u, v, scale: float, margin: float):
    """Bidirectional in-batch softmax with additive margin on the true pairs' cosine (Yang et al. 2019)."""
    import torch
    from torch.nn import functional as F

    sim = u @ v.T  # (B, B) cosines of unit vectors
    logits = scale * (sim - margin * torch.eye(len(u), device=u.device, dtype=sim.dtype))
    target = torch.arange(len(u), device=u.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def distill_loss(embed, items: Sequence[Pair], target, anchor: set[str] | None):
    """Multilingual distillation (Reimers & Gurevych 2020, sec. 2): ||M(s) - T(s)||^2 + ||M(t) - T(s)||^2 with
    ``target`` = T(s), the teacher's vectors of the pivot sides. The first term only for pairs whose language is
    in ``anchor`` (every pair when None). Squares summed and divided by the batch's pairs x dimensions: with every
    pair anchored that is the sum of the two mean squared errors, and a pair weighs the same whatever the mix."""
    anchored = [i for i, p in enumerate(items) if anchor is None or p.tgt_lang in anchor]
    loss = ((embed([p.tgt for p in items]) - target) ** 2).sum()
    if anchored:
        loss = loss + ((embed([items[i].src for i in anchored]) - target[anchored]) ** 2).sum()
    return loss / target.numel()


def evaluate_sets(encoder, sets: Sequence[ParallelSource]) -> dict[str, float]:
    """Tatoeba-style accuracy (%, mean of both directions) per eval set, keyed ``src_lang-tgt_lang``."""
    from parabeam.encoders.evaluate import tatoeba_accuracy

    out = {}
    for source in sets:
        pairs = read_parallel(source)
        acc = tatoeba_accuracy(encoder.encode([p.src for p in pairs]), encoder.encode([p.tgt for p in pairs]))
        out[f"{source.src_lang}-{source.tgt_lang}"] = round(acc["accuracy"], 2)
    return out


def _save_model(student, directory: str, card: dict) -> None:
    from parabeam.encoders.registry import MODEL_CARD_CONFIG

    entries = student.save(directory)
    with open(os.path.join(directory, MODEL_CARD_CONFIG), "w", encoding="utf-8") as f:
        json.dump({**entries, **card}, f, indent=2, sort_keys=True)


def _model_card(card: dict) -> str:
    lines = [f"# parabeam encoder: {card['method']} from {card['student']}", "",
             f"Written by `parabeam train` on {card['finished']}.", "", "## Method", "",
             {"distill": "Multilingual knowledge distillation (Reimers & Gurevych 2020, sec. 2): the student maps a "
                         f"sentence and its translation onto the teacher's ({card['teacher']}) vector of the "
                         f"{card['pivot']} side (MSE).",
              "translation-ranking": "Translation ranking with in-batch negatives and additive margin softmax in "
                                     "both directions (Yang et al. 2019; Feng et al. 2020), shared weights."}[
                 card["method"]], "",
             "## Data", ""]
    for lang_pair, n in sorted(card["pairs_by_language"].items()):
        lines.append(f"- {lang_pair}: {n} pairs")
    lines += ["", f"Sources: {', '.join(card['sources'])}", "", "## Training", "",
              f"{card['steps']} optimiser steps, batch {card['batch_size']} x {card['grad_accum']}, lr {card['lr']}, "
              f"{card['train_minutes']:.1f} min on {card['device']}; trained: {card['train_parts']}; "
              f"vocabulary: +{card['new_pieces']} pieces; word pairs from the lexicon: "
              f"{card.get('lexicon_pairs', 0)} (counted in the pairs above).", ""]
    if card.get("merge_alpha") is not None:
        where = (f"the {card['merged_rows']} embedding rows of pieces that {', '.join(card['merge_langs'])} use; "
                 "the other rows keep their trained values" if card.get("merge_langs") else "every trained weight")
        lines += [f"Merged with the initial weights (WiSE-FT, Wortsman et al. 2022): theta0 + {card['merge_alpha']} "
                  f"* (theta - theta0) on {where}.", ""]
    unmerged = card.get("eval_unmerged") or {}
    columns = [("before", card["eval_before"])] + ([("trained, unmerged", unmerged)] if unmerged else []) + [
        ("after", card["eval_after"])]
    lines += ["## Evaluation (Tatoeba-style accuracy %, mean of both directions, held-out sets)", "",
              "| set | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in sorted(card["eval_after"]):
        lines.append(f"| {name} | " + " | ".join(f"{d.get(name, float('nan')):.2f}" for _, d in columns) + " |")
    if card["eval_after"]:
        lines.append("| mean | " + " | ".join(f"{np.mean(list(d.values())):.2f}" for _, d in columns) + " |")
    return "\n".join(lines) + "\n"


def _embedding_table(model):
    if hasattr(model, "embedding"):
        return model.embedding
    return model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None


def rows_used(encoder, texts: Sequence[str], n_rows: int):
    """Bool mask over an embedding table's ``n_rows`` rows: True where a piece occurs in ``texts``."""
    import torch

    mask = torch.zeros(n_rows, dtype=torch.bool)
    for ids in encoder._tokenize(list(texts)):
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


class _Optimizer:
    """AdamW on dense parameters (gradient norm clipped at 1) and, for a model with an ``embedding`` table (the
    default encoder's 128k x 512 rows), SparseAdam on that table with sparse gradients: a batch touches a few
    thousand rows, and a dense Adam step over all 65M embedding weights cost 2-3 s per step on 2 cores."""

    def __init__(self, model, lr: float):
        import torch

        table = getattr(model, "embedding", None)
        self.sparse = None
        if isinstance(table, torch.nn.Embedding):
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


def train(config: TrainConfig, output: str, resume: bool = True) -> dict:
    """Train per ``config``; writes the encoder directory ``output`` and returns its card (dict)."""
    import torch

    from parabeam.encoders.registry import load_encoder

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    ckpt_dir = os.path.join(output, CHECKPOINT_DIR)
    state_path = os.path.join(ckpt_dir, "state.pt")
    resuming = resume and os.path.exists(state_path)
    pairs = load_pairs(config.train)
    n_lexicon = 0
    if config.lexicon and config.method == "distill":
        lexicon = lexicon_pairs(pairs, config.pivot, config.lexicon, config.lexicon_min_pairs)
        n_lexicon = len(lexicon)
        pairs = list(dict.fromkeys(pairs + lexicon))
    if len(pairs) < 2:
        raise ValueError(f"only {len(pairs)} training pair(s) after filtering")
    languages = {p.src_lang for p in pairs} | {p.tgt_lang for p in pairs}
    for key in ("merge_langs", "anchor_langs"):
        named = getattr(config, key)
        if named and not languages & set(named):
            raise ValueError(f"{key} {list(named)}: no training text in these languages")
    kwargs = {"device": config.device} if config.device else {}
    student = load_encoder(ckpt_dir if resuming else config.student, **kwargs)
    new_pieces = 0
    if not resuming and config.extend_vocab:
        if not hasattr(student, "extend_vocabulary"):
            raise ValueError("extend_vocab works with the default encoder's SentencePiece model only")
        new_pieces = student.extend_vocabulary([p.src for p in pairs] + [p.tgt for p in pairs], config.extend_vocab,
                                               config.seed)
    # the untouched student: the "before" figures (a resumed run has them in its state) and, when the teacher is
    # the same spec, the teacher too, so the model is loaded once for both
    baseline = None
    eval_before: dict[str, float] = {}
    if config.eval and not resuming:
        baseline = load_encoder(config.student, **kwargs)
        eval_before = evaluate_sets(baseline, config.eval)
    teacher_vecs = None
    if config.method == "distill":
        pairs = [p if p.src_lang == config.pivot else Pair(p.tgt, p.src, p.tgt_lang, p.src_lang) for p in pairs]
        off_pivot = {f"{p.src_lang}-{p.tgt_lang}" for p in pairs if p.src_lang != config.pivot}
        if off_pivot:
            raise ValueError(f"distill needs every pair to include the pivot {config.pivot!r}; got {sorted(off_pivot)}")
        same = baseline is not None and config.teacher == config.student
        teacher = baseline if same else load_encoder(config.teacher, **kwargs)
        pivots = sorted({p.src for p in pairs})
        log.info("teacher %s embeds %d %s sentences", config.teacher, len(pivots), config.pivot)
        vecs = teacher.encode(pivots)  # frozen teacher: its vectors once, not per step
        teacher_vecs = {s: i for i, s in enumerate(pivots)}, torch.from_numpy(vecs).to(student.device)
        del teacher
    del baseline
    model = student.model
    model.train()
    table = _embedding_table(model)
    if config.merge_langs and table is None:
        raise ValueError("merge_langs needs a model with a token embedding table")
    if config.train_parts == "embeddings":
        if table is None:
            raise ValueError("train_parts: embeddings needs a model with a token embedding table")
        for param in model.parameters():
            param.requires_grad_(False)
        table.weight.requires_grad_(True)
    optimizer = _Optimizer(model, config.lr)
    step, epoch, batch_pos, trained_s = 0, 0, 0, 0.0
    if resuming:
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, batch_pos, trained_s = state["step"], state["epoch"], state["batch_pos"], state["trained_s"]
        new_pieces = state["new_pieces"]
        eval_before = state["eval_before"]
        random.setstate(state["py_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming at step %d (epoch %d, batch %d)", step, epoch, batch_pos)
    initial = None  # the trainable weights before training, for merge_alpha
    if config.merge_alpha is not None:
        initial_path = os.path.join(ckpt_dir, INITIAL_WEIGHTS)
        if resuming:
            if not os.path.exists(initial_path):
                raise ValueError(f"{ckpt_dir} has no {INITIAL_WEIGHTS}: the run was started without merge_alpha, so "
                                 "its initial weights are gone; start over with --no-resume")
            initial = torch.load(initial_path, map_location="cpu")
        else:
            initial = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
            os.makedirs(ckpt_dir, exist_ok=True)
            torch.save(initial, initial_path)

    def lr_at(s: int) -> float:
        return config.lr * min(1.0, (s + 1) / max(1, config.warmup_steps))

    def save_checkpoint() -> None:
        os.makedirs(ckpt_dir, exist_ok=True)
        _save_model(student, ckpt_dir, {"method": config.method, "checkpoint": True})
        torch.save({"optimizer": optimizer.state_dict(), "step": step, "epoch": epoch, "batch_pos": batch_pos,
                    "trained_s": trained_s, "new_pieces": new_pieces, "eval_before": eval_before,
                    "py_rng": random.getstate(), "torch_rng": torch.get_rng_state()}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    budget_s = None if config.max_minutes is None else 60 * config.max_minutes
    anchor = set(config.anchor_langs) if config.anchor_langs else None
    stopped_early = False
    window_loss, window_pairs, window_start = 0.0, 0, time.perf_counter()
    while epoch < config.epochs and not stopped_early:
        batches = batches_without_duplicates(pairs, config.batch_size, random.Random(config.seed + epoch))
        while batch_pos < len(batches):
            started = time.perf_counter()
            group = batches[batch_pos: batch_pos + config.grad_accum]
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for batch in group:
                items = [pairs[i] for i in batch]
                if config.method == "distill":
                    index, vecs = teacher_vecs
                    target = vecs[[index[p.src] for p in items]]
                    loss = distill_loss(student.embed_for_training, items, target, anchor)
                else:
                    u = student.embed_for_training([p.src for p in items])
                    v = student.embed_for_training([p.tgt for p in items])
                    loss = ranking_loss(u, v, config.scale, config.margin)
                (loss / len(group)).backward()
                total += float(loss.detach()) / len(group)
                window_pairs += len(items)
            optimizer.step(lr_at(step))
            step += 1
            batch_pos += len(group)
            trained_s += time.perf_counter() - started
            window_loss += total
            if step % config.log_every == 0:
                elapsed = time.perf_counter() - window_start
                progress.info("step %d epoch %d/%d: loss %.5f, %.0f pairs/s, %.1f min trained", step, epoch + 1,
                              config.epochs, window_loss / config.log_every, window_pairs / max(elapsed, 1e-9),
                              trained_s / 60)
                window_loss, window_pairs, window_start = 0.0, 0, time.perf_counter()
            if step % config.checkpoint_every == 0:
                save_checkpoint()
            if budget_s is not None and trained_s >= budget_s:
                stopped_early = True
                break
        if not stopped_early:
            epoch, batch_pos = epoch + 1, 0
    save_checkpoint()
    model.eval()
    eval_unmerged: dict[str, float] = {}
    merged_rows = None
    if initial is not None:
        rows = None
        if config.merge_langs:
            keep = set(config.merge_langs)
            texts = sorted({t for p in pairs for t, lang in ((p.src, p.src_lang), (p.tgt, p.tgt_lang)) if lang in keep})
            name = next(n for n, p in model.named_parameters() if p is table.weight)
            rows = {name: rows_used(student, texts, table.weight.shape[0])}
            merged_rows = int(rows[name].sum())
        if config.eval:
            eval_unmerged = evaluate_sets(student, config.eval)
        merge_weights(model, initial, config.merge_alpha, rows)
        log.info("merged the trained weights with the initial ones at alpha %.2f%s", config.merge_alpha,
                 f" on {merged_rows} embedding rows" if merged_rows is not None else "")
    eval_after = evaluate_sets(student, config.eval) if config.eval else {}
    by_lang: dict[str, int] = {}
    for p in pairs:
        by_lang[f"{p.src_lang}-{p.tgt_lang}"] = by_lang.get(f"{p.src_lang}-{p.tgt_lang}", 0) + 1
    card = {
        "method": config.method, "student": config.student, "teacher": config.teacher, "pivot": config.pivot,
        "pairs_by_language": by_lang, "n_pairs": len(pairs), "lexicon_pairs": n_lexicon,
        "sources": [getattr(s, "path", None) or f"{s.src} | {s.tgt} [{s.start}:{s.stop}]" for s in config.train],
        "steps": step, "epochs_done": epoch, "stopped_by_time_budget": stopped_early, "batch_size": config.batch_size,
        "grad_accum": config.grad_accum, "lr": config.lr, "train_minutes": trained_s / 60,
        "train_parts": config.train_parts,
        "device": str(student.device),
        "new_pieces": new_pieces, "eval_before": eval_before, "eval_after": eval_after, "seed": config.seed,
        "merge_alpha": config.merge_alpha, "merge_langs": list(config.merge_langs), "merged_rows": merged_rows,
        "eval_unmerged": eval_unmerged,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    _save_model(student, output, card)
    with open(os.path.join(output, "README.md"), "w", encoding="utf-8") as f:
        f.write(_model_card(card))
    return card
