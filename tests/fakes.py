"""An exact, tiny encoder for tests: embeddings computed from a hash of normalised word bags.

Sentences that share words get similar vectors, and a planted "translation" table maps words of one language
onto a shared concept id, so tests can mine known pairs without a neural model. Deterministic and fast.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import numpy as np

from parabeam.encoders.base import Encoder

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEncoder(Encoder):
    """Bag of hashed (optionally concept-mapped) words projected to ``dim`` dims; unit vectors."""

    name = "test:hashing"

    def __init__(self, dim: int = 64, lexicon: Mapping[str, str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._dim = dim
        self.lexicon = {k.lower(): v for k, v in (lexicon or {}).items()}

    @property
    def dim(self) -> int:
        return self._dim

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        out = []
        for text in texts:
            words = [self.lexicon.get(w, w) for w in _WORD.findall(text.lower())] or ["<empty>"]
            out.append([int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") for w in words])
        return out

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(token_ids), self._dim), dtype=np.float32)  # (B, dim)
        for row, ids in enumerate(token_ids):
            for token in ids:
                rng = np.random.default_rng(token % (2**63))
                out[row] += rng.standard_normal(self._dim).astype(np.float32)
        return out
