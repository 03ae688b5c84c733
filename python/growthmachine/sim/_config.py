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

import json
from dataclasses import dataclass, field

from .. import _core
from .._schema import Schema

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


@dataclass
class PurchaseConfig:
    """Buy-till-you-die purchase process (BG/NBD), time in days."""

    #: Gamma shape of the per-user purchase rate. < 1: strongly skewed frequencies (many light
    #: buyers, a few heavy ones), as fitted on most retail panels (Fader et al. report r ~ 0.2-1).
    r: float = 0.8
    #: Gamma rate (days). Mean rate r / alpha = 0.0133 per day ~ 4.9 orders a year while active.
    alpha: float = 60.0
    #: Beta parameters of the dropout probability after each repeat order: mean a / (a + b) =
    #: 0.13, i.e. an active customer places ~7-8 orders on average before churning; a < 1 gives a
    #: mass of loyal customers with tiny dropout.
    a: float = 0.9
    b: float = 6.0
    #: Mean delay (days, exponential) between sign-up and the first order of non-prospects.
    first_order_delay_days: float = 3.0


@dataclass
class SpendConfig:
    """Gamma-Gamma order values: amount ~ Gamma(p, rate nu), nu ~ Gamma(q, rate gamma)."""

    #: Shape of a user's order values: coefficient of variation 1/sqrt(p) = 45 % around the user's
    #: own mean, typical for baskets of a general retailer.
    p: float = 5.0
    #: Shape and rate of the users' rates: mean order value p * gamma / (q - 1) = 50; q = 3.5
    #: gives a long right tail of big spenders (q must be > 1 for the mean to exist).
    q: float = 3.5
    gamma: float = 25.0


@dataclass
class PopulationConfig:
    #: Registered users who never order on their own (the new-user acquisition target); ~25 % of
    #: registrations never convert on large platforms.
    prospect_share: float = 0.25
    #: Share of users who signed up before the simulated window (their history shapes who is
    #: alive at day 0); the rest sign up uniformly inside the window.
    pre_window_share: float = 0.5
    #: How far back (days) earlier sign-ups go (uniformly).
    history_days: float = 730.0


@dataclass
class SeasonalityConfig:
    """Order intensity ``season(day) = yearly(day of year) * weekly(weekday)``, mean 1."""

    #: Monday..Sunday (normalised to mean 1): more orders on Friday/Saturday evenings.
    weekly: list[float] = field(default_factory=lambda: [0.95, 0.92, 0.95, 1.0, 1.05, 1.1, 1.03])
    #: Smooth yearly wave (+-12 %) peaking in late November (day of year 330).
    yearly_amplitude: float = 0.12
    yearly_peak_day: float = 330.0
    #: The shopping festival (11 November = day of year 314): +150 % on the day, Gaussian with
    #: a 3-day width (pre-sales and after-sales).
    festival_day: float = 314.0
    festival_boost: float = 1.5
    festival_width_days: float = 3.0
    #: Day index 0 is this day of year (0 = 1 January) and weekday (0 = Monday).
    start_day_of_year: int = 0
    start_weekday: int = 0


@dataclass
class ObservablesConfig:
    """Observable user attributes (their distribution depends on the hidden archetype)."""

    age_bands: list[str] = field(
        default_factory=lambda: ["18-24", "25-34", "35-44", "45-54", "55+"]
    )
    city_tiers: list[str] = field(default_factory=lambda: ["tier1", "tier2", "tier3", "tier4"])
    devices: list[str] = field(default_factory=lambda: ["ios", "android", "web"])
    acquisition_channels: list[str] = field(
        default_factory=lambda: ["organic", "search", "social", "referral", "paid_ads", "offline"]
    )
    #: Devices with the app installed: push and in-app messages need one.
    app_devices: list[str] = field(default_factory=lambda: ["ios", "android"])
    #: Consent rates: push among app users (~65 %), e-mail (~60 %), SMS marketing (~35 %).
    push_opt_in: float = 0.65
    email_opt_in: float = 0.6
    sms_opt_in: float = 0.35


