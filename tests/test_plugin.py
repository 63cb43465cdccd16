"""The pytest plugin, run through pytester in a child pytest process."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def isolate_child(monkeypatch):
    """Make a child pytest import this checkout and load no other plugin.

    Under ``-W error`` a warning that another installed plugin gives about
    its own configuration (pytest-asyncio's) would fail the child run.
    """
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return ["-p", "testservers.pytest_plugin"]


@pytest.fixture
def run(pytester, monkeypatch):
    child_args = isolate_child(monkeypatch)

    def run(source, *args):
        pytester.makepyfile(test_it=source)
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-W", "error", *child_args, *args)
    return run


def test_fixtures_serve_and_record(run):
    result = run('''
import logging.handlers, smtplib, socket, urllib.request

def test_tcp(tcp_server):
    with socket.create_connection(("127.0.0.1", tcp_server.port)) as c:
        c.sendall(b"hello")
    assert tcp_server.wait_connections(1, closed=True)[0].data == b"hello"

def test_udp(udp_server):
    handler = logging.handlers.SysLogHandler(("127.0.0.1", udp_server.port))
    handler.emit(logging.makeLogRecord({"msg": "hi", "levelno": 40, "levelname": "ERROR"}))
    handler.close()
    assert udp_server.wait_datagrams(1)[0].data == b"<11>hi\\x00"

def test_unix(unix_stream_server, unix_datagram_server):
    assert unix_stream_server.port is None
    assert unix_datagram_server.ready.is_set()
''')
    result.assert_outcomes(passed=3)


def test_factory_and_handler_error_fails_the_test(run):
    result = run('''
import socket, testservers

def test_factory(make_server):
    a = make_server(testservers.TestTCPServer)
    b = make_server(testservers.TestUDPServer, handler=lambda request: None)
    assert a.ready.is_set() and b.ready.is_set() and a.port != b.port

def test_handler_error(make_server):
    def handler(request):
        assert request.packet == b"expected", "unexpected datagram"
    server = make_server(testservers.TestUDPServer, handler=handler)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"other", server.server_address)
    server.wait_datagrams(1)
    server.stop()   # the handler ran: its error is recorded (and raised here)
''')
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: unexpected datagram*"])


def test_error_after_body_fails_test_not_teardown(run):
    result = run('''
import socket, threading, testservers

def test_late_error(make_server):
    second = threading.Event()
    def handler(request):
        if request.packet == b"first":
            raise ValueError("seen after the body")
        second.set()        # datagrams are handled in order: the error is in
    server = make_server(testservers.TestUDPServer, handler=handler)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"first", server.server_address)
        c.sendto(b"second", server.server_address)
    assert second.wait(10)
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: seen after the body*"])


def test_plugin_not_imported_by_package():
    import subprocess
    code = "import sys, testservers; print('testservers.pytest_plugin' in sys.modules, 'pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    assert out.split() == ["False", "False"]
