"""The contract every stage of ``parabeam mine`` keeps, and what a stage is built from.

A stage is a ``Stage`` (a Beam PTransform) that declares:
- ``inputs``: the names of the outputs of earlier stages it reads (none: it starts from the pipeline);
- ``outputs``: the names of what its ``expand`` returns, as a dict with exactly these keys; ``stats`` among them
  when it counts (``(name, n)`` pairs that report.json sums, ``parabeam.pipelines.counting``);
- ``timing``: the name its busy time is counted under (``seconds/<timing>`` in report.json, a row of
  report.html's timing table, in the pipeline's order) and, where ``ResourceConfig`` has a field of that name,
  the resource hints its heavy step gets (``Stage.pardo``).
Its label in the pipeline graph is its class name, and ``for_run`` builds it from the run (``Run``). The pipeline
(``parabeam.pipelines.mine.STAGES``) is the list of stages in order: adding a stage is its module plus one line
there.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import apache_beam as beam

from parabeam.pipelines.counting import STATS
from parabeam.pipelines.earlier import Earlier
from parabeam.pipelines.sharing import with_hints

if TYPE_CHECKING:
    from parabeam.mining.languages import Language
    from parabeam.pipelines.config import RunConfig


@dataclasses.dataclass(frozen=True)
class Run:
    """What the stages of one run are built from."""

    paths: list[str]  # expanded input files
    languages: list[Language]
    pairs: list[tuple[str, str]]  # language codes of each mined pair
    output: str  # where the results go (the staging folder of the output)
    work: str  # embedding shards and indexes
    config: RunConfig
    run_id: str
    earlier: Earlier = Earlier()  # the runs --since builds on (parabeam.pipelines.earlier)

    @property
    def mined_languages(self) -> list[str]:
        return sorted({code for pair in self.pairs for code in pair})


class Stage(beam.PTransform):
    """A stage of the mining pipeline (see the module's docstring for the contract)."""

    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    timing: ClassVar[str | None] = None

    def __init__(self, hints: dict[str, str] | None = None):
        super().__init__()
        self.hints = hints or {}

    @classmethod
    def for_run(cls, run: Run) -> Stage:
        raise NotImplementedError(f"{cls.__name__} does not say how a run builds it")

    @classmethod
    def enabled(cls, run: Run) -> bool:
        """Whether this run has the stage (e.g. WriteCandidates only with --keep-candidates)."""
        return True

    @classmethod
    def run_hints(cls, run: Run) -> dict[str, str]:
        """The run's resource hints for this stage (``resources.<timing>``), if its timing has any."""
        return dict(getattr(run.config.resources, cls.timing, None) or {}) if cls.timing else {}

    def pardo(self, dofn: beam.DoFn, *side_inputs, hinted: bool = False) -> beam.ParDo:
        """``beam.ParDo(dofn)`` for this stage: the DoFn counts its time under the stage's ``timing``, and the
        step carries the stage's resource hints when ``hinted`` (its heavy step)."""
        dofn.timing = self.timing
        transform = beam.ParDo(dofn, *side_inputs)
        return with_hints(transform, self.hints) if hinted else transform


def tagged(result, main: str, *others: str) -> dict[str, Any]:
    """The outputs of ``ParDo(...).with_outputs(*others, main=main)`` as a stage's dict (``stats`` by its tag)."""
    return {main: result[main], **{name: result[name] for name in others}}


def check_outputs(stage: Stage, produced: dict) -> dict:
    """A stage's outputs, checked against what it declares."""
    if set(produced) != set(stage.outputs):
        raise TypeError(f"{type(stage).__name__} returned {sorted(produced)}, declared {sorted(stage.outputs)}")
    return produced


__all__ = ["STATS", "Run", "Stage", "check_outputs", "tagged"]