@dataclass
class Archetype:
    """A hidden "sociological" group. Weight lists follow the order of the named lists."""

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
    # categories: grocery fashion electronics beauty home baby sports books
    # channels: push sms email in_app ads; contents: discount new_arrivals personalised social_proof
    # age: 18-24 25-34 35-44 45-54 55+; tiers 1-4; devices ios android web
    # acquisition: organic search social referral paid_ads offline
    A = Archetype
    return [
        # Price-driven, coupon-responsive, mass-market cities, Android, low sleeping-dog risk.
        A(
            "bargain_hunter",
            0.20,
            -0.2,
            0.85,
            1.3,
            0.03,
            0.2,
            [3.0, 2.0, 1.0, 1.5, 1.5, 1.0, 0.7, 0.5],
            [0.55, 0.45, 0.35, 0.6, 0.5],
            [1.4, 0.6, 0.9, 1.1],
            [1.5, 2.5, 2.0, 1.5, 1.0],
            [0.6, 1.2, 1.6, 1.6],
            [0.8, 2.2, 0.7],
            [1.0, 1.5, 1.5, 2.0, 1.5, 0.5],
        ),  # fmt: skip
        # Frequent, price-insensitive, dislike interruptions (negative guidance), many dogs.
        A(
            "busy_professional",
            0.17,
            0.4,
            0.25,
            0.7,
            0.12,
            -0.4,
            [1.5, 1.5, 2.0, 0.8, 1.0, 0.3, 0.8, 0.8],
            [0.25, 0.1, 0.35, 0.45, 0.35],
            [0.5, 1.0, 1.5, 0.7],
            [0.3, 2.5, 2.5, 1.2, 0.3],
            [2.5, 1.5, 0.6, 0.3],
            [2.0, 1.0, 1.2],
            [2.0, 2.0, 0.8, 0.8, 1.0, 0.3],
        ),  # fmt: skip
        # Young, fashion/beauty, social acquisition, responsive to new arrivals and social proof.
        A(
            "young_trendsetter",
            0.16,
            0.1,
            0.6,
            1.1,
            0.05,
            0.6,
            [0.6, 3.0, 1.5, 2.5, 0.6, 0.1, 1.2, 0.4],
            [0.6, 0.2, 0.2, 0.7, 0.6],
            [0.8, 1.6, 1.1, 1.5],
            [3.0, 2.5, 0.6, 0.2, 0.1],
            [1.6, 1.4, 1.0, 0.6],
            [1.8, 1.6, 0.3],
            [0.8, 0.8, 3.0, 1.5, 1.5, 0.2],
        ),  # fmt: skip
        # Groceries, baby and home; frequent; moderately price sensitive.
        A(
            "family_shopper",
            0.17,
            0.3,
            0.55,
            1.0,
            0.04,
            0.4,
            [3.0, 1.2, 0.8, 0.8, 2.0, 2.5, 0.7, 0.6],
            [0.45, 0.3, 0.45, 0.5, 0.35],
            [1.2, 0.8, 1.3, 1.0],
            [0.3, 2.0, 3.0, 1.5, 0.4],
            [1.0, 1.5, 1.5, 1.0],
            [1.0, 1.6, 0.8],
            [1.5, 1.5, 1.2, 1.5, 1.0, 0.8],
        ),  # fmt: skip
        # Most frequent, least price sensitive, tier-1 iOS: a quarter react badly to promotions.
        A(
            "loyal_premium",
            0.10,
            0.8,
            0.15,
            0.5,
            0.25,
            -0.1,
            [1.5, 1.5, 1.5, 1.5, 1.5, 0.8, 1.0, 1.0],
            [0.35, 0.1, 0.4, 0.55, 0.15],
            [0.3, 1.3, 1.6, 0.6],
            [0.2, 1.5, 2.5, 2.0, 1.0],
            [3.0, 1.5, 0.5, 0.2],
            [2.5, 0.8, 1.0],
            [3.0, 1.5, 0.5, 1.0, 0.5, 0.5],
        ),  # fmt: skip
        # Rare buyers of gifts (electronics, beauty, books), reached best by ads and e-mail.
        A(
            "occasional_gifter",
            0.12,
            -0.6,
            0.45,
            0.9,
            0.06,
            0.8,
            [0.3, 1.5, 2.0, 2.0, 1.2, 0.6, 1.0, 1.8],
            [0.3, 0.2, 0.45, 0.3, 0.55],
            [0.9, 1.3, 1.0, 1.4],
            [0.8, 1.5, 1.5, 1.5, 1.0],
            [1.2, 1.4, 1.2, 0.8],
            [1.0, 1.0, 1.5],
            [1.0, 2.5, 1.0, 1.0, 2.0, 0.5],
        ),  # fmt: skip
        # Older, web and SMS/e-mail, price sensitive, welcome guidance.
        A(
            "silver_saver",
            0.08,
            -0.3,
            0.7,
            0.8,
            0.08,
            0.9,
            [2.5, 0.6, 0.8, 0.8, 2.0, 0.4, 0.6, 2.0],
            [0.2, 0.5, 0.6, 0.25, 0.3],
            [1.2, 0.6, 0.9, 0.8],
            [0.05, 0.2, 0.8, 2.0, 4.0],
            [1.0, 1.3, 1.5, 1.5],
            [0.6, 1.2, 1.8],
            [1.5, 1.0, 0.3, 1.5, 0.5, 2.5],
        ),  # fmt: skip
    ]


