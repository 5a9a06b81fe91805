"""The output folder of ``parabeam mine``: a run's results appear complete or not at all.

``OUTPUT`` holds one run: ``bitext/pair=L1-L2/part-NNNNN.parquet``, ``report.json`` (and ``report.html``), and
``_work/``, a cache of embedding shards and indexes named by content digests that later runs reuse (safe to delete).

A run writes its results under ``_work/staging/RUN_ID/`` and only when the pipeline has succeeded swaps them in
(``commit``): the previous run's results are replaced as a whole, so no pair folder of an earlier run stays beside
the new ones, and a run that fails or is killed leaves the previous complete output as it was. The swap itself
is journalled (``_work/swap.json``: what to move, what to delete) and a later run completes an interrupted one
before it starts (``recover``). Beam's file sinks work the same way (temporary directory, then finalise).
"""

from __future__ import annotations

import json
import logging
import os
import uuid

from parabeam.pipelines import storage

log = logging.getLogger("parabeam")

RESULTS = ("bitext", "candidates", "report.json", "report.html")  # what a run owns in OUTPUT; _work is the cache


class OutputError(ValueError):
    """The output folder cannot take this run (a clear, one-line reason)."""


def _is_local(path: str) -> bool:
    return "://" not in path


def _list(pattern_root: str) -> list[str]:
    """Every file under a folder (any depth), on any Beam filesystem."""
    if _is_local(pattern_root):
        if not os.path.isdir(pattern_root):
            return [pattern_root] if os.path.isfile(pattern_root) else []
        return sorted(os.path.join(d, f) for d, _, files in os.walk(pattern_root) for f in files)
    found = storage.FileSystems.match([storage.join(pattern_root, "**")])[0].metadata_list
    return sorted(m.path for m in found)


def _move(source: str, destination: str) -> None:
    if _is_local(destination):
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.replace(source, destination)
        return
    if storage.FileSystems.exists(destination):
        storage.FileSystems.delete([destination])
    storage.FileSystems.rename([source], [destination])


def _delete(paths: list[str]) -> None:
    existing = [p for p in paths if storage.FileSystems.exists(p)]
    if existing:
        storage.FileSystems.delete(existing)


def _prune_empty_dirs(root: str) -> None:
    if _is_local(root) and os.path.isdir(root):
        for directory, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
            if directory != root and not os.listdir(directory):
                os.rmdir(directory)


class OutputDir:
    def __init__(self, root: str):
        self.root = root.rstrip("/") if len(root) > 1 else root
        self.work = storage.join(self.root, "_work")
        self.journal = storage.join(self.work, "swap.json")

    def staging(self, run_id: str) -> str:
        return storage.join(self.work, "staging", run_id)

    def check(self, overwrite: bool = False) -> None:
        """Before any work: the output can be written, and it is not something else's folder."""
        if _is_local(self.root):
            if os.path.isfile(self.root):
                raise OutputError(f"output {self.root} is a file; give a folder")
            # missing parents are created as `mkdir -p` would (`--output out/sample` on a fresh clone); the probe
            # below fails in one line where they cannot be (a file on the way, no permission)
        probe = storage.join(self.work, f".write-check-{uuid.uuid4().hex[:8]}")
        try:
            with storage.FileSystems.create(probe) as f:
                f.write(b"ok")
            storage.FileSystems.delete([probe])
        except Exception as err:
            raise OutputError(f"cannot write to output {self.root}: {type(err).__name__}: {err}") from err
        foreign = self._has(storage.join(self.root, "bitext")) and not self._has(storage.join(self.root, "report.json"))
        if foreign and not overwrite:
            raise OutputError(f"{self.root} holds a bitext/ folder that no parabeam run wrote (no report.json); "
                              "choose another --output, or pass --overwrite to replace it")

    def _has(self, path: str) -> bool:
        return bool(_list(path))

    def previous_run(self) -> dict | None:
        """What the output holds now: ``{"run_id", "pairs"}`` from its report.json, or None."""
        path = storage.join(self.root, "report.json")
        if not storage.FileSystems.exists(path):
            return None
        try:
            report = json.loads(storage.read_bytes(path))
            settings = report["settings"]
            return {"run_id": settings.get("run_id"), "pairs": list(settings.get("pairs", []))}
        except (ValueError, KeyError, TypeError):
            return {"run_id": None, "pairs": []}

    def prepare(self) -> None:
        """Finish an interrupted swap; remove what dead runs left in the cache (half-written files, staging)."""
        self.recover()
        stale = [p for p in _list(self.work) if ".tmp-" in os.path.basename(p)]
        stale += _list(storage.join(self.work, "staging"))
        _delete(stale)
        _prune_empty_dirs(self.work)

    def commit(self, run_id: str) -> None:
        """Swap the staged results of ``run_id`` in for the output's current ones (journalled)."""
        staged_root = self.staging(run_id)
        staged = _list(staged_root)
        moves = [(p, storage.join(self.root, os.path.relpath(p, staged_root) if _is_local(p)
                                  else p[len(staged_root):].lstrip("/"))) for p in staged]
        targets = {dst for _, dst in moves}
        old = [p for name in RESULTS for p in _list(storage.join(self.root, name)) if p not in targets]
        storage.write_bytes_atomic(self.journal, json.dumps({"run_id": run_id, "moves": moves,
                                                             "delete": old}).encode())
        self.recover()

    def recover(self) -> None:
        """Complete the swap the journal describes (idempotent), then drop the journal."""
        if not storage.FileSystems.exists(self.journal):
            return
        plan = json.loads(storage.read_bytes(self.journal))
        _delete(plan["delete"])
        moves = sorted(plan["moves"], key=lambda m: os.path.basename(m[1]) == "report.json")  # the report last
        for source, destination in moves:
            if storage.FileSystems.exists(source):
                _move(source, destination)
        storage.FileSystems.delete([self.journal])
        _prune_empty_dirs(storage.join(self.root, "bitext"))
        _prune_empty_dirs(storage.join(self.root, "candidates"))
        _prune_empty_dirs(self.work)
