"""How much a per-user curve height can add, and how much of it features can tell (issue 11).

At the world state of round 1 of ``touchpoint_world.run`` (the experiment from flat priors
applied and observed), the planner's conversions plan (``planner [conversions]`` there: the
fitted segment curves, the budget of the uniform rule, opt-outs capped at the model's estimate
of the uniform plan's, no exploration) is made with each user's curve scaled by a multiplier
``w`` of its height, from:

- ``none``: ``w = 1`` (the planner);
- ``fitted (linear)``: the model's height, fitted on the randomised users' features
  (``ResponseModel.height``; what ``planner+height`` is);
- ``best linear of truth``: least squares of the true ``w`` on the features (cross-fitted over
  two folds of users): the best a linear height can do, given the truth;
- ``boosted trees of truth``: gradient-boosted trees (scikit-learn's
  ``HistGradientBoostingRegressor``) of the true ``w`` on the features, cross-fitted: what a
  height that bends (interactions, thresholds) can do, given the truth;
- ``boosted trees of truth, + segment``: the same with the segment as a feature (heights per
  segment x feature);
- ``truth``: the true ``w`` (what no model of observables reaches).

The true ``w`` of a user: its true incremental conversion from ads summed over the levels,
divided by its segment's mean (the curves the true segment plan uses), clipped to [0, 5].
Scored on the world's truth like the rest (``Environment.expected_outcome``). ``R2``: of ``w``
against the true ``w`` over the users ads can reach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import touchpoint_world as tw


def run(n_users: int, config: str | None = None, seed: int = 0, features: str = "insight",
        explore_share: float = 0.1, forget: float = 0.5) -> pd.DataFrame:  # fmt: skip
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_predict

    import growthmachine as gm

    tp = gm.touchpoint
    world = gm.sim.WorldConfig.from_yaml(config) if config else gm.sim.WorldConfig()
    pop = gm.sim.Population.generate(n_users, seed=seed, config=world)
    env = gm.sim.Environment(pop, seed=seed)
    users = np.arange(n_users)
    pl = tp.FrequencyPlanner.for_world(env, tw.CHANNELS, optout_cost=1.0, seed=seed,
                                       explore_share=explore_share,
                                       model=tp.ResponseModel(forget=forget))  # fmt: skip
    # round 0: the experiment, observed with the users' features
    reach = tp.world_reachable(env, users, pl.channels)
    cov = tw.covariates_of(env, users, features, seed)
    p = pl.plan(users, 0.06 * reach[:, 0].sum(), value=tw.VALUE, reachable=reach,
                segment=tp.world_segments(env, users), start_day=env.day,
                fatigue=tp.world_fatigue(env, users))  # fmt: skip
    pl.observe(env.apply(p.schedule(), start_day=env.day, days=pl.horizon_days), covariates=cov)
    # round 1
    reach = tp.world_reachable(env, users, pl.channels)
    budget = 0.06 * reach[:, 0].sum()
    seg = tp.world_segments(env, users)
    fat = tp.world_fatigue(env, users)
    cov = tw.covariates_of(env, users, features, seed)
    start = env.day
    inc, opt = tp.true_curves(env, pl, users, reachable=reach)
    g_inc, g_opt, codes = tp.segment_curves(inc, opt, seg, reach)
    num, den = inc[:, 0, :].sum(1), g_inc[codes, 0, :].sum(1)
    w_true = np.clip(np.where(den > 0, num / np.maximum(den, 1e-300), 1.0), 0.0, 5.0)
    ok = reach[:, 0]
    x = cov.to_numpy()
    xs = np.column_stack([x, codes])
    folds = KFold(2, shuffle=True, random_state=seed)

    def fitted(model, data) -> np.ndarray:
        w = np.ones(n_users)
        w[ok] = np.clip(cross_val_predict(model, data[ok], w_true[ok], cv=folds), 0.0, 5.0)
        return w

    gbm = dict(max_iter=200, random_state=seed)
    heights = {
        "none": np.ones(n_users),
        "fitted (linear)": pl.model.height(cov),
        "best linear of truth": fitted(LinearRegression(), x),
        "boosted trees of truth": fitted(HistGradientBoostingRegressor(**gbm), x),
        "boosted trees of truth, + segment": fitted(
            HistGradientBoostingRegressor(categorical_features=[x.shape[1]], **gbm), xs
        ),
        "truth": w_true,
    }
    uni = tp.score(env, tp.uniform_plan(pl, users, reachable=reach, start_day=start))
    _, m_opt, group = pl._model_curves(seg, fat)
    cap_model = float(m_opt[group[ok], 0, int(np.searchsorted(pl.levels, 6))].sum())
    plo = tp.FrequencyPlanner(
        [tp.Channel(c.name, c.unit_cost, c.daily_cap, c.weekly_cap, c.capacity, 0.0)
         for c in pl.channels],
        pl.horizon_days, model=pl.model, levels=pl.levels, seed=pl.seed,
    )  # fmt: skip
    true_seg = tp.score(env, plo.plan(users, budget, value=tw.CONV_VALUE, segment=codes,
                                      reachable=reach, curves=(g_inc, g_opt), start_day=start,
                                      max_optouts=uni["optouts"]))  # fmt: skip
    rows = []
    var = w_true[ok].var()
    for name, w in heights.items():
        plo.rounds_ = pl.rounds_
        q = plo.plan(users, budget, value=tw.CONV_VALUE * w, segment=seg, reachable=reach,
                     start_day=start, max_optouts=cap_model, fatigue=fat, explore=False)  # fmt: skip
        s = tp.score(env, q)
        rows.append({
            "height": name,
            "R2": 1.0 - ((w[ok] - w_true[ok]) ** 2).mean() / var,
            "x uniform": s["incremental_conversions"] / uni["incremental_conversions"],
            "share of true segment plan": s["incremental_conversions"]
            / true_seg["incremental_conversions"],
            "optouts / uniform's": s["optouts"] / uni["optouts"],
        })  # fmt: skip
    df = pd.DataFrame(rows).set_index("height")
    df.attrs.update(features=cov.shape[1], sd_true=float(np.sqrt(var)))
    return df
