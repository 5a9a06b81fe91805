"""Encoder training on parallel sentences: translation ranking and multilingual knowledge distillation.

Methods
- ``translation-ranking``: a dual encoder with shared weights, in-batch negatives, bidirectional softmax with
  additive margin (Yang et al. 2019, "Improving Multilingual Sentence Embedding using Bi-directional Dual Encoder
  with Additive Margin Softmax", sec. 3; LaBSE, Feng et al. 2020, sec. 3.1):
  loss = CE(s * (U V^T - m I), diag) over both directions, U/V unit vectors of the two sides.
- ``distill``: Reimers & Gurevych 2020, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
  Distillation", sec. 2: a frozen teacher embeds the pivot-language side s; the student learns
  MSE(student(s), teacher(s)) + MSE(student(t), teacher(s)) for its translation t.

``train`` composes four parts, each in its module: the data (``train_data``: Parquet written by ``parabeam mine``
and line-aligned files, batches without duplicates), the loop (here: losses, progress with loss and pairs/s),
checkpointing (``checkpoint``: resume from the last checkpoint, merge with the initial weights) and the model
card (``model_card``). The output directory is an encoder spec every ``--encoder`` flag accepts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

import numpy as np

from parabeam.encoders.checkpoint import (
    Checkpoint,
    TrainingOptimizer,
    TrainState,
    merge_weights,
    rows_used,
)
from parabeam.encoders.model_card import model_card, save_model
from parabeam.encoders.train_config import METHODS, BitextSource, ParallelSource, TrainConfig, config_from_dict
from parabeam.encoders.train_data import Pair, batches_without_duplicates, lexicon_pairs, load_pairs, read_parallel

__all__ = ["METHODS", "BitextSource", "Pair", "ParallelSource", "TrainConfig", "batches_without_duplicates",
           "config_from_dict", "distill_loss", "lexicon_pairs", "merge_weights", "ranking_loss", "train"]

log = logging.getLogger("parabeam")
# training progress (step, loss, pairs/s): the CLI shows this logger at INFO even without --verbose
progress = logging.getLogger("parabeam.progress")


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


def _training_pairs(config: TrainConfig) -> tuple[list[Pair], int]:
    """The pairs to train on (and how many of them are lexicon word pairs), checked against the config."""
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
    return pairs, n_lexicon


def _pivot_first(config: TrainConfig, pairs: Sequence[Pair]) -> list[Pair]:
    """Distill: every pair turned to have the pivot language as its source (the side the teacher embeds)."""
    pairs = [p if p.src_lang == config.pivot else Pair(p.tgt, p.src, p.tgt_lang, p.src_lang) for p in pairs]
    off_pivot = {f"{p.src_lang}-{p.tgt_lang}" for p in pairs if p.src_lang != config.pivot}
    if off_pivot:
        raise ValueError(f"distill needs every pair to include the pivot {config.pivot!r}; got {sorted(off_pivot)}")
    return pairs


def _teacher_targets(config: TrainConfig, pairs: Sequence[Pair], teacher, device):
    """Distill: the frozen teacher's vectors of every pivot sentence, once, not per step: (index, (n, d) tensor)."""
    import torch

    pivots = sorted({p.src for p in pairs})
    log.info("teacher %s embeds %d %s sentences", config.teacher, len(pivots), config.pivot)
    vecs = teacher.encode(pivots)
    return {s: i for i, s in enumerate(pivots)}, torch.from_numpy(vecs).to(device)


def resolve_encoders(config: TrainConfig, pairs: Sequence[Pair]) -> TrainConfig:
    """``student: auto`` and ``teacher: auto`` become the bundled encoder chosen for the training pairs' languages
    (``encoders.registry.choose_bundled``); a code the language table does not know counts as uncovered, which
    makes it the widest one."""
    import dataclasses

    from parabeam.encoders.registry import AUTO, choose_bundled
    from parabeam.mining.languages import parse_language

    if AUTO not in (config.student, config.teacher):
        return config
    codes = {p.src_lang for p in pairs} | {p.tgt_lang for p in pairs}
    try:
        languages = sorted({parse_language(code).lid_label for code in codes})
    except ValueError:
        languages = None
    choice = choose_bundled(languages)
    log.info("encoder auto: %s (%s)", choice.spec, choice.reason)
    return dataclasses.replace(config, student=choice.spec if config.student == AUTO else config.student,
                               teacher=choice.spec if config.teacher == AUTO else config.teacher)


