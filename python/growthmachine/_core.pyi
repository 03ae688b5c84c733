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

# --- allocate ---
def allocate_run(
    indptr: npt.NDArray[np.int64],
    action: npt.NDArray[np.uint32],
    value: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    usage: list[npt.NDArray[np.float32]] | list[npt.NDArray[np.float64]],
    usage_resource: list[int],
    action_usage: npt.NDArray[np.float64],
    n_actions: int,
    groups: npt.NDArray[np.int32],
    limit: int,
    limit_per_user: npt.NDArray[np.uint32] | None,
    lower: list[float],
    upper: list[float],
    names: list[str],
    method: str,
    tol: float = 1e-4,
    max_iter: int = 500,
    time_limit: float | None = None,
    warm_start: list[float] | None = None,
    sample: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, object] | None: ...
def allocate_random_instance(
    n_users: int,
    per_user: int = 20,
    n_actions: int = 60,
    n_pair: int = 2,
    n_action_res: int = 4,
    n_groups: int = 0,
    limit: int = 1,
    tight_lo: float = 0.3,
    tight_hi: float = 0.9,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, object]: ...

# --- realtime ---

# --- touchpoint ---
