"""planning.metrics: every function against scikit-uplift 0.5.1 (sklift.metrics) on random data
(binary and real-valued outcomes, ties, unbalanced groups, small n), the per-treatment variants
against the binary functions on the subsets, perfect models, input types and bad inputs.

scikit-uplift is in the ``test`` extra and imported directly. Its functions reject non-binary
outcomes (``check_is_binary(y_true)``); for real-valued outcomes, which ``qini_curve``,
``uplift_curve`` and ``uplift_at_k`` here accept, its formulas are run with that check disabled
(:func:`sklift_formula`).
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pandas as pd
import polars as pl
import pytest
import sklift.metrics as sk
import sklift.metrics.metrics as sk_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthmachine.planning import metrics as gm

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*stable_cumsum.*"),
    pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]

TOL = {"rtol": 1e-9, "atol": 1e-9}
CURVES = ["qini_curve", "uplift_curve"]
PERFECT = ["perfect_qini_curve", "perfect_uplift_curve"]
SCORES = ["qini_auc_score", "uplift_auc_score"]
PUBLIC = CURVES + PERFECT + SCORES + ["uplift_at_k"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def sklift_formula():
    """scikit-uplift with its binary check disabled (for real-valued outcomes; the treatment
    passed is binary with both groups by construction)."""
    with mock.patch.object(sk_module, "check_is_binary", lambda array: None):
        yield


def outcome(fn, *args, **kwargs):
    """The result, or the exception raised; ``nan`` counts as a failure (sklift's empty means)."""
    try:
        r = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        return e
    if isinstance(r, float) and math.isnan(r):
        return ValueError("nan")
    return r


def assert_same_score(ours, theirs):
    if isinstance(theirs, Exception):
        assert isinstance(ours, ValueError), f"sklift failed ({theirs!r}), ours returned {ours!r}"
        return
    assert not isinstance(ours, Exception), f"ours raised {ours!r}, sklift returned {theirs!r}"
    assert type(ours) is type(theirs)
    np.testing.assert_allclose(ours, theirs, **TOL)


def assert_same_curve(ours, theirs):
    (xo, vo), (xt, vt) = ours, theirs
    assert xo.dtype == xt.dtype and vo.dtype == vt.dtype
    np.testing.assert_array_equal(xo, xt)
    np.testing.assert_allclose(vo, vt, **TOL)


# --------------------------------------------------------------------------------------------
# data


def _two_indices(draw, n):
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(0, n - 2))
    return i, j + (j >= i)


SCORE_KINDS = {
    "continuous": st.floats(-1e3, 1e3, allow_nan=False),
    "rounded": st.floats(-1, 1).map(lambda v: round(v, 1)),  # ties
    "few": st.integers(-2, 2).map(float),  # heavy ties
    "signed zeros": st.sampled_from([0.0, -0.0, 1.0]),
}


