"""User insight: features, value models, lifecycle, clustering and user cells.

- :func:`features`: one row per user from a transaction log (Rust, one parallel pass);
- :class:`BetaGeo`, :class:`GammaGamma`, :func:`clv`: value models fitted by maximum likelihood;
- :func:`lifecycle`, :class:`LifecycleRules`, :func:`transition_matrix`,
  :func:`lifecycle_transitions`: lifecycle stages and stage-transition matrices;
- :class:`Cells`, :func:`value_tiers`: fine-grained, labelled user cells with profiles;
- :class:`UserInsight`: all of it in one ``fit``; :func:`run_stage` for ``growthmachine run``;
- :class:`KMeans`, :class:`MiniBatchKMeans`, :class:`StandardScaler`: clustering.
"""

from __future__ import annotations

from ._stage import run_stage
from .cells import TIER_NAMES, Cells, value_tiers
from .features import FEATURE_COLUMNS, features
from .kmeans import KMeans, MiniBatchKMeans
from .lifecycle import (
    STAGES,
    LifecycleRules,
    lifecycle,
    lifecycle_transitions,
    transition_matrix,
)
from .scaler import StandardScaler
from .user_insight import CLUSTER_FEATURES, UserInsight
from .value import BetaGeo, GammaGamma, clv

__all__ = [
    "CLUSTER_FEATURES",
    "TIER_NAMES",
    "Cells",
    "UserInsight",
    "run_stage",
    "value_tiers",
    "FEATURE_COLUMNS",
    "STAGES",
    "BetaGeo",
    "GammaGamma",
    "KMeans",
    "LifecycleRules",
    "MiniBatchKMeans",
    "StandardScaler",
    "clv",
    "features",
    "lifecycle",
    "lifecycle_transitions",
    "transition_matrix",
]
