"""Real-time strategy engine: online learning, budget pacing, sequential interventions and
offline policy evaluation.

Policies (Rust cores, one uniform API)::

    pol = gm.realtime.LinUCB(n_actions=6, n_features=32, alpha=1.0)
    a = pol.choose(x)                        # one decision (microseconds)
    pol.update(x, a, reward)
    A = pol.choose_batch(X)                  # many decisions, parallel
    P = pol.probabilities(X)                 # logging propensities
    pol.update_batch(X, A, rewards)          # = updating one by one, parallel over actions

:class:`LinUCB`, :class:`LinTS`, :class:`LogisticTS`, :class:`EpsilonGreedy`;
:class:`BudgetPacer` (value minus price x cost, dual pacing to a budget);
:class:`SessionPolicy` (multi-step visits, credit over the session);
:mod:`growthmachine.realtime.ope` (IPS, SNIPS, DM, DR, switch-DR with confidence intervals);
:mod:`growthmachine.realtime.world` (policies played on a stream of multi-step sessions, e.g.
``gm.sim``'s ``env.sessions``: the comparison behind the benchmark, the notebook and the report).
"""

from __future__ import annotations

from . import ope, world
from ._stage import run_stage
from .epsilon_greedy import EpsilonGreedy
from .lints import LinTS
from .linucb import LinUCB
from .logistic_ts import LogisticTS
from .pacing import BudgetPacer
from .session import SessionPolicy

__all__ = [
    "BudgetPacer",
    "EpsilonGreedy",
    "LinTS",
    "LinUCB",
    "LogisticTS",
    "SessionPolicy",
    "ope",
    "run_stage",
    "world",
]