@st.composite
def uplift_data(draw, binary_y: bool = True, max_n: int = 60):
    """(y_true, uplift, treatment): both groups present; binary y with both values present."""
    n = draw(st.integers(4, max_n))
    t = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    i, j = _two_indices(draw, n)
    t[i], t[j] = 0, 1
    if binary_y:
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        a, b = _two_indices(draw, n)
        y[a], y[b] = 0, 1
    else:
        y = np.array(draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
    kind = draw(st.sampled_from(sorted(SCORE_KINDS)))
    u = np.array(draw(st.lists(SCORE_KINDS[kind], min_size=n, max_size=n)), dtype=np.float64)
    return y, u, t


K_VALUES = st.one_of(st.sampled_from([0.05, 0.1, 0.3, 0.5, 0.75, 0.99]), st.integers(1, 60))


# --------------------------------------------------------------------------------------------
# against scikit-uplift


def test_signatures_match_sklift():
    for name in PUBLIC:
        ours = inspect.signature(getattr(gm, name)).parameters
        theirs = inspect.signature(getattr(sk, name)).parameters
        assert [(p.name, p.default) for p in ours.values()] == [
            (p.name, p.default) for p in theirs.values()
        ], name


@SETTINGS
@given(uplift_data())
def test_curves_match_sklift_binary(d):
    y, u, t = d
    for name in CURVES:
        assert_same_curve(getattr(gm, name)(y, u, t), getattr(sk, name)(y, u, t))
    assert_same_curve(gm.perfect_uplift_curve(y, t), sk.perfect_uplift_curve(y, t))
    for neg in (True, False):
        assert_same_curve(gm.perfect_qini_curve(y, t, neg), sk.perfect_qini_curve(y, t, neg))


@SETTINGS
@given(uplift_data(binary_y=False))
def test_curves_match_sklift_formula_real_outcomes(d):
    y, u, t = d
    with sklift_formula():
        for name in CURVES:
            assert_same_curve(getattr(gm, name)(y, u, t), getattr(sk, name)(y, u, t))


@SETTINGS
@given(uplift_data())
def test_scores_match_sklift(d):
    y, u, t = d
    assert_same_score(outcome(gm.uplift_auc_score, y, u, t), outcome(sk.uplift_auc_score, y, u, t))
    for neg in (True, False):
        assert_same_score(
            outcome(gm.qini_auc_score, y, u, t, negative_effect=neg),
            outcome(sk.qini_auc_score, y, u, t, negative_effect=neg),
        )


@SETTINGS
@given(uplift_data(), st.sampled_from(gm.STRATEGIES), K_VALUES)
def test_uplift_at_k_matches_sklift_binary(d, strategy, k):
    y, u, t = d
    assert_same_score(
        outcome(gm.uplift_at_k, y, u, t, strategy, k), outcome(sk.uplift_at_k, y, u, t, strategy, k)
    )


@SETTINGS
@given(uplift_data(binary_y=False), st.sampled_from(gm.STRATEGIES), K_VALUES)
def test_uplift_at_k_matches_sklift_formula_real_outcomes(d, strategy, k):
    y, u, t = d
    with sklift_formula():
        theirs = outcome(sk.uplift_at_k, y, u, t, strategy, k)
    assert_same_score(outcome(gm.uplift_at_k, y, u, t, strategy, k), theirs)


@pytest.mark.parametrize("decimals", [None, 2])
def test_large_n_matches_sklift(decimals):
    """Above the size where the four category sorts run on threads; ties when rounded."""
    n = 300_000
    rng = np.random.default_rng(7)
    t = (rng.random(n) < 0.3).astype(np.int32)
    y = (rng.random(n) < 0.1 + 0.05 * t).astype(np.int32)
    u = rng.normal(0.02 * t, 0.05)
    if decimals is not None:
        u = np.round(u, decimals)
    for name in CURVES:
        assert_same_curve(getattr(gm, name)(y, u, t), getattr(sk, name)(y, u, t))
    assert_same_score(gm.qini_auc_score(y, u, t), sk.qini_auc_score(y, u, t))
    assert_same_score(gm.uplift_auc_score(y, u, t), sk.uplift_auc_score(y, u, t))
    assert_same_score(gm.qini_auc_score(y, u, t, False), sk.qini_auc_score(y, u, t, False))
    for strategy in gm.STRATEGIES:
        for k in (0.2, 1234):
            assert_same_score(
                gm.uplift_at_k(y, u, t, strategy, k), sk.uplift_at_k(y, u, t, strategy, k)
            )


def test_sklift_rejects_real_outcomes_which_the_curves_accept():
    y, u, t = [0.5, 2.0, 0.0, 1.0], [0.1, 0.4, 0.2, 0.3], [0, 1, 0, 1]
    with pytest.raises(ValueError):
        sk.qini_curve(y, u, t)
    gm.qini_curve(y, u, t)
    for name in SCORES:
        with pytest.raises(ValueError, match="y_true: .* needs binary outcomes"):
            getattr(gm, name)(y, u, t)


def test_ties_enter_together_and_order_inside_a_tie_matters_only_at_k():
    # all scores tied: the curves have the origin and one point
    y, t = np.array([1, 0, 0, 1, 1, 0]), np.array([1, 1, 0, 0, 1, 0])
    u = np.zeros(6)
    x, q = gm.qini_curve(y, u, t)
    np.testing.assert_array_equal(x, [0, 6])
    np.testing.assert_allclose(q, [0.0, 2 - 1 * 3 / 3])
    # signed zeros are one tie
    x, _ = gm.uplift_curve(y, np.array([0.0, -0.0, 0.0, -0.0, 1.0, 1.0]), t)
    np.testing.assert_array_equal(x, [0, 2, 6])
    # uplift at k cuts the tie as sklift: later rows first
    for k in (1, 2, 3, 4, 5):
        assert_same_score(
            outcome(gm.uplift_at_k, y, u, t, "overall", k),
            outcome(sk.uplift_at_k, y, u, t, "overall", k),
        )


def test_return_types():
    y, u, t = [1, 0, 0, 1, 1, 0], [0.3, 0.1, 0.2, 0.5, 0.4, 0.0], [1, 1, 0, 0, 1, 0]
    x, v = gm.qini_curve(y, u, t)
    assert x.dtype == np.int64 and v.dtype == np.float64
    x, v = gm.perfect_qini_curve(y, t, negative_effect=False)
    assert x.dtype == np.float64 and x.shape == (3,)
    assert type(gm.qini_auc_score(y, u, t)) is float
    assert type(gm.uplift_auc_score(y, u, t)) is float
    assert type(gm.uplift_at_k(y, u, t, "overall", 4)) is np.float64


# --------------------------------------------------------------------------------------------
# perfect models


@SETTINGS
@given(uplift_data())
def test_perfect_models_score_one_where_sklift_does(d):
    """Where sklift's normalised area is defined, the oracle score gets 1 in both; where it is
    not (the perfect curve is the random line, e.g. a single treated responder), both fail."""
    y, _, t = d
    cr, tn = np.sum((y == 1) & (t == 0)), np.sum((y == 0) & (t == 1))
    for name, score in (
        ("qini_auc_score", y * t - y * (1 - t)),
        ("uplift_auc_score", 2 * (y == t) + (y if cr > tn else t)),
    ):
        ours = outcome(getattr(gm, name), y, score, t)
        theirs = outcome(getattr(sk, name), y, score, t)
        assert_same_score(ours, theirs)
        if not isinstance(theirs, Exception):
            assert ours == pytest.approx(1.0, abs=1e-12) and theirs == pytest.approx(1.0, abs=1e-12)


def test_zero_area_perfect_curve_fails_in_both():
    y, u, t = [0, 1, 0, 0], [0.0, 0.0, 0.0, 0.0], [0, 1, 0, 0]
    with pytest.raises(ZeroDivisionError):
        sk.uplift_auc_score(y, u, t)
    with pytest.raises(ValueError, match="y_true: .*perfect uplift curve has zero area"):
        gm.uplift_auc_score(y, u, t)


def test_perfect_model_example_and_random_model_near_zero():
    rng = np.random.default_rng(3)
    n = 20_000
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.1 * t).astype(int)
    assert gm.qini_auc_score(y, y * t - y * (1 - t), t) == pytest.approx(1.0, abs=1e-12)
    assert abs(gm.qini_auc_score(y, rng.random(n), t)) < 0.1
    assert abs(gm.uplift_auc_score(y, rng.random(n), t)) < 0.1