@dataclass
class Benefit:
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
    return [
        Benefit("none", 0.0, 0.0, 0.0, 0.0),
        Benefit("coupon_5", 5.0, 5.0, 0.6, 0.05),
        Benefit("coupon_10", 10.0, 10.0, 1.0, 0.12),
        Benefit("coupon_20", 20.0, 20.0, 1.5, 0.25),
        Benefit("free_shipping", 6.0, 4.0, 0.7, 0.08),
        Benefit("points_500", 5.0, 3.0, 0.35, 0.03),
    ]


@dataclass
class ChannelConfig:
    #: Cost per message (SMS ~3 cents, ads ~10 CPM = 1 cent per exposure, push/e-mail ~free).
    unit_cost: float
    #: Maximum touches per user and day (more is rejected with a ValueError).
    daily_cap: int


@dataclass
class ChannelsConfig:
    push: ChannelConfig = field(default_factory=lambda: ChannelConfig(0.0005, 1))
    sms: ChannelConfig = field(default_factory=lambda: ChannelConfig(0.03, 1))
    email: ChannelConfig = field(default_factory=lambda: ChannelConfig(0.001, 1))
    in_app: ChannelConfig = field(default_factory=lambda: ChannelConfig(0.0, 2))
    ads: ChannelConfig = field(default_factory=lambda: ChannelConfig(0.01, 10))


