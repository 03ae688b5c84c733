"""``WorldConfig``: every rate, share and response parameter of the synthetic world.

The defaults describe a large general-merchandise e-commerce platform (orders of a few tens of
currency units, a handful of orders per active customer and year, a quarter of registrations that
never buy, a November shopping festival). Each field's comment gives its meaning and the reasoning
behind the default.

Which parameters the insight module should recover
--------------------------------------------------
The order history is *exactly* a BG/NBD process with Gamma-Gamma order values, modulated by a
seasonality of mean 1, for every user who is not a prospect:

- purchase rate per day ``lambda ~ Gamma(shape=purchase.r, rate=purchase.alpha)``
  (``lifetimes`` ``BetaGeoFitter``: ``r`` and ``alpha`` with time measured in days);
- dropout after each repeat order ``p ~ Beta(purchase.a, purchase.b)`` (``a``, ``b``);
- order value ``~ Gamma(shape=spend.p, rate=nu)``, ``nu ~ Gamma(shape=spend.q, rate=spend.gamma)``
  (``GammaGammaFitter``: ``p``, ``q``, ``v = gamma``).

Archetypes are drawn *given* the purchase rate (``rate_tilt``), so the marginal distribution of
``lambda`` stays exactly Gamma. A BG/NBD fit on ``pop.transactions`` of users whose first order is in
the window (``signup_day >= 0``, not prospects) recovers ``r, alpha, a, b`` up to sampling error
and the (mild) misspecification from seasonality; users signed up before the window are
left-truncated (their earlier orders are not in the table: ``truth.orders_before_window``).
Prospects (``population.prospect_share``) never order on their own in the history.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np

from .. import _core
from .._schema import _BUILDING, Schema, check_types

__all__ = [
    "Archetype",
    "Benefit",
    "ChannelConfig",
    "ChannelsConfig",
    "ObservablesConfig",
    "PopulationConfig",
    "PurchaseConfig",
    "ResponseConfig",
    "SeasonalityConfig",
    "SessionConfig",
    "SpendConfig",
    "WorldConfig",
]

#: The default world. The core owns it (``src/sim/defaults.rs``); the fields below read their
#: defaults from it and document them (meaning and reasoning).
_DEFAULTS: dict[str, Any] = json.loads(_core.sim_default_config())


def _default(path: str) -> Any:
    """The default of the field at dotted ``path`` (a fresh copy of lists and dicts)."""
    v: Any = _DEFAULTS
    for k in path.split("."):
        v = v[k]
    return copy.deepcopy(v)


class _Section:
    """A section of the world's configuration, validated at construction as
    :meth:`WorldConfig.validate` validates it inside a world (the same type checks, then the
    core's rules for the section's own fields), errors naming the field ``<_at>.field``
    (``purchase.r: must be a finite number > 0, got -1``). What relates sections (one archetype
    weight per category, ...) is checked when the world is. Inside a world being loaded
    (``WorldConfig.from_dict``) the world checks the whole tree once, with exact paths."""

    _at: ClassVar[str]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, (np.ndarray, np.generic)):  # a numpy array or number: plain values
                setattr(self, f.name, v.tolist())
        if not _BUILDING.get():
            check_types(self, self._at)
            section = json.dumps(dataclasses.asdict(self))  # type: ignore[call-overload]
            _core.sim_validate_section(type(self).__name__, section, self._at)


@dataclass
class PurchaseConfig(_Section):
    """Buy-till-you-die purchase process (BG/NBD), time in days."""

    _at = "purchase"

    #: Gamma shape of the per-user purchase rate. < 1: strongly skewed frequencies (many light
    #: buyers, a few heavy ones), as fitted on most retail panels (Fader et al. report r ~ 0.2-1).
    r: float = _default("purchase.r")
    #: Gamma rate (days). Mean rate r / alpha = 0.0133 per day ~ 4.9 orders a year while active.
    alpha: float = _default("purchase.alpha")
    #: Beta parameters of the dropout probability after each repeat order: mean a / (a + b) =
    #: 0.13, i.e. an active customer places ~7-8 orders on average before churning; a < 1 gives a
    #: mass of loyal customers with tiny dropout.
    a: float = _default("purchase.a")
    b: float = _default("purchase.b")
    #: Mean delay (days, exponential) between sign-up and the first order of non-prospects.
    first_order_delay_days: float = _default("purchase.first_order_delay_days")


@dataclass
class SpendConfig(_Section):
    """Gamma-Gamma order values: amount ~ Gamma(p, rate nu), nu ~ Gamma(q, rate gamma)."""

    _at = "spend"

    #: Shape of a user's order values: coefficient of variation 1/sqrt(p) = 45 % around the user's
    #: own mean, typical for baskets of a general retailer.
    p: float = _default("spend.p")
    #: Shape and rate of the users' rates: mean order value p * gamma / (q - 1) = 50; q = 3.5
    #: gives a long right tail of big spenders (q must be > 1 for the mean to exist).
    q: float = _default("spend.q")
    gamma: float = _default("spend.gamma")


@dataclass
class PopulationConfig(_Section):
    _at = "population"

    #: Registered users who never order on their own (the new-user acquisition target); ~25 % of
    #: registrations never convert on large platforms.
    prospect_share: float = _default("population.prospect_share")
    #: Share of users who signed up before the simulated window (their history shapes who is
    #: alive at day 0); the rest sign up uniformly inside the window.
    pre_window_share: float = _default("population.pre_window_share")
    #: How far back (days) earlier sign-ups go (uniformly).
    history_days: float = _default("population.history_days")


@dataclass
class SeasonalityConfig(_Section):
    """Order intensity ``season(day) = yearly(day of year) * weekly(weekday)``, mean 1."""

    _at = "seasonality"

    #: Monday..Sunday (normalised to mean 1): more orders on Friday/Saturday evenings.
    weekly: list[float] = field(default_factory=partial(_default, "seasonality.weekly"))
    #: Smooth yearly wave (+-12 %) peaking in late November (day of year 330).
    yearly_amplitude: float = _default("seasonality.yearly_amplitude")
    yearly_peak_day: float = _default("seasonality.yearly_peak_day")
    #: The shopping festival (11 November = day of year 314): +150 % on the day, Gaussian with
    #: a 3-day width (pre-sales and after-sales).
    festival_day: float = _default("seasonality.festival_day")
    festival_boost: float = _default("seasonality.festival_boost")
    festival_width_days: float = _default("seasonality.festival_width_days")
    #: Day index 0 is this day of year (0 = 1 January) and weekday (0 = Monday).
    start_day_of_year: int = _default("seasonality.start_day_of_year")
    start_weekday: int = _default("seasonality.start_weekday")


@dataclass
class ObservablesConfig(_Section):
    """Observable user attributes (their distribution depends on the hidden archetype)."""

    _at = "observables"

    age_bands: list[str] = field(default_factory=partial(_default, "observables.age_bands"))
    city_tiers: list[str] = field(default_factory=partial(_default, "observables.city_tiers"))
    devices: list[str] = field(default_factory=partial(_default, "observables.devices"))
    acquisition_channels: list[str] = field(
        default_factory=partial(_default, "observables.acquisition_channels")
    )
    #: Devices with the app installed: push and in-app messages need one.
    app_devices: list[str] = field(default_factory=partial(_default, "observables.app_devices"))
    #: Consent rates: push among app users (~65 %), e-mail (~60 %), SMS marketing (~35 %).
    push_opt_in: float = _default("observables.push_opt_in")
    email_opt_in: float = _default("observables.email_opt_in")
    sms_opt_in: float = _default("observables.sms_opt_in")


@dataclass
class Archetype(_Section):
    """A hidden "sociological" group. Weight lists follow the order of the named lists."""

    _at = "archetype"

    name: str
    #: Base weight of the group (the realised mix also depends on rate_tilt).
    share: float
    #: P(archetype | lambda) is proportional to share * exp(rate_tilt * z), z the standardised
    #: log purchase rate: > 0 for groups of frequent buyers. Keeps lambda's marginal Gamma.
    rate_tilt: float
    #: Mean price sensitivity in (0, 1) (per-user Beta around it): scales offer response.
    price_sensitivity: float
    #: Mean responsiveness to marketing (per-user log-normal around it).
    responsiveness: float
    #: Share of sleeping dogs: touching them lowers their purchases and raises opt-outs.
    sleeping_dog_share: float
    #: Response to on-site guidance in sessions (logit scale; < 0 = annoyed).
    guide_response: float
    category_weights: list[float]
    #: Reach/affinity per channel in [0, 1]: push, sms, email, in_app, ads.
    channel_affinity: list[float]
    #: Fit of each content variant (response.contents).
    content_fit: list[float]
    age_band_weights: list[float]
    city_tier_weights: list[float]
    device_weights: list[float]
    acquisition_weights: list[float]


def _default_archetypes() -> list[Archetype]:
    # The seven default groups (their reasoning is commented in src/sim/defaults.rs):
    # bargain_hunter, busy_professional, young_trendsetter, family_shopper, loyal_premium,
    # occasional_gifter, silver_saver.
    return [Archetype(**a) for a in _default("archetypes")]


@dataclass
class Benefit(_Section):
    _at = "benefit"

    name: str
    #: Face value shown to the user.
    face_value: float
    #: Cost to the platform when redeemed (points and free shipping cost less than face value).
    cost: float
    #: Base appeal: scales the offer response (a 20-off coupon is ~1.5x as persuasive as a 10-off).
    appeal: float
    #: Basket increase of an order the benefit caused (minimum-spend thresholds).
    basket_lift: float


def _default_benefits() -> list[Benefit]:
    # none, coupon_5, coupon_10, coupon_20, free_shipping, points_500
    return [Benefit(**b) for b in _default("response.benefits")]


@dataclass
class ChannelConfig(_Section):
    _at = "channel"

    #: Cost per message (SMS ~3 cents, ads ~10 CPM = 1 cent per exposure, push/e-mail ~free).
    unit_cost: float
    #: Maximum touches per user and day (more is rejected with a ValueError).
    daily_cap: int


def _channel(name: str) -> ChannelConfig:
    return ChannelConfig(**_default(f"response.channels.{name}"))


@dataclass
class ChannelsConfig(_Section):
    _at = "channels"

    push: ChannelConfig = field(default_factory=partial(_channel, "push"))
    sms: ChannelConfig = field(default_factory=partial(_channel, "sms"))
    email: ChannelConfig = field(default_factory=partial(_channel, "email"))
    in_app: ChannelConfig = field(default_factory=partial(_channel, "in_app"))
    ads: ChannelConfig = field(default_factory=partial(_channel, "ads"))


@dataclass
class ResponseConfig(_Section):
    """How users respond to touches (see ``growthmachine.sim`` module docs for the formulas)."""

    _at = "response"

    benefits: list[Benefit] = field(default_factory=_default_benefits)
    contents: list[str] = field(default_factory=partial(_default, "response.contents"))
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    #: Offer response per touch = offer_scale * appeal * (0.4 + 1.2 ps) * responsiveness *
    #: lifecycle * affinity * content fit * fatigue: a 10-off coupon by push lifts a typical
    #: user's 30-day conversion by a few points, as A/B tests of coupon pushes usually show.
    offer_scale: float = _default("response.offer_scale")
    #: Upper bound of a single offer's response probability.
    offer_cap: float = _default("response.offer_cap")
    #: Maximum incremental conversion from off-site exposures, reached along a Hill curve.
    exposure_max: float = _default("response.exposure_max")
    #: Hill curve of effective off-site exposures: half the effect at 6 (the "effective frequency"
    #: of media planning), slope 2 (S-shaped: first exposures do little).
    hill_ec50: float = _default("response.hill_ec50")
    hill_slope: float = _default("response.hill_slope")
    #: Each earlier touch (decayed with a one-week half-life) divides response by 1 + 0.25 F.
    fatigue_rate: float = _default("response.fatigue_rate")
    fatigue_halflife_days: float = _default("response.fatigue_halflife_days")
    #: Opt-out per off-site touch: 0.2 % baseline, growing by 50 % per recent touch (over-touching
    #: drives unsubscribes), x5 for sleeping dogs.
    optout_base: float = _default("response.optout_base")
    optout_per_fatigue: float = _default("response.optout_per_fatigue")
    #: A touched sleeping dog's baseline purchase rate drops by up to 40 % over the window.
    sleeping_dog_penalty: float = _default("response.sleeping_dog_penalty")
    sleeping_dog_optout_mult: float = _default("response.sleeping_dog_optout_mult")
    #: Probability that a held coupon is used on an order the user would have placed anyway.
    redemption_rate: float = _default("response.redemption_rate")
    #: Daily first-order hazard of prospects without any touch (~1.5 % a month).
    prospect_daily_hazard: float = _default("response.prospect_daily_hazard")
    #: Response multipliers by lifecycle: prospects (welcome offers work), active, lapsed
    #: (win-back is hard).
    prospect_mult: float = _default("response.prospect_mult")
    active_mult: float = _default("response.active_mult")
    lapsed_mult: float = _default("response.lapsed_mult")
    #: Log-normal noise of per-user channel affinity and responsiveness around the archetype's.
    affinity_noise: float = _default("response.affinity_noise")
    responsiveness_noise: float = _default("response.responsiveness_noise")
    #: Concentration of the per-user Beta price sensitivity around the archetype mean.
    price_sensitivity_concentration: float = _default("response.price_sensitivity_concentration")
    #: Contribution margin on GMV (profit = margin * GMV - incentive - channel costs).
    margin: float = _default("response.margin")


@dataclass
class SessionConfig(_Section):
    """Site-visit sessions (the real-time engine's world; formulas in the module docs)."""

    _at = "sessions"

    #: Visit weight of a user = visit_base + visit_rate_weight * purchase rate.
    visit_base: float = _default("sessions.visit_base")
    visit_rate_weight: float = _default("sessions.visit_rate_weight")
    #: Base logits: browse -> cart (~7 %), cart -> checkout (~57 %), exit -> recovered (~3 %),
    #: before intent; with intent this gives a ~6 % visit conversion (large sites: 2-8 %).
    cart_logit: float = _default("sessions.cart_logit")
    checkout_logit: float = _default("sessions.checkout_logit")
    recover_logit: float = _default("sessions.recover_logit")
    #: Intent = intent_weight * standardised log purchase rate + lifecycle logits.
    intent_weight: float = _default("sessions.intent_weight")
    lapsed_logit: float = _default("sessions.lapsed_logit")
    prospect_logit: float = _default("sessions.prospect_logit")
    #: Shares of leavers who show exit intent (can be intercepted) from browse and from cart.
    exit_detect_share: float = _default("sessions.exit_detect_share")
    cart_exit_share: float = _default("sessions.cart_exit_share")
    #: Guidance at browse adds guide_effect * (archetype.guide_response + 0.5 N(0,1)) to the
    #: cart logit (negative for a share of users); at cart it adds +-guide_cart_effect (0: the
    #: payoff of guidance is on the browse page, two steps before the purchase).
    guide_effect: float = _default("sessions.guide_effect")
    guide_cart_effect: float = _default("sessions.guide_cart_effect")
    #: Coupon appeal (logit) = coupon_logit_per_unit * value * (0.4 + 1.2 ps) * responsiveness
    #: (a 10-off coupon: +0.4 logit for a typical user, +0.7 for a bargain hunter); at browse it
    #: counts coupon_browse_factor times. Sleeping dogs get a negative logit instead. Sized so
    #: that a coupon pays for itself only on price-sensitive, hesitant visitors.
    coupon_logit_per_unit: float = _default("sessions.coupon_logit_per_unit")
    coupon_browse_factor: float = _default("sessions.coupon_browse_factor")
    sleeping_dog_coupon_logit: float = _default("sessions.sleeping_dog_coupon_logit")
    #: Basket with a coupon x (1 + coupon_basket_lift * ps).
    coupon_basket_lift: float = _default("sessions.coupon_basket_lift")
    small_coupon_value: float = _default("sessions.small_coupon_value")
    large_coupon_value: float = _default("sessions.large_coupon_value")
    exit_coupon_value: float = _default("sessions.exit_coupon_value")
    #: Free shipping costs shipping_value when used; its appeal counts value * free_shipping_appeal.
    shipping_value: float = _default("sessions.shipping_value")
    free_shipping_appeal: float = _default("sessions.free_shipping_appeal")


@dataclass
class WorldConfig(Schema):
    """Every parameter of the synthetic world (population and environment).

    Build with keyword overrides (``WorldConfig(purchase=PurchaseConfig(r=0.5))``), load with
    :meth:`from_yaml` / :meth:`from_json`, save with :meth:`to_yaml` / :meth:`to_json`. Values are
    validated on construction and before use: a bad value raises ``ValueError`` naming the field
    (``config.purchase.r: must be a finite number > 0, got -1``).
    """

    purchase: PurchaseConfig = field(default_factory=PurchaseConfig)
    spend: SpendConfig = field(default_factory=SpendConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    seasonality: SeasonalityConfig = field(default_factory=SeasonalityConfig)
    categories: list[str] = field(default_factory=partial(_default, "categories"))
    observables: ObservablesConfig = field(default_factory=ObservablesConfig)
    archetypes: list[Archetype] = field(default_factory=_default_archetypes)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)

    _root = "config"

    # -- validation --------------------------------------------------------------------------
    def validate(self, path: str | None = None) -> WorldConfig:
        """Checks types and values; raises ``TypeError``/``ValueError`` naming the field."""
        super().validate(path)
        _core.sim_validate_config(json.dumps(self.to_dict(), allow_nan=True))
        return self

    # (de)serialisation: to_dict / from_dict / to_json / from_json / to_yaml / from_yaml from
    # :class:`growthmachine._schema.Schema`.

    def _json_compact(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))
