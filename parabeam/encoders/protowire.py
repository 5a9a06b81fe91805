"""SentencePiece model files written and read at the protobuf wire level.

sentencepiece's generated protobuf module insists on a protobuf runtime at least as new as the one it was
generated with, which a user's environment need not have; the few fields parabeam writes and reads are simple
enough to handle directly (field numbers from sentencepiece's ``sentencepiece_model.proto``):
``ModelProto``: pieces = 1, trainer_spec = 2, normalizer_spec = 3; ``SentencePiece``: piece = 1, score = 2,
type = 3; ``TrainerSpec``: model_type = 3, unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43;
``NormalizerSpec``: name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
escape_whitespaces = 5.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
UNIGRAM = 1  # TrainerSpec.ModelType


def varint(n: int) -> bytes:
    if n < 0:  # int32 fields such as bos_id = -1 are sign-extended to 64 bits
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field: int, data: bytes) -> bytes:
    return _key(field, 2) + varint(len(data)) + data


def int_field(field: int, value: int) -> bytes:
    return _key(field, 0) + varint(value)


def float_field(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def piece_record(piece: str, score: float, kind: int = NORMAL) -> bytes:
    """A serialised ``ModelProto.pieces`` entry (type NORMAL is the default and left out)."""
    body = length_delimited(1, piece.encode("utf-8")) + float_field(2, score)
    if kind != NORMAL:
        body += int_field(3, kind)
    return length_delimited(1, body)


def unigram_model(pieces: Sequence[str], scores: Sequence[float], kinds: Sequence[int], *, unk_id: int) -> bytes:
    """A unigram ``ModelProto`` that tokenises text exactly as given: no normalisation, no dummy prefix, spaces
    left alone (the caller normalises and writes the metaspace itself); no BOS/EOS/PAD of its own."""
    out = bytearray()
    for piece, score, kind in zip(pieces, scores, kinds):
        out += piece_record(piece, float(score), kind)
    trainer = (int_field(3, UNIGRAM) + int_field(40, unk_id) + int_field(41, -1) + int_field(42, -1)
               + int_field(43, -1))
    normalizer = (length_delimited(1, b"identity") + int_field(3, 0) + int_field(4, 0) + int_field(5, 0))
    return bytes(out + length_delimited(2, trainer) + length_delimited(3, normalizer))


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of each field of a serialised message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = _read_varint(data, i)
        elif wire_type == 2:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire_type == 5:
            value, i = data[i:i + 4], i + 4
        elif wire_type == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"protobuf wire type {wire_type} is not supported")
        yield field, value


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def precompiled_charsmap(model: bytes) -> bytes:
    """The ``normalizer_spec.precompiled_charsmap`` of a serialised model (empty when it has none)."""
    for field, value in fields(model):
        if field == 3:
            for inner, blob in fields(value):
                if inner == 2:
                    return bytes(blob)
    return b""
