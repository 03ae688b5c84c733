"""The frequency planner's opt-out cap (``FrequencyPlanner.plan(max_optouts=...)``): the price
per opt-out that keeps a plan's expected opt-outs under a number or under a reference plan's, and
the model's standard error of those opt-outs (``optout_z``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core

if TYPE_CHECKING:
    from ._planner import FrequencyPlan, FrequencyPlanner

#: The opt-out cap's bisection stops once the plan's expected opt-outs are within this share of
#: the cap (below it).
CAP_TOL = 0.02


def _reference(plan: FrequencyPlan, users: np.ndarray, planner: FrequencyPlanner) -> tuple:
    """A reference plan given as ``max_optouts``, checked against the users and the planner:
    each user's (channel code, 255 for none; exposures)."""
    a = plan.assignment
    if len(a) != len(users) or not np.array_equal(a["user_id"].to_numpy(), users):
        raise ValueError("max_optouts: the reference plan must plan the same users, in order")
    names = tuple(c.name for c in planner.channels)
    if tuple(plan.channels) != names:
        raise ValueError(
            f"max_optouts: the reference plan's channels {plan.channels} are not the planner's "
            f"{names}"
        )
    codes = a["channel"].cat.codes.to_numpy()
    lv = a["exposures"].to_numpy(np.int64)
    on = (codes >= 0) & (lv > 0)
    bad = on & ~np.isin(lv, planner.levels)
    if bad.any():
        raise ValueError(
            f"max_optouts: the reference plan gives {lv[bad][0]} exposures, not one of the "
            "planner's levels"
        )
    ch = np.where(on, codes, 255).astype(np.uint8)
    return ch, np.where(on, lv, 0).astype(np.uint32)


class _OptoutError:
    """The model's standard error of a plan's expected opt-outs, or of their difference with a
    reference plan (``ref``: channel and exposures per user), under the planner's group curves
    (``opt``, ``group`` from :meth:`FrequencyPlanner._model_curves`): the delta method on the
    Laplace posteriors of each segment's opt-out parameters ``(log a, log d)``. With ``P = 1 -
    exp(-L)`` and ``L = a n + d (load)``, ``dP / dlog a = (1 - P) a n`` and ``dP / dlog d = (1 -
    P) (L - a n)``; the gradients of every user are summed per segment and channel, and the
    variance is the sum over those cells of ``g' V g`` (cells independent: the shared channel
    centre's error, which moves every segment of a channel together, is in each cell's ``V``
    but not its correlation across cells)."""

    def __init__(self, planner, inc, opt, group, ref):
        m = planner.model
        core = m._core
        names = list(m.channels_)
        idx = [names.index(c.name) for c in planner.channels]
        cov = np.concatenate([np.asarray(core.cov_opt), np.asarray(core.channel_cov_opt)[None]])[
            :, idx
        ].reshape(-1, len(idx), 2, 2)
        a = np.concatenate([np.asarray(core.params)[..., 4],
                            np.asarray(core.channel_params)[None, :, 4]])[:, idx]  # fmt: skip
        seg = np.asarray(planner.group_segment_)
        c_n = len(idx)
        n = planner.levels.astype(np.float64)
        p = np.clip(opt, 0.0, 1.0 - 1e-12)
        hazard = -np.log1p(-p)
        an = a[seg][:, :, None] * n[None, None, :]
        self.grad = np.stack([(1.0 - p) * an, (1.0 - p) * np.maximum(hazard - an, 0.0)], -1)
        self.cell = (seg[:, None] * c_n + np.arange(c_n)[None, :]).astype(np.int64)
        self.cov = cov.reshape(-1, 2, 2)
        self.group, self.levels = group.astype(np.int64), planner.levels
        self.base = np.zeros((len(self.cov), 2))
        if ref is not None:
            self.base = -self._sums(*ref)

    def _sums(self, ch: np.ndarray, lv: np.ndarray) -> np.ndarray:
        on = (ch != 255) & (lv > 0)
        g, c = self.group[on], ch[on].astype(np.int64)
        li = np.searchsorted(self.levels, lv[on])
        k = self.cell[g, c]
        gr = self.grad[g, c, li]
        m = len(self.cov)
        return np.stack([np.bincount(k, weights=gr[:, j], minlength=m) for j in (0, 1)], -1)

    def __call__(self, ch: np.ndarray, lv: np.ndarray) -> float:
        s = self.base + self._sums(ch, lv)
        return float(np.sqrt(max(np.einsum("ki,kij,kj->", s, self.cov, s), 0.0)))


def _price_optouts(
    solve, optouts, cap: float, value: np.ndarray, cb: Any, first: dict
) -> tuple[dict, float, dict]:
    """The smallest extra price per opt-out (bisection on a log scale, 30 solves at most) whose
    plan meets ``cap``, stopping once the plan uses the cap to within :data:`CAP_TOL`; returns
    that plan, the price and the last plan above the cap (``first``: the plan at price 0)."""
    lo, hi = 0.0, max(float(np.mean(value)), 1e-6)
    out_lo, out_hi = first, solve(hi, cb)
    for _ in range(20):
        if optouts(out_hi) <= cap:
            break
        lo, hi, out_lo = hi, hi * 4.0, out_hi
        out_hi = solve(hi, cb)
    else:
        raise _core.InfeasibleError(f"max_optouts: no price on opt-outs meets the cap {cap:.2f}")
    for _ in range(10):
        if optouts(out_hi) >= (1.0 - CAP_TOL) * cap:
            break  # the cap is used to within CAP_TOL: a finer price changes little
        mid = 0.5 * (lo + hi)
        out = solve(mid, cb)
        if optouts(out) <= cap:
            hi, out_hi = mid, out
        else:
            lo, out_lo = mid, out
    return out_hi, hi, out_lo
