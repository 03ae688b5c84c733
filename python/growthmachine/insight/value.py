"""Customer value models: BG/NBD (:class:`BetaGeo`), Gamma-Gamma (:class:`GammaGamma`) and
:func:`clv`, fitted by maximum likelihood in Rust.

Both fits minimise the weighted mean negative log-likelihood plus an optional L2 penalty, with
the same convention as the ``lifetimes`` package's ``penalizer_coef`` so results can be matched:
BG/NBD penalises ``penalizer * (r^2 + (alpha / max(T))^2 + a^2 + b^2)`` (lifetimes fits in time
scaled by max(T)), Gamma-Gamma ``penalizer * (p^2 + q^2 + gamma^2)``. The optimiser is a damped
Newton method on the log-parameters with analytic gradient and Hessian and a line search; rows
that are exactly identical are merged (their weights add up) before fitting, nothing is rounded.
``log_likelihood_`` is the full weighted log-likelihood (a sum, not a mean) without the penalty;
standard errors come from the analytic Hessian at the optimum (as lifetimes computes them).

Results are finite or an error, never a silent NaN: a fit whose parameters or log-likelihood are
not finite (a penalizer or data values so large that the objective overflows) raises
``ValueError`` naming the penalizer and the data arguments; standard errors that do not exist
(the Hessian at the optimum is not positive definite: data that do not identify the model, such as
a single customer or one row carrying nearly all the weight) are NaN with a ``RuntimeWarning``; a
prediction that is not finite for finite inputs (values so large that the formula overflows, e.g.
a frequency of 1e15) raises ``ValueError`` naming the inputs and the row.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._core import StateError
from .._state import Versioned

__all__ = ["BetaGeo", "GammaGamma", "clv"]


def _vec(x: Any, name: str, n: int | None = None) -> np.ndarray:
    a = cv.as_array(x, name, np.float64)
    if n is not None and len(a) != n:
        raise ValueError(f"{name}: has length {len(a)}, expected {n} (the length of frequency)")
    return a


def _bg_inputs(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) from three array-likes, or from one table with those columns."""
    if cv.is_table(frequency) and recency is None and T is None:
        t = frequency
        return (
            _vec(cv.column(t, "frequency", "frequency"), "frequency"),
            _vec(cv.column(t, "frequency", "recency"), "recency"),
            _vec(cv.column(t, "frequency", "T"), "T"),
        )
    if recency is None or T is None:
        raise TypeError("recency, T: required unless frequency is a table with those columns")
    x = _vec(frequency, "frequency")
    return x, _vec(recency, "recency", len(x)), _vec(T, "T", len(x))


def _weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = cv.as_array(weights, "weights", np.float64, nonnegative=True)
    if len(w) != n:
        raise ValueError(f"weights: has length {len(w)}, expected {n} (the length of frequency)")
    return w


def _finite(out: Any, what: str, **inputs: np.ndarray) -> Any:
    """``out`` if every value is finite, else ``ValueError`` naming the inputs and the first row
    whose ``what`` is not (finite inputs whose formula overflows)."""
    a = np.asarray(out, dtype=np.float64)
    if a.size and not _core.all_finite(np.ascontiguousarray(a.reshape(-1))):
        i = int(np.flatnonzero(~np.isfinite(a.reshape(-1)))[0])
        row = ", ".join(f"{k}={v[i]:g}" for k, v in inputs.items())
        raise ValueError(
            f"{', '.join(inputs)}: row {i} ({row}) is outside the model's numeric range (its "
            f"{what} is {a.reshape(-1)[i]}: values this large overflow the formula)"
        )
    return out


