"""The world's channels, as the core defines them (``src/sim/config.rs``): one definition, read
here by every module that needs the channel list, which channels are off-site, or what a channel
needs to reach a user."""

from __future__ import annotations

from .. import _core

__all__ = ["CHANNELS", "CONSENT", "NEEDS_APP", "OFFSITE"]

_INFO = _core.sim_channels()

#: Channel names in code order (``channel`` codes 0..4).
CHANNELS: tuple[str, ...] = tuple(c["name"] for c in _INFO)
#: Per channel (in :data:`CHANNELS` order): off-site (Hill-saturated exposures, opt-outs) or not.
OFFSITE: tuple[bool, ...] = tuple(bool(c["offsite"]) for c in _INFO)
#: Channel -> the ``users`` column holding its consent (``None``: no consent needed).
CONSENT: dict[str, str | None] = {c["name"]: c["consent"] for c in _INFO}
#: Channel -> whether it needs the app (``users.has_app``).
NEEDS_APP: dict[str, bool] = {c["name"]: bool(c["needs_app"]) for c in _INFO}
