"""Content digests of model files, for the embedding cache's keys: a model retrained into the same directory or a
package upgrade that changes its weights gets a new digest; a renamed copy keeps it."""

from __future__ import annotations

import functools
import hashlib
import os


def file_digest(path: str) -> str:
    """sha256 of a file's content, remembered per (path, size, mtime) in this process."""
    stat = os.stat(path)
    return _file_digest_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: str, skip: tuple[str, ...] = ()) -> str:
    """Digest of every file under ``root`` (names and contents), minus top-level entries in ``skip`` and hidden
    ones. A missing folder is an error (``os.walk`` alone would digest it as empty)."""
    if not os.path.isdir(root):
        raise ValueError(f"{root} is not a folder")
    h = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        dirs[:] = sorted(d for d in dirs if not (rel_dir == "." and d in skip) and not d.startswith("."))
        for name in sorted(files):
            if rel_dir == "." and name in skip:
                continue
            path = os.path.join(directory, name)
            h.update(os.path.normpath(os.path.join(rel_dir, name)).encode() + b"\0")
            h.update(file_digest(path).encode() + b"\n")
    return h.hexdigest()


def combine(*parts: str) -> str:
    """One digest of several strings (a backend's name, its options, file digests)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
