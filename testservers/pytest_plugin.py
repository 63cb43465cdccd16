"""pytest fixtures for testservers (registered through the pytest11 entry point).

``import testservers`` never imports this module; pytest loads it when the
package is installed, or with ``-p testservers.pytest_plugin``.  It imports
the package relatively, so a copy vendored under another name works the
same way: ``-p tests._servers.pytest_plugin`` on the command line, or
``pytest_plugins = ["tests._servers.pytest_plugin"]`` in the top-level
``conftest.py``.

Fixtures (function scope; each yields a started server and stops it after
the test):

``tcp_server``, ``udp_server``, ``unix_stream_server``,
``unix_datagram_server``, ``smtp_server``, ``http_server``,
``https_server``
    a server that records what it receives (``handler=None``), on
    loopback port 0 (or a fresh Unix path), so pytest-xdist workers never
    collide.

``make_server``
    a factory, ``make_server(cls, listen_addr=None, handler=None, **options)``,
    for several servers or custom options.

A handler error fails the test that caused it: after the test body the
plugin raises what any of the test's servers recorded, and the stop after
the test raises what came later.
"""

import pytest

from . import (TestHTTPServer, TestSMTPServer, TestTCPServer, TestUDPServer,
               TestUnixDatagramServer, TestUnixStreamServer)

_SERVERS = pytest.StashKey() if hasattr(pytest, "StashKey") else None


def _servers(node):
    if _SERVERS is not None:
        return node.stash.setdefault(_SERVERS, [])
    if not hasattr(node, "_testservers"):
        node._testservers = []
    return node._testservers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    if outcome.excinfo is None:
        try:
            for server in _servers(item):
                server.raise_errors()   # fails the test itself, not its teardown
        except BaseException as exc:
            if hasattr(outcome, "force_exception"):     # pluggy >= 1.1
                outcome.force_exception(exc)
            else:
                raise


@pytest.fixture
def make_server(request):
    """Return a factory that starts servers and stops them after the test."""
    started = []

    def make(cls, listen_addr=None, handler=None, poll_interval=0.5, **options):
        server = cls(listen_addr, handler, poll_interval, **options)
        started.append(server)
        _servers(request.node).append(server)
        return server.start()

    yield make
    errors = []
    for server in reversed(started):
        try:
            server.stop()
        except BaseException as exc:     # stop them all, then report the first
            errors.append(exc)
    if errors:
        raise errors[-1]


def _fixture(cls, **options):
    def fixture(make_server):
        return make_server(cls, **options)
    fixture.__doc__ = "A started, recording :class:`%s.%s`%s." % (
        __package__, cls.__name__, " with TLS" if options else "")
    return pytest.fixture(fixture)


tcp_server = _fixture(TestTCPServer)
udp_server = _fixture(TestUDPServer)
unix_stream_server = _fixture(TestUnixStreamServer)
unix_datagram_server = _fixture(TestUnixDatagramServer)
smtp_server = _fixture(TestSMTPServer)
http_server = _fixture(TestHTTPServer)
https_server = _fixture(TestHTTPServer, tls=True)
