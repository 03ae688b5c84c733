"""``Machine``: the five modules in one closed loop, period after period, scored with the
baselines on the world's truth.

Each period of ``Machine.run(env, periods, period_days)``:

1. **insight** is refitted on every order seen so far (``env.transactions()``);
2. **planning**: the uplift models are refitted on the randomised rows of every period so far
   (hold-out controls and exploration, each row described as the user was then), cross-fitted
   and calibrated (:class:`growthmachine.planning.Planner`);
3. a hold-out share of the users gets nothing, randomly chosen users get randomised tasks
   (exploration, sized to its share of the budget by the costs observed so far), and the
   **allocation** core chooses the other users' tasks under the rest of the campaign budget;
4. the **touchpoint** planner plans off-site exposure frequencies for users given no task, with
   its share of the budget (its own exploration included) and learns from what they did;
5. everything is applied to the world; what users did becomes the next period's log.

The machine's forecast of the period's incremental profit (its calibrated estimates) is put next
to the world's exact expectation of what it sent (``Environment.expected_outcome``, scoring
only). Every baseline runs on its own copy of the world with the same seed and budget; the
oracle gets the machine's true spend of the period.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _progress
from .._seeds import derive_seed
from ._baselines import BASELINES, AbWinner, NoMarketing, Oracle, RandomPolicy, RfmRule
from ._config import MachineConfig
from ._kpis import KPIS, eligible, kpis_of

__all__ = ["Machine", "MachineRun", "policy_table"]

#: Fewest delivered randomised rows per task (and controls) before the planner is fitted.
MIN_ROWS = 50

#: Share of the intrusion budget (expected opt-outs) the touchpoint plan may use on its own.
TP_OPTOUT_SHARE = 0.25

#: Prior sd of a task's realised / forecast profit ratio (the correction is shrunk toward 1).
SCALE_PRIOR_SD = 0.5


@dataclass
class MachineRun:
    """The result of :meth:`Machine.run`.

    ``periods``: one row per (policy, period) with the KPIs of
    :data:`growthmachine.machine.KPIS` (exact expectations) and the budget; ``history``: the
    machine's own rows per period (forecast vs truth, budget split, group sizes, channel spend);
    ``comparison``: per policy, the KPIs summed over ``scored_periods`` (the periods after the
    machine's first two, which learn) and the incremental profit over all periods;
    ``state``: the last period's fitted objects (insight, planner, task plan, touchpoint
    planner and plan) for the report."""

    periods: pd.DataFrame
    history: pd.DataFrame
    comparison: pd.DataFrame
    scored_periods: list[int]
    seconds: dict[str, float]
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    def share_of_oracle(self) -> float:
        c = self.comparison
        if "oracle" not in c.index or "machine" not in c.index:
            return float("nan")
        o = c.loc["oracle", "incremental_profit"]
        return float(c.loc["machine", "incremental_profit"] / o) if o > 0 else float("nan")


def policy_table(periods: pd.DataFrame, scored: Sequence[int]) -> pd.DataFrame:
    """Per policy: the KPIs summed over the ``scored`` periods (``avg_offsite_touches``: the
    mean over periods with touches), plus cumulative incremental profit over all periods.
    ``periods``: a table (pandas, polars, pyarrow or a mapping of columns) with ``period``,
    ``policy`` and every KPI, as :attr:`Run.periods`; ``scored``: period numbers."""
    cols = cv.columns(periods, "periods")
    missing = [c for c in ("period", "policy", *KPIS) if c not in cols]
    if missing:
        raise ValueError(f"periods: has no column {missing[0]!r} (columns: {', '.join(cols)})")
    data = {
        "policy": cv.column(periods, "periods", "policy"),
        "period": cv.as_array(
            cv.column(periods, "periods", "period"), "periods['period']", np.int64, allow_empty=True
        ),
    }
    for k in KPIS:
        data[k] = cv.as_array(
            cv.column(periods, "periods", k), f"periods[{k!r}]", np.float64, allow_empty=True
        )
    periods = pd.DataFrame(data)
    scored = cv.as_array(scored, "scored", np.int64, allow_empty=True)
    sc = periods[periods["period"].isin(scored)]
    g = sc.groupby("policy", sort=False)
    out = g[[k for k in KPIS if k != "avg_offsite_touches"]].sum()
    touch = sc["avg_offsite_touches"].where(sc["avg_offsite_touches"] > 0)
    out["avg_offsite_touches"] = touch.groupby(sc["policy"], sort=False).mean().fillna(0.0)
    out["roi"] = out["incremental_profit"] / out["spend"].where(out["spend"] > 0)
    out["incremental_profit_all_periods"] = periods.groupby("policy", sort=False)[
        "incremental_profit"
    ].sum()
    return out


class Machine:
    """The growth machine: insight -> planning -> allocation -> touchpoints -> outcomes ->
    learning, period after period (see the module docs).

    ``plan``: a :class:`growthmachine.planning.Plan` whose tasks are actions of the world's
    catalogue (default: the world's catalogue with as many content variants as the first
    period's exploration can measure); ``config``: a :class:`MachineConfig`; ``model``: the
    uplift model (default the planner's Rust forest)."""

    def __init__(
        self,
        plan: Any = None,
        config: MachineConfig | None = None,
        *,
        model: Any = "auto",
        progress: bool | None = None,
    ):
        from ..planning import Plan

        if plan is not None and not isinstance(plan, Plan):
            raise TypeError(
                f"plan: must be a growthmachine.planning.Plan or None, got {type(plan).__name__}"
            )
        if config is None:
            config = MachineConfig()
        if not isinstance(config, MachineConfig):
            raise TypeError(f"config: must be a MachineConfig, got {type(config).__name__}")
        self.plan = plan
        self.config = config
        self.model = model
        self.progress = progress

    # -- one period of the machine ---------------------------------------------------------
    def _setup(self, env: Any) -> None:
        from ..planning import world_actions
        from ..touchpoint import FrequencyPlanner, ResponseModel

        cfg = self.config
        budget = cfg.period_budget(env.n_users)
        plan = self.plan if self.plan is not None else self._default_plan(env, budget)
        self.plan_ = plan
        self.tasks_ = plan.tasks()
        self.task_actions_ = world_actions(env, self.tasks_)
        self.logs_: list[tuple[pd.DataFrame, np.ndarray, list[str]]] = []
        self.feedback_: list[pd.DataFrame] = []
        self.tp_feedback_: list[dict[str, float]] = []
        self.optout_feedback_: list[dict[str, float]] = []
        self.tp_planner_ = FrequencyPlanner.for_world(
            env,
            cfg.touchpoint_channels,
            optout_cost=cfg.optout_cost,
            model=ResponseModel(forget=0.5, progress=False),
            seed=derive_seed(cfg.seed, "touchpoint"),
            explore_share=cfg.touchpoint_explore_share,
            progress=False,
        )

    def _setup_sessions(self, env: Any, periods: int) -> None:
        """The real-time session policy, budgeted over the whole run (see MachineConfig)."""
        from ..realtime import SessionPolicy
        from ..realtime.world import face_value, no_intervention, play

        cfg = self.config
        self.session_policy_ = None
        n_s = cfg.sessions_per_period
        if n_s == 0:
            return
        probe = env.sessions(min(n_s, 2_000), seed=derive_seed(cfg.seed, "sessions", "probe"))
        names = list(probe.action_names)
        base = play(lambda _s: probe, no_intervention, probe.n, 1)
        decisions = float(base["decisions"].iloc[0]) * n_s * periods
        budget = cfg.session_budget_share * cfg.period_budget(env.n_users) * periods
        self.session_policy_ = SessionPolicy(
            len(names), probe.n_features, seed=derive_seed(cfg.seed, "realtime"),
            costs=np.array([face_value(a) for a in names]), budget=budget,
            horizon=max(int(decisions), 1),
        )  # fmt: skip

    def _sessions(self, env: Any, period: int) -> dict[str, float]:
        """One period of site visits under the session policy, and the same visits with no
        intervention: the policy's incremental net value (GMV - incentive cost)."""
        from ..realtime.world import no_intervention, play

        sp = self.session_policy_
        if sp is None:
            return {}
        n_s = self.config.sessions_per_period
        seed = derive_seed(self.config.seed, "sessions", period)
        spend0 = sp.spend_
        run = play(lambda _s: env.sessions(n_s, seed=seed), sp, n_s, 1)
        base = play(lambda _s: env.sessions(n_s, seed=seed), no_intervention, n_s, 1)
        return {
            "sessions": float(n_s),
            "session_spend": float(sp.spend_ - spend0),
            "session_net_value": float(run["net_value"].iloc[0] * n_s),
            "session_incremental_value": float(
                (run["net_value"].iloc[0] - base["net_value"].iloc[0]) * n_s
            ),
        }

    def _default_plan(self, env: Any, budget: float) -> Any:
        """The world's catalogue with as many content variants as the learning periods'
        exploration can measure: its budget buys about ``explore_periods x campaign budget /
        mean nominal task cost`` delivered rows, and :func:`experiment_plan` sizes the variants
        for that many (it assumes 2/3 of drawn tasks are delivered). Sized for an experiment on
        half the users instead, the machine split its rows over twice the tasks at 200k users
        and earned less in all five world/seed runs compared (e.g. 18.8 % of the oracle against
        12.0 % on the default world, seed 1)."""
        from ..planning import Plan, experiment_plan

        cfg = self.config
        if not budget:
            return experiment_plan(env, budget or None)
        t = Plan.default(env).tasks()
        cost = float((t["benefit_cost"] * cfg.first_period_redemption + t["cost_per_touch"]).mean())
        rows = cfg.explore_periods * budget * (1.0 - cfg.touchpoint_share) / max(cost, 1e-9)
        share = min(0.5, rows / (env.n_users * 2.0 / 3.0))
        return experiment_plan(env, budget, share=share)

    def _task_costs(self) -> np.ndarray:
        """Expected cost of each task when delivered: the mean observed on the log's delivered
        rows (incentive + channel), or before any, the nominal cost (benefit cost x the assumed
        redemption share + cost per touch)."""
        t = self.tasks_
        nominal = (
            t["benefit_cost"].to_numpy() * self.config.first_period_redemption
            + t["cost_per_touch"].to_numpy()
        )
        if not self.logs_:
            return nominal
        log = pd.concat([lg for lg, _, _ in self.logs_], ignore_index=True)
        d = log[(log["action_id"] >= 0) & log["delivered"]]
        spent = (d["incentive_cost"] + d["channel_cost"]).groupby(d["action_id"]).mean()
        out = nominal.copy()
        out[spent.index.to_numpy()] = spent.to_numpy()
        return out

    def _insight(self, env: Any, start: int, period: int) -> Any:
        from ..insight import UserInsight

        k_b, k_p = self.config.insight_clusters
        return UserInsight(
            n_clusters=k_b,
            n_prospect_clusters=k_p,
            seed=derive_seed(self.config.seed, "insight", period),
            progress=False,
        ).fit(env.transactions(), as_of=start, users=env.population.users)

    def _planner(self, env: Any, insight: Any, feats: tuple, period: int) -> Any:
        """The planner refitted on every period's randomised rows, or None before any."""
        from ..planning import Planner

        names = feats[1]
        if not self.logs_:
            return None
        # too few randomised rows for some task (or controls): keep exploring, plan nothing
        a = np.concatenate([lg["action_id"].to_numpy()[lg["delivered"].to_numpy()]
                            for lg, _, _ in self.logs_])  # fmt: skip
        counts = np.bincount(a[a >= 0], minlength=len(self.tasks_))
        if counts.min() < MIN_ROWS or (a < 0).sum() < MIN_ROWS:
            return None
        logs, rows_x = [], []
        for lg, X, nm in self.logs_:
            logs.append(lg)
            pos = pd.Index(nm).get_indexer(names)  # align columns by name; missing -> 0
            Xa = np.zeros((len(X), len(names)))
            ok = pos >= 0
            Xa[:, ok] = X[:, pos[ok]]
            rows_x.append(Xa)
        log = pd.concat(logs, ignore_index=True)
        planner = Planner(
            self.plan_,
            self.model,
            margin=float(env.config.response.margin),
            seed=derive_seed(self.config.seed, "planner"),
            progress=False,
        )
        return planner.fit(
            log, insight, env.population.users, opted_out=env.opted_out(),
            features=np.vstack(rows_x), user_features=feats,
        )  # fmt: skip

    def _step(self, env: Any, period: int, start: int, days: int) -> tuple[pd.DataFrame, dict]:
        """Plans one period; returns the treatments and what :meth:`_learn` needs."""
        from ..planning import planning_features
        from ..touchpoint import world_reachable, world_segments

        cfg = self.config
        n = env.n_users
        budget = cfg.period_budget(n)
        b_tp = budget * cfg.touchpoint_share
        b_camp = budget - b_tp
        insight = self._insight(env, start, period)
        X, names, ids = planning_features(insight, env.population.users)
        planner = self._planner(env, insight, (X, names, ids), period)
        rng = np.random.default_rng(derive_seed(cfg.seed, "machine", period))
        order = rng.permutation(n).astype(np.int64)
        n_hold = int(round(cfg.holdout_share * n))
        holdout, rest = order[:n_hold], order[n_hold:]
        # exploration: uniform random tasks for random users, until its budget is spent
        learning = planner is None or period < cfg.explore_periods
        b_explore = b_camp if learning else cfg.explore_share * b_camp
        T = len(self.tasks_)
        draw = rng.integers(0, T, len(rest))
        delivered = eligible(env, rest, self.task_actions_[draw])
        cost = np.where(delivered, self._task_costs()[draw], 0.0)
        k = int(np.searchsorted(np.cumsum(cost), b_explore, side="right"))
        explorers, e_task, e_deliv = rest[:k], draw[:k], delivered[:k]
        e_cost = float(cost[:k].sum())
        others = rest[k:]
        # Everyone else is planned, and so is the hold-out as if it were not held out: its
        # "shadow" tasks and exposures are not sent, and each task's (and the touchpoint
        # plan's) realised effect is its planned users against its shadow users, a randomised
        # comparison of the plan's own choices.
        pool = np.union1d(others, holdout)
        scale = len(pool) / max(len(others), 1)
        tpp = self.tp_planner_
        conv_value = self._tp_value(self._conversion_value(env))
        fitted_before = tpp.model is not None and tpp.is_fitted()
        fplan = None
        tp_keep = np.zeros(0, np.int64)  # users whose exposures are kept
        outside = None
        # the intrusion budget, for the planned users and their shadows
        cap = None if cfg.max_optout_rate is None else cfg.max_optout_rate * n * scale
        tp_rand_optouts = 0.0
        if len(others) and b_tp > 0:
            reach = world_reachable(env, pool, tpp.channels)
            seg = world_segments(env, pool)
            # its own plan (exploration included) may use a quarter of the intrusion budget;
            # its optimised users then compete with the campaign for the rest
            fplan = tpp.plan(pool, b_tp * scale, value=conv_value, segment=seg,
                             reachable=reach, start_day=start,
                             max_optouts=None if cap is None else TP_OPTOUT_SHARE * cap)  # fmt: skip
            a = fplan.assignment
            reached = a["exposures"].to_numpy() > 0
            rand = a["explore"].to_numpy() & reached
            tp_keep = a["user_id"].to_numpy()[rand]  # randomised: never displaced
            unit = np.array([c.unit_cost for c in tpp.channels])
            codes = a["channel"].cat.codes.to_numpy()
            cost_u = np.where(codes >= 0, unit[np.maximum(codes, 0)], 0.0) * a["exposures"]
            opt = reached & ~rand
            oo = np.nan_to_num(a["expected_optouts"].to_numpy())
            tp_rand_optouts = float(oo[rand].sum())
            outside = pd.DataFrame({"user_id": a["user_id"].to_numpy()[opt],
                                    "value": a["value"].to_numpy()[opt],
                                    "cost": cost_u.to_numpy()[opt],
                                    "optouts": oo[opt]})  # fmt: skip
        # The campaign's tasks and the touchpoint's optimised users compete in one allocation.
        tp = None
        shadow = sent = None
        scale_t = self._scale()
        optout_raw = self._optout_rates()
        optout_rates = optout_raw * self._optout_scale()
        if planner is not None and len(others):
            camp_pool = np.setdiff1d(pool, tp_keep)
            tp = planner.allocate(
                max(b_camp - e_cost, 0.0) * scale,
                start_day=start,
                users=camp_pool,
                extra=outside,
                extra_budget=b_tp * scale,
                extra_name="touchpoint",
                task_resources=None
                if cap is None
                else {"optouts": (optout_rates, max(cap - tp_rand_optouts, 0.0))},
            )
            tp = replace(tp, problem=None)  # tens of millions of candidates at 1M users
            is_shadow = np.isin(tp.tasks["user_id"].to_numpy(), holdout)
            shadow, sent = tp.tasks[is_shadow], tp.tasks[~is_shadow]
            tp_keep = np.union1d(tp_keep, tp.extra["user_id"].to_numpy())
        elif outside is not None:
            tp_keep = np.union1d(tp_keep, outside["user_id"].to_numpy())
        parts = []
        if sent is not None and len(sent):
            parts.append(
                pd.DataFrame(
                    {
                        "user_id": sent["user_id"].to_numpy(np.int64),
                        "action_id": self.task_actions_[sent["task_id"].to_numpy()],
                        "day": start,
                    }
                )
            )
        sel = np.flatnonzero(e_deliv)
        parts.append(
            pd.DataFrame(
                {
                    "user_id": explorers[sel],
                    "action_id": self.task_actions_[e_task[sel]],
                    "day": start,
                }
            )
        )
        campaign = pd.concat(parts, ignore_index=True)
        tp_shadow = np.intersect1d(tp_keep, holdout)
        audience = np.setdiff1d(tp_keep, holdout)
        # forecasts from the machine's own estimates
        # the campaign's forecast: each task's calibrated values times what its past planned
        # users earned per unit of forecast against their hold-out shadows (the plan itself is
        # made from the calibrated values: scaling them would move the selection it corrects)
        f_camp = float("nan")
        if sent is not None:
            k = np.ones(len(self.tasks_)) if scale_t is None else scale_t
            f_camp = float((sent["expected_profit"] * k[sent["task_id"].to_numpy()]).sum())
        if planner is not None and len(sel):
            f_explore = float(planner.pair_profit(explorers[sel], e_task[sel]).sum())
        else:
            f_explore = float("nan")
        f_tp = float("nan")
        tp_rows = None
        if fplan is not None:
            a = fplan.assignment
            unit = np.array([c.unit_cost for c in tpp.channels])
            codes = a["channel"].cat.codes.to_numpy()
            tp_rows = pd.DataFrame(
                {
                    "user_id": a["user_id"].to_numpy(),
                    "reached": (a["exposures"].to_numpy() > 0)
                    & np.isin(a["user_id"].to_numpy(), tp_keep),
                    "shadow": np.isin(a["user_id"].to_numpy(), tp_shadow),
                    "conversions": a["expected_conversions"].to_numpy(),
                    "cost": np.where(codes >= 0, unit[np.maximum(codes, 0)], 0.0)
                    * a["exposures"].to_numpy(),
                }
            )
            if fitted_before:
                sent_tp = tp_rows[tp_rows["reached"] & ~tp_rows["shadow"]]
                f_tp = float((sent_tp["conversions"] * conv_value - sent_tp["cost"]).sum())
        info = {
            "period": period,
            "insight": insight,
            "planner": planner,
            "task_plan": tp,
            "sent": sent,
            "shadow": shadow,
            "scale": scale_t,
            "optout_rates": optout_raw,
            "frequency_plan": fplan,
            "touchpoint_rows": tp_rows,
            "touchpoint_value": conv_value,
            "X": X,
            "names": names,
            "holdout": holdout,
            "explorers": explorers,
            "explore_task": e_task,
            "explore_delivered": e_deliv,
            "campaign_users": campaign["user_id"].to_numpy(),
            "explore_users": explorers[sel],
            "touchpoint_users": audience,
            "touchpoint_shadow": tp_shadow,
            "row": {
                "forecast_campaign": f_camp,
                "forecast_explore": f_explore,
                "forecast_touchpoint": f_tp,
                "budget": budget,
                "budget_campaign": b_camp,
                "budget_explore": min(e_cost, b_camp),
                "budget_touchpoint": b_tp,
                "users_planned": float(len(sent)) if sent is not None else 0.0,
                "users_explored": float(len(sel)),
                "users_held_out": float(len(holdout)),
                "users_touchpoint": float(len(audience)),
            },
        }
        table = _campaign_table(env, campaign)
        if fplan is not None:
            content = str(env.config.response.contents[0])
            sched = _schedule_table(fplan.schedule(content=content))
            sched = sched[np.isin(sched["user_id"].to_numpy(), audience)]
            table = pd.concat([table, sched], ignore_index=True)
        return table, info

    @staticmethod
    def _conversion_value(env: Any) -> float:
        """Profit of one incremental conversion: the margin on the mean order value seen."""
        tx = env.transactions()
        aov = float(tx["amount"].mean()) if len(tx) else 0.0
        return float(env.config.response.margin) * aov

    def _scale(self) -> np.ndarray | None:
        """Per task, the ratio of what the users past plans gave it earned (against their
        hold-out shadows) to what those plans forecast for them before this correction: the
        realised sum over the uncorrected forecast sum, all periods the task was planned,
        shrunk toward 1 (no correction) by its noise with a prior sd of
        :data:`SCALE_PRIOR_SD`. It multiplies the task's calibrated values in the next
        forecast."""
        if not self.feedback_:
            return None
        fb = pd.concat(self.feedback_, ignore_index=True)
        fb = fb[np.isfinite(fb["se"]) & (fb["se"] > 0) & (fb["forecast_raw"] > 0)]
        if not len(fb):
            return None
        n = fb["n_sent"].to_numpy()
        g = pd.DataFrame({"task_id": fb["task_id"].to_numpy(),
                          "r": n * fb["realised"].to_numpy(),
                          "f": n * fb["forecast_raw"].to_numpy(),
                          "v": (n * fb["se"].to_numpy()) ** 2}).groupby("task_id").sum()  # fmt: skip
        ratio = g["r"] / g["f"]
        se = np.sqrt(g["v"]) / g["f"]
        lam = SCALE_PRIOR_SD**2 / (SCALE_PRIOR_SD**2 + se**2)
        out = np.ones(len(self.tasks_))
        out[ratio.index.to_numpy()] = (1.0 + lam * (ratio - 1.0)).to_numpy()
        return out

    def _optout_rates(self) -> np.ndarray:
        """Per task, the extra opt-out probability a delivered task causes (delivered
        exploration rows against the hold-out, all periods; 0 when not measurable), shrunk
        toward its channel's pooled rate by its noise (empirical Bayes, DerSimonian-Laird
        spread between the channel's tasks). The plan caps its opt-outs with these rates times
        :meth:`_optout_scale`. Why shrunk: a few hundred rows per task see 0-3 opt-outs, so
        raw rates of 0 are common, and the allocation, free to pick among tasks, chose exactly
        those: on the default world (200k users) the plans' users then opted out 1.9-3.3 times
        as often as their tasks' raw rates said; with the shrinkage 1.0-1.7 times, and the
        machine's opt-outs fell from 1.21 / 0.87 / 0.55 to 0.94 / 0.68 / 0.50 of the RFM rule's
        (default / coupon-sensitive / fatigued world, seed 0; ``python -m benchmarks machine``)
        at 0.398 / 0.404 / 0.392 of the oracle (0.391 / 0.392 / 0.394 before)."""
        from ..planning._calibrate import shrink_to_mean

        out = np.zeros(len(self.tasks_))
        if not self.logs_:
            return out
        log = pd.concat([lg for lg, _, _ in self.logs_], ignore_index=True)
        c = log["action_id"] < 0
        ctrl = log[c]["opted_out"].mean() if c.any() else 0.0
        d = log[(log["action_id"] >= 0) & log["delivered"]]
        st = d.groupby("action_id")["opted_out"].agg(["size", "mean"])
        tasks = st.index.to_numpy()
        n, p = st["size"].to_numpy(np.float64), st["mean"].to_numpy(np.float64)
        rate = p - ctrl
        chan = self.tasks_["channel"].astype(str).to_numpy()[tasks]
        for ch in np.unique(chan):
            m = chan == ch
            pooled = float((p[m] * n[m]).sum() / n[m].sum())
            # binomial noise at the channel's pooled rate (a task with 0 opt-outs is not exact)
            se = np.sqrt(max(pooled * (1.0 - pooled), 1e-12) / n[m])
            if m.sum() > 1:
                rate[m] = shrink_to_mean(rate[m], se)[0]
        out[tasks] = np.maximum(rate, 0.0)
        return out

    def _optout_scale(self) -> float:
        """Realised opt-outs of the past plans' users (each task's planned users against its
        shadow hold-out users, summed over tasks and periods) over what the exploration rates
        (:meth:`_optout_rates`) expected for them, shrunk toward 1 (no correction) by its
        noise with a prior sd of :data:`SCALE_PRIOR_SD`, as :meth:`_scale` corrects the
        profit. Exploration measures fresh random users; a plan's users are chosen, and
        touched period after period, so their risk can differ (on the default world, 200k
        users, the plans' users opted out 1.3-3.2 times as often as these rates said).
        Periods whose plans the rates expected no opt-outs from count in the pooled sums too
        (their realised opt-outs are evidence that the rates are low); no correction before
        any opt-out was expected."""
        fb = self.optout_feedback_
        expected = sum(f["expected"] for f in fb)
        if expected <= 0:
            return 1.0
        ratio = sum(f["realised"] for f in fb) / expected
        se = np.sqrt(sum(f["var"] for f in fb)) / expected
        lam = SCALE_PRIOR_SD**2 / (SCALE_PRIOR_SD**2 + se**2)
        return float(max(1.0 + lam * (ratio - 1.0), 0.0))

    def _tp_value(self, prior: float) -> float:
        """Value of one incremental conversion the touchpoint plans with: the prior (margin x
        mean order value) updated by what each past plan's reached users earned against its
        reached shadows (the implied value per forecast conversion; normal prior with sd equal
        to its mean, inverse-variance pooling)."""
        fb = [f for f in self.tp_feedback_ if np.isfinite(f["implied_value"]) and f["se"] > 0]
        if not fb or prior <= 0:
            return prior
        w0 = 1.0 / prior**2
        w = np.array([1.0 / f["se"] ** 2 for f in fb])
        v = np.array([f["implied_value"] for f in fb])
        return float((w0 * prior + (w * v).sum()) / (w0 + w.sum()))

    def _tp_feedback(self, env: Any, info: dict, outcomes: pd.DataFrame) -> None:
        rows = info["touchpoint_rows"]
        if rows is None:
            return
        r = rows[rows["reached"]]
        s, h = r[~r["shadow"]], r[r["shadow"]]
        if len(s) < 2 or len(h) < 2 or not np.isfinite(s["conversions"]).all():
            return
        profit = info["adjusted_profit"]
        ys, yh = profit[s["user_id"].to_numpy()], profit[h["user_id"].to_numpy()]
        realised = float(ys.mean() - yh.mean())
        se = float(np.sqrt(ys.var(ddof=1) / len(ys) + yh.var(ddof=1) / len(yh)))
        f = float(s["conversions"].mean())
        c = float(s["cost"].mean())
        self.tp_feedback_.append(
            {
                "n_sent": len(s),
                "n_shadow": len(h),
                "forecast": f * info["touchpoint_value"] - c,
                "realised": realised,
                "implied_value": (realised + c) / f if f > 0 else float("nan"),
                "se": se / f if f > 0 else float("nan"),
            }
        )

    def _adjusted_profit(self, env: Any, info: dict, outcomes: pd.DataFrame) -> np.ndarray:
        """Each user's realised profit of the period minus its prediction from the user's
        features at the start (ridge regression fitted on the hold-out users that no plan
        chose, who got nothing): a control variate. Planned and shadow users are a random split
        of the same users and the prediction uses neither, so differences of means stay
        unbiased while the heavy-tailed spend of a few users mostly cancels."""
        from ..planning._calibrate import ridge_baseline

        m = float(env.config.response.margin)
        o = outcomes
        y = (m * o["gmv"] - o["incentive_cost"] - o["channel_cost"]).to_numpy()
        chosen = np.zeros(len(y), dtype=bool)
        if info["shadow"] is not None:
            chosen[info["shadow"]["user_id"].to_numpy()] = True
        chosen[info["touchpoint_shadow"]] = True
        fit = np.zeros(len(y), dtype=bool)
        fit[info["holdout"]] = True
        fit &= ~chosen
        if fit.sum() < 10 * max(info["X"].shape[1], 1):
            return y
        return y - ridge_baseline(info["X"], y, fit)

    def _feedback(self, env: Any, info: dict, outcomes: pd.DataFrame) -> None:
        """Per task of the plan: realised profit effect (planned users minus their shadow
        hold-out users) against the plan's own forecast for them."""
        sent, shadow = info["sent"], info["shadow"]
        if sent is None or not len(sent) or not len(shadow):
            return
        profit = info["adjusted_profit"]
        opted = outcomes["opted_out"].to_numpy().astype(np.float64)
        rates = info["optout_rates"]
        oo = {"realised": 0.0, "expected": 0.0, "var": 0.0}
        rows = []
        for j, s in sent.groupby("task_id"):
            h = shadow[shadow["task_id"] == j]
            if len(h) < 2 or len(s) < 2:
                continue
            ps = opted[s["user_id"].to_numpy()].mean()
            ph = opted[h["user_id"].to_numpy()].mean()
            oo["realised"] += len(s) * (ps - ph)
            oo["expected"] += len(s) * float(rates[j])
            oo["var"] += len(s) * ps * (1 - ps) + len(s) ** 2 * ph * (1 - ph) / len(h)
            ys, yh = profit[s["user_id"].to_numpy()], profit[h["user_id"].to_numpy()]
            realised = ys.mean() - yh.mean()
            se = float(np.sqrt(ys.var(ddof=1) / len(ys) + yh.var(ddof=1) / len(yh)))
            fc = float(s["expected_profit"].mean())
            used = 1.0 if info["scale"] is None else float(info["scale"][j])
            rows.append({"period": info["period"], "task_id": int(j), "n_sent": len(s),
                         "n_shadow": len(h), "forecast_raw": fc, "forecast": fc * used,
                         "realised": float(realised), "se": se})  # fmt: skip
        if rows:
            self.feedback_.append(pd.DataFrame(rows))
            # also when the rates expected none: opt-outs they did not expect are evidence too
            self.optout_feedback_.append(oo)

    def _learn(self, env: Any, info: dict, outcomes: pd.DataFrame) -> None:
        """The period's randomised rows (hold-out controls and exploration) join the log; the
        plan's realised effect per task against its hold-out corrects the next plan; the
        touchpoint model learns from its randomised users."""
        info["adjusted_profit"] = self._adjusted_profit(env, info, outcomes)
        self._feedback(env, info, outcomes)
        hold, exp = info["holdout"], info["explorers"]
        users = np.r_[hold, exp].astype(np.int64)
        action = np.r_[np.full(len(hold), -1), info["explore_task"]].astype(np.int64)
        deliv = np.r_[np.ones(len(hold), bool), info["explore_delivered"]]
        o = outcomes
        log = pd.DataFrame(
            {
                "user_id": users,
                "action_id": action,
                "delivered": deliv,
                "gmv": o["gmv"].to_numpy()[users],
                "orders": o["orders"].to_numpy()[users],
                "incentive_cost": o["incentive_cost"].to_numpy()[users],
                "channel_cost": o["channel_cost"].to_numpy()[users],
                "converted": o["converted"].to_numpy()[users],
                "opted_out": o["opted_out"].to_numpy()[users],
            }
        )
        self.logs_.append((log, info["X"][users], list(info["names"])))
        fp = info["frequency_plan"]
        if fp is not None:
            sent = ~np.isin(fp.assignment["user_id"].to_numpy(), info["holdout"])
            a = fp.assignment[sent]
            if (a["explore"] & a["channel"].notna()).any():
                self.tp_planner_.observe(outcomes, replace(fp, assignment=a))
            self._tp_feedback(env, info, outcomes)

    # -- the run ----------------------------------------------------------------------------
    def run(
        self,
        env: Any,
        periods: int = 6,
        period_days: int = 30,
        *,
        baselines: Sequence[str] = BASELINES,
        scored_from: int = 2,
        progress: bool | None = None,
    ) -> MachineRun:
        """Runs the machine on ``env`` for ``periods`` periods of ``period_days`` days, and each
        of ``baselines`` (names of :data:`growthmachine.machine.BASELINES`) on its own copy of
        the world as it is now. ``env`` itself is advanced (it is the machine's world).
        ``scored_from``: the first period (0-based) the comparison sums."""
        from .. import _convert as cv

        periods = cv.check_int(periods, "periods", minimum=1, maximum=1000)
        period_days = cv.check_int(period_days, "period_days", minimum=1, maximum=3650)
        scored_from = cv.check_int(scored_from, "scored_from", minimum=0)
        for b in baselines:
            cv.check_choice(b, "baselines", BASELINES)
        progress = self.progress if progress is None else progress
        seed = self.config.seed
        from ._baselines import _env

        _env(env)
        worlds = {b: env.copy() for b in baselines}
        self._setup(env)
        self._setup_sessions(env, periods)
        pols: dict[str, NoMarketing] = {}
        for b in baselines:
            if b == "none":
                pols[b] = NoMarketing()
            elif b == "random":
                pols[b] = RandomPolicy(seed)
            elif b == "rfm_rule":
                pols[b] = RfmRule(seed)
            elif b == "ab_winner":
                pols[b] = AbWinner(np.unique(self.task_actions_), seed)
            else:
                pols[b] = Oracle(seed)
        rows, hist = [], []
        secs = {"machine": 0.0, **{b: 0.0 for b in baselines}}
        budget = self.config.period_budget(env.n_users)
        with _progress.bar(progress, "machine", unit="period") as cb:
            if cb is not None:
                cb(0, periods * (1 + len(baselines)))
            done = 0
            for p in range(periods):
                t0 = time.perf_counter()
                start = env.day
                table, info = self._step(env, p, start, period_days)
                exp = env.expected_outcome(table, start_day=start, days=period_days, progress=False)
                k = kpis_of(env, exp, start)
                row = dict(info["row"])
                row.update(_group_truth(exp, info))
                row["true_profit"] = k["incremental_profit"]
                parts = [row["forecast_campaign"], row["forecast_explore"],
                         row["forecast_touchpoint"]]  # fmt: skip
                row["forecast_profit"] = float(np.nansum(parts)) if p > 0 else float("nan")
                row.update(self._sessions(env, p))
                out = env.apply(table, start_day=start, days=period_days, progress=False)
                self._learn(env, info, out)
                row["log_rows"] = float(sum(len(lg) for lg, _, _ in self.logs_))
                rows.append({"policy": "machine", "period": p, "start_day": start,
                             "budget": budget, **k})  # fmt: skip
                hist.append(
                    {"period": p, "start_day": start, **row, **_channel_spend(env, exp, table)}
                )
                spend = k["spend"]
                secs["machine"] += time.perf_counter() - t0
                done += 1
                if cb is not None:
                    cb(done, None)
                for b, pol in pols.items():
                    t0 = time.perf_counter()
                    w = worlds[b]
                    b_budget = spend if b == "oracle" else budget
                    t = pol.treatments(w, p, w.day, period_days, b_budget)
                    kb = _kpis(w, t, w.day, period_days)
                    o = w.apply(
                        t if len(t) else None, start_day=w.day, days=period_days, progress=False
                    )
                    pol.observe(w, t, o)
                    rows.append({"policy": b, "period": p, "start_day": start,
                                 "budget": b_budget, **kb})  # fmt: skip
                    secs[b] += time.perf_counter() - t0
                    done += 1
                    if cb is not None:
                        cb(done, None)
                self.state_ = info
        per = pd.DataFrame(rows)
        scored = [p for p in range(periods) if p >= scored_from] or list(range(periods))
        comp = policy_table(per, scored)
        return MachineRun(
            per, pd.DataFrame(hist), comp, scored, secs, state={**self.state_, "baselines": pols}
        )

    def what_if(self, env: Any, treatments: Any, start_day: int | None = None,
                days: int = 30) -> dict[str, float]:  # fmt: skip
        """Scores a candidate treatment table on the world as it is now, spending nothing and
        leaving ``env`` untouched: the KPIs of :data:`KPIS` (exact expectations, as the
        comparison uses)."""
        from ._baselines import _env, _start

        _env(env)
        start = env.day if start_day is None else _start(env, start_day, "start_day")
        days = cv.check_int(days, "days", minimum=1, maximum=100_000)
        return _kpis(env, treatments, start, days)


def _kpis(env: Any, table: Any, start: int, days: int) -> dict[str, float]:
    if table is None or not len(table):
        return kpis_of(env, None, start)
    exp = env.expected_outcome(table, start_day=start, days=days, progress=False)
    return kpis_of(env, exp, start)


def _group_truth(exp: pd.DataFrame, info: dict) -> dict[str, float]:
    """The world's expected incremental profit and opt-outs of each group the machine treated
    (they are disjoint users, so each user's row belongs to one group)."""
    u = exp["user_id"].to_numpy()
    prof = exp["incremental_profit"].to_numpy()
    oo = exp["expected_optouts"].to_numpy()
    out = {}
    for key, users in (("campaign", np.setdiff1d(info["campaign_users"], info["explore_users"])),
                       ("explore", info["explore_users"]),
                       ("touchpoint", info["touchpoint_users"])):  # fmt: skip
        m = np.isin(u, users)
        out[f"true_{key}"] = float(prof[m].sum())
        out[f"optouts_{key}"] = float(oo[m].sum())
    return out


def _channel_spend(env: Any, exp: pd.DataFrame, table: pd.DataFrame) -> dict[str, float]:
    """Channel cost per channel of the period's treatments (touches x unit cost)."""
    from ..sim import CHANNELS

    cfg = env.config.response.channels
    out = {}
    ch = table["channel"].to_numpy()
    for c in CHANNELS:
        out[f"touches_{c}"] = float((ch == c).sum())
        out[f"channel_cost_{c}"] = float((ch == c).sum() * getattr(cfg, c).unit_cost)
    return out


def _campaign_table(env: Any, campaign: pd.DataFrame) -> pd.DataFrame:
    """Campaign rows (action ids) as benefit / channel / content names."""
    a = env.actions
    aid = campaign["action_id"].to_numpy()
    return pd.DataFrame(
        {
            "user_id": campaign["user_id"].to_numpy(np.int64),
            "benefit": a["benefit"].astype(str).to_numpy()[aid],
            "channel": a["channel"].astype(str).to_numpy()[aid],
            "content": a["content"].astype(str).to_numpy()[aid],
            "day": campaign["day"].to_numpy(np.int64),
        }
    )


def _schedule_table(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": s["user_id"].to_numpy(np.int64),
            "benefit": s["benefit"].astype(str).to_numpy(),
            "channel": s["channel"].astype(str).to_numpy(),
            "content": s["content"].astype(str).to_numpy(),
            "day": s["day"].to_numpy(np.int64),
        }
    )
