"""``_core.pyi`` in step with what the extension registers (issue 14 item 6).

The stub is parsed with ``ast`` and compared with ``growthmachine._core`` itself: every name the
extension registers (functions, classes, exceptions, ``__version__``; private ``_debug_*`` ones
included) is in the stub and every name of the stub is registered; every class has the same
methods and properties, and exceptions the same bases; and every signature PyO3 publishes
(``__text_signature__``) has the stub's parameter names, in the same order, of the same kinds
(positional-only, keyword-only, ``*args``), with the same defaults. A binding added, renamed or
re-signed without its stub fails here, naming the place.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import growthmachine as gm
from growthmachine import _core

STUB = Path(gm.__file__).with_name("_core.pyi")
TREE = ast.parse(STUB.read_text())
#: A default the stub leaves out (``= ...``): any default of the extension matches it.
ANY = object()
P = inspect.Parameter


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _stub_items(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """What the stub declares: functions, classes and annotated names (``__version__: str``);
    plain assignments are the stub's own type aliases (``_F64 = npt.NDArray[np.float64]``)."""
    out: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


STUB_ITEMS = _stub_items(TREE.body)
ALIASES = [t.id for n in TREE.body if isinstance(n, ast.Assign) for t in n.targets]
REGISTERED = sorted(n for n in dir(_core) if not _dunder(n)) + ["__version__"]
CLASSES = sorted(n for n in REGISTERED if isinstance(getattr(_core, n), type))
FUNCTIONS = sorted(n for n in REGISTERED if inspect.isbuiltin(getattr(_core, n)))


def _default(node: ast.expr | None) -> Any:
    if node is None:
        return P.empty
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return ANY
    return ast.literal_eval(node)


def _stub_params(fn: ast.FunctionDef, *, drop_first: bool) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of a stub function, ``self``/``cls`` dropped for methods."""
    a = fn.args
    positional = [(x, P.POSITIONAL_ONLY) for x in a.posonlyargs]
    positional += [(x, P.POSITIONAL_OR_KEYWORD) for x in a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [(x.arg, k, _default(d)) for (x, k), d in zip(positional, defaults, strict=True)]
    if a.vararg:
        out.append((a.vararg.arg, P.VAR_POSITIONAL, P.empty))
    out += [
        (x.arg, P.KEYWORD_ONLY, _default(d))
        for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
    ]
    if a.kwarg:
        out.append((a.kwarg.arg, P.VAR_KEYWORD, P.empty))
    if drop_first:
        assert out and out[0][0] in ("self", "cls"), f"{fn.name}: first parameter {out[:1]}"
        out = out[1:]
    return out


def _runtime_params(text_signature: str) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) from a PyO3 ``__text_signature__``, ``$self``/``$cls`` dropped."""
    params = list(inspect.Signature.from_callable(_from_text(text_signature)).parameters.values())
    return [(p.name, p.kind, p.default) for p in params if not p.name.startswith("$")]


def _from_text(text_signature: str):
    """A function with this text signature (PyO3's defaults are Python literals)."""
    sig = text_signature.replace("$self", "_self_").replace("$cls", "_cls_")
    ns: dict[str, Any] = {}
    exec(f"def f{sig}: pass", ns)  # noqa: S102 - the extension's own signature text
    f = ns["f"]
    params = [
        p for p in inspect.signature(f).parameters.values() if p.name not in ("_self_", "_cls_")
    ]
    f.__signature__ = inspect.Signature(params)
    return f


