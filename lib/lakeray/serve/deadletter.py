"""The inference log's dead letters: prediction rows that could not be written to the Delta
table yet (storage down after every retry, the writer's queue full), kept as JSON-lines files
in a local folder, by default next to the inference log (<inference_log>.dead_letter/).

A later flush replays them (InferenceLogger does it every serve.log.replay_s), and so does
`replay(...)` from a command. A file is claimed by renaming it before it is replayed, so two
replicas never write the same rows twice; a file whose rows cannot be written goes back.
JSON keeps every value as it was served (a lone surrogate as its \\uXXXX escape, NaN as NaN)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import uuid
from pathlib import Path

from lakeray.lakehouse.fs import is_uri

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"


def default_folder(log_path: str, pipeline: str) -> str:
    """<inference_log>.dead_letter when the log is on a local disk; for a log in object storage,
    a folder in the system's temp directory (set serve.log.dead_letter to keep it elsewhere)."""
    if not is_uri(log_path) or log_path.startswith("file://"):
        return log_path.removeprefix("file://").rstrip("/") + ".dead_letter"
    folder = os.path.join(tempfile.gettempdir(), "lakeray-dead-letter", pipeline)
    log.warning("the inference log is at %s: its dead letters go to the local folder %s (set serve.log.dead_letter)",
                log_path, folder)
    return folder


def _decode(row: dict) -> dict:
    if isinstance(row.get("ts"), str):
        row["ts"] = dt.datetime.fromisoformat(row["ts"])
    return row


class DeadLetter:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def write(self, rows: list[dict], reason: str) -> Path:
        """One new file for `rows` (written under a temporary name, then renamed: a replayer
        never reads half a file). Raises if the disk refuses it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
        partial = self.folder / f".{name}.partial"
        with open(partial, "w", encoding="ascii") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=str, ensure_ascii=True) + "\n")
        final = self.folder / f"{name}{SUFFIX}"
        os.replace(partial, final)
        log.error("inference log: %d row(s) kept in the dead-letter file %s (%s); a later flush replays them",
                  len(rows), final, reason[:300])
        return final

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []

    def pending_rows(self) -> int:
        return sum(sum(1 for _ in open(f, encoding="ascii")) for f in self.files())

    def replay(self, write) -> tuple[int, int]:
        """Hand each file's rows to `write(rows) -> list of rows it could not write`, oldest file
        first; a file is removed once written (its unwritable rows stay, in its place). Stops at
        the first file whose write raises (the storage is still down): that file goes back.
        Returns (rows written, rows left in dead-letter files)."""
        written = 0
        for path in self.files():
            claimed = path.with_name(f".{path.name}.replaying-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(path, claimed)            # atomic: another replica replaying too loses this race
            except FileNotFoundError:
                continue
            try:
                rows = [_decode(json.loads(line)) for line in claimed.read_text(encoding="ascii").splitlines() if line]
                left = write(rows)
            except Exception as exc:
                os.replace(claimed, path)
                log.warning("inference log: replaying %s failed, kept for later: %s", path, exc)
                break
            if left:
                with open(claimed, "w", encoding="ascii") as fh:
                    fh.writelines(json.dumps(row, default=str, ensure_ascii=True) + "\n" for row in left)
                os.replace(claimed, path)
            else:
                claimed.unlink()
            written += len(rows) - len(left)
            log.info("inference log: replayed %d row(s) from %s", len(rows) - len(left), path)
        return written, self.pending_rows()


def replay(log_path: str, spec, folder: str | None = None) -> tuple[int, int]:
    """Write the dead letters of the inference log at `log_path` now (for a command or an operator).
    Returns (rows written, rows left)."""
    from lakeray.monitor.inference_log import append_rows

    return DeadLetter(folder or default_folder(log_path, spec.name)).replay(lambda rows: append_rows(log_path, spec, rows)[1])
