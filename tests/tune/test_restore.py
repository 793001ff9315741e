"""A tuning job killed mid-search resumes with Tuner.restore and keeps its finished trials."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lakeray.features import load_splits
from lakeray.spec import spec_hash
from lakeray.tune.search import run_tune, saved_state_readable
from tests.support import ROOT, settings_in, synthetic_snapshot

SAMPLES = 5
CHILD = textwrap.dedent("""
    import json, sys
    from lakeray.cli import setup_logging
    from lakeray.config import load_settings
    from lakeray.features import load_splits
    from lakeray.raysession import ray_session
    from lakeray.spec import load_spec, spec_hash
    from lakeray.tune.search import run_tune
    setup_logging()
    settings = load_settings(overrides=json.loads(sys.argv[1]))
    spec = load_spec(sys.argv[2])
    snapshot = load_splits(sys.argv[3], int(sys.argv[4]))
    with ray_session(settings):
        run_tune(spec, settings, snapshot, spec_digest=spec_hash(spec), smoke=True)
""")


def test_killed_search_resumes_without_rerunning_finished_trials(churn_world, ray_local, tmp_path):
    import ray.tune

    settings = settings_in(tmp_path)
    overrides = {"paths": dict(settings["paths"]), "ray": {"num_cpus": 1},
                 "tune": {"smoke": {"num_samples": SAMPLES, "rounds_scale": 0.2}, "max_concurrent_trials": 1,
                          "experiment_checkpoint_s": 0}}
    for key in overrides["tune"]:
        settings["tune"][key] = overrides["tune"][key]
    gold = churn_world["prepared"].gold
    env = {**os.environ, "LAKERAY_CRASH_AT": "tune.trial_complete:3"}
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides), str(ROOT / "pipelines" / "churn.yaml"),
                            gold.path, str(gold.version)], env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert "crash point tune.trial_complete reached" in child.stderr
    experiments = sorted(p for p in (tmp_path / "ray_storage").iterdir() if p.is_dir())   # not the Ray token file
    assert experiments       # one Tune experiment per family searched so far

    finished_before = {}
    for experiment in experiments:
        if not saved_state_readable(str(experiment)):   # killed mid-copy: searched afresh (next test)
            continue
        state = ray.tune.ExperimentAnalysis(str(experiment))      # what the killed driver had saved
        finished_before.update({t.trial_id: (t.last_result["score"], t.last_result["time_total_s"])
                                for t in state.trials if t.status == "TERMINATED"})
    assert len(finished_before) >= 2                      # finished trials survived the kill

    spec = churn_world["spec"]
    outcome = run_tune(spec, settings, load_splits(gold.path, gold.version), spec_digest=spec_hash(spec), smoke=True)
    assert outcome.restored and {str(e) for e in experiments} <= set(outcome.experiment_paths.values())
    after = {r["trial_id"]: (r["score"], r["seconds"]) for r in outcome.leaderboard}
    assert len(after) == SAMPLES                          # not SAMPLES + re-runs
    for trial_id, (score, seconds) in finished_before.items():
        assert after[trial_id] == (score, seconds)        # kept as they were, not trained again


def test_search_whose_saved_state_a_kill_tore_is_searched_afresh(ray_local, tmp_path, churn_spec):
    """Ray copies the experiment state to storage with plain writes: a driver killed mid-copy can
    leave it empty, or a state pickle cut short. Those families are searched again; the others are
    restored as they were."""
    settings = settings_in(tmp_path)
    settings["tune"].update(smoke={"num_samples": 3, "rounds_scale": 0.05}, max_concurrent_trials=1)
    snapshot = synthetic_snapshot(churn_spec, rows=600)
    first = run_tune(churn_spec, settings, snapshot, spec_digest=spec_hash(churn_spec), smoke=True)
    assert_every_torn_state_file_is_caught(Path(first.experiment_paths["random_forest"]), tmp_path / "torn")
    torn = {"xgboost": Path(first.experiment_paths["xgboost"]), "logistic": Path(first.experiment_paths["logistic"])}
    max(torn["xgboost"].glob("experiment_state-*.json")).write_bytes(b"")
    searcher = max(torn["logistic"].glob("searcher-state-*.pkl"))
    searcher.write_bytes(searcher.read_bytes()[: searcher.stat().st_size // 2])      # non-empty, cut short
    kept = set(first.experiment_paths) - set(torn)
    assert kept and not any(saved_state_readable(str(p)) for p in torn.values())
    assert all(saved_state_readable(first.experiment_paths[f]) for f in kept)

    second = run_tune(churn_spec, settings, snapshot, spec_digest=spec_hash(churn_spec), smoke=True)
    assert second.restored and all(saved_state_readable(str(p)) for p in torn.values())
    before = {r["trial_id"]: (r["family"], r["score"]) for r in first.leaderboard}
    after = {r["trial_id"]: (r["family"], r["score"]) for r in second.leaderboard}
    assert {k: v for k, v in after.items() if v[0] in kept} == {k: v for k, v in before.items() if v[0] in kept}
    for family in torn:
        searched_again = [k for k, v in after.items() if v[0] == family]
        assert len(searched_again) == 1 and not set(searched_again) & set(before)


def assert_every_torn_state_file_is_caught(experiment: Path, scratch: Path) -> None:
    """Each file Tuner.restore loads that this search writes, emptied or cut in half in a copy of the
    experiment, makes the saved state unreadable; the untouched copy stays readable. (CI saw a kill
    cut a search_gen_state-*.json short, a file the check had not looked at.)"""
    kinds = ("experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json", "tuner.pkl")
    for kind in kinds:
        newest = max(experiment.glob(kind), default=None)
        assert newest is not None, f"no {kind} in {sorted(p.name for p in experiment.iterdir())}"
        for cut in (0, newest.stat().st_size // 2):
            copy = scratch / f"{kind.split('-')[0]}-{cut}"
            shutil.copytree(experiment, copy)
            assert saved_state_readable(str(copy))
            (copy / newest.name).write_bytes(newest.read_bytes()[:cut])
            assert not saved_state_readable(str(copy)), (kind, cut)
