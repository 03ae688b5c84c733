"""UpliftForest: recovery of known heterogeneous effects, honesty, determinism, persistence,
validation, progress and Ctrl-C."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import growthmachine as gm
from growthmachine.planning.metrics import qini_auc_score, qini_auc_score_per_treatment
from growthmachine.planning.uplift import UpliftForest


def make(n: int, n_treatments: int = 1, binary: bool = False, seed: int = 0, p: int = 6):
    """X, treatment, y and the true effects (n, T): arm 1 has tau = 1[x0 > 0] * 0.3 - 0.1
    (continuous y; half of it for binary y), arm 2 tau = 0.2 * x1, arm 3 tau = 0.25 * 1[x2 > 0.5]."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    t = rng.integers(0, n_treatments + 1, n)
    tau = np.column_stack(
        [
            np.where(X[:, 0] > 0, 0.3, 0.0) - 0.1,
            0.2 * np.clip(X[:, 1], -2, 2),
            np.where(X[:, 2] > 0.5, 0.25, 0.0),
        ]
    )[:, :n_treatments]
    eff = np.where(t > 0, tau[np.arange(n), np.maximum(t - 1, 0)], 0.0)
    if binary:
        tau = tau / 2
        prob = 0.35 + 0.1 * np.tanh(X[:, 3]) + eff / 2
        y = (rng.random(n) < prob).astype(float)
    else:
        y = 0.5 * X[:, 3] + eff + rng.normal(size=n)
    return X, t, y, tau


def fit(X, t, y, **kw):
    kw = {"n_estimators": 40, "min_samples_leaf": 50, "seed": 1, **kw}
    return UpliftForest(**kw).fit(X, t, y)


def test_recovers_a_heterogeneous_effect_continuous_y():
    X, t, y, tau = make(40_000, seed=1)
    m = fit(X, t, y)
    Xt, _, _, taut = make(5_000, seed=2)
    pred = m.predict(Xt)
    assert pred.shape == (5_000,)
    assert np.corrcoef(pred, taut[:, 0])[0, 1] > 0.8
    pos = Xt[:, 0] > 0
    assert pred[pos].mean() > 0.1 and pred[~pos].mean() < 0.0  # the sign split is recovered
    assert np.argmax(m.feature_importances_) == 0
    assert m.feature_importances_.sum() == pytest.approx(1.0)


def test_multi_treatment_effects_per_arm():
    X, t, y, _ = make(90_000, n_treatments=3, seed=3)
    m = fit(X, t, y, n_estimators=100)
    Xt, _, _, taut = make(5_000, n_treatments=3, seed=4)
    est, se = m.predict(Xt, return_se=True)
    assert est.shape == se.shape == (5_000, 3)
    for k in range(3):
        assert np.corrcoef(est[:, k], taut[:, k])[0, 1] > 0.8, k
    assert np.all(se > 0) and np.all(np.isfinite(se))
    assert set(np.argsort(m.feature_importances_)[-3:]) == {0, 1, 2}


def test_binary_outcome_and_qini_better_than_random():
    X, t, y, _ = make(80_000, binary=True, seed=5)
    assert set(np.unique(y)) == {0.0, 1.0}
    m = fit(X, t, y)
    Xt, tt, yt, taut = make(40_000, binary=True, seed=6)
    pred = m.predict(Xt)
    assert np.corrcoef(pred, taut[:, 0])[0, 1] > 0.8
    q = qini_auc_score(yt, pred, tt)
    rng = np.random.default_rng(0)
    rand = [qini_auc_score(yt, rng.random(len(yt)), tt) for _ in range(20)]
    assert q > max(rand) and q > 5 * np.std(rand)
    # the ranking by the true effect is at least about as good
    assert q <= qini_auc_score(yt, taut[:, 0], tt) + 0.005


def test_multi_treatment_qini_per_treatment_better_than_random():
    X, t, y, _ = make(90_000, n_treatments=3, binary=True, seed=16)
    Xt, tt, yt, taut = make(60_000, n_treatments=3, binary=True, seed=17)
    q = qini_auc_score_per_treatment(yt, fit(X, t, y).predict(Xt), tt)
    oracle = qini_auc_score_per_treatment(yt, taut, tt)
    rand = qini_auc_score_per_treatment(yt, np.random.default_rng(1).random((len(yt), 3)), tt)
    assert np.all(q > 0.8 * oracle) and np.all(q > rand + 0.02), (q, oracle, rand)