class _Fitted(Versioned):
    _PARAMS: tuple[str, ...] = ()
    #: The data arguments of fit (named when a fit is not finite).
    _DATA = ""
    _NOT_CONVERGED_HINT = ""

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise StateError(f"{type(self).__name__} is not fitted yet: call fit() first")

    def _set_fit(self, r: dict[str, Any]) -> None:
        names = self._PARAMS
        if not (np.isfinite(r["params"]).all() and np.isfinite(r["log_likelihood"])):
            ps = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, r["params"], strict=True))
            raise ValueError(
                f"{self._DATA}, penalizer: the {type(self).__name__} fit is not finite ({ps}, "
                f"log-likelihood {r['log_likelihood']}): penalizer={self.penalizer:g} or the "
                "data's values are too large for the model's arithmetic"
            )
        if not np.isfinite(r["std_errors"]).all():
            warnings.warn(
                f"{type(self).__name__}.fit: standard errors are not finite (NaN): the Hessian "
                "at the optimum is not positive definite, the data do not identify the model "
                "(e.g. a single customer, or one row carrying nearly all the weight)",
                RuntimeWarning,
                stacklevel=3,
            )
        self.params_ = dict(zip(names, r["params"], strict=True))
        self.log_likelihood_ = float(r["log_likelihood"])
        self.standard_errors_ = dict(zip(names, r["std_errors"], strict=True))
        k = len(names)
        self.covariance_ = pd.DataFrame(
            np.asarray(r["covariance"]).reshape(k, k), index=list(names), columns=list(names)
        )
        self.n_iter_ = int(r["n_iter"])
        self.converged_ = bool(r["converged"])
        if not self.converged_:
            ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            warnings.warn(
                f"{type(self).__name__}.fit did not converge in {self.n_iter_} iterations "
                f"({ps}): the data may not identify the model{self._NOT_CONVERGED_HINT}; "
                "do not trust params_ (a penalizer > 0 keeps them finite)",
                RuntimeWarning,
                stacklevel=3,
            )
        self.n_unique_ = int(r["n_unique"])
        self.total_weight_ = float(r["total_weight"])

    def _p(self) -> list[float]:
        self._check_fitted()
        return [self.params_[k] for k in self._PARAMS]

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors and 95% Wald intervals."""
        self._check_fitted()
        coef = pd.Series(self.params_)
        se = pd.Series(self.standard_errors_)
        return pd.DataFrame(
            {"coef": coef, "se": se, "lower 95%": coef - 1.96 * se, "upper 95%": coef + 1.96 * se}
        )

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(penalizer={self.penalizer})"
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({ps}, log_likelihood={self.log_likelihood_:.6g})"


class BetaGeo(_Fitted):
    """BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005).

    ``BetaGeo(penalizer=0.0).fit(frequency, recency, T, weights=None)`` with the lifetimes
    conventions (``frequency`` = repeat purchase days, ``recency`` = t_x, ``T`` = age, in days;
    the output of :func:`growthmachine.insight.features` can be passed as ``frequency`` alone).
    Fitted: ``params_`` (``r``, ``alpha``, ``a``, ``b``), ``log_likelihood_``,
    ``standard_errors_``, ``covariance_``, ``n_iter_``, ``converged_``, ``n_unique_`` (rows after
    merging identical ones), ``total_weight_``.
    """

    _STATE_KIND = "insight.BetaGeo"
    _STATE_VERSION = 1
    _PARAMS = ("r", "alpha", "a", "b")
    _DATA = "frequency, recency, T, weights"

    def __init__(self, penalizer: float = 0.0, max_iter: int = 200):
        self.penalizer = cv.check_number(penalizer, "penalizer", minimum=0.0)
        self.max_iter = cv.check_int(max_iter, "max_iter", minimum=1, maximum=cv.I64_MAX)

    def fit(
        self,
        frequency: Any,
        recency: Any = None,
        T: Any = None,
        weights: Any = None,
        *,
        progress: bool | None = None,
    ) -> BetaGeo:
        x, t, tt = _bg_inputs(frequency, recency, T)
        w = _weights(weights, len(x))
        if cv.is_table(frequency) and "is_prospect" in cv.columns(frequency, "frequency"):
            # prospects (no purchase yet) are not part of the BG/NBD population
            keep = ~np.asarray(cv.column(frequency, "frequency", "is_prospect"), dtype=bool)
            if not keep.all():
                x, t, tt = x[keep], t[keep], tt[keep]
                w = None if w is None else w[keep]
                if x.size == 0:
                    raise ValueError("frequency: every user is a prospect; BG/NBD needs buyers")
        with _progress.bar(progress, "BG/NBD fit") as cb:
            r = _core.insight_bgnbd_fit(x, t, tt, w, self.penalizer, self.max_iter, cb)
        self._set_fit(r)
        return self

    def log_likelihood(
        self, frequency: Any, recency: Any = None, T: Any = None, weights: Any = None
    ) -> float:
        """Full weighted log-likelihood of the data at the fitted parameters."""
        x, t, tt = _bg_inputs(frequency, recency, T)
        return _core.insight_bgnbd_loglik(self._p(), x, t, tt, _weights(weights, len(x)))

    def expected_purchases(
        self,
        t: float,
        frequency: Any,
        recency: Any = None,
        T: Any = None,
        *,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Expected purchases in the next ``t`` days given each customer's history
        (lifetimes' ``conditional_expected_number_of_purchases_up_to_time``)."""
        t = cv.check_number(t, "t", minimum=0.0)
        x, tx, tt = _bg_inputs(frequency, recency, T)
        with _progress.bar(progress, "BG/NBD predict") as cb:
            out = _core.insight_bgnbd_predict(self._p(), "expected", t, x, tx, tt, cb)
        return _finite(out, "expected purchases", frequency=x, recency=tx, T=tt)

    predict = expected_purchases

    def p_alive(self, frequency: Any, recency: Any = None, T: Any = None) -> np.ndarray:
        """Probability that each customer is still active (1 for customers without repeats)."""
        x, tx, tt = _bg_inputs(frequency, recency, T)
        out = _core.insight_bgnbd_predict(self._p(), "alive", 0.0, x, tx, tt, None)
        return _finite(out, "P(alive)", frequency=x, recency=tx, T=tt)

    def expected_purchases_new(self, t: Any) -> np.ndarray:
        """Expected purchases of a new customer in (0, t] (unconditional)."""
        arr = cv.as_array(np.atleast_1d(cv.to_numpy_raw(t, "t")), "t", nonnegative=True)
        return _finite(_core.insight_bgnbd_expected_new(self._p(), arr), "expectation", t=arr)

    @staticmethod
    def simulate(params: dict[str, float], T: Any, seed: int = 0) -> pd.DataFrame:
        """Draws customers from the BG/NBD model observed for ``T`` days each (for testing)."""
        tt = cv.as_array(T, "T", nonnegative=True)
        if not isinstance(params, dict):
            raise TypeError(
                f"params: must be a dict of r, alpha, a, b, got {type(params).__name__}"
            )
        missing = [k for k in BetaGeo._PARAMS if k not in params]
        unknown = sorted(set(params) - set(BetaGeo._PARAMS), key=str)
        if missing or unknown:
            raise ValueError(
                f"params: needs exactly r, alpha, a, b (missing: {', '.join(missing) or '-'}; "
                f"unknown: {', '.join(map(str, unknown)) or '-'})"
            )
        p = [
            cv.check_number(params[k], f"params[{k!r}]", minimum=0.0, strict_min=True)
            for k in BetaGeo._PARAMS
        ]
        x, t = _core.insight_bgnbd_simulate(
            p, tt, cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        )
        return pd.DataFrame({"frequency": x, "recency": t, "T": tt})


