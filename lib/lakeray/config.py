"""Load conf/base plus an environment overlay into one settings mapping."""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from lakeray.yamlio import load_yaml

from lakeray.errors import ConfigError

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
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
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


def load_settings(env: str | None = None, root: Path | None = None, overrides: dict | None = None) -> Settings:
    root = Path(root) if root else project_root()
    env = env or os.environ.get("LAKERAY_ENV", "local")
    base_file = root / "conf" / "base" / CONF_FILE
    merged = _interpolate(_read_yaml(base_file), "", base_file)
    overlay_file = root / "conf" / env / CONF_FILE
    if not overlay_file.is_file():
        known = sorted(p.name for p in (root / "conf").iterdir() if p.is_dir() and p.name != "base")
        raise ConfigError(f"unknown environment '{env}': no {overlay_file} (known: {', '.join(known)})")
    merged = deep_merge(merged, _interpolate(_read_yaml(overlay_file), "", overlay_file))
    merged = deep_merge(merged, overrides or {})
    for key in ("landing", "lakehouse", "checkpoints"):
        if not merged.get("paths", {}).get(key):
            raise ConfigError(f"{overlay_file}: setting 'paths.{key}' is empty")
    merged["_root"] = str(root)
    merged["_env"] = env
    log.debug("settings for env %s from %s", env, root)
    return Settings(merged)
