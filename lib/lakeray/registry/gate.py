"""The promotion gate and the `champion` alias in the MLflow model registry.

A candidate is registered and gets `champion` only if it meets every threshold of the spec,
beats the baseline by `baseline.margin` and the current champion by `baseline.champion_margin`
on the primary metric (on the same test split). The previous champion keeps the alias
`previous-champion`, for a one-command rollback.
"""

from __future__ import annotations

import dataclasses
import logging

from lakeray.spec.models import METRICS, PipelineSpec

log = logging.getLogger(__name__)
CHAMPION, PREVIOUS = "champion", "previous-champion"


@dataclasses.dataclass(frozen=True)
class Check:
    check: str
    passed: bool
    detail: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _beats(spec: PipelineSpec, name: str, label: str, candidate: float, other: float, margin: float) -> Check:
    higher = spec.higher_is_better
    gain = candidate - other if higher else other - candidate
    metric = spec.metric.primary
    passed = gain > 0 and gain >= margin
    return Check(f"beats {name}", passed,
                 f"{metric} {candidate:.4f} vs {label} {other:.4f}: improvement {gain:+.4f}, needs > 0 and >= {margin:g}")


def gate_checks(spec: PipelineSpec, candidate: dict, baseline: dict, champion: dict | None) -> list[Check]:
    checks = []
    for metric, threshold in sorted(spec.metric.thresholds.items()):
        value = candidate[metric]
        higher = METRICS[spec.task][metric]
        passed = value >= threshold if higher else value <= threshold
        checks.append(Check(f"threshold {metric}", passed,
                            f"{metric} {value:.4f} {'>=' if higher else '<='} {threshold:g} required"))
    metric = spec.metric.primary
    checks.append(_beats(spec, "baseline", f"baseline ({spec.baseline.model})", candidate[metric], baseline[metric],
                         spec.baseline.margin))
    if champion is None:
        checks.append(Check("beats champion", True, "no current champion: the first model that passes becomes it"))
    else:
        checks.append(_beats(spec, "champion", "champion", candidate[metric], champion[metric], spec.baseline.champion_margin))
    return checks


def current_champion(client, model_name: str):
    """The ModelVersion holding the `champion` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def promote(client, model_name: str, train_run_id: str, tags: dict) -> str:
    """Register the train run's bundle as a new version and move `champion` onto it."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="lakeray champion models; alias 'champion' is served")
    previous = current_champion(client, model_name)
    version = client.create_model_version(model_name, source=f"runs:/{train_run_id}/bundle", run_id=train_run_id,
                                          tags={k: str(v) for k, v in tags.items()})
    if previous is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, previous.version)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    log.info("registered %s version %s and moved '%s' onto it (previous: %s)", model_name, version.version, CHAMPION,
             previous.version if previous else "none")
    return str(version.version)