class GammaGamma(_Fitted):
    """Gamma-Gamma model of spend per transaction (Fader & Hardie 2013).

    ``GammaGamma(penalizer=0.0).fit(frequency, monetary, weights=None)``; customers with frequency
    0 carry no information on spend and are skipped; others need ``monetary > 0``. Fitted:
    ``params_`` (``p``, ``q``, ``gamma``; lifetimes calls gamma ``v``), ``log_likelihood_``,
    ``standard_errors_``, ``covariance_``. A fit that does not converge (``converged_`` False,
    e.g. on constant spend) warns (``RuntimeWarning``).
    """

    _STATE_KIND = "insight.GammaGamma"
    _STATE_VERSION = 1
    _PARAMS = ("p", "q", "gamma")
    _DATA = "frequency, monetary, weights"
    _NOT_CONVERGED_HINT = (
        " (every customer's spend is the same on every purchase: p grows without bound)"
    )

    def __init__(self, penalizer: float = 0.0, max_iter: int = 200):
        self.penalizer = cv.check_number(penalizer, "penalizer", minimum=0.0)
        self.max_iter = cv.check_int(max_iter, "max_iter", minimum=1, maximum=cv.I64_MAX)

    @staticmethod
    def _inputs(frequency: Any, monetary: Any) -> tuple[np.ndarray, np.ndarray]:
        if cv.is_table(frequency) and monetary is None:
            t = frequency
            return (
                _vec(cv.column(t, "frequency", "frequency"), "frequency"),
                _vec(cv.column(t, "frequency", "monetary"), "monetary"),
            )
        if monetary is None:
            raise TypeError("monetary: required unless frequency is a table with that column")
        x = _vec(frequency, "frequency")
        return x, _vec(monetary, "monetary", len(x))

    def fit(
        self,
        frequency: Any,
        monetary: Any = None,
        weights: Any = None,
        *,
        progress: bool | None = None,
    ) -> GammaGamma:
        x, m = self._inputs(frequency, monetary)
        w = _weights(weights, len(x))
        with _progress.bar(progress, "Gamma-Gamma fit") as cb:
            r = _core.insight_gammagamma_fit(x, m, w, self.penalizer, self.max_iter, cb)
        self._set_fit(r)
        return self

    def log_likelihood(self, frequency: Any, monetary: Any = None, weights: Any = None) -> float:
        x, m = self._inputs(frequency, monetary)
        return _core.insight_gammagamma_loglik(self._p(), x, m, _weights(weights, len(x)))

    def expected_spend(self, frequency: Any, monetary: Any = None) -> np.ndarray:
        """Expected spend per transaction given the history (lifetimes'
        ``conditional_expected_average_profit``); needs q > 1."""
        x, m = self._inputs(frequency, monetary)
        out = _core.insight_gammagamma_expected_spend(self._p(), x, m)
        return _finite(out, "expected spend", frequency=x, monetary=m)