def _prepare_student(config: TrainConfig, pairs: Sequence[Pair], ckpt: Checkpoint, resuming: bool, kwargs: dict):
    """The student (from the checkpoint when resuming), its vocabulary extended on a fresh start, and the
    "before" evaluation and teacher targets (the untouched student serves both when it is also the teacher).
    Returns them with the pairs (for distillation, pivot side first)."""
    from parabeam.encoders.registry import load_encoder

    student = load_encoder(ckpt.dir if resuming else config.student, **kwargs)
    new_pieces = 0
    if not resuming and config.extend_vocab:
        new_pieces = student.extend_vocabulary([p.src for p in pairs] + [p.tgt for p in pairs], config.extend_vocab,
                                               config.seed)
    baseline = load_encoder(config.student, **kwargs) if config.eval and not resuming else None
    eval_before = evaluate_sets(baseline, config.eval) if baseline is not None else {}
    targets = None
    if config.method == "distill":
        pairs = _pivot_first(config, pairs)
        same = baseline is not None and config.teacher == config.student
        teacher = baseline if same else load_encoder(config.teacher, **kwargs)
        if teacher.dim != student.dim:
            raise ValueError(f"distill: the teacher {config.teacher} gives {teacher.dim}-dimensional vectors and the "
                             f"student {config.student} {student.dim}-dimensional ones; they must match")
        targets = _teacher_targets(config, pairs, teacher, student.device)
    return student, list(pairs), TrainState(new_pieces, eval_before), targets


def _trainable(config: TrainConfig, student):
    """Freezes what ``train_parts`` leaves alone; returns the token embedding table (or None)."""
    model, table = student.model, student.token_embedding()
    if config.merge_langs and table is None:
        raise ValueError("merge_langs needs a model with a token embedding table")
    if config.train_parts == "embeddings":
        if table is None:
            raise ValueError("train_parts: embeddings needs a model with a token embedding table")
        for param in model.parameters():
            param.requires_grad_(False)
        table.weight.requires_grad_(True)
    return table


def _run_epochs(config: TrainConfig, student, pairs: Sequence[Pair], targets, optimizer: TrainingOptimizer,
                state: TrainState, ckpt: Checkpoint) -> bool:
    """The training loop from ``state`` on, checkpointing as it goes; True when stopped by ``max_minutes``."""
    def lr_at(s: int) -> float:
        return config.lr * min(1.0, (s + 1) / max(1, config.warmup_steps))

    budget_s = None if config.max_minutes is None else 60 * config.max_minutes
    anchor = set(config.anchor_langs) if config.anchor_langs else None
    window_loss, window_pairs, window_start = 0.0, 0, time.perf_counter()
    while state.epoch < config.epochs:
        batches = batches_without_duplicates(pairs, config.batch_size, random.Random(config.seed + state.epoch))
        while state.batch_pos < len(batches):
            started = time.perf_counter()
            group = batches[state.batch_pos: state.batch_pos + config.grad_accum]
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for batch in group:
                items = [pairs[i] for i in batch]
                if config.method == "distill":
                    index, vecs = targets
                    loss = distill_loss(student.embed_for_training, items, vecs[[index[p.src] for p in items]],
                                        anchor)
                else:
                    u = student.embed_for_training([p.src for p in items])
                    v = student.embed_for_training([p.tgt for p in items])
                    loss = ranking_loss(u, v, config.scale, config.margin)
                (loss / len(group)).backward()
                total += float(loss.detach()) / len(group)
                window_pairs += len(items)
            optimizer.step(lr_at(state.step))
            state.step += 1
            state.batch_pos += len(group)
            state.trained_s += time.perf_counter() - started
            window_loss += total
            if state.step % config.log_every == 0:
                elapsed = time.perf_counter() - window_start
                progress.info("step %d epoch %d/%d: loss %.5f, %.0f pairs/s, %.1f min trained", state.step,
                              state.epoch + 1, config.epochs, window_loss / config.log_every,
                              window_pairs / max(elapsed, 1e-9), state.trained_s / 60)
                window_loss, window_pairs, window_start = 0.0, 0, time.perf_counter()
            if state.step % config.checkpoint_every == 0:
                ckpt.save(student, optimizer, state, config.method)
            if budget_s is not None and state.trained_s >= budget_s:
                return True
        state.epoch, state.batch_pos = state.epoch + 1, 0
    return False


