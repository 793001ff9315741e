"""MLflow tracking for one pipeline: its experiment, stage runs and registered model.

The embedded default is a SQLite store under paths.mlflow (mlflow.db + artifacts/); set
mlflow.tracking_uri (LAKERAY_MLFLOW_URI) to use a real tracking server. Every run carries
the lineage tags: pipeline, stage, spec hash, code version, gold table path and version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path

from lakeray.errors import LakerayError

log = logging.getLogger(__name__)
TAG = "lakeray."
for _noisy in ("alembic", "mlflow.store.db.utils"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class RunLog:
    """One MLflow run, logged through its pipeline's client by run id: no active run and no
    process-wide tracking URI (two pipelines, or a test and a job, in one process never mix)."""

    def __init__(self, client, run):
        self.client, self.run, self.info = client, run, run.info
        self.run_id = run.info.run_id

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(str(k), str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: dict) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(str(k), float(v), now, 0) for k, v in metrics.items()])

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

    def set_tag(self, key: str, value) -> None:
        self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, path, artifact_path)

    def log_artifacts(self, folder: str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, folder, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_json(self, obj, artifact_file: str) -> None:
        self.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


@dataclasses.dataclass
class Tracking:
    client: object                 # mlflow.MlflowClient
    experiment_id: str
    pipeline: str
    model_name: str
    tracking_uri: str

    @contextlib.contextmanager
    def start_run(self, stage: str, tags: dict, run_name: str | None = None, parent_run_id: str | None = None):
        """A RunLog for the block; the run ends FINISHED, or FAILED where the block raised."""
        all_tags = {f"{TAG}pipeline": self.pipeline, f"{TAG}stage": stage, **{k: str(v) for k, v in tags.items()}}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name or stage, tags=all_tags)
        try:
            yield RunLog(self.client, run)
        except BaseException:
            self.client.set_terminated(run.info.run_id, "FAILED")
            raise
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def latest_run(self, stage: str, run_id: str | None = None):
        """The given run, or the newest finished run of `stage` for this pipeline."""
        if run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(run_id)
            except MlflowException as exc:     # a mistyped --tune-run-id / --train-run-id
                raise LakerayError(f"MLflow run {run_id!r} not found in {self.tracking_uri}: {exc.message}") from None
            if run.data.tags.get(f"{TAG}stage") != stage:
                raise LakerayError(f"MLflow run {run_id} is a '{run.data.tags.get(f'{TAG}stage')}' run, not '{stage}'")
            return run
        runs = self.client.search_runs(
            [self.experiment_id], order_by=["attributes.start_time DESC"], max_results=1,
            filter_string=f"tags.`{TAG}stage` = '{stage}' and tags.`{TAG}pipeline` = '{self.pipeline}' "
                          "and attributes.status = 'FINISHED'")
        if not runs:
            raise LakerayError(f"no finished '{stage}' run for pipeline '{self.pipeline}' in MLflow "
                               f"({self.tracking_uri}): run `lakeray {stage} --pipeline ...` first")
        return runs[0]

    def load_json(self, run_id: str, artifact: str):
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=folder,
                                                       tracking_uri=self.tracking_uri)
            return json.loads(Path(path).read_text())

    def download(self, uri: str, folder: str | Path) -> Path:
        """Artifacts of a runs:/ or models:/name/N or models:/name@alias URI into `folder`. A models:/
        URI is resolved through this pipeline's own registry client: MLflow 3.17 resolves it
        through the process-global registry URI, which another pipeline may have moved."""
        import mlflow

        if uri.startswith("models:/"):
            name, _, ref = uri[len("models:/"):].partition("/")
            if "@" in name:
                name, alias = name.split("@", 1)
                ref = self.client.get_model_version_by_alias(name, alias).version
            uri = self.client.get_model_version_download_uri(name, str(ref))
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder),
                                                        tracking_uri=self.tracking_uri))


def _tracking_uri(settings) -> tuple[str, str | None]:
    uri = (settings.get("mlflow") or {}).get("tracking_uri") or ""
    if uri:
        return uri, None
    folder = Path(settings.path("mlflow"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def _no_telemetry() -> None:
    """lakeray's package init turns MLflow's telemetry off before mlflow is imported
    (MLFLOW_DISABLE_TELEMETRY, see lakeray.TELEMETRY_OFF). Where mlflow was imported first (a
    notebook), its client already started: drop it, so that nothing more is recorded or sent."""
    try:
        from mlflow.telemetry.client import get_telemetry_client, set_telemetry_client
        from mlflow.telemetry.utils import is_telemetry_disabled
    except ImportError:       # an MLflow without telemetry
        return
    if get_telemetry_client() is not None and is_telemetry_disabled():
        set_telemetry_client()            # disabled: sets the client to None
        log.info("MLflow telemetry stopped (MLFLOW_DISABLE_TELEMETRY)")


def configure_tracking(settings, pipeline: str) -> Tracking:
    """Point MLflow at the configured store and make sure the pipeline's experiment exists."""
    import mlflow

    from lakeray.console import route_to_root

    _no_telemetry()
    route_to_root("mlflow")      # MLflow's own handler (it sets one at import) replaced by lakeray's: the log file
    uri, artifacts = _tracking_uri(settings)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)     # no process-wide URI is set
    conf = settings.get("mlflow") or {}
    name = f"{conf.get('experiment_prefix', 'lakeray-')}{pipeline}"
    try:
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, artifact_location=artifacts)
    except Exception as exc:
        raise LakerayError(f"cannot reach the MLflow tracking store {uri} (setting mlflow.tracking_uri): {exc}") from exc
    log.info("MLflow %s, experiment %s (%s)", uri, name, experiment_id)
    return Tracking(client, experiment_id, pipeline, f"{conf.get('registered_model_prefix', 'lakeray-')}{pipeline}", uri)


def lineage_tags(spec_digest: str, gold_path: str, gold_version: int) -> dict:
    from lakeray.lineage import code_version

    return {f"{TAG}spec_hash": spec_digest, f"{TAG}code_version": code_version(),
            f"{TAG}gold_path": gold_path, f"{TAG}gold_version": str(gold_version)}