def _same(where: str, stub: list, runtime: list) -> None:
    assert [p[0] for p in stub] == [p[0] for p in runtime], (
        f"{where}: the stub's parameters {[p[0] for p in stub]} are not the extension's "
        f"{[p[0] for p in runtime]}"
    )
    for (name, s_kind, s_def), (_, r_kind, r_def) in zip(stub, runtime, strict=True):
        # PyO3 marks no parameter positional-only unless asked to; a stub without ``/`` is the
        # same signature for callers when the extension accepts it by keyword too
        if not (s_kind == P.POSITIONAL_OR_KEYWORD and r_kind == P.POSITIONAL_ONLY):
            assert s_kind == r_kind, f"{where}: {name} is {s_kind} in the stub, {r_kind} at runtime"
        if s_def is ANY:
            assert r_def is not P.empty, f"{where}: {name} has a default in the stub only"
        else:
            assert (s_def is P.empty) == (r_def is P.empty) and (
                s_def is P.empty or s_def == r_def
            ), f"{where}: {name} defaults to {s_def!r} in the stub, {r_def!r} in the extension"


def test_every_registered_name_is_in_the_stub_and_back():
    missing = [n for n in REGISTERED if n not in STUB_ITEMS]
    assert not missing, f"registered by the extension but not in _core.pyi: {missing}"
    extra = [n for n in STUB_ITEMS if n not in REGISTERED]
    assert not extra, f"in _core.pyi but not registered by the extension: {extra}"
    shadow = [n for n in ALIASES if n in REGISTERED or not n.startswith("_")]
    assert not shadow, f"_core.pyi type aliases must be private and not registered names: {shadow}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signatures_match_the_stub(name):
    node = STUB_ITEMS[name]
    assert isinstance(node, ast.FunctionDef), f"{name}: a function, but not one in the stub"
    text = getattr(_core, name).__text_signature__
    assert text is not None, f"{name}: PyO3 gives no signature"
    _same(name, _stub_params(node, drop_first=False), _runtime_params(text))


def _members(cls: type) -> dict[str, Any]:
    return {m: v for m, v in vars(cls).items() if not _dunder(m)}


@pytest.mark.parametrize("name", CLASSES)
def test_classes_match_the_stub(name):
    cls, node = getattr(_core, name), STUB_ITEMS[name]
    assert isinstance(node, ast.ClassDef), f"{name}: a class, but not one in the stub"
    bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
    want = [b.__name__ for b in cls.__bases__ if b is not object]
    assert bases == want, f"{name}: bases {bases} in the stub, {want} at runtime"
    defs = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    members = _members(cls)
    stub_members = {m for m in defs if not _dunder(m)}
    assert set(members) == stub_members, (
        f"{name}: only at runtime {sorted(set(members) - stub_members)}, only in the stub "
        f"{sorted(stub_members - set(members))}"
    )
    # the constructor
    init = defs.get("__init__") or defs.get("__new__")
    text = getattr(cls, "__text_signature__", None)  # from #[new], None without one
    if issubclass(cls, BaseException):
        assert init is None, f"{name}: an exception takes the arguments of its base"
    elif text is None:
        assert init is None, f"{name}: the stub has a constructor, the extension none"
    else:
        assert init is not None, f"{name}: constructible as {name}{text}, but the stub says not"
        _same(f"{name}()", _stub_params(init, drop_first=True), _runtime_params(text))
    for m, obj in members.items():
        fn = defs[m]
        decorators = {ast.unparse(d) for d in fn.decorator_list}
        where = f"{name}.{m}"
        if inspect.isgetsetdescriptor(obj) or isinstance(obj, property):
            assert "property" in decorators, f"{where}: a property at runtime, not in the stub"
            continue
        assert "property" not in decorators, f"{where}: a property in the stub only"
        static = isinstance(inspect.getattr_static(cls, m), staticmethod)
        klass = inspect.ismethod(getattr(cls, m))  # bound to the class: a classmethod
        assert ("staticmethod" in decorators) == static, f"{where}: staticmethod or not"
        assert ("classmethod" in decorators) == klass, f"{where}: classmethod or not"
        text = getattr(getattr(cls, m), "__text_signature__", None)
        assert text is not None, f"{where}: PyO3 gives no signature"
        _same(where, _stub_params(fn, drop_first=not static), _runtime_params(text))


def test_version_is_a_string_in_the_stub():
    node = STUB_ITEMS["__version__"]
    assert isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation) == "str"
    assert isinstance(_core.__version__, str)
