"""Encoder evaluations on parallel data: Tatoeba accuracy (Artetxe & Schwenk 2019b, LASER), xsim error rate
(LASER/NLLB) and BUCC 2018 F1 (Zweigenbaum et al. 2018) with margin mining.

The math takes embeddings; the ``*_files`` helpers read the standard file layouts and call an encoder.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parabeam.encoders.base import Encoder
from parabeam.mining.mine import MiningConfig, score_candidates


def nearest_neighbour_accuracy(src: np.ndarray, tgt: np.ndarray) -> float:
    """% of rows i whose nearest target (by cosine) is row i: LASER's Tatoeba similarity search, one direction."""
    if src.shape != tgt.shape:
        raise ValueError(f"parallel sets must have the same shape, got {src.shape} and {tgt.shape}")
    best = np.empty(len(src), dtype=np.int64)
    for start in range(0, len(src), 4096):
        best[start:start + 4096] = (src[start:start + 4096] @ tgt.T).argmax(axis=1)
    return float((best == np.arange(len(src))).mean() * 100)


def tatoeba_accuracy(src: np.ndarray, tgt: np.ndarray) -> dict[str, float]:
    """Mean of both search directions (the figure LaBSE and LASER report), plus each direction."""
    fwd, bwd = nearest_neighbour_accuracy(src, tgt), nearest_neighbour_accuracy(tgt, src)
    return {"accuracy": (fwd + bwd) / 2, "accuracy_src2tgt": fwd, "accuracy_tgt2src": bwd}


def xsim_error(src: np.ndarray, tgt: np.ndarray, margin: str = "ratio", k: int = 4) -> float:
    """xsim (LASER tasks/xsim): % of source sentences whose best target under the margin is not their translation."""
    from parabeam.mining.knn import knn_sharded
    from parabeam.mining.margin import knn_means, margin_scores

    D_fwd, I_fwd = knn_sharded(src, [tgt], k)
    D_bwd, _ = knn_sharded(tgt, [src], k)
    sim = src @ tgt.T  # (n, n)
    scores = margin_scores(sim, knn_means(D_fwd)[:, None], knn_means(D_bwd)[None, :], margin)  # (n, n)
    return float((scores.argmax(axis=1) != np.arange(len(src))).mean() * 100)


@dataclasses.dataclass
class BuccResult:
    f1: float
    precision: float
    recall: float
    threshold: float
    n_gold: int
    n_candidates: int


def best_threshold_f1(
    candidates: list[tuple[str, str, float]], gold: set[tuple[str, str]]
) -> BuccResult:
    """The threshold maximising F1 over scored candidates (the BUCC practice of LASER and LaBSE).

    Candidates are sorted by decreasing score; keeping the top j gives precision tp_j / j and recall
    tp_j / |gold|. The threshold reported is the score of the last candidate kept.
    """
    if not gold:
        raise ValueError("the gold file has no pairs")
    from parabeam.mining.calibrate import best_cut

    ordered = sorted(candidates, key=lambda c: -c[2])
    if not ordered:
        return BuccResult(0.0, 0.0, 0.0, float("inf"), len(gold), 0)
    cut = best_cut(np.array([(s, t) in gold for s, t, _ in ordered], dtype=bool), len(gold))
    j, precision, recall, f1 = cut if cut is not None else (0, 0.0, 0.0, 0.0)
    return BuccResult(
        f1=f1 * 100, precision=precision * 100, recall=recall * 100,
        threshold=float(ordered[j][2]), n_gold=len(gold), n_candidates=len(ordered),
    )


def bucc_candidates(
    src_ids: list[str], src_emb: np.ndarray, tgt_ids: list[str], tgt_emb: np.ndarray, config: MiningConfig
) -> list[tuple[str, str, float]]:
    pairs = score_candidates(src_emb, tgt_emb, config)
    return [(src_ids[s], tgt_ids[t], float(sc)) for s, t, sc in zip(pairs.src, pairs.tgt, pairs.score)]


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [line.rstrip("\r\n") for line in f]


def check_inputs(*paths: str | None) -> None:
    """Each given path is a readable file with at least one non-empty line (a clear error otherwise: an empty
    evaluation set has no accuracy to report)."""
    import os

    for path in paths:
        if path is None:
            continue
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"{path} is a folder; give a file")
        with open(path, encoding="utf-8", errors="replace") as f:
            if not any(line.strip() for line in f):
                raise ValueError(f"{path} is empty: nothing to evaluate")


def read_parallel_lines(src_path: str, tgt_path: str) -> tuple[list[str], list[str]]:
    """Line-aligned files (line i of one translates line i of the other), as lists of equal length."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}")
    if not src:
        raise ValueError(f"{src_path} is empty: nothing to evaluate")
    return src, tgt


def read_bucc_sentences(path: str) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for n, line in enumerate(read_lines(path), start=1):
        if not line:
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{n}: expected 'ID<TAB>sentence'")
        ident, text = line.split("\t", 1)
        ids.append(ident)
        texts.append(text)
    return ids, texts


def read_bucc_gold(path: str) -> set[tuple[str, str]]:
    gold = set()
    for n, line in enumerate(read_lines(path), start=1):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected 'src_id<TAB>tgt_id'")
        gold.add((parts[0], parts[1]))
    return gold


def tatoeba_files(encoder: Encoder, src_path: str, tgt_path: str) -> dict[str, float]:
    src, tgt = read_parallel_lines(src_path, tgt_path)
    result = tatoeba_accuracy(encoder.encode(src), encoder.encode(tgt))
    return {**result, "n": len(src)}


def bucc_files(
    encoder: Encoder, src_path: str, tgt_path: str, gold_path: str, config: MiningConfig = MiningConfig()
) -> BuccResult:
    src_ids, src_texts = read_bucc_sentences(src_path)
    tgt_ids, tgt_texts = read_bucc_sentences(tgt_path)
    gold = read_bucc_gold(gold_path)
    for path, ids in ((src_path, src_ids), (tgt_path, tgt_ids), (gold_path, gold)):
        if not ids:
            raise ValueError(f"{path} holds no line in the BUCC format: nothing to evaluate")
    candidates = bucc_candidates(src_ids, encoder.encode(src_texts), tgt_ids, encoder.encode(tgt_texts), config)
    return best_threshold_f1(candidates, gold)
