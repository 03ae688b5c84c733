"""BudgetPacer: spend tracks the budget, hard cap, several resources, revealed costs, state."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import growthmachine as gm
from growthmachine.realtime import BudgetPacer, LinTS, LinUCB


def drifting_stream(n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    # traffic quality drifts: the mean uplift of the offers moves over time
    drift = 1.0 + 0.8 * np.sin(np.linspace(0, 6 * np.pi, n))
    uplift = np.column_stack([np.zeros(n), drift * (1 + X[:, 0]), drift * (2 + X[:, 1])])
    return X, uplift


def run(pacer, X, uplift, batch=500, seed=0):
    rng = np.random.default_rng(seed)
    for s in range(0, len(X), batch):
        xb = X[s : s + batch]
        a = pacer.choose_batch(xb)
        r = uplift[s : s + batch][np.arange(len(a)), a] + rng.normal(size=len(a))
        pacer.update_batch(xb, a, r)
        assert np.all(pacer.spend_ <= pacer.budget_ * (1 + 1e-9))


def test_spend_ends_within_one_percent_of_budget():
    n = 60_000
    X, up = drifting_stream(n)
    costs = np.array([0.0, 1.0, 3.0])
    budget = 0.4 * n  # far below what the offers would spend unpaced
    pacer = BudgetPacer(LinUCB(3, 4), costs, budget, horizon=n)
    run(pacer, X, up)
    assert pacer.n_events_ == n
    assert 0.99 * budget <= pacer.spend_[0] <= budget
    assert pacer.price_[0] > 0
    # unpaced, the best action per event would overspend by far
    assert costs[np.argmax(up, axis=1)].sum() > 1.5 * budget


def test_several_resources_each_capped():
    n = 40_000
    X, up = drifting_stream(n, seed=1)
    # resource 0: money; resource 1: number of messages
    costs = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0]])
    budget = np.array([0.5 * n, 0.2 * n])
    pacer = BudgetPacer(LinTS(3, 4, seed=2), costs, budget, horizon=n)
    run(pacer, X, up)
    spend = pacer.spend_
    assert np.all(spend <= budget)
    # the binding resource ends on budget
    assert np.max(spend / budget) > 0.99
    assert len(pacer.price_) == 2


def test_revealed_costs_charged_at_update():
    n = 20_000
    X, up = drifting_stream(n, seed=3)
    rng = np.random.default_rng(0)
    expected = np.array([0.0, 1.0, 2.0])
    pacer = BudgetPacer(LinUCB(3, 4), expected, 0.3 * n, horizon=n, charge="update")
    for s in range(0, n, 200):
        xb = X[s : s + 200]
        a = pacer.choose_batch(xb)
        actual = expected[a] * rng.uniform(0.5, 1.0, len(a))  # revealed, never above the estimate
        pacer.update_batch(xb, a, up[s : s + 200][np.arange(len(a)), a], costs=actual)
    assert 0.97 * 0.3 * n <= pacer.spend_[0] <= 0.3 * n


def test_per_event_costs_and_single_calls():
    pol = LinUCB(3, 2)
    pacer = BudgetPacer(pol, None, budget=5.0, horizon=10)
    spent = 0.0
    for i in range(10):
        c = np.array([0.0, 1.0, 2.0]) * (1 + i % 2)
        a = pacer.choose(np.array([1.0, float(i)]), costs=c)
        spent += c[a]
        pacer.update(np.array([1.0, float(i)]), a, 1.0 if a else 0.0)
    assert pacer.spend_[0] == pytest.approx(spent) and spent <= 5.0
    with pytest.raises(ValueError, match="costs: required"):
        pacer.choose(np.zeros(2))


def test_pickle_round_trip_continues_identically():
    X, up = drifting_stream(3000, seed=4)
    pacer = BudgetPacer(LinTS(3, 4, seed=1), [0.0, 1.0, 2.0], 800.0, horizon=3000)
    run(pacer, X[:1500], up[:1500])
    clone = pickle.loads(pickle.dumps(pacer))
    assert np.array_equal(clone.price_, pacer.price_)
    assert np.array_equal(clone.choose_batch(X[1500:]), pacer.choose_batch(X[1500:]))
    assert np.array_equal(clone.spend_, pacer.spend_)
    bad = pacer.__getstate__()
    bad["state"]["pacer"] = bad["state"]["pacer"][:20]
    with pytest.raises(gm.StateError):
        BudgetPacer.__new__(BudgetPacer).__setstate__(bad)


def test_bad_input():
    pol = LinUCB(3, 2)
    with pytest.raises(ValueError, match="budget"):
        BudgetPacer(pol, [0, 1, 2], -1.0, 10)
    with pytest.raises(ValueError, match="costs"):
        BudgetPacer(pol, [0, -1, 2], 1.0, 10)
    with pytest.raises(ValueError, match="costs"):
        BudgetPacer(pol, [0, 1], 1.0, 10)
    with pytest.raises(ValueError, match="horizon"):
        BudgetPacer(pol, [0, 1, 2], 1.0, 0)
    with pytest.raises(ValueError, match="charge"):
        BudgetPacer(pol, [0, 1, 2], 1.0, 10, charge="later")
    with pytest.raises(TypeError, match="policy"):
        BudgetPacer(object(), [0, 1, 2], 1.0, 10)
    p = BudgetPacer(pol, [0, 1, 2], 1.0, 10)
    with pytest.raises(ValueError, match="cost"):
        p.update(np.zeros(2), 1, 1.0, cost=[1.0])


def test_revealed_costs_are_charged_once_per_decision():
    # 5 decisions, then 200 costs: refused (nothing charged), the hard cap holds.
    pol = LinUCB(3, 2)
    pacer = BudgetPacer(pol, [0.0, 1.0, 2.0], 10.0, horizon=100, charge="update")
    X = np.random.default_rng(0).normal(size=(200, 2))
    a = pacer.choose_batch(X[:5])
    with pytest.raises(ValueError, match=r"^cost: 200 costs given, but only 5 decisions"):
        pacer.update_batch(X, np.zeros(200, dtype=int), np.ones(200), costs=np.ones(200))
    assert pacer.spend_[0] == 0.0
    pacer.update_batch(X[:5], a, np.ones(5), costs=np.full(5, 1.0))
    assert pacer.spend_[0] == 5.0
    with pytest.raises(ValueError, match=r"^cost: 1 costs given, but only 0 decisions"):
        pacer.update(X[5], 0, 1.0, cost=[1.0])
    assert pacer.spend_[0] == 5.0 <= pacer.budget_[0]


@pytest.mark.parametrize("budget", [0.0, 50.0])
def test_a_null_action_with_a_cost_is_refused(budget):
    pol = LinUCB(2, 2)
    pacer = BudgetPacer(pol, [50.0, 0.0], budget, horizon=10)
    with pytest.raises(ValueError, match=r"^costs: the null action 0 must cost 0.*found 50"):
        pacer.choose(np.zeros(2))
    assert pacer.spend_[0] == 0.0
    # per-event costs too, naming the event
    free = BudgetPacer(pol, None, budget, horizon=10)
    c = np.zeros((3, 2))
    c[2, 0] = 1.0
    with pytest.raises(ValueError, match=r"costs: the null action 0 must cost 0.*\(event 2"):
        free.choose_batch(np.zeros((3, 2)), costs=c)
