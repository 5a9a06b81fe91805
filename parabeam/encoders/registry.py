"""Encoder specs -> encoders: ``default``, ``hf:PATH_OR_NAME[#pooling=mean]``, or a `parabeam train` directory."""

from __future__ import annotations

import json
import os

from parabeam.encoders.base import Encoder

MODEL_CARD_CONFIG = "parabeam_encoder.json"


def load_encoder(spec: str = "default", **kwargs) -> Encoder:
    """Build the encoder a spec names. ``kwargs`` (device, precision, max_tokens, ...) go to the backend."""
    spec = (spec or "default").strip()
    if spec == "default":
        from parabeam.encoders.use_v3 import USEv3Encoder

        return USEv3Encoder(**kwargs)
    if spec.startswith("hf:"):
        from parabeam.encoders.hf import HFEncoder

        name, _, options = spec[3:].partition("#")
        if not name:
            raise ValueError("encoder spec 'hf:' needs a path or model name, e.g. hf:/models/LaBSE")
        opts = dict(item.split("=", 1) for item in options.split(",") if item) if options else {}
        unknown = set(opts) - {"pooling"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} in encoder spec {spec!r}; known: pooling")
        return HFEncoder(name, **opts, **kwargs)
    if os.path.isdir(spec):
        return load_trained(spec, **kwargs)
    raise ValueError(
        f"unknown encoder spec {spec!r}: use 'default', 'hf:PATH_OR_NAME', or a directory written by parabeam train"
    )


def load_trained(directory: str, **kwargs) -> Encoder:
    """Load a model directory written by ``parabeam train`` (its config names the backend)."""
    config_path = os.path.join(directory, MODEL_CARD_CONFIG)
    if not os.path.exists(config_path):
        raise ValueError(f"{directory} is not a parabeam encoder directory (no {MODEL_CARD_CONFIG})")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    backend = config.get("backend")
    if backend == "default":
        from parabeam.encoders.use_v3 import USEv3Encoder

        return USEv3Encoder(
            state_dict_path=os.path.join(directory, config["state_dict"]),
            sp_model_path=os.path.join(directory, config["sp_model"]),
            **kwargs,
        )
    if backend == "hf":
        from parabeam.encoders.hf import HFEncoder

        return HFEncoder(os.path.join(directory, config["model_dir"]), pooling=config.get("pooling", "cls"), **kwargs)
    raise ValueError(f"{config_path}: unknown backend {backend!r}")
