"""CPython's own test_smtplib, with its smtpd servers replaced by
TestSMTPServer, runs green on this interpreter.

Every server of the file, plain ``smtpd.SMTPServer``, ``DebuggingServer``
and the simulated servers, is a TestSMTPServer set up by
``smtpd_adapter`` (which stands in for ``smtpd`` and ``asyncore``); the
test file itself is unchanged.  The tests in LEFT_OUT pin what smtpd did
against RFC 5321 or its exact wording, and are skipped with the reason;
Doc/library/testservers-smtp.rst lists the same names.
"""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
DOC = os.path.join(ROOT, "Doc", "library", "testservers-smtp.rst")

LEFT_OUT = {
    "DebuggingServerTests.testELHO":
        "smtpd's EHLO reply starts with the host name of the test's mocked "
        "getfqdn(), an empty string; a TestSMTPServer host name is never empty",
    "DebuggingServerTests.testSecondHELO":
        "smtpd answered a second HELO with 503; RFC 5321 4.1.4 lets a client "
        "send it, and TestSMTPServer resets the transaction as RSET does",
}


def _test_smtplib_origin():
    try:
        import importlib.util
        spec = importlib.util.find_spec("test.test_smtplib")
    except ImportError:
        spec = None
    if spec is None or not spec.origin:
        pytest.skip("this Python has no test package (test.test_smtplib)")
    return spec.origin


def test_cpython_test_smtplib_with_testservers(tmp_path):
    origin = _test_smtplib_origin()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]))
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "smtpd_adapter",
         origin, json.dumps(LEFT_OUT)],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=300)
    output = result.stdout
    assert result.returncode == 0, output[-5000:]
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["failures"] == {} and summary["errors"] == {}, output[-5000:]
    left_out = {name for name, reason in summary["skipped"].items()
                if reason.startswith("left out: ")}
    with open(origin, encoding="utf-8") as f:
        source = f.read()
    present = {name for name in LEFT_OUT if "def %s(" % name.partition(".")[2] in source}
    assert left_out == present, summary["skipped"]
    # Only the test file's own conditions skip anything else.
    others = {name: reason for name, reason in summary["skipped"].items()
              if name not in left_out}
    assert all("left out" not in reason for reason in others.values()), others
    assert summary["ran"] >= 60, output[-3000:]
    assert "Exception ignored" not in output and "ResourceWarning" not in output


def test_left_out_tests_are_listed_in_the_doc():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    section = doc.split("CPython's test_smtplib", 1)[1]
    listed = set(re.findall(r"``(\w+Tests\.\w+)``", section))
    assert listed == set(LEFT_OUT)
