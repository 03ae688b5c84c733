"""``typing.get_type_hints`` resolves on every public class (found from each module's ``__all__``):
a class re-homed under its public module's name (``__module__``) must keep annotations that
resolve there."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

import growthmachine as gm


def _public_classes() -> dict[str, type]:
    out: dict[str, type] = {}

    def walk(modname: str) -> None:
        mod = importlib.import_module("growthmachine" + (f".{modname}" if modname else ""))
        for name in getattr(mod, "__all__", None) or []:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) and obj.__name__.startswith("growthmachine."):
                walk(obj.__name__.removeprefix("growthmachine."))
            elif inspect.isclass(obj):
                out[f"{modname}.{name}" if modname else name] = obj

    for m in ("", *gm._SUBMODULES):
        walk(m)
    return out


CLASSES = _public_classes()


def test_public_classes_are_found():
    assert "allocate.Solution" in CLASSES and "sim.WorldConfig" in CLASSES
    assert len(CLASSES) > 50


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_type_hints_resolve(name):
    cls = CLASSES[name]
    hints = typing.get_type_hints(cls)
    own = cls.__dict__.get("__annotations__", {})
    assert set(own) <= set(hints)
    assert not any(isinstance(h, (str, typing.ForwardRef)) for h in hints.values())
