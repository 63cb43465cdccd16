"""Misuse refused at once, faults that nest, a stop() nothing can stall.

Each test here failed on the code before it: it was accepted silently,
waited out a timeout, or recorded the wrong thing.
"""

import os
import socket
import ssl
import tempfile
import threading

import pytest

import testservers
from testservers import (TestHTTPServer, TestSMTPServer, TestTCPServer, TestUDPServer,
                         TestUnixDatagramServer, TestUnixHTTPServer, TestUnixStreamServer)

from conftest import TIMEOUT

ALL_CLASSES = [TestTCPServer, TestUDPServer, TestSMTPServer, TestHTTPServer,
               TestUnixStreamServer, TestUnixDatagramServer, TestUnixHTTPServer]
INET_CLASSES = [TestTCPServer, TestUDPServer, TestSMTPServer, TestHTTPServer]
STREAM_CLASSES = [TestTCPServer, TestSMTPServer, TestHTTPServer,
                  TestUnixStreamServer, TestUnixHTTPServer]
DATAGRAM_CLASSES = [TestUDPServer, TestUnixDatagramServer]


def _name(cls):
    return cls.__name__


def _addr(cls, tmp_path):
    return str(tmp_path / "s.sock") if cls.unix_only else ("127.0.0.1", 0)


# -- addresses --------------------------------------------------------------


@pytest.mark.parametrize("cls", INET_CLASSES, ids=_name)
@pytest.mark.parametrize("text", ["127.0.0.1", "localhost", "::1", "example.com", "8080"])
def test_host_string_alone_is_refused(cls, text, tmp_path, monkeypatch):
    # TestTCPServer("127.0.0.1", 0) once made a Unix socket file named
    # "127.0.0.1" in the current directory, with 0 as its handler.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"\(host, port\)"):
        cls(text)
    assert os.listdir(tmp_path) == []


def test_forgotten_tuple_is_refused_before_the_handler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"\(host, port\) tuple, not the string '127.0.0.1'"):
        TestTCPServer("127.0.0.1", 0)
    assert os.listdir(tmp_path) == []


def test_a_path_stays_a_path(tmp_path):
    # A path with a separator is a Unix socket, as before; so is any string
    # given to a Unix class.
    with TestTCPServer(str(tmp_path / "tcp.sock")) as server:
        assert server.family == socket.AF_UNIX
    with TestUnixStreamServer(str(tmp_path / "plain")) as server:
        assert server.server_address == str(tmp_path / "plain")


@pytest.mark.parametrize("addr, exc", [
    (("127.0.0.1", "80"), TypeError), ((b"127.0.0.1", 0), TypeError),
    (("127.0.0.1", 70000), ValueError), (("127.0.0.1", -1), ValueError),
    (("127.0.0.1", True), TypeError), (3.5, TypeError)])
def test_bad_address_parts(addr, exc):
    with pytest.raises(exc):
        TestTCPServer(addr)


def test_temporary_directory_goes_when_the_bind_fails(monkeypatch):
    made = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)

    class Broken(TestUnixStreamServer):
        def _configure_socket(self, sock):
            raise OSError("no bind today")
    with pytest.raises(OSError, match="no bind today"):
        Broken()
    assert made and not os.path.exists(made[0])


# -- handlers -----------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_name)
@pytest.mark.parametrize("handler", ["handler", 0, 1.5, b"x", ["f"]])
def test_non_callable_handler_is_refused(cls, handler, tmp_path):
    with pytest.raises(TypeError, match="handler"):
        cls(_addr(cls, tmp_path), handler)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cls, handler", [
    (TestSMTPServer, lambda request: None),
    (TestSMTPServer, lambda peer, mailfrom, rcpttos: None),
    (TestTCPServer, lambda: None),
    (TestTCPServer, lambda a, b: None),
    (TestUDPServer, lambda a, b, c: None),
    (TestHTTPServer, lambda: None),
])
def test_handler_arity_is_checked(cls, handler):
    with pytest.raises(TypeError, match="calls its handler as handler"):
        cls(("127.0.0.1", 0), handler)


@pytest.mark.parametrize("cls, handler", [
    (TestSMTPServer, lambda peer, mailfrom, rcpttos, data: None),
    (TestSMTPServer, lambda *args: None),
    (TestTCPServer, lambda request, extra=None: None),
    (TestUDPServer, print),
])
def test_handlers_that_fit_are_accepted(cls, handler):
    cls(("127.0.0.1", 0), handler).stop()


