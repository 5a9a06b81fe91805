"""Building on earlier runs: ``parabeam mine ... --output OUT_B --since OUT_A`` (repeatable).

A new crawl snapshot is mined against what was already mined, as if both had been mined at once, without
embedding the old sentences again:

- every run lists its embedding shards in report.json (``shards.<lang>``: the union it mined over, so a chain of
  runs carries everything); ``--since`` reads that list, and the shards stay where the earlier run cached them
  (``OUT_A/_work``, so that cache must be kept);
- Deduplicate drops a sentence whose normalised text an earlier run already holds in the same language (counted
  as ``languages.<code>.dropped.in_earlier_run``): it is neither embedded nor indexed again;
- EmbedShards passes the earlier shards on beside the new ones (``languages.<code>.from_earlier_runs``), so the
  indexes, the neighbour search and the margins' neighbourhood means cover the union;
- FilterPairs drops a pair an earlier run already wrote (same normalised texts; ``selection.<pair>.dropped.
  in_earlier_run``): the new output holds only new pairs.

The earlier runs must have used the same encoder (its fingerprint: the content of its files), or the run stops
before any work; report.json names the runs it builds on (``settings.since``).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from parabeam.pipelines import storage
from parabeam.pipelines.records import ShardRef, pair_name

# earlier shards are renumbered from here, after any shard id a run gives its own new shards
EARLIER_SHARD_BASE = 1_000_000
IN_EARLIER_RUN = "in_earlier_run"


@dataclasses.dataclass(frozen=True)
class Earlier:
    """What a run builds on: the earlier runs, and every embedding shard they mined over (renumbered)."""

    runs: tuple[dict, ...] = ()  # {"output", "run_id"} per --since, in the order given
    shards: tuple[ShardRef, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.runs)

    def shards_of(self, lang: str) -> list[ShardRef]:
        return [ref for ref in self.shards if ref.lang == lang]

    @property
    def outputs(self) -> list[str]:
        return [run["output"] for run in self.runs]


def shard_listing(refs) -> dict[str, list[dict]]:
    """report.json's ``shards``: per language, its embedding shards in index order."""
    out: dict[str, list[dict]] = {}
    for ref in sorted(refs, key=lambda r: (r.lang, r.shard_id)):
        out.setdefault(ref.lang, []).append({"shard_id": ref.shard_id, "size": ref.size,
                                             "embeddings": ref.embeddings, "metadata": ref.metadata})
    return out


def load_earlier(outputs: list[str], fingerprint: str, languages: list[str], output: str) -> Earlier:
    """The runs in ``outputs`` and their shards of ``languages``, checked: each is a finished parabeam run that
    lists its shards, made with the encoder of ``fingerprint``, whose cached shards still exist, and none is
    ``output`` itself. Raises ValueError / FileNotFoundError in one line otherwise."""
    def same(a: str, b: str) -> bool:  # local paths compared absolute: out/b and ./out/b are one folder
        local = lambda p: os.path.abspath(p) if "://" not in p else p.rstrip("/")  # noqa: E731
        return local(a) == local(b)

    runs, refs, seen = [], [], set()
    for earlier in outputs:
        if same(earlier, output):
            raise ValueError(f"--since {earlier} is the output itself: build on an earlier run's output")
        path = storage.join(earlier, "report.json")
        if not storage.FileSystems.exists(path):
            raise FileNotFoundError(f"--since {earlier}: no report.json there (not the output of a finished "
                                    "parabeam mine run)")
        report = json.loads(storage.read_bytes(path))
        settings = report.get("settings", {})
        if "shards" not in report or "encoder_fingerprint" not in settings:
            raise ValueError(f"--since {earlier}: that run does not list its embedding shards (mined by a "
                             "parabeam older than --since); mine it again first")
        if settings["encoder_fingerprint"] != fingerprint:
            encoder = (settings.get("encoder") or {}).get("resolved", "?")
            raise ValueError(f"--since {earlier} was mined with another encoder ({encoder}, fingerprint "
                             f"{settings['encoder_fingerprint'][:12]}; this run: {fingerprint[:12]}): its "
                             "embeddings cannot be searched with this run's")
        runs.append({"output": earlier, "run_id": settings.get("run_id")})
        for lang in languages:
            for item in report["shards"].get(lang, []):
                if item["embeddings"] in seen:  # a chain of runs lists the oldest shards more than once
                    continue
                if not storage.FileSystems.exists(item["embeddings"]) or \
                        not storage.FileSystems.exists(item["metadata"]):
                    raise FileNotFoundError(f"--since {earlier}: its cached embeddings are gone "
                                            f"({item['embeddings']}); mine it again or drop --since")
                seen.add(item["embeddings"])
                refs.append((lang, item))
    shards = tuple(ShardRef(lang, EARLIER_SHARD_BASE + i, int(item["size"]), item["embeddings"], item["metadata"])
                   for i, (lang, item) in enumerate(refs))
    return Earlier(tuple(runs), shards)


def pair_keys(src_texts, tgt_texts) -> np.ndarray:
    """(m,) uint64 keys of pairs by their normalised texts (``mining.text.normalise_for_dedup``)."""
    from parabeam.mining.text import normalise_for_dedup as norm
    from parabeam.pipelines.shard import stable_hash

    return np.fromiter((stable_hash(norm(s) + "\t" + norm(t)) for s, t in zip(src_texts, tgt_texts)),
                       dtype=np.uint64, count=len(src_texts))


def written_pair_keys(outputs: list[str], src_lang: str, tgt_lang: str) -> np.ndarray:
    """Keys (``pair_keys``) of every pair the runs in ``outputs`` wrote for this language pair, either way round."""
    from parabeam.pipelines.metadata import read_columns

    keys = [np.zeros(0, np.uint64)]
    for output in outputs:
        for name, swap in ((pair_name(src_lang, tgt_lang), False), (pair_name(tgt_lang, src_lang), True)):
            pattern = storage.join(output, "bitext", f"pair={name}", "*.parquet")
            for m in storage.FileSystems.match([pattern])[0].metadata_list:
                table = read_columns(m.path, ["src_text", "tgt_text"])
                src, tgt = table.column("src_text").to_pylist(), table.column("tgt_text").to_pylist()
                keys.append(pair_keys(tgt, src) if swap else pair_keys(src, tgt))
    return np.unique(np.concatenate(keys))