# --------------------------------------------------------------------------------------------
# several treatments


@st.composite
def multi_data(draw, max_n: int = 80):
    n_treat = draw(st.integers(1, 3))
    n = draw(st.integers(2 * (n_treat + 1), max_n))
    codes = np.array(draw(st.lists(st.integers(0, n_treat), min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # every code present with both outcomes: rows 2c and 2c+1
    codes[: 2 * (n_treat + 1)] = np.repeat(np.arange(n_treat + 1), 2)
    y[: 2 * (n_treat + 1)] = np.tile([0, 1], n_treat + 1)
    kind = draw(st.sampled_from(sorted(SCORE_KINDS)))
    u = np.array(
        draw(st.lists(SCORE_KINDS[kind], min_size=n * n_treat, max_size=n * n_treat)),
        dtype=np.float64,
    ).reshape(n, n_treat)
    return y, u, codes


@SETTINGS
@given(multi_data(), st.sampled_from(gm.STRATEGIES), K_VALUES, st.booleans())
def test_per_treatment_equals_binary_on_subsets(d, strategy, k, neg):
    y, u, codes = d
    n_treat = u.shape[1]
    qini = outcome(gm.qini_auc_score_per_treatment, y, u, codes, negative_effect=neg)
    upl = gm.uplift_auc_score_per_treatment(y, u, codes)
    at_k = outcome(gm.uplift_at_k_per_treatment, y, u, codes, strategy, k)
    for arr in (qini, upl, at_k):
        assert isinstance(arr, (np.ndarray, ValueError))
        if isinstance(arr, np.ndarray):
            assert arr.shape == (n_treat,) and arr.dtype == np.float64
    singles: dict[str, list] = {"qini": [], "at_k": []}
    for j in range(n_treat):
        rows = (codes == 0) | (codes == j + 1)
        ys, us, ts = y[rows], u[rows, j], (codes[rows] == j + 1).astype(int)
        assert upl[j] == gm.uplift_auc_score(ys, us, ts)
        np.testing.assert_allclose(upl[j], sk.uplift_auc_score(ys, us, ts), **TOL)
        for key, ours, theirs in (
            ("qini", gm.qini_auc_score, sk.qini_auc_score),
            ("at_k", gm.uplift_at_k, sk.uplift_at_k),
        ):
            args = (ys, us, ts, neg) if key == "qini" else (ys, us, ts, strategy, k)
            single = outcome(ours, *args)
            assert_same_score(single, outcome(theirs, *args))
            singles[key].append(single)
    for key, arr in (("qini", qini), ("at_k", at_k)):
        if any(isinstance(v, Exception) for v in singles[key]):
            assert isinstance(arr, ValueError)  # one treatment undefined: the call fails
        else:
            np.testing.assert_array_equal(arr, singles[key])


def test_per_treatment_example():
    rng = np.random.default_rng(1)
    n = 3000
    codes = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.1 + 0.05 * (codes == 1) + 0.1 * (codes == 2)).astype(int)
    u = rng.random((n, 2))
    u[:, 1] += 0.5 * y * (codes == 2)
    out = gm.qini_auc_score_per_treatment(y, u, codes)
    assert out.shape == (2,)
    assert out[1] > out[0] + 0.2  # column 2 is informative for treatment 2
    assert isinstance(gm.uplift_at_k_per_treatment(y, u, codes, "by_group", 0.2), np.ndarray)


# --------------------------------------------------------------------------------------------
# inputs


Y = [1, 0, 0, 1, 1, 0, 1, 0, 1, 0]
U = [0.3, 0.1, 0.2, 0.5, 0.4, 0.0, 0.9, 0.7, 0.6, 0.8]
T = [1, 1, 0, 0, 1, 0, 1, 0, 0, 1]


@pytest.mark.parametrize(
    "convert",
    [
        list,
        np.array,
        lambda v: np.asarray(v, dtype=np.int8 if isinstance(v[0], int) else np.float32),
        lambda v: np.asarray(v, dtype=np.uint8 if isinstance(v[0], int) else np.float64),
        lambda v: np.asarray(v, dtype=bool) if isinstance(v[0], int) else np.asarray(v),
        pd.Series,
        pl.Series,
    ],
    ids=["list", "numpy", "int8/float32", "uint8", "bool", "pandas", "polars"],
)
def test_input_types(convert):
    ref = (np.array(Y, float), np.array(U, float), np.array(T, float))
    got = (convert(Y), convert(U), convert(T))
    if got[1].__class__ is np.ndarray and got[1].dtype == np.float32:
        ref = (ref[0], np.asarray(U, np.float32).astype(float), ref[2])
    for name in CURVES:
        assert_same_curve(getattr(gm, name)(*got), getattr(gm, name)(*ref))
    for name in SCORES:
        assert getattr(gm, name)(*got) == getattr(gm, name)(*ref)
    assert gm.uplift_at_k(*got, "by_group", 2) == gm.uplift_at_k(*ref, "by_group", 2)


BAD = [
    # (function, kwargs overrides, exception, message regex)
    ("qini_auc_score", {"y_true": Y[:5] + [np.nan] + Y[6:]}, ValueError, r"y_true: must be finite"),
    ("qini_curve", {"uplift": U[:3] + [np.inf] + U[4:]}, ValueError, r"uplift: must be finite"),
    (
        "uplift_auc_score",
        {"uplift": U[:9]},
        ValueError,
        r"^uplift: has length 9, expected 10 \(the length of y_true\)$",
    ),
    ("uplift_curve", {"treatment": T[:8]}, ValueError, r"treatment: has length 8, expected 10"),
    ("qini_auc_score", {"treatment": [2] + T[1:]}, ValueError, r"treatment: must hold only 0"),
    ("qini_curve", {"treatment": [0.5] + T[1:]}, ValueError, r"treatment: must hold only 0"),
    ("uplift_at_k", {"treatment": [1] * 10}, ValueError, r"treatment: has no control rows"),
    ("uplift_auc_score", {"treatment": [0] * 10}, ValueError, r"treatment: has no treated rows"),
    ("perfect_qini_curve", {"treatment": [0] * 10}, ValueError, r"treatment: has no treated"),
    ("qini_auc_score", {"y_true": [0] * 10}, ValueError, r"y_true: .*needs both outcomes"),
    ("perfect_uplift_curve", {"y_true": [2] + Y[1:]}, ValueError, r"y_true: .*binary"),
    ("qini_auc_score", {"negative_effect": 1}, TypeError, r"negative_effect: must be a bool"),
    ("perfect_qini_curve", {"negative_effect": "no"}, TypeError, r"negative_effect: must be"),
    ("uplift_at_k", {"strategy": "top"}, ValueError, r"strategy: must be one of"),
    ("uplift_at_k", {"k": 0.0}, ValueError, r"k: must be in \(0, 1\)"),
    ("uplift_at_k", {"k": 1.0}, ValueError, r"k: must be in \(0, 1\)"),
    ("uplift_at_k", {"k": -0.2}, ValueError, r"k: must be in \(0, 1\)"),
    ("uplift_at_k", {"k": float("nan")}, ValueError, r"k: must be finite"),
    ("uplift_at_k", {"k": 0}, ValueError, r"k: must be > 0 and < the number of rows \(10\)"),
    ("uplift_at_k", {"k": 10}, ValueError, r"k: must be > 0 and < the number of rows"),
    ("uplift_at_k", {"k": True}, TypeError, r"k: must be an int"),
    ("uplift_at_k", {"k": "3"}, TypeError, r"k: must be an int"),
    ("uplift_at_k", {"k": 0.05}, ValueError, r"k: int\(10 \* 0.05\) selects no rows"),
    ("uplift_at_k", {"k": 6, "strategy": "by_group"}, ValueError, r"k: 6 is more than the 5"),
    ("uplift_at_k", {"k": 1}, ValueError, r"k: the first 1 rows by uplift hold no control"),
    ("qini_curve", {"y_true": "abc"}, TypeError, r"y_true: expected an array-like"),
    ("qini_curve", {"uplift": [[0.1]] * 10}, ValueError, r"uplift: expected a 1-d array"),
    ("qini_curve", {"y_true": []}, ValueError, r"y_true: is empty"),
]


@pytest.mark.parametrize("name, override, exc, match", BAD)
def test_bad_inputs_name_the_argument(name, override, exc, match):
    params = inspect.signature(getattr(gm, name)).parameters
    full = {"y_true": Y, "uplift": U, "treatment": T, "strategy": "overall", "k": 0.3}
    kwargs = {p: full[p] for p in params if p in full}
    kwargs.update(override)
    with pytest.raises(exc, match=match):
        getattr(gm, name)(**kwargs)


def test_negative_effect_false_with_negative_overall_effect_fails_like_sklift():
    y, u, t = [1, 0, 1, 0, 0, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        sk.qini_auc_score(y, u, t, negative_effect=False)
    with pytest.raises(ValueError, match="negative_effect: .*positive overall"):
        gm.qini_auc_score(y, u, t, negative_effect=False)
    gm.qini_auc_score(y, u, t)  # defined with negative effects


def test_per_treatment_bad_inputs():
    y = np.array([0, 1, 0, 1, 0, 1])
    u = np.zeros((6, 2))
    with pytest.raises(ValueError, match=r"treatment: must hold 0 \(control\) or 1..2"):
        gm.qini_auc_score_per_treatment(y, u, [0, 1, 2, 3, 0, 1])
    with pytest.raises(ValueError, match="treatment: has no rows with treatment 2"):
        gm.uplift_auc_score_per_treatment(y, u, [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="treatment: has no control rows"):
        gm.uplift_at_k_per_treatment(y, u, [1, 2, 1, 2, 1, 2], "overall")
    with pytest.raises(ValueError, match="treatment: must hold integers"):
        gm.uplift_auc_score_per_treatment(y, u, [0, 1, 2, 0.5, 0, 1])
    with pytest.raises(ValueError, match="uplift: expected a 2-d array"):
        gm.qini_auc_score_per_treatment(y, np.zeros(6), [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="uplift: has length 5, expected 6"):
        gm.qini_auc_score_per_treatment(y, u[:5], [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="y_true: .*among the rows with treatment 0 or 2"):
        gm.qini_auc_score_per_treatment([1, 0, 1, 1, 0, 1], u, [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="strategy: must be one of"):
        gm.uplift_at_k_per_treatment(y, u, [0, 1, 2, 0, 1, 2], "all")
    with pytest.raises(TypeError, match="negative_effect: must be a bool"):
        gm.qini_auc_score_per_treatment(y, u, [0, 1, 2, 0, 1, 2], negative_effect=None)
