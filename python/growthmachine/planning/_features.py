"""The planner's feature matrix: what insight knows of each user plus the users table.

Only observable data: the insight's history features (RFM, inter-purchase times, trend), value
model outputs (P(alive), expected purchases, CLV), lifecycle stage and value tier (one-hot), and
the users table's attributes (categoricals one-hot, booleans 0/1, numbers as they are). A missing
history value (e.g. days since the last order of a prospect) becomes -1 next to the
``is_prospect`` flag that explains it, so nothing is dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core

__all__ = ["planning_features"]

_SKIP = {"user_id", "cell_id", "cluster", "cell_label", "cluster_name"}


def _levels(s: pd.Series, name: str) -> tuple[list[str], np.ndarray, list[int]]:
    """A text or categorical column's levels as the one-hot columns name them (the categories
    in order, or the sorted texts), the rows' codes, and the code of each level: ``codes ==
    level_code[i]`` is ``s.astype(str) == levels[i]`` without making the strings (a missing
    category matches no level)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        names = [str(k) for k in s.cat.categories]
        return names, s.cat.codes.to_numpy(), list(range(len(names)))
    codes, uniq = pd.factorize(s)
    if (codes < 0).any():
        raise ValueError(f"{name}[{s.name!r}]: has missing values")
    text = [str(u) for u in uniq]
    names = sorted(set(text))
    if len(names) != len(text):  # values that print alike are one level
        remap = np.array([names.index(t) for t in text], dtype=np.int64)
        return names, remap[codes], list(range(len(names)))
    return names, codes, [text.index(k) for k in names]


def _numeric(df: pd.DataFrame, name: str, prefix: str = "") -> dict[str, tuple[np.ndarray, Any]]:
    """Per output column: a source array and how a block of it becomes float64 (``None``: as
    it is; an int: equal to that code; ``"finite"``: non-finite values become -1)."""
    out: dict[str, tuple[np.ndarray, Any]] = {}
    for c in df.columns:
        if c in _SKIP:
            continue
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == "string":
            names, codes, at = _levels(s, name)
            for k, code in zip(names, at, strict=True):
                out[f"{prefix}{c}={k}"] = (codes, code)
        elif s.dtype == bool:
            out[f"{prefix}{c}"] = (s.to_numpy(), None)
        elif np.issubdtype(s.dtype, np.number):
            v = s.to_numpy()
            if v.dtype.kind not in "biuf":
                v = s.to_numpy(dtype=np.float64)
            out[f"{prefix}{c}"] = (v, "finite" if v.dtype.kind == "f" else None)
    return out


#: Source dtypes the Rust fill reads as they are (others are cast by numpy first).
_NATIVE = {np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32, np.int16, np.int8,
                                 np.uint8, np.bool_)}  # fmt: skip


def _column(v: np.ndarray, how: Any) -> np.ndarray:
    if how is None:
        return v
    if isinstance(how, str):
        return np.where(np.isfinite(v), v, -1.0)
    return v == how


def _matrix(cols: list[tuple[np.ndarray, Any]], n: int) -> np.ndarray:
    """The (n, len(cols)) float64 matrix of the columns, in one Rust pass
    (``src/planning/features.rs``, numpy's numbers: a column as it is, cast to float64; its
    non-finite values as -1 (``"finite"``); 1.0 where it equals a level's code, else 0.0). A
    column of another dtype is first made what numpy makes of it (:func:`_column`, then
    float64)."""
    srcs, hows, codes = [], [], []
    for v, how in cols:
        v = np.asarray(v)
        if v.dtype not in _NATIVE:
            v, how = np.asarray(_column(v, how), dtype=np.float64), None
        srcs.append(np.ascontiguousarray(v))
        if how is None:
            hows.append(0)
            codes.append(0)
        elif isinstance(how, str):
            hows.append(1)
            codes.append(0)
        else:
            hows.append(2)
            codes.append(int(how))
    # numpy allocates X (a large array of it gets transparent huge pages: the forests' scoring
    # reads its rows); Rust fills it
    X = np.empty((n, len(srcs)), dtype=np.float64)
    _core.planning_feature_matrix(srcs, hows, codes, X)
    return X


def planning_features(insight: Any, users: Any = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(X, names, user_ids)``: one row per user of the fitted ``insight`` (its ``users_`` order),
    float64 columns ``names``. ``users`` (optional): the users table, joined on ``user_id``; its
    users must be exactly the insight's."""
    if not hasattr(insight, "users_"):
        raise TypeError(
            f"insight: must be a fitted growthmachine.insight.UserInsight, got {type(insight).__name__}"
        )
    base = insight.users_
    ids = base["user_id"].to_numpy()
    cols: dict[str, tuple[np.ndarray, Any]] = {}
    cols.update(_numeric(insight.features_.drop(columns=["user_id"]), "insight.features_"))
    cols.update(
        _numeric(
            base[["stage", "value_tier", "p_alive", "expected_purchases", "clv"]], "insight.users_"
        )
    )
    if users is not None:
        u = cv.as_pandas(users, "users")
        for c in u.columns:  # nullable (extension) numbers: missing values are an error
            d = u[c].dtype
            if isinstance(d, pd.api.extensions.ExtensionDtype) and hasattr(d, "numpy_dtype"):
                if u[c].hasnans:
                    raise ValueError(f"users[{c!r}]: has missing values")
                u = u.copy() if u is users else u
                u[c] = u[c].to_numpy(dtype=d.numpy_dtype)
        if "user_id" not in u.columns:
            raise ValueError("users: needs a user_id column")
        uid = u["user_id"].to_numpy()
        if len(uid) != len(ids) or not np.array_equal(uid, ids):  # else: already in order
            u = u.set_index("user_id")
            if len(u) != len(ids) or not u.index.isin(ids).all():
                raise ValueError(
                    "users: must hold exactly the insight's users (user_id), got "
                    f"{len(u):,} rows for {len(ids):,} users"
                )
            u = u.loc[ids].reset_index(drop=True)
        cols.update(_numeric(u, "users", "user."))
    names = list(cols)
    return _matrix([cols[k] for k in names], len(ids)), names, ids
