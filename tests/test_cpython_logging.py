"""CPython's own test_logging, with its server_helper section replaced by an
import of testservers, runs its socket tests green on this interpreter.

This is the promise the package grew from: the section from ``class
TestSMTPServer`` to ``# - end of server_helper section`` is deleted and the
classes are imported instead; nothing else in the file changes (but for the
directory its HTTPS test finds its certificate in, which the copy moved).
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = "# -- The following section could be moved into a server_helper.py module"
END = "# - end of server_helper section"
IMPORT = ("from testservers import (TestSMTPServer, TestHTTPServer, TestTCPServer,\n"
          "                         TestUDPServer, TestUnixStreamServer,\n"
          "                         TestUnixDatagramServer)\n")
CLASSES = ["SMTPHandlerTest", "SocketHandlerTest", "UnixSocketHandlerTest",
           "DatagramHandlerTest", "UnixDatagramHandlerTest", "SysLogHandlerTest",
           "UnixSysLogHandlerTest", "IPv6SysLogHandlerTest", "HTTPHandlerTest"]


def _test_logging_source():
    try:
        import importlib.util
        spec = importlib.util.find_spec("test.test_logging")
    except ImportError:
        spec = None
    if spec is None or not spec.origin:
        pytest.skip("this Python has no test package (test.test_logging)")
    with open(spec.origin, encoding="utf-8") as f:
        return spec.origin, f.read()


def test_cpython_test_logging_with_testservers(tmp_path):
    origin, source = _test_logging_source()
    start, end = source.index(START), source.index(END)
    patched = source[:start] + IMPORT + source[end:]
    # The copy lives outside the test package: its HTTPS test must still find
    # its certificate, and 3.12's relative import of smtpd must still resolve.
    patched = patched.replace("os.path.dirname(__file__)", repr(os.path.dirname(origin)))
    patched = patched.replace("from . import ", "from test import ")
    (tmp_path / "test_logging_ts.py").write_text(patched, encoding="utf-8")
    names = [c for c in CLASSES if "class %s(" % c in source]
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "unittest", "-v"]
        + ["test_logging_ts." + name for name in names],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:]
    assert "\nOK" in result.stdout
    ran = [line for line in result.stdout.splitlines() if line.endswith(" ... ok")]
    assert len(ran) >= len(names), result.stdout[-3000:]
    assert "Exception ignored" not in result.stdout and "ResourceWarning" not in result.stdout
