"""Settings of ``parabeam train``: the data sources and the typed ``TrainConfig``, from YAML and flags alike
(``parabeam.options``)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from parabeam.options import option

METHODS = ("translation-ranking", "distill")


def _languages(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


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
    """Parquet from ``parabeam mine`` (a directory or glob), pairs scoring at least ``min_score`` (None: every pair
    the miner kept, which already passed its threshold)."""

    path: str
    min_score: float | None = None
    pairs: tuple[str, ...] = ()  # e.g. ("de-en",); empty: all


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    method: Literal["translation-ranking", "distill"] = option(
        "distill", "translation-ranking (LaBSE-style dual encoder) or distill (Reimers & Gurevych 2020)")
    student: str = option("auto", "initial encoder spec (auto: the bundled encoder chosen for the training pairs' "
                          "languages)", metavar="SPEC")
    teacher: str = option("auto", "distill: the teacher encoder spec (auto: as for the student)", metavar="SPEC")
    pivot: str = option("en", "distill: the language the teacher embeds")
    train: tuple[ParallelSource | BitextSource, ...] = option((), "training data (YAML: train: [...])", cli=False)
    eval: tuple[ParallelSource, ...] = option((), "Tatoeba-style accuracy before and after (YAML: eval: [...])",
                                              cli=False)
    batch_size: int = option(64, "pairs per batch (in-batch negatives)")
    grad_accum: int = option(1, "batches per optimiser step")
    lr: float = option(5e-4, "peak learning rate (linear warm-up)")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up")
    epochs: int = option(1, "passes over the training pairs")
    max_minutes: float | None = option(None, "stop and save after this much training time")
    scale: float = option(20.0, "translation ranking: logit scale")
    margin: float = option(0.3, "translation ranking: additive margin of the softmax (LaBSE's 0.3; not a mining "
                           "margin)")
    extend_vocab: int = option(0, "default encoder: add up to N SentencePiece pieces trained on the training text",
                               metavar="N")
    # all: every weight trains; embeddings: only the token embedding table (the network that reads it stays the
    # teacher's, which limits drift on the languages the model already covers)
    train_parts: Literal["all", "embeddings"] = option(
        "all", "all weights, or only the token embedding table (keeps covered languages where they are)")
    lexicon: int = option(0, "distill: add up to N word pairs per language induced from its pairs (IBM Model 1)",
                          metavar="N")
    lexicon_min_pairs: int = option(1000, "distill: only languages with at least this many pairs get a lexicon")
    # WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", sec. 3): theta0 + merge_alpha *
    # (theta - theta0); with merge_langs only the embedding rows of pieces those languages' training text uses move
    merge_alpha: float | None = option(
        None, "after training, move the weights back to initial + A * (trained - initial) (WiSE-FT)", metavar="A")
    merge_langs: tuple[str, ...] = option(
        (), "comma-separated: merge only the embedding rows these languages' training text uses",
        parse=_languages, metavar="LANGS")
    # only pairs of these languages also train the student's pivot side onto the teacher's vector (the term that
    # holds the pivot language in place); 1.3x the steps per minute on conf/distill.yaml (benchmarks/RESULTS.md)
    anchor_langs: tuple[str, ...] = option(
        (), "distill: only pairs of these languages also train the student's pivot side (faster)",
        parse=_languages, metavar="LANGS")
    checkpoint_every: int = option(500, "steps between checkpoints")
    log_every: int = option(50, "steps between progress lines")
    seed: int = option(0, "seed of data order and initialisation")
    device: str | None = option(None, "cpu, cuda (default: cuda when present)")

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
    """A TrainConfig from YAML/JSON data (flags merged over it); relative data paths are taken from
    ``data_root`` (or the data's own ``data_root``) when given."""
    from parabeam.options import apply_mapping

    data = dict(data)
    root = data_root or data.pop("data_root", None)
    data.pop("data_root", None)

    def source(item: dict):
        item = dict(item)
        if "bitext" in item:
            min_score = item.pop("min_score", None)
            return BitextSource(path=_resolve(item.pop("bitext"), root),
                                min_score=None if min_score is None else float(min_score),
                                pairs=tuple(item.pop("pairs", ())))
        lines = item.pop("lines", None) or [0, None]
        return ParallelSource(src=_resolve(item.pop("src"), root), tgt=_resolve(item.pop("tgt"), root),
                              src_lang=item.pop("src_lang"), tgt_lang=item.pop("tgt_lang"), start=int(lines[0]),
                              stop=None if lines[1] is None else int(lines[1]))

    data["train"] = tuple(source(x) for x in data.get("train", ()))
    data["eval"] = tuple(source(x) for x in data.get("eval", ()))
    for key in ("merge_langs", "anchor_langs"):
        if isinstance(data.get(key), str):
            data[key] = _languages(data[key])
        data[key] = tuple(str(x).strip() for x in data.get(key) or ())
    return apply_mapping(TrainConfig, data, where="training config")
