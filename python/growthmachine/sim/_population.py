"""``Population``: users, their order history and the hidden truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._core import StateError
from .._state import Versioned
from ._channels import CHANNELS
from ._config import WorldConfig

__all__ = ["MAX_DAYS", "Population"]

#: The longest history :meth:`Population.generate` simulates (days).
MAX_DAYS = 100_000

#: The columns of each table by (table column, core column); the affinities (one per channel) and
#: the derived ``user_id`` and ``spend_shape`` apart. Read both ways: views of the core's columns
#: become the tables, and tables (a pickle, the user's frames) go back to the core by name.
_USERS = [
    ("signup_day", "signup_day"),
    ("acquisition_channel", "acquisition_channel"),
    ("city_tier", "city_tier"),
    ("age_band", "age_band"),
    ("device", "device"),
    ("has_app", "has_app"),
    ("push_opt_in", "push_opt_in"),
    ("email_opt_in", "email_opt_in"),
    ("sms_opt_in", "sms_opt_in"),
]
_TRANSACTIONS = [
    ("user_id", "tx_user_id"),
    ("day", "tx_day"),
    ("amount", "tx_amount"),
    ("category", "tx_category"),
]
_TRUTH_HEAD = [
    ("archetype", "archetype"),
    ("is_prospect", "is_prospect"),
    ("sleeping_dog", "sleeping_dog"),
    ("purchase_rate", "purchase_rate"),
    ("dropout_p", "dropout_p"),
]
_TRUTH_MID = [
    ("spend_rate", "spend_rate"),
    ("mean_spend", "mean_spend"),
    ("price_sensitivity", "price_sensitivity"),
    ("responsiveness", "responsiveness"),
]
_TRUTH_TAIL = [
    ("alive_at_end", "alive_at_end"),
    ("death_day", "death_day"),
    ("first_order_day", "first_order_day"),
    ("last_order_day", "last_order_day"),
    ("orders_before_window", "orders_before_window"),
    ("n_orders", "n_orders"),
    ("gmv", "gmv"),
]
#: Truth columns shown as int32 (the core counts in uint32).
_INT32 = ("orders_before_window", "n_orders")


def _affinities() -> list[tuple[str, str]]:
    return [(f"affinity_{c}", f"affinity_{c}") for c in CHANNELS]


def check_size(n_users: int) -> None:
    """``ValueError`` if ``n_users`` users cannot exist, ``MemoryError`` if their columns do not
    fit in this machine's memory: what :meth:`Population.generate` checks before any work."""
    n_users = cv.check_int(n_users, "n_users", minimum=1, maximum=cv.I64_MAX)
    _core.sim_check_size(n_users)


def _cat(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int16, copy=False), categories=list(names))


def _names(config: WorldConfig) -> dict[str, list[str]]:
    """The names behind each coded column."""
    o = config.observables
    return {
        "acquisition_channel": list(o.acquisition_channels),
        "city_tier": list(o.city_tiers),
        "age_band": list(o.age_bands),
        "device": list(o.devices),
        "tx_category": list(config.categories),
        "archetype": [a.name for a in config.archetypes],
    }


def _tables(c: dict[str, np.ndarray], config: WorldConfig) -> dict[str, pd.DataFrame]:
    """The users, transactions and truth tables over the core's columns ``c`` (views; codes
    become Categoricals of the configuration's names)."""
    names = _names(config)
    n = len(c["signup_day"])

    def table(layout: list[tuple[str, str]], head: dict[str, Any]) -> dict[str, Any]:
        out = dict(head)
        for col, key in layout:
            v = c[key]
            if key in names:
                v = _cat(v, names[key])
            elif col in _INT32:
                v = v.astype(np.int32)
            out[col] = v
        return out

    uid = np.arange(n, dtype=np.int64)
    users = table(_USERS, {"user_id": uid})
    truth = table(_TRUTH_HEAD, {"user_id": uid.copy()})
    truth["spend_shape"] = np.full(n, config.spend.p)
    truth.update(table(_TRUTH_MID + _affinities() + _TRUTH_TAIL, {}))
    return {
        "users": pd.DataFrame(users, copy=False),
        "transactions": pd.DataFrame(table(_TRANSACTIONS, {}), copy=False),
        "truth": pd.DataFrame(truth, copy=False),
    }


