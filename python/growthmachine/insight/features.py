"""Per-user features from a raw transaction log (Rust core, one parallel pass, one copy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress

__all__ = ["features", "FEATURE_COLUMNS"]

#: Columns of :func:`features` (``n_categories`` only when ``category`` is given): the user, the
#: prospect flag, the core's feature columns (``src/insight/features.rs``) and the RFM scores.
FEATURE_COLUMNS = (
    "user_id",
    "is_prospect",
    *_core.insight_feature_columns(),
    "r_score",
    "f_score",
    "m_score",
    "rfm_score",
)

_INT_COLUMNS = ("n_transactions", "n_categories")


def _days(raw: Any, name: str) -> np.ndarray:
    """Day numbers as int32 (no copy for int32 input); datetimes become days since 1970-01-01."""
    raw = cv.to_numpy_raw(raw, name)
    if raw.dtype.kind == "M":
        raw = raw.astype("datetime64[D]").astype(np.int64)
    if raw.dtype == np.int32:
        return cv.as_array(raw, name, np.int32, allow_empty=True)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name}: must be integer day numbers or datetimes, got dtype {raw.dtype}")
    if raw.size:
        if raw.dtype.kind == "f" and not (
            np.isfinite(raw).all() and np.array_equal(raw, np.floor(raw))
        ):
            raise ValueError(
                f"{name}: must hold whole days (integers or datetimes), found NaN or fractions"
            )
        lo, hi = raw.min(), raw.max()
        if lo < -(2**31) + 1 or hi > 2**31 - 1:
            raise ValueError(f"{name}: day numbers must fit in int32, found range [{lo}, {hi}]")
    return np.ascontiguousarray(raw, dtype=np.int32)


def _as_of(as_of: Any, name: str = "as_of") -> int:
    if isinstance(as_of, (pd.Timestamp, np.datetime64)) or hasattr(as_of, "year"):
        return int(np.datetime64(pd.Timestamp(as_of), "D").astype(np.int64))
    return cv.check_int(as_of, name, minimum=-(2**31) + 1, maximum=2**31 - 1)


def _codes(table: Any, col: str) -> np.ndarray:
    if isinstance(table, pd.DataFrame) and isinstance(table[col].dtype, pd.CategoricalDtype):
        codes = table[col].cat.codes.to_numpy()
        if codes.size and codes.min() < 0:
            raise ValueError(f"transactions[{col!r}]: has missing values")
        return np.ascontiguousarray(codes, dtype=np.int32)
    codes, _ = cv.as_codes(cv.column(table, "transactions", col), f"transactions[{col!r}]")
    return codes


def _users_arg(users: Any, user: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if users is None:
        return None, None
    if cv.is_table(users):
        ids = cv.as_array(
            cv.column(users, "users", user), f"users[{user!r}]", np.int64, allow_empty=True
        )
        signup = None
        if "signup_day" in cv.columns(users, "users"):
            signup = _days(cv.column(users, "users", "signup_day"), "users['signup_day']")
        return ids, signup
    return cv.as_array(users, "users", np.int64, allow_empty=True), None


def features(
    transactions: Any,
    as_of: int | Any | None = None,
    *,
    user: str = "user_id",
    time: str = "day",
    amount: str = "amount",
    category: str | None = None,
    users: Any = None,
    trend_window: int = 90,
    output: cv.Output = "pandas",
    progress: bool | None = None,
):
    """One row per user (sorted by user id) from a transaction log.

    Parameters
    ----------
    transactions
        A table (pandas, polars, pyarrow or dict) with one row per transaction: ``user`` (integer
        ids, any int64 values), ``time`` (integer day numbers or datetimes), ``amount`` (finite,
        >= 0) and optionally ``category``. Any row order.
    as_of
        The observation end (a day number, or a date when ``time`` holds datetimes); rows after
        it are ignored. Default: the last day in the log.
    users
        Users to keep even without purchases (prospects): an array of ids, or a table with the
        ``user`` column and optionally ``signup_day`` (used for ``tenure``).
    trend_window
        Days in the recent window of ``recent_spend`` and ``trend``.

    Columns (day is the time unit; same-day purchases form one period, exactly as
    ``lifetimes.utils.summary_data_from_transaction_data(..., freq="D")``):

    - ``frequency``: distinct purchase days - 1 (repeat purchases); ``recency``: last - first
      purchase day; ``T``: as_of - first purchase day; ``monetary``: mean spend per repeat day
      (lifetimes' ``monetary_value``; 0 without repeats);
    - ``n_transactions``, ``total_spend``, ``recent_spend`` (last ``trend_window`` days),
      ``first_purchase``, ``last_purchase``, ``days_since_last``, ``tenure`` (days since signup or
      first purchase, whichever is earlier), ``ipt_mean``/``ipt_std`` (mean and population standard
      deviation of the gaps between purchase days), ``n_categories`` (distinct categories),
      ``trend`` in [-1, 1]: (recent rate - earlier rate) / (recent rate + earlier rate) of spend per
      day, 0 when all history is inside the window;
    - ``r_score``, ``f_score``, ``m_score`` (1-5 quintiles over buyers of last purchase day,
      frequency and total spend; equal values share a score) and ``rfm_score`` = 100 r + 10 f + m.

    Prospects (no purchase up to ``as_of``): ``is_prospect`` True, counts, spend, frequency,
    recency, T, trend and scores 0; ``first_purchase``, ``last_purchase``, ``days_since_last``,
    ``ipt_mean`` and ``ipt_std`` NaN.
    """
    cols = cv.columns(transactions, "transactions")
    for c in (user, time, amount) + ((category,) if category else ()):
        if c not in cols:
            raise ValueError(f"transactions: unknown column {c!r} (available: {', '.join(cols)})")
    n = cv.n_rows(transactions, "transactions")
    allow_empty = users is not None
    uid = cv.as_array(
        cv.column(transactions, "transactions", user),
        f"transactions[{user!r}]",
        np.int64,
        allow_empty=allow_empty,
    )
    day = _days(cv.column(transactions, "transactions", time), f"transactions[{time!r}]")
    amt = cv.as_array(
        cv.column(transactions, "transactions", amount),
        f"transactions[{amount!r}]",
        np.float64,
        allow_empty=allow_empty,
    )
    cat = _codes(transactions, category) if category else None
    cv.check_same_length({"user": uid, "time": day, "amount": amt})
    if n == 0 and users is None:
        raise ValueError("transactions: is empty (pass users= to get prospects only)")
    ids, signup = _users_arg(users, user)
    if as_of is None:
        if day.size == 0:
            raise ValueError("as_of: needed when the log is empty")
        as_of_i = int(day.max())
    else:
        as_of_i = _as_of(as_of)
    trend_window = cv.check_int(trend_window, "trend_window", minimum=1, maximum=2**31 - 1)
    cv.check_choice(output, "output", cv.OUTPUTS)
    with _progress.bar(progress, "features") as cb:
        result = _core.insight_features(uid, day, amt, as_of_i, cat, ids, signup, trend_window, cb)
    return cv.to_output(_columns(result, cat is not None), output)


def _columns(result: tuple, has_category: bool, *, scores: bool = True) -> dict[str, np.ndarray]:
    """The output columns, in :data:`FEATURE_COLUMNS` order, from ``_core.insight_features``'s
    result (also used by ``growthmachine.spark``, which computes the RFM scores over every
    partition's buyers itself: ``scores=False`` leaves them out)."""
    uids, vals, names, r, f, m = result
    out: dict[str, Any] = {"user_id": uids}
    col = dict(zip(names, vals, strict=True))
    out["is_prospect"] = col["n_transactions"] == 0
    for name in names:
        if name == "n_categories" and not has_category:
            continue
        v = col[name]
        out[name] = v.astype(np.int64) if name in _INT_COLUMNS else v
    if scores:
        out["r_score"] = r
        out["f_score"] = f
        out["m_score"] = m
        out["rfm_score"] = r.astype(np.int16) * 100 + f.astype(np.int16) * 10 + m
    return {c: out[c] for c in FEATURE_COLUMNS if c in out}
