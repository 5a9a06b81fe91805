"""The encoder interface every backend implements, and the batching they share.

One contract (Beam RunInference's ``ModelHandler``, sentence-transformers' ``Module``): a backend is one class in
one module, listed once in ``encoders.registry.BACKENDS``, and this base class declares everything the rest of
parabeam asks of it:

- encoding: ``encode(texts)`` returns a float32 array ``(n, d)`` of L2-normalised rows, so that a dot product is a
  cosine. A backend implements ``dim``, ``_tokenize`` and ``_forward``; sorting by length, token-budget batching
  and normalisation live here once (device and precision handling in ``TorchEncoder``);
- specs: ``accepts(spec)`` says whether an ``--encoder`` spec names this backend, ``from_spec`` loads it,
  ``fingerprint`` digests what determines its vectors (the embedding cache's key) from files alone;
- saving: ``save(directory)`` writes the model into a ``parabeam train`` directory and returns the entries of
  its ``parabeam_encoder.json``; ``load_saved`` reads such a directory back. The registry records the backend's
  ``backend`` name there, which the registry keeps unique;
- training (``parabeam train``): ``model`` (the ``torch.nn.Module`` that trains), ``embed_for_training``,
  ``token_embedding`` (the token table, for sparse updates and ``train_parts: embeddings``), and
  ``extend_vocabulary`` where the tokenizer can grow;
- bundled encoders (weights from an installed package): ``bundled``, ``languages`` (what ``--encoder auto``
  chooses by) and ``requires`` (the package to name when it is missing);
- mining: ``auto_posterior`` and ``fallback_thresholds``, how ``threshold: auto`` calibrates on this encoder's
  scores and what it uses where a pair is too small to calibrate on.
Every hook but the three encoding ones has a default, so a test fake is three methods.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import numpy as np

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def resolve_precision(device: str, precision: str) -> str:
    """The precision an encoder runs at: ``auto`` is bf16 on CUDA and fp32 elsewhere; impossible combinations are
    refused. The one place the rule lives (the embedding cache's key asks it too)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if device == "cpu" and precision == "fp16":
        raise ValueError("fp16 inference is only supported on CUDA; use fp32, bf16 or int8 on CPU")
    if precision == "int8" and not device.startswith("cpu"):
        raise ValueError("int8 (dynamic quantisation) runs on CPU only; use bf16 or fp16 on CUDA")
    return precision


def run_settings(device: str | None, precision: str) -> tuple[str, str]:
    """``(device, precision)`` a torch encoder runs at: the device defaults to CUDA when present, the precision
    follows ``resolve_precision``. Asked by the encoders and by the embedding cache's key alike."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, resolve_precision(device, precision)


def spec_options(spec: str, known: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``NAME#key=value,key=value`` -> ``(NAME, {key: value})``; an option outside ``known`` is an error."""
    body, _, text = spec.partition("#")
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"encoder spec {spec!r}: option {item!r} is not key=value")
        options[key.strip()] = value.strip()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in encoder spec {spec!r}; known: "
                         f"{', '.join(known) or 'none'}")
    return body, options


