"""CellUplift: raw differences in means, empirical-Bayes shrinkage toward coarser groups,
fallback for unseen codes, and a numpy reference of the documented estimator."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.planning.uplift import CellUplift


def make(n=60_000, n_cells=40, n_clusters=8, n_treatments=2, seed=0):
    """Cells nested in clusters (cell % n_clusters); effects differ by cluster and a little by
    cell."""
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, n_cells, n)
    cluster = cell % n_clusters
    t = rng.integers(0, n_treatments + 1, n)
    cl_eff = rng.normal(0, 0.3, (n_clusters, n_treatments))
    cell_eff = cl_eff[np.arange(n_cells) % n_clusters] + rng.normal(
        0, 0.05, (n_cells, n_treatments)
    )
    eff = np.where(t > 0, cell_eff[cell, np.maximum(t - 1, 0)], 0.0)
    y = 0.2 * cluster + eff + rng.normal(size=n)
    return np.column_stack([cell, cluster]), t, y, cell_eff


# ---------------------------------------------------------------- numpy reference (cell.rs)
def _sums(ids, t, y, w, n_groups, arms):
    out = np.zeros((n_groups, arms, 5))
    for a in range(arms):
        m = t == a
        for k, v in enumerate([np.ones(m.sum()), w[m], w[m] ** 2, w[m] * y[m], w[m] * y[m] ** 2]):
            out[:, a, k] = np.bincount(ids[m], weights=v, minlength=n_groups)
    return out


def _var(s):  # weighted population variance of one row, >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        m = s[..., 3] / s[..., 1]
        return np.where(s[..., 1] > 0, np.maximum(s[..., 4] / s[..., 1] - m * m, 0), 0.0)


def _neff(s):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[..., 2] > 0, s[..., 1] ** 2 / s[..., 2], 0.0)


def _smoothed(s, pvar):
    ne = _neff(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ne > 0, _var(s) + pvar / ne, pvar)


def reference(groups, t, y, w=None, prior=None, min_count=1):
    """Estimates (n, T) and s.e. of the documented estimator, level by level in numpy."""
    n, L = groups.shape
    T = int(t.max())
    arms = T + 1
    w = np.ones(n) if w is None else w
    # nested ids: level l = combination of codes l..L-1, ranked by (code * n_parent + parent)
    parent = np.zeros(n, dtype=np.int64)
    n_parent = 1
    ids, keys_of, npar = [None] * L, [None] * L, [None] * L
    for lvl in range(L - 1, -1, -1):
        key = groups[:, lvl] * n_parent + parent
        keys, inv = np.unique(key, return_inverse=True)
        ids[lvl], keys_of[lvl], npar[lvl] = inv, keys, n_parent
        parent, n_parent = inv, len(keys)
    # global
    s_all = _sums(np.zeros(n, dtype=np.int64), t, y, w, 1, arms)[0]
    tot = s_all.sum(axis=0)
    pooled = _var(tot[None])[0]
    gvar = _smoothed(s_all, pooled)
    vt, vc = _var(s_all[1:]) + pooled / _neff(s_all[1:]), _var(s_all[0]) + pooled / _neff(s_all[0])
    g_est = s_all[1:, 3] / s_all[1:, 1] - s_all[0, 3] / s_all[0, 1]
    g_se = np.sqrt(vt / _neff(s_all[1:]) + vc / _neff(s_all[0]))
    p_est, p_se, p_var = g_est[None], g_se[None], gvar[None]
    est_of = [None] * L
    se_of = [None] * L
    for lvl in range(L - 1, -1, -1):
        G = len(keys_of[lvl])
        s = _sums(ids[lvl], t, y, w, G, arms)
        pa = keys_of[lvl] % npar[lvl]
        pv = p_var[pa]  # (G, arms)
        var = _smoothed(s, pv)
        sc, st = s[:, 0], s[:, 1:]
        ok = (st[..., 0] >= min_count) & (sc[:, None, 0] >= min_count)
        ok &= (st[..., 1] > 0) & (sc[:, None, 1] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            nt, nc = _neff(st), _neff(sc)[:, None]
            vt = _var(st) + pv[:, 1:] / nt
            vc = _var(sc)[:, None] + pv[:, :1] / nc
            raw = st[..., 3] / st[..., 1] - (sc[:, 3] / sc[:, 1])[:, None]
            se2 = vt / nt + vc / nc
            ne = 1 / (1 / nt + 1 / nc)
        est = np.empty((G, T))
        se = np.empty((G, T))
        for k in range(T):
            o = ok[:, k]
            pe, ps = p_est[pa, k], p_se[pa, k]
            if prior is None:
                m = o.sum()
                dev = raw[o, k] - pe[o]
                tau2 = (np.sum(dev**2) - np.sum(se2[o, k])) / m if m >= 2 else 0.0
                kk = np.sum(se2[o, k] * ne[o, k]) / m / tau2 if tau2 > 0 else np.inf
            else:
                kk = prior
            if kk == 0:
                wt = np.ones(G)
            elif np.isinf(kk):
                wt = np.zeros(G)
            else:
                wt = ne[:, k] / (ne[:, k] + kk)
            wt = np.where(o, wt, 0.0)
            r = np.where(o, raw[:, k], 0.0)
            s2 = np.where(o, se2[:, k], 0.0)
            est[:, k] = wt * r + (1 - wt) * pe
            se[:, k] = np.sqrt(wt * s2 + (1 - wt) ** 2 * ps**2)
        est_of[lvl], se_of[lvl] = est, se
        p_est, p_se, p_var = est, se, var
    return est_of[0][ids[0]], se_of[0][ids[0]]


# ---------------------------------------------------------------- tests
def test_zero_prior_strength_gives_the_raw_difference_in_means():
    g, t, y, _ = make(n_treatments=1)
    m = CellUplift(prior_strength=0.0).fit(g, t, y)
    est = m.predict(g)
    df = pd.DataFrame({"cell": g[:, 0], "t": t, "y": y})
    means = df.groupby(["cell", "t"]).y.mean().unstack()
    raw = (means[1] - means[0]).to_numpy()
    np.testing.assert_allclose(est, raw[g[:, 0]], rtol=0, atol=1e-12)
    assert est.shape == (len(y),)


def test_small_groups_shrink_toward_their_parent():
    g, t, y, _ = make(n_treatments=1, seed=1)
    # one tiny cell (20 rows) with a wild raw effect, in cluster 3
    rng = np.random.default_rng(5)
    tiny = np.column_stack([np.full(20, 999), np.full(20, 3)])
    tt = np.tile([0, 1], 10)
    yt = tt * 5.0 + rng.normal(size=20)
    G, T, Y = np.vstack([g, tiny]), np.concatenate([t, tt]), np.concatenate([y, yt])
    raw = CellUplift(prior_strength=0.0).fit(G, T, Y)
    eb = CellUplift(prior_strength=50.0).fit(G, T, Y)
    auto = CellUplift().fit(G, T, Y)
    probe = np.array([[999, 3]])
    cluster = CellUplift(prior_strength=0.0).fit(G[:, 1:], T, Y).predict(probe[:, 1:])[0]
    r, e, a = raw.predict(probe)[0], eb.predict(probe)[0], auto.predict(probe)[0]
    assert r > 4
    assert abs(e - cluster) < abs(r - cluster)  # pulled toward the cluster's effect
    assert abs(a - cluster) < abs(r - cluster)
    # a big cell moves much less than the tiny one under the same prior
    big = g[0:1]
    shift_big = abs(eb.predict(big)[0] - raw.predict(big)[0])
    assert shift_big < abs(e - r) / 10
    # posterior s.e. of the tiny cell is below its raw s.e.
    assert eb.predict(probe, return_se=True)[1][0] < raw.predict(probe, return_se=True)[1][0]


def test_unseen_codes_fall_back_to_coarser_levels():
    g, t, y, _ = make(seed=2)
    m = CellUplift(levels=["cell", "cluster"]).fit(g, t, y)
    probe = np.array([[g[0, 0], g[0, 1]], [12345, g[0, 1]], [12345, 777]])
    est, se = m.predict(probe, return_se=True)
    assert est.shape == se.shape == (3, 2)
    np.testing.assert_array_equal(m.predict_level(probe), [0, 1, 2])
    cluster_only = m.predict(np.array([[12345, g[0, 1]]]))
    np.testing.assert_array_equal(est[1], cluster_only[0])
    np.testing.assert_array_equal(est[2], m.global_effect_)
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    # a cell code seen in the fit under another cluster is a new (cell, cluster) group
    other = (g[0, 1] + 1) % 8
    assert m.predict_level(np.array([[g[0, 0], other]]))[0] == 1


@pytest.mark.parametrize("prior", [None, 0.0, 7.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_a_numpy_reference(prior, weighted):
    rng = np.random.default_rng(3)
    n = 5_000
    # three non-nested levels with empty and single-row arms in places
    groups = np.column_stack(
        [rng.integers(0, 150, n), rng.integers(0, 12, n), rng.integers(0, 3, n)]
    )
    t = rng.integers(0, 3, n)
    y = rng.normal(size=n) + 0.3 * (t == 1) * (groups[:, 1] % 3) + rng.exponential(size=n)
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    m = CellUplift(prior_strength="auto" if prior is None else prior).fit(
        groups, t, y, sample_weight=w
    )
    est, se = m.predict(groups, return_se=True)
    ref_est, ref_se = reference(groups, t, y, w, prior)
    np.testing.assert_allclose(est, ref_est, rtol=0, atol=1e-10)
    np.testing.assert_allclose(se, ref_se, rtol=0, atol=1e-10)


def test_min_count_sends_thin_groups_to_the_parent():
    g, t, y, _ = make(n=4_000, n_cells=400, seed=4, n_treatments=1)
    m = CellUplift(prior_strength=0.0, min_count=15).fit(g, t, y)
    ref, _ = reference(g, t, y, None, 0.0, min_count=15)
    np.testing.assert_allclose(m.predict(g), ref[:, 0], atol=1e-10)
    counts = pd.crosstab(g[:, 0], t)
    thin = counts.index[(counts < 15).any(axis=1)][0]
    row = g[g[:, 0] == thin][:1]
    cluster = CellUplift(prior_strength=0.0).fit(g[:, 1:], t, y).predict(row[:, 1:])
    np.testing.assert_allclose(m.predict(row), cluster, atol=1e-12)


def test_tables_pickle_and_validation():
    g, t, y, _ = make(n=5_000, seed=6)
    df = pd.DataFrame({"stage": g[:, 1] // 4, "cluster": g[:, 1], "cell": g[:, 0]})
    m = CellUplift(levels=["cell", "cluster", "stage"]).fit(df, t, y)
    assert m.levels_ == ["cell", "cluster", "stage"]
    assert m.n_features_in_ == 3 and len(m.n_groups_) == 3
    assert m.prior_strength_.shape == (3, 2)
    a = m.predict(df)
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.predict(df), a)
    np.testing.assert_array_equal(m.predict(df[["cell", "cluster", "stage"]].to_numpy()), a)
    with pytest.raises(ValueError, match="^groups: unknown column"):
        CellUplift(levels=["nope"]).fit(df, t, y)
    with pytest.raises(ValueError, match="^groups: codes must be integers in 0"):
        CellUplift().fit(g - 1, t, y)
    with pytest.raises(ValueError, match="^treatment: arm 1 has no rows"):
        CellUplift().fit(g, np.where(t == 1, 0, t), y)
    with pytest.raises(ValueError, match="^prior_strength"):
        CellUplift(prior_strength=-1.0).fit(g, t, y)
    with pytest.raises(ValueError, match="^prior_strength"):
        CellUplift(prior_strength="eb").fit(g, t, y)
    with pytest.raises(ValueError, match="^X: has 2 levels"):
        m.predict(g)
    with pytest.raises(ValueError, match="^y: must be finite"):
        CellUplift().fit(g, t, np.where(np.arange(len(y)) == 3, np.nan, y))
    state = m.__getstate__()
    state["state"]["_model"] = state["state"]["_model"][:-5]
    with pytest.raises(gm.StateError):
        CellUplift().__setstate__(state)
