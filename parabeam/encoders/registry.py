"""Encoder specs -> encoders, through one table of backends.

A spec is ``auto`` (the bundled encoder chosen for a run's languages, ``choose_bundled``), the name of a bundled
encoder (``muse-v3``, also ``default``; ``e5-small``), ``hf:PATH_OR_NAME[#pooling=...]``, ``st:DIR[#prompt=...]``
or a sentence-transformers directory, or a directory written by ``parabeam train`` (its ``parabeam_encoder.json``
names the backend that wrote it). Each backend is one class in one module (``encoders.base.Encoder`` declares
what it provides); adding one is its module plus a row in ``BACKENDS``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Sequence

from parabeam.encoders import digests
from parabeam.encoders.base import Encoder
from parabeam.encoders.e5_small import E5SmallEncoder
from parabeam.encoders.hf import HFEncoder
from parabeam.encoders.muse_v3 import MUSEv3Encoder
from parabeam.encoders.st import STEncoder

# Bundled encoders first, in the order ``auto`` prefers them when several cover a run's languages equally.
BACKENDS: tuple[type[Encoder], ...] = (MUSEv3Encoder, E5SmallEncoder, HFEncoder, STEncoder)

MODEL_CARD_CONFIG = "parabeam_encoder.json"
AUTO = "auto"
# names an older parabeam wrote into parabeam_encoder.json before backends were named after themselves
_LEGACY_SAVED = {"default": MUSEv3Encoder.backend}


def _check_table() -> dict[str, type[Encoder]]:
    by_name: dict[str, type[Encoder]] = {}
    for cls in BACKENDS:
        for name in (cls.backend, *cls.aliases):
            if not name or name in by_name or name == AUTO:
                raise RuntimeError(f"encoder backend name {name!r} of {cls.__name__} is empty, reserved or taken")
            by_name[name] = cls
    return by_name


_BY_NAME = _check_table()


def bundled() -> list[type[Encoder]]:
    return [cls for cls in BACKENDS if cls.bundled]


@dataclasses.dataclass(frozen=True)
class Choice:
    """What ``auto`` resolved to, and why (printed and written into report.json)."""

    spec: str
    reason: str


def choose_bundled(languages: Sequence[str] | None) -> Choice:
    """The bundled encoder for ``languages`` (ISO 639-1 codes): the first in ``BACKENDS`` whose training languages
    include them all. mUSE v3 comes first: on the comparable-news development pairs, whose languages it covers,
    it mined better than e5-small (README, "Which encoder auto picks"); e5-small covers about 100 languages.
    Without languages (``parabeam embed`` and ``eval`` without ``--langs``), the one that covers the most."""
    candidates = bundled()
    if not languages:
        widest = max(candidates, key=lambda cls: len(cls.languages))
        return Choice(widest.backend, f"no languages given: the widest bundled encoder ({len(widest.languages)} "
                                      "languages)")
    wanted = sorted(set(languages))
    passed_over = []
    for cls in candidates:
        if set(wanted) <= cls.languages:
            why = "".join(f"{','.join(sorted(set(wanted) - skipped.languages))} outside {skipped.backend}'s "
                          f"languages; " for skipped in passed_over)
            return Choice(cls.backend, f"{why}{cls.backend} covers {','.join(wanted)}")
        passed_over.append(cls)
    considered = "; ".join(f"{cls.backend} ({len(cls.languages)} languages, not "
                           f"{','.join(sorted(set(wanted) - cls.languages))})" for cls in candidates)
    missing = sorted(set(wanted) - set().union(*(cls.languages for cls in candidates)))
    if missing:
        raise ValueError(f"no bundled encoder covers {', '.join(missing)} (considered: {considered}); give "
                         "--encoder e5-small to try the widest anyway, or --encoder hf:PATH / st:DIR for a model "
                         "trained on it")
    best = max(candidates, key=lambda cls: len(set(wanted) & cls.languages))
    return Choice(best.backend, f"{best.backend} covers the most of {','.join(wanted)}")


def resolve_spec(spec: str | None, languages: Sequence[str] | None = None) -> str:
    """``spec`` with ``auto`` replaced by the bundled encoder chosen for ``languages``."""
    spec = (spec or AUTO).strip()
    return choose_bundled(languages).spec if spec == AUTO else spec


def _backend_for(spec: str) -> type[Encoder]:
    if os.path.isdir(spec) and os.path.exists(os.path.join(spec, MODEL_CARD_CONFIG)):
        return _saved_backend(spec)
    for cls in BACKENDS:
        if cls.accepts(spec):
            return cls
    if os.path.isdir(spec):
        raise ValueError(f"{spec} is neither a parabeam train directory ({MODEL_CARD_CONFIG}) nor a "
                         f"sentence-transformers one (modules.json); for a Hugging Face model use hf:{spec}")
    names = ", ".join(cls.backend for cls in bundled())
    raise ValueError(f"unknown encoder spec {spec!r}: use auto, a bundled encoder ({names}), 'hf:PATH_OR_NAME', "
                     "'st:DIR', a sentence-transformers directory, or a directory written by parabeam train")


def _check_installed(cls: type[Encoder]) -> None:
    if cls.requires and importlib.util.find_spec(cls.requires[0]) is None:
        raise ValueError(f"the encoder {cls.backend} needs the package {cls.requires[1]!r}: "
                         f"pip install {cls.requires[1]}")


def load_encoder(spec: str | None = AUTO, *, languages: Sequence[str] | None = None, **kwargs) -> Encoder:
    """Build the encoder a spec names (``auto``: chosen for ``languages``). ``kwargs`` (device, precision,
    max_tokens, ...) go to the backend."""
    spec = resolve_spec(spec, languages)
    cls = _backend_for(spec)
    _check_installed(cls)
    if os.path.isdir(spec) and os.path.exists(os.path.join(spec, MODEL_CARD_CONFIG)):
        return load_trained(spec, **kwargs)
    return cls.from_spec(spec, **kwargs)


def _saved_config(directory: str) -> dict:
    config_path = os.path.join(directory, MODEL_CARD_CONFIG)
    if not os.path.exists(config_path):
        raise ValueError(f"{directory} is not a parabeam encoder directory (no {MODEL_CARD_CONFIG})")
    with open(config_path, encoding="utf-8") as f:
        return json.load(f)


def _saved_backend(directory: str) -> type[Encoder]:
    config = _saved_config(directory)
    name = _LEGACY_SAVED.get(config.get("backend"), config.get("backend"))
    cls = _BY_NAME.get(name)
    if cls is None or cls.backend != name:
        raise ValueError(f"{os.path.join(directory, MODEL_CARD_CONFIG)}: unknown backend {config.get('backend')!r}; "
                         f"known: {', '.join(c.backend for c in BACKENDS)}")
    return cls


def load_trained(directory: str, **kwargs) -> Encoder:
    """Load a model directory written by ``parabeam train`` (its config names the backend)."""
    cls = _saved_backend(directory)
    _check_installed(cls)
    return cls.load_saved(directory, _saved_config(directory), **kwargs)


def saved_entries(encoder: Encoder, directory: str) -> dict:
    """``encoder`` saved into ``directory``; returns the entries of its ``parabeam_encoder.json``, the backend's
    registry name first (``load_trained`` dispatches on it)."""
    if _BY_NAME.get(type(encoder).backend) is not type(encoder):
        raise ValueError(f"{type(encoder).__name__} is not a registered encoder backend and cannot be saved")
    return {"backend": type(encoder).backend, **encoder.save(directory)}


def calibration(spec: str, margin: str) -> dict[str, float]:
    """How ``threshold: auto`` calibrates on the vectors of ``spec`` (its backend's ``auto_posterior`` and
    ``fallback_thresholds[margin]``), as ``MiningConfig`` fields; empty where the backend has none (parabeam's
    generic ones apply)."""
    cls = _backend_for(resolve_spec(spec))
    out = {"auto_posterior": cls.auto_posterior, "fallback_threshold": cls.fallback_thresholds.get(margin)}
    return {key: value for key, value in out.items() if value is not None}


def encoder_fingerprint(spec: str | None = AUTO, languages: Sequence[str] | None = None) -> str:
    """A digest of what determines an encoder's vectors: the content of its weights, tokenizer and config files
    (not its name: a model retrained into the same directory gets a new fingerprint), and the spec's options.
    Reads files only; the model is not loaded. Used in cache keys (``pipelines.embed_shards``)."""
    spec = resolve_spec(spec, languages)
    cls = _backend_for(spec)
    if os.path.isdir(spec) and os.path.exists(os.path.join(spec, MODEL_CARD_CONFIG)):
        # a parabeam train directory: the checkpoint folder only serves resuming, the card does not change vectors
        return digests.combine("trained", digests.tree_digest(spec, skip=("checkpoint", "README.md")))
    return cls.fingerprint(spec)
