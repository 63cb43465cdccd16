"""The docs build check: every example in Doc/ and README.rst runs, and every
public name is documented."""

import ast
import os
import re
import textwrap
import unittest

import pytest

import testservers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = sorted(
    [os.path.join(ROOT, "README.rst")]
    + [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "Doc"))
       for f in fs if f.endswith(".rst")])


def _blocks(path):
    """Yield (line number, code) for each ``.. code-block:: python`` block."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        if re.match(r"\s*\.\. code-block:: python3?\s*$", lines[i]):
            start = i + 1
            indent = len(lines[i]) - len(lines[i].lstrip())
            body = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code:
                yield start, code
        else:
            i += 1


EXAMPLES = [(os.path.relpath(path, ROOT), line, code)
            for path in DOC_FILES for line, code in _blocks(path)]


def _is_pytest_example(code):
    tree = ast.parse(code)
    return any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
               and node.args.args for node in tree.body)


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


def _examples(pytest_style):
    chosen = [e for e in EXAMPLES if _is_pytest_example(e[2]) == pytest_style]
    return pytest.mark.parametrize("where, line, code", chosen,
                                   ids=["%s:%d" % e[:2] for e in chosen])


@_examples(pytest_style=False)
def test_example_runs(where, line, code):
    namespace = {"__name__": "__doc_example__"}
    exec(compile(code, "%s:%d" % (where, line), "exec"), namespace)
    # Run what the example defines: unittest cases, and plain test functions.
    cases = [v for v in namespace.values() if isinstance(v, type)
             and issubclass(v, unittest.TestCase) and v.__module__ == "__doc_example__"]
    if cases:
        suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c)
                                   for c in cases)
        result = unittest.TestResult()
        suite.run(result)
        assert result.wasSuccessful(), result.errors + result.failures
        assert result.testsRun
    for name, value in namespace.items():
        if name.startswith("test_") and callable(value) and not isinstance(value, type):
            value()


@_examples(pytest_style=True)
def test_pytest_example_passes(where, line, code, pytester, monkeypatch):
    from test_plugin import isolate_child
    child_args = isolate_child(monkeypatch)
    pytester.makepyfile(test_example=code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error",
                                           *child_args)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") and not outcomes.get("failed") and not outcomes.get("errors"), \
        "%s:%d\n%s" % (where, line, "\n".join(result.outlines[-30:]))


def _documented_names():
    names = set()
    for path in DOC_FILES:
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(
                    r"^\s*\.\. (?:class|function|data|exception|attribute|method)::\s+"
                    r"([A-Za-z_][\w.]*)", f.read(), re.M):
                names.add(m.group(1).split(".")[-1])
    return names


def test_every_public_name_is_documented():
    missing = sorted(set(testservers.__all__) - _documented_names())
    assert not missing, "not documented in Doc/: %s" % ", ".join(missing)
