"""Training data: line-aligned files and mined Parquet as ``Pair`` lists, word pairs from a lexicon, and batches
that never hold a sentence twice (a duplicate would be a false in-batch negative)."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import random
from collections.abc import Sequence

from parabeam.encoders.train_config import BitextSource, ParallelSource

log = logging.getLogger("parabeam")


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


BITEXT_COLUMNS = ["src_lang", "tgt_lang", "src_text", "tgt_text", "score"]


def read_bitext(source: BitextSource) -> list[Pair]:
    import pyarrow.dataset as ds

    path = source.path
    files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)) if os.path.isdir(path) \
        else sorted(glob.glob(path))
    if not files:
        raise FileNotFoundError(f"no Parquet bitext under {path}")
    dataset = ds.dataset(files, format="parquet")
    missing = [c for c in BITEXT_COLUMNS if c not in dataset.schema.names]
    if missing:
        raise ValueError(f"{path}: the Parquet lacks column(s) {', '.join(missing)}; training reads "
                         f"{', '.join(BITEXT_COLUMNS)} (as parabeam mine writes them)")
    table = dataset.to_table(columns=BITEXT_COLUMNS)
    pairs = []
    for row in table.to_pylist():
        name = f"{row['src_lang']}-{row['tgt_lang']}"
        scored_enough = source.min_score is None or row["score"] >= source.min_score
        if scored_enough and (not source.pairs or name in source.pairs):
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
