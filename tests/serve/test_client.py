"""lakeray.serve.client.Client against the app as `lakeray serve` starts it (HAProxy ingress,
direct-ingress replicas) on a real local Ray, with the tiny champion: predictions equal the bundle's,
keep-alive, 422 raised at once, 503 retried with backoff until answered, a killed replica costs no
answers (through the Client, and through a plain client that never retries), and HAProxy listens on
loopback only."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakeray.serve.client import Client, ServeError, call, request_rows
from lakeray.serve.ingress import start_serve, wait_routed
from tests.support import SlowBundleLoader, free_port, synthetic_snapshot, write_spec


@pytest.fixture(scope="module")
def endpoint(tiny_champion, churn_spec, ray_local, tmp_path_factory):
    from ray import serve

    from lakeray.config import load_settings
    from lakeray.serve.app import build_app
    from lakeray.serve.model import BundleLoader

    port = free_port()
    settings = load_settings(overrides={"paths": dict(tiny_champion["settings"]["paths"]), "serve": {
        "host": "127.0.0.1", "port": port, "reload_s": 0, "replica_cpus": 0.25, "num_replicas": 2,
        "log": {"flush_rows": 500, "flush_s": 0.5}}})
    start_serve(settings["serve"])
    spec_file = str(write_spec(churn_spec, tmp_path_factory.mktemp("client-spec")))
    serve.run(build_app(spec_file, settings=settings, loader=BundleLoader(tiny_champion["bundle_dir"])),
              name="churn", route_prefix="/")
    wait_routed(f"http://127.0.0.1:{port}/healthz")
    yield {"url": f"http://127.0.0.1:{port}", "settings": settings, "spec_file": spec_file, "port": port}
    serve.shutdown()


def _frame(spec, rows: int) -> pd.DataFrame:
    frame = synthetic_snapshot(spec, rows=rows * 3, seed=5).frames["train"][list(spec.features)].head(rows)
    frame = frame.reset_index(drop=True)
    assert len(frame) == rows
    numeric = [c for c, kind in spec.features.items() if kind == "numeric"]
    categorical = [c for c, kind in spec.features.items() if kind != "numeric"]
    frame = frame.astype({c: "object" for c in categorical})
    frame.loc[1, numeric[0]] = np.nan                  # every kind of missing value a frame holds
    frame.loc[2, categorical[0]] = None
    frame.loc[3, categorical[0]] = pd.NA
    frame.loc[4, numeric[-1]] = np.nan
    return frame.set_axis(pd.RangeIndex(100, 100 + len(frame)))


def test_client_predictions_equal_the_bundle_in_order_over_keep_alive(endpoint, tiny_champion, churn_spec):
    frame = _frame(churn_spec, 120)
    expected = tiny_champion["bundle"].predict_rows(request_rows(frame, list(churn_spec.features)))
    with Client(endpoint["url"], connections=4) as client:
        preds = client.predict_frame(frame, list(churn_spec.features), batch_size=25)      # 5 chunks, 4 threads
        assert list(preds.index) == list(frame.index)
        np.testing.assert_allclose(preds["prediction"].to_numpy(), expected, rtol=1e-6)
        batch = client.predict_batch(request_rows(frame.head(7), list(churn_spec.features)))
        assert [p["prediction"] for p in batch] == pytest.approx(list(expected[:7]), rel=1e-6)
        assert client.health()["status"] == "ok"

    with Client(endpoint["url"]) as one:
        rows = request_rows(frame.head(30), list(churn_spec.features))
        answers = [one.predict(row) for row in rows]
        assert [a["prediction"] for a in answers] == pytest.approx(list(expected[:30]), rel=1e-6)
        opened = one._pool.connection_from_url(endpoint["url"]).num_connections
        assert opened == 1, f"30 sequential requests opened {opened} connections (keep-alive)"
        assert one.retried == 0


def test_client_raises_a_422_naming_the_field_at_once(endpoint, churn_spec):
    numeric = next(c for c, kind in churn_spec.features.items() if kind == "numeric")
    row = {**{c: None for c in churn_spec.features}, numeric: "twelve"}
    with Client(endpoint["url"], retries=5) as client:
        with pytest.raises(ServeError) as caught:
            client.predict(row)
        too_many = [{c: None for c in churn_spec.features}] * (int(endpoint["settings"]["serve"]["max_batch_rows"]) + 1)
        with pytest.raises(ServeError) as batch:
            client.predict_batch(too_many)
    assert caught.value.status == 422 and caught.value.attempts == 1 and client.retried == 0
    assert numeric in str(caught.value.detail)
    assert batch.value.status in (413, 422) and batch.value.attempts == 1


def test_a_422_for_every_row_of_a_batch_keeps_its_message_short(endpoint, churn_spec):
    """A frame sent with two columns the spec does not declare: 2 errors per row, 400 in all; the
    message shows five (it was 100 KB for a 500-row batch), `.detail` keeps every one."""
    rows = [{**{c: None for c in churn_spec.features}, "row_id": i, "label": "x"} for i in range(200)]
    with Client(endpoint["url"]) as client, pytest.raises(ServeError) as caught:
        client.predict_batch(rows)
    assert caught.value.status == 422 and len(caught.value.detail) == 400
    message = str(caught.value)
    assert "and 395 more error(s) (.detail has all)" in message and len(message) < 2000
    assert "'loc': ['body', 'rows', 0, 'row_id']" in message


def test_overload_gets_503_and_the_client_retries_until_answered(endpoint, tiny_champion, churn_spec):
    """A replica that takes 0.5 s per prediction, max_ongoing_requests 1, max_queued_requests 1:
    of 12 simultaneous raw requests two are taken (one running, one queued) and the others refused
    with 503 at once (not after waiting for the queue); through the Client all 12 are answered."""
    from ray import serve

    from lakeray.serve.app import build_app

    settings = endpoint["settings"]
    conf = {**settings["serve"], "max_ongoing_requests": 1, "max_queued_requests": 1, "num_replicas": 1}
    app = build_app(endpoint["spec_file"], overrides={"paths": dict(settings["paths"]), "serve": conf},
                    loader=SlowBundleLoader(tiny_champion["bundle_dir"], 0.5))
    serve.run(app, name="slow", route_prefix="/slow")
    url = f"{endpoint['url']}/slow"
    wait_routed(f"{url}/healthz")
    row = {c: None for c in churn_spec.features}
    try:
        assert call(f"{url}/predict", row)[0] == 200
        barrier = threading.Barrier(12)

        def raw(_):
            barrier.wait()
            began = time.perf_counter()
            return call(f"{url}/predict", row)[0], time.perf_counter() - began

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(raw, range(12)))
        statuses = [status for status, _ in answers]
        assert set(statuses) == {200, 503} and 1 <= statuses.count(200) <= 3, statuses   # never a 500, never all queued
        assert max(t for status, t in answers if status == 503) < 0.4, answers           # refused at once

        client = Client(url, retries=20, backoff_s=0.1, max_backoff_s=1.0, connections=12)
        barrier = threading.Barrier(12)

        def polite(_):
            barrier.wait()
            return client.predict(row)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(polite, range(12)))
        assert len(answers) == 12 and all(0 <= a["prediction"] <= 1 for a in answers)
        assert client.retried >= 3           # the same overload, answered after backing off
        client.close()
    finally:
        serve.delete("slow")


def _kill_a_replica_under(threads: list) -> None:
    """Start the load threads, kill one of the app's two replicas 3 s in (Serve starts another), wait."""
    import ray

    for t in threads:
        t.start()
    time.sleep(3)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::churn#")]
    assert len(replicas) == 2, replicas
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    for t in threads:
        t.join()


