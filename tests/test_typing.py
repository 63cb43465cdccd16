"""The type stub, testservers/__init__.pyi, keeps step with the code.

The stub describes the public API (``testservers.__all__``) for type
checkers.  These tests read it with :mod:`ast` (no type checker needed) and
fail when a public class, method, property or attribute exists in the code
but not in the stub, or the other way round, or when the parameters of a
method or function differ (names, kinds and which have defaults).  When one
fails after a change to the API, update the stub to match.
"""

import ast
import functools
import inspect
import os
import textwrap

import pytest

import testservers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "testservers", "__init__.pyi")
PACKAGE = testservers.__name__

# Special methods that change what a type checker accepts; other dunders
# (__repr__, __str__, __eq__ of object) say nothing the stub must repeat.
PROTOCOL = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__",
            "__await__", "__iter__", "__aiter__", "__next__", "__len__",
            "__getitem__", "__contains__", "__call__", "__bool__",
            "__getattr__", "__setattr__"}


def _read_stub():
    with open(STUB, encoding="utf-8") as f:
        return ast.parse(f.read(), STUB)


STUB_TREE = _read_stub()
STUB_CLASSES = {node.name: node for node in STUB_TREE.body if isinstance(node, ast.ClassDef)}


def _is_api(name):
    return not name.startswith("_") or name in PROTOCOL


# -- the stub's side -------------------------------------------------------

def _decorators(func):
    return {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")
            for d in func.decorator_list}


def _stub_kind(node):
    if isinstance(node, (ast.AnnAssign, ast.Assign)):
        return "attribute"
    decorators = _decorators(node)
    if "property" in decorators:
        return "property"
    if "classmethod" in decorators:
        return "classmethod"
    if "staticmethod" in decorators:
        return "staticmethod"
    return "method"


@functools.lru_cache(maxsize=None)
def _stub_members(class_name):
    """Map each member of a stub class, its stub bases' included, to its node."""
    node = STUB_CLASSES[class_name]
    members = {}
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in STUB_CLASSES:
            members.update(_stub_members(base.id))
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if "setter" in {getattr(d, "attr", "") for d in item.decorator_list}:
                continue                    # @x.setter: x is already known
            members[item.name] = item
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = item
        elif isinstance(item, ast.Assign):
            members.update((t.id, item) for t in item.targets if isinstance(t, ast.Name))
    return {name: value for name, value in members.items() if _is_api(name)}


def _stub_parameters(func, bound):
    a = func.args
    positional = list(getattr(a, "posonlyargs", [])) + list(a.args)
    first_default = len(positional) - len(a.defaults)
    params = []
    for i, arg in enumerate(positional):
        kind = ("POSITIONAL_ONLY" if i < len(getattr(a, "posonlyargs", []))
                else "POSITIONAL_OR_KEYWORD")
        params.append((arg.arg, kind, i >= first_default))
    if a.vararg:
        params.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append((arg.arg, "KEYWORD_ONLY", default is not None))
    if a.kwarg:
        params.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return params[1:] if bound else params


# -- the code's side -------------------------------------------------------

_ATTRIBUTE = object()   # a public attribute the code sets on instances


@functools.lru_cache(maxsize=None)
def _self_attributes(klass):
    """Return the public names a class's methods assign on ``self``."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            names.add(node.attr)
    return names


def _own_classes(cls):
    """The classes of *cls*'s MRO defined in the package, most basic first."""
    return [k for k in reversed(cls.__mro__)
            if k.__module__ == PACKAGE or k.__module__.startswith(PACKAGE + ".")]


@functools.lru_cache(maxsize=None)
def _code_members(cls):
    members = {}
    for klass in _own_classes(cls):
        for name in _self_attributes(klass):
            members.setdefault(name, _ATTRIBUTE)
        members.update(vars(klass))
    return {name: value for name, value in members.items() if _is_api(name)}


def _code_kind(value):
    if isinstance(value, classmethod):
        return "classmethod"
    if isinstance(value, staticmethod):
        return "staticmethod"
    if isinstance(value, property):
        return "property"
    if inspect.isfunction(value):
        return "method"
    return "attribute"


def _code_parameters(func, bound):
    params = [(p.name, p.kind.name, p.default is not p.empty)
              for p in inspect.signature(func).parameters.values()]
    return params[1:] if bound else params


