"""What a frequency plan reports beside its assignment: the certificate of a plan made without
curves, the highest average frequency the budget can buy, and the marginal ROI of one more
level step per segment and channel (used by :class:`~._planner.FrequencyPlanner`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..allocate import certificate

if TYPE_CHECKING:
    from ._planner import Channel


def empty_certificate(channels: Sequence[Channel], budget: float) -> dict[str, Any]:
    names = ["budget"] + [f"capacity:{c.name}" for c in channels]
    out = {
        "objective": 0.0,
        "dual_bound": 0.0,
        "lp_value": 0.0,
        "usage": np.zeros(len(names)),
        "prices": np.zeros(len(names)),
        "status": "not_optimised",
        "message": "no fitted curves: every user explores",
        "passes": 0,
        "history": {},
    }
    upper = [budget] + [float("inf") if c.capacity is None else c.capacity for c in channels]
    return certificate(out, names, np.zeros(len(names)), upper)


def attainable_average(
    reach: np.ndarray, costs: np.ndarray, allowed: np.ndarray, levels: np.ndarray, budget: float
) -> float:
    """Highest average frequency over the users when the budget buys exposures at each user's
    cheapest reachable channel, cheapest first, up to that channel's largest allowed level."""
    n = len(reach)
    if n == 0:
        return 0.0
    top = np.array([levels[a].max() if a.any() else 0 for a in allowed], dtype=np.float64)
    # Users per cheapest reachable channel (channels in order of cost).
    order = np.argsort(costs, kind="stable")
    left = np.ones(n, dtype=bool)
    total, money = 0.0, budget
    for c in order:
        m = int((left & reach[:, c]).sum())
        left &= ~reach[:, c]
        block = m * top[c]
        if costs[c] == 0 or block * costs[c] <= money:
            total += block
            money -= block * costs[c]
        else:
            total += money / costs[c]
            break
    return float(total / n)


def marginal_roi(inc, opt, group, v, ch, lv, levels, channels, labels, label_of=None
                  ) -> pd.DataFrame:  # fmt: skip
    """Per segment and channel: mean over the reached users of the value of the next level
    step per unit of its cost (``nan`` at the top level). ``labels``: the segment labels;
    ``label_of``: each curve group's label code (default: the group's own)."""
    cols = ["segment", "channel", "users", "marginal_roi"]
    sel = np.flatnonzero((ch != 255) & (lv > 0))
    if not len(sel):
        return pd.DataFrame(columns=cols)
    c = ch[sel].astype(np.int64)
    li = np.searchsorted(levels, lv[sel])
    nxt = np.minimum(li + 1, len(levels) - 1)
    g = group[sel].astype(np.int64)
    oc = np.array([x.optout_cost for x in channels])[c]
    uc = np.array([x.unit_cost for x in channels])[c]
    gain = v[sel] * (inc[g, c, nxt] - inc[g, c, li]) - oc * (opt[g, c, nxt] - opt[g, c, li])
    dcost = uc * (levels[nxt].astype(np.float64) - levels[li])
    ok = (nxt > li) & (dcost > 0)
    roi = np.where(ok, gain / np.where(ok, dcost, 1.0), 0.0)
    c_n = len(channels)
    lab = g if label_of is None else np.asarray(label_of, dtype=np.int64)[g]
    key = lab * c_n + c
    size = len(labels) * c_n
    users = np.bincount(key, minlength=size)
    n_ok = np.bincount(key, weights=ok, minlength=size)
    total = np.bincount(key, weights=roi, minlength=size)
    keys = np.flatnonzero(users)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_ok[keys] > 0, total[keys] / n_ok[keys], np.nan)
    return pd.DataFrame(
        {
            "segment": np.asarray(labels, dtype=object)[keys // c_n],
            "channel": np.array([x.name for x in channels], dtype=object)[keys % c_n],
            "users": users[keys],
            "marginal_roi": mean,
        }
    )
