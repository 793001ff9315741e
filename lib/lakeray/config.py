"""Load conf/base plus an environment overlay into one settings mapping."""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lakeray.errors import ConfigError
from lakeray.yamlio import load_yaml

log = logging.getLogger(__name__)

CONF_FILE = "lakeray.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def project_root(start: Path | None = None) -> Path:
    """The folder holding conf/base: $LAKERAY_HOME, else the nearest parent of `start` (cwd)."""
    if os.environ.get("LAKERAY_HOME"):
        return Path(os.environ["LAKERAY_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "conf" / "base" / CONF_FILE).is_file():
            return folder
    packaged = Path(__file__).resolve().parents[2]
    if (packaged / "conf" / "base" / CONF_FILE).is_file():
        return packaged
    raise ConfigError(f"no conf/base/{CONF_FILE} found above {here}; set LAKERAY_HOME to the project folder")


def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _interpolate(value: Any, where: str, source: Path) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else k, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: setting '{where}' needs environment variable {name}, which is not set")

    return _VAR.sub(repl, value)


def _read_yaml(path: Path) -> dict:
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


class Settings(dict):
    """The merged configuration, with paths resolved against the project root."""

    @property
    def root(self) -> Path:
        return Path(self["_root"])

    @property
    def env(self) -> str:
        return self["_env"]

    def path(self, key: str) -> str:
        """A configured location as a string: local paths absolute, URIs (s3a://...) unchanged."""
        raw = self["paths"][key]
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", raw):
            return raw
        p = Path(raw)
        return str(p if p.is_absolute() else (self.root / p).resolve())


def _has(data: Any, path: tuple) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _data_path(merged: dict, loc: tuple) -> tuple:
    """The part of pydantic's error location that names keys of the settings (dropping the
    tags it adds for union branches, e.g. ('serve', 'max_body_bytes', 'int'))."""
    path, node = [], merged
    for part in loc:
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        else:
            break
    return tuple(path)


def _key(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _source(layers: list[tuple[str, dict]], path: tuple, unknown: bool) -> str:
    """Which layer a bad key came from: the last that sets it (its value won the merge); for an
    unknown key, every layer that has it."""
    for cut in range(len(path), 0, -1):
        having = [name for name, data in layers if _has(data, path[:cut])]
        if having:
            return ", ".join(having) if unknown else having[-1]
    return "settings"


def _problems(exc: ValidationError, layers: list[tuple[str, dict]], merged: dict) -> list[str]:
    found: dict[tuple, list[str]] = {}          # one line per key; a union's branches joined with "or"
    for err in exc.errors():
        path = _data_path(merged, err["loc"])
        if err["type"] == "extra_forbidden":
            found.setdefault((path, True), [])
            continue
        msg = "expected a mapping of settings" if err["type"] in ("model_type", "dict_type") else err["msg"]
        found.setdefault((path, False), []).append(msg)
    problems = []
    for (path, unknown), msgs in found.items():
        where, key = _source(layers, path, unknown), _key(path)
        if unknown:
            problems.append(f"{where}: setting '{key}' is unknown: a typo? (lakeray's settings are the keys "
                            f"of conf/base/{CONF_FILE}, declared in lakeray/settings_model.py)")
            continue
        value = merged
        for part in path:
            value = value[part]
        if any(m.startswith("Input should be a valid number") for m in msgs):    # int | float: say "number"
            msgs = [m for m in msgs if not m.startswith("Input should be a valid integer")]
        got = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
        problems.append(f"{where}: setting '{key}': {' or '.join(dict.fromkeys(msgs))}{got}")
    return problems


def validate_settings(merged: dict, layers: list[tuple[str, dict]]) -> dict:
    """The merged settings checked against lakeray.settings_model, values coerced to their
    declared types; ConfigError lists every problem with the file (or --conf) it came from."""
    from lakeray.settings_model import SettingsModel

    try:
        model = SettingsModel.model_validate(merged)
    except ValidationError as exc:
        problems = _problems(exc, layers, merged)
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid settings ({len(problems)} problem(s)):\n{lines}") from None
    return model.model_dump(exclude_unset=True)


def load_settings(env: str | None = None, root: Path | None = None, overrides: dict | None = None,
                  overrides_source: str = "--conf") -> Settings:
    """conf/base + conf/<env> + `overrides` (the command line's --conf), validated and typed.
    `overrides_source` names the overrides in error messages."""
    root = Path(root) if root else project_root()
    env = env or os.environ.get("LAKERAY_ENV", "local")
    base_file = root / "conf" / "base" / CONF_FILE
    base = _interpolate(_read_yaml(base_file), "", base_file)
    overlay_file = root / "conf" / env / CONF_FILE
    if not overlay_file.is_file():
        known = sorted(p.name for p in (root / "conf").iterdir() if p.is_dir() and p.name != "base")
        raise ConfigError(f"unknown environment '{env}': no {overlay_file} (known: {', '.join(known)})")
    overlay = _interpolate(_read_yaml(overlay_file), "", overlay_file)
    if not isinstance(overrides or {}, dict):
        raise ConfigError(f"{overrides_source}: expected a mapping of settings, got {overrides!r}")
    merged = deep_merge(deep_merge(base, overlay), overrides or {})
    layers = [(str(base_file), base), (str(overlay_file), overlay), (overrides_source, overrides or {})]
    merged = validate_settings(merged, layers)
    for key in ("landing", "lakehouse", "checkpoints"):
        if not merged.get("paths", {}).get(key):
            raise ConfigError(f"{overlay_file}: setting 'paths.{key}' is empty")
    merged["_root"] = str(root)
    merged["_env"] = env
    log.debug("settings for env %s from %s", env, root)
    return Settings(merged)
