"""Response curves of off-site exposures (ads, SMS, e-mail, push) per segment and channel.

A user of segment ``g`` who receives ``n`` exposures of channel ``c`` over the horizon converts
with probability ``b + A * n^h / (n^h + k^h)``: a Hill curve (Hill 1910) whose free slope ``h``
allows S-shapes, as in the media-mix response curves of Jin et al. (2017, "Bayesian methods for
media mix modeling with carryover and shape effects"). ``b`` is the baseline at ``n = 0``, ``A``
the maximal incremental conversion and ``k`` the exposures that give half of it. Every exposure
also risks an opt-out from the channel: ``P(opt-out | n) = 1 - exp(-(a n + d n^2))``, a constant
hazard ``a`` plus fatigue ``d`` that makes later touches riskier. A user who arrives with prior
fatigue ``f`` (the decayed number of earlier touches, an optional column of the log and argument
of the predictions) continues that curve from ``f``: ``a n + d (n^2 + 2 n f)``, so users more
fatigued than any in the log (e.g. those the last window touched heavily, when only fresh users
were randomised) get their higher opt-out rate from the fatigue measured within the windows.
Fatigue also damps the conversion: ``n`` exposures to a tired user count as ``n / (1 + r f)``,
with one rate ``r`` (``fatigue_rate_``) estimated once the log holds users of different prior
fatigue (0 until then): the mode over ``log r`` of the profile likelihood times a weakly
informative prior (normal, centred at 0.18 with standard deviation 1: it decides only where the
likelihood is flat), ``fatigue_rate_sd_`` the posterior standard deviation of ``log r``; the
same data then also tell the share ``c`` of the prior fatigue that acts on the opt-out over
the window (``fatigue_carry_``: ``2 n c f``; the prior fatigue keeps decaying as the window's
exposures arrive; 1 until then).

With ``horizon_days`` (a log of a planner's window: :meth:`FrequencyPlanner.observe` passes its
horizon) the opt-out follows the touches as the planner lays them out instead: every touch ``j``
carries the hazard ``a + d F_j``, ``F_j`` the user's decayed number of earlier touches (halving
every ``fatigue_halflife`` days), as a per-touch hazard ``base (1 + k F)`` would give. Then
``P(opt-out | n, f) = 1 - exp(-(a n + d (W(n) + c f P(n))))`` with the within-window load
``W(n)`` (the touches' decayed fatigue summed over the layout's days) and the weight ``P(n)`` of
the prior fatigue (its decay over the touch days), both averaged over the layout's rotations
(``src/touchpoint/response/load.rs``). The quadratic ``n^2`` is that load only when every touch
falls on one day: with fatigue halving every 2 days over a 28-day window it was off by 13-16 % at
the levels a plan compares, the layout's load by under 4 % (tests). With the simulated world's
7-day half-life over 14 days the two differ by a few percent; what is left of its opt-out error
there is the spread of the users' propensity to opt out within a segment (a single hazard per
segment over-predicts at few exposures and under-predicts at 10-20), not this load.

Covariates (optional columns of the log: features the platform observes, e.g. recency,
frequency and value of orders, tenure, device) scale the curve's height per user: a user of
features ``x`` gets ``w(x) * A * H(n)`` with ``w = clamp(1 + s' beta, 0, 5)``, ``s`` the features
standardised over the log's rows, ``beta`` a ridge regression of the gain over the segment's
baseline on the arm's curve times the features (with the features' own effect on the baseline
beside it), its prior precision chosen by the marginal likelihood (``src/touchpoint/height.rs``):
two users of one segment then get different curves, and features that say nothing leave ``w``
near 1. :meth:`ResponseModel.height` gives the multipliers; the planner takes them as its
``covariates``.

The curves are fitted from logs with randomised frequency arms. The likelihood depends on the log
only through counts per (segment, channel, exposures), aggregated once in the Rust core and kept,
so :meth:`ResponseModel.partial_fit` adds the next window's outcomes to the old counts and refits.
Segments are pooled per channel (Gelman et al. 2013, "Bayesian Data Analysis", ch. 5): every
segment's parameters are drawn around its channel's curve with a spread ``tau`` estimated by
empirical Bayes (the moment estimator of DerSimonian & Laird 1986, corrected for the weak prior
of the per-segment fits, with the curve's shape pinned when the spread of the heights is
estimated) unless given, so small segments borrow strength from the others. The shape of the
conversion curve (half-effect ``k`` and slope ``h``) is pooled across channels the same way, so a
channel with few rows takes the shape of the well-measured ones and keeps its own height. The posterior is a Laplace approximation (mode by damped Newton,
covariance from the Hessian, corrected for the uncertainty of the channel curve as in Kass &
Steffey 1989) and the intervals of the incremental curve come from the delta method on its
logarithm: the fit is a deterministic function of the counts. The model and its approximations
are documented in ``src/touchpoint/response.rs``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._state import StateError, Versioned, core_bytes

__all__ = ["Curves", "ResponseModel"]

#: Default weak prior ``(median, sd of log)`` of the Hill slope: centred on 1 (no S-shape), one
#: unit of log either way. The prior before it, Google Meridian's ``slope_rf ~ LogNormal(0.7,
#: 0.4)`` (median 2), decided the shape wherever the data were noisy: on the fatigued world the
#: randomised round's data alone put the slope at 0.81 under a wide prior, but the fit stayed
#: at 1.96 and moved the half-effect up instead (9.5 -> 20.9 exposures after three rounds),
#: under-predicting 6 exposures to fresh users 2.6-fold (benchmarks/RESULTS.md, touchpoint
#: world).
SLOPE_PRIOR: tuple[float, float] = (1.0, 1.0)
OLD_SLOPE_PRIOR: tuple[float, float] = (float(np.exp(0.7)), 0.4)

_N_PARAMS = len(_core.TouchpointResponse.param_names())
_NATURAL = ("b", "A", "k", "h", "a", "d")


class Curves(NamedTuple):
    """Curves on a grid of exposure levels, each shaped (n_segments, n_channels, n_levels)."""

    incremental: np.ndarray
    """Incremental conversion ``A * H(n)`` over the baseline (posterior mode)."""
    lower: np.ndarray
    upper: np.ndarray
    opt_out: np.ndarray
    """Probability of opting out of the channel after ``n`` exposures."""


def _unique_codes(raw: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values -> (int64 codes into uniques, uniques); fast for small non-negative integers."""
    if raw.dtype.kind in "iu" and raw.size:
        lo, hi = int(raw.min()), int(raw.max())
        if hi - lo <= 4 * raw.size + 1024:
            shifted = (raw - lo if lo else raw).astype(np.intp, copy=False)
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            uniques = np.flatnonzero(present)
            lut = np.full(hi - lo + 1, -1, dtype=np.int64)
            lut[uniques] = np.arange(len(uniques))
            return lut[shifted], (uniques + lo).astype(raw.dtype)
    if raw.dtype.kind == "f" and raw.size and not np.all(np.isfinite(raw)):
        raise ValueError(f"{name}: has missing (NaN) or infinite values")
    codes, uniques = pd.factorize(raw, sort=True, use_na_sentinel=True)
    if codes.size and codes.min() < 0:
        raise ValueError(f"{name}: has missing values")
    return codes, np.asarray(uniques)


