"""Names and paths from a spec that become folders cannot climb out of their roots: the spec is
refused (every problem at once, with file and field), and the layout refuses them again when a
path is built from a spec that skipped validation."""

from __future__ import annotations

import copy
import json
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeray.config import load_settings
from lakeray.errors import SpecError
from lakeray.lakehouse import Lakehouse
from lakeray.spec import load_spec
from lakeray.spec.names import name_problem, relative_path_problem

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]


def _churn():
    from lakeray.yamlio import load_yaml

    return load_yaml((ROOT / "pipelines" / "churn.yaml").read_text())


def test_traversal_in_source_names_and_paths_is_refused_all_at_once(tmp_path):
    data = _churn()
    data["sources"]["../../../../escape"] = copy.deepcopy(data["sources"]["tickets"])
    data["sources"]["usage"]["path"] = "../../../../../etc"
    data["sources"]["tickets"]["path"] = "/etc"
    data["task"] = "clustering"
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(json.dumps(data))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    assert str(spec_file) in str(info.value)
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 4, problems
    assert "task: Input should be" in problems
    assert "sources['../../../../escape']: source name '../../../../escape' is not allowed" in problems
    assert "sources.usage.path: '../../../../../etc' must be a folder relative to the pipeline's landing area" in problems
    assert "(not allowed: '..')" in problems
    assert "sources.tickets.path: '/etc' must be a folder relative" in problems


@pytest.mark.parametrize("path", ["crm", "crm/exports", "usage/date=2024-01-01", "a_b-c.d", "crm/"])
def test_plain_relative_paths_are_accepted(path):
    assert relative_path_problem(path) is None


@pytest.mark.parametrize("path", ["..", "../x", "x/../../y", "./x", "x//y", "/abs", "s3a://bucket/x", "file:/x",
                                  "~/x", "x\\..\\y", "", " ", ".hidden", "x y"])
def test_paths_that_could_leave_the_landing_area_are_refused(path):
    assert relative_path_problem(path)


@given(st.text(max_size=30))
def test_a_name_accepted_is_one_folder_below_its_root(name):
    if name_problem(name) is None:
        joined = posixpath.normpath(posixpath.join("/lake/p/bronze", name))
        assert posixpath.dirname(joined) == "/lake/p/bronze" and name not in (".", "..")


@given(st.lists(st.sampled_from(["a", "b1", "..", ".", "", "x=1", "/", "~", "c-d", "\\"]), min_size=1, max_size=6))
def test_a_path_accepted_stays_under_the_landing_root(parts):
    path = "/".join(parts)
    if relative_path_problem(path) is None:
        resolved = posixpath.normpath(posixpath.join("/land/p", path))
        assert resolved.startswith("/land/p/")


def test_the_layout_refuses_unsafe_names_even_from_an_unvalidated_spec(tmp_path):
    spec = load_spec(ROOT / "pipelines" / "churn.yaml")
    settings = load_settings(root=ROOT, overrides={"paths": {k: str(tmp_path / k) for k in ("landing", "lakehouse", "checkpoints")}})
    lake = Lakehouse.for_pipeline(settings, spec)
    with pytest.raises(SpecError, match=r"(?s)pipeline 'churn'.*sources\['\.\./\.\./escape'\]: source name"):
        lake.bronze("../../escape")
    with pytest.raises(SpecError, match=r"sources\['\.\./x'\]: source name"):
        lake.checkpoint("../x")
    with pytest.raises(SpecError, match=r"sources.usage.path: '\.\./\.\./etc' must be a folder relative"):
        lake.landing("../../etc", "usage")
    bad = spec.model_copy(update={"name": "../../up"})        # model_copy skips validation
    with pytest.raises(SpecError, match=r"name: pipeline name '\.\./\.\./up' is not allowed"):
        Lakehouse.for_pipeline(settings, bad)
    assert lake.bronze("customers") == f"{tmp_path}/lakehouse/churn/bronze/customers"


def test_the_bundled_specs_names_and_paths_are_safe():
    for name in ("churn", "telco"):
        spec = load_spec(ROOT / "pipelines" / f"{name}.yaml")
        assert all(name_problem(n) is None for n in spec.sources)
        assert all(relative_path_problem(s.path) is None for s in spec.sources.values() if s.is_file)
