# Types of the extension module growthmachine._core (src/python/).
# Each module's bindings have their own section below; keep them in the order of src/python/mod.rs.
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class InfeasibleError(ValueError): ...
class StateError(ValueError): ...
class InternalError(RuntimeError): ...

def set_num_threads(n: int) -> None: ...
def thread_count_error(n: int) -> str | None: ...
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
def sim_channels() -> list[dict[str, Any]]: ...  # name, offsite, consent, needs_app
def sim_validate_config(config_json: str) -> None: ...
def sim_validate_section(kind: str, section_json: str, at: str) -> None: ...
def sim_check_size(n_users: int) -> None: ...
def sim_generate(
    config_json: str,
    n_users: int,
    days: int,
    seed: int,
    progress: Callable[[int, int], object] | None = None,
) -> SimPopulation: ...

class SimPopulation:
    @staticmethod
    def from_columns(
        config_json: str, days: int, seed: int, columns: dict[str, np.ndarray]
    ) -> SimPopulation: ...
    def columns(self) -> dict[str, np.ndarray]: ...  # read-only views, no copy
    @property
    def n_users(self) -> int: ...
    @property
    def days(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def config_json(self) -> str: ...

class SimEnv:
    def __init__(self, population: SimPopulation, seed: int) -> None: ...
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
    def eligible(
        self, user: npt.NDArray[np.int64], channel: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.bool_]: ...
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
    ) -> dict[str, np.ndarray]: ...  # outcomes, and the orders: tx_user, tx_day, tx_amount
    def true_uplift(
        self,
        user: npt.NDArray[np.int64],
        benefit: npt.NDArray[np.uint8],
        channel: npt.NDArray[np.uint8],
        content: npt.NDArray[np.uint8],
        start_day: int,
        days: int,
    ) -> dict[str, np.ndarray]: ...
    def expected_outcome(
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
    def oracle_candidates(
        self,
        user: npt.NDArray[np.int64],
        benefit: npt.NDArray[np.uint8],
        channel: npt.NDArray[np.uint8],
        content: npt.NDArray[np.uint8],
        start_day: int,
        days: int,
        objective: str,
        progress: Callable[[int, int], object] | None = None,
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
def insight_feature_columns() -> list[str]: ...
def insight_lifecycle_stages() -> list[str]: ...
def insight_lifecycle_default_rules() -> str: ...
def insight_lifecycle(
    n_transactions: _F64,
    T: _F64,
    days_since_last: _F64,
    p_alive: _F64,
    trend: _F64,
    rules_json: str,
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
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def insight_column_moments_f64(
    x: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

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

# -- allocate over blocks of users held elsewhere (gm.spark.solve) ------------------------------

class AllocateBlock:
    def __new__(
        cls,
        indptr: npt.NDArray[np.int64],
        action: npt.NDArray[np.uint32],
        value: npt.NDArray[np.float64],
        usage: list[npt.NDArray[np.float64]],
        usage_resource: list[int],
        action_usage: npt.NDArray[np.float64],
        n_actions: int,
        groups: npt.NDArray[np.int32],
        limit: int,
        limit_per_user: npt.NDArray[np.uint32] | None,
        n_resources: int,
        first: int,
    ) -> AllocateBlock: ...
    @property
    def n_users(self) -> int: ...
    def pass_(self, qs: list[list[float]]) -> list[tuple[float, float, list[float], int]]: ...
    def jacobian(
        self, q: list[float], h: float
    ) -> tuple[float, float, list[float], int, list[float], int]: ...
    def sample(self, key: int, stride: int) -> dict[str, object]: ...
    def plan_stats(
        self, mix: list[list[float]], cum: list[float], q: list[float], seed: int, k: int
    ) -> tuple[float, list[float], list[float]]: ...
    def gather(
        self,
        mix: list[list[float]],
        cum: list[float],
        q: list[float],
        seed: int,
        threshold: float,
    ) -> dict[str, object]: ...
    def chosen(
        self,
        mix: list[list[float]],
        cum: list[float],
        seed: int,
        users: npt.NDArray[np.uint64],
        flags: npt.NDArray[np.uint8],
    ) -> npt.NDArray[np.uint64]: ...

def allocate_solve_source(
    source: object,
    n_users: int,
    usage_resource: list[int],
    action_usage: npt.NDArray[np.float64],
    n_actions: int,
    groups: npt.NDArray[np.int32],
    limit: int,
    lower: list[float],
    upper: list[float],
    names: list[str],
    tol: float = 1e-4,
    max_iter: int = 500,
    time_limit: float | None = None,
    sample: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, object]: ...
def allocate_finish(
    indptr: npt.NDArray[np.int64],
    action: npt.NDArray[np.uint32],
    value: npt.NDArray[np.float64],
    usage: list[npt.NDArray[np.float64]],
    limit_per_user: npt.NDArray[np.uint32] | None,
    usage_resource: list[int],
    action_usage: npt.NDArray[np.float64],
    n_actions: int,
    groups: npt.NDArray[np.int32],
    limit: int,
    lower: list[float],
    upper: list[float],
    flags: npt.NDArray[np.uint8],
    q: list[float],
    margin: float,
    seed: int,
) -> dict[str, object]: ...

# --- planning ---

class PlanningForest:
    @staticmethod
    def fit(
        X: npt.NDArray[np.float64],
        treatment: npt.NDArray[np.int64],
        y: npt.NDArray[np.float64],
        sample_weight: npt.NDArray[np.float64] | None,
        n_treatments: int,
        n_estimators: int,
        max_depth: int,
        min_samples_leaf: int,
        min_samples_treatment: int,
        max_features: str | float | int,
        max_bins: int,
        honest: bool,
        subsample: float,
        shrinkage: float,
        seed: int,
        progress: Callable[[int, int], object] | None = None,
    ) -> PlanningForest: ...
    def predict(
        self,
        X: npt.NDArray[np.float64],
        progress: Callable[[int, int], object] | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def predict_pairs(
        self,
        X: npt.NDArray[np.float64],
        Z: npt.NDArray[np.float64],
        progress: Callable[[int, int], object] | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def predict_pairs_into(
        self,
        X: npt.NDArray[np.float64],
        rows: npt.NDArray[np.int64],
        Z: npt.NDArray[np.float64],
        est: npt.NDArray[np.float32],
        se: npt.NDArray[np.float32],
        progress: Callable[[int, int], object] | None = None,
    ) -> None: ...
    @property
    def feature_importances(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_treatments(self) -> int: ...
    @property
    def n_estimators(self) -> int: ...
    @property
    def n_nodes(self) -> list[int]: ...
    def _state_bytes(self) -> bytes: ...
    @staticmethod
    def _from_state_bytes(data: bytes) -> PlanningForest: ...

def planning_ranked_counts(
    score: npt.NDArray[np.float64], code: npt.NDArray[np.uint8]
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]: ...
def planning_ranked_area(
    score: npt.NDArray[np.float64], code: npt.NDArray[np.uint8], curve: str
) -> float: ...
def planning_interp_columns(
    S: npt.NDArray[np.float64],
    xp: list[npt.NDArray[np.float64]],
    fp: list[npt.NDArray[np.float64]],
    map_of: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]: ...
def planning_kept_pairs(
    scores: list[npt.NDArray[np.float32]],
    maps: list[tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]],
    stratum: npt.NDArray[np.int64],
    cost_per_touch: npt.NDArray[np.float64],
    margin: float,
    goals: list[tuple[str, float, npt.NDArray[np.bool_] | None]],
    eligible: npt.NDArray[np.bool_],
    allowed: npt.NDArray[np.bool_] | None,
    keep_finite: bool,
    columns: list[str],
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    list[npt.NDArray[np.float64]],
]: ...
def planning_feature_matrix(
    columns: list[npt.NDArray[Any]],
    how: list[int],
    codes: list[int],
    X: npt.NDArray[np.float64],
) -> None: ...

class PlanningCell:
    @staticmethod
    def fit(
        groups: npt.NDArray[np.int64],
        treatment: npt.NDArray[np.int64],
        y: npt.NDArray[np.float64],
        sample_weight: npt.NDArray[np.float64] | None,
        n_treatments: int,
        prior_strength: float | None,
        min_count: int,
        progress: Callable[[int, int], object] | None = None,
    ) -> PlanningCell: ...
    def predict(
        self, groups: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]: ...
    @property
    def n_treatments(self) -> int: ...
    @property
    def n_levels(self) -> int: ...
    @property
    def n_groups(self) -> list[int]: ...
    @property
    def prior_strength(self) -> npt.NDArray[np.float64]: ...
    @property
    def global_effect(self) -> tuple[list[float], list[float]]: ...
    def _state_bytes(self) -> bytes: ...
    @staticmethod
    def _from_state_bytes(data: bytes) -> PlanningCell: ...

# --- realtime ---

class RealtimePolicy:
    """Rust core of LinUCB / LinTS / LogisticTS / EpsilonGreedy (subclassed in growthmachine.realtime)."""
    def __new__(
        cls,
        algo: str,
        n_actions: int,
        n_features: int,
        *,
        # None: the defaults 0, 1.0, 1.0, 0.1, 1.0 and 0
        n_action_features: int | None = None,
        alpha: float | None = None,
        v: float | None = None,
        epsilon: float | None = None,
        ridge: float | None = None,
        seed: int | None = None,
    ) -> RealtimePolicy: ...
    def choose(self, x: npt.ArrayLike, action_features: npt.ArrayLike | None = None) -> int: ...
    def scores(
        self, x: npt.ArrayLike, action_features: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]: ...
    def choose_batch(
        self,
        X: npt.ArrayLike,
        action_features: npt.ArrayLike | None = None,
        hallucinate: bool | None = None,  # None: False
    ) -> npt.NDArray[np.int64]: ...
    def scores_batch(
        self, X: npt.ArrayLike, action_features: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]: ...
    def probabilities(
        self,
        X: npt.ArrayLike,
        action_features: npt.ArrayLike | None = None,
        n_samples: int | None = None,  # None: 1000
    ) -> npt.NDArray[np.float64]: ...
    def update(
        self,
        x: npt.ArrayLike,
        action: int,
        reward: float,
        action_features: npt.ArrayLike | None = None,
    ) -> None: ...
    def update_batch(
        self,
        X: npt.ArrayLike,
        actions: npt.ArrayLike,
        rewards: npt.ArrayLike,
        action_features: npt.ArrayLike | None = None,
    ) -> None: ...
    def _state_bytes(self) -> bytes: ...
    def _set_state_bytes(self, data: bytes) -> None: ...
    def get_params(self) -> dict[str, float | int]: ...
    @property
    def algo(self) -> str: ...
    @property
    def n_actions(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_action_features(self) -> int: ...
    @property
    def counts_(self) -> npt.NDArray[np.uint64]: ...
    @property
    def n_updates_(self) -> int: ...
    @property
    def n_decisions_(self) -> int: ...
    @property
    def theta_(self) -> npt.NDArray[np.float64]: ...
    @property
    def a_inv_(self) -> npt.NDArray[np.float64]: ...

class RealtimePacer:
    def __new__(
        cls,
        n_actions: int,
        budget: npt.NDArray[np.float64],
        horizon: int,
        step: float,
        null_action: int,
        max_ahead: float = ...,
    ) -> RealtimePacer: ...
    def decide(
        self,
        values: npt.NDArray[np.float64],
        costs: npt.NDArray[np.float64],
        n: int,
        charge: bool,
    ) -> npt.NDArray[np.int64]: ...
    def charge(
        self, costs: npt.NDArray[np.float64], ids: npt.NDArray[np.int64] | None = None
    ) -> None: ...
    @property
    def price(self) -> npt.NDArray[np.float64]: ...
    @property
    def spend(self) -> npt.NDArray[np.float64]: ...
    @property
    def budget(self) -> npt.NDArray[np.float64]: ...
    @property
    def n_events(self) -> int: ...
    @property
    def horizon(self) -> int: ...
    @property
    def n_actions(self) -> int: ...
    @property
    def null_action(self) -> int: ...
    def _state_bytes(self) -> bytes: ...
    @staticmethod
    def _from_state_bytes(data: bytes) -> RealtimePacer: ...

def realtime_ope_evaluate(
    actions: npt.NDArray[np.int64],
    rewards: npt.NDArray[np.float64],
    propensities: npt.NDArray[np.float64],
    action_probs: npt.NDArray[np.float64],
    q_hat: npt.NDArray[np.float64] | None,
    positions: npt.NDArray[np.int64] | None,
    n_actions: int,
    n_positions: int,
    clip: float,
    switch_tau: float,
) -> tuple[int, list[float], list[float], float, float]: ...
def realtime_ope_bootstrap(
    actions: npt.NDArray[np.int64],
    rewards: npt.NDArray[np.float64],
    propensities: npt.NDArray[np.float64],
    action_probs: npt.NDArray[np.float64],
    q_hat: npt.NDArray[np.float64] | None,
    positions: npt.NDArray[np.int64] | None,
    n_actions: int,
    n_positions: int,
    clip: float,
    switch_tau: float,
    n_boot: int,
    seed: int,
    mean_weight: float,
) -> npt.NDArray[np.float64]: ...

# --- touchpoint ---

class TouchpointResponse:
    @staticmethod
    def fit(
        group: npt.NDArray[np.uint32],
        channel: npt.NDArray[np.uint32],
        exposures: npt.NDArray[np.uint32],
        converted: _F64,
        opted_out: _F64,
        weight: _F64 | None,
        n_groups: int,
        n_channels: int,
        tau: list[float] | None = None,
        previous: TouchpointResponse | None = None,
        forget: float = 1.0,
        progress: Callable[[int, int], object] | None = None,
        fatigue: _F64 | None = None,
        horizon_days: int | None = None,
        fatigue_halflife: float = 7.0,
        slope_prior: tuple[float, float] | None = None,
    ) -> TouchpointResponse: ...
    def curves(
        self, levels: _F64, z: float, fatigue: float = 0.0
    ) -> tuple[_F64, _F64, _F64, _F64]: ...
    def predict(
        self,
        group: npt.NDArray[np.uint32],
        channel: npt.NDArray[np.uint32],
        exposures: _F64,
        progress: Callable[[int, int], object] | None = None,
        fatigue: _F64 | None = None,
    ) -> tuple[_F64, _F64]: ...
    @property
    def params(self) -> _F64: ...
    @property
    def channel_params(self) -> _F64: ...
    @property
    def cov_opt(self) -> _F64: ...
    @property
    def channel_cov_opt(self) -> _F64: ...
    @property
    def tau(self) -> _F64: ...
    @property
    def trials(self) -> _F64: ...
    @property
    def has_data(self) -> npt.NDArray[np.bool_]: ...
    @property
    def converged(self) -> npt.NDArray[np.bool_]: ...
    @property
    def informed(self) -> npt.NDArray[np.bool_]: ...
    @property
    def fatigue_rate(self) -> float: ...
    @property
    def fatigue_rate_sd(self) -> float: ...
    @property
    def fatigue_carry(self) -> float: ...
    @property
    def layout(self) -> tuple[int, float] | None: ...
    @property
    def n_obs(self) -> int: ...
    @property
    def n_groups(self) -> int: ...
    @property
    def n_channels(self) -> int: ...
    @staticmethod
    def param_names() -> list[str]: ...
    def _state_bytes(self) -> bytes: ...
    @staticmethod
    def _from_state_bytes(data: bytes) -> TouchpointResponse: ...

class TouchpointHeight:
    @staticmethod
    def fit(
        covariates: _F64,
        incremental: _F64,
        residual: _F64,
        weight: _F64 | None = None,
        previous: TouchpointHeight | None = None,
        forget: float = 1.0,
        progress: Callable[[int, int], object] | None = None,
    ) -> TouchpointHeight: ...
    def predict(self, covariates: _F64) -> _F64: ...
    @property
    def beta(self) -> _F64: ...
    @property
    def gamma(self) -> _F64: ...
    @property
    def mean(self) -> _F64: ...
    @property
    def sd(self) -> _F64: ...
    @property
    def precision(self) -> float: ...
    @property
    def n_rows(self) -> float: ...
    @property
    def k(self) -> int: ...
    def _state_bytes(self) -> bytes: ...
    @staticmethod
    def _from_state_bytes(data: bytes) -> TouchpointHeight: ...

# Channel rules: (name, unit_cost, daily_cap, weekly_cap or None, capacity per day (inf: none),
# optout_cost).
_ChannelTuple = tuple[str, float, int, int | None, float, float]

def touchpoint_plan(
    levels: npt.NDArray[np.uint32],
    incremental: npt.NDArray[np.float64],
    optout: npt.NDArray[np.float64],
    n_groups: int,
    group: npt.NDArray[np.uint32],
    value: npt.NDArray[np.float64],
    reach: npt.NDArray[np.uint8],
    channels: list[_ChannelTuple],
    days: int,
    budget: float,
    min_frequency: int = 0,
    tol: float = 1e-4,
    max_iter: int = 500,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
def touchpoint_schedule(
    channel: npt.NDArray[np.uint8],
    level: npt.NDArray[np.uint32],
    offset: npt.NDArray[np.uint16],
    consecutive: npt.NDArray[np.bool_],
    days: int,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.uint32]]: ...
def touchpoint_lay_out(
    channel: npt.NDArray[np.uint8],
    level: npt.NDArray[np.uint32],
    n_channels: int,
    days: int,
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.bool_], npt.NDArray[np.uint64]]: ...
def touchpoint_allowed_levels(
    levels: list[int], channels: list[_ChannelTuple], days: int, min_frequency: int
) -> npt.NDArray[np.bool_]: ...
