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
from statistics import NormalDist

import numpy as np

from .. import _convert as cv
from .. import _core

__all__ = [
    "Calibration",
    "ControlPool",
    "LinearCalibration",
    "ScaledCalibration",
    "dl_tau2",
    "fit_calibration",
    "fit_linear_calibrations",
    "fit_scaled_calibrations",
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
        """The map at ``score``: ``np.interp(score, knots_x, knots_y)``, ``knots_y[0]``
        everywhere for a map of one knot (computed in Rust with numpy's arithmetic,
        :func:`interp_columns`)."""
        s = np.asarray(score, dtype=np.float64)
        return interp_columns(s.reshape(-1, 1), [self], np.zeros(1, np.int64)).reshape(s.shape)

    def forecast_var(self, score: np.ndarray) -> float:
        """Variance of the sum of the map's values at ``score``: each bin's effect is uncertain
        with its s.e., errors fully correlated within a bin (one estimate serves all its pairs)
        and independent between bins."""
        score = cv.as_array(score, "score", allow_empty=True)
        b = np.clip(np.searchsorted(self.knots_x, score), 0, len(self.se) - 1)
        per_bin = np.bincount(b, minlength=len(self.se)) * self.se
        return float((per_bin**2).sum())

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


@dataclass
class LinearCalibration:
    """Linear non-decreasing map from raw score to realised effect: ``intercept + slope x (score
    - centre)`` (see :func:`fit_linear_calibrations`) for scores between ``knots_x`` (the 0.1 %
    and 99.9 % quantiles of the scores it was fitted on), flat beyond them: the line is not
    extrapolated past the scores the log vouches for. ``knots_y``: the map at ``knots_x``."""

    intercept: float
    slope: float
    centre: float
    se_intercept: float
    se_slope: float
    counts: np.ndarray
    knots_x: np.ndarray
    knots_y: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(score, dtype=np.float64), self.knots_x[0], self.knots_x[-1])
        return self.intercept + self.slope * (s - self.centre)

    def forecast_var(self, score: np.ndarray) -> float:
        """Variance of the sum of the map's values at ``score``: the intercept's and the
        slope's errors are each shared by every pair (fully correlated), and independent of
        each other (the scores are centred)."""
        s = cv.as_array(score, "score", allow_empty=True)
        s = np.clip(s, self.knots_x[0], self.knots_x[-1])
        return float(
            (len(s) * self.se_intercept) ** 2 + ((s - self.centre).sum() * self.se_slope) ** 2
        )

    def table(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "score": self.knots_x,
                "calibrated_effect": self.knots_y,
                "intercept": self.intercept,
                "slope": self.slope,
                "centre": self.centre,
                "se_intercept": self.se_intercept,
                "se_slope": self.se_slope,
                "n_treated": self.counts[0],
                "n_control": self.counts[1],
            }
        )


@dataclass
class ScaledCalibration(Calibration):
    """The model's own score, scaled per stratum (:func:`fit_scaled_calibrations`):
    ``level x max(score, 0) / mean_score`` for scores between ``knots_x[0]`` and ``knots_x[-1]``
    (the 0.1 % and 99.9 % quantiles of the scores it was fitted on), flat beyond them; a flat
    ``level`` when the level is not positive. Stored as the piecewise-linear map of
    :class:`Calibration` (knots at quantiles of the scores and at 0, exact between them), so it
    is applied by the same code; ``level``: the stratum's mean effect on the log after
    shrinkage, ``level_se`` its posterior standard error, ``raw_level`` before shrinkage,
    ``mean_score``: the mean of ``max(score, 0)`` over the stratum's log pairs; ``tested``:
    ``False`` when the log could not tell the raw level from 0 and the level was set to 0
    (``alpha`` of :func:`fit_scaled_calibrations`)."""

    level: float = 0.0
    level_se: float = 0.0
    raw_level: float = 0.0
    mean_score: float = 1.0
    tested: bool = True

    def forecast_var(self, score: np.ndarray) -> float:
        """Variance of the sum of the map's values at ``score``: one estimated level serves
        every pair, so its error is fully correlated across them: ``(sum of value / level)**2
        x level_se**2``."""
        s = cv.as_array(score, "score", allow_empty=True)
        if self.level > 0 and self.mean_score > 0:
            s = np.clip(s, self.knots_x[0], self.knots_x[-1])
            weight = float(np.maximum(s, 0.0).sum() / self.mean_score)
        else:
            weight = float(len(s))
        return (weight * self.level_se) ** 2

    def table(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "score": self.knots_x,
                "calibrated_effect": self.knots_y,
                "level": self.level,
                "raw_level": self.raw_level,
                "level_se": self.level_se,
                "mean_score": self.mean_score,
                "tested": self.tested,
                "n_treated": self.counts[0],
                "n_control": self.counts[1],
            }
        )