_ANY_ARGUMENTS = [("args", "VAR_POSITIONAL", False), ("kwargs", "VAR_KEYWORD", False)]


def _public_classes():
    return [name for name in testservers.__all__
            if inspect.isclass(getattr(testservers, name))]


def _public_functions():
    return [name for name in testservers.__all__
            if inspect.isfunction(getattr(testservers, name))]


# -- the checks ------------------------------------------------------------

def test_stub_names_exactly_the_public_api():
    stub_all = None
    public = set()
    for node in STUB_TREE.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names = [node.name]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if names == ["__all__"]:
                stub_all = ast.literal_eval(node.value)
        else:
            continue
        public.update(n for n in names if not n.startswith("_"))
    assert stub_all is not None and sorted(stub_all) == sorted(testservers.__all__), \
        "the stub's __all__ differs from testservers.__all__"
    assert "__version__" in {getattr(n.target, "id", None) for n in STUB_TREE.body
                             if isinstance(n, ast.AnnAssign)}
    assert public == set(testservers.__all__), (
        "in the code, not the stub: %s; in the stub, not the code: %s"
        % (sorted(set(testservers.__all__) - public), sorted(public - set(testservers.__all__))))


@pytest.mark.parametrize("name", _public_classes())
def test_class_members_match(name):
    code = _code_members(getattr(testservers, name))
    stub = _stub_members(name)
    missing = sorted(set(code) - set(stub))
    extra = sorted(set(stub) - set(code))
    assert not missing and not extra, (
        "%s: in the code, not the stub: %s; in the stub, not the code: %s"
        % (name, missing, extra))
    for member, value in sorted(code.items()):
        code_kind, stub_kind = _code_kind(value), _stub_kind(stub[member])
        if code_kind in ("attribute", "property"):
            assert stub_kind in ("attribute", "property"), \
                "%s.%s is data in the code, a %s in the stub" % (name, member, stub_kind)
        else:
            assert stub_kind == code_kind, "%s.%s is a %s in the code, a %s in the stub" % (
                name, member, code_kind, stub_kind)


def _method_cases():
    cases = []
    for name in _public_classes():
        for member, value in sorted(_code_members(getattr(testservers, name)).items()):
            if _code_kind(value) in ("method", "classmethod", "staticmethod"):
                cases.append((name, member))
    return cases


@pytest.mark.parametrize("name, member", _method_cases())
def test_method_parameters_match(name, member):
    value = _code_members(getattr(testservers, name))[member]
    kind = _code_kind(value)
    func = value.__func__ if kind in ("classmethod", "staticmethod") else value
    if member.startswith("async_") and _code_parameters(func, False) == _ANY_ARGUMENTS:
        # The coroutine twin of a wait method takes that method's arguments.
        func = getattr(getattr(testservers, name), member[len("async_"):])
    stub = _stub_members(name).get(member)
    assert stub is not None, "%s.%s is not in the stub" % (name, member)
    bound = kind != "staticmethod"
    stub_params, code_params = _stub_parameters(stub, bound), _code_parameters(func, bound)
    assert stub_params == code_params, (
        "%s.%s: the stub's parameters differ from the code's (name, kind, has a default):"
        "\n  stub: %s\n  code: %s" % (name, member, stub_params, code_params))


@pytest.mark.parametrize("name", _public_functions())
def test_function_parameters_match(name):
    stub = [n for n in STUB_TREE.body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert stub, name
    assert _stub_parameters(stub[0], False) == _code_parameters(getattr(testservers, name), False)


def test_stub_is_valid_for_python_3_8():
    """No ``X | Y`` and no ``list[int]``: type checkers run for 3.8 reject them."""
    builtin_generics = {"list", "dict", "tuple", "set", "frozenset", "type"}
    offenders = []
    for node in ast.walk(STUB_TREE):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            offenders.append("line %d: X | Y" % node.lineno)
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
              and node.value.id in builtin_generics):
            offenders.append("line %d: %s[...]" % (node.lineno, node.value.id))
    assert not offenders, offenders


def test_stub_and_py_typed_are_beside_the_package():
    assert os.path.isfile(os.path.join(ROOT, "testservers", "py.typed"))
    # Only the package's __init__ has a stub: a type checker that finds
    # __init__.pyi reads it for the whole public API.
    stubs = [f for f in os.listdir(os.path.join(ROOT, "testservers")) if f.endswith(".pyi")]
    assert stubs == ["__init__.pyi"], stubs
