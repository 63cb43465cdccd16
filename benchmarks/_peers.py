"""The servers the benchmarks compare, each behind the same small interface.

``make(counter)`` builds a server that counts, in *counter*, what its
handler saw (a request, a message, a datagram, a connection read whole);
the object returned has ``start()`` (returns once it serves), ``port`` and
``stop()`` (everything closed).  Rows come from:

* testservers itself;
* the standard library: :class:`http.server.ThreadingHTTPServer` (an
  HTTP/1.1 Content-Length handler, as it comes and with TCP_NODELAY), and
  :class:`socketserver.ThreadingTCPServer` / ``ThreadingUDPServer``;
* CPython's ``test.test_logging`` helpers, when this interpreter has its
  ``test`` package (its SMTP helper needs smtpd: Python 3.11 and older);
* pytest-httpserver, pytest-localserver and aiosmtpd, when importable.
  They are never dependencies: install them in a throw-away environment
  and run the benchmarks with its interpreter.  A missing one is skipped
  with a line saying so.
"""

import http.server
import logging
import socketserver
import threading
import time
import warnings

from _common import Threaded, import_test_logging

import testservers  # noqa: E402

HOST = "127.0.0.1"
BODY = b"ok"
POLL = 0.5          # every poll_interval a peer is given: the usual default


class Counter:
    """Count handler calls; wait_for(n) returns once the count reaches n."""

    def __init__(self):
        self.count, self.last = 0, None
        self.cond = threading.Condition()

    def hit(self, *args):
        with self.cond:
            self.count += 1
            self.last = time.perf_counter()
            self.cond.notify_all()

    def wait_for(self, n, timeout):
        """Return whether the count reached *n* within *timeout* seconds."""
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)


# -- handlers: the same work for every server --------------------------------------

def http_answer(request):
    """Answer with 200, a Content-Length and two bytes (a BaseHTTPRequestHandler)."""
    request.send_response(200)
    request.send_header("Content-Length", str(len(BODY)))
    request.end_headers()
    request.wfile.write(BODY)


def tcp_reader(counter):
    def handle(request):
        if len(request.rfile.read(100)) == 100:
            counter.hit()
    return handle


class StdlibHTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    do_GET = http_answer

    def log_message(self, format, *args):
        pass


class StdlibHTTPNoDelayHandler(StdlibHTTPHandler):
    disable_nagle_algorithm = True


class StdlibTCPHandler(socketserver.StreamRequestHandler):
    def handle(self):
        tcp_reader(self.server.counter)(self)


class StdlibUDPHandler(socketserver.DatagramRequestHandler):
    def handle(self):
        self.server.counter.hit()


# -- handles -----------------------------------------------------------------------

class Ours:
    """A testservers server: it has start(), ready, port and stop() already."""

    def __init__(self, server):
        server.max_records = 10 ** 6        # a long run keeps every record
        self.server, self.port = server, server.port

    def start(self):
        self.server.start()
        self.server.ready.wait()
        return self

    def stop(self):
        self.server.stop()


class TestLogging:
    """A test_logging helper: start(), ready (not on SMTP), stop(), server_close()."""

    def __init__(self, server):
        self.server = server
        self.port = getattr(server, "port", None) or server.server_address[1]

    def start(self):
        self.server.start()
        if hasattr(self.server, "ready"):
            self.server.ready.wait()
        return self

    def stop(self):
        self.server.stop()
        if hasattr(self.server, "server_close"):
            self.server.server_close()
        elif hasattr(self.server, "close"):
            self.server.close()


class Started:
    """A peer whose own start() blocks until it serves, and whose port is known after."""

    def __init__(self, server, port_of):
        self.server, self.port_of, self.port = server, port_of, None

    def start(self):
        self.server.start()
        self.port = self.port_of(self.server)
        return self

    def stop(self):
        self.server.stop()


# -- the rows ----------------------------------------------------------------------

def ours(kind, **options):
    if kind == "http":
        return lambda counter: Ours(testservers.TestHTTPServer((HOST, 0), http_answer, POLL))
    if kind == "smtp":
        def make(counter):
            return Ours(testservers.TestSMTPServer((HOST, 0), counter.hit, POLL, **options))
        # How a client must talk to it: the SMTP trial reads this.
        make.transport = ("smtps" if options.get("tls") else
                          "starttls" if options.get("starttls") else "plain")
        return make
    if kind == "tcp":
        return lambda counter: Ours(testservers.TestTCPServer((HOST, 0), tcp_reader(counter),
                                                              POLL))
    return lambda counter: Ours(testservers.TestUDPServer((HOST, 0), counter.hit, POLL))