@dataclass
class ControlPool:
    """Every control row of a randomised log, for the scaled map's levels: ``eligible`` (rows x
    tasks, bool: could the task have reached the row's user), ``y`` (the rows' outcome net of
    its baseline), ``task_stratum`` (each task's calibration stratum) and ``treated_counts``
    (each task's delivered treated rows)."""

    eligible: np.ndarray
    y: np.ndarray
    task_stratum: np.ndarray
    treated_counts: np.ndarray

    def weights(self, s: int) -> np.ndarray:
        """Each control row's weight in stratum ``s``'s control mean: ``sum over the
        stratum's tasks t of w_t x eligible[row, t] / n_t``, with ``w_t`` the task's share of
        the stratum's treated rows and ``n_t`` its eligible controls, so that the mean is
        ``sum_t w_t x (mean of the controls eligible for t)``: the treated rows' mixture of
        tasks, each compared with every control the task could have reached (the treated
        were kept only if delivered). Tasks no control is eligible for are left out and the
        other tasks' shares rescaled."""
        tasks = np.flatnonzero((self.task_stratum == s) & (self.treated_counts > 0))
        n_t = self.eligible[:, tasks].sum(axis=0)
        tasks, n_t = tasks[n_t > 0], n_t[n_t > 0]
        if not len(tasks):
            raise ValueError(f"log: calibration stratum {s} has no control eligible for its tasks")
        w = self.treated_counts[tasks] / self.treated_counts[tasks].sum()
        return self.eligible[:, tasks].astype(np.float64) @ (w / n_t)

    def level(self, s: int) -> tuple[float, float, float]:
        """Stratum ``s``'s control mean (:meth:`weights`), its sampling variance (the weights'
        sum of squares times the variance of the weighted controls' outcomes) and the
        effective number of controls (1 / that sum of squares)."""
        a = self.weights(s)
        used = a > 0
        if used.sum() < 2:
            raise ValueError(f"log: calibration stratum {s} has fewer than 2 control rows")
        mean = float(a @ self.y)
        ss = float(a @ a)
        return mean, float(self.y[used].var(ddof=1)) * ss, 1.0 / ss


