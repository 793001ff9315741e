"""The Serve application on a real local Ray, hit over HTTP by a real client (urllib)."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

from lakeray.features import load_splits
from lakeray.lakehouse import Lakehouse
from lakeray.models import load_bundle
from lakeray.serve.client import call as _call
from lakeray.serve.client import request_rows
from lakeray.serve.ingress import start_serve, wait_routed
from tests.support import free_port, write_spec

KEY = "test-key-123"


@pytest.fixture(scope="module")
def served(ml, easy_spec, ray_local, tmp_path_factory, monkeypatch_module):
    from ray import serve

    from lakeray.serve.app import build_app

    monkeypatch_module.setenv("LAKERAY_API_KEY", KEY)
    port = free_port()
    start_serve({**ml["settings"]["serve"], "host": "127.0.0.1", "port": port})    # as shipped: HAProxy
    overrides = {"paths": dict(ml["settings"]["paths"]),
                 "serve": {"require_api_key": True, "replica_cpus": 0.25, "reload_s": 1,
                           "log": {"flush_rows": 50, "flush_s": 0.5}}}
    spec_file = write_spec(easy_spec, tmp_path_factory.mktemp("spec"))
    serve.run(build_app(str(spec_file), overrides=overrides), name="churn", route_prefix="/")
    wait_routed(f"http://127.0.0.1:{port}/healthz")
    yield {"url": f"http://127.0.0.1:{port}", "settings": ml["settings"], "spec_file": str(spec_file), "overrides": overrides}
    serve.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _rows(ml, easy_spec, n):
    test = load_splits(ml["gold"].path, ml["gold"].version, splits=("test",)).frames["test"].head(n)
    return test, request_rows(test, list(easy_spec.features))


def test_predictions_equal_the_champion_bundle(served, ml, easy_spec):
    test, rows = _rows(ml, easy_spec, 20)
    expected = load_bundle(ml["out"]["train"]["bundle_dir"]).predict_frame(test)
    auth = {"x-api-key": KEY}
    status, one = _call(f"{served['url']}/predict", rows[0], auth)
    assert status == 200 and one["model_version"] == "1"
    assert one["prediction"] == pytest.approx(float(expected[0]), rel=1e-5)
    status, many = _call(f"{served['url']}/predict/batch", {"rows": rows}, auth)
    assert status == 200 and len(many["predictions"]) == 20
    np.testing.assert_allclose([p["prediction"] for p in many["predictions"]], expected, rtol=1e-5)
    assert len({p["request_id"] for p in many["predictions"]}) == 20


def test_bad_input_auth_and_size_are_4xx_never_500(served, easy_spec, ml):
    _, rows = _rows(ml, easy_spec, 1)
    numeric = next(n for n, k in easy_spec.features.items() if k == "numeric")
    auth = {"x-api-key": KEY}
    status, body = _call(f"{served['url']}/predict", {**rows[0], numeric: "lots"}, auth)
    assert status == 422 and numeric in json.dumps(body)
    status, body = _call(f"{served['url']}/predict", {**rows[0], "tenure_mnths": 3}, auth)
    assert status == 422 and "tenure_mnths" in json.dumps(body)
    assert _call(f"{served['url']}/predict", rows[0])[0] == 401
    assert _call(f"{served['url']}/predict", rows[0], {"x-api-key": "wrong"})[0] == 401
    from lakeray.serve.schema import max_body_bytes

    limit = max_body_bytes(easy_spec, ml["settings"]["serve"])
    status, body = _call(f"{served['url']}/predict/batch", b"x" * (limit + 1), auth)
    assert status == 413 and "exceeds serve.max_body_bytes" in body["detail"]
    assert _call(f"{served['url']}/predict/batch", {"rows": []}, auth)[0] == 422
    status, health = _call(f"{served['url']}/healthz")                # open, no key needed
    assert status == 200 and health["model_version"] == "1"
    status, docs = _call(f"{served['url']}/openapi.json")
    assert status == 200 and numeric in json.dumps(docs["components"]["schemas"])


def test_every_prediction_is_logged_to_delta(served, ml, easy_spec):
    from deltalake import DeltaTable

    _, rows = _rows(ml, easy_spec, 5)
    status, body = _call(f"{served['url']}/predict/batch", {"rows": rows}, {"x-api-key": KEY})
    assert status == 200
    ids = {p["request_id"] for p in body["predictions"]}
    path = Lakehouse.for_pipeline(served["settings"], easy_spec).monitor("inference_log")
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            logged = DeltaTable(path).to_pandas()
            if ids <= set(logged["request_id"]):
                break
        except Exception:
            pass
        time.sleep(0.5)
    else:
        pytest.fail("predictions not in the inference log after 30 s")
    mine = logged[logged["request_id"].isin(ids)]
    assert len(mine) == 5 and set(mine["model_version"]) == {"1"} and mine["label"].isna().all()
    assert (mine["latency_ms"] > 0).all()
    got = dict(zip(mine["request_id"], mine["prediction"], strict=True))
    assert all(got[p["request_id"]] == pytest.approx(p["prediction"]) for p in body["predictions"])


def test_hot_swap_when_the_champion_moves_under_load(served, ml, easy_spec):
    """Promote a new version while a client keeps sending: every request succeeds, and the
    replica switches to the new version within the reload interval."""
    import threading

    from lakeray.registry.gate import promote

    _, rows = _rows(ml, easy_spec, 1)
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            sent = time.monotonic()
            status, body = _call(f"{served['url']}/predict", rows[0], {"x-api-key": KEY})
            results.append((sent, time.monotonic(), status, body))

    workers = [threading.Thread(target=client) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(2)
    tracking = ml["tracking"]
    train_run = tracking.client.get_run(ml["out"]["train"]["run_id"])
    new_version = promote(tracking.client, tracking.model_name, train_run.info.run_id,
                          {"model_sha256": train_run.data.tags["lakeray.model_sha256"]})
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(r[3].get("model_version") == new_version for r in results[-20:]):
            time.sleep(0.5)
        time.sleep(1)
    finally:
        stop.set()
        for w in workers:
            w.join()
        # put the registry back as the other tests of the session expect it: version 1 is champion
        tracking.client.set_registered_model_alias(tracking.model_name, "champion", "1")
        tracking.client.delete_registered_model_alias(tracking.model_name, "previous-champion")
        tracking.client.delete_model_version(tracking.model_name, new_version)
    statuses = [status for _, _, status, _ in results]
    assert statuses and set(statuses) == {200}                       # zero failed requests across the swap
    results.sort(key=lambda r: r[0])                                 # in the order they were sent
    versions = [body["model_version"] for _, _, _, body in results]
    assert versions[0] == "1" and versions[-1] == new_version
    # one replica, no flapping back: once an answer came from the new version, every request sent
    # after it was answered by the new version too (requests already in flight may still finish on
    # the old one, and four clients append in completion order, so compare send and answer times)
    first_new = min(done for _, done, _, body in results if body["model_version"] == new_version)
    assert {body["model_version"] for sent, _, _, body in results if sent > first_new} == {new_version}


def _logged(settings, spec, ids, variant, at_least):
    from deltalake import DeltaTable

    path = Lakehouse.for_pipeline(settings, spec).monitor("inference_log")
    deadline = time.time() + 30
    while time.time() < deadline:
        frame = DeltaTable(path).to_pandas()
        mine = frame[frame["request_id"].isin(ids) & (frame["variant"] == variant)]
        if len(mine) >= at_least:
            return mine
        time.sleep(0.5)
    pytest.fail(f"fewer than {at_least} {variant} rows logged after 30 s")


def test_canary_and_shadow_challengers(served, ml, easy_spec):
    from ray import serve

    from lakeray.serve.app import build_app

    tracking = ml["tracking"]
    run_id = ml["out"]["train"]["run_id"]
    sha = tracking.client.get_run(run_id).data.tags["lakeray.model_sha256"]
    challenger = tracking.client.create_model_version(tracking.model_name, f"runs:/{run_id}/bundle", run_id=run_id,
                                                      tags={"model_sha256": sha})
    tracking.client.set_registered_model_alias(tracking.model_name, "challenger", challenger.version)
    version = str(challenger.version)
    _, rows = _rows(ml, easy_spec, 1)
    auth = {"x-api-key": KEY}
    try:
        for mode, percent in (("canary", 50), ("shadow", 0)):
            overrides = {**served["overrides"], "serve": {**served["overrides"]["serve"], "reload_s": 0,
                                                          "challenger": {"mode": mode, "alias": "challenger", "percent": percent}}}
            serve.run(build_app(served["spec_file"], overrides=overrides), name=mode, route_prefix=f"/{mode}")
            wait_routed(f"{served['url']}/{mode}/healthz")
        canary = [_call(f"{served['url']}/canary/predict", rows[0], auth)[1] for _ in range(120)]
        served_by = [body["model_version"] for body in canary]
        assert set(served_by) == {"1", version}
        assert 0.25 <= served_by.count(version) / len(served_by) <= 0.75          # 50% of requests, binomial
        _logged(served["settings"], easy_spec, {b["request_id"] for b in canary}, "canary", served_by.count(version))
        shadow = [_call(f"{served['url']}/shadow/predict", rows[0], auth)[1] for _ in range(10)]
        assert {body["model_version"] for body in shadow} == {"1"}                # the challenger is never returned
        logged = _logged(served["settings"], easy_spec, {b["request_id"] for b in shadow}, "shadow", 10)
        assert set(logged["model_version"]) == {version}
        assert logged["prediction"].to_numpy() == pytest.approx([b["prediction"] for b in shadow][0], rel=1e-5)
    finally:
        for mode in ("canary", "shadow"):
            serve.delete(mode)
        tracking.client.delete_registered_model_alias(tracking.model_name, "challenger")
        tracking.client.delete_model_version(tracking.model_name, version)


def test_serve_exports_prometheus_metrics(served, ml, easy_spec):
    """Serve's own request metrics, scraped from the node's Prometheus endpoint: behind HAProxy the
    replica counts the requests it answered per route (the Python proxy's counter when
    serve.ingress is proxy)."""
    import ray

    _, rows = _rows(ml, easy_spec, 1)
    for _ in range(5):
        assert _call(f"{served['url']}/predict", rows[0], {"x-api-key": KEY})[0] == 200
    port = ray._private.worker.global_worker.node.metrics_export_port
    counters = ("ray_serve_deployment_request_counter", "ray_serve_num_http_requests")
    deadline, requests = time.time() + 60, []
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        requests = [line for line in text.splitlines()
                    if line.startswith(counters) and 'route="/predict"' in line and "churn-predictor" in line]
        if requests and max(float(line.rsplit(" ", 1)[1]) for line in requests) >= 5:
            break
        time.sleep(2)
    assert requests and max(float(line.rsplit(" ", 1)[1]) for line in requests) >= 5, requests
