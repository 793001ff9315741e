"""Prediction logging off the request path: a bounded queue drained by a background thread that
appends batches to the inference-log Delta table (delta-rs). A failed write is retried with the
same rows; rows are dropped (and counted) only if the queue is full, never silently."""

from __future__ import annotations

import logging
import queue
import threading
import time

from lakeray.monitor.inference_log import append_predictions
from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)


class InferenceLogger:
    def __init__(self, path: str, spec: PipelineSpec, flush_rows: int = 500, flush_s: float = 2.0,
                 capacity: int = 200_000):
        self.path, self.spec, self.flush_rows, self.flush_s = path, spec, flush_rows, flush_s
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.dropped = self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, rows: list[dict]) -> None:
        for row in rows:
            try:
                self.queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.error("inference log queue full: %d prediction row(s) not logged so far", self.dropped)

    def _drain(self, limit: int) -> list[dict]:
        rows = []
        while len(rows) < limit:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _write(self, rows: list[dict]) -> None:
        for attempt in range(5):
            try:
                append_predictions(self.path, self.spec, rows)
                self.written += len(rows)
                return
            except Exception as exc:  # storage hiccup: retry the same rows (Delta commits are atomic)
                log.warning("inference log write of %d row(s) failed (attempt %d): %s", len(rows), attempt + 1, exc)
                time.sleep(min(2 ** attempt * 0.2, 5))
        log.error("inference log: gave up on %d row(s) after 5 attempts", len(rows))
        self.dropped += len(rows)

    def _run(self) -> None:
        """Block on the queue (never spin: a busy loop here holds the GIL the request path needs);
        write when flush_rows are pending or flush_s after the first pending row."""
        pending: list[dict] = []
        due = None
        while not (self._stop.is_set() and self.queue.empty() and not pending):
            wait = 0.1 if due is None else max(0.0, due - time.monotonic())
            try:
                pending.append(self.queue.get(timeout=min(wait, 0.1)))
                pending += self._drain(self.flush_rows - len(pending))
                due = due if due is not None else time.monotonic() + self.flush_s
            except queue.Empty:
                pass
            if pending and (len(pending) >= self.flush_rows or time.monotonic() >= due or self._stop.is_set()):
                self._write(pending)
                pending, due = [], None

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
