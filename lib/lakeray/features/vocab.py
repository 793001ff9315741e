"""A column's training vocabulary and the code of each value in it.

Codes index the vocabulary (sorted texts); -1 is a missing value or one never seen in
training. Strings are looked up as they are; only the values that are not found (numbers,
booleans, nulls, ...) are turned into canonical keys (lakeray.features.values.category_keys)
and looked up again, so a text column costs one hash lookup per row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lakeray.features.values import category_key, category_keys, missing_mask

_LEGACY_FLOAT = re.compile(r"^-?[0-9]+\.0$")


def legacy_lookup(entries: list[str]) -> dict[str, str]:
    """Canonical key -> stored entry, for entries stored before keys were canonical
    (a float category 1.0 was stored as "1.0"; its key is now "1")."""
    out = {e: e for e in entries}
    for entry in entries:
        if _LEGACY_FLOAT.match(entry):
            out.setdefault(category_key(float(entry)), entry)
    return out


def as_entries(keys: np.ndarray, entries: list[str]) -> np.ndarray:
    lookup = legacy_lookup(entries)
    if len(lookup) == len(entries):
        return keys
    return np.array([lookup.get(k, k) if k is not None else None for k in keys.tolist()], dtype=object)


def fit_vocab(values, max_categories: int) -> list[str]:
    """The `max_categories` most frequent keys (ties by key), sorted."""
    keys = category_keys(values)
    counts = pd.Series(keys[~missing_mask(keys)], dtype=object).value_counts()
    top = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:max_categories]
    return sorted(top)


class Vocab:
    """Lookup of one column's vocabulary (built once per pipeline, not stored)."""

    def __init__(self, entries: list[str]):
        self.entries = list(entries)
        lookup = legacy_lookup(self.entries)
        position = {e: i for i, e in enumerate(self.entries)}
        self.index = pd.Index(self.entries, dtype=object)
        self.keys = {key: position[entry] for key, entry in lookup.items()}   # canonical key -> code
        self.legacy = len(lookup) != len(self.entries)

    def codes(self, values) -> np.ndarray:
        """int64 code of each value; -1 for missing and unseen values."""
        col = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object if len(values) == 0 else None)
        if isinstance(col.dtype, pd.CategoricalDtype):      # the categories once, then their codes
            per_category = np.append(self.codes(pd.Series(col.cat.categories)), -1)
            raw = col.cat.codes.to_numpy()
            return per_category[np.where(raw < 0, len(per_category) - 1, raw)]
        if col.dtype == object and not self.legacy:
            try:
                codes = self.index.get_indexer(col.to_numpy())
            except TypeError:                               # an unhashable value: canonical keys for all
                return self._lookup(category_keys(col))
            todo = np.flatnonzero(codes < 0)
            if len(todo):                                   # not found as text: nulls (stay -1), numbers, ...
                rest = col.iloc[todo]
                todo = todo[~missing_mask(rest)]
                if len(todo):
                    codes[todo] = self._lookup(category_keys(col.iloc[todo]))
            return codes.astype(np.int64, copy=False)
        return self._lookup(category_keys(col))

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        if self.legacy:
            get = self.keys.get
            return np.fromiter((get(k, -1) if k is not None else -1 for k in keys.tolist()), np.int64, len(keys))
        return self.index.get_indexer(keys).astype(np.int64, copy=False)

    def code(self, value) -> int:
        """The code of one value (the row path of serving)."""
        key = category_key(value)
        return -1 if key is None else self.keys.get(key, -1)