def clv(
    bgnbd: BetaGeo,
    gammagamma: GammaGamma,
    frequency: Any,
    recency: Any = None,
    T: Any = None,
    monetary: Any = None,
    *,
    horizon: int = 12,
    period: float = 30.0,
    discount_rate: float = 0.01,
    progress: bool | None = None,
) -> np.ndarray:
    """Discounted customer lifetime value over ``horizon`` periods of ``period`` days.

    For each period i = 1..horizon: expected spend per purchase (Gamma-Gamma) x expected purchases
    in period i (BG/NBD) / (1 + discount_rate)^i, summed: the definition of lifetimes'
    ``GammaGammaFitter.customer_lifetime_value(..., time=horizon, discount_rate, freq="D")`` with
    30-day months. Pass the :func:`features` table as ``frequency`` to read all four columns.
    ``discount_rate`` must be >= 0.
    """
    if not isinstance(bgnbd, BetaGeo):
        raise TypeError(f"bgnbd: must be a fitted BetaGeo, got {type(bgnbd).__name__}")
    if not isinstance(gammagamma, GammaGamma):
        raise TypeError(f"gammagamma: must be a fitted GammaGamma, got {type(gammagamma).__name__}")
    if cv.is_table(frequency) and recency is None:
        x, t, tt = _bg_inputs(frequency, None, None)
        m = _vec(cv.column(frequency, "frequency", "monetary"), "monetary")
    else:
        x, t, tt = _bg_inputs(frequency, recency, T)
        m = _vec(monetary, "monetary", len(x))
    horizon = cv.check_int(horizon, "horizon", minimum=1, maximum=cv.I64_MAX)
    period = cv.check_number(period, "period", minimum=0.0, strict_min=True)
    if not np.isfinite(horizon * period):
        raise ValueError(
            f"period: horizon x period must be a finite number of days, got {horizon} x {period}"
        )
    discount_rate = cv.check_number(discount_rate, "discount_rate", minimum=0.0)
    spend = gammagamma.expected_spend(x, m)
    with _progress.bar(progress, "CLV") as cb:
        out = _core.insight_clv(bgnbd._p(), x, t, tt, spend, horizon, period, discount_rate, cb)
    return _finite(out, "CLV", frequency=x, recency=t, T=tt, monetary=m)