def test_standard_errors_shrink_with_the_data_like_one_over_root_n():
    kw = {"n_estimators": 30, "max_depth": 3, "min_samples_leaf": 200}
    se = []
    for n in (20_000, 80_000):
        X, t, y, _ = make(n, seed=15)
        se.append(np.median(fit(X, t, y, **kw).predict(X[:1000], return_se=True)[1]))
    # 4x the rows, same tree shape: about half the standard error
    assert 0.4 < se[1] / se[0] < 0.65, se


def test_honest_estimates_are_not_fooled_by_noise():
    # No effect anywhere: adaptive (non-honest) leaves pick up the noise the splits chased;
    # honest leaves, estimated on rows the splits never saw, stay near 0.
    rng = np.random.default_rng(7)
    n = 20_000
    X = rng.normal(size=(n, 5))
    t = rng.integers(0, 2, n)
    y = rng.normal(size=n)
    kw = {"n_estimators": 20, "min_samples_leaf": 20, "min_samples_treatment": 5, "shrinkage": 0}
    honest = fit(X, t, y, honest=True, **kw).predict(X[:2000])
    adaptive = fit(X, t, y, honest=False, **kw).predict(X[:2000])
    assert np.mean(adaptive**2) > 2 * np.mean(honest**2)
    # the honest forest's rows used for splitting and estimation differ: same seed, other result
    assert not np.allclose(honest, adaptive)


def test_same_result_with_one_and_two_threads():
    X, t, y, _ = make(20_000, n_treatments=2, seed=8)
    try:
        gm.set_num_threads(1)
        one = fit(X, t, y, n_estimators=12).predict(X[:500], return_se=True)
        gm.set_num_threads(2)
        two = fit(X, t, y, n_estimators=12).predict(X[:500], return_se=True)
    finally:
        gm.set_num_threads(os.cpu_count() or 1)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    other = fit(X, t, y, n_estimators=12, seed=2).predict(X[:500])
    assert not np.array_equal(one[0], other)


def test_pickle_round_trip_gives_identical_predictions():
    X, t, y, _ = make(10_000, n_treatments=2, seed=9)
    m = fit(X, t, y, n_estimators=10)
    back = pickle.loads(pickle.dumps(m))
    a, b = m.predict(X[:300], return_se=True), back.predict(X[:300], return_se=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(m.feature_importances_, back.feature_importances_)
    assert back.get_params() == m.get_params()
    state = m.__getstate__()
    blob = bytearray(state["state"]["_forest"])
    blob[len(blob) // 2] ^= 1
    state["state"]["_forest"] = bytes(blob)
    with pytest.raises(gm.StateError):
        UpliftForest().__setstate__(state)


def test_integer_weights_equal_repeated_rows():
    X, t, y, _ = make(3_000, seed=10)
    X = np.round(X, 1)  # fewer distinct values than bins: the same edges for both fits
    w = np.random.default_rng(0).integers(1, 4, len(y)).astype(float)
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    kw = {
        "n_estimators": 1,
        "honest": False,
        "subsample": 1.0,
        "max_features": 1.0,
        "max_bins": 256,
        "max_depth": 3,
        "min_samples_leaf": 1,
        "min_samples_treatment": 1,
        "shrinkage": 0.0,
    }
    a = UpliftForest(**kw).fit(X, t, y, sample_weight=w)
    b = UpliftForest(**kw).fit(X[rep], t[rep], y[rep])
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-12)
    assert np.ptp(a.predict(X)) > 0  # it did split


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"n_estimators": 0}, "n_estimators"),
        ({"n_estimators": 10**9}, "n_estimators"),
        ({"max_bins": 1}, "max_bins"),
        ({"max_bins": 257}, "max_bins"),
        ({"max_depth": 65}, "max_depth"),
        ({"max_features": 0}, "max_features"),
        ({"max_features": 1.5}, "max_features"),
        ({"max_features": "log2"}, "max_features"),
        ({"max_features": "sqrt+10"}, "max_features"),
        ({"subsample": 0.0}, "subsample"),
        ({"shrinkage": -1.0}, "shrinkage"),
        ({"min_samples_leaf": 0}, "min_samples_leaf"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_argument(kwargs, arg):
    X, t, y, _ = make(500, seed=11)
    with pytest.raises(ValueError, match=f"^{arg}"):
        UpliftForest(**kwargs).fit(X, t, y)


def test_bad_data_raises_value_error_naming_the_argument():
    X, t, y, _ = make(500, n_treatments=2, seed=12)
    with pytest.raises(ValueError, match="^treatment: arm 2 has no rows"):
        UpliftForest().fit(X, np.where(t == 2, 3, t), y)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="^X: must be finite"):
        UpliftForest().fit(Xn, t, y)
    yn = y.copy()
    yn[0] = np.inf
    with pytest.raises(ValueError, match="^y: must be finite"):
        UpliftForest().fit(X, t, yn)
    with pytest.raises(ValueError, match="^y: has length"):
        UpliftForest().fit(X, t, y[:-1])
    with pytest.raises(TypeError, match="^max_features"):
        UpliftForest(max_features=True).fit(X, t, y)
    m = UpliftForest(n_estimators=2).fit(X, t, y)
    with pytest.raises(ValueError, match="^X:"):
        m.predict(X[:, :3])
    with pytest.raises(ValueError, match="not fitted"):
        UpliftForest().predict(X)


