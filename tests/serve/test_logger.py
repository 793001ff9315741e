"""The inference logger's background writer: batches by size and age, flushes on close, and
waits without spinning (a spinning writer holds the GIL and starved the request path)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from deltalake import DeltaTable

from lakeray.serve.logger import InferenceLogger

pytestmark = pytest.mark.fast


def _rows(spec, n, start=0):
    now = dt.datetime.now(dt.timezone.utc)
    return [{"request_id": f"r{start + i}", "ts": now, "model_version": "1", "train_run_id": "run", "variant": "champion",
             **{name: None for name in spec.features}, "prediction": 0.5, "latency_ms": 1.0} for i in range(n)]


def test_batches_by_size_and_age_and_flushes_on_close(churn_spec, tmp_path):
    path = str(tmp_path / "log")
    logger = InferenceLogger(path, churn_spec, flush_rows=10, flush_s=0.5)
    logger.log(_rows(churn_spec, 25))                      # two full batches at once, 5 rows left pending
    deadline = time.monotonic() + 10
    while logger.written < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logger.written == 25                            # the last 5 went out flush_s after they arrived
    assert len(DeltaTable(path).history()) == 3            # 10 + 10 + 5: three commits
    logger.log(_rows(churn_spec, 3, start=25))
    logger.close()
    ids = set(DeltaTable(path).to_pandas()["request_id"])
    assert ids == {f"r{i}" for i in range(28)} and logger.dropped == 0


def test_waiting_rows_do_not_make_the_writer_spin(churn_spec, tmp_path):
    logger = InferenceLogger(str(tmp_path / "log"), churn_spec, flush_rows=500, flush_s=30)
    logger.log(_rows(churn_spec, 1))                       # pending, not due for 30 s
    time.sleep(0.2)
    began = time.process_time()
    time.sleep(1.5)
    busy = time.process_time() - began                     # CPU of the whole process while this thread sleeps
    logger.close()
    assert busy < 0.5, f"the logger thread used {busy:.2f} s of CPU in 1.5 s of waiting"
    assert logger.written == 1                             # close() wrote the pending row


def _wait(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_row_that_does_not_convert_never_loses_the_rows_beside_it(churn_spec, tmp_path):
    """A lone surrogate made the whole flush fail 5 times and dropped every row of the batch:
    now the row is mended (U+FFFD) and written with the others; nothing is dropped."""
    path = str(tmp_path / "log")
    rows = _rows(churn_spec, 40)
    rows[7]["contract"], rows[8]["gender"] = "two\ud800year", "\udfff"
    logger = InferenceLogger(path, churn_spec, flush_rows=40, flush_s=0.2, dead_letter=str(tmp_path / "dl"))
    logger.log(rows)
    logger.close()
    logged = DeltaTable(path).to_pandas().set_index("request_id")
    assert len(logged) == 40 and logger.written == 40 and logger.dropped == 0 and logger.dead_lettered == 0
    assert logged.loc["r7", "contract"] == "two\ufffdyear" and logged.loc["r8", "gender"] == "\ufffd"
    assert len(DeltaTable(path).history()) == 1                 # still one commit for the batch


def test_rows_the_storage_refuses_go_to_dead_letters_and_a_later_flush_replays_them(churn_spec, tmp_path):
    """The table's folder cannot be created (a file stands where its parent should be): the write
    is retried, then the rows are kept in a dead-letter file, never dropped. Once the storage is
    back, the next flush writes them too: rows logged = rows answered."""
    blocker = tmp_path / "lake"
    blocker.write_text("not a folder")
    path, letters = str(blocker / "log"), tmp_path / "dl"
    logger = InferenceLogger(path, churn_spec, flush_rows=10, flush_s=0.1, dead_letter=str(letters), attempts=2,
                             replay_s=0.3)
    logger.log(_rows(churn_spec, 10))
    assert _wait(lambda: logger.dead_lettered == 10)
    assert logger.written == 0 and logger.dropped == 0 and logger.dead_letter.pending_rows() == 10
    blocker.unlink()                                             # the storage is back
    logger.log(_rows(churn_spec, 5, start=10))
    assert _wait(lambda: logger.written == 15)                   # the new rows, then the replayed ones
    logger.close()
    assert set(DeltaTable(path).to_pandas()["request_id"]) == {f"r{i}" for i in range(15)}
    assert logger.replayed == 10 and logger.dead_letter.pending_rows() == 0 and not list(letters.glob("*.jsonl"))


def test_a_full_queue_spills_to_dead_letters_instead_of_dropping(churn_spec, tmp_path):
    path = str(tmp_path / "log")
    logger = InferenceLogger(path, churn_spec, flush_rows=500, flush_s=0.1, capacity=3,
                             dead_letter=str(tmp_path / "dl"), replay_s=0.2)
    logger.log(_rows(churn_spec, 30))                            # 3 fit the queue, 27 spill
    assert logger.dead_lettered > 0 and logger.dropped == 0
    assert _wait(lambda: logger.written == 30)                   # the spilled rows are replayed
    logger.close()
    assert set(DeltaTable(path).to_pandas()["request_id"]) == {f"r{i}" for i in range(30)}


def test_dead_letters_replay_from_a_command(churn_spec, tmp_path):
    """lakeray.serve.deadletter.replay writes what a stopped replica left behind (the replay a
    command runs); a lone surrogate kept in a dead letter is mended on the way in."""
    from lakeray.serve.deadletter import DeadLetter, default_folder, replay

    path = str(tmp_path / "monitor" / "inference_log")
    folder = default_folder(path, churn_spec.name)
    assert folder == path + ".dead_letter"                       # next to the inference log
    rows = _rows(churn_spec, 6)
    rows[2]["region"] = "no\ud83drth"
    DeadLetter(folder).write(rows[:3], "test")
    DeadLetter(folder).write(rows[3:], "test")
    assert replay(path, churn_spec) == (6, 0)
    logged = DeltaTable(path).to_pandas().set_index("request_id")
    assert sorted(logged.index) == [f"r{i}" for i in range(6)] and logged.loc["r2", "region"] == "no\ufffdrth"
    assert logged.loc["r0", "ts"] == rows[0]["ts"]               # timestamps survive the round trip
    assert replay(path, churn_spec) == (0, 0)                    # nothing twice


def test_rows_are_converted_a_chunk_at_a_time_and_committed_together(churn_spec, tmp_path):
    """Chunks of chunk_rows are converted as they fill (the GIL is never held for a whole batch),
    and committed as one batch of flush_rows; the remainder when it is due."""
    path = str(tmp_path / "log")
    logger = InferenceLogger(path, churn_spec, flush_rows=12, flush_s=0.5, chunk_rows=5)
    for start in range(0, 30, 3):
        logger.log(_rows(churn_spec, 3, start=start))
    assert _wait(lambda: logger.written == 30)
    sizes = [int(h["operationMetrics"]["num_added_rows"]) for h in reversed(DeltaTable(path).history())
             if h.get("operationMetrics", {}).get("num_added_rows")]
    assert sizes == [12, 12, 6], sizes
    assert logger._tables == [] and logger._converted == [] and logger.pending == 0
    logger.close()


def test_a_due_batch_of_rows_that_all_fail_to_convert_does_not_make_the_writer_spin(churn_spec, tmp_path):
    logger = InferenceLogger(str(tmp_path / "log"), churn_spec, flush_rows=100, flush_s=0.05,
                             dead_letter=str(tmp_path / "dl"))
    logger.log([{"request_id": "no-ts", "ts": None}])            # no usable ts: kept aside, never written
    assert _wait(lambda: logger.dead_lettered == 1)
    time.sleep(0.2)
    began = time.process_time()
    time.sleep(1.0)
    busy = time.process_time() - began
    logger.close()
    assert busy < 0.4, f"the logger thread used {busy:.2f} s of CPU in 1 s with nothing to write"
    assert logger.written == 0 and logger.dropped == 0