#: The core's dtype of each column that is neither float64 nor bool nor a code (uint8).
_DTYPES = {
    "signup_day": np.int32,
    "tx_user_id": np.int64,
    "tx_day": np.int32,
    "orders_before_window": np.uint32,
    "n_orders": np.uint32,
    "price_sensitivity": np.float32,
    "responsiveness": np.float32,
}


def _decode(v: pd.Series, name: str, key: str, names: list[str] | None) -> np.ndarray:
    """A table column as the core's column ``key``: a coded column (``names``) from a Categorical
    of those names or from integer codes, integers checked to fit the core's type (the core then
    checks codes against the configuration, and the parameters)."""
    if names is not None:
        dtype: Any = np.uint8
        if not isinstance(v.dtype, pd.CategoricalDtype) and v.dtype.kind not in "biuf":
            v = pd.Series(pd.Categorical(v.to_numpy(dtype=object)))  # labels: decoded by name
        if isinstance(v.dtype, pd.CategoricalDtype):
            a = v.cat.codes.to_numpy().astype(np.int64)
            cats = list(v.cat.categories)
            if cats != names:
                remap = pd.Index(names).get_indexer(pd.Index(cats, dtype=object))
                a = np.where(a >= 0, remap[np.maximum(a, 0)], -1)
            if a.size and a.min() < 0:
                bad = int(np.flatnonzero(a < 0)[0])
                raise ValueError(
                    f"{name}: row {bad}: {v.iloc[bad]!r} is not one of {', '.join(map(repr, names))}"
                )
        else:
            a = v.to_numpy()
    else:
        a = v.to_numpy()
        if a.dtype == bool:
            return np.ascontiguousarray(a)
        dtype = _DTYPES.get(key, np.float32 if key.startswith("affinity_") else np.float64)
    if np.dtype(dtype).kind in "iu":
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name}: must hold integers, got {a.dtype}")
        info = np.iinfo(dtype)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise ValueError(f"{name}: values out of range for {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


class Population(Versioned):
    """A synthetic population and its history, generated by :meth:`generate`.

    The population's static truth is held once, in Rust: :class:`Environment` is built from it
    directly, and the tables below are read-only views of it (no copy; copy a table to edit it:
    editing a copy never changes the world).

    Attributes
    ----------
    users : DataFrame
        One row per user, sorted by ``user_id`` (0..n-1): ``user_id`` int64, ``signup_day`` int32
        (day index; negative = signed up before the window ``[0, days)``),
        ``acquisition_channel``, ``city_tier``, ``age_band``, ``device`` (Categorical),
        ``has_app``, ``push_opt_in``, ``email_opt_in``, ``sms_opt_in`` (bool: channel rules).
    transactions : DataFrame
        Orders in the window, sorted by (user_id, day): ``user_id`` int64, ``day`` int32,
        ``amount`` float64 > 0, ``category`` (Categorical).
    truth : DataFrame
        Hidden per-user parameters, **for scoring only** (the machine never reads it):
        ``archetype`` (Categorical), ``is_prospect``, ``sleeping_dog``, ``purchase_rate`` (per
        day), ``dropout_p``, ``spend_shape`` (Gamma-Gamma p), ``spend_rate`` (nu), ``mean_spend``
        (p / nu), ``price_sensitivity``, ``responsiveness``, ``affinity_<channel>``,
        ``alive_at_end`` (an active customer at the end of the window), ``death_day`` (NaN if
        alive or never a customer), ``first_order_day`` (NaN for prospects),
        ``last_order_day`` (NaN if none, may be < 0), ``orders_before_window``, ``n_orders`` and
        ``gmv`` in the window.
    n_users, days, seed, config

    ``Population(users, transactions, truth, days=, seed=, config=)`` rebuilds a population from
    these tables (what unpickling does): their columns are checked in Rust (lengths, codes,
    finite parameters; ``ValueError`` naming the column and row).
    """

    _STATE_KIND = "growthmachine.sim.Population"
    _STATE_VERSION = 1

    def __init__(
        self,
        users: pd.DataFrame,
        transactions: pd.DataFrame,
        truth: pd.DataFrame,
        *,
        days: int,
        seed: int,
        config: WorldConfig,
    ):
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config: must be a WorldConfig, got {type(config).__name__}")
        days = cv.check_int(days, "days", minimum=1, maximum=MAX_DAYS)
        seed = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        cols: dict[str, np.ndarray] = {}
        names = _names(config)
        rows: dict[str, int] = {}
        for frame, table, layout in (
            ("users", users, _USERS),
            ("transactions", transactions, _TRANSACTIONS),
            ("truth", truth, _TRUTH_HEAD + _TRUTH_MID + _affinities() + _TRUTH_TAIL),
        ):
            table = cv.as_pandas(table, frame)
            rows[frame] = len(table)
            for col, key in layout:
                if col not in table.columns:
                    raise ValueError(f"{frame}: needs a {col!r} column")
                cols[key] = _decode(table[col], f"{frame}[{col!r}]", key, names.get(key))
        if rows["truth"] != rows["users"]:
            raise ValueError(
                f"truth: has {rows['truth']} rows, users has {rows['users']} (one row per user)"
            )
        core = _core.SimPopulation.from_columns(config._json_compact(), days, seed, cols)
        self._attach(core, config)

    def _attach(self, core: Any, config: WorldConfig) -> None:
        self._core = core
        self.config = config
        self.days = int(core.days)
        self.seed = int(core.seed)
        self._tables: dict[str, pd.DataFrame] | None = None

    # -- pickling: the three tables (format 1, as ever), rebuilt into the core by __init__ -------
    def _get_state(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "transactions": self.transactions,
            "truth": self.truth,
            "days": self.days,
            "seed": self.seed,
            "config": self.config,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        keys = ("users", "transactions", "truth", "days", "seed", "config")
        missing = [k for k in keys if k not in state]
        if missing:
            raise StateError(f"{self._STATE_KIND} state: missing {', '.join(missing)}")
        Population.__init__(self, *(state[k] for k in keys[:3]), **{k: state[k] for k in keys[3:]})

    # -- the tables: views of the core's columns ----------------------------------------------
    @property
    def users(self) -> pd.DataFrame:
        return self._views()["users"]

    @property
    def transactions(self) -> pd.DataFrame:
        return self._views()["transactions"]

    @property
    def truth(self) -> pd.DataFrame:
        return self._views()["truth"]

    def _views(self) -> dict[str, pd.DataFrame]:
        if self._tables is None:
            self._tables = _tables(self._core.columns(), self.config)
        return self._tables

    @property
    def n_users(self) -> int:
        return int(self._core.n_users)

    def __repr__(self) -> str:
        return (
            f"Population(n_users={self.n_users:,}, days={self.days}, seed={self.seed}, "
            f"transactions={len(self.transactions):,})"
        )

    @classmethod
    def generate(
        cls,
        n_users: int,
        days: int = 365,
        seed: int = 0,
        config: WorldConfig | None = None,
        progress: bool | None = None,
    ) -> Population:
        """Generates ``n_users`` users and ``days`` days of orders.

        User ``i`` depends only on ``(seed, i, config)``: a smaller population is a prefix of a
        larger one, and the result never depends on the thread count. ``MemoryError`` (before
        any work) if ``n_users`` users do not fit in this machine's memory.
        """
        # int64 user ids; the core checks that the columns fit in memory (MemoryError if not).
        n_users = cv.check_int(n_users, "n_users", minimum=1, maximum=cv.I64_MAX)
        days = cv.check_int(days, "days", minimum=1, maximum=MAX_DAYS)
        seed = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        if config is None:
            config = WorldConfig()
        elif not isinstance(config, WorldConfig):
            raise TypeError(f"config: must be a WorldConfig or None, got {type(config).__name__}")
        config.validate()
        with _progress.bar(progress, "generating users", unit="user") as cb:
            core = _core.sim_generate(config._json_compact(), n_users, days, seed, cb)
        pop = cls.__new__(cls)
        pop._attach(core, config)
        return pop

    # -- summaries ---------------------------------------------------------------------------
    def kpis(self) -> dict[str, float]:
        """Headline numbers of the history (observable ones, plus the prospect share)."""
        tx = self.transactions
        n = self.n_users
        buyers = tx["user_id"].nunique()
        return {
            "users": n,
            "days": self.days,
            "transactions": len(tx),
            "gmv": float(tx["amount"].sum()),
            "buyers": int(buyers),
            "buyer_share": buyers / n,
            "orders_per_buyer": len(tx) / max(buyers, 1),
            "average_order_value": float(tx["amount"].mean()) if len(tx) else 0.0,
            "prospect_share_true": float(self.truth["is_prospect"].mean()),
            "alive_share_true": float(self.truth["alive_at_end"].mean()),
        }