def test_a_killed_replica_costs_no_answers(endpoint, churn_spec):
    """Load from 6 threads through the Client; one of the two replicas is killed mid-way (Serve starts
    another). Every request is answered 200: HAProxy retries the dead replica's requests on the
    other one (serve.retry_on), and the Client resends what the ingress dropped."""

    rows = request_rows(_frame(churn_spec, 50), list(churn_spec.features))
    stop = time.monotonic() + 8
    answered, failures = [], []
    client = Client(endpoint["url"], connections=6)

    def load():
        i = 0
        while time.monotonic() < stop:
            try:
                answered.append(client.predict(rows[i % len(rows)]))
            except Exception as exc:   # noqa: BLE001 - every failure is counted, whatever it is
                failures.append(repr(exc))
            i += 1

    _kill_a_replica_under([threading.Thread(target=load) for _ in range(6)])
    client.close()
    assert not failures, failures[:5]
    assert len(answered) > 100


def _haproxy_replicas_up(app: str) -> int:
    """Replicas HAProxy's stats listener (127.0.0.1:8404) reports UP in the app's backend."""
    import csv
    import io
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:8404/stats;csv", timeout=5) as answer:
        rows = csv.DictReader(io.StringIO(answer.read().decode().lstrip("# ")))
        return sum(1 for r in rows if r["pxname"] == f"http-{app}" and r["svname"].startswith("SERVE_REPLICA")
                   and r["status"] == "UP")


