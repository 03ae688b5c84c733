"""KMeans clustering (scikit-learn conventions, Rust core).

``KMeans`` runs exact Lloyd iterations (accelerated by distance bounds) from a k-means||
initialisation; ``MiniBatchKMeans`` updates centers from chunks of rows (``partial_fit``) for data
larger than memory. float32 input is clustered in float32 (never upcast or copied) and float64 in
float64; inertia is always accumulated in float64. Results depend on ``seed`` only, never on the
number of threads. Feature scaling is :class:`~growthmachine.insight.StandardScaler`
(:mod:`.scaler`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _convert as cv
from .. import _progress
from ._estimator import Estimator, as_matrix, core_fn, resolve_dtype
from .scaler import StandardScaler  # noqa: F401  (its former home: old pickles name this path)

__all__ = ["KMeans", "MiniBatchKMeans"]

_INITS = ("k-means||", "k-means++", "random")
_ALGORITHMS = ("auto", "lloyd", "yinyang", "elkan", "minibatch")


def _check_seed(seed: Any) -> int:
    return cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)


class _CenterModel(Estimator):
    """predict / transform / score shared by KMeans and MiniBatchKMeans."""

    cluster_centers_: np.ndarray

    def _x(self, X: Any) -> np.ndarray:
        self._check_fitted("cluster_centers_")
        return self._input(X, self.cluster_centers_.dtype, self.n_features_in_)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest center of every row (int32)."""
        x = self._x(X)
        labels, _ = core_fn("kmeans_predict", x.dtype)(x, self.cluster_centers_)
        return labels

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances of every row to every center, shape (n_samples, n_clusters)."""
        x = self._x(X)
        d = core_fn("kmeans_transform", x.dtype)(x, self.cluster_centers_)
        return d.reshape(x.shape[0], self.cluster_centers_.shape[0])

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of ``X`` against the centers (float64), as scikit-learn."""
        x = self._x(X)
        _, inertia = core_fn("kmeans_predict", x.dtype)(x, self.cluster_centers_)
        return -float(inertia)


#: The most restarts ``KMeans.fit`` runs (each is a full k-means run: more are a mistake that
#: would run for days, so ``ValueError``).
MAX_N_INIT = 10_000


