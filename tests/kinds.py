"""One table of server kinds, for the thread-mode and process-mode contracts.

A Kind is one way of serving: a server class with its options (TLS among
them, since the swap of a plain socket for a TLS one is where races hide).
The classes come from ``testservers.__all__``; each has its rows in
ROWS, and a class without one is listed in MISSING, which a test checks is
empty, as Go's httptest tests run one table of constructors.

Each Kind builds its server around a test's ``body`` callable (or, in
process mode, none), makes a client call the handler once, and leaves a
handler blocked in a read.  The handlers are module-level functions, so
that a child process imports them by name; each raises AssertionError
when the client says "fail".
"""

import atexit
import functools
import itertools
import os
import shutil
import socket
import tempfile

import testservers
from testservers._base import _BaseServer

from conftest import TIMEOUT

HAS_UNIX = hasattr(socket, "AF_UNIX")

FAIL = "the handler saw fail"

_client_names = itertools.count()
_CLIENT_DIR = None


def _client_dir():
    global _CLIENT_DIR
    if _CLIENT_DIR is None:
        _CLIENT_DIR = tempfile.mkdtemp(prefix="ts-clients-")
        atexit.register(shutil.rmtree, _CLIENT_DIR, True)
    return _CLIENT_DIR


@functools.lru_cache(maxsize=None)
def client_context():
    """The client side of the bundled test certificates, made once."""
    return testservers.client_ssl_context()


def wrap(sock):
    """Do the client's TLS handshake on *sock*; return the TLS socket."""
    try:
        return client_context().wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


class _UnixDatagramClient(socket.socket):
    """A bound Unix datagram socket that removes its name on close."""

    def close(self):
        name = self.getsockname() if self.fileno() >= 0 else None
        super().close()
        if name:
            os.unlink(name)


# -- the handlers: module-level, so that a child process can import them ------------

def stream_echo(request, body=None):
    line = request.rfile.readline()
    if line == b"fail\n":
        raise AssertionError(FAIL)
    if body is not None:
        body(request)
    request.wfile.write(b"echo " + line)


def datagram_echo(request, body=None):
    if request.packet == b"fail":
        raise AssertionError(FAIL)
    if body is not None:
        body(request)
    request.wfile.write(b"echo " + request.packet)


def http_echo(request, body=None):
    if request.path == "/fail":
        raise AssertionError(FAIL)
    if body is not None:
        body(request)
    reply = b"echo " + request.path.encode("ascii")
    request.send_response(200)
    request.send_header("Content-Length", str(len(reply)))
    request.end_headers()
    request.wfile.write(reply)



def smtp_echo(peer, mailfrom, rcpttos, data, body=None):
    if "fail" in data:
        raise AssertionError(FAIL)
    if body is not None:
        body((peer, mailfrom, rcpttos, data))
    return "250 2.0.0 echo " + data.rpartition("\n")[2]

# -- the rows ------------------------------------------------------------------------

class Kind:
    """How to drive one server class, with its options, from the contracts."""

    echo = None                     # the module-level handler
    records = "connections"         # the record store a round trip adds to
    records_per_fail = 1            # what fail() adds to it
    handler_reads_socket = True     # a handler can block in a socket read

    def __init__(self, name, cls, unix=False, secure=None, **options):
        # secure: None (plain), "implicit" (TLS from the first byte) or
        # "starttls" (plain, then TLS on the client's request)
        self.name, self.cls, self.unix, self.secure = name, cls, unix, secure
        self.options = options

    def __repr__(self):
        return self.name

    def handler(self, body=None):
        """The handler: the echo, calling ``body(...)`` first if given."""
        return self.echo if body is None else functools.partial(self.echo, body=body)

    def make(self, body=None, poll_interval=0.5, tmp_path=None, process=False, **options):
        """Return a bound server whose handler calls *body*; with *process*,
        a :class:`testservers.ProcessServer` (and *body* must be None)."""
        addr = str(tmp_path / "s.sock") if self.unix else ("127.0.0.1", 0)
        build = self.cls.in_process if process else self.cls
        return build(addr, self.handler(body), poll_interval, **dict(self.options, **options))

    def connect(self, server, kind=socket.SOCK_STREAM):
        """Connect a client, over TLS for an implicit-TLS row."""
        if self.unix:
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.settimeout(TIMEOUT)
                sock.connect(server.server_address)
            except BaseException:
                sock.close()
                raise
        elif kind == socket.SOCK_DGRAM:
            sock = socket.socket(socket.AF_INET, kind)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", server.port))
        else:
            sock = socket.create_connection(("127.0.0.1", server.port), TIMEOUT)
        return wrap(sock) if self.secure == "implicit" else sock

    def wait_records(self, server, count):
        return getattr(server, "wait_" + self.records)(count, TIMEOUT)


