"""The conflict decision engine: globally optimal allocation of actions to users, with a certificate.

Many campaigns want the same users; budgets and channel capacities are finite. Given every user's
candidate actions (a value each, possibly negative, and resource use), :func:`solve` picks at most
``L`` actions per user, at most one per exclusive group, within every resource's lower and upper
bound, maximising the total value, and proves how close to optimal the plan is::

    import growthmachine as gm
    prob = gm.allocate.Problem.from_frame(
        cands, user="user", action="action", value="uplift",
        usage=["coupon_cost"], resources={"coupon_cost": 50_000, "push": 200_000},
        action_usage=pushes_per_action, per_user_limit=1, groups={"c10": "coupon", "c20": "coupon"},
    )
    sol = gm.allocate.solve(prob)          # dual decomposition in Rust, certified gap
    sol.assignment, sol.objective, sol.dual_bound, sol.gap, sol.prices, sol.usage

Methods: ``"dual"`` (Lagrangian decomposition over the users: a level bundle method on the
resource prices, on a sample of users first when there are 100,000 or more; then Newton steps on
the full problem with a Jacobian estimated from the users near switching; the integer plan by
rounding, repair and fill; the certified LP gap from the aggregated primal or the integer plan
itself: 10M users x 20 candidates x 50 resources in about 6 s on 2 cores), ``"exact"`` (the MIP through good_lp/microlp, small instances;
``"lp"``: the LP relaxation through clarabel), ``"highs"`` (the MIP through HiGHS, if ``highspy``
is installed), ``"auto"`` (exact for tiny problems if it proves optimality within a few seconds, else dual).

Every method honours ``time_limit`` and Ctrl-C (``KeyboardInterrupt`` within about half a
second; ``highs`` runs HiGHS in a child process, killed on Ctrl-C and half a second past the
time limit, since HiGHS checks neither in some phases of large instances). Every
method claims only what it proved: ``exact`` and ``lp`` report the Lagrangian bound at the LP
solver's prices (a bound whatever state the solver stopped in), ``highs`` HiGHS's own dual bound
or none (``dual_bound=inf``, ``gap=inf``); the empty plan is ``optimal`` with gap 0 only when the
bound is 0. When a time limit leaves no plan and the empty plan misses a lower bound,
``ValueError`` names ``time_limit``. Values must keep ``max |value| x candidates <= 1e300``
(``ValueError`` otherwise), so no sum overflows.
"""

import typing

from ._highs import highs_lp
from ._problem import Problem, random_problem
from ._solution import Solution, certificate  # noqa: F401  (shared with the touchpoint planner)
from ._solve import METHODS, solve  # noqa: F401
from ._stage import run_stage

__all__ = ["Problem", "Solution", "solve", "highs_lp", "random_problem", "run_stage"]


def _public(cls: type) -> None:
    """Pickles and help() name the public path, as before the module became a package of files.
    The class's own annotations are resolved first, in the module that defines them: under the
    public module's name, ``typing.get_type_hints`` would look for their names (``pd``) there."""
    hints = typing.get_type_hints(cls)
    own = cls.__dict__.get("__annotations__", {})
    cls.__annotations__ = {k: hints[k] for k in own}
    cls.__module__ = __name__


_public(Problem)
_public(Solution)
