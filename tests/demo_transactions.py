"""Test helper: a small BG/NBD + Gamma-Gamma transaction-log simulator (numpy) whose parameters
are known, for the insight tests that need a log drawn from the models' own assumptions rather
than the full ``growthmachine.sim`` population (formerly ``growthmachine.insight._demo``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_transactions(
    n_users: int,
    days: int = 365,
    seed: int = 0,
    *,
    r: float = 0.6,
    alpha: float = 12.0,
    a: float = 0.8,
    b: float = 2.5,
    p: float = 6.0,
    q: float = 4.0,
    gamma: float = 15.0,
    n_categories: int = 12,
    prospects: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions, users): each buyer's first purchase is uniform over the period, then
    purchases follow a Poisson process (rate ~ Gamma(r, alpha)) with a dropout chance
    (~ Beta(a, b)) after each purchase; amounts ~ Gamma(p, nu) with nu ~ Gamma(q, gamma).
    A share ``prospects`` of users never buys. Columns: user_id (int64), day (int32), amount,
    category (Categorical); users: user_id, signup_day."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n_users, dtype=np.int64) * 3 + 1000
    signup = rng.integers(0, days, n_users)
    buyer = rng.random(n_users) >= prospects
    lam = rng.gamma(r, 1.0 / alpha, n_users)
    pdrop = rng.beta(a, b, n_users)
    nu = rng.gamma(q, 1.0 / gamma, n_users)
    fav = rng.integers(0, n_categories, n_users)
    first = signup + rng.integers(0, 30, n_users)
    users_l, days_l = [], []
    t = first.astype(float)
    alive = buyer & (first < days)
    users_l.append(np.flatnonzero(alive))
    days_l.append(t[alive])
    while alive.any():
        idx = np.flatnonzero(alive)
        alive[idx] = rng.random(idx.size) >= pdrop[idx]
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1.0 / lam[idx])
        alive[idx] = t[idx] < days
        idx = np.flatnonzero(alive)
        users_l.append(idx)
        days_l.append(t[idx])
    u = np.concatenate(users_l)
    d = np.floor(np.concatenate(days_l)).astype(np.int32)
    amount = np.round(rng.gamma(p, 1.0 / nu[u]), 2) + 0.01
    cat = np.where(rng.random(u.size) < 0.6, fav[u], rng.integers(0, n_categories, u.size))
    order = rng.permutation(u.size)
    tx = pd.DataFrame(
        {
            "user_id": ids[u][order],
            "day": d[order],
            "amount": amount[order],
            "category": pd.Categorical.from_codes(
                cat[order], categories=[f"cat{i:02d}" for i in range(n_categories)]
            ),
        }
    )
    users = pd.DataFrame({"user_id": ids, "signup_day": signup.astype(np.int32)})
    return tx, users
