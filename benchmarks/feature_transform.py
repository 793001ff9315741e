"""The feature transform against a minimal pandas encoding of the same frame, and one row.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/feature_transform.py --rows 100000

A frame of N rows x 30 columns (20 numeric with 2% nulls, 10 categoricals of 40 text values
with 2% nulls), as delta-rs hands gold to training (float64 with NaN; object text with None):
  minimal       what a user would write: `pd.Categorical(col, categories=vocab).codes` per
                categorical plus `to_numpy(float32)` per numeric, stacked (no null canonicalisation,
                no unseen handling, no dtype backends)
  native        lakeray's FeaturePipeline.transform, native layout (the tree families)
  onehot        the sparse one-hot layout (the linear family)
  dense_onehot  the dense one-hot layout every model used before (and v1 bundles still do)
Then one row: FeaturePipeline.transform_rows([row]) (what serving calls), transform() of a
one-row frame, and one row through the whole bundle (transform + a 300-tree booster's
inplace_predict) against the booster alone. Best of 5 (100k) / mean of 2,000 (one row).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def make_frame(rows: int, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    data, features = {}, {}
    for i in range(20):
        values = rng.normal(size=rows)
        values[rng.random(rows) < 0.02] = np.nan
        data[f"n{i:02d}"], features[f"n{i:02d}"] = values, "numeric"
    labels = np.array([f"value-{k:02d}" for k in range(40)], dtype=object)
    for i in range(10):
        values = labels[rng.integers(0, 40, rows)].copy()
        values[rng.random(rows) < 0.02] = None
        data[f"c{i}"], features[f"c{i}"] = values, "categorical"
    return pd.DataFrame(data), features


def best_of(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def per_call(fn, calls: int = 2000) -> float:
    fn()
    began = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - began) / calls


def main() -> None:
    import xgboost

    from lakeray.features.preprocess import FeaturePipeline
    from lakeray.models.families import dmatrix

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    frame, features = make_frame(args.rows)
    pipes = {enc: FeaturePipeline.fit(frame, features, encoding=enc) for enc in ("native", "onehot", "dense_onehot")}
    vocab = pipes["native"].vocab

    def minimal():
        cols = [pd.Categorical(frame[name], categories=vocab[name]).codes.astype(np.float32) if kind == "categorical"
                else frame[name].to_numpy(dtype=np.float32, na_value=np.nan) for name, kind in features.items()]
        return np.column_stack(cols)

    base = best_of(minimal)
    print(f"{args.rows:,} rows x {len(features)} columns (20 numeric, 10 categorical of 40 values)")
    print(f"{'transform':<14} {'seconds':>8} {'x minimal':>9}  output")
    print(f"{'minimal':<14} {base:>8.4f} {1.0:>9.2f}  ndarray {minimal().shape}, {minimal().nbytes / 1e6:.0f} MB")
    for enc, pipe in pipes.items():
        out = pipe.transform(frame)
        size = out.nbytes if isinstance(out, np.ndarray) else out.data.nbytes + out.indices.nbytes + out.indptr.nbytes
        seconds = best_of(lambda pipe=pipe: pipe.transform(frame))
        print(f"{enc:<14} {seconds:>8.4f} {seconds / base:>9.2f}  {type(out).__name__} {out.shape}, {size / 1e6:.0f} MB")

    pipe = pipes["native"]
    x = pipe.transform(frame)
    y = (np.nan_to_num(x[:, 0]) + (x[:, 20] % 3 == 0) > 0.5).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "nthread": 2},
                            dmatrix(x, y, pipe.feature_types), num_boost_round=300)
    row = frame.iloc[:1].to_dict("records")
    one_frame = frame.iloc[:1]
    x_one = pipe.transform_rows(row)
    assert np.array_equal(x_one, pipe.transform(one_frame), equal_nan=True)
    rows_s = per_call(lambda: pipe.transform_rows(row))
    frame_s = per_call(lambda: pipe.transform(one_frame))
    predict_s = per_call(lambda: booster.inplace_predict(x_one))
    both_s = per_call(lambda: booster.inplace_predict(pipe.transform_rows(row)))
    print("one row (ms):")
    print(f"  transform_rows([row])        {rows_s * 1e3:.3f}")
    print(f"  transform(one-row frame)     {frame_s * 1e3:.3f}")
    print(f"  booster.inplace_predict      {predict_s * 1e3:.3f}   (300 trees, depth 6)")
    print(f"  transform_rows + predict     {both_s * 1e3:.3f}")


if __name__ == "__main__":
    main()