def test_http_refuses_a_request_handler_class_not_for_http():
    # A BaseHTTPRequestHandler subclass is welcome (see test_http_handler
    # classes); a StreamRequestHandler would get no HTTP at all.
    import socketserver
    with pytest.raises(TypeError, match="handler"):
        TestHTTPServer(("127.0.0.1", 0), socketserver.StreamRequestHandler)


# -- options ------------------------------------------------------------------


@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=_name)
@pytest.mark.parametrize("options, exc", [
    ({"sslctx": True}, TypeError), ({"sslctx": "yes"}, TypeError),
    ({"tls": 1}, TypeError), ({"tls": None}, TypeError),
    ({"tls": "no-such-scenario"}, ValueError),
])
def test_tls_options_of_the_wrong_type_or_value(cls, options, exc, tmp_path):
    with pytest.raises(exc, match="sslctx|tls"):
        cls(_addr(cls, tmp_path), **options)
    assert os.listdir(tmp_path) == []


def test_tls_and_sslctx_together_are_refused():
    context = testservers.server_ssl_context()
    with pytest.raises(ValueError, match="not both"):
        TestTCPServer(("127.0.0.1", 0), sslctx=context, tls=True)


def test_sslctx_takes_a_real_context():
    with TestTCPServer(("127.0.0.1", 0), sslctx=testservers.server_ssl_context()) as server:
        assert isinstance(server.sslctx, ssl.SSLContext)


@pytest.mark.parametrize("poll_interval, exc", [("0.5", TypeError), (-1, ValueError)])
def test_poll_interval_is_checked(poll_interval, exc):
    with pytest.raises(exc, match="poll_interval"):
        TestTCPServer(("127.0.0.1", 0), None, poll_interval)


@pytest.mark.parametrize("timeout, exc", [("1", TypeError), (-1, ValueError)])
def test_stop_timeout_is_checked(timeout, exc):
    server = TestTCPServer()
    try:
        with pytest.raises(exc, match="timeout"):
            server.stop(timeout)
    finally:
        server.stop()


# -- waits --------------------------------------------------------------------


@pytest.mark.parametrize("cls, wait", [
    (TestTCPServer, "wait_connections"), (TestUDPServer, "wait_datagrams"),
    (TestSMTPServer, "wait_messages"), (TestHTTPServer, "wait_requests")])
def test_waiting_for_nothing_returns_at_once(cls, wait):
    with cls() as server:
        # timeout=0: the old code found [] false and raised TimeoutError.
        assert getattr(server, wait)(0, timeout=0) == []


@pytest.mark.parametrize("count, timeout, exc", [
    (-1, None, ValueError), (1.0, None, TypeError), (True, None, TypeError),
    (1, "1", TypeError), (1, -1, ValueError)])
def test_wait_arguments_are_checked(count, timeout, exc):
    with TestUDPServer() as server:
        with pytest.raises(exc):
            server.wait_datagrams(count, timeout)


def test_wait_for_runs_its_predicate_without_the_lock():
    # The predicate sends a datagram and waits for the handler to see it:
    # with the records locked, the service thread could not record it.
    seen = threading.Event()
    with TestUDPServer(handler=lambda request: seen.set()) as server:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            def predicate():
                client.sendto(b"x", ("127.0.0.1", server.port))
                return seen.wait(TIMEOUT)
            assert server.wait_for(predicate, TIMEOUT) is True
        finally:
            client.close()


# -- which class has which fault and wait -------------------------------------


@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=_name)
@pytest.mark.parametrize("name", ["wait_datagrams", "datagrams", "drop_datagrams",
                                  "dropped_datagrams", "kernel_drops"])
def test_stream_servers_have_no_datagram_api(cls, name):
    assert not hasattr(cls, name)


@pytest.mark.parametrize("cls", DATAGRAM_CLASSES, ids=_name)
@pytest.mark.parametrize("name", ["wait_connections", "connections", "drop", "delay",
                                  "drip", "garbage", "hang_up"])
def test_datagram_servers_have_no_stream_api(cls, name):
    assert not hasattr(cls, name)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_name)
@pytest.mark.parametrize("name", ["refuse", "clear_faults", "restart", "wait_for"])
def test_every_server_has_the_common_api(cls, name):
    assert callable(getattr(cls, name))


@pytest.mark.parametrize("call, exc", [
    (lambda s: s.delay("1"), TypeError), (lambda s: s.delay(reply=-1), ValueError),
    (lambda s: s.drip(0), ValueError), (lambda s: s.drip(1.5), TypeError),
    (lambda s: s.drip(1, "0"), TypeError), (lambda s: s.garbage("text"), TypeError),
])
def test_stream_fault_arguments_are_checked(call, exc):
    with TestTCPServer() as server:
        with pytest.raises(exc):
            call(server)


