"""HTTP/1.1 test servers on http.server: TestHTTPServer, TestUnixHTTPServer.

Handlers get a :class:`http.server.BaseHTTPRequestHandler`, as in CPython's
test_logging (``_httpconn`` reads the requests); with no handler, the
server answers from expectations (``_httpcanned``).  This module holds the
servers and the response writer that frames what handlers write, so that
each response goes out in one write, with Content-Length added when the
handler framed nothing.  Each connection has a thread of its own (see
``_stream``).
"""

import http.client
import io
import re
import socket
import urllib.parse

from ._httpcanned import _CannedMixin
from ._httpconn import (KEEP_ALIVE_TIMEOUT, MAX_BODY_SIZE, MAX_HEADER_SIZE, MAX_HEADERS,
                        MAX_REQUEST_LINE, REQUEST_TIMEOUT, _RequestHandler)
from ._records import WAIT_TIMEOUT, _awaitable
from ._stream import _StreamServer

__all__ = ["TestHTTPServer", "TestUnixHTTPServer"]

RESPONSE_BUFFER = 1024 * 1024   # unframed response bytes held before streaming

# The writer's states.  _HEAD: the head is not complete yet.  _FRAMED: the
# head frames the body (or there is none); writes pass through.  _UNFRAMED:
# the body is held until the handler returns.  _STREAM: unframed, but
# flushed; writes pass through and the connection closes after.  _RAW: no
# status line; bytes pass through and the connection closes after.
_HEAD, _FRAMED, _UNFRAMED, _STREAM, _RAW = range(5)
_PASSING = (_FRAMED, _STREAM, _RAW)

# In the lower-cased response head: the status code, and the fields that
# decide how the body is framed and whether the connection stays open.
_STATUS_LINE = re.compile(rb"http/[0-9]\.[0-9] ([1-5][0-9][0-9])(?: |\r\n)")
_FRAMING_FIELD = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:([^\r\n]*)")


