"""The stream and datagram servers beyond the shared lifecycle: records,
addresses, handler forms, errors, and the 10,000-datagram burst."""

import os
import pathlib
import socket
import socketserver
import threading

import pytest

import testservers
from conftest import TIMEOUT

HAS_UNIX = hasattr(socket, "AF_UNIX")
unix_only = pytest.mark.skipif(not HAS_UNIX, reason="needs Unix sockets")


def test_public_api_is_all():
    for name in testservers.__all__:
        assert hasattr(testservers, name), name
    assert not [n for n in dir(testservers)
                if not n.startswith("_") and n not in testservers.__all__
                and not isinstance(getattr(testservers, n), type(testservers))]


# -- addresses -----------------------------------------------------------------

@pytest.mark.parametrize("addr", [None, 0, ("127.0.0.1", 0), ["127.0.0.1", 0],
                                  ("localhost", 0)])
def test_inet_address_forms_bind_loopback(addr):
    server = testservers.TestTCPServer(addr)
    assert server.family == socket.AF_INET
    assert server.server_address[0] == "127.0.0.1"
    server.stop()


@unix_only
@pytest.mark.parametrize("form", [str, bytes, pathlib.Path])
def test_path_forms_are_unix(form, tmp_path):
    path = str(tmp_path / "x.sock")
    addr = os.fsencode(path) if form is bytes else form(path)
    server = testservers.TestTCPServer(addr)       # the address decides
    assert server.family == socket.AF_UNIX and server.port is None
    with server:
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)
            c.sendall(b"x")
        assert server.wait_connections(1, TIMEOUT, closed=True)[0].data == b"x"
    assert not os.path.exists(path)


@pytest.mark.parametrize("addr", [("127.0.0.1",), object(), (1, 2, 3), 1.5])
def test_bad_address_raises_type_error(addr):
    with pytest.raises(TypeError):
        testservers.TestTCPServer(addr)


@unix_only
def test_unix_class_refuses_inet_address():
    with pytest.raises(TypeError, match="path"):
        testservers.TestUnixStreamServer(("127.0.0.1", 0))


def test_no_reuseaddr_on_first_bind():
    server = testservers.TestTCPServer()
    assert not server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    server.stop()


def test_ipv6_literal_infers_family():
    try:
        server = testservers.TestTCPServer(("::1", 0))
    except OSError as exc:
        pytest.skip("IPv6 loopback not available: %s" % exc)
    assert server.family == socket.AF_INET6
    with server:
        with socket.create_connection(("::1", server.port), TIMEOUT) as c:
            c.sendall(b"six")
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.data == b"six" and conn.peer[0] == "::1"
    assert "[::1]:%d" % server.port in repr(server)


# -- records ---------------------------------------------------------------------

def test_tcp_records_without_handler():
    with testservers.TestTCPServer() as server:
        for payload in (b"one", b"two" * 1000):
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
                c.sendall(payload)
        conns = server.wait_connections(2, TIMEOUT, closed=True)
        assert [c.data for c in conns] == [b"one", b"two" * 1000]
        assert [c.id for c in conns] == [1, 2]
        assert all(c.closed_by == "client" and c.closed >= c.opened for c in conns)
        assert conns[1].bytes_received == 3000 and conns[1].bytes_sent == 0
        assert conns[0].peer[0] == "127.0.0.1" and not conns[0].tls
        server.clear_records()
        assert server.connections == []


def test_bytes_each_way_counted_with_handler():
    def echo(request):
        for line in request.rfile:
            request.wfile.write(line.upper())

    with testservers.TestTCPServer(None, echo) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            f = c.makefile("rwb")
            f.write(b"hello\n")
            f.flush()
            assert f.readline() == b"HELLO\n"
            f.close()
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert (conn.bytes_received, conn.bytes_sent) == (6, 6)
        assert conn.data == b"hello\n"


def test_server_closing_first_is_recorded():
    with testservers.TestTCPServer(None, lambda request: request.wfile.write(b"bye")) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            assert c.recv(10) == b"bye"
            assert c.recv(10) == b""            # the server's FIN
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.closed_by == "server"