def fit_scaled_calibrations(
    score: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    strata: np.ndarray,
    shrink: bool = True,
    knots: int = 64,
    alpha: float | None = None,
    controls: ControlPool | None = None,
) -> list[ScaledCalibration]:
    """One scaled map per stratum (``Planner(calibration="scaled")``): the stratum's effect on
    the randomised log (mean realised outcome of its treated pairs less that of its controls at
    pseudo-tasks of the stratum, outcomes net of their baseline) is its *level*, and a pair's
    value is the level times its score relative to the stratum's mean score (scores below 0
    count as 0): the log decides how much a stratum earns, the model which of its pairs earn
    it. With ``shrink`` the strata's levels are shrunk toward 0 by their noise (the
    DerSimonian-Laird spread between strata, as the binned maps' stratum means).

    Why: the binned map re-estimates the shape of the score-to-effect curve from the realised
    outcomes of a handful of bins per stratum; on logs of 100k users a bin's standard error
    (about 1 in GMV on the default worlds) is as large as the differences the bins are to tell
    apart, so the map is mostly noise and its noise decides which users are planned. The
    level is one number per stratum, estimated from all of its rows. The price is trust in
    the model's relative scale within a stratum (a pair scored twice the stratum's mean is
    valued at twice its level), which a log cannot check at that size; its forecasts are
    compared with the world's in the report.

    ``alpha``: a stratum whose raw effect the log cannot tell from 0 (two-sided test at level
    ``alpha``: ``|raw_level| <= z(1 - alpha / 2) x its standard error``) is valued at 0 (a flat
    map; ``tested=False``). Why: a shrunk level keeps its estimate's sign, and a positive level,
    however small, makes a task without incentive worth sending to every eligible user, so the
    sign of one noisy mean decides a plan's largest stratum. Measured with the dq protocol: the
    no-incentive stratum's true effect on the default world is about -0.05 per pair; its raw
    level came out between -0.68 and +0.76 at 100k users (standard error about 0.47; 4 worlds
    x 3 seeds) and between -0.07 and +0.16 at 1M (about 0.15; planner seeds 0-2). See
    ``Planner(level_alpha=...)`` for what the test changed.

    ``controls``: every control row of the log (:class:`ControlPool`), so that a stratum's
    treated mean is compared with all the controls eligible for its tasks, not only those whose
    pseudo-task fell in it (:meth:`ControlPool.level`); ``None``: the controls among ``y``'s
    rows (``~treated``) at their pseudo-tasks."""
    S = int(strata.max()) + 1 if len(strata) else 0
    raw = np.zeros(S)
    se = np.zeros(S)
    counts = []
    for s in range(S):
        m = strata == s
        yt, yc = y[m & treated], y[m & ~treated]
        if controls is not None:
            if len(yt) < 2:
                raise ValueError(f"log: calibration stratum {s} has fewer than 2 treated rows")
            c_mean, c_var, n_eff = controls.level(s)
            raw[s] = yt.mean() - c_mean
            se[s] = np.sqrt(yt.var(ddof=1) / len(yt) + c_var)
            counts.append((len(yt), int(round(n_eff))))
            continue
        if len(yt) < 2 or len(yc) < 2:
            raise ValueError(
                f"log: calibration stratum {s} has fewer than 2 treated or 2 control rows"
            )
        raw[s] = yt.mean() - yc.mean()
        se[s] = np.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))
        counts.append((len(yt), len(yc)))
    if shrink and S > 0:
        level, var = shrink_to_mean(raw, se, mean=0.0)
    else:
        level, var = raw.copy(), se**2
    tested = np.ones(S, dtype=bool)
    if alpha is not None:
        tested = np.abs(raw) > NormalDist().inv_cdf(1.0 - alpha / 2.0) * se
        level = np.where(tested, level, 0.0)
    out = []
    for s in range(S):
        x = score[strata == s]
        kx = np.quantile(x, np.linspace(0.001, 0.999, knots))
        if kx[0] < 0.0 < kx[-1]:
            kx = np.sort(np.r_[kx, 0.0])
        kx = np.unique(kx)
        mean_pos = float(np.maximum(x, 0.0).mean())
        if level[s] > 0 and mean_pos > 0:
            ky = level[s] * np.maximum(kx, 0.0) / mean_pos
        else:
            ky = np.full(len(kx), level[s])
        out.append(
            ScaledCalibration(
                knots_x=kx,
                knots_y=ky,
                se=np.full(len(kx), np.sqrt(var[s])),
                raw=np.full(len(kx), raw[s]),
                counts=np.array(counts[s]),
                level=float(level[s]),
                level_se=float(np.sqrt(var[s])),
                raw_level=float(raw[s]),
                mean_score=mean_pos,
                tested=bool(tested[s]),
            )
        )
    return out


def interp_columns(scores: np.ndarray, maps: list[Calibration], map_of: np.ndarray) -> np.ndarray:
    """Column ``c`` of ``scores`` (n, t) through the isotonic map ``maps[map_of[c]]``, float64
    (n, t): the one definition of :class:`Calibration`'s map (``np.interp``'s arithmetic, in
    Rust: ``src/planning/calmap.rs``)."""
    s = np.ascontiguousarray(scores, dtype=np.float64)
    return _core.planning_interp_columns(
        s,
        [np.ascontiguousarray(m.knots_x, dtype=np.float64) for m in maps],
        [np.ascontiguousarray(m.knots_y, dtype=np.float64) for m in maps],
        np.ascontiguousarray(map_of, dtype=np.int64),
    )


