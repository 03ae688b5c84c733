# Types of the extension module growthmachine._core (src/python/).
# Each module's bindings have their own section below; keep them in the order of src/python/mod.rs.
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__version__: str

class InfeasibleError(ValueError): ...
class StateError(ValueError): ...
class InternalError(RuntimeError): ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def all_finite(values: npt.NDArray[np.float64]) -> bool: ...
def _debug_panic() -> None: ...
def _debug_long(
    seed: int,
    n_chunks: int,
    chunk_work: int = 200_000,
    progress: Callable[[int, int], object] | None = None,
) -> float: ...

# --- sim ---

# --- insight ---


# --- insight: kmeans ---
# X: C-contiguous (n, d) float32 or float64 (the _f32/_f64 suffix); flat outputs are reshaped
# by growthmachine.insight.kmeans.
def insight_kmeans_fit_f32(
    x: npt.NDArray[np.float32],
    n_clusters: int,
    init: str,
    init_centers: npt.NDArray[np.float64] | None,
    max_iter: int,
    tol: float,
    algorithm: str,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32], float, int]: ...
def insight_kmeans_fit_f64(
    x: npt.NDArray[np.float64],
    n_clusters: int,
    init: str,
    init_centers: npt.NDArray[np.float64] | None,
    max_iter: int,
    tol: float,
    algorithm: str,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], float, int]: ...
def insight_kmeans_predict_f32(
    x: npt.NDArray[np.float32], centers: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.int32], float]: ...
def insight_kmeans_predict_f64(
    x: npt.NDArray[np.float64], centers: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int32], float]: ...
def insight_kmeans_transform_f32(
    x: npt.NDArray[np.float32], centers: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]: ...
def insight_kmeans_transform_f64(
    x: npt.NDArray[np.float64], centers: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def insight_kmeans_init_f32(
    x: npt.NDArray[np.float32],
    n_clusters: int,
    init: str,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> npt.NDArray[np.float32]: ...
def insight_kmeans_init_f64(
    x: npt.NDArray[np.float64],
    n_clusters: int,
    init: str,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> npt.NDArray[np.float64]: ...
def insight_column_moments_f32(
    x: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def insight_column_moments_f64(
    x: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

# --- allocate ---

# --- realtime ---

# --- touchpoint ---
