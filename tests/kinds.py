"""One row per server class, so the lifecycle contract runs over all of them.

A new server class inherits every lifecycle test by adding a Kind here, as
Go's httptest tests run one table of constructors.  Each Kind knows how to
build its server around a test's ``body`` callable, how to make a client
call the handler once, and how to leave a server thread blocked in a read.
"""

import atexit
import itertools
import os
import shutil
import socket
import tempfile

import testservers

from conftest import TIMEOUT

HAS_UNIX = hasattr(socket, "AF_UNIX")

_client_names = itertools.count()


def _client_dir():
    global _CLIENT_DIR
    if _CLIENT_DIR is None:
        _CLIENT_DIR = tempfile.mkdtemp(prefix="ts-clients-")
        atexit.register(shutil.rmtree, _CLIENT_DIR, True)
    return _CLIENT_DIR


_CLIENT_DIR = None


class _UnixDatagramClient(socket.socket):
    """A bound Unix datagram socket that removes its name on close."""

    def close(self):
        name = self.getsockname() if self.fileno() >= 0 else None
        super().close()
        if name:
            os.unlink(name)


class Kind:
    """How to drive one server class from the generic lifecycle tests."""

    cls = None
    unix = False
    handler_reads_socket = True     # a handler can block in a socket read

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name

    def make(self, body=None, poll_interval=0.5, tmp_path=None, **options):
        """Return a bound server whose handler calls ``body(request)``."""
        addr = str(tmp_path / "s.sock") if self.unix else ("127.0.0.1", 0)
        return self.cls(addr, self.handler(body), poll_interval, **options)

    def connect(self, server, kind=socket.SOCK_STREAM):
        if self.unix:
            sock = socket.socket(socket.AF_UNIX, kind)
            sock.settimeout(TIMEOUT)
            sock.connect(server.server_address)
            return sock
        if kind == socket.SOCK_DGRAM:
            sock = socket.socket(socket.AF_INET, kind)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", server.port))
            return sock
        return socket.create_connection(("127.0.0.1", server.port), TIMEOUT)


class StreamKind(Kind):
    """TCP and Unix stream: the handler gets a StreamRequestHandler."""

    def handler(self, body):
        def handle(request):
            line = request.rfile.readline()
            if body is not None:
                body(request)
            request.wfile.write(b"echo " + line)
        return handle

    def roundtrip(self, server):
        with self.connect(server) as sock:
            sock.sendall(b"ping\n")
            assert sock.makefile("rb").readline() == b"echo ping\n"

    def trigger(self, server):
        """Make the handler run; return what the caller must close."""
        sock = self.connect(server)
        sock.sendall(b"go\n")
        return sock

    def block_in_read(self, server, entered):
        """Leave a handler blocked reading from an idle client."""
        def body(request):
            entered.set()
            request.rfile.read()          # blocks until EOF or shutdown
        server._handler = self.handler(body)
        return self.trigger(server)


class DatagramKind(Kind):
    """UDP and Unix datagram: the handler gets a DatagramRequestHandler."""

    handler_reads_socket = False

    def handler(self, body):
        def handle(request):
            if body is not None:
                body(request)
            request.wfile.write(b"echo " + request.packet)
        return handle

    def connect(self, server, kind=socket.SOCK_DGRAM):
        if not self.unix:
            return super().connect(server, kind)
        # A Unix datagram client binds a name of its own to get replies.
        sock = _UnixDatagramClient(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(TIMEOUT)
        sock.bind(os.path.join(_client_dir(), "client%d" % next(_client_names)))
        sock.connect(server.server_address)
        return sock

    def roundtrip(self, server):
        with self.connect(server) as sock:
            sock.send(b"ping")
            assert sock.recv(100) == b"echo ping"

    def trigger(self, server):
        sock = self.connect(server)
        sock.send(b"go")
        return sock


KINDS = [
    StreamKind("tcp"),
    DatagramKind("udp"),
]
KINDS[0].cls = testservers.TestTCPServer
KINDS[1].cls = testservers.TestUDPServer
if HAS_UNIX:
    unix_stream = StreamKind("unix-stream")
    unix_stream.cls, unix_stream.unix = testservers.TestUnixStreamServer, True
    unix_dgram = DatagramKind("unix-datagram")
    unix_dgram.cls, unix_dgram.unix = testservers.TestUnixDatagramServer, True
    KINDS += [unix_stream, unix_dgram]

# The protocol servers keep their rows in modules of their own.
import kinds_smtp  # noqa: E402  (imports Kind from this module)
KINDS += kinds_smtp.KINDS


class HTTPKind(Kind):
    """HTTP on TCP and Unix: the handler gets a BaseHTTPRequestHandler."""

    def handler(self, body):
        def handle(request):
            if body is not None:
                body(request)
            reply = b"echo " + request.path.encode("ascii")
            request.send_response(200)
            request.send_header("Content-Length", str(len(reply)))
            request.end_headers()
            request.wfile.write(reply)
        return handle

    def roundtrip(self, server):
        conn = server.http_connection(TIMEOUT)
        try:
            conn.request("GET", "/ping")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"echo /ping")
        finally:
            conn.close()

    def trigger(self, server):
        sock = self.connect(server)
        sock.sendall(b"GET /go HTTP/1.1\r\nHost: test\r\n\r\n")
        return sock

    def block_in_read(self, server, entered):
        """Leave the connection idle on keep-alive, the server reading it."""
        sock = self.trigger(server)
        reply = b""
        while not reply.endswith(b"echo /go"):
            data = sock.recv(4096)
            assert data, "the server closed a keep-alive connection"
            reply += data
        entered.set()
        return sock


http_kind = HTTPKind("http")
http_kind.cls = testservers.TestHTTPServer
KINDS.append(http_kind)
if HAS_UNIX:
    unix_http = HTTPKind("unix-http")
    unix_http.cls, unix_http.unix = testservers.TestUnixHTTPServer, True
    KINDS.append(unix_http)