def _interacted_ols(
    score: np.ndarray, y: np.ndarray, treated: np.ndarray
) -> tuple[float, float, float, float, float]:
    """``y = c0 + c1 x + T (a + b x)`` by least squares, ``x`` = score - its mean: the effect
    ``a`` at the mean score and its slope ``b`` (treatment randomised, so the ``T`` terms are
    the effect's), with heteroskedasticity-robust (HC0) standard errors. Returns (a, se_a, b,
    se_b, mean score)."""
    x = np.asarray(score, dtype=np.float64)
    mu = float(x.mean())
    xc = x - mu
    t = treated.astype(np.float64)
    M = np.column_stack([np.ones_like(xc), xc, t, t * xc])
    G = M.T @ M
    Ginv = np.linalg.pinv(G)
    coef = Ginv @ (M.T @ y)
    res = y - M @ coef
    meat = (M * (res**2)[:, None]).T @ M
    cov = Ginv @ meat @ Ginv
    return (
        float(coef[2]),
        float(np.sqrt(max(cov[2, 2], 0.0))),
        float(coef[3]),
        float(np.sqrt(max(cov[3, 3], 0.0))),
        mu,
    )


def fit_linear_calibrations(
    score: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    strata: np.ndarray,
    shrink: bool = True,
    shrink_mean: bool = True,
) -> list[LinearCalibration]:
    """One linear map per stratum (``Planner(calibration="linear")``): in each stratum the
    realised outcome (net of its baseline) is regressed on the score, the treatment and their
    product (:func:`_interacted_ols`), so the map's slope is how much of a difference in score
    the log shows as a difference in realised effect. With ``shrink`` the strata's pooled
    slope is shrunk toward 0 by its noise, and each stratum's slope toward that by their
    spread and its noise (DerSimonian-Laird, as the bins of :func:`fit_calibration`): a slope
    the log cannot tell from 0 is planned as 0 (a flat map, as the binned one). A slope below 0
    becomes 0 (the score's differences are not trusted); with ``shrink_mean`` each stratum's
    effect at its mean score is shrunk toward 0 by its noise, as ``_shrink_strata`` does for
    the binned maps.

    Unlike the binned map, which is flat beyond its first and last bin centres (the means of
    the top and bottom fifths with 5 bins), the line keeps rising up to the 99.9 % quantile of
    the fitted scores (flat beyond: a handful of extreme scores would otherwise be valued by
    extrapolation, and the optimiser would pick exactly those). The line is honest on average
    over the log's pairs, not pair by pair: its forecasts are compared with the world's in the
    report."""
    S = int(strata.max()) + 1 if len(strata) else 0
    fits = []
    for s in range(S):
        m = strata == s
        tr = treated[m]
        if tr.sum() < 2 or (~tr).sum() < 2:
            raise ValueError(
                f"log: calibration stratum {s} has fewer than 2 treated or 2 control rows"
            )
        fits.append(_interacted_ols(score[m], y[m], tr) + (int(tr.sum()), int((~tr).sum())))
    a = np.array([f[0] for f in fits])
    se_a = np.array([f[1] for f in fits])
    b = np.array([f[2] for f in fits])
    se_b = np.array([f[3] for f in fits])
    ok = se_b > 0
    if shrink and ok.any():
        # the pooled slope, shrunk toward 0 by its own noise, then each stratum's toward it
        w = 1.0 / se_b[ok] ** 2
        pooled = np.array([(w * b[ok]).sum() / w.sum()])
        centre, _ = shrink_to_mean(pooled, np.array([np.sqrt(1.0 / w.sum())]), mean=0.0)
        b[ok], var_b = shrink_to_mean(b[ok], se_b[ok], mean=float(centre[0]))
        se_b[ok] = np.sqrt(var_b)
    b = np.maximum(b, 0.0)
    ok = se_a > 0
    if shrink and shrink_mean and ok.sum() > 0:
        a[ok], var_a = shrink_to_mean(a[ok], se_a[ok], mean=0.0)
        se_a[ok] = np.sqrt(var_a)
    out = []
    for s in range(S):
        m = strata == s
        lo, hi = (float(q) for q in np.quantile(score[m], [0.001, 0.999]))
        mu = fits[s][4]
        kx = np.array([lo, hi]) if hi > lo else np.array([lo])
        out.append(
            LinearCalibration(
                intercept=float(a[s]),
                slope=float(b[s]),
                centre=mu,
                se_intercept=float(se_a[s]),
                se_slope=float(se_b[s]),
                counts=np.array(fits[s][5:7]),
                knots_x=kx,
                knots_y=a[s] + b[s] * (kx - mu),
            )
        )
    return out


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