def test_progress_false_draws_no_bar(capsys):
    X, t, y, _ = make(20_000, seed=13)
    UpliftForest(n_estimators=30, progress=False).fit(X, t, y)
    assert capsys.readouterr().err == ""


def test_progress_callback_counts_trees():
    from growthmachine import _core

    X, t, y, _ = make(5_000, seed=14)
    seen: list[tuple[int, int]] = []
    _core.PlanningForest.fit(
        X, t, y, None, 1, 25, 6, 20, 5, "sqrt", 32, True, 0.5, 1.0, 0,
        progress=lambda d, n: seen.append((d, n)),
    )  # fmt: skip
    if seen:  # the call may end before the first 50 ms poll
        assert all(n == 25 for _, n in seen) and seen[-1][0] <= 25


FOREST_SETUP = """
import numpy as np
from growthmachine.planning.uplift import UpliftForest
rng = np.random.default_rng(0)
X = rng.normal(size=(200_000, 10)); t = rng.integers(0, 3, 200_000); y = rng.normal(size=200_000)
"""


def test_ctrl_c_interrupts_a_fit_within_half_a_second(seconds_to_interrupt):
    fit = (
        "UpliftForest(n_estimators=100_000, min_samples_leaf=5, max_depth=20, progress=False)"
        ".fit(X, t, y)"
    )
    assert seconds_to_interrupt(FOREST_SETUP, fit, after=1.5) < 0.5


def test_predict_pairs_equals_predicting_the_stacked_rows():
    """A forest fitted on rows [x, z] (z describes a task) predicts every (x, z) pair at once,
    bit for bit as predict on the stacked rows, and as the generic fallback of UpliftModel."""
    from growthmachine.planning.uplift._base import UpliftModel

    rng = np.random.default_rng(5)
    n, k = 20_000, 6
    X = rng.normal(size=(n, 3))
    Z = np.column_stack([np.arange(k) % 3, np.arange(k) >= 3]).astype(float)
    j = rng.integers(0, k, n)
    t = rng.integers(0, 2, n)
    tau = 0.2 * Z[j, 0] - 0.3 * Z[j, 1] * (X[:, 0] > 0)
    y = X[:, 1] + t * tau + rng.normal(size=n)
    m = fit(np.column_stack([X, Z[j]]), t, y, max_features=1.0)
    Xt = rng.normal(size=(300, 3))
    est, se = m.predict_pairs(Xt, Z, return_se=True)
    assert est.shape == se.shape == (300, k)
    stacked = np.column_stack([np.repeat(Xt, k, 0), np.tile(Z, (300, 1))])
    e2, s2 = m.predict(stacked, return_se=True)
    np.testing.assert_array_equal(est, e2.reshape(300, k))
    np.testing.assert_array_equal(se, s2.reshape(300, k))
    np.testing.assert_array_equal(est, UpliftModel._predict_pairs(m, Xt, Z, False))
    # the task's effect is recovered: z0 raises it, z1 lowers it where x0 > 0
    assert est[:, 2].mean() > est[:, 0].mean() + 0.2
    assert est[Xt[:, 0] > 0, 3].mean() < est[Xt[:, 0] > 0, 0].mean() - 0.08
    with pytest.raises(ValueError, match="X, Z"):
        m.predict_pairs(Xt[:, :2], Z)
    with pytest.raises(ValueError, match="Z"):
        m.predict_pairs(Xt, Z[:, [0, 0, 1]])
    # tasks without features of their own (one task, or all alike): the user's estimate each
    plain = fit(X, t, y)
    np.testing.assert_array_equal(
        plain.predict_pairs(Xt, np.zeros((4, 0))), np.repeat(plain.predict(Xt)[:, None], 4, 1)
    )
    multi = fit(*make(3000, n_treatments=2)[:3])
    with pytest.raises(ValueError, match="one treatment"):
        multi.predict_pairs(Xt[:, :2], Z)


