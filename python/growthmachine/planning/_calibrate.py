"""Honest values: a model's out-of-fold scores mapped to the effects a randomised log shows.

An uplift model's raw estimates are noisy; the pairs an optimiser picks are those whose noise
happened to be high (the winner's curse), so raw estimates overstate a plan's value (today's plan
reported 15 times its true value). The map here turns a raw score into the average *realised*
effect of the pairs with that score, measured on the experiment itself:

- every row's score is out-of-fold (from models that never saw the row);
- a treated row is scored at the task it received; a control row at a task drawn at random from
  the same assignment distribution among the tasks it was eligible for (a *pseudo-task*), so the
  (user, task) pairs of both groups have the same distribution;
- rows are grouped into quantile bins of the score; in each bin the effect is the mean outcome of
  the treated minus the mean outcome of the controls, both net of a baseline prediction (ridge
  regression on the controls' features, out-of-fold: variance reduction only, it cancels in
  expectation because the groups are randomised);
- each bin's effect is shrunk toward the bins' pooled mean by its own noise (empirical Bayes:
  the spread between bins by the DerSimonian-Laird estimator, each bin's posterior mean), so a
  bin that looks good only by chance does not pass its luck to every pair scored into it;
- the bin effects are made non-decreasing in the score by weighted pool-adjacent-violators
  (weights = inverse posterior variances), and a score maps to the effect by linear
  interpolation between bin centres (flat beyond the ends).

By randomisation each bin's difference is an unbiased estimate of the mean true effect of the
pairs in that bin, so the calibrated value of a plan is an honest forecast of what it earns, up
to the selection among a user's tasks that the map cannot see (stated in the report, which
compares forecasts with what the world says happened).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Calibration",
    "dl_tau2",
    "fit_calibration",
    "ridge_baseline",
    "ridge_fit",
    "shrink_to_mean",
]


@dataclass
class Calibration:
    """Piecewise-linear non-decreasing map from raw score to realised effect."""

    knots_x: np.ndarray
    knots_y: np.ndarray
    se: np.ndarray
    raw: np.ndarray
    counts: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        if len(self.knots_x) == 1:
            return np.full(np.shape(score), self.knots_y[0], dtype=np.float64)
        return np.interp(score, self.knots_x, self.knots_y)

    def table(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "score": self.knots_x,
                "raw_effect": self.raw,
                "calibrated_effect": self.knots_y,
                "se": self.se,
                "n_treated": self.counts[:, 0],
                "n_control": self.counts[:, 1],
            }
        )


def _pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y, w, strict=True):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            vals[-2:] = [v]
            wts[-2:] = [wsum]
            sizes[-2:] = [sizes[-2] + sizes[-1]]
    return np.repeat(vals, sizes)


def fit_calibration(
    score_t: np.ndarray,
    y_t: np.ndarray,
    score_c: np.ndarray,
    y_c: np.ndarray,
    bins: int = 10,
    min_rows: int = 50,
    shrink: bool = True,
) -> Calibration:
    """The map from score to realised effect (see the module docs). ``y_*`` are outcomes net of
    the baseline prediction. Bins are quantiles of the pooled scores, merged until each holds at
    least ``min_rows`` treated and ``min_rows`` control rows. ``shrink=False`` skips the
    empirical-Bayes step (the raw bin differences go to the isotonic fit)."""
    pooled = np.concatenate([score_t, score_c])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)[1:-1]))
    bt = np.searchsorted(edges, score_t, side="right")
    bc = np.searchsorted(edges, score_c, side="right")
    k = len(edges) + 1
    nt = np.bincount(bt, minlength=k).astype(float)
    nc = np.bincount(bc, minlength=k).astype(float)
    # merge thin bins into their right neighbour (the last into its left)
    groups = []
    cur: list[int] = []
    for b in range(k):
        cur.append(b)
        if nt[cur].sum() >= min_rows and nc[cur].sum() >= min_rows:
            groups.append(cur)
            cur = []
    if cur:
        if groups:
            groups[-1] = groups[-1] + cur
        else:
            groups.append(cur)
    gid = np.empty(k, dtype=np.int64)
    for g, members in enumerate(groups):
        gid[members] = g
    G = len(groups)
    gt, gc = gid[bt], gid[bc]

    def stats(g, y):
        n = np.bincount(g, minlength=G).astype(float)
        s = np.bincount(g, weights=y, minlength=G)
        s2 = np.bincount(g, weights=y * y, minlength=G)
        m = s / np.maximum(n, 1)
        v = np.maximum(s2 / np.maximum(n, 1) - m * m, 0.0) * n / np.maximum(n - 1, 1)
        return n, m, v

    n_t, m_t, v_t = stats(gt, y_t)
    n_c, m_c, v_c = stats(gc, y_c)
    raw = m_t - m_c
    se = np.sqrt(v_t / np.maximum(n_t, 1) + v_c / np.maximum(n_c, 1))
    x = np.bincount(gt, weights=score_t, minlength=G) + np.bincount(
        gc, weights=score_c, minlength=G
    )
    x = x / np.maximum(n_t + n_c, 1)
    post, post_var = shrink_to_mean(raw, se) if shrink else (raw, se**2)
    fitted = _pav(post, 1.0 / np.maximum(post_var, 1e-24))
    return Calibration(
        knots_x=x, knots_y=fitted, se=se, raw=raw, counts=np.column_stack([n_t, n_c])
    )


def dl_tau2(est: np.ndarray, se: np.ndarray, mean: float | None = None) -> tuple[float, float]:
    """DerSimonian-Laird between-group variance of ``est`` (standard errors ``se``) and the
    pooled mean (``mean`` fixes it, e.g. 0 for "no effect")."""
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    mu = float((w * est).sum() / w.sum()) if mean is None else float(mean)
    k = len(est) - (1 if mean is None else 0)
    q = float((w * (est - mu) ** 2).sum())
    denom = w.sum() - (w**2).sum() / w.sum() if mean is None else w.sum()
    tau2 = max(0.0, (q - k) / denom) if denom > 0 else 0.0
    return tau2, mu


def shrink_to_mean(
    est: np.ndarray, se: np.ndarray, mean: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical-Bayes posterior means and variances of ``est`` under a normal prior centred on
    the pooled mean (or ``mean``) with the DerSimonian-Laird spread (:func:`dl_tau2`)."""
    if len(est) < 2 and mean is None:
        return est.astype(np.float64), np.asarray(se, np.float64) ** 2
    tau2, mu = dl_tau2(est, se, mean)
    v = np.asarray(se, np.float64) ** 2
    lam = tau2 / (tau2 + v) if tau2 > 0 else np.zeros_like(v)
    return mu + lam * (est - mu), lam * v


