"""The trained encoder directory: weights (``Encoder.save``), ``parabeam_encoder.json`` (backend and card) and a
model card ``README.md`` with data, method and before/after figures."""

from __future__ import annotations

import json
import os

import numpy as np


def save_model(student, directory: str, card: dict) -> None:
    from parabeam.encoders.registry import MODEL_CARD_CONFIG, saved_entries

    entries = saved_entries(student, directory)
    with open(os.path.join(directory, MODEL_CARD_CONFIG), "w", encoding="utf-8") as f:
        json.dump({**entries, **card}, f, indent=2, sort_keys=True)


def model_card(card: dict) -> str:
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
