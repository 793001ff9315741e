"""A replica's logic without Serve: models come from an injected loader (no registry, no Ray),
predictions equal the bundle's, every answer is logged, and a moved champion is swapped in."""

from __future__ import annotations

import asyncio

import pytest

from lakeray.errors import LakerayError
from lakeray.lakehouse import Lakehouse
from lakeray.serve.app import PredictorCore
from lakeray.serve.model import BundleLoader, ServedModel
from tests.support import settings_in

pytestmark = pytest.mark.fast


class Loader:
    """Models by alias, changeable by the test."""

    def __init__(self, **models):
        self.models = models

    def load(self, alias):
        return self.models.get(alias)

    def version(self, alias):
        model = self.models.get(alias)
        return model.version if model else None


def _core(spec, tmp_path, loader, **serve):
    settings = settings_in(tmp_path)
    conf = {**settings["serve"], "reload_s": 0, "log": {**settings["serve"]["log"], "flush_rows": 1, "flush_s": 0.05},
            **serve}
    return PredictorCore(spec, conf, Lakehouse.for_pipeline(settings, spec), loader)


def _rows(spec, n):
    return [{name: (0.1 * i if kind == "numeric" else ("a" if kind == "categorical" else True))
             for name, kind in spec.features.items()} for i in range(n)]


def test_predictions_come_from_the_injected_model_and_are_logged(tiny_champion, churn_spec, tmp_path):
    core = _core(churn_spec, tmp_path, BundleLoader(tiny_champion["bundle_dir"], version="7"))
    rows = _rows(churn_spec, 5)

    async def run():
        return await core.predict_rows(rows, batch=True)

    request_id, preds = asyncio.run(run())
    expected = tiny_champion["bundle"].predict_rows(rows)
    assert [p.prediction for p in preds] == pytest.approx(list(expected), rel=1e-6)
    assert {p.model_version for p in preds} == {"7"} and preds[0].request_id == f"{request_id}-0"
    core.logger.close()
    assert core.logger.written == 5


def test_a_moved_champion_is_swapped_in_by_the_watcher(tiny_champion, churn_spec, tmp_path):
    first = ServedModel(tiny_champion["bundle"], "1", "run-1")
    loader = Loader(champion=first)
    core = _core(churn_spec, tmp_path, loader, reload_s=0.05)

    async def run():
        core._ensure_watcher()
        loader.models["champion"] = ServedModel(tiny_champion["bundle"], "2", "run-2")
        for _ in range(100):
            if core.model.version == "2":
                break
            await asyncio.sleep(0.02)
        core._watcher.cancel()

    asyncio.run(run())
    assert core.model.version == "2"
    core.logger.close()


def test_no_champion_is_a_clear_error(churn_spec, tmp_path):
    with pytest.raises(LakerayError, match="no 'champion' alias for pipeline churn"):
        _core(churn_spec, tmp_path, Loader())
    assert BundleLoader("/nowhere").load("challenger") is None and BundleLoader("/x", "3").version("champion") == "3"
