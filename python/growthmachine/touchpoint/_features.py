"""Covariates of the curves' height from the run's fitted insight: one source describes a user.

:func:`user_covariates` is :func:`growthmachine.planning.planning_features` (the insight's
history features, value model outputs, lifecycle stage and value tier, and the users table's
attributes) as the table :meth:`FrequencyPlanner.plan` and :meth:`FrequencyPlanner.observe`
take as ``covariates``. The height model is linear in its standardised covariates, so counts,
amounts and spans with long tails (orders, GMV, CLV, days since) enter as ``log(1 + x)``: one
heavy buyer's GMV would otherwise set a multiplier alone. Those are the columns whose values are
all >= -1 (the missing-value code of :func:`~growthmachine.planning.planning_features`, which
becomes ``-log 2``) and not all within [-1, 1]; the others (indicators, one-hot levels,
probabilities, trends, day numbers) are left as they are. Which columns are transformed is
decided on all of the insight's users, so every call on one insight gives the same columns,
whatever users it selects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv


def user_covariates(insight: Any, users: Any = None, *, user_ids: Any = None) -> pd.DataFrame:
    """Numeric features of each user from the fitted ``insight`` (a
    :class:`growthmachine.insight.UserInsight`) and, optionally, the ``users`` table (joined on
    ``user_id``; see :func:`growthmachine.planning.planning_features`), for the covariates of
    :meth:`FrequencyPlanner.plan` and :meth:`FrequencyPlanner.observe`. ``user_ids``: the rows
    wanted, in that order (default: the insight's users, in its order); each must be one of the
    insight's users. Counts and amounts with long tails are ``log(1 + x)`` (see the module
    docs). Returns a table with one row per user (index ``0..n-1``) and float64 columns."""
    from ..planning import planning_features

    X, names, ids = planning_features(insight, users)
    if user_ids is None:
        rows = np.arange(len(ids))
    else:
        want = cv.as_array(user_ids, "user_ids", np.int64, ndim=1, allow_empty=True)
        rows = pd.Index(ids).get_indexer(want)
        if (rows < 0).any():
            bad = int(want[np.flatnonzero(rows < 0)[0]])
            raise ValueError(f"user_ids: {bad} is not one of the insight's users")
    tail = (X.min(axis=0, initial=0.0) >= -1.0) & (X.max(axis=0, initial=0.0) > 1.0)
    out = X[rows]
    out[:, tail] = np.sign(out[:, tail]) * np.log1p(np.abs(out[:, tail]))
    return pd.DataFrame(out, columns=names, index=pd.RangeIndex(len(rows)))
