"""The small world a module's recipes share (one definition of its population and environments)."""

from __future__ import annotations

from functools import cached_property

from growthmachine import sim


class WorldCtx:
    """``pop``: a seeded population of ``N_USERS`` users over ``DAYS`` days; ``env()``: a fresh
    environment on it (for calls that change the world); ``env0``: one shared by the calls that
    do not. A module's ``Ctx`` sets the sizes and adds its own inputs."""

    N_USERS = 300
    DAYS = 120

    @cached_property
    def pop(self) -> sim.Population:
        return sim.Population.generate(self.N_USERS, days=self.DAYS, seed=0)

    def env(self) -> sim.Environment:
        return sim.Environment(self.pop, seed=0)

    @cached_property
    def env0(self) -> sim.Environment:
        return WorldCtx.env(self)  # a subclass may make env itself the shared one