class KMeans(_CenterModel):
    """KMeans clustering: exact Lloyd iterations from a k-means|| initialisation.

    Parameters
    ----------
    n_clusters : number of clusters (1 <= n_clusters <= n_samples).
    init : ``"k-means||"`` (default; parallel, Bailey et al.), ``"k-means++"`` (greedy, as
        scikit-learn), ``"random"`` (distinct rows) or an array of shape (n_clusters, n_features).
    n_init : number of runs with different seeds (``seed``, ``seed + 1``, ...; at most
        :data:`MAX_N_INIT`, each a full run); the run with the
        lowest inertia is kept. Must be 1 with an explicit ``init`` array.
    max_iter : maximum number of Lloyd iterations.
    tol : scikit-learn's tolerance: stop when the sum of squared center shifts is at most
        ``tol * mean(var(X, axis=0))``; 0 runs exactly ``max_iter`` iterations unless labels stop
        changing.
    algorithm : ``"auto"`` (Yinyang distance bounds for n_clusters >= 8, else plain),
        ``"lloyd"`` (every distance every iteration), ``"yinyang"`` (``"elkan"`` is an alias) or
        ``"minibatch"`` (fits a :class:`MiniBatchKMeans` with these parameters).
    seed : random seed (int >= 0); results depend on it only, never on the thread count.
    dtype : ``None`` (float32 input stays float32, anything else float64), ``"float32"`` or
        ``"float64"``.
    progress : show a progress bar (``None``: only in interactive sessions).

    Fitted attributes: ``cluster_centers_`` (n_clusters, n_features) in the data's dtype,
    ``labels_`` (int32), ``inertia_`` (float64 sum of squared distances), ``n_iter_``,
    ``n_features_in_``.
    """

    _STATE_KIND = "growthmachine.insight.KMeans"
    _STATE_VERSION = 1
    _PARAMS = (
        "n_clusters",
        "init",
        "n_init",
        "max_iter",
        "tol",
        "algorithm",
        "seed",
        "dtype",
        "progress",
    )

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means||",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        algorithm: str = "auto",
        seed: int = 0,
        dtype: Any = None,
        progress: bool | None = None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.algorithm = algorithm
        self.seed = seed
        self.dtype = dtype
        self.progress = progress

    def fit(self, X: Any, y: Any = None) -> KMeans:
        """Clusters the rows of ``X`` (n_samples, n_features); returns self."""
        k = cv.check_int(self.n_clusters, "n_clusters", minimum=1)
        n_init = cv.check_int(self.n_init, "n_init", minimum=1, maximum=MAX_N_INIT)
        max_iter = cv.check_int(self.max_iter, "max_iter", minimum=1, maximum=cv.I64_MAX)
        tol = cv.check_number(self.tol, "tol", minimum=0.0)
        seed = _check_seed(self.seed)
        cv.check_choice(self.algorithm, "algorithm", _ALGORITHMS)
        dtype = resolve_dtype(self.dtype, X)
        x = as_matrix(X, "X", dtype)
        n, d = x.shape
        if k > n:
            raise ValueError(f"n_clusters: n_clusters={k} must be <= n_samples={n}")
        if self.algorithm == "minibatch":
            mb = MiniBatchKMeans(
                k,
                init=self.init,
                max_iter=max_iter,
                tol=tol,
                seed=seed,
                dtype=dtype,
                progress=self.progress,
            ).fit(x)
            self._set_fitted(mb.cluster_centers_, mb.labels_, mb.inertia_, mb.n_iter_, d)
            return self
        init_name, init_arr = self._init(k, d)
        if init_arr is not None and n_init != 1:
            raise ValueError("n_init: must be 1 when init is an array of centers")
        best = None
        with _progress.bar(self.progress, "KMeans") as cb:
            for r in range(n_init):
                out = core_fn("kmeans_fit", dtype)(
                    x,
                    k,
                    init_name,
                    init_arr,
                    max_iter,
                    tol,
                    self.algorithm,
                    (seed + r) % (cv.U64_MAX + 1),
                    cb,
                )
                if best is None or out[2] < best[2]:
                    best = out
        centers, labels, inertia, n_iter = best
        self._set_fitted(centers.reshape(k, d), labels, inertia, n_iter, d)
        return self

    def _init(self, k: int, d: int) -> tuple[str, np.ndarray | None]:
        if isinstance(self.init, str):
            cv.check_choice(self.init, "init", _INITS)
            return self.init, None
        arr = cv.as_array(self.init, "init", np.float64, ndim=2, shape=(k, d))
        return "explicit", arr

    def _set_fitted(self, centers, labels, inertia, n_iter, d) -> None:
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        self.n_features_in_ = int(d)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fits and returns ``labels_``."""
        return self.fit(X).labels_

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fits and returns the distances of every row to every center."""
        return self.fit(X).transform(X)


