"""Session settings changed for one stretch of work and put back after it."""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


@contextlib.contextmanager
def runtime_conf(spark, values: dict[str, str]):
    """Set runtime SQL settings on `spark` for the block; each is put back as it was (unset when it was
    unset), also when the block raises. Every thread using `spark` sees them meanwhile: for work that
    owns the session (one job's phase), not for a session shared with other jobs."""
    before = {k: spark.conf.get(k, None) for k in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    if values:
        log.debug("session settings for this phase: %s", values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
