"""One run of a pipeline's stage at a time: a second `lakeray ingest` (a cron job that overlaps the last
one, a retry while the first still runs) stops before it reads or writes anything, naming the run that
holds the stage. Without it, Delta's own conflict checks kept the tables right but failed the second
run half-way with a Java stack trace (DELTA_CONCURRENT_TRANSACTION from its streaming checkpoint, or a
concurrent-append conflict on silver).

The lock is an advisory `flock` on a file beside the pipeline's checkpoints: released when the run ends
or its process dies (SIGKILL too), so nothing is ever left to clean up. It needs a local (or NFS)
checkpoints folder; with checkpoints on an object store or HDFS there is no such lock, and Delta's
conflict checks are what stop the second run."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import socket
from pathlib import Path

from lakeray.errors import LakerayError
from lakeray.lakehouse.fs import is_uri

log = logging.getLogger(__name__)


class StageBusyError(LakerayError):
    """Another run holds the pipeline's stage; exit code 75 (EX_TEMPFAIL: run again later)."""

    exit_code = 75


def _local(root: str) -> Path | None:
    if root.startswith("file://"):
        return Path(root[len("file://"):])
    return None if is_uri(root) else Path(root)


@contextlib.contextmanager
def stage_lock(checkpoint_root: str, pipeline: str, stage: str):
    """Hold `stage` of `pipeline` for the block (checkpoint_root: the pipeline's checkpoints folder)."""
    folder = _local(checkpoint_root)
    if folder is None:
        log.debug("%s %s: checkpoints at %s are not a local folder; no stage lock", pipeline, stage, checkpoint_root)
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{stage}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "a process that did not say"
            raise StageBusyError(f"pipeline '{pipeline}': another {stage} run is going on ({holder}); this one "
                                 f"stopped before reading or writing anything. Run it again once that one has "
                                 f"finished (lock: {path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                      f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC".encode(), 0)
        yield
    finally:
        os.close(fd)        # releases the lock
