"""`lakeray reset`: remove a pipeline's tables and streaming checkpoints so a stage starts over.

  ingest    bronze/<source> and the source's checkpoint (ingest/<source>): the next ingest reads
            every landed file again (a file source never re-reads a file name it has seen)
  prepare   silver/<source>, gold/features and quarantine (rebuilt by the next prepare)
  all       both

Only paths of the pipeline's layout, below <lakehouse>/<pipeline> or <checkpoints>/<pipeline>,
are touched; a path that resolves elsewhere (a symbolic link out, a '..') is refused before
anything is removed. meta/ (run metrics, rejected files) and monitor/ are history: kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath

from lakeray.errors import LakerayError
from lakeray.lakehouse import fs
from lakeray.lakehouse.layout import Lakehouse
from lakeray.lakehouse.lock import stage_lock
from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)
RESET_STAGES = ("ingest", "prepare", "all")


@dataclasses.dataclass(frozen=True)
class Target:
    label: str    # e.g. bronze/crm
    path: str
    root: str     # the folder it must stay under


def reset_targets(lake: Lakehouse, spec: PipelineSpec, stage: str, sources: list[str] | None = None) -> list[Target]:
    if stage not in RESET_STAGES:
        raise LakerayError(f"--stage {stage!r}: expected one of {', '.join(RESET_STAGES)}")
    names = spec.selected_sources(sources, "--source")
    targets = []
    if stage in ("ingest", "all"):
        for name in names:
            targets.append(Target(f"bronze/{name}", lake.bronze(name), lake.root))
            if spec.sources[name].is_file:
                targets.append(Target(f"checkpoint ingest/{name}", lake.checkpoint(name), lake.checkpoint_root))
    if stage in ("prepare", "all"):
        targets += [Target(f"silver/{name}", lake.silver(name), lake.root) for name in names]
        targets += [Target("gold/features", lake.gold, lake.root), Target("quarantine", lake.quarantine, lake.root)]
    return targets


def _outside(target: Target) -> str | None:
    """Why `target` is not safely below its root, or None."""
    if fs.is_uri(target.path):
        inside = target.path.startswith(target.root.rstrip("/") + "/") and ".." not in target.path.split("/")
        return None if inside else f"{target.path} is not below {target.root}"
    root = os.path.realpath(target.root)
    if os.path.islink(target.path):
        return f"{target.path} is a symbolic link (to {os.path.realpath(target.path)})"
    real = os.path.realpath(target.path)
    if posixpath.commonpath([root, real]) != root or real == root:
        return f"{target.path} resolves to {real}, outside {root}"
    return None


def reset(lake: Lakehouse, spec: PipelineSpec, stage: str, sources: list[str] | None = None, *,
          dry_run: bool = False, spark=None) -> list[tuple[Target, str]]:
    """Remove (or, with dry_run, list) the stage's tables and checkpoints. Returns (target, outcome)
    with outcome 'removed', 'would remove' or 'absent'. Nothing is removed if any path is refused."""
    targets = reset_targets(lake, spec, stage, sources)
    refused = [f"{t.label}: {why}" for t in targets if (why := _outside(t))]
    if refused:
        raise LakerayError("reset refused, nothing was removed (every path must stay under the configured "
                           "lakehouse and checkpoint roots):\n  - " + "\n  - ".join(refused))
    with contextlib.ExitStack() as held:     # no run of a stage being reset may be going on meanwhile
        for held_stage in (("ingest", "prepare") if stage == "all" else (stage,)):
            if not dry_run:
                held.enter_context(stage_lock(lake.checkpoint_root, lake.pipeline, held_stage))
        return _remove(lake, targets, dry_run, spark)


def _remove(lake: Lakehouse, targets: list[Target], dry_run: bool, spark) -> list[tuple[Target, str]]:
    done = []
    for target in targets:
        if not fs.exists(target.path, spark):
            outcome = "absent"
        elif dry_run:
            outcome = "would remove"
        else:
            fs.delete(target.path, spark)
            outcome = "removed"
            log.info("reset %s: removed %s (%s)", lake.pipeline, target.label, target.path)
        done.append((target, outcome))
    return done


def run_reset(settings, spec: PipelineSpec, stage: str, sources: list[str] | None = None, *,
              dry_run: bool = False) -> list[str]:
    """reset() on the configured locations; a Spark session only where they are URIs (s3a://...).
    Returns one line per table or checkpoint: what happened to it, and where."""
    lake = Lakehouse.for_pipeline(settings, spec)
    spark = None
    if fs.is_uri(lake.root) or fs.is_uri(lake.checkpoint_root):
        from lakeray.spark import build_spark

        spark = build_spark(settings, app_name=f"lakeray-reset-{spec.name}")
    done = reset(lake, spec, stage, sources, dry_run=dry_run, spark=spark)
    lines = [f"{outcome:<12}  {target.label:<30}  {target.path}" for target, outcome in done]
    acted = sum(1 for _, outcome in done if outcome != "absent")
    verb = "would remove" if dry_run else "removed"
    lines.append(f"{spec.name}: {verb} {acted} of {len(done)} table(s)/checkpoint(s) for stage '{stage}'"
                 + (" (dry run: nothing removed)" if dry_run else ""))
    return lines
