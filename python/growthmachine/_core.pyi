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

# --- realtime ---

# --- touchpoint ---
