"""Safety by default: loopback unless told otherwise, a limit on every
record store and buffer with a clear error past it, and nothing received
ever evaluated or unpickled.  (The protocol limits themselves, 413/414/431
and SMTP's 500/552/452, are tested in test_http.py, test_smtp.py and
test_smtpproto.py; the Limits section of Doc/library/testservers.rst lists
them all.)
"""

import ast
import http.client
import os
import socket
import threading

import pytest

import testservers
from conftest import TIMEOUT
from kinds import HAS_UNIX, KINDS

PACKAGE = os.path.dirname(testservers.__file__)
INET_CLASSES = [testservers.TestTCPServer, testservers.TestUDPServer,
                testservers.TestSMTPServer, testservers.TestHTTPServer]


# -- loopback by default ---------------------------------------------------------

@pytest.mark.parametrize("addr", [None, 0], ids=["None", "port-0"])
@pytest.mark.parametrize("cls", INET_CLASSES, ids=lambda c: c.__name__)
def test_binds_loopback_when_given_no_host(cls, addr):
    server = cls(addr)
    try:
        assert server.family == socket.AF_INET
        assert server.server_address[0] == "127.0.0.1"
        assert server.socket.getsockname()[0] == "127.0.0.1"
    finally:
        server.stop()


def test_child_process_server_binds_loopback_too():
    server = testservers.TestTCPServer.in_process(None)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()


@pytest.mark.parametrize("sink", ["smtp", "http", "tcp", "udp", "syslog"])
def test_command_line_listens_on_loopback_by_default(sink):
    from testservers import _cli
    parser = _cli._parser()
    args = parser.parse_args([sink])
    _cli._check(args, parser)       # where the defaults are filled in
    assert args.address == ("127.0.0.1", 0)


# -- record stores ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS, ids=repr)
def test_every_record_store_stops_at_max_records(kind, tmp_path):
    server = kind.make(None, 0.5, tmp_path)
    server.max_records = 2
    with pytest.raises(OverflowError, match="max_records"):
        with server:
            for _ in range(3):
                kind.roundtrip(server)
            stores = [k for k in ("connections", "datagrams", "requests", "messages")
                      if getattr(server, k, None)]
            assert stores and all(len(getattr(server, k)) == 2 for k in stores)
    assert all(isinstance(e, OverflowError) for e in server.errors)


def test_handler_errors_stop_at_max_records():
    last = threading.Event()

    def handler(request):
        if request.packet == b"5":
            last.set()
        raise ValueError(request.packet)

    server = testservers.TestUDPServer(None, handler)
    server.max_records = 3
    with pytest.raises(ValueError) as info:
        with server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                for i in range(6):
                    c.sendto(b"%d" % i, server.server_address)
            assert last.wait(TIMEOUT)
    # Three handler errors, then the datagram store's own overflow, and
    # the last three handler errors only counted.
    errors = server.errors
    assert [e.args[0] for e in errors[:3]] == [b"0", b"1", b"2"]
    assert isinstance(errors[3], OverflowError) and len(errors) == 4
    assert "3 more were not kept (max_records)" in str(info.value.__notes__)


def test_expectation_requests_stop_at_max_records():
    with testservers.TestHTTPServer() as server:
        exp = server.expect("GET", "/x")
        server.max_records = 2
        conn = server.http_connection(TIMEOUT)
        for _ in range(4):
            conn.request("GET", "/x")
            assert conn.getresponse().read() == b""
        conn.close()
        assert exp.count == 4 and len(exp.requests) == 2
        errors = server.take_errors()
    assert {type(e) for e in errors} == {OverflowError}
    assert any("later ones were only counted" in str(e) for e in errors)


# -- buffers -------------------------------------------------------------------------------

def test_tcp_connection_data_stops_at_max_data():
    server = testservers.TestTCPServer()
    server.max_data = 1000
    with pytest.raises(OverflowError, match=r"max_data \(1000 bytes\).*first 1000"):
        with server:
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
                c.sendall(bytes(range(256)) * 20)
            (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
            assert conn.data == (bytes(range(256)) * 4)[:1000]
            assert conn.bytes_received == 5120
    assert len(server.errors) == 1         # once per connection, not per read


@pytest.mark.skipif(not HAS_UNIX, reason="needs Unix sockets")
def test_unix_datagram_over_max_packet_size_is_an_error_not_a_cut(tmp_path):
    # (fixed) recvfrom() into a 256 KiB buffer cut a longer datagram (a
    # sender can raise SO_SNDBUF) and the cut one was recorded as if whole.
    path = str(tmp_path / "d.sock")
    with testservers.TestUnixDatagramServer(path) as server:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            try:
                c.sendto(b"d" * (server.max_packet_size + 1000), path)
            except OSError:
                pytest.skip("this kernel refuses datagrams over 256 KiB anyway")
            c.sendto(b"d" * server.max_packet_size, path)
            c.sendto(b"after", path)
        with pytest.raises(OverflowError, match="max_packet_size"):
            server.wait_datagrams(2, TIMEOUT)
        got = server.wait_datagrams(2, TIMEOUT)
        assert [len(d.data) for d in got] == [server.max_packet_size, 5]
        server.take_errors()


def test_http_limits_name_their_parameter():
    with testservers.TestHTTPServer(max_request_line=20, max_header_size=100,
                                    max_headers=2, max_body_size=10,
                                    allow_unmatched=True) as server:
        for request, setting in [
                (b"GET /" + b"a" * 30 + b" HTTP/1.1\r\n\r\n", "max_request_line"),
                (b"GET / HTTP/1.1\r\nX: " + b"b" * 200 + b"\r\n\r\n", "max_header_size"),
                (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "max_headers"),
                (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", "max_body_size")]:
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
                c.sendall(request)
                response = http.client.HTTPResponse(c)
                response.begin()
                assert response.status in (413, 414, 431)
                assert setting in response.read().decode()
                response.close()


# -- nothing received is evaluated ------------------------------------------------------

# Calls that run or rebuild code from data.  Process mode (_process*.py)
# unpickles what its own parent or child wrote to a pipe, never what came
# off the network.
_BUILTINS = {"eval", "exec", "compile", "__import__"}
_MODULES = {"pickle": {"load", "loads", "Unpickler"}, "marshal": {"load", "loads"},
            "importlib": {"import_module"}, "shelve": {"open"}}
_ALLOWED = {("_logformats.py", "Unpickler")}    # subclassed: it refuses every global


def test_no_module_evaluates_or_unpickles_what_it_receives():
    found = []
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in _BUILTINS:
                found.append("%s:%d %s" % (name, node.lineno, node.id))
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.attr in _MODULES.get(node.value.id, ())
                  and (name, node.attr) not in _ALLOWED
                  and not name.startswith("_process")):
                found.append("%s:%d %s.%s" % (name, node.lineno, node.value.id, node.attr))
    assert found == []
    # The one unpickler of received bytes refuses every global (test_logformats).
    from testservers._logformats import _PlainUnpickler
    assert "find_class" in vars(_PlainUnpickler)

