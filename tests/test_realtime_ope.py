"""Off-policy estimators against an independent numpy implementation of obp's definitions."""

from __future__ import annotations

import numpy as np
import pytest

import growthmachine as gm
from growthmachine.realtime import ope


def logged(n=5000, k=4, npos=1, seed=0):
    rng = np.random.default_rng(seed)
    pi_b = rng.dirichlet(np.ones(k), size=n)
    a = np.array([rng.choice(k, p=p) for p in pi_b])
    r = rng.normal(loc=a * 0.3, scale=1.0)
    pi_e = rng.dirichlet(np.ones(k) * 0.5, size=(n, npos)).transpose(0, 2, 1)
    q = rng.normal(size=(n, k, npos))
    pos = rng.integers(0, npos, n)
    return a, r, pi_b[np.arange(n), a], pi_e, q, pos


def numpy_reference(a, r, ps, pi, q, pos, clip=np.inf, tau=np.inf):
    """obp estimators written out in numpy (estimators.py, _estimate_round_rewards)."""
    n = len(a)
    idx = np.arange(n)
    iw = pi[idx, a, pos] / ps
    iwc = np.minimum(iw, clip)
    q_f = q[idx, a, pos]
    dm_i = np.average(q[idx, :, pos], weights=pi[idx, :, pos], axis=1)
    rounds = {
        "ips": r * iwc,
        "snips": r * iw / iw.mean(),
        "dm": dm_i,
        "dr": dm_i + iwc * (r - q_f),
        "switch_dr": dm_i + (iw <= tau) * iw * (r - q_f),
    }
    return {k: (v.mean(), v.std(ddof=1)) for k, v in rounds.items()}


@pytest.mark.parametrize("npos", [1, 3])
@pytest.mark.parametrize(("clip", "tau"), [(np.inf, np.inf), (3.0, 2.0)])
def test_matches_numpy_reference(npos, clip, tau):
    a, r, ps, pi, q, pos = logged(npos=npos, seed=npos)
    kw = {}
    if npos == 1:
        pi, q = pi[:, :, 0], q[:, :, 0]
        ref = numpy_reference(
            a, r, ps, pi[:, :, None], q[:, :, None], np.zeros(len(a), int), clip, tau
        )
    else:
        kw["positions"] = pos
        ref = numpy_reference(a, r, ps, pi, q, pos, clip, tau)
    t = ope.evaluate(
        actions=a,
        rewards=r,
        propensities=ps,
        action_probs=pi,
        q_hat=q,
        clip=clip,
        switch_threshold=tau,
        **kw,
    )
    assert list(t.index) == list(ope.ESTIMATORS)
    for name, (m, sd) in ref.items():
        assert t.loc[name, "estimate"] == pytest.approx(m, rel=1e-9, abs=1e-12)
        assert t.loc[name, "std_error"] == pytest.approx(sd / np.sqrt(len(a)), rel=1e-9)
        assert t.loc[name, "ci_lower"] < m < t.loc[name, "ci_upper"]


def test_hand_computed():
    # 2 rounds, 2 actions: w = [1.6, 4]
    kw = dict(
        actions=[1, 0],
        rewards=[3.0, 1.0],
        propensities=[0.5, 0.25],
        action_probs=[[0.2, 0.8], [1.0, 0.0]],
        q_hat=[[1.0, 2.0], [0.5, 3.0]],
    )
    t = ope.evaluate(**kw, switch_threshold=2.0)
    assert t.loc["ips", "estimate"] == pytest.approx(4.4)
    assert t.loc["snips", "estimate"] == pytest.approx(4.4 / 2.8)
    assert t.loc["dm", "estimate"] == pytest.approx(1.15)
    assert t.loc["dr", "estimate"] == pytest.approx(2.95)
    assert t.loc["switch_dr", "estimate"] == pytest.approx(1.95)
    assert ope.ips(**{k: v for k, v in kw.items() if k != "q_hat"}).value == pytest.approx(4.4)
    assert ope.dr(**kw).value == pytest.approx(2.95)
    assert ope.ips(
        **{k: v for k, v in kw.items() if k != "q_hat"}, clip=2.0
    ).value == pytest.approx((3 * 1.6 + 1 * 2.0) / 2)


def test_estimators_are_unbiased_on_a_known_policy():
    # Uniform logging, deterministic target; true value known.
    rng = np.random.default_rng(3)
    n, k = 200_000, 3
    x = rng.integers(0, 2, n)
    mean = np.array([[0.1, 0.5, 0.3], [0.6, 0.2, 0.3]])
    a = rng.integers(0, k, n)
    r = (rng.random(n) < mean[x, a]).astype(float)
    target = np.where(x == 0, 1, 0)
    pi_e = np.zeros((n, k))
    pi_e[np.arange(n), target] = 1.0
    truth = 0.5 * 0.5 + 0.5 * 0.6
    t = ope.evaluate(
        actions=a,
        rewards=r,
        propensities=np.full(n, 1 / k),
        action_probs=pi_e,
        contexts=x[:, None].astype(float),
    )
    for name in ope.ESTIMATORS:
        lo, hi = t.loc[name, "ci_lower"], t.loc[name, "ci_upper"]
        assert lo - 0.01 < truth < hi + 0.01, (name, lo, hi)


