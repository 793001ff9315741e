"""`lakeray reset` starts a stage over (re-landed files are read again), stays under the configured
roots, and a source whose checkpoint no longer fits its landing folder or bronze table stops with
what to do instead of a raw Spark error, lost files or duplicates."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from lakeray.cli import main
from lakeray.errors import LakerayError, SourceError
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.lakehouse.reset import reset
from lakeray.spec.loader import parse_spec
from tests.support import said, settings_in, write_spec

SPEC = parse_spec({
    "name": "tiny", "task": "binary", "entity_key": "id", "target": "churned",
    "sources": {
        "crm": {"format": "csv", "path": "crm", "keys": ["id"],
                "columns": {"id": "string", "plan": "string", "churned": "boolean"}},
        "usage": {"format": "parquet", "path": "usage", "keys": ["id"], "columns": {"id": "string", "minutes": "double"}},
    },
    "dataset": {"base": "crm"}, "features": {"plan": "categorical"},
    "metric": {"primary": "roc_auc"}, "baseline": {"model": "majority"},
})


def _land(settings):
    lake = Lakehouse.for_pipeline(settings, SPEC)
    crm = lake.landing("crm")
    os.makedirs(crm, exist_ok=True)
    with open(os.path.join(crm, "export.csv"), "w") as fh:
        fh.write("id,plan,churned\nc1,basic,true\n")
    os.makedirs(lake.landing("usage"), exist_ok=True)
    pd.DataFrame({"id": ["c1"], "minutes": [1.0]}).to_parquet(os.path.join(lake.landing("usage"), "d1.parquet"))
    return lake


def _count(spark, path):
    return spark.read.format("delta").load(path).count()


def _cli(settings, tmp_path, *args):
    paths = [f"--conf=paths.{k}={settings.path(k)}" for k in ("landing", "lakehouse", "checkpoints")]
    return main(["reset", "--pipeline", str(write_spec(SPEC, tmp_path)), *paths, *args])


def test_reset_of_one_source_lets_a_relanded_file_be_read_again(spark, tmp_path, capsys):
    settings = settings_in(tmp_path)
    lake = _land(settings)
    run_ingest(spark, SPEC, settings)
    with open(os.path.join(lake.landing("crm"), "export.csv"), "w") as fh:      # re-landed under the same name
        fh.write("id,plan,churned\nc1,premium,true\nc2,basic,false\n")
    assert run_ingest(spark, SPEC, settings, sources=["crm"])["crm"].rows_added == 0   # a name is never re-read

    assert _cli(settings, tmp_path, "--stage", "ingest", "--source", "crm", "--dry-run") == 0
    listed = capsys.readouterr().out
    assert "would remove  bronze/crm" in listed and "checkpoint ingest/crm" in listed and "nothing removed" in listed
    assert os.path.isdir(lake.bronze("crm")) and os.path.isdir(lake.checkpoint("crm"))

    assert _cli(settings, tmp_path, "--stage", "ingest", "--source", "crm") == 0
    out = capsys.readouterr().out
    assert said(out, f"removed bronze/crm {lake.bronze('crm')}")
    assert said(out, "removed checkpoint ingest/crm") and "usage" not in out
    assert not os.path.exists(lake.bronze("crm")) and not os.path.exists(lake.checkpoint("crm"))
    assert os.path.isdir(lake.checkpoint("usage")) and _count(spark, lake.bronze("usage")) == 1

    assert run_ingest(spark, SPEC, settings, sources=["crm"])["crm"].rows_added == 2
    plans = {r["id"]: r["plan"] for r in spark.read.format("delta").load(lake.bronze("crm")).collect()}
    assert plans == {"c1": "premium", "c2": "basic"}


def test_reset_refuses_a_path_that_leaves_its_root_and_removes_nothing(spark, tmp_path):
    settings = settings_in(tmp_path)
    lake = _land(settings)
    run_ingest(spark, SPEC, settings, sources=["usage"])
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("not lakeray's")
    os.makedirs(os.path.dirname(lake.bronze("crm")), exist_ok=True)
    os.symlink(outside, lake.bronze("crm"))
    with pytest.raises(LakerayError, match=r"(?s)reset refused, nothing was removed.*bronze/crm: .* is a symbolic link"):
        reset(lake, SPEC, "all")
    assert (outside / "keep.txt").read_text() == "not lakeray's"
    assert os.path.isdir(lake.bronze("usage")) and os.path.isdir(lake.checkpoint("usage"))


def test_reset_of_an_unknown_source_is_a_clear_error(tmp_path, caplog):
    assert _cli(settings_in(tmp_path), tmp_path, "--source", "crm,nope") == 2
    assert "unknown source(s) nope; the spec declares crm, usage" in caplog.text


def test_reset_through_hadoop_filesystem_uris(spark, tmp_path):
    settings = settings_in(tmp_path)
    for key in ("lakehouse", "checkpoints"):
        settings["paths"][key] = f"file://{tmp_path / key}"
    lake = Lakehouse.for_pipeline(settings, SPEC)
    for path in (lake.bronze("crm"), lake.checkpoint("crm"), lake.gold):
        os.makedirs(path.removeprefix("file://"))
    done = {t.label: outcome for t, outcome in reset(lake, SPEC, "all", ["crm"], spark=spark)}
    assert done == {"bronze/crm": "removed", "checkpoint ingest/crm": "removed", "silver/crm": "absent",
                    "gold/features": "removed", "quarantine": "absent"}
    left = tmp_path / "lakehouse" / "tiny"
    assert sorted(os.listdir(left)) == ["bronze", "gold"] and not os.listdir(left / "bronze") and not os.listdir(left / "gold")


def test_a_moved_landing_folder_is_a_clear_error_with_what_to_do(spark, tmp_path):
    settings = settings_in(tmp_path)
    lake = _land(settings)
    run_ingest(spark, SPEC, settings, sources=["crm"])
    shutil.move(settings.path("landing"), tmp_path / "moved")
    settings["paths"]["landing"] = str(tmp_path / "moved")
    with pytest.raises(SourceError, match=(
            r"source 'crm': its checkpoint .* was written for landing folder .*/landing/tiny/crm, but the landing "
            r"folder is now .*/moved/tiny/crm .*`lakeray reset --pipeline pipelines/tiny.yaml --stage ingest --source crm`")):
        run_ingest(spark, SPEC, settings, sources=["crm"])
    # a checkpoint from before lakeray recorded its landing folder: Spark's "Wrong basePath", translated
    os.unlink(os.path.join(lake.checkpoint("crm"), "lakeray_landing"))
    with pytest.raises(SourceError, match=r"written for another landing folder.*--source crm"):
        run_ingest(spark, SPEC, settings, sources=["crm"])


def test_bronze_or_checkpoint_deleted_alone_stops_the_source(spark, tmp_path):
    settings = settings_in(tmp_path)
    lake = _land(settings)
    run_ingest(spark, SPEC, settings)
    shutil.rmtree(lake.bronze("crm"))                                        # files would never be read again
    with pytest.raises(SourceError, match=r"source 'crm': bronze table .* is missing, but checkpoint .* records 1 "
                                          r"ingested batch\(es\).*--stage ingest --source crm"):
        run_ingest(spark, SPEC, settings, sources=["crm"])
    shutil.rmtree(lake.checkpoint("usage"))                                  # every file would land twice
    with pytest.raises(SourceError, match=r"source 'usage': bronze table .* holds rows but its checkpoint .* is missing"):
        run_ingest(spark, SPEC, settings, sources=["usage"])
    assert _count(spark, lake.bronze("usage")) == 1