def _categorical(x: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, categories) of a pandas categorical column, else ``None`` (other columns, polars
    categoricals included, are read as values)."""
    if isinstance(x, pd.Series) and isinstance(x.dtype, pd.CategoricalDtype):
        x = x.array
    if isinstance(x, pd.Categorical):
        return np.asarray(x.codes), np.asarray(x.categories)
    return None


def _column_codes(log: Any, col: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A label column -> (codes, uniques); categoricals are read by their codes (no strings)."""
    if col in cv.columns(log, "log"):
        cat = None if cv.is_polars(log) else _categorical(log[col])
        if cat is not None:
            codes, categories = cat
            if codes.size and codes.min() < 0:
                raise ValueError(f"{name}: has missing values")
            used, inv = _unique_codes(codes, name)
            return used, categories[inv]
    raw = cv.column(log, "log", col)
    if raw.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d column, got shape {raw.shape}")
    return _unique_codes(raw, name)


def _same_kind(given: np.ndarray, name: str, known: list[Any]) -> None:
    """Labels of the kind the model knows (numbers or strings, integers if its are): a label of
    another kind (``"1"`` or ``1.5`` for segments 0, 1, 2) is a mistake, not an unseen label."""
    k = np.asarray(known)
    if not k.size or k.dtype.kind not in "biufUS":
        return
    strings = [x for x in given.tolist() if isinstance(x, (str, bytes))]
    if k.dtype.kind in "US":
        if len(strings) < len(given):
            raise TypeError(f"{name}: the model's labels are strings, got numbers")
        return
    if strings:
        raise TypeError(
            f"{name}: the model's labels are numbers, got strings such as {strings[0]!r}"
        )
    if k.dtype.kind in "biu" and given.dtype.kind == "f":
        frac = given[given != np.floor(given)]
        if frac.size:
            raise ValueError(f"{name}: the model's labels are integers, got {frac[0]}")


