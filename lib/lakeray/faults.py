"""Named crash points, to prove that jobs recover from a kill at the worst moment.

Set LAKERAY_CRASH_AT=<point>[:<qualifier>] and the process SIGKILLs itself when it reaches
that point (e.g. `ingest.after_bronze_commit:usage`). Unset in normal runs: a no-op.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
ENV = "LAKERAY_CRASH_AT"


def crash_point(point: str, qualifier: str | None = None) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if wanted in (point, f"{point}:{qualifier}"):
        log.error("crash point %s reached (%s=%s): killing this process", point, ENV, wanted)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
