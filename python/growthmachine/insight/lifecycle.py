"""Lifecycle stages from P(alive), recency and trend, and stage-transition matrices."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core
from .features import _as_of
from .features import features as _features
from .value import BetaGeo

__all__ = [
    "STAGES",
    "LifecycleRules",
    "as_rules",
    "lifecycle",
    "lifecycle_transitions",
    "stage_codes",
    "transition_matrix",
]

#: Stage names in lifecycle order (the categories of :func:`lifecycle`'s result); defined by the
#: core (``src/insight/lifecycle.rs``).
STAGES = tuple(_core.insight_lifecycle_stages())

#: The default thresholds, defined by the core (``lifecycle::Rules::default``).
_DEFAULT_RULES: dict[str, float] = json.loads(_core.insight_lifecycle_default_rules())


@dataclass(frozen=True)
class LifecycleRules:
    """Thresholds of the lifecycle rules, applied in this order (the first match wins):

    1. no purchase up to as_of -> ``prospect``;
    2. P(alive) < ``churned_p_alive`` or days since last purchase > ``churned_days`` -> ``churned``;
    3. P(alive) < ``dormant_p_alive`` or days since last purchase > ``dormant_days`` -> ``dormant``;
    4. first purchase at most ``new_days`` days ago (T <= new_days) -> ``new``;
    5. P(alive) < ``at_risk_p_alive`` or trend <= ``at_risk_trend`` -> ``at-risk``;
    6. trend >= ``growing_trend`` -> ``growing``;
    7. otherwise -> ``mature``.

    P(alive) comes from a BG/NBD model; ``trend`` is the feature of :func:`features` (recent vs
    earlier spend rate, in [-1, 1]). The day thresholds matter for customers without repeat
    purchases, whom BG/NBD always considers alive.
    """

    new_days: float = _DEFAULT_RULES["new_days"]
    churned_p_alive: float = _DEFAULT_RULES["churned_p_alive"]
    churned_days: float = _DEFAULT_RULES["churned_days"]
    dormant_p_alive: float = _DEFAULT_RULES["dormant_p_alive"]
    dormant_days: float = _DEFAULT_RULES["dormant_days"]
    at_risk_p_alive: float = _DEFAULT_RULES["at_risk_p_alive"]
    at_risk_trend: float = _DEFAULT_RULES["at_risk_trend"]
    growing_trend: float = _DEFAULT_RULES["growing_trend"]

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            cv.check_number(v, f"rules.{k}")
        if not (self.churned_p_alive <= self.dormant_p_alive <= self.at_risk_p_alive):
            raise ValueError(
                "rules: need churned_p_alive <= dormant_p_alive <= at_risk_p_alive, got "
                f"{self.churned_p_alive}, {self.dormant_p_alive}, {self.at_risk_p_alive}"
            )

    def as_list(self) -> list[float]:
        return [float(v) for v in asdict(self).values()]

    def to_json(self) -> str:
        """The thresholds by name, as the core reads them."""
        return json.dumps({k: float(v) for k, v in asdict(self).items()})


def as_rules(rules: Any) -> LifecycleRules:
    """``rules`` as :class:`LifecycleRules`: itself, the defaults for None, or a dict of its fields
    (``ValueError`` naming unknown keys, ``TypeError`` for anything else)."""
    if rules is None:
        return LifecycleRules()
    if isinstance(rules, LifecycleRules):
        return rules
    if isinstance(rules, dict):
        unknown = set(rules) - set(LifecycleRules.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"rules: unknown keys {sorted(unknown, key=repr)} (known: "
                f"{', '.join(LifecycleRules.__dataclass_fields__)})"
            )
        return LifecycleRules(**rules)
    raise TypeError(f"rules: must be a LifecycleRules, a dict or None, got {type(rules).__name__}")


def _col(t: Any, c: str) -> np.ndarray:
    return cv.as_array(cv.column(t, "features", c), f"features[{c!r}]", np.float64, finite=False)


def lifecycle(
    features: Any,
    model: BetaGeo | None = None,
    rules: LifecycleRules | dict | None = None,
    *,
    p_alive: Any = None,
) -> pd.Series:
    """The lifecycle stage of each user (an ordered categorical Series indexed by ``user_id``).

    ``features`` is the table of :func:`growthmachine.insight.features`; ``model`` a fitted
    :class:`BetaGeo` (fitted on ``features`` when None) giving P(alive), or pass ``p_alive``
    directly (probabilities in [0, 1]). ``rules``: :class:`LifecycleRules`, a dict of its
    fields, or None for the defaults. Features where every user is a prospect need no model.
    """
    r = as_rules(rules)
    n_tx = _col(features, "n_transactions")
    age = _col(features, "T")
    dsl = _col(features, "days_since_last")
    trend = _col(features, "trend")
    if p_alive is None:
        if model is not None and not isinstance(model, BetaGeo):
            raise TypeError(f"model: must be a fitted BetaGeo, got {type(model).__name__}")
        if model is None and not (n_tx > 0).any():
            # every user is a prospect (rule 1): P(alive) is not used, and there is nobody to
            # fit BG/NBD on
            pa = np.ones(len(n_tx))
        else:
            pa = (model if model is not None else BetaGeo().fit(features)).p_alive(features)
    else:
        pa = cv.as_array(p_alive, "p_alive", np.float64)
        if len(pa) != len(n_tx):
            raise ValueError(
                f"p_alive: has length {len(pa)}, expected {len(n_tx)} (rows of features)"
            )
        out = (pa < 0.0) | (pa > 1.0)
        if out.any():
            bad = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"p_alive: must be probabilities in [0, 1], found {pa[bad]} at position {bad}"
            )
    codes = _core.insight_lifecycle(n_tx, age, dsl, pa, trend, r.to_json())
    ids = cv.column(features, "features", "user_id")
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=list(STAGES), ordered=True),
        index=pd.Index(np.asarray(ids), name="user_id"),
        name="stage",
    )


def stage_codes(s: Any, name: str) -> np.ndarray:
    """Stage names (or a categorical of :data:`STAGES`) as uint8 codes in :data:`STAGES` order;
    ``ValueError`` naming ``name`` for an unknown stage."""
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        cats = list(s.cat.categories)
        if cats == list(STAGES):
            return s.cat.codes.to_numpy().astype(np.uint8)
        s = s.astype(str)
    vals = pd.Series(s).astype(str)
    lut = {k: i for i, k in enumerate(STAGES)}
    bad = ~vals.isin(list(STAGES))
    if bad.any():
        raise ValueError(
            f"{name}: unknown stage {vals[bad].iloc[0]!r} (stages: {', '.join(STAGES)})"
        )
    return vals.map(lut).to_numpy().astype(np.uint8)


def transition_matrix(
    before: pd.Series, after: pd.Series, *, normalize: bool = False
) -> pd.DataFrame:
    """Stage-transition matrix between two lifecycle assignments (Series indexed by user id).

    Rows: stage in ``before``; columns: stage in ``after``. Users missing from ``before`` count
    as prospects there; users missing from ``after`` are dropped. ``normalize=True`` divides each
    row by its total (rows without users stay 0). A user id may appear once in each index
    (``ValueError`` otherwise: a repeated user would be counted twice).
    """
    for name, s in (("before", before), ("after", after)):
        if not isinstance(s, pd.Series):
            raise TypeError(f"{name}: must be a pandas Series indexed by user id (see lifecycle())")
        if not s.index.is_unique:
            dup = s.index[s.index.duplicated()][0]
            raise ValueError(f"{name}: user {dup!r} appears more than once in the index")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize: must be True or False, got {normalize!r}")
    b = before.reindex(after.index)
    b = b.astype(object).where(b.notna(), "prospect")
    k = len(STAGES)
    m = _core.insight_transitions(
        np.ascontiguousarray(stage_codes(b, "before")),
        np.ascontiguousarray(stage_codes(after, "after")),
        k,
    ).reshape(k, k)
    df = pd.DataFrame(m.astype(np.int64), index=list(STAGES), columns=list(STAGES))
    df.index.name, df.columns.name = "from", "to"
    if normalize:
        tot = df.sum(axis=1).replace(0, 1)
        df = df.div(tot, axis=0)
    return df


def lifecycle_transitions(
    transactions: Any,
    start: int,
    end: int,
    *,
    model: BetaGeo | None = None,
    rules: LifecycleRules | dict | None = None,
    users: Any = None,
    normalize: bool = False,
    **columns: Any,
) -> pd.DataFrame:
    """Stage-transition matrix between the dates ``start`` and ``end`` of one transaction log.

    Features are computed at both dates; P(alive) at each date comes from ``model`` if given,
    else from a BG/NBD model fitted at that date. Users who first buy after ``start`` are
    prospects at ``start``. ``columns``: ``user``, ``time``, ``amount``, ``category`` names as
    in :func:`features`.
    """
    start = _as_of(start, "start")
    end = _as_of(end, "end")
    if end <= start:
        raise ValueError(f"end: must be after start, got start={start}, end={end}")
    f1 = _features(transactions, end, users=users, **columns)
    ids = f1["user_id"].to_numpy()
    f0 = _features(transactions, start, users=ids, **columns)
    s0 = lifecycle(f0, model, rules)  # model None: fitted at that date
    s1 = lifecycle(f1, model, rules)
    return transition_matrix(s0, s1, normalize=normalize)
