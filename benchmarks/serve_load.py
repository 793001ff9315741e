"""A bounded load test of the Serve app on loopback, and a replica killed in the middle of one.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_load.py --seconds 60 --rate 150

The churn champion of benchmarks/serve_throughput.py (built in a scratch folder) is served with
2 replicas on a local Ray. A paced client (--clients threads, keep-alive connections, --rate
requests/s in all, each request a /predict row) runs three times for --seconds:
  steady   no interference: every answer must be a 200;
  kill     at half time one replica actor is killed (ray.kill, no restart by hand): Serve's
           controller replaces it. Failed answers are counted against the requests that were in
           flight at the moment of the kill. The client is a plain keep-alive http.client without
           retries: what the server guarantees by itself;
  kill-client  the same with lakeray's Client (lakeray.serve.client: a request whose connection
           dropped before an answer, or answered 503, is sent again): what a caller of the client gets.
Printed per run: requests, answers per status, errors, achieved rate, p50/p99 latency.
The app is served as `lakeray serve` serves it (serve.ingress: haproxy: HAProxy retries a request
whose replica died on another one).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_load.py --ramp

--ramp: autoscaling instead (min 1, max 3 replicas of 0.5 CPU, target 0.5 ongoing requests per
replica, upscale delay 3 s, downscale delay 15 s): the rate ramps 10 -> 100 -> 400 -> 100 -> 10
requests/s (the phases below); printed per phase: errors, p50/p99 and the replicas Serve ran
(at the phase's start, its most, at its end), sampled every second from serve.status().
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from serve_throughput import ROOT, build_champion, request_body  # benchmarks/ is the script's folder

log = logging.getLogger("benchmark")


class Load:
    """`clients` threads, each on its own keep-alive connection, paced to `rate` requests/s in all."""

    def __init__(self, port: int, body: str, rate: float, clients: int, lakeray_client: bool = False):
        self.port, self.body, self.interval, self.clients = port, body.encode(), clients / rate, clients
        self.lakeray_client, self.retried = lakeray_client, 0
        self.records: list[tuple[float, float, object]] = []     # (sent, answered, status or error text)
        self.in_flight = 0
        self._lock = threading.Lock()

    def _raw_caller(self):
        """(call, close) on a plain keep-alive http.client connection, reopened after a failure; no retries."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

        def call():
            nonlocal conn
            try:
                conn.request("POST", "/predict", self.body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                return f"{type(exc).__name__}: {exc}"

        return call, lambda: conn.close()

    def _lakeray_caller(self):
        """(call, close) on lakeray's Client (resends on a dropped connection or a 503)."""
        from lakeray.serve.client import Client, ServeError

        row, client = json.loads(self.body), Client(f"http://127.0.0.1:{self.port}", connections=1, timeout=30)

        def call():
            try:
                client.predict(row)
                return 200
            except ServeError as exc:
                return exc.status or f"no answer: {exc.detail}"

        def close():
            client.close()
            with self._lock:
                self.retried += client.retried

        return call, close

    def _client(self, until: float, offset: float) -> None:
        call, close = self._lakeray_caller() if self.lakeray_client else self._raw_caller()
        next_at = time.monotonic() + offset
        while next_at < until:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            sent = time.monotonic()
            with self._lock:
                self.in_flight += 1
            outcome = call()
            with self._lock:
                self.in_flight -= 1
                self.records.append((sent, time.monotonic(), outcome))
        close()

    def run(self, seconds: float, at_half=None) -> dict:
        began = time.monotonic()
        until = began + seconds
        threads = [threading.Thread(target=self._client, args=(until, i * self.interval / self.clients))
                   for i in range(self.clients)]
        for t in threads:
            t.start()
        event = None
        if at_half:
            time.sleep(seconds / 2)
            with self._lock:
                flying = self.in_flight
            killed_at = time.monotonic()
            event = {"in_flight_at_kill": flying, "t": killed_at - began, **at_half()}
        for t in threads:
            t.join()
        return self.summary(time.monotonic() - began, event)

    def summary(self, wall: float, event: dict | None) -> dict:
        statuses: dict = {}
        for _, _, outcome in self.records:
            key = str(outcome) if isinstance(outcome, int) else outcome.split(":")[0]
            statuses[key] = statuses.get(key, 0) + 1
        latency = np.array([(b - a) * 1000 for a, b, o in self.records if o == 200])
        failed = [(a, b, o) for a, b, o in self.records if o != 200]
        return {"requests": len(self.records), "statuses": statuses, "errors": len(failed), "wall_s": wall,
                "rate": len(self.records) / wall, "p50_ms": float(np.percentile(latency, 50)) if latency.size else None,
                "p99_ms": float(np.percentile(latency, 99)) if latency.size else None, "event": event,
                "retried": self.retried,
                "failed_examples": [str(o)[:200] for _, _, o in failed[:3]]}


def kill_one_replica(app: str) -> dict:
    import ray
    from ray.util.state import list_actors

    replicas = [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
                if a.class_name.startswith("ServeReplica:") and f":{app}:" in a.class_name + ":"]
    replicas = [a for a in replicas if a.class_name.split(":")[1] == app]
    victim = replicas[0]
    ray.kill(ray.get_actor(victim.name, namespace="serve"), no_restart=True)
    return {"killed": victim.name, "replicas_before": len(replicas)}


RAMP = [(10, 15), (100, 15), (400, 30), (100, 15), (10, 30)]        # (requests/s, seconds)
AUTOSCALING = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 0.5, "upscale_delay_s": 3,
               "downscale_delay_s": 15, "metrics_interval_s": 1, "look_back_period_s": 3}