def ridge_fit(Xf: np.ndarray, yf: np.ndarray, alpha: float = 1.0):
    """A ridge regression of ``yf`` on the standardised ``Xf`` (intercept unpenalised); returns
    its prediction function for new rows."""
    mu = Xf.mean(0)
    sd = Xf.std(0)
    sd[sd == 0] = 1.0
    Z = (Xf - mu) / sd
    ym = yf.mean()
    A = Z.T @ Z + alpha * len(Z) * 1e-3 * np.eye(Z.shape[1])
    beta = np.linalg.solve(A, Z.T @ (yf - ym))
    return lambda X: _by_rows(X, lambda b: ym + ((b - mu) / sd) @ beta)


def _by_rows(X: np.ndarray, f, block: int = 16384) -> np.ndarray:
    """``f`` (row-wise) of ``X`` a block of rows at a time: no (n x p) temporaries."""
    if len(X) <= block:
        return f(X)
    return np.concatenate([f(X[a : a + block]) for a in range(0, len(X), block)])


def ridge_baseline(
    X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, alpha: float = 1.0
) -> np.ndarray:
    """Predictions for every row of ``X`` from a ridge regression of ``y`` on the standardised
    ``X[fit_rows]`` (intercept unpenalised)."""
    return ridge_fit(X[fit_rows], y[fit_rows], alpha)(X)