@pytest.mark.parametrize("count, exc", [(-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_drop_datagrams_argument_is_checked(count, exc):
    with TestUDPServer() as server:
        with pytest.raises(exc):
            server.drop_datagrams(count)


# -- faults nest ----------------------------------------------------------------


def _first_bytes(server):
    """Return what a new connection gets, or b"hello" echoed if no fault hit it.

    The client sends only when no garbage fault is in force: a server that
    closes with unread bytes resets the connection, and the reset can
    overtake the garbage.
    """
    garbage = server._faults.garbage is not None
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
        if not garbage:
            client.sendall(b"hello")
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = client.recv(4096)
            if not data:
                break
            chunks.append(data)
    record = server.wait_connections(len(server.connections), closed=True)[-1]
    assert record.fault == ("garbage" if garbage else None)
    return b"".join(chunks)


def _echo(request):
    request.wfile.write(request.rfile.read())


@pytest.mark.parametrize("order", ["newest first", "oldest first"])
def test_nested_garbage_undone_in_any_order(order):
    with TestTCPServer(handler=_echo) as server:
        a = server.garbage(b"a")
        b = server.garbage(b"b")
        assert _first_bytes(server) == b"b"
        first, second = (b, a) if order == "newest first" else (a, b)
        first.undo()
        assert _first_bytes(server) == (b"a" if first is b else b"b")
        second.undo()
        assert _first_bytes(server) == b"hello"


def test_undoing_a_nested_garbage_keeps_the_outer_one():
    # The old undo put bytes() in force: every connection was hung up
    # with nothing sent.
    with TestTCPServer(handler=_echo) as server:
        server.garbage(b"a")
        server.garbage(b"b").undo()
        assert _first_bytes(server) == b"a"


def test_undoing_a_nested_drip_keeps_sends_working():
    with TestTCPServer(handler=_echo) as server:
        outer = server.drip(1, 0)
        server.drip(2, 0).undo()
        assert server._faults.drip == (1, 0.0)
        assert _first_bytes(server) == b"hello"
        outer.undo()
        assert server._faults.drip is None
        assert _first_bytes(server) == b"hello"


def test_nested_delay_restores_the_outer_one():
    with TestTCPServer(handler=_echo) as server:
        outer = server.delay(reply=0.001)
        server.delay(accept=0.002).undo()
        assert (server._faults.accept_delay, server._faults.reply_delay) == (0.0, 0.001)
        outer.undo()
        assert (server._faults.accept_delay, server._faults.reply_delay) == (0.0, 0.0)


def test_nested_refuse_listens_again_only_after_the_last_undo():
    with TestTCPServer(handler=_echo) as server:
        a = server.refuse()
        b = server.refuse()
        a.undo()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), TIMEOUT).close()
        b.undo()
        assert _first_bytes(server) == b"hello"


def test_drop_datagrams_faults_add_up_and_undo_their_own_part():
    with TestUDPServer() as server:
        server.drop_datagrams(1)
        second = server.drop_datagrams(2)
        server.drop_datagrams(1)
        second.undo()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(4):
                client.sendto(b"%d" % i, ("127.0.0.1", server.port))
            (kept,) = server.wait_datagrams(2)[1:]
        finally:
            client.close()
        assert [d.data for d in server.dropped_datagrams] == [b"0", b"1"]
        assert server.datagrams[0].data == b"2" and kept.data == b"3"


def test_clear_faults_ends_every_layer():
    with TestTCPServer(handler=_echo) as server:
        old = server.garbage(b"a")
        server.refuse()
        server.clear_faults()
        assert _first_bytes(server) == b"hello"
        old.undo()      # an undo after clear_faults() changes nothing
        assert _first_bytes(server) == b"hello"


# -- stop() and start() ----------------------------------------------------------


@pytest.mark.parametrize("call", ["stop", "restart"])
def test_handler_stopping_its_server_during_stop_does_not_stall_it(call):
    # The test's stop() held its lock while joining the handler, and the
    # handler's own stop() waited for that lock: 30 s, then TimeoutError.
    returned = threading.Event()

    def handler(request):
        request.rfile.read()            # returns when stop() shuts us down
        getattr(server, call)()
        returned.set()
    server = TestTCPServer(handler=handler).start()
    client = socket.create_connection(("127.0.0.1", server.port), TIMEOUT)
    try:
        server.wait_connections(1)
        server.stop(TIMEOUT)
    finally:
        client.close()
    assert returned.is_set()
    assert server.socket is None and not server.ready.is_set()


@pytest.mark.parametrize("how", ["stop", "restart", "drop"])
def test_connection_ended_by_the_server_is_recorded_as_such(how):
    server = TestTCPServer(handler=lambda request: request.rfile.read()).start()
    client = socket.create_connection(("127.0.0.1", server.port), TIMEOUT)
    try:
        (record,) = server.wait_connections(1)
        if how == "drop":
            server.drop()
        else:
            getattr(server, how)()
        server.wait_for(lambda: record.closed is not None, TIMEOUT)
    finally:
        client.close()
        server.stop()
    assert record.closed_by == "server"


def test_connection_ended_by_the_client_is_recorded_as_such():
    with TestTCPServer(handler=lambda request: request.rfile.read()) as server:
        socket.create_connection(("127.0.0.1", server.port), TIMEOUT).close()
        (record,) = server.wait_connections(1, closed=True)
        assert record.closed_by == "client"


def test_start_raises_what_killed_the_loop():
    server = TestTCPServer()
    server.socket.close()       # the loop cannot register it in its selector
    with pytest.raises((ValueError, OSError)):
        server.start()
    assert not server.ready.is_set() and server._thread is None
    server.stop()


def test_counting_socket_has_no_record_when_fresh():
    from testservers._stream import _CountingSocket
    sock = _CountingSocket()
    try:
        assert sock._record is None
    finally:
        sock.close()


def test_burst_of_connections_fits_the_backlog():
    # While the service loop is held, every connect must still complete:
    # the kernel queues it.  With a backlog of 128 the 129th SYN was
    # dropped, and the client waited for its retry (1 s, then 3 s...).
    count = 300
    with open("/proc/sys/net/core/somaxconn") if os.path.exists(
            "/proc/sys/net/core/somaxconn") else open(os.devnull) as f:
        limit = int(f.read() or 4096)
    count = min(count, limit - 10)
    gate = threading.Event()
    clients = []
    with TestTCPServer() as server:
        server._call_soon(lambda sel: gate.wait(TIMEOUT))
        try:
            for _ in range(count):
                clients.append(socket.create_connection(("127.0.0.1", server.port), TIMEOUT))
        finally:
            gate.set()
            for client in clients:
                client.close()
        assert len(server.wait_connections(count, closed=True)) == count


# -- one exception policy for every server ----------------------------------------


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_smtp_handler_base_exceptions_are_recorded_like_any_other(exc):
    import smtplib

    def handler(peer, mailfrom, rcpttos, data):
        raise exc
    with TestSMTPServer(handler=handler) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("a@example.com", ["b@example.com"], b"hi\r\n")
        assert refused.value.smtp_code == 451
        assert server.take_errors() == [exc]


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_http_and_tcp_handler_base_exceptions_are_recorded_too(exc):
    import http.client

    def handler(request):
        raise exc
    with TestHTTPServer(handler=handler) as server:
        conn = server.http_connection(TIMEOUT)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().status == 500
        finally:
            conn.close()
        assert server.take_errors() == [exc]
    with TestTCPServer(handler=handler) as server:
        socket.create_connection(("127.0.0.1", server.port), TIMEOUT).close()
        # Not wait_for(): it would raise the KeyboardInterrupt into pytest.
        with server._cond:
            assert server._cond.wait_for(server._store.has_errors, TIMEOUT)
        assert server.take_errors() == [exc]


def test_connections_are_recorded_in_accept_order():
    # The records were made on the connection threads, which may run in
    # any order: [2, 1] came back under load.  A held loop accepts all
    # the connections in one go, so their threads race each other.
    gate = threading.Event()
    clients = []
    with TestTCPServer(handler=lambda request: request.rfile.read()) as server:
        server._call_soon(lambda sel: gate.wait(TIMEOUT))
        try:
            for _ in range(50):
                clients.append(socket.create_connection(("127.0.0.1", server.port), TIMEOUT))
        finally:
            gate.set()
        records = server.wait_connections(50)
        names = [client.getsockname() for client in clients]
        for client in clients:
            client.close()
        assert [c.id for c in records] == list(range(1, 51))
        assert [c.peer for c in records] == names


def test_a_wait_on_a_stopped_server_says_so():
    server = TestUDPServer()
    server.stop()
    with pytest.raises(TimeoutError, match=r"received nothing \(and it was not serving\)"):
        server.wait_datagrams(1, timeout=0.01)
