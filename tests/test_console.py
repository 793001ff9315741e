"""What a command shows on the terminal and keeps in its log file, and the summary it ends with."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest

from lakeray.console import QUIET_ENGINES, log_file_path, open_run_log, reset_console, setup_console, summary
from lakeray.ingest.run import IngestResult
from lakeray.lakehouse.delta import TableVersion
from lakeray.prepare.run import Accounting, PrepareResult
from lakeray.summary import data_rows, drift_rows, ml_rows, verdict_row

pytestmark = pytest.mark.fast


@pytest.fixture
def console(monkeypatch, capsys, tmp_path):
    for name in QUIET_ENGINES:
        monkeypatch.delenv(name, raising=False)        # restored after the test
    level = logging.getLogger().level

    def start(verbose=False):
        setup_console("INFO", verbose)
        return open_run_log(tmp_path / "logs", "run", "my pipeline/v2")

    yield start
    reset_console()
    logging.getLogger().setLevel(level)


def _emit():
    logging.getLogger("lakeray.lifecycle").info("gold table  /x @ version 3")
    logging.getLogger("lakeray.lakehouse.delta").info("wrote /x/silver (version 7)")
    logging.getLogger("engine_a.runs").info("Wrote the latest run files")
    logging.getLogger("engine_c.net").warning("engine chatter")       # any warning is shown
    logging.getLogger("engine_b.store").warning("a real warning")


def test_the_terminal_tells_the_story_and_the_file_keeps_everything(console, capsys):
    path = console()
    _emit()
    terminal = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 1)[1] for line in terminal] == [
        "gold table  /x @ version 3", "WARNING engine_c.net: engine chatter", "WARNING engine_b.store: a real warning"]
    assert path.parent.name == "logs" and path.name.startswith("run-my_pipeline_v2-") and path.suffix == ".log"
    kept = path.read_text()
    for text in ("INFO lakeray.lifecycle: gold table", "INFO lakeray.lakehouse.delta: wrote /x/silver",
                 "INFO engine_a.runs: Wrote the latest", "WARNING engine_b.store: a real warning"):
        assert text in kept
    for name, value in QUIET_ENGINES.items():          # Tune's reporter, Ray Data's and MLflow's bars: off
        assert os.environ[name] == value


def test_verbose_shows_everything_with_its_source(console, capsys):
    console(verbose=True)
    _emit()
    terminal = capsys.readouterr().err
    assert "INFO lakeray.lakehouse.delta: wrote /x/silver" in terminal and "INFO engine_a.runs: Wrote" in terminal
    assert not any(name in os.environ for name in QUIET_ENGINES)


def test_an_engine_logger_with_its_own_handler_is_routed_through_ours(console, capsys):
    from lakeray.console import route_to_root

    path = console()
    engine = logging.getLogger("some_engine")
    own = logging.StreamHandler()
    engine.addHandler(own)
    engine.propagate = False
    try:
        route_to_root("some_engine")
        engine.warning("engine warning")
        engine.info("engine detail")
        assert own not in engine.handlers and engine.propagate
        assert capsys.readouterr().err.count("engine warning") == 1            # once, through ours
        assert "INFO some_engine: engine detail" in path.read_text()
    finally:
        engine.handlers.clear()


def test_a_second_setup_replaces_the_handlers_instead_of_doubling_lines(console, capsys):
    console()
    console()
    logging.getLogger("lakeray.lifecycle").info("once")
    assert capsys.readouterr().err.count("once") == 1


def test_log_file_names_are_safe_and_ordered():
    when = dt.datetime(2026, 12, 1, 13, 5, 9, 123456, tzinfo=dt.timezone.utc)
    path = log_file_path("/logs", "drift", "../../etc/churn", when)
    assert str(path) == "/logs/drift-.._.._etc_churn-20261201T130509123456Z.log"      # never out of the folder
    assert log_file_path("/logs", "demo", None, when).name == "demo-20261201T130509123456Z.log"


def test_summary_rows_name_what_was_read_written_and_promoted():
    data = {"ingest": {"crm": IngestResult("crm", "csv", 1200, 4, {})},
            "prepare": PrepareResult("p1", {"crm": Accounting("crm", 1200, 1100, 60, 40, {})}, {"crm": 4}, {},
                                     TableVersion("/lake/gold", 9), TableVersion("/lake/quarantine", 2))}
    assert data_rows(data) == [
        ("read", "crm (csv): 1,200 new row(s) -> bronze v4"),
        ("accounted", "crm: in 1200 = clean 1100 + quarantined 60 + duplicates 40 [reconciled]"),
        ("wrote", "gold /lake/gold @ v9"),
        ("wrote", "quarantine /lake/quarantine @ v2 (60 row(s) this run)")]
    assert verdict_row(5, []) == ("champion", "version 5")
    assert verdict_row(None, ["beats baseline"], 4) == ("champion", "unchanged (version 4): the candidate failed beats baseline")
    # a first run whose candidate fails: nothing serves yet, and the summary does not say "unchanged"
    assert verdict_row(None, ["beats baseline"]) == ("champion", "none yet: the candidate failed beats baseline")
    table = summary("lakeray run churn", [("read", "a"), ("champion", "version 5")])
    assert table.splitlines() == ["lakeray run churn", "-----------------", "read      a", "champion  version 5"]


def test_ml_rows_show_the_search_the_model_and_the_test_metrics(churn_spec):
    from lakeray.tune.search import TuneOutcome

    board = [{"family": "xgboost", "score": 0.84321}, {"family": "logistic", "score": 0.8}]
    ml = {"tune": {"outcome": TuneOutcome({}, board, False, 1.0), "gold_version": 3},
          "train": {"manifest": {"family": "xgboost", "rounds": 120}, "bundle_dir": "/models/b", "run_id": "r9"},
          "evaluate": {"metrics": {"candidate": {"roc_auc": 0.81}, "baseline": {"roc_auc": 0.79}}, "report": "/r.html"}}
    spec = churn_spec.model_copy(update={"metric": churn_spec.metric.model_copy(update={"primary": "roc_auc"})})
    assert dict(ml_rows(spec, ml)) == {
        "searched": "2 trial(s) on gold v3: best xgboost roc_auc 0.8432 on validation",
        "trained": "xgboost, 120 round(s) -> /models/b (MLflow run r9)",
        "evaluated": "roc_auc on test: candidate 0.8100, baseline 0.7900",
        "report": "/r.html"}


def test_a_log_folder_that_cannot_hold_the_log_is_a_config_error_naming_the_setting(tmp_path):
    from lakeray.errors import ConfigError

    with pytest.raises(ConfigError, match="paths.logs is s3a://bucket/logs: .* must be a local folder"):
        open_run_log("s3a://bucket/logs", "run", "churn")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="paths.logs: cannot write the run's log in .*a-file.*LAKERAY_LOGS"):
        open_run_log(blocker / "logs", "run", "churn")


def test_the_demo_ends_with_a_line_per_pipeline_and_one_for_the_loop():
    from lakeray.cli import demo_rows

    prepared = PrepareResult("p", {}, {}, {}, TableVersion("/g", 0), None)
    results = {"churn": {"prepare": prepared, "evaluate": {"promoted_version": "1", "report": "/r1.html"},
                         "loop": {"drifted": ["contract", "monthly_charges"], "promoted": "2", "swap_s": 1.5}},
               "telco": {"prepare": prepared}}      # a rerun whose champion stayed: no evaluate output
    assert demo_rows(results) == [
        ("churn", "gold v0; champion version 1; report /r1.html"),
        ("churn loop", "drift on contract, monthly_charges -> retrained, champion version 2, hot swap 1.5 s"),
        ("telco", "gold v0")]


def test_progress_bars_draw_on_a_terminal_only(monkeypatch):
    import io

    from lakeray.console import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    with progress(3, "ingest churn", "source") as bar:          # pytest's stderr is no terminal
        bar.update(3)
    assert bar.disable
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with progress(3, "ingest churn", "source") as bar:
        bar.update(2)
        bar.refresh()
        assert "ingest churn" in screen.getvalue() and "2/3" in screen.getvalue()


def test_the_drift_summary_shows_the_realised_performance_beside_the_estimate():
    from lakeray.monitor.job import DriftOutcome

    start = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)
    estimated = {"metric": "roc_auc", "value": 0.7811, "reference": 0.7787, "drifted": False}
    realised = {"metric": "roc_auc", "value": 0.7102, "labelled_rows": 2000, "reference": 0.7787, "decay": 0.0685,
                "max_decay": 0.05, "drifted": True}
    outcome = DriftOutcome("r1", start, start + dt.timedelta(days=1), 2301, [], realised, True, None, estimated=estimated)
    rows = dict(drift_rows(outcome))
    assert rows["estimated roc_auc"] == "0.7811 (from the scores, without labels, champion's test 0.7787)"
    # the labels recorded were measured and said (the summary showed the estimate alone, "no labels")
    assert rows["realised roc_auc"] == "0.7102 (on 2,000 labelled row(s), champion's test 0.7787; decayed by 0.0685 > 0.05)"
    assert rows["alerted"] == "yes"
    bare = dict(drift_rows(DriftOutcome("r2", start, start, 250, [], None, False, None)))
    assert "realised roc_auc" not in bare and "estimated roc_auc" not in bare and bare["drifted"] == "none"
