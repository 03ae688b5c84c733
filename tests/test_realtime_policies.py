"""Bandit policies: textbook LinUCB equality, batch = sequential, determinism, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine.realtime import EpsilonGreedy, LinTS, LinUCB, LogisticTS

ALL = [LinUCB, LinTS, LogisticTS, EpsilonGreedy]


def linear_stream(n, d, k, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(k, d)) / np.sqrt(d)
    X = rng.normal(size=(n, d))
    R = X @ theta.T + noise * rng.normal(size=(n, k))  # reward of every action at every event
    return X, R


def textbook_linucb(X, R, alpha=1.0):
    """Li et al. (2010) algorithm 1, literally: A_a, b_a, theta = inv(A) b per step."""
    n, d = X.shape
    k = R.shape[1]
    A = [np.eye(d) for _ in range(k)]
    b = [np.zeros(d) for _ in range(k)]
    chosen = np.empty(n, dtype=np.int64)
    for t in range(n):
        x = X[t]
        p = np.empty(k)
        for a in range(k):
            Ainv = np.linalg.inv(A[a])
            th = Ainv @ b[a]
            p[a] = th @ x + alpha * np.sqrt(x @ Ainv @ x)
        a = int(np.argmax(p))
        chosen[t] = a
        A[a] += np.outer(x, x)
        b[a] += R[t, a] * x
    return chosen, A, b


def test_linucb_makes_the_textbook_decisions():
    X, R = linear_stream(3000, 8, 5, seed=1)
    ref, A, b = textbook_linucb(X, R)
    pol = LinUCB(5, 8, alpha=1.0, ridge=1.0)
    ours = np.empty(len(X), dtype=np.int64)
    for t in range(len(X)):
        a = pol.choose(X[t])
        ours[t] = a
        pol.update(X[t], a, R[t, a])
    assert np.array_equal(ours, ref)
    # and the learned models are the textbook ones
    for a in range(5):
        np.testing.assert_allclose(pol.a_inv_[a], np.linalg.inv(A[a]), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(
            pol.theta_[a], np.linalg.solve(A[a], b[a]), rtol=1e-8, atol=1e-10
        )
    assert pol.n_updates_ == 3000 and pol.n_decisions_ == 3000
    assert pol.counts_.sum() == 3000


def test_choose_batch_matches_single_choose_for_linucb():
    X, R = linear_stream(2000, 6, 4, seed=2)
    pol = LinUCB(4, 6)
    pol.update_batch(X[:500], np.arange(500) % 4, R[np.arange(500), np.arange(500) % 4])
    batch = pol.choose_batch(X[500:])
    single = np.array([pol.choose(x) for x in X[500:]])
    assert np.array_equal(batch, single)


@pytest.mark.parametrize("cls", ALL)
def test_update_batch_equals_sequential_updates(cls):
    X, R = linear_stream(5000, 7, 4, seed=3)
    acts = np.random.default_rng(0).integers(0, 4, len(X))
    rew = R[np.arange(len(X)), acts]
    if cls is LogisticTS:
        rew = (rew > 0).astype(float)
    a, b = cls(4, 7), cls(4, 7)
    a.update_batch(X, acts, rew)
    for x, ac, r in zip(X, acts, rew, strict=True):
        b.update(x, int(ac), float(r))
    assert np.array_equal(a.theta_, b.theta_)
    assert np.array_equal(a.a_inv_, b.a_inv_)
    assert np.array_equal(a.counts_, np.bincount(acts, minlength=4))


@pytest.mark.parametrize("cls", ALL)
def test_decisions_are_deterministic_and_independent_of_threads_and_batching(cls):
    X, R = linear_stream(20000, 5, 3, seed=4)
    acts = np.arange(len(X)) % 3
    rew = (R[np.arange(len(X)), acts] > 0).astype(float)
    out = []
    for threads in (1, 2):
        gm.set_num_threads(threads)
        p = cls(3, 5, seed=7)
        p.update_batch(X[:1000], acts[:1000], rew[:1000])
        out.append(np.concatenate([p.choose_batch(X[1000:6000]), p.choose_batch(X[6000:])]))
    gm.set_num_threads(2)
    assert np.array_equal(out[0], out[1])
    p = cls(3, 5, seed=7)
    p.update_batch(X[:1000], acts[:1000], rew[:1000])
    assert np.array_equal(p.choose_batch(X[1000:]), out[0])  # batch split does not matter
    if cls in (LinTS, EpsilonGreedy, LogisticTS):
        q = cls(3, 5, seed=8)
        q.update_batch(X[:1000], acts[:1000], rew[:1000])
        assert not np.array_equal(q.choose_batch(X[1000:]), out[0])


@pytest.mark.parametrize("cls", ALL)
def test_policies_learn_the_best_action(cls):
    # Two actions; action 1 pays more when x0 > 0. After learning, greedy-ish decisions follow.
    rng = np.random.default_rng(5)
    n = 4000
    X = np.column_stack([rng.normal(size=n), np.ones(n)])
    p1 = 1 / (1 + np.exp(-3 * X[:, 0]))
    pol = cls(2, 2, seed=1)
    regret = 0.0
    for s in range(0, n, 50):
        xb = X[s : s + 50]
        a = pol.choose_batch(xb)
        mean = np.where(a == 1, p1[s : s + 50], 0.5)
        r = (rng.random(len(a)) < mean).astype(float)
        regret += np.sum(np.maximum(p1[s : s + 50], 0.5) - mean)
        pol.update_batch(xb, a, r)
    Xt = np.column_stack([np.array([-2.0, 2.0]), np.ones(2)])
    pol_probs = pol.probabilities(Xt)
    assert pol_probs[0, 0] > 0.5 and pol_probs[1, 1] > 0.5
    assert regret < 0.15 * n  # random play loses ~0.18 n here


def test_probabilities():
    X, R = linear_stream(300, 4, 3, seed=6)
    acts = np.arange(300) % 3
    rew = R[np.arange(300), acts]
    eg = EpsilonGreedy(3, 4, epsilon=0.3)
    eg.update_batch(X, acts, rew)
    P = eg.probabilities(X[:50])
    greedy = np.argmax(X[:50] @ eg.theta_.T, axis=1)
    expect = np.full((50, 3), 0.1)
    expect[np.arange(50), greedy] += 0.7
    np.testing.assert_allclose(P, expect, atol=1e-12)
    ucb = LinUCB(3, 4)
    ucb.update_batch(X, acts, rew)
    P = ucb.probabilities(X[:50])
    assert np.array_equal(np.argmax(P, 1), ucb.choose_batch(X[:50])) and set(np.unique(P)) <= {0, 1}
    ts = LinTS(3, 4, seed=3)
    ts.update_batch(X, acts, rew)
    P = ts.probabilities(X[:20], n_samples=4000)
    np.testing.assert_allclose(P.sum(1), 1.0)
    # Monte Carlo propensities agree with the empirical frequency of the policy's choices
    x = np.repeat(X[:1], 20000, axis=0)
    freq = np.bincount(ts.choose_batch(x), minlength=3) / 20000
    np.testing.assert_allclose(ts.probabilities(X[:1], n_samples=20000)[0], freq, atol=0.02)


def test_action_features():
    # Actions described by their own features; shared + per-action features.
    rng = np.random.default_rng(7)
    n, d, k, K = 3000, 3, 2, 4
    X = rng.normal(size=(n, d))
    XA = rng.normal(size=(n, K, k))
    w = np.array([1.0, -1.0])
    R = XA @ w + 0.1 * rng.normal(size=(n, K))
    pol = LinUCB(K, d, n_action_features=k)
    for s in range(0, n, 100):
        a = pol.choose_batch(X[s : s + 100], action_features=XA[s : s + 100])
        pol.update_batch(
            X[s : s + 100], a, R[np.arange(s, s + 100), a], action_features=XA[s : s + 100]
        )
    a = pol.choose_batch(X[-500:], action_features=XA[-500:])
    assert np.mean(a == np.argmax(XA[-500:] @ w, axis=1)) > 0.9
    assert pol.choose(X[0], action_features=XA[0]) in range(K)
    with pytest.raises(ValueError, match="action_features"):
        pol.choose(X[0])
    with pytest.raises(ValueError, match="action_features"):
        pol.choose_batch(X[:5], action_features=XA[:4])
    with pytest.raises(ValueError, match="action_features"):
        LinUCB(K, d).choose(X[0], action_features=XA[0])


@pytest.mark.parametrize("cls", ALL)
def test_bad_input_names_the_argument(cls):
    pol = cls(3, 4)
    with pytest.raises(ValueError, match="x: expected shape"):
        pol.choose(np.zeros(5))
    with pytest.raises(ValueError, match="x: must be finite"):
        pol.choose(np.array([0.0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="X: must be finite"):
        pol.choose_batch(np.full((3, 4), np.inf))
    with pytest.raises(ValueError, match="X: expected shape"):
        pol.choose_batch(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="action"):
        pol.update(np.zeros(4), 3, 1.0)
    with pytest.raises(ValueError, match="reward"):
        pol.update(np.zeros(4), 0, float("nan"))
    with pytest.raises(ValueError, match="actions"):
        pol.update_batch(np.zeros((3, 4)), [0, 1, 5], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="actions: has length"):
        pol.update_batch(np.zeros((3, 4)), [0, 1], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="rewards"):
        pol.update_batch(np.zeros((3, 4)), [0, 1, 2], [1.0, 1.0])
    with pytest.raises(ValueError, match="actions: must hold integers"):
        pol.update_batch(np.zeros((2, 4)), [0.5, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="n_actions"):
        cls(0, 4)
    with pytest.raises(TypeError, match="n_features"):
        cls(3, 4.5)
    with pytest.raises(ValueError, match="ridge"):
        cls(3, 4, ridge=0.0)
    # list input and int arrays are accepted and converted once
    assert pol.choose([0, 1, 2, 3]) in range(3)
    assert pol.n_updates_ == 0  # nothing was learned from rejected input
    if cls is LogisticTS:
        with pytest.raises(ValueError, match="rewards"):
            pol.update_batch(np.zeros((1, 4)), [0], [2.0])


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 4),
    d=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_property_update_batch_is_split_invariant(n, k, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    acts = rng.integers(0, k, n)
    rew = rng.normal(size=n)
    cut = int(rng.integers(0, n + 1))
    a, b = LinTS(k, d), LinTS(k, d)
    a.update_batch(X, acts, rew)
    if cut:
        b.update_batch(X[:cut], acts[:cut], rew[:cut])
    if cut < n:
        b.update_batch(X[cut:], acts[cut:], rew[cut:])
    assert np.array_equal(a.theta_, b.theta_) and np.array_equal(a.a_inv_, b.a_inv_)
    # A^{-1} stays symmetric positive definite
    for m in a.a_inv_:
        assert np.all(np.linalg.eigvalsh((m + m.T) / 2) > 0)


def test_hallucinated_batches_spread_exploration_and_leave_the_state_alone():
    X, R = linear_stream(3000, 6, 5, seed=9)
    pol = LinUCB(5, 6)
    before = (pol.theta_.copy(), pol.a_inv_.copy())
    plain = pol.choose_batch(X[:500])
    assert len(set(plain.tolist())) == 1  # cold start: every row takes the same action
    spread = pol.choose_batch(X[:500], hallucinate=True)
    assert len(set(spread.tolist())) == 5
    assert spread[0] == plain[0]
    assert np.array_equal(pol.theta_, before[0]) and np.array_equal(pol.a_inv_, before[1])
    # the same as deciding one by one with covariance-only updates (numpy reference)
    A = [np.eye(6) for _ in range(5)]
    ref = []
    for x in X[:500]:
        p = [np.sqrt(x @ np.linalg.inv(A[a]) @ x) for a in range(5)]
        a = int(np.argmax(p))
        ref.append(a)
        A[a] += np.outer(x, x)
    assert np.array_equal(spread, ref)
    # and with batching, regret falls
    mean = R
    regret = {}
    for hall in (False, True):
        p = LinUCB(5, 6)
        reg = 0.0
        for s in range(0, 3000, 300):
            a = p.choose_batch(X[s : s + 300], hallucinate=hall)
            idx = np.arange(s, s + len(a))
            p.update_batch(X[s : s + 300], a, mean[idx, a])
            reg += np.sum(mean[idx].max(1) - mean[idx, a])
        regret[hall] = reg
    assert regret[True] < 0.7 * regret[False]


def test_shared_action_features_equal_per_row_ones():
    # (n_actions, k) action features shared by every row = the same block repeated per row.
    rng = np.random.default_rng(3)
    n, d, k, K = 300, 3, 2, 4
    X, XA = rng.normal(size=(n, d)), rng.normal(size=(K, k))
    per_row = np.broadcast_to(XA, (n, K, k))
    for cls in ALL:
        p, q = cls(K, d, n_action_features=k, seed=1), cls(K, d, n_action_features=k, seed=1)
        a = p.choose_batch(X, action_features=XA)
        assert np.array_equal(a, q.choose_batch(X, action_features=per_row))
        np.testing.assert_array_equal(
            p.scores_batch(X, XA), q.scores_batch(X, np.ascontiguousarray(per_row))
        )
        r = rng.uniform(size=n)
        p.update_batch(X, a, r, action_features=XA)
        q.update_batch(X, a, r, action_features=per_row)
        np.testing.assert_array_equal(p.theta_, q.theta_)
        np.testing.assert_array_equal(p.a_inv_, q.a_inv_)
        np.testing.assert_array_equal(p.probabilities(X, XA), q.probabilities(X, per_row))
    with pytest.raises(
        ValueError, match=r"action_features: expected shape \(5, 4, 2\) or \(4, 2\)"
    ):
        LinUCB(K, d, n_action_features=k).choose_batch(X[:5], action_features=XA[:3])


def test_polars_frames_are_accepted_as_X():
    pl = pytest.importorskip("polars")
    X, R = linear_stream(200, 3, 4, seed=2)
    frame = pl.DataFrame(X, schema=["a", "b", "c"])
    for cls in ALL:
        p, q = cls(4, 3, seed=2), cls(4, 3, seed=2)
        assert np.array_equal(p.choose_batch(frame), q.choose_batch(X))
        a = np.zeros(200, dtype=np.int64)
        p.update_batch(frame, a, np.clip(R[:, 0], 0, 1))
        q.update_batch(X, a, np.clip(R[:, 0], 0, 1))
        np.testing.assert_array_equal(p.theta_, q.theta_)
    with pytest.raises(ValueError, match=r"^X: has missing \(null\) values"):
        LinUCB(4, 3).choose_batch(pl.DataFrame({"a": [1.0, None], "b": [1.0, 2.0], "c": [0, 1]}))
