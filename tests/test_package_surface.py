"""The package surface (issue 15 item 9): every advertised name exists and imports, and the
standard introspection tools work on the package and on every module."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pydoc
import subprocess
import sys

import pytest

import growthmachine as gm

MODULES = ["growthmachine", *(f"growthmachine.{m}" for m in gm._SUBMODULES)]


@pytest.mark.parametrize("name", gm.__all__)
def test_every_name_in_all_exists(name):
    assert getattr(gm, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_and_its_all_exists(module):
    m = importlib.import_module(module)
    for name in getattr(m, "__all__", []):
        assert hasattr(m, name), f"{module}.__all__ names {name!r}, which does not exist"
    assert inspect.getmembers(m)


def test_introspection_of_the_package():
    names = dict(inspect.getmembers(gm))
    for sub in gm._SUBMODULES:
        assert hasattr(gm, sub), sub
        assert inspect.ismodule(names[sub]), sub
    assert "planning" in dir(gm) and "Machine" in dir(gm)
    text = pydoc.render_doc(gm, renderer=pydoc.plaintext)
    assert "set_num_threads" in text
    with contextlib.redirect_stdout(io.StringIO()) as out:
        help(gm)
    assert "growthmachine" in out.getvalue()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gm.nope  # noqa: B018


def test_star_import_in_a_fresh_interpreter():
    code = (
        "import inspect, growthmachine as gm; from growthmachine import *; "
        "inspect.getmembers(gm); assert hasattr(gm, 'planning'); help(gm)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