class _ResponseWriter(io.BufferedIOBase):
    """``wfile``: hold what the handler writes, send each response whole.

    The head is held until it is complete.  If it carries Content-Length
    or Transfer-Encoding (or the response has no body: HEAD, 204, 304),
    each body write is sent at once, the first together with the head.
    Otherwise the body is held until the handler returns and sent in the
    same write as the head, with Content-Length added; ``flush()``, or
    more than :data:`RESPONSE_BUFFER` bytes held, sends it early instead,
    with ``Connection: close``, the body ending when the connection does.
    Bytes that do not start with a status line pass through untouched,
    and the connection closes after them.
    """

    def __init__(self, sock):
        self._sock = sock
        self.failed = None          # the OSError a send raised
        self.start(None, "GET", None, True)

    def start(self, record, method, edit, close_unframed):
        self._record, self._method = record, method
        self._edit = edit           # a Connection value for the head, or None
        self._close_unframed = close_unframed
        self._held = bytearray()
        self._state = _HEAD
        self._body_at = 0           # where the body starts in _held
        self._has_conn = False
        self._length = None         # the Content-Length the handler declared
        self._body_sent = 0
        self.must_close = False     # the connection must close after this
        self.sent = False

    def writable(self):
        return True

    def fileno(self):
        return self._sock.fileno()

    def write(self, data):
        if self._sock is None:
            raise ValueError("write to a closed response")
        size = memoryview(data).nbytes
        state = self._state
        if state in _PASSING and not self._held:
            if state != _FRAMED or self._method != "HEAD":    # HEAD gets no body
                self._body_sent += size
                self._sock_send(data)
            return size
        self._held += data
        if state == _HEAD:
            self._scan()
            state = self._state
        if state == _FRAMED and self._method == "HEAD":
            del self._held[self._body_at:]
        if state in _PASSING:
            if len(self._held) > self._body_at:
                self._send()
        elif state == _UNFRAMED and len(self._held) - self._body_at > RESPONSE_BUFFER:
            self._stream()
        return size

    def flush(self):
        if self._sock is None:
            return
        if self._state == _HEAD and self._held:
            self._state, self.must_close = _RAW, True
        if self._state == _UNFRAMED:
            self._stream()
        elif self._held:
            self._send()

    def close(self):
        self._sock = None           # flush() does nothing now
        super().close()

    def finish(self):
        """Send what the handler left; return False if it wrote nothing."""
        if self._state == _HEAD:
            if not self._held:
                return False
            self._state, self.must_close = _RAW, True
        elif self._state == _UNFRAMED:
            self._insert(b"Content-Length: %d" % (len(self._held) - self._body_at))
            self._connection_header(b"close" if self._close_unframed else self._edit)
            self._state = _FRAMED
        if self._held:
            self._send()
        if self._length is not None and self._body_sent < self._length:
            self.must_close = True  # the client would wait for the rest
        return True

    def discard(self):
        self._held.clear()
        self._state, self._body_at, self._length = _HEAD, 0, None

    def _scan(self):
        while self._state == _HEAD:
            held = self._held
            if not held.startswith(b"HTTP/"):
                if len(held) >= 5 or not b"HTTP/".startswith(held):
                    self._state, self.must_close = _RAW, True
                return                              # else wait for more
            end = held.find(b"\r\n\r\n")
            if end < 0:
                if len(held) > MAX_HEADER_SIZE:
                    self._state, self.must_close = _RAW, True
                return
            head = bytes(held[:end + 2]).lower()
            status = _STATUS_LINE.match(head)
            if status is None:
                self._state, self.must_close = _RAW, True
                return
            code = int(status.group(1))
            if code < 200 and code != 101:          # interim: send it now
                self._sock_send(bytes(held[:end + 4]))
                del held[:end + 4]
                continue
            fields = {}
            for name, value in _FRAMING_FIELD.findall(head):
                fields.setdefault(name, []).append(value.strip())
            conn = {t.strip() for v in fields.get(b"connection", ()) for t in v.split(b",")}
            self._has_conn = bool(conn)
            self.must_close = b"close" in conn
            self._body_at = end + 4
            if self._record is not None:
                self._record.status = code
            if code == 101 or (self._method == "CONNECT" and code < 300):
                self._state, self._body_at, self.must_close = _RAW, 0, True
            elif (code in (204, 304) or self._method == "HEAD"
                  or b"content-length" in fields or b"transfer-encoding" in fields):
                self._state = _FRAMED
                lengths = fields.get(b"content-length", ())
                if (len(lengths) == 1 and lengths[0].isdigit() and code not in (204, 304)
                        and self._method != "HEAD" and b"transfer-encoding" not in fields):
                    self._length = int(lengths[0])
                self._connection_header(self._edit)
            else:
                self._state = _UNFRAMED

    def _insert(self, line):
        at = self._body_at - 2
        self._held[at:at] = line + b"\r\n"
        self._body_at += len(line) + 2

    def _connection_header(self, value):
        if value and not self._has_conn:
            self._insert(b"Connection: " + value)
            self._has_conn = True
            self.must_close = self.must_close or value == b"close"

    def _stream(self):
        self._connection_header(b"close")
        self.must_close = True
        self._state = _STREAM
        self._send()

    def _send(self):
        held, self._held = self._held, bytearray()
        self._body_sent += len(held) - self._body_at
        self._body_at = 0
        self._sock_send(held)

    def _sock_send(self, data):
        self.sent = True
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.failed = exc
            raise


