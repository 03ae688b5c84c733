"""Recipes: the package's top-level callables."""

from __future__ import annotations

import growthmachine as gm

from .driver import Recipes

R = Recipes()


class Ctx:
    pass


@R("set_num_threads", deterministic=False)
def _(c):
    return gm.set_num_threads, dict(n=2)