def running_replicas(app: str) -> int:
    from ray import serve

    status = serve.status().applications[app]
    return sum(d.replica_states.get("RUNNING", 0) for d in status.deployments.values())


def ramp(port: int, body: str, clients: int, app: str) -> list[dict]:
    """The RAMP phases one after the other, with the running replicas sampled every second."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.monotonic(), running_replicas(app)))
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    phases = []
    for rate, seconds in RAMP:
        began = time.monotonic()
        result = Load(port, body, rate, clients).run(seconds)
        window = [(t, n) for t, n in samples if began <= t <= began + seconds] or [(began, running_replicas(app))]
        seen = [n for _, n in window]
        changed = next((t - began for t, n in window if n != seen[0]), None)
        phases.append({"target_rate": rate, **result, "replicas_start": seen[0], "replicas_max": max(seen),
                       "replicas_end": seen[-1], "changed_after_s": changed})
    done.set()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=150, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--ramp", action="store_true", help="autoscaling under a 10 -> 400 -> 10 req/s ramp")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "lakeray", "mlflow", "alembic", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")   # keep the printed table readable
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from lakeray.config import load_settings
    from lakeray.serve.app import deploy

    with tempfile.TemporaryDirectory(prefix="lakeray-bench-load-") as tmp:
        champion = build_champion(Path(tmp))
        body = request_body(champion)
        replicas = {"autoscaling": AUTOSCALING} if args.ramp else {"num_replicas": 2}
        settings = load_settings(overrides={"paths": champion["paths"], "serve": {
            "port": args.port, "replica_cpus": 0.5, **replicas}})
        ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1",
                 logging_level="WARNING", log_to_driver=False)
        deploy(str(ROOT / "pipelines" / "churn.yaml"), settings, name="churn")
        Load(args.port, body, args.rate, args.clients).run(5)                     # warm-up, not reported
        if args.ramp:
            phases = ramp(args.port, body, max(args.clients, 32), "churn")
            serve.shutdown()
            ray.shutdown()
            print("autoscaling ramp (min 1, max 3 replicas, target 0.5 ongoing; upscale 3 s, downscale 15 s), "
                  "HAProxy ingress, loopback, 2 cores")
            print(f"{'req/s':>6} {'s':>4} {'requests':>8} {'achieved':>8} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'replicas start/max/end':>22} {'changed after':>13}")
            for p in phases:
                print(f"{p['target_rate']:>6} {p['wall_s']:>4.0f} {p['requests']:>8} {p['rate']:>8.1f} {p['errors']:>6} "
                      f"{p['p50_ms']:>7.2f} {p['p99_ms']:>7.2f} "
                      f"{p['replicas_start']:>18}/{p['replicas_max']}/{p['replicas_end']} "
                      f"{'-' if p['changed_after_s'] is None else format(p['changed_after_s'], '.0f') + ' s':>13}")
                if p["failed_examples"]:
                    print(f"        e.g. {p['failed_examples']}")
            return
        runs = {"steady": Load(args.port, body, args.rate, args.clients).run(args.seconds),
                "kill": Load(args.port, body, args.rate, args.clients).run(args.seconds, lambda: kill_one_replica("churn")),
                "kill-client": Load(args.port, body, args.rate, args.clients, lakeray_client=True).run(
                    args.seconds, lambda: kill_one_replica("churn"))}
        serve.shutdown()
        ray.shutdown()
    print(f"{args.seconds:.0f} s per run, {args.clients} keep-alive clients paced to {args.rate:.0f} req/s, "
          f"2 replicas, loopback, 2 cores")
    for name, r in runs.items():
        print(f"{name:<11} requests {r['requests']}  answers {json.dumps(r['statuses'])}  errors {r['errors']}  "
              f"rate {r['rate']:.1f}/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
              + (f"  sent again {r['retried']}" if name == "kill-client" else ""))
        if r["event"]:
            e = r["event"]
            print(f"        killed {e['killed']} at {e['t']:.1f} s with {e['in_flight_at_kill']} request(s) in flight "
                  f"(all replicas); failed answers {r['errors']} "
                  f"({'within' if r['errors'] <= e['in_flight_at_kill'] else 'MORE than'} the in-flight ones)")
        if r["failed_examples"]:
            print(f"        e.g. {r['failed_examples']}")


if __name__ == "__main__":
    main()