class StreamKind(Kind):
    """TCP and Unix stream: the handler gets a StreamRequestHandler."""

    echo = staticmethod(stream_echo)

    def roundtrip(self, server, count=None):
        """Talk to the server once; with *count*, check the records too."""
        with self.connect(server) as sock:
            sock.sendall(b"ping\n")
            assert sock.makefile("rb").readline() == b"echo ping\n"
        if count is not None:
            conns = server.wait_connections(count, TIMEOUT, closed=True)
            assert [c.data for c in conns] == [b"ping\n"] * count

    def trigger(self, server):
        """Make the handler run; return what the caller must close."""
        sock = self.connect(server)
        sock.sendall(b"go\n")
        return sock

    def fail(self, server):
        with self.connect(server) as sock:
            sock.sendall(b"fail\n")
            assert sock.recv(100) == b""        # the handler raised

    def block_in_read(self, server, entered):
        """Leave a handler blocked reading from an idle client."""
        def body(request):
            entered.set()
            request.rfile.read()          # blocks until EOF or shutdown
        server._handler = self.handler(body)
        return self.trigger(server)


class DatagramKind(Kind):
    """UDP and Unix datagram: the handler gets a DatagramRequestHandler."""

    echo = staticmethod(datagram_echo)
    records = "datagrams"
    records_per_fail = 2
    handler_reads_socket = False

    def connect(self, server, kind=socket.SOCK_DGRAM):
        if not self.unix:
            return super().connect(server, kind)
        # A Unix datagram client binds a name of its own to get replies.
        sock = _UnixDatagramClient(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(TIMEOUT)
        sock.bind(os.path.join(_client_dir(), "client%d" % next(_client_names)))
        sock.connect(server.server_address)
        return sock

    def roundtrip(self, server, count=None):
        with self.connect(server) as sock:
            sock.send(b"ping")
            assert sock.recv(100) == b"echo ping"
        if count is not None:
            assert [d.data for d in self.wait_records(server, count)] == [b"ping"] * count

    def trigger(self, server):
        sock = self.connect(server)
        sock.send(b"go")
        return sock

    def fail(self, server):
        with self.connect(server) as sock:
            sock.send(b"fail")
            sock.send(b"ping")
            # Handled in order: the reply to "ping" means "fail" was handled.
            # (wait_datagrams() would raise the handler's error itself.)
            assert sock.recv(100) == b"echo ping"


class HTTPKind(Kind):
    """HTTP on TCP and Unix: the handler gets a BaseHTTPRequestHandler."""

    echo = staticmethod(http_echo)
    records = "requests"

    def get(self, server, path):
        conn = server.http_connection(TIMEOUT)      # HTTPS for a TLS row
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def roundtrip(self, server, count=None):
        assert self.get(server, "/ping") == (200, b"echo /ping")
        if count is not None:
            assert [r.path for r in self.wait_records(server, count)] == ["/ping"] * count

    def trigger(self, server):
        sock = self.connect(server)
        sock.sendall(b"GET /go HTTP/1.1\r\nHost: test\r\n\r\n")
        return sock

    def fail(self, server):
        assert self.get(server, "/fail")[0] == 500

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


def _rows():
    rows = {
        "TestTCPServer": [StreamKind("tcp", testservers.TestTCPServer),
                          StreamKind("tcp-tls", testservers.TestTCPServer,
                                     secure="implicit", tls=True)],
        "TestUDPServer": [DatagramKind("udp", testservers.TestUDPServer)],
        "TestHTTPServer": [HTTPKind("http", testservers.TestHTTPServer),
                           HTTPKind("https", testservers.TestHTTPServer,
                                    secure="implicit", tls=True)],
    }
    if HAS_UNIX:
        rows.update({
            "TestUnixStreamServer": [StreamKind("unix-stream",
                                                testservers.TestUnixStreamServer, unix=True)],
            "TestUnixDatagramServer": [DatagramKind("unix-datagram",
                                                    testservers.TestUnixDatagramServer,
                                                    unix=True)],
            "TestUnixHTTPServer": [HTTPKind("unix-http", testservers.TestUnixHTTPServer,
                                            unix=True)],
        })
    return rows


ROWS = _rows()

# The protocol servers keep their rows in modules of their own.
import kinds_smtp  # noqa: E402  (imports Kind from this module)
ROWS.update(kinds_smtp.ROWS)

#: Every public server class, in the order of testservers.__all__; a Unix
#: class only where Unix sockets exist.
SERVER_CLASSES = [
    obj for obj in (getattr(testservers, name) for name in testservers.__all__)
    if isinstance(obj, type) and issubclass(obj, _BaseServer)
    and (HAS_UNIX or not obj.unix_only)]

#: The table: the rows of every public server class, in that order.
KINDS = [row for cls in SERVER_CLASSES for row in ROWS.get(cls.__name__, ())]

#: The public server classes with no row: test_lifecycle fails on any.
MISSING = [cls.__name__ for cls in SERVER_CLASSES if not ROWS.get(cls.__name__)]
