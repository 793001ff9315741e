"""The inference logger's background writer: batches by size and age, flushes on close, and
waits without spinning (a spinning writer holds the GIL and starved the request path)."""

from __future__ import annotations

import datetime as dt
import time

from deltalake import DeltaTable

from lakeray.serve.logger import InferenceLogger


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