def test_wait_timeout_says_what_arrived():
    with testservers.TestUDPServer() as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"only one", server.server_address)
        server.wait_datagrams(1, TIMEOUT)
        with pytest.raises(TimeoutError) as info:
            server.wait_datagrams(2, timeout=0.05)
        message = str(info.value)
        assert "2 datagrams" in message and "1 datagrams" in message
        assert "only one" in message


def test_max_records_overflow_is_an_error():
    server = testservers.TestUDPServer()
    server.max_records = 3
    with server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for i in range(5):
                c.sendto(b"%d" % i, server.server_address)
        with pytest.raises(OverflowError, match="max_records"):
            server.wait_datagrams(5, TIMEOUT)
        assert [d.data for d in server.datagrams] == [b"0", b"1", b"2"]


# -- handler forms and errors ---------------------------------------------------------

def test_request_handler_class_accepted():
    class Upper(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    with testservers.TestTCPServer(None, Upper) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            c.sendall(b"abc\n")
            assert c.makefile("rb").readline() == b"ABC\n"


def test_client_disconnects_are_not_errors(capfd):
    wrote = threading.Event()

    def handler(request):
        request.rfile.readline()
        try:
            for _ in range(1000):
                request.wfile.write(b"x" * 65536)   # the client is gone: EPIPE
        finally:
            wrote.set()

    with testservers.TestTCPServer(None, handler) as server:
        c = socket.create_connection(("127.0.0.1", server.port), TIMEOUT)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        c.sendall(b"go\n")
        c.recv(1)
        c.close()                   # RST, with data unread
        assert wrote.wait(TIMEOUT)
    assert server.errors == []
    assert capfd.readouterr() == ("", "")


def test_handler_errors_reach_test_not_stderr(capfd):
    def handler(request):
        raise KeyError(request.packet)

    server = testservers.TestUDPServer(None, handler)
    server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"a", server.server_address)
    with pytest.raises(KeyError, match="a"):
        server.wait_datagrams(2, TIMEOUT)       # raises at once, not after TIMEOUT
    with pytest.raises(TimeoutError):
        server.wait_datagrams(2, 0.01)          # raised once: now it just waits
    server.stop()
    assert capfd.readouterr() == ("", "")
    assert len(server.errors) == 1


def test_two_errors_noted_and_taken():
    done = threading.Semaphore(0)

    def handler(request):
        done.release()
        raise ValueError(request.packet.decode())

    server = testservers.TestUDPServer(None, handler)
    server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"first", server.server_address)
        c.sendto(b"second", server.server_address)
    assert done.acquire(timeout=TIMEOUT) and done.acquire(timeout=TIMEOUT)
    with pytest.raises(ValueError, match="first") as info:
        server.stop()
    assert "1 more handler errors followed: ValueError('second')" in info.value.__notes__[0]
    assert [str(e) for e in server.take_errors()] == ["first", "second"]
    assert server.errors == []


def test_pytest_fail_in_handler_is_recorded():
    entered = threading.Event()

    def handler(request):
        entered.set()
        pytest.fail("handler says no")

    server = testservers.TestTCPServer(None, handler).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT):
        assert entered.wait(TIMEOUT)
    with pytest.raises(pytest.fail.Exception, match="handler says no"):
        server.stop()


def test_stop_from_inside_a_handler():
    def handler(request):
        request.server.stop()

    server = testservers.TestUDPServer(None, handler).start()
    service_thread = server._thread
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"stop", server.server_address)
    server.wait_for(lambda: not server.ready.is_set(), TIMEOUT, "the stop")
    service_thread.join(TIMEOUT)    # it cannot join itself: it ends after the handler
    assert not service_thread.is_alive()
    server.stop()
    assert server.socket is None


# -- datagrams ---------------------------------------------------------------------

def test_burst_of_10000_datagrams_complete_and_in_order():
    count = 10000
    with testservers.TestUDPServer() as server:
        # In bursts that the receive buffer the server asked for holds whole,
        # even if its reader does not run at all meanwhile (on a loaded
        # machine it may not, while this thread sends on another core): a
        # 100-byte datagram takes less than 2 KiB of it, overhead included.
        # With the 4 MiB the server asks for (Linux doubles it), that is
        # 4096 a burst; with the kernel's default buffer, 100 or so.
        burst = server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2048
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for i in range(count):
                if i and i % burst == 0:
                    server.wait_datagrams(i, TIMEOUT)
                c.sendto(b"%05d" % i + b"." * 95, server.server_address)
        got = server.wait_datagrams(count, TIMEOUT)
    assert [d.data[:5] for d in got] == [b"%05d" % i for i in range(count)]


