"""One run of a pipeline's stage at a time. A second run (an overlapping cron job, a retry while the first
still runs) stops before it reads or writes anything, naming the run that holds the stage, and the CLI
exits 75 (EX_TEMPFAIL). Before, Delta's conflict checks failed it half-way with a Java stack trace
(DELTA_CONCURRENT_TRANSACTION on ingest's streaming checkpoint, a concurrent append on silver). The lock
goes with the process that holds it, killed or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lakeray.cli import main
from lakeray.errors import DataQualityError
from lakeray.ingest import run_ingest
from lakeray.lakehouse import latest_version
from lakeray.lakehouse.lock import StageBusyError, stage_lock
from lakeray.prepare import run_prepare
from tests.ingest.test_reset import SPEC, _land
from tests.support import settings_in, write_spec

HOLD = ("import sys, time\nfrom lakeray.lakehouse.lock import stage_lock\n"
        "with stage_lock(sys.argv[1], 'tiny', sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _holder(root: str, stage: str) -> subprocess.Popen:
    """Another process holding `stage` (as a running `lakeray <stage>` does)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, root, stage], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_stage_refuses_a_second_holder_until_released(tmp_path):
    root = str(tmp_path / "checkpoints" / "tiny")
    with stage_lock(root, "tiny", "ingest"):
        with pytest.raises(StageBusyError, match=rf"another ingest run is going on \(pid {os.getpid()} on "):
            with stage_lock(root, "tiny", "ingest"):
                pass
        with stage_lock(root, "tiny", "prepare"):    # stages are held one by one
            pass
    with stage_lock(root, "tiny", "ingest"):          # released when the block ended
        pass


def test_a_killed_holder_leaves_nothing_behind(tmp_path):
    root = str(tmp_path / "checkpoints" / "tiny")
    proc = _holder(root, "ingest")
    with pytest.raises(StageBusyError, match=rf"pid {proc.pid} "):
        with stage_lock(root, "tiny", "ingest"):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with stage_lock(root, "tiny", "ingest"):
        pass


def test_ingest_prepare_and_reset_stop_before_touching_anything_while_another_run_holds_them(spark, tmp_path, caplog):
    settings = settings_in(tmp_path)
    lake = _land(settings)
    holders = [_holder(lake.checkpoint_root, stage) for stage in ("ingest", "prepare")]
    try:
        with pytest.raises(StageBusyError, match=f"pipeline 'tiny': another ingest run is going on \\(pid {holders[0].pid} "):
            run_ingest(spark, SPEC, settings)
        assert latest_version(spark, lake.bronze("crm")) is None and not os.path.exists(lake.checkpoint("crm"))
        with pytest.raises(StageBusyError, match="another prepare run is going on"):
            run_prepare(spark, SPEC, settings)
        spec_file = write_spec(SPEC, tmp_path)
        paths = [f"--conf=paths.{key}={value}" for key, value in settings["paths"].items()]
        assert main(["ingest", "--pipeline", str(spec_file), *paths]) == 75       # EX_TEMPFAIL: run again later
        assert "stopped before reading or writing anything" in caplog.text
        assert main(["reset", "--pipeline", str(spec_file), "--stage", "ingest", *paths]) == 75
    finally:
        for proc in holders:
            proc.kill()
            proc.wait(10)
    assert run_ingest(spark, SPEC, settings)["crm"].rows_added == 1      # the holder gone, the run goes on
    with pytest.raises(DataQualityError, match="split 'train' is empty"):    # it ran (one row is too few to split)
        run_prepare(spark, SPEC, settings)
