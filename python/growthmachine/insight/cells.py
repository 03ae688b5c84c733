"""User cells: lifecycle stage x cluster x value tier, small cells merged into their nearest
sibling, with stable ids, readable labels and profiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core
from .._core import StateError
from .._state import Versioned
from .lifecycle import STAGES, stage_codes

__all__ = ["Cells", "value_tiers", "TIER_NAMES"]

#: Default names of 5 value tiers, lowest first.
TIER_NAMES = ("low value", "lower-mid value", "mid value", "high value", "top value")


def value_tiers(values: Any, n_tiers: int = 5) -> np.ndarray:
    """Quantile tiers 0..n_tiers-1 of ``values`` (e.g. CLV); equal values share a tier."""
    v = cv.as_array(values, "values", np.float64)
    n_tiers = cv.check_int(n_tiers, "n_tiers", minimum=1, maximum=255)
    if n_tiers == 1:
        return np.zeros(len(v), dtype=np.uint8)
    thr = np.quantile(v, np.arange(1, n_tiers) / n_tiers)
    return np.searchsorted(thr, v, side="left").astype(np.uint8)


def _tier_name(names: tuple[str, ...], lo: int, hi: int) -> str:
    def one(i: int) -> str:
        return names[i] if i < len(names) else f"tier {i}"

    return one(lo) if lo == hi else f"{one(lo)} to {one(hi)}"


#: Cluster codes are stored as uint32 by the core.
_MAX_CLUSTERS = 2**32 - 1


class Cells(Versioned):
    """Fine-grained user cells. Build with :meth:`Cells.build`.

    Fitted attributes: ``labels_`` (cell id of each user, in input order), ``cells_`` (one row per
    cell: ``cell_id``, ``key`` (stable text id), ``label`` ("at-risk / bargain hunters / high
    value"), ``stage``, ``cluster``, ``tier``, ``size``), ``n_cells_``, ``index_`` (user ids when
    ``lifecycle`` was a Series).
    """

    _STATE_KIND = "insight.Cells"
    _STATE_VERSION = 1

    def __init__(self, min_size: int = 50):
        self.min_size = cv.check_int(min_size, "min_size", minimum=1, maximum=cv.I64_MAX)

    @classmethod
    def build(
        cls,
        lifecycle: Any,
        clusters: Any,
        value_tier: Any,
        min_size: int = 50,
        *,
        cluster_names: list[str] | None = None,
        cluster_centers: Any = None,
        tier_names: tuple[str, ...] | list[str] = TIER_NAMES,
    ) -> Cells:
        """The cross product lifecycle x cluster x value tier, with cells smaller than
        ``min_size`` merged into their nearest sibling (see ``src/insight/cells.rs``): clusters of
        a stage merge with the nearest cluster (centre distance, from ``cluster_centers``), then a
        stage too small overall merges with the nearest stage, then value tiers merge with an
        adjacent tier. Every cell ends with at least ``min_size`` users (unless the whole
        population is smaller). Ids are numbered by (stage, cluster, tier), so the same input
        always gives the same ids.
        """
        self = cls(min_size)
        stage = np.ascontiguousarray(stage_codes(lifecycle, "lifecycle"))
        cl = cv.as_array(clusters, "clusters", np.int64)
        if cl.min() < 0:
            raise ValueError(f"clusters: must be >= 0, found {cl.min()}")
        tier = cv.as_array(value_tier, "value_tier", np.int64)
        if tier.min() < 0 or tier.max() > 255:
            raise ValueError(
                f"value_tier: must be in 0 to 255, got {int(tier.min() if tier.min() < 0 else tier.max())}"
            )
        cv.check_same_length({"lifecycle": stage, "clusters": cl, "value_tier": tier})
        if cl.size and cl.max() >= _MAX_CLUSTERS:
            raise ValueError(
                f"clusters: must be < {_MAX_CLUSTERS} (cluster codes 0..n_clusters - 1), "
                f"found {cl.max()}"
            )
        k = int(cl.max()) + 1
        if cluster_names is not None:
            if len(cluster_names) < k:
                raise ValueError(
                    f"cluster_names: has {len(cluster_names)} names, clusters go up to {k - 1}"
                )
            k = len(cluster_names)
        dist = None
        if cluster_centers is not None:
            c = cv.as_array(cluster_centers, "cluster_centers", np.float64, ndim=2)
            if c.shape[0] < k:
                raise ValueError(f"cluster_centers: has {c.shape[0]} rows, need {k}")
            c = c[:k]
            d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
            dist = np.ascontiguousarray(np.sqrt(d2).reshape(-1))
        labels, table = _core.insight_cells_build(
            stage,
            np.ascontiguousarray(cl, dtype=np.uint32),
            np.ascontiguousarray(tier, dtype=np.uint8),
            k,
            dist,
            self.min_size,
        )

        def name_of(c: int) -> str:  # only the clusters in use: codes may be sparse
            return str(cluster_names[c]) if cluster_names is not None else f"cluster {c}"

        tier_names = tuple(tier_names)
        rows = []
        for cid, (stages, cls_, lo, hi, size) in enumerate(table):
            st = "+".join(STAGES[s] for s in stages)
            cn = sorted({name_of(c) for c in cls_})
            cname = " + ".join(cn) if len(cn) <= 2 else f"{cn[0]} + {len(cn) - 1} more"
            rows.append(
                {
                    "cell_id": cid,
                    "key": f"{st}|c{'+'.join(str(c) for c in cls_)}|v{lo}-{hi}",
                    "label": f"{st} / {cname} / {_tier_name(tier_names, lo, hi)}",
                    "stage": st,
                    "cluster": "+".join(str(c) for c in cls_),
                    "tier": f"{lo}" if lo == hi else f"{lo}-{hi}",
                    "size": int(size),
                }
            )
        self.labels_ = labels
        self.cells_ = pd.DataFrame(rows)
        self.n_cells_ = len(rows)
        self.index_ = np.asarray(lifecycle.index) if isinstance(lifecycle, pd.Series) else None
        self._stage_codes = stage
        return self

    def _check(self) -> None:
        if not hasattr(self, "labels_"):
            raise StateError("Cells is not built yet: use Cells.build(...)")

    def profile(self, features: Any = None, **extra: Any) -> pd.DataFrame:
        """One row per cell: ``cell_id``, ``label``, ``size``, ``share``, the mean of every
        numeric column of ``features`` (rows in the order the cells were built from) and of each
        ``extra`` array (e.g. ``clv=..., p_alive=...``), and the stage mix (``stage_<name>``
        shares)."""
        self._check()
        n = len(self.labels_)
        codes = np.ascontiguousarray(self.labels_, dtype=np.uint32)
        k = self.n_cells_
        size = self.cells_["size"].to_numpy().astype(float)
        out: dict[str, Any] = {
            "cell_id": self.cells_["cell_id"].to_numpy(),
            "label": self.cells_["label"].to_numpy(),
            "size": self.cells_["size"].to_numpy(),
            "share": size / n,
        }
        cols: dict[str, np.ndarray] = {}
        if features is not None:
            if cv.n_rows(features, "features") != n:
                raise ValueError(
                    f"features: has {cv.n_rows(features, 'features')} rows, expected {n} (users)"
                )
            for c in cv.columns(features, "features"):
                if c == "user_id":
                    continue
                raw = cv.column(features, "features", c)
                if raw.dtype.kind in "biuf":
                    cols[c] = np.asarray(raw, dtype=np.float64)
        for name, v in extra.items():
            a = cv.as_array(v, name, np.float64, finite=False)
            if len(a) != n:
                raise ValueError(f"{name}: has length {len(a)}, expected {n} (users)")
            cols[name] = a
        for name, a in cols.items():
            ok = np.isfinite(a)
            s = _core.insight_group_sums(codes, np.ascontiguousarray(np.where(ok, a, 0.0)), k)
            cnt = _core.insight_group_sums(codes, np.ascontiguousarray(ok, dtype=np.float64), k)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"mean_{name}"] = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
        for i, st in enumerate(STAGES):
            ind = (self._stage_codes == i).astype(np.float64)
            if ind.any():
                out[f"stage_{st}"] = _core.insight_group_sums(codes, ind, k) / size
        return pd.DataFrame(out)
