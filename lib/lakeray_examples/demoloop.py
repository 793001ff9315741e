"""The demo's closed loop, after `lakeray demo` has made a churn champion:

  serve the champion (Ray Serve) -> send ordinary traffic (no drift) -> shift the traffic the way
  the world moved (price rise, contracts) -> the Spark drift job finds drift on exactly the
  shifted features, alerts and retrains on the billing database's new rows (ingest -> prepare ->
  tune -> train -> evaluate -> gate -> alias) -> the serving replicas pick up the new champion
  (hot swap) while a client keeps sending, with no failed request.

Every step is checked; a step that does not come out as described raises LakerayError.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.features import load_splits
from lakeray.lakehouse import Lakehouse
from lakeray.lifecycle import run_lifecycle
from lakeray.monitor.inference_log import merge_labels
from lakeray.monitor.job import run_drift_job
from lakeray.monitor.profile import PREDICTION
from lakeray.serve.client import call, request_rows, send_rows
from lakeray.spec import PipelineSpec
from lakeray_examples.datagen.bundles import bundled_data
from lakeray_examples.datagen.churn import CONTRACT_SPELLINGS, WORLDS

log = logging.getLogger(__name__)
SHIFTED = {"monthly_charges": "prices up 30%", "contract": "85% of customers on month-to-month"}


def shift_traffic(frame: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """The requests of a world that moved as churn's WORLDS["shifted"] says; only SHIFTED change."""
    world = WORLDS["shifted"]
    out = frame.copy()
    out["monthly_charges"] = (out["monthly_charges"].astype(float) * world["price_factor"]).round(2)
    out["contract"] = np.random.default_rng(seed).choice(list(CONTRACT_SPELLINGS), size=len(out), p=world["contract_p"])
    return out


def logged_rows(path: str) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path).to_pyarrow_dataset().count_rows()
    except TableNotFoundError:
        return 0


def wait_logged(path: str, at_least: int, timeout_s: float = 60) -> int:
    """Block until the inference log holds `at_least` rows (it is written in the background)."""
    deadline = time.monotonic() + timeout_s
    while (count := logged_rows(path)) < at_least:
        if time.monotonic() > deadline:
            raise LakerayError(f"demo: the inference log {path} has {count} rows after {timeout_s:.0f} s, expected {at_least}")
        time.sleep(0.5)
    return count


def serve_window(url: str, log_path: str, rows: list[dict]) -> tuple[dt.datetime, dt.datetime, list[dict]]:
    """Send `rows`, wait until they are logged; returns the window [start, end) that holds them."""
    before = logged_rows(log_path)
    start = dt.datetime.now(dt.timezone.utc)
    preds = send_rows(url, rows[:20], batch_size=1) + send_rows(url, rows[20:], batch_size=50)
    wait_logged(log_path, before + len(rows))
    return start, dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=1), preds


def window_text(start: dt.datetime, end: dt.datetime) -> str:
    return f"{int((end - start).total_seconds()) + 1}s"


class Trickle:
    """A client sending one request every `every_s` in the background, counting what comes back."""

    def __init__(self, url: str, row: dict, every_s: float = 0.2):
        self.url, self.row, self.every_s = url, row, every_s
        self.versions: dict[str, int] = {}
        self.failed: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-trickle", daemon=True)

    def _run(self):
        while not self._stop.wait(self.every_s):
            status, body = call(f"{self.url}/predict", self.row, timeout=30)
            if status == 200:
                self.versions[body["model_version"]] = self.versions.get(body["model_version"], 0) + 1
            else:
                self.failed.append((status, body))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def wait_for_version(url: str, version: str, timeout_s: float = 120) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        status, body = call(f"{url}/healthz")
        if status == 200 and body["model_version"] == version:
            return time.monotonic() - began
        time.sleep(0.5)
    raise LakerayError(f"demo: the endpoint {url} still serves another version {timeout_s:.0f} s after version {version} was promoted")


