"""cluster/serve/serve-config.yaml is a valid `serve deploy` config for lakeray's app builder."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from lakeray.spec import load_spec

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]


def test_serve_deploy_config_is_valid_and_points_at_real_code_and_specs():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "cluster" / "serve" / "serve-config.yaml").read_text())
    ServeDeploySchema.model_validate(config)
    for app in config["applications"]:
        module, _, attr = app["import_path"].partition(":")
        assert callable(getattr(importlib.import_module(module), attr))
        spec_path = ROOT / Path(app["args"]["pipeline"]).relative_to("/app")     # the image has the repo at /app
        assert load_spec(spec_path).name == app["name"] and app["route_prefix"] == f"/{app['name']}"
        assert app["args"]["env"] == "cluster"
