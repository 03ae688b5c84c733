"""Offline (off-policy) evaluation of a policy on logged bandit data.

Estimators as defined in the Open Bandit Pipeline (obp, ``obp/ope/estimators.py``), no weight
clipping unless asked. With ``w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i)``:

- ``ips``: mean of ``r_i * min(w_i, clip)``;
- ``snips``: ``mean(r_i w_i) / mean(w_i)`` (obp: no clipping);
- ``dm``: mean of ``sum_a pi_e(a|x_i) q_hat(x_i, a)`` (obp's ``np.average`` with weights pi_e);
- ``dr``: ``dm_i + min(w_i, clip) (r_i - q_hat(x_i, a_i))``;
- ``switch_dr``: ``dm_i + [w_i <= switch_threshold] w_i (r_i - q_hat(x_i, a_i))`` (obp's
  ``SwitchDoublyRobust``; its default threshold is inf, where it equals DR).

Confidence intervals: ``ci="normal"`` (default) is ``estimate +- z_{1-alpha/2} * sd / sqrt(n)``
with ``sd`` the sample standard deviation (ddof 1) of the per-round values (for SNIPS, of
``r_i w_i / mean(w)``): cheap at any n. ``ci="bootstrap"`` is obp's method (resample rounds with
replacement ``n_bootstrap`` times, percentile interval of the resampled means), seeded per
resample; it costs ``n * n_bootstrap`` operations and its numbers differ from obp's because the
random streams differ. The point estimates equal obp's definitions.

Everything runs in Rust in one parallel pass over the rounds (deterministic chunked reduction),
reading ``action_probs``/``q_hat`` in place: no (n, actions, positions) copy is made when they are
C-contiguous float64 arrays.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from .. import _convert as cv
from .._core import realtime_ope_bootstrap, realtime_ope_evaluate

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "dm",
    "dr",
    "evaluate",
    "fit_reward_model",
    "ips",
    "snips",
    "switch_dr",
]

ESTIMATORS = ("ips", "snips", "dm", "dr", "switch_dr")


class Estimate(NamedTuple):
    value: float
    ci_lower: float
    ci_upper: float
    std_error: float


def fit_reward_model(
    contexts: Any, actions: Any, rewards: Any, n_actions: int, *, ridge: float = 1.0
) -> np.ndarray:
    """A simple reward model for DM/DR: one ridge regression per action on ``[contexts, 1]``,
    returning its predictions ``q_hat`` (n, n_actions) for every logged context and action."""
    X = cv.as_array(contexts, "contexts", ndim=2)
    n = X.shape[0]
    a = cv.as_array(actions, "actions", np.int64, shape=(n,))
    r = cv.as_array(rewards, "rewards", shape=(n,))
    n_actions = cv.check_int(n_actions, "n_actions", minimum=1)
    ridge = cv.check_number(ridge, "ridge", minimum=0.0, strict_min=True)
    out = np.flatnonzero((a < 0) | (a >= n_actions))
    if out.size:
        raise ValueError(
            f"actions: must be in [0, {n_actions}), found {a[out[0]]} at position {out[0]}"
        )
    Z = np.column_stack([X, np.ones(n)])
    q = cv.zeros((n, n_actions), "n_actions", "q_hat (rows x actions)")
    eye = ridge * np.eye(Z.shape[1])
    for k in range(n_actions):
        m = a == k
        theta = np.linalg.solve(Z[m].T @ Z[m] + eye, Z[m].T @ r[m])
        q[:, k] = Z @ theta
    return q


def _prepare(actions, rewards, propensities, action_probs, q_hat, positions, contexts):
    a = cv.as_array(actions, "actions", np.int64)
    n = len(a)
    r = cv.as_array(rewards, "rewards", shape=(n,))
    p = cv.as_array(propensities, "propensities", shape=(n,))
    pi = cv.as_array(action_probs, "action_probs", ndim=np.ndim(action_probs))
    if pi.ndim not in (2, 3) or pi.shape[0] != n:
        raise ValueError(
            f"action_probs: expected shape (n, n_actions) or (n, n_actions, n_positions) "
            f"with n={n}, got {pi.shape}"
        )
    n_actions = pi.shape[1]
    n_positions = pi.shape[2] if pi.ndim == 3 else 1
    pos = None
    if positions is not None:
        pos = cv.as_array(positions, "positions", np.int64, shape=(n,))
    elif n_positions > 1:
        raise ValueError("positions: required when action_probs has several positions")
    if q_hat is None and contexts is not None:
        contexts = cv.as_array(contexts, "contexts", ndim=2)
        if len(contexts) != n:
            raise ValueError(
                f"contexts: has {len(contexts)} rows, expected {n} (the length of actions)"
            )
        q_hat = fit_reward_model(contexts, a, r, n_actions)
        if n_positions > 1:
            q_hat = np.repeat(q_hat[:, :, None], n_positions, axis=2)
    q = None
    if q_hat is not None:
        q = cv.as_array(q_hat, "q_hat", ndim=pi.ndim, shape=pi.shape)
    return a, r, p, pi, q, pos, n_actions, n_positions


def evaluate(
    *,
    actions: Any,
    rewards: Any,
    propensities: Any,
    action_probs: Any,
    q_hat: Any = None,
    positions: Any = None,
    contexts: Any = None,
    clip: float = np.inf,
    switch_threshold: float = np.inf,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: int = 0,
    output: cv.Output = "pandas",
):
    """Every estimator at once: a table indexed by estimator (``ips``, ``snips`` and, given
    ``q_hat`` or ``contexts`` to fit one, ``dm``, ``dr``, ``switch_dr``) with columns
    ``estimate``, ``ci_lower``, ``ci_upper``, ``std_error``.

    ``actions`` (n,) logged actions; ``rewards`` (n,); ``propensities`` (n,) logging probability
    of the logged action; ``action_probs`` (n, n_actions) or (n, n_actions, n_positions) the
    evaluated policy's probabilities; ``q_hat`` same shape, a reward model's predictions (or
    ``contexts`` (n, d) to fit :func:`fit_reward_model`); ``positions`` (n,) when there are
    several positions. Each row of ``action_probs`` must sum to 1 over the actions (at every
    position), within 1e-5 (numpy's ``allclose``, as obp checks). ``clip`` caps the weights of
    IPS and DR (obp's ``lambda_``); ``switch_threshold`` is switch-DR's (obp's ``lambda_``).
    """
    cv.check_choice(ci, "ci", ("normal", "bootstrap"))
    alpha = cv.check_number(alpha, "alpha", minimum=0.0, strict_min=True, maximum=0.5)
    # clip (> 0) and switch_threshold (>= 0), inf allowed, are checked where they are read, by
    # the core; so are n_bootstrap and seed.
    a, r, p, pi, q, pos, k, npos = _prepare(
        actions, rewards, propensities, action_probs, q_hat, positions, contexts
    )
    n, values, stds, mean_w, _max_w = realtime_ope_evaluate(
        a, r, p, pi, q, pos, k, npos, clip, switch_threshold
    )
    values, stds = np.asarray(values), np.asarray(stds)
    se = stds / np.sqrt(n)
    if ci == "normal":
        z = NormalDist().inv_cdf(1 - alpha / 2)
        lo, hi = values - z * se, values + z * se
    else:
        n_bootstrap = cv.check_int(n_bootstrap, "n_bootstrap", minimum=2)
        boot = realtime_ope_bootstrap(
            a, r, p, pi, q, pos, k, npos, clip, switch_threshold, n_bootstrap, seed, mean_w
        )
        lo = np.percentile(boot, 100 * alpha / 2, axis=0)
        hi = np.percentile(boot, 100 * (1 - alpha / 2), axis=0)
    keep = [0, 1] if q is None else [0, 1, 2, 3, 4]
    table = cv.to_output(
        {
            "estimator": [ESTIMATORS[i] for i in keep],
            "estimate": values[keep],
            "ci_lower": np.asarray(lo)[keep],
            "ci_upper": np.asarray(hi)[keep],
            "std_error": se[keep],
        },
        output,
    )
    if output == "pandas":
        table = table.set_index("estimator")
    return table


def _one(name: str, kwargs: dict[str, Any]) -> Estimate:
    t = evaluate(**kwargs, output="pandas")
    row = t.loc[name]
    return Estimate(
        float(row["estimate"]),
        float(row["ci_lower"]),
        float(row["ci_upper"]),
        float(row["std_error"]),
    )


def ips(*, actions, rewards, propensities, action_probs, positions=None, clip=np.inf, **kw):
    """Inverse propensity scoring (obp ``InverseProbabilityWeighting``)."""
    return _one(
        "ips",
        dict(
            actions=actions,
            rewards=rewards,
            propensities=propensities,
            action_probs=action_probs,
            positions=positions,
            clip=clip,
            **kw,
        ),
    )


def snips(*, actions, rewards, propensities, action_probs, positions=None, **kw):
    """Self-normalised IPS (obp ``SelfNormalizedInverseProbabilityWeighting``)."""
    return _one(
        "snips",
        dict(
            actions=actions,
            rewards=rewards,
            propensities=propensities,
            action_probs=action_probs,
            positions=positions,
            **kw,
        ),
    )


def dm(*, actions, rewards, propensities, action_probs, q_hat, positions=None, **kw):
    """Direct method (obp ``DirectMethod``)."""
    return _one(
        "dm",
        dict(
            actions=actions,
            rewards=rewards,
            propensities=propensities,
            action_probs=action_probs,
            q_hat=q_hat,
            positions=positions,
            **kw,
        ),
    )


def dr(*, actions, rewards, propensities, action_probs, q_hat, positions=None, clip=np.inf, **kw):
    """Doubly robust (obp ``DoublyRobust``)."""
    return _one(
        "dr",
        dict(
            actions=actions,
            rewards=rewards,
            propensities=propensities,
            action_probs=action_probs,
            q_hat=q_hat,
            positions=positions,
            clip=clip,
            **kw,
        ),
    )


def switch_dr(
    *,
    actions,
    rewards,
    propensities,
    action_probs,
    q_hat,
    positions=None,
    switch_threshold=np.inf,
    **kw,
):
    """Switch doubly robust (obp ``SwitchDoublyRobust``)."""
    return _one(
        "switch_dr",
        dict(
            actions=actions,
            rewards=rewards,
            propensities=propensities,
            action_probs=action_probs,
            q_hat=q_hat,
            positions=positions,
            switch_threshold=switch_threshold,
            **kw,
        ),
    )
