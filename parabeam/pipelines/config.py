"""The typed configuration of ``parabeam mine``: one tree of frozen dataclasses (text, embed, mining, index,
resources, and run-wide keys). YAML presets (``parabeam/conf/*.yaml``) and command-line flags both map onto it
through ``parabeam.options.apply_mapping``; every field documents itself and defines its flag
(``parabeam.options.option``)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from parabeam.encoders.base import PRECISIONS
from parabeam.mining.config import MiningConfig
from parabeam.mining.filters import FilterConfig
from parabeam.mining.index import IndexConfig
from parabeam.mining.text import SEGMENT_MODES
from parabeam.options import apply_mapping, merge, option

PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Sentence splitting, filtering and LID."""

    min_chars: int = option(8, "drop segments shorter than this (CJK characters count 3)")
    max_chars: int = option(1000, "drop segments longer than this")
    lid_threshold: float = option(0.5, "LID probability a sentence needs on its own (py3langid, normalised)")
    # A sentence the LID is unsure of (headlines, short lines, names) takes its document's language when the
    # document as a whole is identified with at least this probability and that language is among the
    # sentence's top ``lid_fallback_rank`` labels or has at least ``lid_fallback_ratio`` times the top label's
    # probability (mining.text.decide_language).
    doc_lid_threshold: float = option(
        0.9, "an unsure sentence takes its document's language when the document is identified with at least "
        "this probability (above 1: no fallback)")
    lid_fallback_rank: int = option(5, "document fallback: the document's language among the sentence's top N "
                                    "labels", metavar="N")
    lid_fallback_ratio: float = option(0.1, "document fallback: or at least this share of the top label's "
                                       "probability")
    segment: str = option(
        "auto", "mining units: auto (a line of at most --auto-max-sentences sentences whole, longer ones split), "
        "sentence (every line split), line (every line whole), both (short lines whole and as their sentences, "
        "one alignment kept per piece of text)", choices=SEGMENT_MODES)
    # 4: on the comparable-news development sets, whole lines of up to 4 sentences gained 0.5 F1 on ja-en over 2
    # and changed nothing elsewhere (benchmarks/RESULTS.md)
    auto_max_sentences: int = option(
        4, "segment=auto: a line of at most this many sentences is one unit, a longer one is split (segment=both: "
        "a line of at most this many is also mined whole)")

    def __post_init__(self) -> None:
        if not 0 < self.min_chars <= self.max_chars:
            raise ValueError(f"need 0 < min_chars <= max_chars, got {self.min_chars} and {self.max_chars}")
        if not 0.0 <= self.lid_threshold <= 1.0:
            raise ValueError(f"lid_threshold must be in [0, 1], got {self.lid_threshold}")
        if self.doc_lid_threshold < 0.0:
            raise ValueError(f"doc_lid_threshold must be >= 0, got {self.doc_lid_threshold}")
        if self.lid_fallback_rank < 1:
            raise ValueError(f"lid_fallback_rank must be >= 1, got {self.lid_fallback_rank}")
        if not 0.0 <= self.lid_fallback_ratio <= 1.0:
            raise ValueError(f"lid_fallback_ratio must be in [0, 1], got {self.lid_fallback_ratio}")
        if self.segment not in SEGMENT_MODES:
            raise ValueError(f"segment must be one of {', '.join(SEGMENT_MODES)}; got {self.segment!r}")
        if self.auto_max_sentences < 1:
            raise ValueError(f"auto_max_sentences must be >= 1, got {self.auto_max_sentences}")


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    encoder: str = option(
        "auto", "auto (the bundled encoder chosen for --langs) | muse-v3 (also: default) | e5-small[#prompt=passage] "
        "| hf:PATH_OR_NAME[#pooling=cls|mean|pooler] | st:DIR[#prompt=NAME] | a parabeam train directory",
        metavar="SPEC")
    device: str | None = option(None, "cpu, cuda, cuda:1 (default: cuda when present)")
    precision: str = option(
        "auto", "inference precision (auto: bf16 on CUDA, fp32 on CPU; int8: dynamic quantisation, CPU)",
        choices=PRECISIONS)
    max_tokens: int | None = option(None, "padded tokens per encoder batch (default: 2048 on CPU, 65536 on CUDA)")

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")


RESOURCE_HINTS = ("accelerator", "min_ram", "cpu_count")


