"""SessionPolicy on the toy multi-step world: learns delayed payoffs, beats fixed rules, budget."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import toy_sessions as toy

import growthmachine as gm
from growthmachine.realtime import SessionPolicy


def play(policy, n, rounds, seed=0):
    per_round = []
    for rd in range(rounds):
        sb = toy.sessions(n, seed=seed + rd)
        if isinstance(policy, SessionPolicy):
            policy.begin(n)
        net = 0.0
        while sb.active.any():
            if isinstance(policy, SessionPolicy):
                a = policy.act(sb.context, sb.stage, sb.active)
            else:
                a = policy(sb)
            r, c, _, d = sb.step(a)
            if isinstance(policy, SessionPolicy):
                policy.observe(r, c, d)
            net += float(np.sum(r - c))
        per_round.append(net / n)
    return np.array(per_round)


def no_intervention(sb):
    return np.zeros(sb.n, dtype=np.int64)


def exit_offer_to_all(sb):
    return np.where(sb.active & (sb.stage == 2), 5, 0)


def test_session_policy_beats_fixed_rules_on_net_value():
    n, rounds = 5000, 8
    base = play(no_intervention, n, rounds, seed=100)
    rule = play(exit_offer_to_all, n, rounds, seed=100)
    sp = SessionPolicy(6, toy.ToySessions.n_features, allowed=toy.ALLOWED, param=5.0, seed=1)
    learned = play(sp, n, rounds, seed=100)
    late = slice(rounds // 2, None)
    assert learned[late].mean() > rule[late].mean() + 1.0
    assert rule[late].mean() > base[late].mean()


def test_guidance_paid_two_steps_later_is_learned():
    """Guide only moves users to the cart; the GMV comes at checkout. A myopic learner (gamma 0)
    sees no reward at the browse step; the session policy credits the later purchase."""
    n = 5000
    sp = SessionPolicy(6, toy.ToySessions.n_features, allowed=toy.ALLOWED, param=5.0, seed=2)
    myopic = SessionPolicy(
        6, toy.ToySessions.n_features, allowed=toy.ALLOWED, param=5.0, seed=2, gamma=0.0
    )
    play(sp, n, 6, seed=200)
    play(myopic, n, 6, seed=200)
    sb = toy.sessions(4000, seed=999)
    needy = sb.context[:, 1] > 1.0
    sp.begin(4000)
    a = sp.act(sb.context, sb.stage, sb.active)
    myopic.begin(4000)
    b = myopic.act(sb.context, sb.stage, sb.active)
    assert np.mean(a[needy] == 1) > 0.8  # guide the users who need it
    assert np.mean(a[needy] == 1) > np.mean(b[needy] == 1) + 0.3
    # value model of the browse stage: guide is worth more for needy users
    th = sp.models[0].theta_
    assert th[1, 1] - th[0, 1] > 0


def test_budgeted_session_policy_respects_budget():
    n, rounds = 4000, 6
    budget = 0.4 * n * rounds
    sp = SessionPolicy(
        6,
        toy.ToySessions.n_features,
        allowed=toy.ALLOWED,
        param=5.0,
        costs=toy.FACE,
        budget=budget,
        horizon=int(1.7 * n * rounds),
    )
    play(sp, n, rounds, seed=300)
    assert sp.spend_ <= budget
    spent = sum(h["cost"] for h in sp.history_)
    assert spent == pytest.approx(sp.spend_)
    # a tight budget binds: the price rises above 0 and spend approaches the budget (the hard
    # cap reserves face values of outstanding offers, so it stays somewhat below)
    tight = SessionPolicy(
        6,
        toy.ToySessions.n_features,
        allowed=toy.ALLOWED,
        param=5.0,
        costs=toy.FACE,
        budget=0.05 * n * rounds,
        horizon=int(1.7 * n * rounds),
    )
    play(tight, n, rounds, seed=300)
    assert tight.spend_ <= 0.05 * n * rounds
    assert tight.spend_ > 0.7 * 0.05 * n * rounds
    assert max(h["price"] for h in tight.history_) > 0


def test_pickle_round_trip_and_bad_input():
    sp = SessionPolicy(
        6, 6, allowed=toy.ALLOWED, param=5.0, costs=toy.FACE, budget=1e4, horizon=10**5
    )
    play(sp, 1000, 2)
    clone = pickle.loads(pickle.dumps(sp))
    sb = toy.sessions(500, seed=5)
    sp.begin(500)
    clone.begin(500)
    assert np.array_equal(
        sp.act(sb.context, sb.stage, sb.active), clone.act(sb.context, sb.stage, sb.active)
    )
    with pytest.raises(ValueError, match="allowed"):
        SessionPolicy(3, 2, allowed=np.array([[0, 1, 1]] * 3, dtype=bool))
    with pytest.raises(ValueError, match="costs"):
        SessionPolicy(3, 2, budget=10.0, horizon=10)
    with pytest.raises(ValueError, match="policy"):
        SessionPolicy(3, 2, policy="magic")
    sp.begin(3)
    with pytest.raises(ValueError, match="context"):
        sp.act(np.zeros((2, 6)), np.zeros(3))
    with pytest.raises(ValueError, match="stage"):
        sp.act(np.zeros((3, 6)), np.array([0, 5, 0]))
    with pytest.raises(ValueError, match="act"):
        SessionPolicy(3, 2).observe(np.zeros(0), np.zeros(0), np.zeros(0, bool))
    with pytest.raises(gm.StateError):
        SessionPolicy.__new__(SessionPolicy).__setstate__({"__gm_kind__": "x"})


def _ctx(tmp_path, n_users=5000):
    from growthmachine.pipeline import RunContext
    from growthmachine.report import Report

    return RunContext(n_users, 0, 120, tmp_path, False, Report("test"), lambda _m: None)


def test_run_stage_on_the_sim_world_adds_a_report_section(tmp_path):
    from growthmachine.realtime import run_stage

    ctx = _ctx(tmp_path)
    pop = gm.sim.Population.generate(2000, days=60, seed=0, progress=False)
    ctx.state.environment = gm.sim.Environment(pop, seed=0)
    run_stage(ctx)
    summary = ctx.state.realtime["summary"]
    assert list(summary["policy"]) == [
        "no intervention",
        "exit offer to all",
        "session policy (budgeted)",
    ]
    # the budget is the rule's spend, never exceeded
    assert summary["total cost"].iloc[2] <= summary["budget"].iloc[2] + 1e-9
    kpis = ctx.report.summary()
    text = str(kpis)
    assert "net_value_session_policy" in text and "spend_over_budget" in text
    ctx.report.write(tmp_path / "out")
    assert (tmp_path / "out" / "report.html").exists()


def test_run_stage_without_environment_uses_a_sim_world_of_its_own(tmp_path):
    from growthmachine.realtime import run_stage

    ctx = _ctx(tmp_path, n_users=2000)
    run_stage(ctx)
    s = ctx.state.realtime["summary"].set_index("policy")
    late = s["net value / session (2nd half)"]
    assert late["session policy (budgeted)"] > late["exit offer to all"]


def test_allowed_active_and_done_must_be_booleans():
    with pytest.raises(TypeError, match=r"^allowed: must hold booleans"):
        SessionPolicy(3, 2, allowed=[["no"] * 3] * 3)
    with pytest.raises(TypeError, match=r"^allowed: must hold booleans"):
        SessionPolicy(3, 2, allowed=np.full((3, 3), 0.5))
    sp = SessionPolicy(3, 2, allowed=[[1, 0, 1]] * 3)
    assert sp.allowed.dtype == bool and sp.allowed.tolist() == [[True, False, True]] * 3
    sp.begin(2)
    with pytest.raises(TypeError, match=r"^active: must hold booleans"):
        sp.act(np.zeros((2, 2)), [0, 0], active=["no", "no"])
    sp.act(np.zeros((2, 2)), [0, 0])
    with pytest.raises(TypeError, match=r"^done: must hold booleans"):
        sp.observe([0.0, 0.0], [0.0, 0.0], ["no", "no"])


def test_act_twice_without_observe_is_an_error():
    sp = SessionPolicy(3, 2)
    sp.begin(2)
    sp.act(np.zeros((2, 2)), [0, 0])
    with pytest.raises(ValueError, match=r"^act: the previous step is not observed yet"):
        sp.act(np.ones((2, 2)), [1, 1])
    # the pending step was kept: observing it works and the next act is allowed
    sp.observe([1.0, 0.0], [0.0, 0.0], [True, False])
    assert sp.act(np.zeros((2, 2)), [1, 1]).shape == (2,)
