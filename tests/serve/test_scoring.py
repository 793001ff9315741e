"""Scoring one batch of many clients' rows: a row the model cannot score fails only itself.

@serve.batch hands one list to one call, so before, one raising row failed every request in the
batch. score_isolated bisects a failing call down to the rows that fail alone. The model here
is the real tiny champion; `predict` wraps its predict_rows with a failure the test controls
(the schema and the preprocessing leave no input that makes a real model raise any more)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lakeray.features.target import TargetEncoder
from lakeray.serve.app import answer
from lakeray.serve.model import score_isolated


def _rows(spec, n):
    rng = np.random.default_rng(0)
    return [{name: (float(rng.normal()) if kind == "numeric" else str(rng.choice(["a", "b"])) if kind == "categorical"
                    else bool(rng.random() < 0.5)) for name, kind in spec.features.items()} for _ in range(n)]


def test_one_failing_row_fails_only_itself(tiny_champion, churn_spec):
    bundle, columns = tiny_champion["bundle"], list(churn_spec.features)
    calls = []

    def predict(batch):
        calls.append(len(batch))
        if any(row.get("contract") == "poison" for row in batch):
            raise ValueError("Input data contains 'inf'")
        return bundle.predict_rows(batch)

    rows = _rows(churn_spec, 128)
    for bad in (17, 90):
        rows[bad]["contract"] = "poison"
    scored = score_isolated(predict, rows)
    assert sorted(scored.errors) == [17, 90] and not scored.model_broken
    assert "Input data contains 'inf'" in scored.errors[17]
    good = [i for i in range(len(rows)) if i not in (17, 90)]
    expected = bundle.predict_frame(pd.DataFrame([rows[i] for i in good], columns=columns))
    np.testing.assert_allclose([scored.scores[i] for i in good], expected, rtol=1e-6)
    assert scored.scores[17] is None and scored.scores[90] is None
    assert len(calls) <= 1 + 2 * 2 * 7                              # bisection: about 2 calls per level per bad row
    before = len(calls)
    clean = score_isolated(predict, rows[:10])
    assert clean.errors == {} and len(calls) == before + 1          # one call when nothing fails


def test_non_finite_scores_fail_their_rows_and_a_broken_model_is_told_apart(tiny_champion, churn_spec):
    bundle = tiny_champion["bundle"]
    rows = _rows(churn_spec, 6)

    def nan_for_a(batch):
        scores = bundle.predict_rows(batch).astype(float)
        scores[[row.get("region") == "a" for row in batch]] = np.nan
        return scores

    scored = score_isolated(nan_for_a, rows)
    assert set(scored.errors) == {i for i, r in enumerate(rows) if r["region"] == "a"} and not scored.model_broken
    assert all("non-finite" in e for e in scored.errors.values())

    def broken(batch):
        raise RuntimeError("booster cannot be used")

    scored = score_isolated(broken, rows)
    assert sorted(scored.errors) == list(range(6)) and scored.model_broken    # fails on a row of nulls too


def test_a_binary_answer_names_the_class_training_saw(tiny_champion):
    bundle = tiny_champion["bundle"]              # churn: a boolean target, positive True
    assert [answer(bundle, s)["label"] for s in (0.9, bundle.threshold, 0.1)] == ["True", "True", "False"]
    named = dataclasses.replace(bundle, target=TargetEncoder("binary", positive="yes", negative="no"))
    assert (answer(named, 0.7)["label"], answer(named, 0.2)["label"]) == ("yes", "no")   # was "not yes"
    several = dataclasses.replace(bundle, target=TargetEncoder("binary", positive="yes"))
    assert answer(several, 0.2) == {"prediction": 0.2, "label": "not yes"}