@dataclasses.dataclass(frozen=True)
class ResourceConfig:
    """Beam resource hints per heavy stage, so a runner can place them on suitable workers (Dataflow: GPU
    workers for ``embed`` and ``search``, high-memory ones for ``index``). Values as Beam takes them, e.g.
    ``accelerator: "type:nvidia-l4;count:1;install-nvidia-driver"``, ``min_ram: 32GB``. Empty: no hint. A field
    is named after the ``timing`` of the stage it hints (``parabeam.pipelines.stage``); a test checks that each
    names one."""

    embed: dict[str, str] = option(help="resource hints of EmbedShards", cli=False, default_factory=dict)
    index: dict[str, str] = option(help="resource hints of BuildIndexes", cli=False, default_factory=dict)
    search: dict[str, str] = option(help="resource hints of SearchNeighbours", cli=False, default_factory=dict)

    def __post_init__(self) -> None:
        for stage in (f.name for f in dataclasses.fields(self)):
            unknown = set(getattr(self, stage) or {}) - set(RESOURCE_HINTS)
            if unknown:
                raise ValueError(f"unknown resource hint(s) {sorted(unknown)} for {stage}; known: {RESOURCE_HINTS}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    text: TextConfig = TextConfig()
    embed: EmbedConfig = EmbedConfig()
    mining: MiningConfig = MiningConfig()
    filters: FilterConfig = FilterConfig()
    index: IndexConfig = IndexConfig()
    resources: ResourceConfig = ResourceConfig()
    shard_size: int = option(100_000, "sentences per embedding shard")
    keep_candidates: bool = option(
        False, "also write every candidate above a low floor to OUTPUT/candidates/ (a 'selected' column tells the "
        "pairs kept), so that parabeam export --min-score can move the threshold without mining again")
    seed: int = option(0, "run seed", cli=False)
    # Several processes each using every core slow encoding down ~2x here.
    cpu_threads: int = option(
        0, "CPU threads each worker process gives torch and FAISS (0: from the runner: cores / workers for the "
        "local multi-process runner, 1 on Dataflow, the libraries' default elsewhere)", metavar="N")

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0, got {self.cpu_threads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_preset(name_or_path: str) -> str:
    """A YAML path, or the name of a bundled preset (``local``, ``conf/local.yaml``)."""
    if os.path.exists(name_or_path):
        return name_or_path
    candidate = os.path.join(PRESET_DIR, os.path.basename(name_or_path))
    if not candidate.endswith((".yaml", ".yml")):
        candidate += ".yaml"
    if os.path.exists(candidate):
        return candidate
    raise FileNotFoundError(f"config {name_or_path!r} not found (bundled presets live in {PRESET_DIR})")


def read_preset(path: str | None) -> dict[str, Any]:
    import yaml

    if not path:
        return {}
    with open(resolve_preset(path), encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """RunConfig from a YAML preset (its ``beam:`` section aside), then overrides (a nested mapping, e.g. the
    flags given: ``{"mining": {"threshold": 1.3}}``)."""
    data = read_preset(path)
    data.pop("beam", None)  # pipeline options, read by the CLI
    return apply_mapping(RunConfig, merge(data, overrides or {}), where=path or "config")


def beam_args_from_config(path: str | None) -> list[str]:
    """The ``beam:`` section of a preset as command-line pipeline options (the CLI's own flags win)."""
    args = []
    for key, value in (read_preset(path).get("beam") or {}).items():
        if isinstance(value, bool):
            if value:
                args.append(f"--{key}")
        elif isinstance(value, list):
            args.extend(f"--{key}={item}" for item in value)
        else:
            args.append(f"--{key}={value}")
    return args


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_threads_for_runner(options, cores: int | None = None) -> int:
    """Threads per worker process when the config leaves ``cpu_threads`` at 0, from the ``PipelineOptions``:
    the local multi-process DirectRunner runs ``direct_num_workers`` processes on this machine's cores;
    Dataflow runs one SDK process per vCPU unless ``no_use_multiple_sdk_containers``; other runners (one SDK
    process per worker, or threads in one process) keep 0, the libraries' default of every core."""
    cores = cores or usable_cores()
    options = options.get_all_options(retain_unknown_options=True)
    runner = str(options.get("runner") or "")
    if runner.endswith("DirectRunner") and options.get("direct_running_mode") == "multi_processing":
        workers = int(options.get("direct_num_workers") or 0) or cores  # 0 means one per core
        return max(1, cores // workers)
    if runner.endswith("DataflowRunner"):
        experiments = options.get("experiments") or []
        return 0 if "no_use_multiple_sdk_containers" in experiments else 1
    return 0
