"""Read a pipeline spec file and validate it, reporting every problem at once."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from lakeray.errors import SpecError
from lakeray.spec.checks import cross_field_problems
from lakeray.spec.models import PipelineSpec
from lakeray.yamlio import load_yaml

log = logging.getLogger(__name__)


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not re.match(r"^[A-Za-z0-9_-]+$", str(part)):   # a key like '../x' reads as sources['../x']
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        # drop pydantic's tags for union/literal branches, e.g. ('sources', 'x', 'function-after[...]')
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the spec format)"
        problems.append(f"{_field(loc)}: {msg}")
    return problems


def parse_spec(data: object, path: str | Path = "<spec>") -> PipelineSpec:
    if not isinstance(data, dict):
        raise SpecError(path, ["(top level): expected a mapping of spec fields"])
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(path, _pydantic_problems(exc)) from None
    problems = [f"{where}: {msg}" for where, msg in cross_field_problems(spec)]
    if problems:
        raise SpecError(path, problems)
    return spec


def load_spec(path: str | Path) -> PipelineSpec:
    """Load and validate `path`; raise SpecError naming the file and every bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(path, [f"not UTF-8 text: byte {exc.start} ({exc.object[exc.start:exc.start + 1]!r}): "
                               f"{exc.reason}; save the spec as UTF-8"]) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(path, [f"not valid YAML: {exc}"]) from None
    spec = parse_spec(data, path)
    spec._file = str(path)
    log.info("pipeline spec %s: %s (%s, %d sources)", path, spec.name, spec.task, len(spec.sources))
    return spec


def spec_hash(spec: PipelineSpec) -> str:
    """A stable hash of the validated spec, recorded as lineage with every output."""
    canonical = spec.model_dump_json(exclude_defaults=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
