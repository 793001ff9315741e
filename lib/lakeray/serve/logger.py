"""Prediction logging off the request path: a bounded buffer drained by a background thread that
appends batches to the inference-log Delta table (delta-rs). Logging a request is a list extend
under a lock; the writer thread sleeps until `chunk_rows` rows wait, converts them to Arrow, and
commits once flush_rows rows are converted or the oldest is flush_s old. (A queue with a put and a
get per row woke it for every row, thousands of times a second; converting a whole 5,000-row batch
at commit time held the GIL for 9 ms at once: either way the request path waited.)

Nothing answered goes unlogged (rows logged = rows answered):
- a row that does not convert (e.g. text that is not valid Unicode) is mended field by field and
  written with the others, never failing the rows beside it;
- a failed write is retried with the same rows (Delta commits are atomic), then the rows go to a
  dead-letter file (lakeray.serve.deadletter) that a later flush replays;
- rows that do not fit the buffer go straight to a dead-letter file too.
`dropped` counts only rows that even the dead-letter folder refused (its disk full)."""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa

from lakeray.monitor.inference_log import CHUNK_ROWS, append_rows, append_table, table_of
from lakeray.serve.deadletter import DeadLetter, default_folder
from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)


class InferenceLogger:
    def __init__(self, path: str, spec: PipelineSpec, flush_rows: int = 500, flush_s: float = 2.0,
                 capacity: int = 200_000, dead_letter: str | None = None, attempts: int = 5, replay_s: float = 60.0,
                 chunk_rows: int = CHUNK_ROWS):
        self.path, self.spec, self.flush_rows, self.flush_s = path, spec, flush_rows, flush_s
        self.chunk_rows = max(1, min(int(chunk_rows), int(flush_rows)))
        self.attempts, self.replay_s = max(1, int(attempts)), float(replay_s)
        self.dead_letter = DeadLetter(dead_letter or default_folder(path, spec.name))
        self.capacity = int(capacity)
        self._pending: list[dict] = []              # logged, not converted yet
        self._tables: list[pa.Table] = []           # converted, not written yet (the writer thread's)
        self._converted: list[dict] = []            # their rows (dead-lettered if the write fails)
        self._due: float | None = None              # when the oldest row not yet written must be written
        self._wake = threading.Event()              # a chunk is waiting, or the logger is closing
        self.dropped = self.written = self.dead_lettered = self.replayed = 0
        self._lock = threading.Lock()
        self._next_replay = 0.0                     # replay what an earlier run left, first thing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, rows: list[dict]) -> None:
        with self._lock:
            room = self.capacity - len(self._pending)
            overflow = rows[max(room, 0):]
            self._pending += rows[:max(room, 0)]
            if self._due is None and self._pending:
                self._due = time.monotonic() + self.flush_s
            full = len(self._pending) >= self.chunk_rows
        if full:
            self._wake.set()
        if overflow:
            self._keep(overflow, f"the inference-log buffer is full ({self.capacity} rows waiting)")

    @property
    def pending(self) -> int:
        return len(self._pending)

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

    def _take(self, limit: int, urgent: bool) -> list[dict]:
        """Up to `limit` pending rows: `limit` of them once that many wait, or what there is when `urgent`."""
        with self._lock:
            if limit < 1 or not self._pending or (len(self._pending) < limit and not urgent):
                return []
            rows, self._pending = self._pending[:limit], self._pending[limit:]
            return rows

    def _convert(self, rows: list[dict]) -> None:
        table, good, bad = table_of(self.spec, rows)
        if bad:
            self._keep(bad, "row(s) that do not fit the inference-log schema even mended")
        if table is not None:
            self._tables.append(table)
            self._converted += good

    def _write(self) -> None:
        """One commit of the converted rows; retried, then dead-lettered."""
        table, rows = pa.concat_tables(self._tables), self._converted
        self._tables, self._converted = [], []
        with self._lock:
            self._due = time.monotonic() + self.flush_s if self._pending else None
        for attempt in range(self.attempts):
            try:
                append_table(self.path, table)
                with self._lock:
                    self.written += table.num_rows
                self._replay()
                return
            except Exception as exc:  # storage hiccup: retry the same rows (Delta commits are atomic)
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("inference log write of %d row(s) failed (attempt %d of %d): %s", len(rows), attempt + 1,
                            self.attempts, reason)
                if attempt + 1 < self.attempts and not self._stop.is_set():
                    time.sleep(min(2 ** attempt * 0.2, 5))
        self._keep(rows, f"writing {self.path} failed {self.attempts} time(s): {reason}")

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
        """Convert each chunk as it fills; commit flush_rows converted rows at once, or all of them
        when the oldest is due or the logger closes. Sleep otherwise (never spin: a busy loop here
        holds the GIL the request path needs); replay dead letters when idle."""
        while True:
            stopping = self._stop.is_set()
            urgent = stopping or (self._due is not None and time.monotonic() >= self._due)
            rows = self._take(min(self.chunk_rows, self.flush_rows - len(self._converted)), urgent)
            if rows:
                self._convert(rows)
            if self._converted and (len(self._converted) >= self.flush_rows or (urgent and not self._pending)):
                self._write()
            elif rows:
                continue                            # the next chunk (predictions_table offered the GIL after this one)
            elif stopping and not self._pending:
                return
            elif not urgent:
                due = self._due
                if due is None:
                    self._replay()
                self._wake.wait(1.0 if due is None else max(0.0, due - time.monotonic()))
                self._wake.clear()
            else:                                   # due, and nothing left to write: every row was kept aside
                with self._lock:
                    self._due = None if not self._pending else self._due

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