def stdlib(kind, nodelay=True):
    if kind == "http":
        cls = http.server.ThreadingHTTPServer
        handler = StdlibHTTPNoDelayHandler if nodelay else StdlibHTTPHandler
    elif kind == "tcp":
        cls, handler = socketserver.ThreadingTCPServer, StdlibTCPHandler
    else:
        cls, handler = socketserver.ThreadingUDPServer, StdlibUDPHandler

    def make(counter):
        server = cls((HOST, 0), handler)
        server.counter = counter        # what the handlers count with
        return Threaded(server, POLL)
    return make


def test_logging_row(kind, poll=POLL):
    module = import_test_logging({"http": "TestHTTPServer", "smtp": "TestSMTPServer",
                                  "tcp": "TestTCPServer", "udp": "TestUDPServer"}[kind])
    if module is None:
        return None
    if kind == "http":
        return lambda counter: TestLogging(module.TestHTTPServer((HOST, 0), http_answer, poll))
    if kind == "smtp":
        def make(counter):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return TestLogging(module.TestSMTPServer((HOST, 0), counter.hit, poll, {}))
        return make
    if kind == "tcp":
        return lambda counter: TestLogging(module.TestTCPServer((HOST, 0), tcp_reader(counter),
                                                                poll))
    return lambda counter: TestLogging(module.TestUDPServer((HOST, 0), counter.hit, poll))


def _quiet_werkzeug():
    # Werkzeug logs every request at INFO and adds a stderr handler when the
    # logger has none: a NullHandler keeps stderr clean (the record is still
    # built, as under pytest's log capture).
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def pytest_httpserver_row():
    from pytest_httpserver import HTTPServer
    _quiet_werkzeug()

    def make(counter):
        server = HTTPServer(host=HOST, port=0)
        server.expect_request("/").respond_with_data(BODY, content_type="text/plain")
        return Started(server, lambda s: s.port)
    return make


def pytest_localserver_row(kind):
    if kind == "http":
        from pytest_localserver.http import WSGIServer
        _quiet_werkzeug()

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(BODY)))])
            return [BODY]
        return lambda counter: Started(WSGIServer(host=HOST, port=0, application=app),
                                       lambda s: s.server_address[1])
    from pytest_localserver.smtp import Server

    def make(counter):
        server = Server(host=HOST, port=0)
        keep = server.handler.handle_DATA

        async def handle_DATA(smtp, session, envelope):
            counter.hit()
            return await keep(smtp, session, envelope)
        server.handler.handle_DATA = handle_DATA
        return Started(server, lambda s: s.port)
    return make


def aiosmtpd_row():
    from aiosmtpd.controller import Controller

    class PortZero(Controller):
        # Controller.start() connects to (hostname, self.port) to check the
        # server is up; with port 0 that connect fails, so read the port the
        # listener was given first (pytest-localserver does the same).
        def _trigger_server(self):
            if self.port == 0:
                self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    class Handler:
        def __init__(self, counter):
            self.counter = counter

        async def handle_DATA(self, server, session, envelope):
            self.counter.hit()
            return "250 OK"
    return lambda counter: Started(
        PortZero(Handler(counter), hostname=HOST, port=0, server_hostname="localhost"),
        lambda s: s.port)


def optional(name, build, skipped):
    """Return build() or None, noting in *skipped* why a peer is missing."""
    try:
        return build()
    except ImportError as exc:
        skipped[name] = "not importable (%s)" % exc
        return None


def versions():
    """Return the version of every peer, or 'not installed'."""
    try:
        from importlib import metadata
    except ImportError:         # 3.7 has no importlib.metadata
        return {}
    out = {"testservers": getattr(testservers, "__version__", "?")}
    for dist in ("pytest-httpserver", "pytest-localserver", "aiosmtpd", "werkzeug"):
        try:
            out[dist] = metadata.version(dist)
        except Exception:
            out[dist] = "not installed"
    return out