@dataclass
class ResponseConfig:
    """How users respond to touches (see ``growthmachine.sim`` module docs for the formulas)."""

    benefits: list[Benefit] = field(default_factory=_default_benefits)
    contents: list[str] = field(
        default_factory=lambda: ["discount", "new_arrivals", "personalised", "social_proof"]
    )
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    #: Offer response per touch = offer_scale * appeal * (0.4 + 1.2 ps) * responsiveness *
    #: lifecycle * affinity * content fit * fatigue: a 10-off coupon by push lifts a typical
    #: user's 30-day conversion by a few points, as A/B tests of coupon pushes usually show.
    offer_scale: float = 0.12
    #: Upper bound of a single offer's response probability.
    offer_cap: float = 0.6
    #: Maximum incremental conversion from off-site exposures, reached along a Hill curve.
    exposure_max: float = 0.15
    #: Hill curve of effective off-site exposures: half the effect at 6 (the "effective frequency"
    #: of media planning), slope 2 (S-shaped: first exposures do little).
    hill_ec50: float = 6.0
    hill_slope: float = 2.0
    #: Each earlier touch (decayed with a one-week half-life) divides response by 1 + 0.25 F.
    fatigue_rate: float = 0.25
    fatigue_halflife_days: float = 7.0
    #: Opt-out per off-site touch: 0.2 % baseline, growing by 50 % per recent touch (over-touching
    #: drives unsubscribes), x5 for sleeping dogs.
    optout_base: float = 0.002
    optout_per_fatigue: float = 0.5
    #: A touched sleeping dog's baseline purchase rate drops by up to 40 % over the window.
    sleeping_dog_penalty: float = 0.4
    sleeping_dog_optout_mult: float = 5.0
    #: Probability that a held coupon is used on an order the user would have placed anyway.
    redemption_rate: float = 0.8
    #: Daily first-order hazard of prospects without any touch (~1.5 % a month).
    prospect_daily_hazard: float = 0.0005
    #: Response multipliers by lifecycle: prospects (welcome offers work), active, lapsed
    #: (win-back is hard).
    prospect_mult: float = 1.3
    active_mult: float = 1.0
    lapsed_mult: float = 0.4
    #: Log-normal noise of per-user channel affinity and responsiveness around the archetype's.
    affinity_noise: float = 0.3
    responsiveness_noise: float = 0.5
    #: Concentration of the per-user Beta price sensitivity around the archetype mean.
    price_sensitivity_concentration: float = 8.0
    #: Contribution margin on GMV (profit = margin * GMV - incentive - channel costs).
    margin: float = 0.3


@dataclass
class SessionConfig:
    """Site-visit sessions (the real-time engine's world; formulas in the module docs)."""

    #: Visit weight of a user = visit_base + visit_rate_weight * purchase rate.
    visit_base: float = 0.05
    visit_rate_weight: float = 30.0
    #: Base logits: browse -> cart (~7 %), cart -> checkout (~57 %), exit -> recovered (~3 %),
    #: before intent; with intent this gives a ~6 % visit conversion (large sites: 2-8 %).
    cart_logit: float = -2.6
    checkout_logit: float = 0.3
    recover_logit: float = -3.5
    #: Intent = intent_weight * standardised log purchase rate + lifecycle logits.
    intent_weight: float = 0.5
    lapsed_logit: float = -1.0
    prospect_logit: float = -0.8
    #: Shares of leavers who show exit intent (can be intercepted) from browse and from cart.
    exit_detect_share: float = 0.7
    cart_exit_share: float = 0.8
    #: Guidance at browse adds guide_effect * (archetype.guide_response + 0.5 N(0,1)) to the
    #: cart logit (negative for a share of users); at cart it adds +-guide_cart_effect (0: the
    #: payoff of guidance is on the browse page, two steps before the purchase).
    guide_effect: float = 0.8
    guide_cart_effect: float = 0.0
    #: Coupon appeal (logit) = coupon_logit_per_unit * value * (0.4 + 1.2 ps) * responsiveness
    #: (a 10-off coupon: +0.4 logit for a typical user, +0.7 for a bargain hunter); at browse it
    #: counts coupon_browse_factor times. Sleeping dogs get a negative logit instead. Sized so
    #: that a coupon pays for itself only on price-sensitive, hesitant visitors.
    coupon_logit_per_unit: float = 0.04
    coupon_browse_factor: float = 0.3
    sleeping_dog_coupon_logit: float = -0.6
    #: Basket with a coupon x (1 + coupon_basket_lift * ps).
    coupon_basket_lift: float = 0.1
    small_coupon_value: float = 5.0
    large_coupon_value: float = 10.0
    exit_coupon_value: float = 8.0
    #: Free shipping costs shipping_value when used; its appeal counts value * free_shipping_appeal.
    shipping_value: float = 6.0
    free_shipping_appeal: float = 0.8


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
    categories: list[str] = field(
        default_factory=lambda: [
            "grocery",
            "fashion",
            "electronics",
            "beauty",
            "home",
            "baby",
            "sports",
            "books",
        ]
    )
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
