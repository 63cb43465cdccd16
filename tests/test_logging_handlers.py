"""logging.handlers clients against the servers, as CPython's test_logging uses them."""

import logging
import logging.handlers
import pickle
import socket
import struct
import threading

import pytest

import testservers
from conftest import TIMEOUT

HAS_UNIX = hasattr(socket, "AF_UNIX")
unix_only = pytest.mark.skipif(not HAS_UNIX, reason="needs Unix sockets")


def _ipv6_works():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6 = _ipv6_works()


def read_pickles(request, out, handled):
    """A test_logging-style SocketHandler server handler: length + pickle."""
    conn = request.connection
    while True:
        chunk = conn.recv(4)
        if len(chunk) < 4:
            break
        slen = struct.unpack(">L", chunk)[0]
        chunk = conn.recv(slen)
        while len(chunk) < slen:
            chunk = chunk + conn.recv(slen - len(chunk))
        out.append(logging.makeLogRecord(pickle.loads(chunk)).msg)
        handled.release()


def socket_handler_for(server):
    if isinstance(server.server_address, tuple):
        return logging.handlers.SocketHandler("localhost", server.port)
    return logging.handlers.SocketHandler(server.server_address, None)


@pytest.mark.parametrize("unix", [False] + ([True] if HAS_UNIX else []))
def test_socket_handler(unix, tmp_path, logger):
    out, handled = [], threading.Semaphore(0)
    cls = testservers.TestUnixStreamServer if unix else testservers.TestTCPServer
    addr = str(tmp_path / "log.sock") if unix else ("localhost", 0)
    server = cls(addr, lambda request: read_pickles(request, out, handled), 0.01)
    server.start()
    server.ready.wait()
    logger.addHandler(socket_handler_for(server))
    logger.error("spam")
    assert handled.acquire(timeout=TIMEOUT)
    logger.debug("eggs")
    assert handled.acquire(timeout=TIMEOUT)
    assert out == ["spam", "eggs"]
    server.stop(2.0)


def test_socket_handler_reconnects_after_restart(logger):
    out, handled = [], threading.Semaphore(0)
    server = testservers.TestTCPServer(
        ("localhost", 0), lambda request: read_pickles(request, out, handled), 0.01)
    server.start()
    handler = socket_handler_for(server)
    logger.addHandler(handler)
    logger.error("before")
    assert handled.acquire(timeout=TIMEOUT)
    old_sock = handler.sock
    server.restart()                # the same port; the old connection is gone
    # SocketHandler learns that its socket is dead only by writing to it:
    # those records are lost (its documented contract), then it reconnects.
    for attempt in range(10):
        logger.error("after %d" % attempt)
        if handler.sock is not None and handler.sock is not old_sock:
            break
    else:
        pytest.fail("SocketHandler never reconnected: %r" % server.connections)
    assert handled.acquire(timeout=TIMEOUT)
    assert out[0] == "before" and out[1].startswith("after")
    assert len(server.connections) == 2
    server.stop()


def test_socket_handler_with_recording_server(logger):
    """handler=None: the server records the bytes; the test decodes them."""
    server = testservers.TestTCPServer()
    server.start()
    handler = socket_handler_for(server)
    logger.addHandler(handler)
    logger.warning("recorded")
    handler.close()
    (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    (length,) = struct.unpack(">L", conn.data[:4])
    assert pickle.loads(conn.data[4:4 + length])["msg"] == "recorded"
    server.stop()


@pytest.mark.parametrize("unix", [False] + ([True] if HAS_UNIX else []))
def test_datagram_handler(unix, tmp_path, logger):
    cls = testservers.TestUnixDatagramServer if unix else testservers.TestUDPServer
    addr = str(tmp_path / "log.sock") if unix else ("localhost", 0)
    out, handled = [], threading.Event()

    def handle(request):
        packet = request.packet[4:]         # skip the length prefix
        out.append(logging.makeLogRecord(pickle.loads(packet)).msg)
        handled.set()

    server = cls(addr, handle, 0.01)
    server.start()
    if isinstance(server.server_address, tuple):
        hdlr = logging.handlers.DatagramHandler("localhost", server.port)
    else:
        hdlr = logging.handlers.DatagramHandler(server.server_address, None)
    logger.addHandler(hdlr)
    logger.error("spam")
    assert handled.wait(TIMEOUT)
    handled.clear()
    logger.error("eggs")
    assert handled.wait(TIMEOUT)
    assert out == ["spam", "eggs"]
    server.stop()


def _syslog_server(kind, tmp_path):
    if kind == "udp":
        return testservers.TestUDPServer(("localhost", 0))
    if kind == "tcp":
        return testservers.TestTCPServer(("localhost", 0))
    if kind == "udp6":
        return testservers.TestUDPServer(("::1", 0))
    if kind == "unix-dgram":
        return testservers.TestUnixDatagramServer(str(tmp_path / "log"))
    return testservers.TestUnixStreamServer(str(tmp_path / "log"))


SYSLOG_KINDS = ["udp", "tcp"] + (["udp6"] if IPV6 else []) + (
    ["unix-dgram", "unix-stream"] if HAS_UNIX else [])


@pytest.mark.parametrize("kind", SYSLOG_KINDS)
def test_syslog_handler(kind, tmp_path, logger):
    server = _syslog_server(kind, tmp_path)
    server.start()
    if server.port is None:
        hdlr = logging.handlers.SysLogHandler(server.server_address)
    else:
        socktype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        hdlr = logging.handlers.SysLogHandler(
            (server.server_address[0], server.port), socktype=socktype)
    logger.addHandler(hdlr)
    logger.error("sp\xe4m")
    hdlr.append_nul = False
    logger.error("sp\xe4m")
    hdlr.ident = "h\xe4m-"
    logger.error("sp\xe4m")
    expected = [b"<11>sp\xc3\xa4m\x00", b"<11>sp\xc3\xa4m", b"<11>h\xc3\xa4m-sp\xc3\xa4m"]
    if server.socket_type == socket.SOCK_DGRAM:
        got = [d.data for d in server.wait_datagrams(3, TIMEOUT)]
        assert got == expected
    else:
        # A stream carries the three messages back to back (no framing).
        logger.removeHandler(hdlr)
        hdlr.close()
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.data == b"".join(expected)
    server.stop()


@pytest.mark.skipif(not IPV6, reason="IPv6 loopback (::1) is not available here")
def test_test_logging_ipv6_class_attribute_pattern(logger):
    """test_logging flips address_family on the class, then restores it."""
    cls = testservers.TestUDPServer
    cls.address_family = socket.AF_INET6
    try:
        server = cls(("::1", 0), None, 0.01)
        assert server.family == socket.AF_INET6
        server.start()
        hdlr = logging.handlers.SysLogHandler((server.server_address[0], server.port))
        logger.addHandler(hdlr)
        logger.error("v6")
        assert server.wait_datagrams(1, TIMEOUT)[0].data == b"<11>v6\x00"
        server.stop()
    finally:
        cls.address_family = socket.AF_INET
    if HAS_UNIX:
        # The subclass keeps its own family, whatever happened to the parent.
        assert testservers.TestUnixDatagramServer.address_family == socket.AF_UNIX
