"""Beam pipeline options on parabeam's command line: which flags Beam knows (so a misspelt one is an error, not a
silently dropped option), the checks a cluster launch needs, and where local workers' logs go."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import os
import sys
import tempfile

# Without --runner, run on this machine's cores (Beam's DirectRunner would otherwise try to fetch the Prism
# runner, which needs network access).
DEFAULT_LOCAL_BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"]
DASK_RUNNER = "--runner=parabeam.pipelines.dask_runner.DaskRunner"


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@functools.lru_cache(maxsize=1)
def known_beam_flags() -> frozenset[str]:
    """Every flag some ``PipelineOptions`` subclass defines (runners', filesystems', workers')."""
    from apache_beam.options.pipeline_options import PipelineOptions

    with contextlib.suppress(ImportError):  # DaskRunner's options, when dask is installed
        import apache_beam.runners.dask.dask_runner  # noqa: F401
    names: set[str] = set()
    for cls in set(_subclasses(PipelineOptions)):
        parser = argparse.ArgumentParser(add_help=False)
        try:
            cls._add_argparse_args(parser)
        except Exception:  # an options class that cannot register here (missing optional dependency)
            continue
        for action in parser._actions:
            names.update(action.option_strings)
    return frozenset(names)


def check_beam_args(args: list[str], own_flags: list[str]) -> None:
    """A flag that neither parabeam nor Beam knows is an error naming the closest known one (Beam itself would drop
    it with one log line and the run would go on with the default)."""
    known = known_beam_flags()
    for arg in args:
        if not arg.startswith("--"):
            continue  # a value of the flag before it
        name = arg.split("=", 1)[0]
        if name in known:
            continue
        close = difflib.get_close_matches(name, [*own_flags, *known], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown option {name}{hint} (parabeam mine --help lists parabeam's options; any Beam "
                         "pipeline option passes through)")


def check_worker_image(beam_args: list[str]) -> None:
    """Cluster runners start workers from a container image; Beam's stock image lacks parabeam and fails only
    once workers run, so a missing image is an error before launch."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(beam_args).get_all_options(retain_unknown_options=True)
    runner = str(options.get("runner") or "")
    if runner.endswith("DataflowRunner") and not options.get("sdk_container_image"):
        raise ValueError("DataflowRunner needs parabeam's worker image: --sdk_container_image=IMAGE "
                         "(build it from the Dockerfile)")
    if str(options.get("environment_type") or "").upper() == "DOCKER" and not options.get("environment_config"):
        raise ValueError("--environment_type=DOCKER needs --environment_config=IMAGE, parabeam's worker image "
                         "(build it from the Dockerfile)")


def local_worker_processes(beam_args: list[str]) -> bool:
    """Whether the run starts local worker processes (the multi-processing DirectRunner)."""
    flags = dict(a.split("=", 1) for a in beam_args if a.startswith("--") and "=" in a)
    return flags.get("--runner", "").endswith("DirectRunner") and flags.get("--direct_running_mode") == \
        "multi_processing"


@contextlib.contextmanager
def worker_logs_to_file(enabled: bool):
    """While the block runs, this process's file descriptor 2 (which local worker processes inherit and log to,
    ~60 lines of start-up chatter per run) goes to a temporary file; yields its path (None when not enabled).
    The file is kept (for the error message) only when the running pipeline failed (an error marked
    ``parabeam_pipeline_ran``); an error before the pipeline started has nothing there to read."""
    if not enabled:
        yield None
        return
    sys.stderr.flush()
    saved = os.dup(2)
    handle, path = tempfile.mkstemp(prefix="parabeam-workers-", suffix=".log")
    os.dup2(handle, 2)
    keep = False
    try:
        yield path
    except BaseException as err:
        keep = getattr(err, "parabeam_pipeline_ran", False)
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(handle)
        if not keep:
            os.unlink(path)


def console_stream():
    """Where parabeam talks to the user: the terminal's stderr even while fd 2 goes to the worker log (a copy
    of the descriptor), or ``sys.stderr`` itself when it is not the process's fd 2 (captured in tests)."""
    try:
        if sys.stderr.fileno() == 2:
            return os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):
        pass
    return sys.stderr
