"""The records stages hand each other: sentences, embedding shards, indexes, neighbour lists.

Stages pass file paths on the run's output filesystem (fp16 embedding shards, Parquet metadata, FAISS indexes),
never local temp files, so any runner can place them on any worker.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Sentence(NamedTuple):
    text: str  # as it appeared in the document (stripped)
    url: str
    digest: str  # document digest
    source: str
    offset: int  # document offset in its file
    position: int  # sentence index within the document
    lid_label: str = ""
    lid_prob: float = 0.0
    doc_lid_label: str = ""  # the document's language by the LID, for the fallback in IdentifyLanguage
    doc_lid_prob: float = 0.0
    line: int = 0  # line of the document the segment is from
    part: int = -1  # mining.text.Segment.part: a whole line (-1, -2 when it holds several sentences) or a sentence
    copies: int = 1  # how often its normalised text occurred in the input, in its language (Deduplicate)


def provenance_key(s: Sentence) -> tuple:
    """Where a sentence came from, as a sort key: file, document offset, position in the document, URL."""
    return (s.source, s.offset, s.position, s.url)


class ShardRef(NamedTuple):
    lang: str
    shard_id: int
    size: int
    embeddings: str  # path of the (n, d) float16 .npy
    metadata: str  # path of the Parquet with one row per embedding row (parabeam.pipelines.bitext.SHARD_META_SCHEMA)


class IndexRef(NamedTuple):
    lang: str
    path: str  # FAISS-serialised index on the run's filesystem
    factory: str
    shards: tuple[ShardRef, ...]  # in index order: the index's row ids run over these shards

    def first_row(self, shard_id: int) -> int:
        rows = 0
        for ref in self.shards:
            if ref.shard_id == shard_id:
                return rows
            rows += ref.size
        raise KeyError(f"shard {shard_id} is not in the {self.lang} index")

    def offsets(self) -> np.ndarray:
        """(n_shards + 1,) int64: the global row where each shard starts, and the total."""
        return np.cumsum([0] + [r.size for r in self.shards]).astype(np.int64)


class Neighbours(NamedTuple):
    pair: str
    direction: str  # "fwd": source shard queries the target index; "bwd": the reverse
    first_row: int  # global row of the shard's first sentence in its language
    D: np.ndarray  # (n, K) float32, K = k + the second pass's reserve
    I: np.ndarray  # (n, K) int64 global rows of the other language
    means: np.ndarray | None = None  # (n,) neighbourhood means when not those of D's first k columns


def pair_name(src: str, tgt: str) -> str:
    return f"{src}-{tgt}"
