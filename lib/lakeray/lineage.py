"""What every output table records about how it was made."""

from __future__ import annotations

import functools
import subprocess

import lakeray
from lakeray.spec import PipelineSpec, spec_hash


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """lakeray's version, plus the git commit when run from a checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=lakeray.__path__[0], timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{lakeray.__version__}+{sha}" if sha else lakeray.__version__


def lineage(run_id: str, spec: PipelineSpec, inputs: dict[str, int]) -> dict:
    return {"run_id": run_id, "pipeline": spec.name, "spec_hash": spec_hash(spec),
            "code_version": code_version(), "inputs": dict(inputs)}
