"""Evaluation plots are PNGs and the HTML report embeds, escapes and tabulates what it is given."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from lakeray.errors import LakerayError
from lakeray.evaluate import plots
from lakeray.evaluate.metrics import binary_metrics, calibration, fairness_audit, multiclass_metrics
from lakeray.evaluate.report import evaluation_images, render_report, write_report

PNG = b"\x89PNG"
Y = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1, 0])
P = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4, 0.65, 0.35])
BASE = np.array([0.6, 0.5, 0.4, 0.5, 0.3, 0.4, 0.5, 0.5, 0.5, 0.4])
GROUPS = np.array(list("aabbaabbab"))
IMPORTANCE = {"age": 0.4, "income": 0.3, "tenure": 0.2, "region": 0.1}


def test_each_plot_is_a_png():
    fairness = {"sex": fairness_audit(Y, P, GROUPS), "region": fairness_audit(Y, P, np.array(list("xyzxyzxyzx")))}
    pngs = [
        plots.roc_png(Y, P, {"baseline": (Y, BASE)}),
        plots.pr_png(Y, P, {"champion": (Y, BASE)}),
        plots.confusion_png([[3, 1], [1, 5]], ["neg", "pos"]),
        plots.calibration_png(calibration(Y, P, bins=5)),
        plots.importance_png({f"f{i}": float(i) for i in range(30)}, top=5),
        plots.group_bars_png(fairness),
        plots.regression_png(np.arange(50.0), np.arange(50.0) + np.sin(np.arange(50.0))),
    ]
    assert all(p.startswith(PNG) and len(p) > 1000 for p in pngs)


def test_regression_subsamples_20k_points():
    assert len(plots.subsample_index(100)) == 100
    idx = plots.subsample_index(20_000)
    assert len(idx) == plots.MAX_SCATTER_POINTS == 5000
    assert len(np.unique(idx)) == 5000 and np.all(np.diff(idx) > 0) and idx.max() < 20_000
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    assert plots.regression_png(y, y + rng.normal(scale=0.1, size=20_000)).startswith(PNG)


def test_render_report_embeds_escapes_and_compares():
    images = {"roc": plots.roc_png(Y, P), "importance": plots.importance_png(IMPORTANCE)}
    metrics = {"candidate": binary_metrics(Y, P), "baseline": binary_metrics(Y, BASE), "champion": {"roc_auc": 0.5}}
    gate = [{"check": "auc above baseline", "passed": True, "detail": "0.88 > 0.70"},
            {"check": "fairness dp < 0.1", "passed": False, "detail": "dp difference 0.25 over limit"}]
    page = render_report(
        title="Churn <script>alert(1)</script>", summary={"task": "binary", "rows": 10}, metrics=metrics, gate=gate,
        lineage={"run_id": "r-1", "note": "<script>x</script>", "params": {"depth": 4}}, images=images,
        tables={"calibration bins": calibration(Y, P, bins=5)["bins"]})
    for png in images.values():
        assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert '<span class="fail">FAIL</span></td><td>dp difference 0.25 over limit</td>' in page
    assert "fairness dp &lt; 0.1" in page and ">PASS<" in page
    assert "<th>metric</th><th>candidate</th><th>baseline</th><th>champion</th>" in page
    assert "confusion_matrix" not in page  # non-scalar metrics are left out of the comparison
    assert "<td>roc_auc</td>" in page and "mean_predicted" in page
    assert "&quot;depth&quot;: 4" in page  # nested lineage is json-dumped
    assert "http" not in page.split("<body>")[0]  # no external CSS/JS


def test_write_report(tmp_path):
    out = write_report("<html>é</html>", tmp_path / "deep" / "dir" / "report.html")
    assert out.read_text(encoding="utf-8") == "<html>é</html>"


def test_evaluation_images_per_task():
    cal = calibration(Y, P, bins=5)
    binary = evaluation_images("binary", Y, P, calibration=cal, fairness={"sex": fairness_audit(Y, P, GROUPS)},
                               importance=IMPORTANCE, confusion=binary_metrics(Y, P)["confusion_matrix"],
                               labels=["no", "yes"], others={"baseline": (Y, BASE)})
    assert set(binary) == {"roc", "pr", "confusion", "calibration", "importance", "fairness"}
    assert set(evaluation_images("binary", Y, P)) == {"roc", "pr"}

    yc = np.array([0, 1, 2, 1, 0, 2])
    proba = np.eye(3)[[0, 1, 2, 0, 0, 1]] * 0.8 + 0.2 / 3
    multi = evaluation_images("multiclass", yc, proba, confusion=multiclass_metrics(yc, proba)["confusion_matrix"],
                              importance=IMPORTANCE, fairness=None, calibration=cal)
    assert set(multi) == {"confusion", "importance"}

    y = np.linspace(0, 1, 40)
    assert set(evaluation_images("regression", y, y * 0.9, importance=IMPORTANCE, fairness={})) == {"regression", "importance"}
    assert set(evaluation_images("regression", y, y, importance={})) == {"regression"}
    assert all(v.startswith(PNG) for v in {**binary, **multi}.values())
    with pytest.raises(LakerayError, match="unknown task"):
        evaluation_images("ranking", y, y)