def run_closed_loop(spark, spec: PipelineSpec, pipeline_path: str, settings, gold, *, smoke: bool = False,
                    rows: int = 1500, customers: int | None = None, seed: int = 42,
                    traffic_splits: tuple[str, ...] = ("test",)) -> dict:
    """`gold`: the gold table (path, version) the champion was trained on; each traffic window is
    `rows` requests drawn (with replacement) from its `traffic_splits`. `customers`/`seed`: the
    generated churn world the lakehouse holds (bundled_data's), which the billing database moves on from."""
    from ray import serve

    from lakeray.serve.app import deploy

    settings = copy.deepcopy(settings)
    # the replica must not hold a CPU that retraining needs on a small machine; poll the alias often
    settings["serve"].update(replica_cpus=0, reload_s=2, log={"flush_rows": 500, "flush_s": 1})
    lake = Lakehouse.for_pipeline(settings, spec)
    log_path = lake.monitor("inference_log")
    features = list(spec.features)
    frames = load_splits(gold.path, gold.version, splits=traffic_splits).frames
    test = pd.concat([frames[name] for name in traffic_splits], ignore_index=True)
    url = deploy(pipeline_path, settings, name=spec.name)
    try:
        status, health = call(f"{url}/healthz")
        log.info("serving   %s champion version %s at %s (OpenAPI docs at %s/docs)", spec.name, health["model_version"], url, url)
        champion = health["model_version"]

        ordinary = test.sample(n=rows, replace=True, random_state=1).reset_index(drop=True)
        start, end, preds = serve_window(url, log_path, request_rows(ordinary, features))
        labels = {p["request_id"]: str(v).lower() for p, v in zip(preds, ordinary[spec.target], strict=True)}
        merged = merge_labels(log_path, labels)
        log.info("traffic   %d ordinary requests answered by version %s; %s labels arrived later and were recorded",
                 len(preds), champion, merged.get("num_target_rows_updated", len(labels)))
        quiet = run_drift_job(spark, spec, settings, window=window_text(start, end), now=end)
        if quiet.drifted:
            raise LakerayError(f"demo: ordinary traffic drifted on {quiet.drifted} (report {quiet.report})")
        log.info("drift     none on ordinary traffic (%d rows; realised %s %.4f); report %s", quiet.rows,
                 spec.metric.primary, (quiet.performance or {}).get("value", float("nan")), quiet.report)

        moved = shift_traffic(test.sample(n=rows, replace=True, random_state=2).reset_index(drop=True))
        log.info("shift     the world moves: %s", "; ".join(f"{k}: {v}" for k, v in SHIFTED.items()))
        start, end, preds = serve_window(url, log_path, request_rows(moved, features))
        with Trickle(url, request_rows(moved.head(1), features)[0]) as trickle:
            with bundled_data(spec, lake, size="smoke" if smoke else "default", rows=customers, seed=seed, world="shifted"):
                drifted = run_drift_job(spark, spec, settings, window=window_text(start, end), now=end)
                # the demo's decision, as `lakeray drift` with drift.retrain.enabled: retrain on fresh data
                retrain = run_lifecycle(spark, spec, settings, smoke=smoke) if drifted.any_drift else {}
            features_drifted = sorted(c for c in drifted.drifted if c != PREDICTION)
            if features_drifted != sorted(SHIFTED):
                raise LakerayError(f"demo: shifted {sorted(SHIFTED)} but drift was found on {features_drifted} "
                                   f"(report {drifted.report})")
            log.info("drift     found on exactly the shifted features: %s%s; alert raised; report %s",
                     ", ".join(features_drifted), " (and the prediction)" if PREDICTION in drifted.drifted else "",
                     drifted.report)
            promoted = retrain.get("promoted_version")
            if promoted is None:
                message = f"demo: the retrained model was not promoted ({', '.join(retrain.get('failed_checks') or ['no retrain'])})"
                if not smoke:
                    raise LakerayError(message)
                log.warning("%s -- a smoke-sized world is too small to be sure; version %s keeps serving", message, champion)
                return {"champion": champion, "drifted": features_drifted, "promoted": None, "quiet": quiet,
                        "drift": drifted, "failed_checks": retrain.get("failed_checks")}
            log.info("retrain   on the billing database's new rows: gold v%d -> champion version %s",
                     retrain["gold_version"], promoted)
            swap_s = wait_for_version(url, promoted)
            time.sleep(1)   # a few more requests on the new version
        if trickle.failed:
            raise LakerayError(f"demo: {len(trickle.failed)} request(s) failed during the hot swap: {trickle.failed[:3]}")
        after = send_rows(url, request_rows(moved.head(200), features), batch_size=20)
        versions = sorted({p["model_version"] for p in after})
        if versions != [promoted]:
            raise LakerayError(f"demo: after the swap the endpoint answered with versions {versions}, expected {promoted}")
        log.info("hot swap  the endpoint moved from version %s to %s %.1f s after promotion; a client sending "
                 "throughout had no error (answers: %s)", champion, promoted, swap_s,
                 ", ".join(f"{n} from version {v}" for v, n in sorted(trickle.versions.items())))
        return {"champion": champion, "drifted": features_drifted, "promoted": promoted, "swap_s": swap_s,
                "trickle": dict(trickle.versions), "gold_version": retrain["gold_version"], "quiet": quiet,
                "drift": drifted, "labels_merged": int(merged.get("num_target_rows_updated", 0))}
    finally:
        serve.shutdown()
