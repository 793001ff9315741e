"""Prediction logging off the request path: a bounded queue drained by a background thread that
appends batches to the inference-log Delta table (delta-rs).

Nothing answered goes unlogged (rows logged = rows answered):
- a row that does not convert (e.g. text that is not valid Unicode) is mended field by field and
  written with the others, never failing the rows beside it;
- a failed write is retried with the same rows (Delta commits are atomic), then the rows go to a
  dead-letter file (lakeray.serve.deadletter) that a later flush replays;
- rows that do not fit the queue go straight to a dead-letter file too.
`dropped` counts only rows that even the dead-letter folder refused (its disk full)."""

from __future__ import annotations

import logging
import queue
import threading
import time

from lakeray.monitor.inference_log import append_rows, append_table, table_of
from lakeray.serve.deadletter import DeadLetter, default_folder
from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)


class InferenceLogger:
    def __init__(self, path: str, spec: PipelineSpec, flush_rows: int = 500, flush_s: float = 2.0,
                 capacity: int = 200_000, dead_letter: str | None = None, attempts: int = 5, replay_s: float = 60.0):
        self.path, self.spec, self.flush_rows, self.flush_s = path, spec, flush_rows, flush_s
        self.attempts, self.replay_s = max(1, int(attempts)), float(replay_s)
        self.dead_letter = DeadLetter(dead_letter or default_folder(path, spec.name))
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.dropped = self.written = self.dead_lettered = self.replayed = 0
        self._lock = threading.Lock()
        self._next_replay = 0.0                     # replay what an earlier run left, first thing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, rows: list[dict]) -> None:
        overflow = []
        for row in rows:
            try:
                self.queue.put_nowait(row)
            except queue.Full:
                overflow.append(row)
        if overflow:
            self._keep(overflow, f"the inference-log queue is full ({self.queue.maxsize} rows waiting)")

    def _keep(self, rows: list[dict], reason: str) -> None:
        """Rows that cannot be written now: into a dead-letter file (only a refusing disk drops them)."""
        try:
            self.dead_letter.write(rows, reason)
            with self._lock:
                self.dead_lettered += len(rows)
        except Exception as exc:
            with self._lock:
                self.dropped += len(rows)
            log.error("inference log: %d row(s) LOST: %s, and the dead-letter folder %s refused them: %s",
                      len(rows), reason, self.dead_letter.folder, exc)

    def _drain(self, limit: int) -> list[dict]:
        rows = []
        while len(rows) < limit:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _write(self, rows: list[dict]) -> None:
        table, good, bad = table_of(self.spec, rows)
        if bad:
            self._keep(bad, "row(s) that do not fit the inference-log schema even mended")
        if table is None:
            return
        for attempt in range(self.attempts):
            try:
                append_table(self.path, table)
                with self._lock:
                    self.written += table.num_rows
                self._replay()
                return
            except Exception as exc:  # storage hiccup: retry the same rows (Delta commits are atomic)
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("inference log write of %d row(s) failed (attempt %d of %d): %s", len(good), attempt + 1,
                            self.attempts, reason)
                if attempt + 1 < self.attempts and not self._stop.is_set():
                    time.sleep(min(2 ** attempt * 0.2, 5))
        self._keep(good, f"writing {self.path} failed {self.attempts} time(s): {reason}")

    def _replay(self, force: bool = False) -> None:
        """Dead letters back into the log, at most every replay_s (a write just succeeded, or the
        writer is idle: the storage is likely back)."""
        if not force and time.monotonic() < self._next_replay:
            return
        self._next_replay = time.monotonic() + self.replay_s
        if not self.dead_letter.files():
            return

        def write(rows):
            written, bad = append_rows(self.path, self.spec, rows)
            with self._lock:
                self.written += written
                self.replayed += written
            return bad

        try:
            self.dead_letter.replay(write)
        except Exception as exc:
            log.warning("inference log: dead-letter replay from %s failed: %s", self.dead_letter.folder, exc)

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
                if not pending and not self._stop.is_set():
                    self._replay()
            if pending and (len(pending) >= self.flush_rows or time.monotonic() >= due or self._stop.is_set()):
                self._write(pending)
                pending, due = [], None

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
