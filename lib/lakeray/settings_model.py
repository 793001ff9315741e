"""The schema of lakeray's settings (conf/base/lakeray.yaml + conf/<env>/lakeray.yaml + --conf).

Every key lakeray reads is declared here with its type. lakeray.config.load_settings validates the
merged settings against it: a value is coerced to its declared type ("8000" -> 8000 for an int, so
callers need no casts) or reported, and a key that is not declared is refused; each problem names
the key and the file (or --conf) it came from, all problems in one message.

Adding a setting: one line in its section's class below, `name: type = None`, and its default in
conf/base/lakeray.yaml (the one place defaults live). `= None` means "may be absent": the field is
checked only when the merged settings have it, and a key that is absent stays absent, so callers
keep their `.get(key, default)`. A value that may be null is typed `X | None`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Number = Union[int, float]       # a number kept as written (1 stays 1, "0.5" becomes 0.5)
NonNegFloat = Annotated[Number, Field(ge=0)]
PositiveFloat = Annotated[Number, Field(gt=0)]
Fraction = Annotated[Number, Field(ge=0, le=1)]


def _spark_value(value: Any) -> Any:
    """Spark conf values are strings; YAML true/4 become "true"/"4" (Spark's spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


SparkValue = Annotated[str, BeforeValidator(_spark_value)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Paths(Section):
    landing: str = None
    lakehouse: str = None
    checkpoints: str = None
    ray_storage: str = None
    models: str = None
    mlflow: str = None
    logs: str = None


class Spark(Section):
    app_name: str = None
    master: str | None = None
    conf: dict[str, SparkValue] = None


class Jvm(Section):
    mode: Literal["local_dir", "packages", "none"] = None
    jars_dir: str = None
    pom: str = None


class Ingest(Section):
    jdbc_fetchsize: PositiveInt = None
    parallel_sources: PositiveInt = None


class Prepare(Section):
    max_quarantine_rate: Fraction = None
    parallel_sources: PositiveInt = None
    min_split_rows: PositiveInt = None
    incremental: bool = None
    incremental_min_bronze_mb: NonNegFloat = None
    incremental_max_change: Fraction = None
    rewrite_rows_per_file: NonNegFloat = None
    deletion_vectors: bool = None
    gold_from_staged_max_mb: NonNegFloat = None
    incremental_adaptive: bool = None


class Mlflow(Section):
    tracking_uri: str = None
    experiment_prefix: str = None
    registered_model_prefix: str = None


class Ray(Section):
    address: str = None
    num_cpus: NonNegInt | None = None
    num_gpus: NonNegInt | None = None
    log_to_driver: bool = None


class Bounds(Section):
    low: Number = None
    high: Number = None
    values: list[Any] = None


class Distribution(Bounds):
    type: Literal["loguniform", "uniform", "int", "categorical"] = None
    by_rows: dict[NonNegInt, Bounds] = None      # training rows -> bounds from that many rows up


class Features(Section):
    max_categories: PositiveInt = None
    onehot_max_categories: PositiveInt = None


class Family(Section):
    rounds: PositiveInt = None
    num_samples: PositiveInt = None
    share: Annotated[float, Field(gt=0, lt=1)] = None
    early_stopping_rounds: PositiveInt = None
    encoding: Literal["native", "onehot"] = None
    standardize: bool = None
    fixed: dict[str, Any] = None                 # XGBoost parameters, passed as they are
    space: dict[str, Distribution] = None


class TuneScheduler(Section):
    grace_period: PositiveInt = None
    reduction_factor: Annotated[Number, Field(gt=1)] = None


class TuneResources(Section):
    cpu: NonNegFloat = None
    gpu: NonNegFloat = None


class TuneSmoke(Section):
    num_samples: PositiveInt = None
    rounds_scale: PositiveFloat = None


class Tune(Section):
    num_samples: PositiveInt = None
    max_concurrent_trials: PositiveInt = None
    seed: int = None
    report_every: PositiveInt = None
    early_stopping_rounds: PositiveInt = None
    rounds_scale: PositiveFloat = None
    scheduler: TuneScheduler = None
    resources: TuneResources = None
    smoke: TuneSmoke = None
    experiment_checkpoint_s: NonNegFloat = None
    families: dict[str, Family] = None


class TrainSizing(Section):
    engine: Literal["auto", "ray_train", "ray_task"] = None
    num_workers: Union[PositiveInt, Literal["auto"]] = None       # auto: one per Ray node with CPUs
    cpus_per_worker: Union[PositiveFloat, Literal["auto"]] = None  # auto: the smallest such node's CPUs
    gpus_per_worker: NonNegFloat = None
    checkpoint_every: PositiveInt = None
    max_failures: NonNegInt = None
    health_check_interval_s: PositiveFloat | None = None        # null: Ray's default (2 s)


class Train(TrainSizing):
    smoke: TrainSizing = None


class Evaluate(Section):
    calibration_bins: Annotated[int, Field(ge=2)] = None
    threshold: Fraction = None
    dask_blocksize: Union[int, str] = None
    fairness_min_group: PositiveInt = None


class DriftAlert(Section):
    webhook_url: str = None
    timeout_s: PositiveFloat = None


class DriftRetrain(Section):
    enabled: bool = None
    smoke: bool = None


class Drift(Section):
    tests: dict[Literal["numeric", "categorical", "prediction"], list[str]] = None
    thresholds: dict[str, dict[str, Number]] = None
    effect_floor: dict[Literal["psi", "js", "ks", "wasserstein"], NonNegFloat] = None
    p_value_correction: Literal["holm", "bonferroni", "none"] = None
    sample_size: PositiveInt = None     # unused since the window is counted whole (fine bins, no sample);
    seed: int = None                    # accepted so that older overlays still load
    min_rows: NonNegInt = None
    segment_min_rows: PositiveInt = None
    min_labels: NonNegInt = None
    alert: DriftAlert = None
    retrain: DriftRetrain = None


class ServeBatch(Section):
    max_batch_size: PositiveInt = None
    wait_timeout_s: NonNegFloat = None      # unused since batches form without a timer (lakeray.serve.batcher);
                                            # accepted so that older overlays still load


class ServeLog(Section):
    flush_rows: PositiveInt = None
    flush_s: PositiveFloat = None
    attempts: PositiveInt = None
    dead_letter: str | None = None
    replay_s: PositiveFloat = None


class ServeChallenger(Section):
    mode: Literal["off", "canary", "shadow"] = None
    alias: str = None
    percent: Annotated[Number, Field(ge=0, le=100)] = None


class Serve(Section):
    host: str = None
    port: Annotated[int, Field(ge=1, le=65535)] = None
    ingress: Literal["haproxy", "proxy"] = None
    retry_on: str = None
    retries: NonNegInt = None
    drain_s: PositiveFloat = None
    num_replicas: PositiveInt = None
    autoscaling: dict[str, Any] | None = None    # Ray Serve's autoscaling_config, passed as it is
    max_ongoing_requests: PositiveInt = None
    max_queued_requests: Annotated[int, Field(ge=-1)] = None
    replica_cpus: NonNegFloat = None
    access_log: bool = None
    batch: ServeBatch = None
    max_batch_rows: PositiveInt = None
    max_body_bytes: Union[PositiveInt, Literal["auto"]] = None
    body_bytes_per_value: PositiveInt = None
    require_api_key: bool = None
    api_key_env: str = None
    log: ServeLog = None
    reload_s: NonNegFloat = None
    challenger: ServeChallenger = None


class SettingsModel(Section):
    paths: Paths = None
    spark: Spark = None
    log4j2: str | None = None
    jvm: Jvm = None
    ingest: Ingest = None
    prepare: Prepare = None
    mlflow: Mlflow = None
    ray: Ray = None
    features: Features = None
    tune: Tune = None
    train: Train = None
    evaluate: Evaluate = None
    drift: Drift = None
    serve: Serve = None