def test_udp_reply_goes_to_sender():
    def handler(request):
        request.wfile.write(request.packet[::-1])

    with testservers.TestUDPServer(None, handler) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(TIMEOUT)
            c.sendto(b"abc", server.server_address)
            data, addr = c.recvfrom(100)
            assert (data, addr) == (b"cba", server.server_address)
            assert server.datagrams[0].sender[1] == c.getsockname()[1]


@unix_only
def test_unix_datagram_from_unbound_sender(tmp_path):
    def handler(request):
        request.wfile.write(b"nobody to send this to")

    path = str(tmp_path / "d.sock")
    with testservers.TestUnixDatagramServer(path, handler) as server:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(b"x" * 100000, path)    # bigger than UDP allows
        (d,) = server.wait_datagrams(1, TIMEOUT)
        assert len(d.data) == 100000 and not d.sender
    assert server.errors == []


def test_vendored_copy_under_another_name_works(tmp_path):
    import shutil
    import subprocess
    import sys
    source = os.path.dirname(testservers.__file__)
    shutil.copytree(source, str(tmp_path / "_vendored"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import socket, _vendored as t\n"
        "with t.TestTCPServer() as s:\n"
        "    socket.create_connection(('127.0.0.1', s.port)).close()\n"
        "    assert s.wait_connections(1, closed=True)\n"
        "with t.TestHTTPServer(tls=True) as h:\n"
        "    h.expect('GET', '/', body=b'ok')\n"
        "    c = h.http_connection(); c.request('GET', '/')\n"
        "    assert c.getresponse().read() == b'ok'; c.close()\n"
        "p = t.TestUDPServer.in_process()\n"
        "p.start(); p.stop()\n"
        "print('vendored ok', 'testservers' in __import__('sys').modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-c", code],
                         cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == "vendored ok False"


@pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="needs Linux /proc/net/udp")
def test_kernel_drops_are_counted_and_named_by_a_failed_wait():
    release = threading.Event()
    entered = threading.Event()

    def handler(request):
        if request.packet == b"block":
            entered.set()
            release.wait(TIMEOUT)       # the receive buffer fills meanwhile

    server = testservers.TestUDPServer(None, handler).start()
    try:
        assert server.kernel_drops == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"block", server.server_address)
            assert entered.wait(TIMEOUT)
            sent = 0
            while server.kernel_drops == 0 and sent < 100000:
                c.sendto(b"x" * 1400, server.server_address)
                sent += 1
        assert server.kernel_drops > 0
        release.set()
        with pytest.raises(TimeoutError, match=r"the kernel dropped \d+ datagrams"):
            server.wait_datagrams(sent + 1, timeout=0.2)
    finally:
        release.set()
        server.stop()
    assert server.kernel_drops is None


def test_raise_errors_fails_fast_once_and_keeps_the_list():
    handled = threading.Event()

    def handler(request):
        handled.set()
        raise LookupError("seen mid-test")

    with testservers.TestUDPServer(None, handler) as server:
        assert server.raise_errors() is None            # nothing yet: no-op
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"x", server.server_address)
        assert handled.wait(TIMEOUT)
        with server._cond:      # recorded (not raised): raise_errors raises it
            assert server._cond.wait_for(server._store.has_errors, TIMEOUT)
        with pytest.raises(LookupError, match="seen mid-test"):
            server.raise_errors()
        assert server.raise_errors() is None            # raised once
        assert [type(e) for e in server.errors] == [LookupError]


@pytest.mark.parametrize("cls, kind", [(testservers.TestTCPServer, socket.SOCK_STREAM),
                                       (testservers.TestUDPServer, socket.SOCK_DGRAM)])
def test_the_server_socket_is_a_socket_with_enum_family_and_type(cls, kind):
    server = cls()
    try:
        assert isinstance(server.socket, socket.socket)
        assert server.socket.family is socket.AF_INET
        assert server.socket.type is kind
        assert "family=" in repr(server.socket)
    finally:
        server.stop()