def token_budget_batches(lengths: Sequence[int], *, max_tokens: int, max_batch: int) -> Iterator[np.ndarray]:
    """Yield index arrays of length-sorted batches whose padded size stays within ``max_tokens``.

    Sorting by length before batching (as LASER, stopes and sentence-transformers do) keeps padding small;
    the padded size of a batch is ``len(batch) * max(length in batch)``. A sentence longer than the budget
    forms a batch of its own.
    """
    if max_tokens < 1 or max_batch < 1:
        raise ValueError(f"max_tokens and max_batch must be >= 1, got {max_tokens} and {max_batch}")
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths_arr, kind="stable")  # (n,) ascending length
    start = 0
    n = len(order)
    while start < n:
        end = start + 1
        # lengths ascend, so the padded size of order[start:end] is (end - start) * lengths[order[end - 1]]
        while end < n and end - start < max_batch and (end + 1 - start) * lengths_arr[order[end]] <= max_tokens:
            end += 1
        yield order[start:end]
        start = end


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class Encoder(abc.ABC):
    """A multilingual sentence encoder: ``encode(texts) -> float32 (n, dim)``, L2-normalised rows (the whole
    contract is in the module docstring)."""

    #: The backend's name in the registry and in ``parabeam_encoder.json`` (unique; ``registry`` checks).
    backend: ClassVar[str] = ""
    #: Other names a spec may use for a bundled encoder (``default`` for mUSE v3).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Spec options after ``#`` that ``from_spec`` reads (``hf:PATH#pooling=mean``).
    options: ClassVar[tuple[str, ...]] = ()
    #: A bundled encoder: its weights ship in an installed package and its spec is its name.
    bundled: ClassVar[bool] = False
    #: Bundled encoders: the languages (ISO 639-1) it covers, by its training data and by measurement, which
    #: ``--encoder auto`` chooses by.
    languages: ClassVar[frozenset[str]] = frozenset()
    #: ``(module, pip package)`` the backend needs, named in the error when it is missing.
    requires: ClassVar[tuple[str, str] | None] = None
    #: Margin (``distance``, ``ratio``, ``absolute``) -> the threshold ``threshold: auto`` falls back to for this
    #: encoder's vectors when a pair has too few candidates to calibrate on (margins differ in scale between
    #: encoders); empty: parabeam's generic ones (``mining.config.FALLBACK_THRESHOLDS``).
    fallback_thresholds: ClassVar[dict[str, float]] = {}
    #: The posterior ``threshold: auto`` aims at for this encoder's scores (None: parabeam's generic 0.95).
    auto_posterior: ClassVar[float | None] = None

    #: A short identifier written into outputs (Parquet ``encoder`` column, report.json, model cards).
    name: str = "encoder"

    def __init__(self, *, max_tokens: int = 2048, max_batch: int = 512, max_seq_tokens: int | None = None) -> None:
        """``max_seq_tokens``: tokens per sentence before truncation; None: the model's own limit."""
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.max_seq_tokens = max_seq_tokens

    # -- specs ---------------------------------------------------------------------------------------------------

    @classmethod
    def accepts(cls, spec: str) -> bool:
        """Whether ``spec`` names this backend (bundled: its name or an alias, options after ``#`` allowed)."""
        return cls.bundled and spec.partition("#")[0] in (cls.backend, *cls.aliases)

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> Encoder:
        """The encoder ``spec`` names; ``kwargs`` (device, precision, max_tokens, ...) as for the constructor."""
        raise ValueError(f"encoder backend {cls.backend or cls.__name__} cannot be loaded from a spec")

    @classmethod
    def fingerprint(cls, spec: str) -> str:
        """A digest of what determines the vectors of ``spec`` (file contents, not names), from files alone."""
        raise ValueError(f"encoder backend {cls.backend or cls.__name__} has no fingerprint")

    @classmethod
    def load_saved(cls, directory: str, entries: dict, **kwargs) -> Encoder:
        """The encoder ``save`` wrote into ``directory``; ``entries`` are what ``save`` returned."""
        raise ValueError(f"encoder backend {cls.backend or cls.__name__} cannot load a saved model")

    def save(self, directory: str) -> dict:
        """Write the model into ``directory``; returns the entries ``load_saved`` needs (JSON values)."""
        raise ValueError(f"encoder {self.name} cannot be saved")

    # -- encoding ------------------------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding dimension."""

    @abc.abstractmethod
    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, already truncated to ``max_seq_tokens``."""

    @abc.abstractmethod
    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        """Embeddings of one batch, ``(len(token_ids), dim)`` float32 (normalised or not)."""

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the model sees for each text (prompt and special tokens included)."""
        return self._tokenize(list(texts))

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(n, dim)`` array of unit-length rows, in input order; ``progress(done,
        total)`` is called after every batch when given."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # (n, dim)
        if not texts:
            return out
        token_ids = self._tokenize(list(texts))
        lengths = [len(ids) for ids in token_ids]
        done = 0
        for batch in token_budget_batches(lengths, max_tokens=self.max_tokens, max_batch=self.max_batch):
            out[batch] = self._forward([token_ids[i] for i in batch])
            done += len(batch)
            if progress is not None:
                progress(done, len(texts))
        return l2_normalise(out)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Total tokens the encoder sees for ``texts`` (for throughput figures)."""
        return sum(len(ids) for ids in self._tokenize(list(texts)))

    # -- training ------------------------------------------------------------------------------------------------

    def embed_for_training(self, texts: Sequence[str]):
        """``(B, dim)`` unit vectors as a torch tensor with gradients (``model`` in train mode)."""
        raise ValueError(f"encoder {self.name} cannot be trained")

    def prepare_for_training(self) -> None:
        """Make ``model`` ready to train (fp32 master weights); called once before training."""
        raise ValueError(f"encoder {self.name} cannot be trained")

    def token_embedding(self):
        """The token embedding table (``torch.nn.Embedding``) of ``model``, or None."""
        return None

    def extend_vocabulary(self, texts: Sequence[str], vocab_size: int = 16000, seed: int = 0) -> int:
        """Add tokenizer pieces learnt from ``texts``; returns how many were added."""
        raise ValueError(f"extend_vocab works with a SentencePiece vocabulary that can grow (muse-v3); "
                         f"{self.backend or self.name} has none")


class TorchEncoder(Encoder):
    """Shared device and precision handling for torch backends (CUDA when present, bf16/fp16 there)."""

    def __init__(
        self, *, device: str | None = None, precision: str = "auto", max_tokens: int | None = None, **kwargs
    ) -> None:
        import torch

        device, precision = run_settings(device, precision)
        # small padded batches stay in cache on CPU (2048 tokens measured fastest on 2 cores); GPUs want big ones
        if max_tokens is None:
            max_tokens = 65536 if device.startswith("cuda") else 2048
        super().__init__(max_tokens=max_tokens, **kwargs)
        self.precision = precision
        self.device = torch.device(device)

    def _ready(self, model):
        """``model`` on the device, in eval mode, and with int8 its linear layers dynamically quantised (torch's
        ``quantize_dynamic``: int8 weights, activations quantised per batch; inference only)."""
        import torch

        self._training = False
        self._half = False
        model = model.to(self.device).eval()
        if self.precision == "int8":
            import warnings

            with warnings.catch_warnings():  # torch announces a future replacement of these functions
                warnings.simplefilter("ignore", UserWarning)
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return model

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """As ``Encoder.encode``; with bf16/fp16 the weights are first cast to that precision, once, unless the
        model is being trained (autocast alone re-casts every weight at every call: on an H200 it ran e5-small at
        0.3x its fp32 rate)."""
        if self.precision in ("bf16", "fp16") and not self._training and not self._half:
            import torch

            self.model.to(torch.bfloat16 if self.precision == "bf16" else torch.float16)
            self._half = True
        return super().encode(texts, progress)

    def prepare_for_training(self) -> None:
        """Training keeps fp32 master weights (mixed precision then comes from autocast alone): refused once the
        weights were cast for inference."""
        if self.precision == "int8":
            raise ValueError("an int8 (dynamically quantised) encoder cannot be trained; use fp32 or bf16")
        if self._half:
            raise ValueError(f"encoder {self.name} already encoded in {self.precision} (its weights were cast): load "
                             "it anew to train it")
        self._training = True

    def _autocast(self):
        """The forward pass's precision (bf16/fp16 autocast) and, on CUDA, its attention kernels: not cuDNN's,
        which builds an execution plan for every new input shape (about 1 ms of CPU per attention call; with
        length-sorted batches nearly every batch is a new shape: e5-small encoded 3,900 sentences/s in bf16 on an
        H200 against 14,800/s once the plans existed)."""
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        if self.device.type == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                             SDPBackend.MATH]))
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            stack.enter_context(torch.autocast(device_type=self.device.type, dtype=dtype))
        return stack