class TestHTTPServer(_CannedMixin, _StreamServer):
    """An HTTP/1.1 server that calls a handler, or answers from expectations.

    ``TestHTTPServer(listen_addr=None, handler=None, poll_interval=0.5,
    log=False, sslctx=None, *, tls=False, client_auth=False, allow_unmatched=False,
    strict=False, keep_alive=True, close_unframed=True, request_timeout=10.0,
    keep_alive_timeout=60.0, max_request_line=8192, max_header_size=65536,
    max_headers=100, max_body_size=67108864)``

    *handler* is called with a :class:`http.server.BaseHTTPRequestHandler`
    for every request, whatever its method, as in CPython's test_logging.
    Expectations registered with :meth:`expect` answer first; what none
    matches goes to the handler, or with ``None`` is answered 404 and
    recorded as an :exc:`UnexpectedRequest` unless *allow_unmatched*.
    *strict* makes :meth:`stop` raise :exc:`AssertionError` for
    expectations not used as declared.  *log* sends a line per response to the
    ``testservers`` logger.  *sslctx* serves HTTPS; ``tls=True`` does so
    with the bundled test certificate (a name from ``TLS_SCENARIOS`` with
    one clients must refuse), and *client_auth* asks clients for a
    certificate from the test CA.  *keep_alive* false closes every
    connection after one response; *close_unframed* false keeps it open
    after a response the handler did not frame.  The other options are
    limits (414, 431, 413) and timeouts (408; idle connections close).

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`url`,
    :meth:`http_connection`, :meth:`expect`, :meth:`check_expectations`,
    :meth:`clear_expectations`, :meth:`wait_requests`,
    :meth:`wait_connections`, :meth:`wait_for`, :meth:`take_errors`,
    :meth:`clear_records`.  Attributes: ``port``, ``server_port``,
    ``server_address``, ``ready``, ``requests``, ``connections``,
    ``expectations``, ``errors``.
    """

    client_speaks_first = True
    handler_class_base = None       # handlers are callables handler(request)

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5, log=False,
                 sslctx=None, *, tls=False, client_auth=False, allow_unmatched=False,
                 strict=False,
                 keep_alive=True,
                 close_unframed=True, request_timeout=REQUEST_TIMEOUT,
                 keep_alive_timeout=KEEP_ALIVE_TIMEOUT,
                 max_request_line=MAX_REQUEST_LINE, max_header_size=MAX_HEADER_SIZE,
                 max_headers=MAX_HEADERS, max_body_size=MAX_BODY_SIZE):
        for name, value in (("request_timeout", request_timeout),
                            ("keep_alive_timeout", keep_alive_timeout),
                            ("max_request_line", max_request_line),
                            ("max_header_size", max_header_size),
                            ("max_headers", max_headers)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError("%s must be a positive number, not %r" % (name, value))
        if max_body_size is not None and (not isinstance(max_body_size, int)
                                          or max_body_size < 0):
            raise ValueError("max_body_size must be None or an int >= 0, not %r"
                             % (max_body_size,))
        if not isinstance(strict, bool):
            raise TypeError("strict must be True or False, not %r" % (strict,))
        self.log = log
        self.allow_unmatched = allow_unmatched
        self.strict = strict
        self.keep_alive = keep_alive
        self.close_unframed = close_unframed
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.max_request_line = max_request_line
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_body_size = max_body_size
        self._expectations = []
        super().__init__(listen_addr, handler, poll_interval, sslctx=sslctx, tls=tls,
                         client_auth=client_auth)

    def _serve_connection(self, sock, peer, record):
        handler = _RequestHandler(sock, peer, self, record, _ResponseWriter(sock))
        if not self._stopping:
            handler.drain()

    @property
    def requests(self):
        """A list of the :class:`Request` records, oldest first."""
        return self._snapshot("requests")

    def wait_requests(self, count=1, timeout=None):
        """Wait until *count* requests were read; return them all.

        A request is recorded once it has been read, before the handler
        runs; its ``status`` is set when the response head is sent.
        """
        return self._wait_count("requests", count, timeout)

    async_wait_requests = _awaitable(wait_requests)

    def _host(self):
        host = self.server_address[0]
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        return host

    def url(self, path="/"):
        """Return the URL of *path* on this server: scheme, host, port.

        An IPv6 host is put in brackets; a server bound to all interfaces
        is addressed on the loopback interface.
        """
        if not path.startswith("/"):
            path = "/" + path
        host = self._host()
        if ":" in host:
            host = "[%s]" % host.replace("%", "%25")     # RFC 6874 zone ids
        return "%s://%s:%d%s" % ("https" if self.sslctx else "http", host, self.port, path)

    def http_connection(self, timeout=WAIT_TIMEOUT, context=None):
        """Return an unconnected :class:`http.client.HTTPConnection` to here.

        Over TLS it is an :class:`~http.client.HTTPSConnection` that
        verifies the server with *context* (default: one that trusts the
        bundled test CA).  For a Unix server it connects to the path.
        """
        if self.sslctx is not None and context is None:
            from ._tls import client_ssl_context
            context = client_ssl_context()
        if self.family == getattr(socket, "AF_UNIX", None):
            return _UnixHTTPConnection(self.server_address, timeout, context)
        if self.sslctx is not None:
            return http.client.HTTPSConnection(self._host(), self.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection(self._host(), self.port, timeout=timeout)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection to a Unix socket path (over TLS with a context)."""

    def __init__(self, path, timeout, context):
        super().__init__("localhost", timeout=timeout)
        self._path, self._context = path, context

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname="localhost")
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class TestUnixHTTPServer(TestHTTPServer):
    """:class:`TestHTTPServer` on a Unix stream socket.

    *listen_addr* is a filesystem path, or ``None`` for one in a private
    temporary directory.  :meth:`url` returns an ``http+unix://`` URL
    (the path percent-encoded as the host), which :mod:`urllib` cannot
    open; :meth:`http_connection` returns a client that can.
    """

    address_family = getattr(socket, "AF_UNIX", None)
    unix_only = True

    def url(self, path="/"):
        """Return ``http+unix://`` and the quoted socket path, then *path*."""
        if not path.startswith("/"):
            path = "/" + path
        return "%s+unix://%s%s" % ("https" if self.sslctx else "http",
                                   urllib.parse.quote(self.server_address, safe=""), path)