def _py(x: Any) -> Any:
    """A numpy scalar as the Python value (for labels and messages)."""
    return x.item() if isinstance(x, np.generic) else x


def _labels(known: Any) -> str:
    return ", ".join(repr(_py(k)) for k in known)


def _index(known: list[Any]) -> pd.Index:
    return pd.Index(np.asarray(known, dtype=object) if known else [], dtype=object)


def _exposures(x: Any, name: str, *, integral: bool) -> np.ndarray:
    raw = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if integral and raw.dtype.kind in "iu":
        return cv.as_array(x, name, np.uint32)
    a = cv.as_array(x, name, np.float64, nonnegative=True)
    if not integral:
        return a
    if not np.array_equal(a, np.floor(a)):
        raise ValueError(f"{name}: must hold whole numbers of exposures, found fractions")
    if a.max() > np.iinfo(np.uint32).max:
        raise ValueError(f"{name}: values are too large (max {a.max()})")
    return a.astype(np.uint32)


def _fatigue(x: Any, name: str) -> np.ndarray:
    """Prior fatigue per row: finite and >= 0."""
    return cv.as_array(x, name, np.float64, nonnegative=True)


class ResponseModel(Versioned):
    """Conversion and opt-out curves in the number of exposures, per segment and channel.

    Parameters
    ----------
    tau : spread of the segments' unconstrained parameters (logit b, logit m, log k, log h,
        log a, log d, with ``A = (1 - b) m``) around their channel's: ``None`` estimates it per
        channel and parameter by empirical Bayes; a positive number or six of them fix it (small:
        segments stay near their channel's curve; large: each follows its own data).
    interval : coverage of the intervals of :meth:`curves`, in (0, 1).
    forget : weight of the counts seen so far at each :meth:`partial_fit`, in (0, 1]: 1 keeps
        every past window at full weight (a stationary world); 0.5 halves the past at each
        update, so the curves follow a world that drifts (users tire, convert, opt out) at the
        price of more variance. Exponential forgetting as in recursive least squares.
    height_forget : the same for the statistics of the height model (fitted with
        ``covariates``), in (0, 1]; ``None``: ``forget``. Default 1: a user's height relative to
        its segment is a trait of the user, so every window's randomised users keep counting
        while the curves follow the world (with 0.5, the later windows' few randomised users,
        scored against curves that moved, shrank the heights to 1 by the third window;
        benchmarks/RESULTS.md, touchpoint world).
    channels : the channels the planner may use (labels or codes). ``None``: the channels of the
        logs. If given, a log row with another channel is an error, and a channel without any data
        is kept, flagged uninformed (``channel_params_["informed"]``) with the weak prior's curve.
    progress : show a progress bar (``None``: only in interactive sessions).
    slope_prior : ``(median, sd)``: the weak prior of the curves' Hill slope ``h``, ``log h ~
        N(log median, sd^2)``. The default (1, 1) is centred on no S-shape (a concave curve)
        and lets the data move the slope by a factor of e either way at one standard deviation:
        randomised arms on noisy conversions pin the curve's height far better than its shape,
        and a tight prior then decides the shape; it must not decide it for the world
        (see ``SLOPE_PRIOR``). States saved before it keep the earlier ``(exp(0.7), 0.4)``.
    fatigue_halflife : days over which fatigue halves, for the opt-out's load of logs fitted
        with ``horizon_days`` (the platform's own decay of its contact counts; the default is
        that of :func:`world_fatigue`).

    Fitted attributes: ``segments_`` and ``channels_`` (labels; row i of every table is the code
    i), ``n_obs_`` (log rows counted), ``params_`` (one row per segment and channel: ``b, A, k, h,
    a, d``, ``n_trials`` (weighted rows) and ``has_data``; a cell without data shows its channel's
    curve), ``channel_params_`` (the pooled curve per channel and ``informed``), ``tau_`` (the
    spread used, per channel and parameter), ``converged_``, ``fatigue_rate_`` (and
    ``fatigue_rate_sd_``, the standard deviation of its log), ``fatigue_carry_`` and
    ``horizon_days_`` (the layout the opt-out's load follows; ``None``: the quadratic load).

    Segments may be integer codes or labels; new segments and channels of a later
    :meth:`partial_fit` are appended to ``segments_``/``channels_``. Results do not depend on
    the thread count, and ``partial_fit(a)`` then ``partial_fit(b)`` equals ``fit(a ++ b)``
    (exactly for unit or dyadic weights; up to rounding of weighted sums otherwise).

    Examples
    --------
    >>> m = ResponseModel().fit(log)  # doctest: +SKIP
    >>> inc, lo, hi, opt = m.curves([0, 1, 2, 4, 8])  # doctest: +SKIP
    """

    _STATE_KIND = "growthmachine.touchpoint.ResponseModel"
    _STATE_VERSION = 1
    _PARAMS = (
        "tau", "interval", "forget", "channels", "progress", "height_forget", "fatigue_halflife",
        "slope_prior",
    )  # fmt: skip

    def __init__(
        self,
        tau: float | Sequence[float] | None = None,
        *,
        interval: float = 0.9,
        forget: float = 1.0,
        channels: Sequence[Any] | None = None,
        progress: bool | None = None,
        height_forget: float | None = 1.0,
        fatigue_halflife: float = 7.0,
        slope_prior: tuple[float, float] = SLOPE_PRIOR,
    ):
        self.slope_prior = slope_prior
        self.fatigue_halflife = fatigue_halflife
        self.tau = tau
        self.interval = interval
        self.forget = forget
        self.channels = channels
        self.progress = progress
        self.height_forget = height_forget

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any) -> ResponseModel:
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"{k}: unknown parameter of ResponseModel")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"ResponseModel({args})"

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        log: Any,
        *,
        segment: str = "segment",
        channel: str = "channel",
        exposures: str = "exposures",
        converted: str = "converted",
        opted_out: str = "opted_out",
        weight: str | None = None,
        fatigue: str | None = None,
        covariates: Sequence[str] | None = None,
        horizon_days: int | None = None,
    ) -> ResponseModel:
        """Fits the curves to an exposure log (a pandas/polars DataFrame, a pyarrow Table or a
        mapping of column -> array), one row per user and channel: the user's segment, the
        channel, the number of exposures received (the randomised arm), and whether the user
        converted and opted out (0/1, or a share in [0, 1]); ``weight`` names an optional column
        of row weights >= 0, ``fatigue`` an optional column of the users' prior fatigue >= 0
        (decayed number of earlier touches when the window began; absent: 0), ``covariates``
        optional names of numeric columns (finite) that scale each user's curve height (see
        the module docs; :meth:`height`). ``horizon_days``: the exposures of every row were laid
        out over that many days as :class:`FrequencyPlanner` lays them out (its logs), so the
        opt-out follows the touches' decayed fatigue (see the module docs); ``None``: the
        quadratic load. Returns ``self``."""
        known_channels = self._check_channels()
        return self._update(
            log,
            (segment, channel, exposures, converted, opted_out, weight, fatigue),
            segments=[],
            channels=known_channels,
            previous=None,
            covariates=covariates,
            horizon_days=horizon_days,
        )

    def partial_fit(
        self,
        log: Any,
        *,
        segment: str = "segment",
        channel: str = "channel",
        exposures: str = "exposures",
        converted: str = "converted",
        opted_out: str = "opted_out",
        weight: str | None = None,
        fatigue: str | None = None,
        covariates: Sequence[str] | None = None,
        horizon_days: int | None = None,
    ) -> ResponseModel:
        """Adds a log (e.g. the next window's outcomes) to the counts seen so far and refits; the
        first call is :meth:`fit`. A model fitted with ``covariates`` needs the same ones (its
        height statistics are kept and added to, like the counts). ``horizon_days``: as in
        :meth:`fit`; ``None`` keeps the model's (the logs of one model share one layout: another
        horizon than the model's is an error). Returns ``self``."""
        cols = (segment, channel, exposures, converted, opted_out, weight, fatigue)
        if not hasattr(self, "_core"):
            return self.fit(
                log,
                segment=segment,
                channel=channel,
                exposures=exposures,
                converted=converted,
                opted_out=opted_out,
                weight=weight,
                fatigue=fatigue,
                covariates=covariates,
                horizon_days=horizon_days,
            )
        return self._update(
            log,
            cols,
            segments=list(self.segments_),
            channels=list(self.channels_),
            previous=self._core,
            covariates=covariates,
            horizon_days=horizon_days,
        )

    def _check_channels(self) -> list[Any]:
        if self.channels is None:
            return []
        if isinstance(self.channels, (str, bytes)) or not isinstance(self.channels, Sequence):
            raise TypeError(
                f"channels: must be a sequence of channel labels or None, "
                f"got {type(self.channels).__name__}"
            )
        ch = list(self.channels)
        if not ch:
            raise ValueError("channels: is empty")
        if len(set(ch)) != len(ch):
            raise ValueError("channels: has duplicates")
        return ch

    def _check_tau(self) -> list[float] | None:
        t = self.tau
        if t is None:
            return None
        if isinstance(t, numbers.Real) and not isinstance(t, bool):
            return [float(t)] * _N_PARAMS
        if isinstance(t, Sequence) and not isinstance(t, (str, bytes)):
            vals = [cv.check_number(v, "tau") for v in t]
            if len(vals) != _N_PARAMS:
                raise ValueError(
                    f"tau: must be a number or {_N_PARAMS} numbers (one per parameter), "
                    f"got {len(vals)}"
                )
            return vals
        raise TypeError(f"tau: must be None, a number or a sequence, got {type(t).__name__}")

    def _check_slope_prior(self) -> tuple[float, float]:
        sp = self.slope_prior
        if isinstance(sp, np.ndarray) and sp.ndim == 1:
            sp = sp.tolist()
        if isinstance(sp, (str, bytes)) or not isinstance(sp, Sequence):
            raise TypeError(
                f"slope_prior: must be a (median, sd) pair of numbers, got {type(sp).__name__}"
            )
        if len(sp) != 2:
            raise ValueError(f"slope_prior: must be a (median, sd) pair, got {len(sp)} values")
        median = cv.check_number(sp[0], "slope_prior", minimum=0.0, strict_min=True)
        sd = cv.check_number(sp[1], "slope_prior", minimum=0.0, strict_min=True)
        return (float(median), float(sd))

    def _update(
        self,
        log: Any,
        cols: tuple[str, str, str, str, str, str | None, str | None],
        *,
        segments: list[Any],
        channels: list[Any],
        previous: Any,
        covariates: Sequence[str] | None = None,
        horizon_days: int | None = None,
    ) -> ResponseModel:
        seg_col, ch_col, exp_col, conv_col, opt_col, w_col, f_col = cols
        if horizon_days is not None:
            horizon_days = cv.check_int(horizon_days, "horizon_days", minimum=1, maximum=366)
        halflife = cv.check_number(self.fatigue_halflife, "fatigue_halflife", minimum=0.0,
                                   strict_min=True)  # fmt: skip
        tau = self._check_tau()
        slope = self._check_slope_prior()
        cv.check_number(self.interval, "interval", minimum=0.0, maximum=1.0)
        if not 0.0 < self.interval < 1.0:
            raise ValueError(f"interval: must be in (0, 1), got {self.interval}")
        forget = cv.check_number(self.forget, "forget", minimum=0.0, maximum=1.0)
        if forget <= 0.0:
            raise ValueError(f"forget: must be in (0, 1], got {forget}")
        h_forget = forget
        if self.height_forget is not None:
            h_forget = cv.check_number(
                self.height_forget, "height_forget", minimum=0.0, maximum=1.0
            )
            if h_forget <= 0.0:
                raise ValueError(f"height_forget: must be in (0, 1], got {h_forget}")
        if cv.n_rows(log, "log") == 0:
            raise ValueError("log: is empty")
        fixed_channels = self.channels is not None
        g_codes, segments = self._encode(log, seg_col, "segment", segments, grow=True)
        c_codes, channels = self._encode(log, ch_col, "channel", channels, grow=not fixed_channels)
        n = _exposures(cv.column(log, "log", exp_col), "exposures", integral=True)
        y = cv.as_array(cv.column(log, "log", conv_col), "converted", np.float64)
        o = cv.as_array(cv.column(log, "log", opt_col), "opted_out", np.float64)
        arrays = {"segment": g_codes, "channel": c_codes, "exposures": n, "converted": y}
        arrays["opted_out"] = o
        w = None
        if w_col is not None:
            w = cv.as_array(cv.column(log, "log", w_col), "weight", np.float64, nonnegative=True)
            arrays["weight"] = w
        f = None
        if f_col is not None:
            f = _fatigue(cv.column(log, "log", f_col), "fatigue")
            arrays["fatigue"] = f
        cov_names = _covariate_names(covariates)
        prev_names = getattr(self, "covariates_", None) if previous is not None else None
        if previous is not None and prev_names is not None and cov_names != prev_names:
            raise ValueError(
                f"covariates: the model was fitted with covariates {list(prev_names)}; "
                f"partial_fit needs the same (got {None if cov_names is None else list(cov_names)})"
            )
        x = None
        if cov_names is not None:
            x = _covariate_matrix(log, cov_names)
            arrays["covariates"] = x
        cv.check_same_length(arrays)
        with _progress.bar(self.progress, "ResponseModel", unit="step") as cb:
            core = _core.TouchpointResponse.fit(
                g_codes,
                c_codes,
                n,
                y,
                o,
                w,
                len(segments),
                len(channels),
                tau=tau,
                previous=previous,
                forget=forget,
                progress=cb,
                fatigue=f,
                horizon_days=horizon_days,
                fatigue_halflife=halflife,
                slope_prior=slope,
            )
            height = None
            if x is not None:
                # The gain over each row's segment baseline, against the arm's curve.
                z, _ = core.predict(g_codes, c_codes, n.astype(np.float64), fatigue=f)
                b = core.params[g_codes, c_codes, 0]
                prev_h = getattr(self, "_height", None) if previous is not None else None
                height = _core.TouchpointHeight.fit(
                    x, z, y - b - z, w, previous=prev_h, forget=h_forget, progress=cb
                )
        self._core = core
        self.segments_ = np.asarray(segments)
        self.channels_ = np.asarray(channels)
        if x is not None:
            self._height = height
            self.covariates_ = cov_names
        elif previous is None:
            self.__dict__.pop("_height", None)
            self.covariates_ = None
        self._set_fitted()
        return self

    @staticmethod
    def _encode(
        log: Any, col: str, name: str, known: list[Any], *, grow: bool
    ) -> tuple[np.ndarray, list[Any]]:
        """Label column -> uint32 codes into ``known`` (new labels appended if ``grow``)."""
        codes, uniques = _column_codes(log, col, name)
        pos = _index(known).get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
        new = np.flatnonzero(pos < 0)
        if len(new):
            if not grow:
                raise ValueError(
                    f"{name}: unknown {name} {_py(uniques[new[0]])!r} (known: {_labels(known)})"
                )
            pos[new] = len(known) + np.arange(len(new))
            known = known + [_py(u) for u in uniques[new]]
        return np.ascontiguousarray(pos[codes], dtype=np.uint32), known

    def _set_fitted(self) -> None:
        core = self._core
        g, c = core.n_groups, core.n_channels
        self.n_obs_ = int(core.n_obs)
        p = core.params.reshape(g * c, _N_PARAMS)
        cols: dict[str, Any] = {
            "segment": np.repeat(self.segments_, c),
            "channel": np.tile(self.channels_, g),
        }
        cols.update({name: p[:, j] for j, name in enumerate(_NATURAL)})
        cols["n_trials"] = core.trials.reshape(-1)
        cols["has_data"] = core.has_data.reshape(-1)
        self.params_ = pd.DataFrame(cols)
        cp = core.channel_params
        chan: dict[str, Any] = {"channel": self.channels_}
        chan.update({name: cp[:, j] for j, name in enumerate(_NATURAL)})
        chan["informed"] = core.informed
        self.channel_params_ = pd.DataFrame(chan)
        self.tau_ = pd.DataFrame(
            core.tau, index=pd.Index(self.channels_, name="channel"), columns=core.param_names()
        )
        self.converged_ = core.converged
        self.fatigue_rate_ = float(core.fatigue_rate)
        self.fatigue_rate_sd_ = float(core.fatigue_rate_sd)
        self.fatigue_carry_ = float(core.fatigue_carry)
        lay = core.layout
        self.horizon_days_ = None if lay is None else int(lay[0])
        h = getattr(self, "_height", None)
        if h is not None:
            self.height_ = pd.DataFrame(
                {"beta": h.beta, "gamma": h.gamma, "mean": h.mean, "sd": h.sd},
                index=pd.Index(list(self.covariates_), name="covariate"),
            )
            self.height_precision_ = float(h.precision)

    # -- prediction ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "_core"):
            raise ValueError("ResponseModel: not fitted; call fit(log) first")

    def height(self, covariates: Any) -> np.ndarray:
        """Each user's multiplier of the curves' height (incremental conversion) from its
        covariates: a table with the model's ``covariates_`` columns, or an array ``(n_users,
        n_covariates)`` in that order. Needs a model fitted with covariates."""
        self._check_fitted()
        if getattr(self, "_height", None) is None:
            raise ValueError("covariates: the model was fitted without covariates")
        x = _covariate_matrix(covariates, self.covariates_, table_only=False)
        return self._height.predict(x)

    def curves(self, levels: Any, *, fatigue: float = 0.0) -> Curves:
        """Curves of every segment and channel at ``levels`` exposures (>= 0; fractions allowed):
        ``(incremental, lower, upper, opt_out)``, each (n_segments, n_channels, n_levels).
        ``incremental`` is the conversion over the baseline, ``A * H(n)``, at the posterior mode;
        ``lower``/``upper`` bound it with coverage ``interval``; ``opt_out`` is that of users of
        prior fatigue ``fatigue`` (>= 0)."""
        self._check_fitted()
        lv = cv.as_array(levels, "levels", np.float64, nonnegative=True)
        f = cv.check_number(fatigue, "fatigue", minimum=0.0)
        z = NormalDist().inv_cdf(0.5 + self.interval / 2.0)
        return Curves(*self._core.curves(lv, z, f))

    def pooled_curves(self, levels: Any, *, fatigue: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The channel-level (pooled) curves, what a segment the model has not seen gets:
        ``(incremental, opt_out)``, each (n_channels, n_levels); ``opt_out`` at prior fatigue
        ``fatigue``."""
        self._check_fitted()
        lv = cv.as_array(levels, "levels", np.float64, nonnegative=True)
        f = cv.check_number(fatigue, "fatigue", minimum=0.0)
        c_n, l_n = len(self.channels_), len(lv)
        g = np.full(c_n * l_n, len(self.segments_), dtype=np.uint32)
        c = np.repeat(np.arange(c_n, dtype=np.uint32), l_n)
        inc, opt = self._core.predict(g, c, np.tile(lv, c_n), fatigue=np.full(c_n * l_n, f))
        return inc.reshape(c_n, l_n), opt.reshape(c_n, l_n)

    def predict(
        self,
        segment: Any,
        channel: Any,
        exposures: Any,
        *,
        fatigue: Any = None,
        return_opt_out: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Incremental conversion per row for ``exposures`` of ``channel`` to a user of
        ``segment`` (and the opt-out probability with ``return_opt_out=True``, for users of
        prior fatigue ``fatigue``: per row, default 0). A segment the model has not seen gets
        its channel's pooled curve; an unknown channel is an error."""
        self._check_fitted()
        cv.check_instance(return_opt_out, "return_opt_out", (bool, np.bool_), "a bool")
        n = _exposures(exposures, "exposures", integral=False)
        g = self._lookup(segment, "segment", list(self.segments_))
        c = self._lookup(channel, "channel", list(self.channels_))
        arrays = {"segment": g, "channel": c, "exposures": n}
        f = None
        if fatigue is not None:
            f = _fatigue(fatigue, "fatigue")
            arrays["fatigue"] = f
        cv.check_same_length(arrays)
        if c.size and int(c.max()) >= len(self.channels_):
            bad = _py(np.asarray(channel)[int(np.flatnonzero(c >= len(self.channels_))[0])])
            raise ValueError(f"channel: unknown channel {bad!r} (known: {_labels(self.channels_)})")
        with _progress.bar(self.progress, "ResponseModel.predict", unit="row") as cb:
            inc, opt = self._core.predict(g, c, n, progress=cb, fatigue=f)
        return (inc, opt) if return_opt_out else inc

    @staticmethod
    def _lookup(x: Any, name: str, known: list[Any]) -> np.ndarray:
        """Labels -> uint32 codes; unknown labels get ``len(known)``."""
        raw = cv.to_numpy_raw(x, name)
        if raw.ndim != 1:
            raise ValueError(f"{name}: expected a 1-d array, got shape {raw.shape}")
        if raw.size == 0:
            raise ValueError(f"{name}: is empty")
        codes, uniques = _unique_codes(raw, name)
        _same_kind(uniques, name, known)
        pos = _index(known).get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
        pos[pos < 0] = len(known)
        return np.ascontiguousarray(pos[codes], dtype=np.uint32)

    # -- state -----------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        s = dict(self.__dict__)
        if "_core" in s:
            s["_core"] = s["_core"]._state_bytes()
        if s.get("_height") is not None:
            s["_height"] = s["_height"]._state_bytes()
        return s

    def _set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        raw = core_bytes(state, "_core", self._STATE_KIND)
        raw_h = core_bytes(state, "_height", self._STATE_KIND) if "_height" in state else None
        # A state from before height_forget: its heights forgot as the curves did.
        state.setdefault("height_forget", None)
        # A state from before the layout's load: fitted with the quadratic one.
        state.setdefault("fatigue_halflife", 7.0)
        # A state from before slope_prior: fitted (and updated) with Meridian's slope prior.
        state.setdefault("slope_prior", OLD_SLOPE_PRIOR)
        if raw is not None:
            state.setdefault("horizon_days_", None)
            # A state from before the rate's uncertainty: picked on a grid, none reported.
            state.setdefault("fatigue_rate_sd_", 0.0)
        self.__dict__.update(state)
        if raw is not None:
            self._core = _core.TouchpointResponse._from_state_bytes(raw)
        if raw_h is not None:
            self._height = _core.TouchpointHeight._from_state_bytes(raw_h)
        if raw is not None:
            # The height model and its covariates' names go together (a state that lost one).
            names = self.__dict__.get("covariates_")
            h = self.__dict__.get("_height")
            if names is not None and (h is None or h.k != len(names)):
                raise StateError(
                    f"{self._STATE_KIND} state: covariates_ {list(names)} without the height "
                    "model fitted on them (_height)"
                )
            if h is not None and names is None:
                raise StateError(f"{self._STATE_KIND} state: _height without covariates_")


def _covariate_names(covariates: Any) -> tuple[str, ...] | None:
    """``covariates`` checked: ``None`` or a non-empty sequence of distinct column names."""
    if covariates is None:
        return None
    if isinstance(covariates, (str, bytes)) or not isinstance(covariates, Sequence):
        raise TypeError(
            f"covariates: must be a sequence of column names or None, "
            f"got {type(covariates).__name__}"
        )
    names = tuple(covariates)
    if not names:
        raise ValueError("covariates: is empty")
    if len(set(names)) != len(names):
        raise ValueError("covariates: has duplicates")
    return names


def _covariate_matrix(table: Any, names: tuple[str, ...], *, table_only: bool = True) -> np.ndarray:
    """The covariates as a C-contiguous float64 ``(n, k)`` array, finite: the ``names`` columns
    of a table, or (``table_only=False``) a 2-d array with ``len(names)`` columns."""
    if not table_only and isinstance(table, np.ndarray | list) and np.ndim(table) == 2:
        x = cv.as_array(table, "covariates", np.float64, ndim=2)
        if x.shape[1] != len(names):
            raise ValueError(
                f"covariates: has {x.shape[1]} columns; the model was fitted with {len(names)} "
                f"({list(names)})"
            )
    else:
        have = cv.columns(table, "covariates")
        missing = [c for c in names if c not in have]
        if missing:
            raise ValueError(f"covariates: has no column(s) {missing} (columns: {have})")
        x = np.column_stack(
            [cv.as_array(cv.column(table, "covariates", c), f"covariates[{c!r}]", np.float64)
             for c in names]
        )  # fmt: skip
    if not np.isfinite(x).all():
        i, j = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"covariates: {names[j]!r} is not finite at row {i} ({x[i, j]})")
    return np.ascontiguousarray(x, dtype=np.float64)


