"""What the heavy stages share per worker process: one encoder, one FAISS index, a thread budget.

Beam runs several DoFn instances per worker process (one per thread or bundle on Dataflow and the portable
runners), and each used to load its own model. ``SharedResource`` keeps one copy per process through Beam's
``apache_beam.utils.shared.Shared`` (what RunInference's model sharing builds on): the first DoFn instance to
need it loads it, the others get the same object, and a new tag (another index) replaces it.

RunInference's ``ModelHandler`` is not used for the encoder: EmbedShards works a shard at a time (the shard is
the unit of caching, of the output files and of the length-sorted token-budget batching), while RunInference
batches single elements and returns one prediction per element.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.utils.shared import Shared


class _Box:
    """A weak-referenceable holder (Shared keeps its object through a weak reference; a FAISS index, a dict
    or a tuple cannot be weakly referenced themselves)."""

    def __init__(self, value: Any):
        self.value = value


class SharedResource:
    """A handle, pickled with the DoFn, to one object per worker process."""

    def __init__(self) -> None:
        self._shared = Shared()

    def acquire(self, load: Callable[[], Any], tag: str) -> _Box:
        """The process's object for ``tag`` (loaded by ``load`` if no DoFn holds it). Keep the returned box for
        as long as the object is used: it is what keeps the object alive."""
        return self._shared.acquire(lambda: _Box(load()), tag=tag)


def limit_threads(n: int, torch_too: bool = False) -> None:
    """Caps the CPU threads of FAISS (OpenMP), numpy's BLAS (the exact search's GEMM) and torch in this worker
    process; 0 leaves the libraries' default."""
    if n > 0:
        import faiss
        from threadpoolctl import threadpool_limits

        faiss.omp_set_num_threads(n)
        threadpool_limits(n, user_api="blas")
        if torch_too:
            import torch

            torch.set_num_threads(n)


def with_hints(transform: beam.PTransform, hints: dict[str, str]) -> beam.PTransform:
    """Beam resource hints (accelerator, min_ram, cpu_count) on a stage, for runners that place work by them
    (Dataflow); runners without resource placement ignore them."""
    return transform.with_resource_hints(**hints) if hints else transform
