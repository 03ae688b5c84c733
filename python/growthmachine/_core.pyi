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

def sim_default_config() -> str: ...
def sim_validate_config(config_json: str) -> None: ...
def sim_generate(
    config_json: str,
    n_users: int,
    days: int,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, np.ndarray]: ...

class SimEnv:
    def __init__(
        self,
        config_json: str,
        pop_seed: int,
        hist_days: int,
        seed: int,
        params: npt.NDArray[np.float32],
        codes: npt.NDArray[np.uint8],
        alive: npt.NDArray[np.bool_],
        customer: npt.NDArray[np.bool_],
        last_order: npt.NDArray[np.float64],
        n_orders: npt.NDArray[np.uint32],
        gmv: npt.NDArray[np.float64],
    ) -> None: ...
    @property
    def day(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def n_users(self) -> int: ...
    @property
    def config_json(self) -> str: ...
    def state(self) -> dict[str, np.ndarray]: ...
    def optout(self) -> npt.NDArray[np.uint8]: ...
    def set_state(
        self,
        day: int,
        epoch: int,
        alive: npt.NDArray[np.bool_],
        customer: npt.NDArray[np.bool_],
        optout: npt.NDArray[np.uint8],
        fatigue: npt.NDArray[np.float32],
        last_touch: npt.NDArray[np.int32],
        n_orders: npt.NDArray[np.uint32],
        last_order: npt.NDArray[np.float64],
        gmv: npt.NDArray[np.float64],
    ) -> None: ...
    def apply(
        self,
        user: npt.NDArray[np.int64],
        benefit: npt.NDArray[np.uint8],
        channel: npt.NDArray[np.uint8],
        content: npt.NDArray[np.uint8],
        day: npt.NDArray[np.int64],
        start_day: int,
        days: int,
        progress: Callable[[int, int], object] | None = None,
    ) -> dict[str, np.ndarray]: ...
    def true_uplift(
        self,
        user: npt.NDArray[np.int64],
        benefit: npt.NDArray[np.uint8],
        channel: npt.NDArray[np.uint8],
        content: npt.NDArray[np.uint8],
        start_day: int,
        days: int,
    ) -> dict[str, np.ndarray]: ...
    def sessions(self, n: int, seed: int) -> SimSessions: ...

class SimSessions:
    @property
    def n(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def action_names(self) -> list[str]: ...
    @property
    def steps(self) -> int: ...
    @property
    def user_id(self) -> npt.NDArray[np.int64]: ...
    @property
    def stage(self) -> npt.NDArray[np.int8]: ...
    @property
    def held(self) -> npt.NDArray[np.uint8]: ...
    @property
    def context(self) -> npt.NDArray[np.float64]: ...
    def step(
        self, actions: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def expected_value(self, actions: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(config_json: str, data: bytes) -> SimSessions: ...

# --- insight ---
_F64 = npt.NDArray[np.float64]
_Progress = Callable[[int, int], object] | None

def insight_features(
    user: npt.NDArray[np.int64],
    day: npt.NDArray[np.int32],
    amount: _F64,
    as_of: int,
    category: npt.NDArray[np.int32] | None = None,
    users: npt.NDArray[np.int64] | None = None,
    signup: npt.NDArray[np.int32] | None = None,
    trend_window: int = 90,
    progress: _Progress = None,
) -> tuple[
    npt.NDArray[np.int64],
    _F64,
    list[str],
    npt.NDArray[np.uint8],
    npt.NDArray[np.uint8],
    npt.NDArray[np.uint8],
]: ...
def insight_bgnbd_fit(
    frequency: _F64,
    recency: _F64,
    T: _F64,
    weights: _F64 | None = None,
    penalizer: float = 0.0,
    max_iter: int = 200,
    progress: _Progress = None,
) -> dict[str, object]: ...
def insight_bgnbd_loglik(
    params: list[float], frequency: _F64, recency: _F64, T: _F64, weights: _F64 | None = None
) -> float: ...
def insight_bgnbd_predict(
    params: list[float],
    kind: str,
    t: float,
    frequency: _F64,
    recency: _F64,
    T: _F64,
    progress: _Progress = None,
) -> _F64: ...
def insight_bgnbd_expected_new(params: list[float], t: _F64) -> _F64: ...
def insight_bgnbd_simulate(params: list[float], T: _F64, seed: int) -> tuple[_F64, _F64]: ...
def insight_gammagamma_fit(
    frequency: _F64,
    monetary: _F64,
    weights: _F64 | None = None,
    penalizer: float = 0.0,
    max_iter: int = 200,
    progress: _Progress = None,
) -> dict[str, object]: ...
def insight_gammagamma_loglik(
    params: list[float], frequency: _F64, monetary: _F64, weights: _F64 | None = None
) -> float: ...
def insight_gammagamma_expected_spend(
    params: list[float], frequency: _F64, monetary: _F64
) -> _F64: ...
def insight_clv(
    params: list[float],
    frequency: _F64,
    recency: _F64,
    T: _F64,
    spend: _F64,
    horizon: int,
    period: float,
    discount_rate: float,
    progress: _Progress = None,
) -> _F64: ...
def insight_lifecycle(
    n_transactions: _F64,
    T: _F64,
    days_since_last: _F64,
    p_alive: _F64,
    trend: _F64,
    rules: list[float],
) -> npt.NDArray[np.uint8]: ...
def insight_transitions(
    before: npt.NDArray[np.uint8], after: npt.NDArray[np.uint8], k: int
) -> npt.NDArray[np.uint64]: ...
def insight_cells_build(
    stage: npt.NDArray[np.uint8],
    cluster: npt.NDArray[np.uint32],
    tier: npt.NDArray[np.uint8],
    n_clusters: int,
    distances: _F64 | None,
    min_size: int,
) -> tuple[npt.NDArray[np.uint32], list[tuple[list[int], list[int], int, int, int]]]: ...
def insight_group_sums(codes: npt.NDArray[np.uint32], values: _F64, n_groups: int) -> _F64: ...

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