def test_bootstrap_interval_and_determinism():
    a, r, ps, pi, q, _ = logged(n=2000, seed=5)
    pi, q = pi[:, :, 0], q[:, :, 0]
    kw = dict(actions=a, rewards=r, propensities=ps, action_probs=pi, q_hat=q)
    b1 = ope.evaluate(**kw, ci="bootstrap", n_bootstrap=300, seed=1)
    gm.set_num_threads(1)
    b2 = ope.evaluate(**kw, ci="bootstrap", n_bootstrap=300, seed=1)
    gm.set_num_threads(2)
    assert b1.equals(b2)
    nrm = ope.evaluate(**kw)
    # bootstrap and normal intervals agree roughly in width
    w_b = b1["ci_upper"] - b1["ci_lower"]
    w_n = nrm["ci_upper"] - nrm["ci_lower"]
    assert np.all((w_b / w_n > 0.8) & (w_b / w_n < 1.25))
    assert np.array_equal(b1["estimate"], nrm["estimate"])


def test_threads_give_identical_results():
    a, r, ps, pi, q, _ = logged(n=100_000, seed=6)
    pi, q = pi[:, :, 0], q[:, :, 0]
    out = []
    for th in (1, 2):
        gm.set_num_threads(th)
        out.append(ope.evaluate(actions=a, rewards=r, propensities=ps, action_probs=pi, q_hat=q))
    gm.set_num_threads(2)
    assert out[0].equals(out[1])


def test_bad_input():
    kw = dict(
        actions=[1, 0],
        rewards=[3.0, 1.0],
        propensities=[0.5, 0.25],
        action_probs=[[0.2, 0.8], [1.0, 0.0]],
    )
    with pytest.raises(ValueError, match="propensities"):
        ope.evaluate(**{**kw, "propensities": [0.0, 0.5]})
    with pytest.raises(ValueError, match="propensities"):
        ope.evaluate(**{**kw, "propensities": [0.5]})
    with pytest.raises(ValueError, match="rewards"):
        ope.evaluate(**{**kw, "rewards": [np.nan, 1.0]})
    with pytest.raises(ValueError, match="actions"):
        ope.evaluate(**{**kw, "actions": [2, 0]})
    with pytest.raises(ValueError, match="action_probs"):
        ope.evaluate(**{**kw, "action_probs": [[0.2, 1.8], [1.0, 0.0]]})
    with pytest.raises(ValueError, match="q_hat"):
        ope.evaluate(**kw, q_hat=[[1.0], [2.0]])
    with pytest.raises(ValueError, match="actions: is empty"):
        ope.evaluate(actions=[], rewards=[], propensities=[], action_probs=np.zeros((0, 2)))
    with pytest.raises(ValueError, match="ci"):
        ope.evaluate(**kw, ci="magic")
    with pytest.raises(ValueError, match="positions"):
        ope.evaluate(**{**kw, "action_probs": np.full((2, 2, 2), 0.5)})


def test_action_probs_rows_must_sum_to_one():
    n, k = 10, 4
    kw = dict(actions=np.zeros(n, dtype=int), rewards=np.ones(n), propensities=np.full(n, 0.25))
    with pytest.raises(
        ValueError, match=r"^action_probs: each row must sum to 1.*row 0 sums to 3.6"
    ):
        ope.evaluate(**kw, action_probs=np.full((n, k), 0.9))
    pi = np.full((n, k), 0.25)
    pi[7] = [0.5, 0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match=r"row 7 sums to 1.5"):
        ope.evaluate(**kw, action_probs=pi)
    # several positions: each position's column sums to 1
    pi3 = np.full((n, k, 2), 0.25)
    pi3[3, :, 1] = 0.1
    with pytest.raises(ValueError, match=r"row 3 sums to 0.4.* at position 1"):
        ope.evaluate(**kw, action_probs=pi3, positions=np.zeros(n, dtype=int))
    # rounding within the tolerance is fine (e.g. float32 probabilities)
    ok = np.full((n, k), 0.25, dtype=np.float32) * (1 + 1e-7)
    assert ope.evaluate(**kw, action_probs=ok).loc["ips", "estimate"] == pytest.approx(1.0)


def test_contexts_of_another_length_are_blamed():
    a, r, ps, pi, _, _ = logged(n=50, k=3)
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"^contexts: has 10 rows, expected 50"):
        ope.evaluate(
            actions=a, rewards=r, propensities=ps, action_probs=pi[:, :, 0], contexts=X[:10]
        )


def test_fit_reward_model_rejects_actions_out_of_range():
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match=r"^actions: must be in \[0, 3\), found 5 at position 3"):
        ope.fit_reward_model(X, [0, 1, 2, 5, 0, 1], np.ones(6), 3)
    with pytest.raises(ValueError, match=r"^actions: must be in \[0, 3\), found -1 at position 0"):
        ope.fit_reward_model(X, [-1, 1, 2, 0, 0, 1], np.ones(6), 3)
    assert ope.fit_reward_model(X, [0, 1, 2, 2, 0, 1], np.ones(6), 3).shape == (6, 3)