class MiniBatchKMeans(_CenterModel):
    """Mini-batch KMeans (Sculley 2010, scikit-learn's per-center learning rate): centers move
    towards the mean of each batch's members with weight ``batch count / total count``.

    ``partial_fit(X_chunk)`` updates from one chunk (the first call initialises the centers from
    it with k-means||), so data larger than memory can be streamed chunk by chunk; ``fit(X)``
    makes ``max_iter`` passes over shuffled batches of ``batch_size`` rows and stops early when
    the sum of squared center shifts of a pass is at most ``tol * mean feature variance``.
    ``labels_`` and ``inertia_`` are computed on the full ``X`` at the end of ``fit`` (after
    ``partial_fit`` they refer to the last chunk).
    """

    _STATE_KIND = "growthmachine.insight.MiniBatchKMeans"
    _STATE_VERSION = 1
    _PARAMS = (
        "n_clusters",
        "init",
        "batch_size",
        "max_iter",
        "tol",
        "seed",
        "dtype",
        "progress",
    )

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means||",
        batch_size: int = 65_536,
        max_iter: int = 20,
        tol: float = 1e-4,
        seed: int = 0,
        dtype: Any = None,
        progress: bool | None = None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.dtype = dtype
        self.progress = progress

    def _init_centers(self, x: np.ndarray, k: int, seed: int) -> np.ndarray:
        d = x.shape[1]
        if isinstance(self.init, str):
            cv.check_choice(self.init, "init", _INITS)
            c = core_fn("kmeans_init", x.dtype)(x, k, self.init, seed)
            return c.reshape(k, d)
        return cv.as_array(self.init, "init", x.dtype, ndim=2, shape=(k, d)).copy()

    def _update(self, x: np.ndarray) -> float:
        """One mini-batch step on rows ``x``; returns the sum of squared center shifts."""
        c = self.cluster_centers_
        k = c.shape[0]
        labels, _ = core_fn("kmeans_predict", x.dtype)(x, c)
        cnt = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.empty((k, x.shape[1]), dtype=np.float64)
        for j in range(x.shape[1]):
            sums[:, j] = np.bincount(labels, weights=x[:, j], minlength=k)
        hit = cnt > 0
        total = self._counts + cnt
        new = c.astype(np.float64)
        new[hit] = (new[hit] * self._counts[hit, None] + sums[hit]) / total[hit, None]
        shift = float(((new - c) ** 2).sum())
        self._counts = total
        self.cluster_centers_ = new.astype(c.dtype)
        self._last_labels = labels
        return shift

    def partial_fit(self, X: Any, y: Any = None) -> MiniBatchKMeans:
        """Updates the centers from one chunk of rows (initialising them on the first call)."""
        k = cv.check_int(self.n_clusters, "n_clusters", minimum=1)
        seed = _check_seed(self.seed)
        if not hasattr(self, "cluster_centers_"):
            dtype = resolve_dtype(self.dtype, X)
            x = as_matrix(X, "X", dtype)
            if k > x.shape[0]:
                raise ValueError(
                    f"n_clusters: n_clusters={k} must be <= the {x.shape[0]} rows of the first chunk"
                )
            self.cluster_centers_ = self._init_centers(x, k, seed)
            self.n_features_in_ = x.shape[1]
            self._counts = np.zeros(k, dtype=np.float64)
            self.n_steps_ = 0
        else:
            x = self._x(X)
        self._update(x)
        self.n_steps_ += 1
        self.labels_ = self._last_labels
        self.inertia_ = -self.score(x)
        return self

    def fit(self, X: Any, y: Any = None) -> MiniBatchKMeans:
        k = cv.check_int(self.n_clusters, "n_clusters", minimum=1)
        bs = cv.check_int(self.batch_size, "batch_size", minimum=1, maximum=cv.I64_MAX)
        max_iter = cv.check_int(self.max_iter, "max_iter", minimum=1, maximum=cv.I64_MAX)
        tol = cv.check_number(self.tol, "tol", minimum=0.0)
        seed = _check_seed(self.seed)
        dtype = resolve_dtype(self.dtype, X)
        x = as_matrix(X, "X", dtype)
        n, d = x.shape
        if k > n:
            raise ValueError(f"n_clusters: n_clusters={k} must be <= n_samples={n}")
        for attr in ("cluster_centers_", "labels_", "inertia_"):
            self.__dict__.pop(attr, None)
        # k-means|| on a seeded random sample of rows (all of X when small).
        init_size = max(3 * bs, 20 * k, 100_000)
        init_rows = x
        if n > init_size:
            rng = np.random.default_rng(seed)
            init_rows = x[np.sort(rng.choice(n, size=init_size, replace=False))]
        self.cluster_centers_ = self._init_centers(init_rows, k, seed)
        self.n_features_in_ = d
        self._counts = np.zeros(k, dtype=np.float64)
        self.n_steps_ = 0
        abs_tol = tol * float(core_fn("column_moments", dtype)(x)[1].mean()) if tol > 0 else 0.0
        rng = np.random.default_rng(seed)
        n_iter = 0
        with _progress.bar(self.progress, "MiniBatchKMeans", unit="pass") as cb:
            for _ in range(max_iter):
                order = rng.permutation(n) if n > bs else None
                shift = 0.0
                for s in range(0, n, bs):
                    rows = x[np.sort(order[s : s + bs])] if order is not None else x
                    shift += self._update(rows)
                    self.n_steps_ += 1
                n_iter += 1
                if cb is not None:
                    cb(n_iter, max_iter)
                if shift <= abs_tol:
                    break
        self.n_iter_ = n_iter
        labels, inertia = core_fn("kmeans_predict", dtype)(x, self.cluster_centers_)
        self.labels_ = labels
        self.inertia_ = float(inertia)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def _get_state(self) -> dict[str, Any]:
        s = dict(self.__dict__)
        s.pop("_last_labels", None)
        return s
