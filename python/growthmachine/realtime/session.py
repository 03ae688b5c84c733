"""Sequential interventions over multi-step visits (browse -> cart -> checkout / exit intent)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _convert as cv
from .._core import RealtimePacer, StateError
from .._state import Versioned
from ._base import restore
from .epsilon_greedy import EpsilonGreedy
from .lints import LinTS
from .linucb import LinUCB

_POLICIES = {"lints": LinTS, "linucb": LinUCB, "epsilon_greedy": EpsilonGreedy}


def _mask(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A bool array of ``shape`` from bools or integers 0/1; anything else (strings, floats,
    other integers) is a ``TypeError`` naming ``name`` (``np.asarray(x, dtype=bool)`` would turn
    any non-empty string into True)."""
    m = np.asarray(x)
    if m.dtype.kind in "iu" and np.isin(m, (0, 1)).all():
        m = m.astype(bool)
    if m.dtype.kind != "b":
        raise TypeError(f"{name}: must hold booleans (True/False or 0/1), got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {m.shape}")
    return m


class SessionPolicy(Versioned):
    """Chooses an intervention at every step of a session, conditioning on the funnel stage and
    crediting each intervention with everything that follows it in the session.

    One linear value model per stage, ``Q_s(x, a) ~ E[G | stage s, context x, action a]``, where
    the target ``G_t = sum_k gamma^k (reward_{t+k} - cost_{t+k})`` is the Monte Carlo return of
    net value from the step to the end of the session (so guidance whose payoff comes at
    checkout, two steps later, is credited). Each stage's model is a contextual bandit
    (``policy="lints"`` by default, also ``"linucb"``, ``"epsilon_greedy"``) updated with
    rank-one updates when sessions end.

    With ``budget``/``horizon``/``costs``, decisions go through dual budget pacing (value minus
    price x cost, price adapted online; see :class:`BudgetPacer`): ``costs`` (n_actions,) are the
    face values used to keep spend under the hard budget, the costs actually paid are charged
    when observed, and ``horizon`` counts decisions (steps). The hard cap reserves the face value
    of every outstanding offer until its cost is revealed, so with large lockstep batches and a
    budget far below the unconstrained spend, spend ends somewhat below the budget (about 80% in
    the tests' toy session world with a budget of 2% of the unconstrained spend); that is the
    price of never exceeding it.

    Lockstep use with a batch of sessions (e.g. ``env.sessions(n)``)::

        sp.begin(n)
        while sb.active.any():
            a = sp.act(sb.context, sb.stage, sb.active)
            reward, cost, stage, done = sb.step(a)
            sp.observe(reward, cost, done)

    Parameters: ``n_actions``, ``n_features``, ``n_stages`` (3: browse, cart, exit intent),
    ``allowed`` (n_stages, n_actions) bool mask (action 0, "none", must be allowed everywhere),
    ``gamma`` (1.0), ``max_steps`` per session (8), ``policy`` and its parameter ``param`` (v,
    alpha or epsilon), ``ridge``, ``seed``; budget: ``costs``, ``budget``, ``horizon``, ``step``.
    """

    _STATE_KIND = "realtime.SessionPolicy"
    _STATE_VERSION = 1

    def __init__(
        self,
        n_actions: int,
        n_features: int,
        *,
        n_stages: int = 3,
        allowed: Any = None,
        gamma: float = 1.0,
        max_steps: int = 8,
        policy: str = "lints",
        param: float | None = None,
        ridge: float = 1.0,
        seed: int = 0,
        costs: Any = None,
        budget: float | None = None,
        horizon: int | None = None,
        step: float = 0.05,
        max_ahead: float = 0.1,
    ):
        self.n_actions = cv.check_int(n_actions, "n_actions", minimum=1)
        self.n_features = cv.check_int(n_features, "n_features", minimum=1)
        self.n_stages = cv.check_int(n_stages, "n_stages", minimum=1)
        self.gamma = cv.check_number(gamma, "gamma", minimum=0.0, maximum=1.0)
        self.max_steps = cv.check_int(max_steps, "max_steps", minimum=1)
        cv.check_choice(policy, "policy", tuple(_POLICIES))
        seed = cv.check_int(seed, "seed", minimum=0)
        if param is not None:  # each policy's own parameter, checked here under this name
            param = cv.check_number(
                param, "param", minimum=0.0, maximum=1.0 if policy == "epsilon_greedy" else None
            )
        if allowed is None:
            allowed = np.ones((self.n_stages, self.n_actions), dtype=bool)
        allowed = _mask(allowed, "allowed", (self.n_stages, self.n_actions))
        if not allowed[:, 0].all():
            raise ValueError("allowed: action 0 (no intervention) must be allowed at every stage")
        self.allowed = allowed
        cls = _POLICIES[policy]
        kw = {} if param is None else {"linucb": "alpha", "lints": "v", "epsilon_greedy": "epsilon"}
        extra = {kw[policy]: param} if kw else {}
        self.models = [
            cls(
                self.n_actions,
                self.n_features,
                ridge=ridge,
                seed=(seed + s) % (cv.U64_MAX + 1),
                **extra,
            )
            for s in range(self.n_stages)
        ]
        self._pacer = None
        self._costs = None
        if budget is not None:
            if costs is None or horizon is None:
                raise ValueError("costs, horizon: required with budget")
            c = cv.as_array(costs, "costs", nonnegative=True, shape=(self.n_actions,))
            if c[0] != 0:
                raise ValueError("costs: action 0 (no intervention) must cost 0")
            self._costs = np.ascontiguousarray(c.reshape(self.n_actions, 1))
            b = cv.check_number(budget, "budget", minimum=0.0)
            h = cv.check_int(horizon, "horizon", minimum=1, maximum=cv.U64_MAX)
            st = cv.check_number(step, "step", minimum=0.0, strict_min=True)
            # max_ahead (a number >= 0, inf = off) is checked where it is read, by the core.
            self._pacer = RealtimePacer(self.n_actions, np.array([b]), h, st, 0, max_ahead)
        self.begin(0)
        self.history_: list[dict[str, float]] = []

    # -- lockstep sessions ---------------------------------------------------------------------
    def begin(self, n: int) -> None:
        """Starts a batch of ``n`` sessions (rows of the following ``act``/``observe`` calls);
        sessions of a previous batch that never finished are credited as ended."""
        if getattr(self, "_n", 0):
            self._finish(np.flatnonzero(self._open & (self._len > 0)))
        n = cv.check_int(n, "n", minimum=0)
        self._n = n
        T, d = self.max_steps, self.n_features
        self._X = cv.zeros((n, T, d), "n", "the contexts of n sessions x max_steps")
        self._S = np.zeros((n, T), dtype=np.int64)
        self._A = np.zeros((n, T), dtype=np.int64)
        self._R = np.zeros((n, T))
        self._C = np.zeros((n, T))
        self._D = np.full((n, T), -1, dtype=np.int64)
        self._len = np.zeros(n, dtype=np.int64)
        self._open = np.ones(n, dtype=bool)
        self._pending = None

    def act(self, context: Any, stage: Any, active: Any = None) -> np.ndarray:
        """Actions (n,) for the sessions' current contexts and stages; 0 for inactive rows.
        Each ``act`` must be followed by the ``observe`` of its results before the next."""
        if self._pending is not None:
            raise ValueError(
                "act: the previous step is not observed yet: call observe(reward, cost, done) "
                "with its results before the next act()"
            )
        X = cv.as_array(context, "context", ndim=2, shape=(self._n, self.n_features))
        st = cv.as_array(stage, "stage", np.int64, shape=(self._n,))
        act = (
            np.ones(self._n, dtype=bool) if active is None else _mask(active, "active", (self._n,))
        )
        rows = np.flatnonzero(act & self._open)
        if rows.size and (st[rows].min() < 0 or st[rows].max() >= self.n_stages):
            raise ValueError(f"stage: active sessions must be in [0, {self.n_stages})")
        if rows.size and np.any(self._len[rows] >= self.max_steps):
            raise ValueError(f"max_steps: a session ran longer than {self.max_steps} steps")
        out = np.zeros(self._n, dtype=np.int64)
        if rows.size == 0:
            self._pending = rows
            return out
        values = np.empty((rows.size, self.n_actions))
        for s in range(self.n_stages):
            m = st[rows] == s
            if m.any():
                values[m] = self.models[s].scores_batch(X[rows[m]])
        # disallowed actions: below every allowed value (and never above "none", which costs 0)
        mask = self.allowed[st[rows]]
        lo = np.where(mask, values, np.inf).min(axis=1, keepdims=True)
        values = np.where(mask, values, lo - 1.0)
        if self._pacer is None:
            chosen = np.argmax(values, axis=1)
        else:
            t0 = self._pacer.n_events
            chosen = self._pacer.decide(np.ascontiguousarray(values), self._costs, rows.size, False)
            self._D[rows, self._len[rows]] = t0 + np.arange(rows.size)
        out[rows] = chosen
        t = self._len[rows]
        self._X[rows, t] = X[rows]
        self._S[rows, t] = st[rows]
        self._A[rows, t] = chosen
        self._pending = rows
        return out

    def observe(self, reward: Any, cost: Any, done: Any) -> None:
        """Results (n,) of the step just taken: ``reward`` (e.g. GMV), ``cost`` (incentive
        paid), ``done`` (session over). Sessions that end are credited and learned from."""
        if self._pending is None:
            raise ValueError("observe: call act() first")
        r = cv.as_array(reward, "reward", shape=(self._n,), allow_empty=True)
        c = cv.as_array(cost, "cost", shape=(self._n,), nonnegative=True, allow_empty=True)
        dn = _mask(done, "done", (self._n,))
        rows = self._pending
        self._pending = None
        if rows.size == 0:
            return
        self._R[rows, self._len[rows]] = r[rows] - c[rows]
        self._C[rows, self._len[rows]] = c[rows]
        self._len[rows] += 1
        ended = rows[dn[rows] | (self._len[rows] >= self.max_steps)]
        self._finish(ended)
        self.history_.append(
            {
                "decisions": float(rows.size),
                "net_value": float(np.sum(r[rows] - c[rows])),
                "reward": float(np.sum(r[rows])),
                "cost": float(np.sum(c[rows])),
                "spend": self.spend_,
                "price": self.price_,
            }
        )

    def _finish(self, ended: np.ndarray) -> None:
        if ended.size == 0:
            return
        self._open[ended] = False
        L = self._len[ended]
        R = self._R[ended]
        G = np.zeros_like(R)
        acc = np.zeros(len(ended))
        for t in range(self.max_steps - 1, -1, -1):
            live = t < L
            acc = np.where(live, R[:, t] + self.gamma * acc, 0.0)
            G[:, t] = acc
        steps = np.arange(self.max_steps)[None, :] < L[:, None]
        if self._pacer is not None:
            # Incentives may be paid steps after they were offered (at checkout): settle a
            # session's decisions when it ends, its paid cost shared by the offers' face values.
            face = np.where(steps, self._costs[self._A[ended], 0], 0.0)
            tot = face.sum(axis=1, keepdims=True)
            w = np.divide(face, tot, out=np.zeros_like(face), where=tot > 0)
            none = tot[:, 0] <= 0
            w[none, np.maximum(L[none] - 1, 0)] = 1.0
            paid = w * self._C[ended].sum(axis=1, keepdims=True)
            ids = self._D[ended][steps]
            ok = ids >= 0
            self._pacer.charge(
                np.ascontiguousarray(paid[steps][ok].reshape(-1, 1)),
                np.ascontiguousarray(ids[ok]),
            )
        Xs = self._X[ended][steps]
        Ss = self._S[ended][steps]
        As = self._A[ended][steps]
        Gs = G[steps]
        for s in range(self.n_stages):
            m = Ss == s
            if m.any():
                self.models[s].update_batch(Xs[m], As[m], Gs[m])

    # -- state -------------------------------------------------------------------------------
    @property
    def price_(self) -> float:
        return float(self._pacer.price[0]) if self._pacer is not None else 0.0

    @property
    def spend_(self) -> float:
        return float(self._pacer.spend[0]) if self._pacer is not None else float("nan")

    def _get_state(self) -> dict[str, Any]:
        st = {k: v for k, v in self.__dict__.items() if k not in ("models", "_pacer")}
        st["models"] = [(type(m), m._state_bytes()) for m in self.models]
        st["pacer"] = None if self._pacer is None else self._pacer._state_bytes()
        return st

    def _set_state(self, state: dict[str, Any]) -> None:
        try:
            state = dict(state)
            models = [restore(c, b) for c, b in state.pop("models")]
            pacer = state.pop("pacer")
            self.__dict__.update(state)
            self.models = models
            self._pacer = None if pacer is None else RealtimePacer._from_state_bytes(pacer)
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, StateError):
                raise
            raise StateError(f"realtime.SessionPolicy state is malformed: {e}") from None
