"""Edge cases of the lifecycle and of error reporting, each found by review
and kept as a regression test: stop() and restart() from inside a handler,
faults asked for while stop() runs, errors that only look like disconnects,
the error cap, and stop() in the middle of a TLS wrap."""

import socket
import threading
import time

import pytest

import testservers
from conftest import PROMPT, SLOW, TIMEOUT


def send_datagrams(server, *payloads):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        for payload in payloads:
            c.sendto(payload, server.server_address)


def test_restart_from_a_datagram_handler_records_no_false_error():
    restarted = threading.Event()
    done = threading.Event()

    def handler(request):
        if request.packet == b"restart":
            request.server.restart()
            restarted.set()
        else:
            done.set()

    server = testservers.TestUDPServer(None, handler).start()
    send_datagrams(server, b"restart")
    assert restarted.wait(TIMEOUT)
    send_datagrams(server, b"after")
    assert done.wait(TIMEOUT)       # the new loop serves; the old one ended
    server.stop()
    assert server.errors == []


def test_stop_from_a_datagram_handler_then_an_error_is_still_raised():
    stopped = threading.Event()
    go_on = threading.Event()

    def handler(request):
        request.server.stop()
        stopped.set()
        go_on.wait(TIMEOUT)
        raise AssertionError("failed after stopping its server")

    server = testservers.TestUDPServer(None, handler).start()
    send_datagrams(server, b"x")
    assert stopped.wait(TIMEOUT)
    go_on.set()
    # The test's own stop() joins the service thread, which the handler's
    # stop() could not join, and raises what it raised afterwards.
    with pytest.raises(AssertionError, match="failed after stopping"):
        server.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("TestUDPServer(")]


def test_fault_asked_for_while_stop_joins_does_not_stall_stop():
    entered = threading.Event()

    def handler(request):
        request.rfile.readline()
        entered.set()
        # stop() shuts the connection down before it joins this thread: the
        # read returns then, so the fault is asked for while stop() runs.
        # (A timer here raced stop() on a loaded machine.)
        request.rfile.readline()
        request.server.refuse()

    server = testservers.TestTCPServer(None, handler).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        c.sendall(b"go\n")
        assert entered.wait(TIMEOUT)
        started = time.monotonic()
        server.stop(timeout=SLOW)
        assert time.monotonic() - started < PROMPT
    assert server.errors == []


@pytest.mark.parametrize("error", ["timeout", "refused"])
def test_handler_errors_that_look_like_disconnects_are_recorded(error):
    def handler(request):
        request.rfile.readline()
        if error == "timeout":
            raise TimeoutError("the handler's own deadline")    # socket.timeout in 3.10+
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), TIMEOUT)  # refused

    server = testservers.TestTCPServer(None, handler).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        c.sendall(b"go\n")
        expected = (TimeoutError, "own deadline") if error == "timeout" else (
            ConnectionRefusedError, None)
        with pytest.raises(expected[0], match=expected[1]) as info:
            server.wait_for(lambda: False, TIMEOUT, "the handler's error")
        assert "waited" not in str(info.value)      # not wait_for's own timeout
    server.stop()


def test_client_disconnect_is_still_not_an_error():
    def handler(request):
        request.rfile.readline()
        for _ in range(1000):
            request.wfile.write(b"x" * 65536)       # EPIPE/ECONNRESET: tagged I/O

    with testservers.TestTCPServer(None, handler) as server:
        c = socket.create_connection(("127.0.0.1", server.port), TIMEOUT)
        c.sendall(b"go\n")
        c.close()
        server.wait_connections(1, TIMEOUT, closed=True)
    assert server.errors == []


def test_error_cap_keeps_the_newest_unraised_error():
    def handler(request):
        raise AssertionError(request.packet.decode())

    server = testservers.TestUDPServer(None, handler)
    server.max_records = 2
    server.start()
    send_datagrams(server, b"1")
    with pytest.raises(AssertionError, match="1"):
        server.wait_datagrams(2, TIMEOUT)
    server.clear_records()              # datagram records count against it too
    send_datagrams(server, b"2")
    with pytest.raises(AssertionError, match="2"):
        server.wait_datagrams(2, TIMEOUT)
    server.clear_records()
    send_datagrams(server, b"3")        # the list is full of raised errors
    with pytest.raises(AssertionError, match="3"):
        server.wait_datagrams(2, TIMEOUT)
    server.stop()
    assert [str(e) for e in server.errors] == ["2", "3"]


def test_error_raised_into_a_handler_by_stop_is_not_recorded_twice():
    first = threading.Event()
    raised_inside = threading.Event()

    def handler(request):
        line = request.rfile.readline()
        if line == b"fail\n":
            first.set()
            raise ValueError("first error")
        try:
            request.server.stop()   # raises "first error" into this handler
        finally:
            raised_inside.set()

    server = testservers.TestTCPServer(None, handler).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        c.sendall(b"fail\n")
        assert first.wait(TIMEOUT)
    with server._cond:          # recorded, not raised: wait_ helpers would raise it
        assert server._cond.wait_for(server._store.has_errors, TIMEOUT)
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        c.sendall(b"stop\n")
        assert raised_inside.wait(TIMEOUT)
    server.stop()                   # joins that handler; raises nothing new
    assert [str(e) for e in server.errors] == ["first error"]


def test_stop_during_a_tls_wrap_does_not_wait_for_the_handshake_timeout(monkeypatch):
    from testservers import _stream
    monkeypatch.setattr(_stream, "HANDSHAKE_TIMEOUT", SLOW)
    server = testservers.TestTCPServer(tls=True)
    shut = threading.Event()
    original_shutdown = server._shutdown_socket

    def shutdown(sock):
        original_shutdown(sock)
        shut.set()

    original_create = _stream._CountingSSLSocket._create.__func__

    def create(cls, **kwargs):
        tls = original_create(cls, **kwargs)    # the plain socket is detached now
        shut.wait(TIMEOUT)                      # stop() shut the stale one down
        return tls

    monkeypatch.setattr(server, "_shutdown_socket", shutdown)
    monkeypatch.setattr(_stream._CountingSSLSocket, "_create", classmethod(create))
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT):
        server.wait_connections(1, TIMEOUT)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < PROMPT