def _plan_covariates(covariates: Any, n: int, model: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """``covariates`` of ``FrequencyPlanner.plan`` (and ``observe``) checked: (names, ``(n, k)`` float array,
    finite). A table keeps its columns' names (the model's ``covariates_``, if it has them, are
    selected by name); a 2-d array's columns are named ``"0".."k-1"``."""
    fitted = getattr(model, "covariates_", None)
    if isinstance(covariates, np.ndarray | list):
        x = cv.as_array(covariates, "covariates", np.float64, ndim=2)
        names = tuple(str(j) for j in range(x.shape[1]))
    else:
        have = cv.columns(covariates, "covariates")
        names = tuple(str(c) for c in have)
    if fitted is not None:
        model_names = tuple(str(c) for c in fitted)
        if isinstance(covariates, np.ndarray | list):
            if len(names) != len(model_names):
                raise ValueError(
                    f"covariates: has {len(names)} columns; the model was fitted with "
                    f"{len(model_names)} ({list(model_names)})"
                )
        names = model_names
    x = _covariate_matrix(
        covariates if not isinstance(covariates, np.ndarray | list) else np.asarray(covariates),
        names,
        table_only=False,
    )
    if x.shape[0] != n:
        raise ValueError(f"covariates: has {x.shape[0]} rows, expected {n} (one per user)")
    if x.shape[1] == 0:
        raise ValueError("covariates: has no columns")
    clash = sorted(set(names) & _LOG_COLUMNS)
    if clash:
        raise ValueError(f"covariates: column name(s) {clash} are taken by the exposure log")
    return names, x


#: Columns of the log :meth:`FrequencyPlanner.observe` writes (covariates may not take them).
_LOG_COLUMNS = {"segment", "channel", "exposures", "converted", "opted_out", "fatigue"}
