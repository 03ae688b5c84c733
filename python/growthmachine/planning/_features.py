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

__all__ = ["planning_features"]

_SKIP = {"user_id", "cell_id", "cluster", "cell_label", "cluster_name"}


def _numeric(df: pd.DataFrame, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for c in df.columns:
        if c in _SKIP:
            continue
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == "string":
            cats = (
                s.cat.categories
                if isinstance(s.dtype, pd.CategoricalDtype)
                else pd.Index(sorted(s.astype(str).unique()))
            )
            vals = s.astype(str).to_numpy()
            for k in cats:
                out[f"{prefix}{c}={k}"] = (vals == str(k)).astype(np.float64)
        elif s.dtype == bool:
            out[f"{prefix}{c}"] = s.to_numpy(dtype=np.float64)
        elif np.issubdtype(s.dtype, np.number):
            v = s.to_numpy(dtype=np.float64)
            out[f"{prefix}{c}"] = np.where(np.isfinite(v), v, -1.0)
    return out


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
    cols: dict[str, np.ndarray] = {}
    cols.update(_numeric(insight.features_.drop(columns=["user_id"])))
    cols.update(_numeric(base[["stage", "value_tier", "p_alive", "expected_purchases", "clv"]]))
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
        u = u.set_index("user_id")
        if len(u) != len(ids) or not u.index.isin(ids).all():
            raise ValueError(
                "users: must hold exactly the insight's users (user_id), got "
                f"{len(u):,} rows for {len(ids):,} users"
            )
        u = u.loc[ids].reset_index(drop=True)
        cols.update(_numeric(u, "user."))
    names = list(cols)
    X = np.column_stack([cols[k] for k in names]) if names else np.zeros((len(ids), 0))
    return np.ascontiguousarray(X, dtype=np.float64), names, ids