def test_max_features_sqrt_plus_20_is_grfs_mtry():
    """The default "sqrt+20" is min(ceil(sqrt(p) + 20), p) features per node, the same forest as
    that count bit for bit: every feature at p = 6, 26 of 30 features."""
    assert UpliftForest().max_features == "sqrt+20"
    X, t, y, _ = make(4_000, seed=21)
    a = fit(X, t, y, n_estimators=5)
    np.testing.assert_array_equal(
        a.predict(X), fit(X, t, y, n_estimators=5, max_features=6).predict(X)
    )
    X30 = np.column_stack([X] + [np.random.default_rng(5).normal(size=(4_000, 24))])
    b = fit(X30, t, y, n_estimators=5, max_features="sqrt+20").predict(X30)
    np.testing.assert_array_equal(b, fit(X30, t, y, n_estimators=5, max_features=26).predict(X30))
    assert not np.array_equal(b, fit(X30, t, y, n_estimators=5, max_features=25).predict(X30))


def test_auto_leaf_size_expects_ten_events_of_the_rarer_outcome():
    """``min_samples_leaf="auto"`` (the default) keeps 100 rows for continuous and common binary
    outcomes and grows the leaves of rare binary ones to ``ceil(10 / min(p, 1 - p))`` rows; the
    forest it fits is the forest of that int; a weighted rate counts the weights."""
    from growthmachine.planning.uplift.forest import auto_leaf_size

    X, t, y, _ = make(6_000, seed=31)
    assert UpliftForest().min_samples_leaf == "auto"
    assert UpliftForest(n_estimators=3).fit(X, t, y).min_samples_leaf_ == 100
    rng = np.random.default_rng(3)
    rare = (rng.random(len(y)) < 0.004).astype(float)
    rare[:24] = 1.0  # at least 24 events: p >= 0.004
    p = rare.mean()
    want = int(np.ceil(10 / p))
    assert 100 < want < len(y)
    assert auto_leaf_size(rare) == want
    assert auto_leaf_size(1.0 - rare) == want  # the rarer outcome, either way round
    assert auto_leaf_size((rng.random(1000) < 0.3).astype(float)) == 100
    assert auto_leaf_size(np.zeros(50)) == 100  # no variation: nothing to protect
    assert auto_leaf_size(np.r_[1.0, np.zeros(99_999)]) == 100_000  # at most n
    w = np.where(rare == 1.0, 3.0, 1.0)
    pw = 3 * rare.sum() / (3 * rare.sum() + (len(rare) - rare.sum()))
    assert auto_leaf_size(rare, w) == int(np.ceil(10 / pw))
    a = UpliftForest(n_estimators=5, seed=2).fit(X, t, rare)
    b = UpliftForest(n_estimators=5, seed=2, min_samples_leaf=want).fit(X, t, rare)
    assert a.min_samples_leaf_ == want
    np.testing.assert_array_equal(a.predict(X[:200]), b.predict(X[:200]))
    c = UpliftForest(n_estimators=5, seed=2, min_samples_leaf=100).fit(X, t, rare)
    assert not np.array_equal(a.predict(X[:200]), c.predict(X[:200]))
    # an explicit int is kept whatever the outcome
    assert UpliftForest(n_estimators=2, min_samples_leaf=7).fit(X, t, rare).min_samples_leaf_ == 7
    with pytest.raises(ValueError, match="^min_samples_leaf: must be an int >= 1 or 'auto'"):
        UpliftForest(min_samples_leaf="big").fit(X, t, y)
    # a pickled forest keeps the size it used
    assert pickle.loads(pickle.dumps(a)).min_samples_leaf_ == want
