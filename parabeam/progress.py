"""Progress lines: the ``parabeam.progress`` logger, which the CLI shows without -v (lines from local worker
processes included, picked out of the logs the runner forwards by their marker). No Beam import here: the CLI
configures its logging before Beam is imported."""

from __future__ import annotations

import logging

PROGRESS = "[progress]"
progress_log = logging.getLogger("parabeam.progress")


def progress(message: str, *args) -> None:
    """A progress line (shown by the CLI without -v, from any worker)."""
    progress_log.info(PROGRESS + " " + message, *args)