def test_a_killed_replica_costs_a_plain_client_no_answers(endpoint, churn_spec):
    """Without lakeray's Client: 32 threads on keep-alive http.client connections that never retry,
    400 requests/s in all, one of the two replicas killed. HAProxy replays the dead replica's requests
    on the other one (test_haproxy_retry.py shows why it can: the launcher's buffered requests). Every
    request gets a status line and none a 5xx; the one loss allowed is a response whose headers left
    the replica before it died (the Client resends it)."""
    import http.client
    import json

    deadline = time.monotonic() + 60
    while _haproxy_replicas_up("churn") < 2:          # the replica the test above killed is replaced
        assert time.monotonic() < deadline, "Serve did not bring back a second replica"
        time.sleep(0.5)
    rows = request_rows(_frame(churn_spec, 20), list(churn_spec.features))
    bodies = [json.dumps(row).encode() for row in rows]
    began = time.monotonic()
    stop, clients, interval = began + 6, 32, 32 / 400                # 400 requests/s in all
    outcomes: list = []

    def load(k):
        conn = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=30)
        i, next_at = k, began + k * interval / clients
        while next_at < stop:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            try:
                conn.request("POST", "/predict", bodies[i % len(bodies)], {"Content-Type": "application/json"})
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(f"no answer: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=30)
                continue
            try:
                response.read()
                outcomes.append(response.status)
            except (OSError, http.client.HTTPException):
                outcomes.append("cut after the headers")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=30)
            i += 1
        conn.close()

    _kill_a_replica_under([threading.Thread(target=load, args=(k,)) for k in range(clients)])
    lost = [o for o in outcomes if o != 200 and o != "cut after the headers"]
    assert not lost, lost[:5]
    assert outcomes.count(200) > 200 and outcomes.count("cut after the headers") <= 1, outcomes.count(200)


def test_haproxy_and_the_replicas_listen_on_loopback_only(endpoint):
    import psutil

    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid]
    haproxy = {c.pid for c in listening if c.laddr.port == endpoint["port"]}
    assert haproxy, "nothing listens on the serve port"
    names = {psutil.Process(pid).name() for pid in haproxy}
    assert names == {"haproxy"}, names
    wide = [(c.laddr, psutil.Process(c.pid).name()) for c in listening
            if c.pid in haproxy and c.laddr.ip not in ("127.0.0.1", "::1")]
    assert not wide, f"HAProxy listens beyond loopback: {wide}"
    ports = {c.laddr.port for c in listening if c.pid in haproxy}
    assert {8404, 9101} <= ports         # the stats and Prometheus listeners exist, on loopback
    replica_ports = [c for c in listening if 30000 <= c.laddr.port < 31000]
    assert replica_ports and all(c.laddr.ip == "127.0.0.1" for c in replica_ports), replica_ports


MISSING = st.sampled_from([None, np.nan, pd.NA, float("nan")])
ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)     # unseen, odd unicode


@hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), rows=st.integers(1, 40), batch_size=st.sampled_from([1, 7, 500]))
def test_client_frames_with_every_missing_kind_and_odd_text_equal_the_bundle(endpoint, tiny_champion, churn_spec,
                                                                              data, rows, batch_size):
    """Random frames: any cell missing as None, NaN or pd.NA, categoricals holding odd unicode the
    model never saw: the Client's predictions equal the bundle's on the same rows, in order."""
    features = list(churn_spec.features)
    frame = _frame(churn_spec, rows).astype(object)         # any value in any cell
    categorical = [c for c, kind in churn_spec.features.items() if kind != "numeric"]
    for _ in range(data.draw(st.integers(0, rows * 2))):
        column = data.draw(st.sampled_from(features))
        value = data.draw(MISSING | ODD_TEXT) if column in categorical else data.draw(MISSING)
        frame.iat[data.draw(st.integers(0, rows - 1)), frame.columns.get_loc(column)] = value
    expected = tiny_champion["bundle"].predict_rows(request_rows(frame, features))
    with Client(endpoint["url"], connections=3) as client:
        got = client.predict_frame(frame, features, batch_size=batch_size, clients=3)
    assert list(got.index) == list(frame.index)
    np.testing.assert_allclose(got["prediction"].to_numpy(), expected, rtol=1e-6)


def test_a_non_finite_number_is_a_422_naming_the_field(endpoint, churn_spec):
    numeric = next(c for c, kind in churn_spec.features.items() if kind == "numeric")
    with Client(endpoint["url"]) as client, pytest.raises(ServeError) as caught:
        client.predict({**{c: None for c in churn_spec.features}, numeric: float("inf")})
    assert caught.value.status == 422 and numeric in str(caught.value.detail)