def _merge(config: TrainConfig, student, pairs: Sequence[Pair], initial: dict, table) -> tuple[int | None, dict]:
    """WiSE-FT merge after training; returns the rows merged (None: all weights) and the unmerged evaluation."""
    model = student.model
    rows = None
    merged_rows = None
    if config.merge_langs:
        keep = set(config.merge_langs)
        texts = sorted({t for p in pairs for t, lang in ((p.src, p.src_lang), (p.tgt, p.tgt_lang)) if lang in keep})
        name = next(n for n, p in model.named_parameters() if p is table.weight)
        rows = {name: rows_used(student, texts, table.weight.shape[0])}
        merged_rows = int(rows[name].sum())
    eval_unmerged = evaluate_sets(student, config.eval) if config.eval else {}
    merge_weights(model, initial, config.merge_alpha, rows)
    log.info("merged the trained weights with the initial ones at alpha %.2f%s", config.merge_alpha,
             f" on {merged_rows} embedding rows" if merged_rows is not None else "")
    return merged_rows, eval_unmerged


def train(config: TrainConfig, output: str, resume: bool = True) -> dict:
    """Train per ``config``; writes the encoder directory ``output`` and returns its card (dict)."""
    import os

    import torch

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    ckpt = Checkpoint(output)
    resuming = resume and ckpt.exists()
    pairs, n_lexicon = _training_pairs(config)
    config = resolve_encoders(config, pairs)
    kwargs = {"device": config.device} if config.device else {}
    student, pairs, state, targets = _prepare_student(config, pairs, ckpt, resuming, kwargs)
    student.prepare_for_training()
    model = student.model
    model.train()
    table = _trainable(config, student)
    optimizer = TrainingOptimizer(model, config.lr, table)
    if resuming:
        state = ckpt.restore(optimizer)
        log.info("resuming at step %d (epoch %d, batch %d)", state.step, state.epoch, state.batch_pos)
    initial = ckpt.initial_weights(model, resuming) if config.merge_alpha is not None else None
    stopped_early = _run_epochs(config, student, pairs, targets, optimizer, state, ckpt)
    ckpt.save(student, optimizer, state, config.method)
    model.eval()
    merged_rows, eval_unmerged = (None, {}) if initial is None else _merge(config, student, pairs, initial, table)
    eval_after = evaluate_sets(student, config.eval) if config.eval else {}
    by_lang: dict[str, int] = {}
    for p in pairs:
        by_lang[f"{p.src_lang}-{p.tgt_lang}"] = by_lang.get(f"{p.src_lang}-{p.tgt_lang}", 0) + 1
    card = {
        "method": config.method, "student": config.student, "teacher": config.teacher, "pivot": config.pivot,
        "pairs_by_language": by_lang, "n_pairs": len(pairs), "lexicon_pairs": n_lexicon,
        "sources": [getattr(s, "path", None) or f"{s.src} | {s.tgt} [{s.start}:{s.stop}]" for s in config.train],
        "steps": state.step, "epochs_done": state.epoch, "stopped_by_time_budget": stopped_early,
        "batch_size": config.batch_size, "grad_accum": config.grad_accum, "lr": config.lr,
        "train_minutes": state.trained_s / 60, "train_parts": config.train_parts, "device": str(student.device),
        "new_pieces": state.new_pieces, "eval_before": state.eval_before, "eval_after": eval_after,
        "seed": config.seed, "merge_alpha": config.merge_alpha, "merge_langs": list(config.merge_langs),
        "merged_rows": merged_rows, "eval_unmerged": eval_unmerged,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    save_model(student, output, card)
    with open(os.path.join(output, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(card))
    return card
