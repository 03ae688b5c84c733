"""The machine's settings (:class:`MachineConfig`), validated like every other input: a bad value
raises ``ValueError`` naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import _convert as cv

__all__ = ["MachineConfig"]


@dataclass
class MachineConfig:
    """How the machine spends and learns, period after period.

    ``budget``: spend per period (expected incentive + channel cost of everything the machine
    sends; ``None``: ``budget_per_user`` x the number of users). Of it, ``touchpoint_share`` goes
    to off-site exposure frequencies and the rest to campaign tasks, of which ``explore_share``
    (all of it in the first ``explore_periods`` periods, which only learn) is spent on
    randomised tasks for randomly chosen users. 0.02: at 200k users the machine earned 0.431 /
    0.423 of the oracle on the default world (seeds 0 / 1), 0.412 / 0.412 on the fatigued one
    and 0.424 on the coupon-sensitive one (seed 0), against 0.420 / 0.411, 0.406 / 0.399 and
    0.422 with 0.05 and 0.398 / 0.391, 0.392 / 0.391 and 0.403 with 0.1, the former default
    (periods 3..6 of six; the hold-outs and the first periods' exploration keep the models
    learning, and the exploration of later periods costs more than its rows teach within the
    run). An earlier comparison: 0.1 against 0.25 earned 0.309 / 0.316 / 0.336 of the oracle
    against 0.269 / 0.241 / 0.285 (default / coupon-sensitive / fatigued, seed 0).
    ``holdout_share`` of the users are randomised controls each period (they get nothing);
    with the exploration rows they are the log every period's uplift models are refitted on
    (all periods stacked). ``first_period_redemption``: the share of a benefit's cost assumed
    paid before any has been observed (sizes the first period's exploration; afterwards the
    observed cost per task is used).
    ``max_optout_rate``: the most expected opt-outs the machine may cause per user and period
    (an intrusion budget; ``None``: none beyond ``optout_cost``). The default, 3 in 10,000
    users per period, is below what the classic RFM rule causes on the default world; the
    touchpoint plan gets what the campaign's tasks leave of it (their opt-out rates are
    measured on the exploration log, then scaled by how many opt-outs past plans' users
    caused against their hold-out shadows per opt-out those rates expected).
    ``touchpoint_channels`` and ``optout_cost`` configure the frequency planner
    (``touchpoint_explore_share``: share of its users on randomised frequencies once its
    curves are fitted); ``insight_clusters`` sizes the per-period insight refit (buyer and prospect
    clusters). ``sessions_per_period``: site visits the real-time session policy serves each
    period (0: none), with an incentive budget of ``session_budget_share`` x the period's budget
    on top of it (paced over the run; the policy learns across periods); its value is measured
    against no intervention on the same visits and reported apart from the comparison, which
    the baselines (who have no on-site policy) share. ``seed``: every random stream of the
    machine derives from it.
    """

    budget: float | None = None
    budget_per_user: float = 0.1
    explore_share: float = 0.02
    explore_periods: int = 2
    holdout_share: float = 0.1
    touchpoint_share: float = 0.1
    touchpoint_channels: tuple[str, ...] = ("ads", "sms", "email")
    touchpoint_explore_share: float = 0.03
    optout_cost: float = 1.0
    max_optout_rate: float | None = 0.0003
    first_period_redemption: float = 0.15
    insight_clusters: tuple[int, int] = field(default=(64, 64))
    sessions_per_period: int = 20_000
    session_budget_share: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget is not None:
            self.budget = cv.check_number(self.budget, "budget", minimum=0.0)
        self.budget_per_user = cv.check_number(self.budget_per_user, "budget_per_user", minimum=0.0)
        for name in ("explore_share", "holdout_share", "touchpoint_share", "touchpoint_explore_share",
                     "session_budget_share",
                     "first_period_redemption"):  # fmt: skip
            setattr(self, name, cv.check_number(getattr(self, name), name, minimum=0.0,
                                                maximum=1.0))  # fmt: skip
        if self.holdout_share >= 1.0:
            raise ValueError("holdout_share: must be below 1 (someone must be planned for)")
        self.explore_periods = cv.check_int(self.explore_periods, "explore_periods", minimum=1)
        self.optout_cost = cv.check_number(self.optout_cost, "optout_cost", minimum=0.0)
        if self.max_optout_rate is not None:
            self.max_optout_rate = cv.check_number(
                self.max_optout_rate, "max_optout_rate", minimum=0.0, maximum=1.0
            )
        self.touchpoint_channels = tuple(str(c) for c in self.touchpoint_channels)
        if not self.touchpoint_channels:
            raise ValueError("touchpoint_channels: must name at least one off-site channel")
        if len(self.insight_clusters) != 2:
            raise ValueError("insight_clusters: must be (buyer clusters, prospect clusters)")
        self.insight_clusters = tuple(
            cv.check_int(k, "insight_clusters", minimum=1) for k in self.insight_clusters
        )
        self.sessions_per_period = cv.check_int(
            self.sessions_per_period, "sessions_per_period", minimum=0, maximum=10**8
        )
        self.seed = cv.check_int(self.seed, "seed", minimum=0)

    def period_budget(self, n_users: int) -> float:
        """The budget of one period for ``n_users`` users."""
        n_users = cv.check_int(n_users, "n_users", minimum=0)
        return self.budget if self.budget is not None else self.budget_per_user * n_users
