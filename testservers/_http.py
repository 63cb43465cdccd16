"""HTTP/1.1 test servers on http.server: TestHTTPServer, TestUnixHTTPServer.

Handlers get a :class:`http.server.BaseHTTPRequestHandler`, as in CPython's
test_logging, or are such a class themselves, as with
:class:`http.server.HTTPServer`.  The requests are read by the sans-IO
core (``_httpproto``) through ``_httpconn``; responses go out through the
writer in ``_httpwire``; with no handler, the server answers from
expectations (``_httpcanned``).  Large request bodies are spooled to
files in a directory of the server's, removed at :meth:`stop`.  Each
connection has a thread of its own (see ``_stream``).
"""

import http.client
import http.server
import shutil
import socket
import tempfile
import threading
import urllib.parse

from ._httpbody import SPOOL_THRESHOLD
from ._httpcanned import _Expectations
from ._httpadapter import adapted
from ._httpconn import _Exchange, _RequestHandler
from ._httpproto import (KEEP_ALIVE_TIMEOUT, MAX_BODY_SIZE, MAX_HEADER_SIZE, MAX_HEADERS,
                         MAX_REQUEST_LINE, REQUEST_TIMEOUT)
from ._faults import _check_flags, _check_int
from ._records import WAIT_TIMEOUT, _awaitable
from ._stream import _StreamServer

__all__ = ["TestHTTPServer", "TestUnixHTTPServer"]

class TestHTTPServer(_StreamServer):
    """An HTTP/1.1 server that calls a handler, or answers from expectations.

    ``TestHTTPServer(listen_addr=None, handler=None, poll_interval=0.5,
    log=False, sslctx=None, *, tls=False, client_auth=False, allow_unmatched=False,
    strict=False, keep_alive=True, close_unframed=True, request_timeout=10.0,
    keep_alive_timeout=60.0, max_request_line=8192, max_header_size=65536,
    max_headers=100, max_body_size=67108864, spool_threshold=1048576)``

    *handler* is called with a :class:`http.server.BaseHTTPRequestHandler`
    for every request, whatever its method, as in CPython's test_logging;
    or it is a :class:`~http.server.BaseHTTPRequestHandler` subclass,
    which serves each connection as under :class:`http.server.HTTPServer`.
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
    Request bodies larger than *spool_threshold* bytes are kept in
    temporary files, which :meth:`stop` removes.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`url`,
    :meth:`http_connection`, :meth:`expect`, :meth:`check_expectations`,
    :meth:`clear_expectations`, :meth:`wait_requests`,
    :meth:`wait_connections`, :meth:`wait_for`, :meth:`take_errors`,
    :meth:`clear_records`.  Attributes: ``port``, ``server_port``,
    ``server_address``, ``ready``, ``requests``, ``connections``,
    ``expectations``, ``errors``.
    """

    client_speaks_first = True
    handler_class_base = http.server.BaseHTTPRequestHandler     # or a callable

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5, log=False,
                 sslctx=None, *, tls=False, client_auth=False, allow_unmatched=False,
                 strict=False,
                 keep_alive=True,
                 close_unframed=True, request_timeout=REQUEST_TIMEOUT,
                 keep_alive_timeout=KEEP_ALIVE_TIMEOUT,
                 max_request_line=MAX_REQUEST_LINE, max_header_size=MAX_HEADER_SIZE,
                 max_headers=MAX_HEADERS, max_body_size=MAX_BODY_SIZE,
                 spool_threshold=SPOOL_THRESHOLD):
        for name, value in (("request_timeout", request_timeout),
                            ("keep_alive_timeout", keep_alive_timeout),
                            ("max_request_line", max_request_line),
                            ("max_header_size", max_header_size),
                            ("max_headers", max_headers)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError("%s must be a number, not %r" % (name, value))
            if not value > 0:
                raise ValueError("%s must be a positive number, not %r" % (name, value))
        if max_body_size is not None:
            _check_int("max_body_size", max_body_size)
        _check_int("spool_threshold", spool_threshold)
        _check_flags(log=log, allow_unmatched=allow_unmatched, strict=strict,
                     keep_alive=keep_alive, close_unframed=close_unframed)
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
        self.spool_threshold = spool_threshold
        self._spool_lock = threading.Lock()
        self._spool_dir = None
        self._canned = _Expectations(self)      # a part: the expectations
        super().__init__(listen_addr, handler, poll_interval, sslctx=sslctx, tls=tls,
                         client_auth=client_auth)

    def _serve_connection(self, sock, peer, record):
        pump = sock._testservers_pump = _Exchange(self, sock, record)
        handler = self._handler
        try:
            (adapted(handler) if isinstance(handler, type) else _RequestHandler)(
                sock, peer, self)
        finally:
            pump.close()
        pump.end()

    def _spool_file(self):
        """Return a new file for a request body in this server's spool directory."""
        with self._spool_lock:
            if self._spool_dir is None:
                self._spool_dir = tempfile.mkdtemp(prefix="testservers-http-")
            where = self._spool_dir
        return tempfile.NamedTemporaryFile(dir=where, prefix="body-", delete=False)

    def stop(self, timeout=None):
        """Stop serving as the base does and remove the spooled request
        bodies; then, when ``strict``, check the expectations."""
        try:
            super().stop(timeout)
        finally:
            with self._spool_lock:
                where, self._spool_dir = self._spool_dir, None
            if where is not None:
                shutil.rmtree(where, ignore_errors=True)
        if self.strict:
            self._canned.check_after_stop()

    def restart(self, timeout=None):
        """Stop, then start again on the same port (or path); no strict check."""
        return self._canned.waived(super().restart, timeout)

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            return super().__exit__(*exc_info)
        # The exception leaving the block says more than the expectations
        # it left unused: do not replace it with theirs, now or later.
        try:
            return self._canned.waived(super().__exit__, *exc_info)
        finally:
            self._canned.settle()

    async def __aexit__(self, *exc_info):
        if exc_info[0] is None:
            return await super().__aexit__(*exc_info)
        self._canned.waive()            # as __exit__: the exception wins
        try:
            return await super().__aexit__(*exc_info)
        finally:
            self._canned.waive(-1)
            self._canned.settle()

    # -- expectations (the part in _httpcanned) --------------------------------

    def expect(self, method, path, *, query=None, match_headers=None, match_body=None,
               match_json=None, match_form=None, match=None, status=200, headers=None,
               body=b"", json=None, handler=None, delay=0.0, chunk_delay=0.0,
               truncate=None, times=None, ordered=False):
        """Answer requests that match with a canned response, or a handler.

        *method* (``None``: any; ``"GET"`` also answers HEAD), *path* (as
        sent, or a compiled :mod:`re` pattern; a str may carry the query
        after ``?``), *query* (a raw str, or a dict compared with
        :attr:`Request.params`, values as strings), *match_headers* (name
        to value, pattern, or ``None`` for absent), *match_body* (bytes,
        or str compared with the decoded text), *match_json* (compared as
        data), *match_form* (fields that must have those values) and
        *match* (a predicate of the :class:`Request`) decide which requests
        it answers.  The answer is *status*, *headers* and *body* (bytes,
        str, or an iterable of pieces sent chunked, *chunk_delay* seconds
        apart) or *json*, cut after *truncate* body bytes if given; or
        *handler*, called with the request object as a server handler is.
        *delay* seconds pass first.  *times* (``None``: always) bounds how
        often it answers; *ordered* ones answer in turn.  Every argument
        is checked now.  Return the :class:`Expectation`.
        """
        return self._canned.make(method, path, query, match_headers, match_body, match_json,
                                 match_form, match, status, headers, body, json, handler,
                                 delay, chunk_delay, truncate, times, ordered)

    @property
    def expectations(self):
        """The registered :class:`Expectation` objects, oldest first."""
        return self._canned.snapshot()

    def clear_expectations(self):
        """Forget every expectation."""
        self._canned.clear()

    def check_expectations(self):
        """Raise :exc:`AssertionError` unless every expectation was used.

        Used means: answered at least once, and exactly ``times`` times when
        ``times`` was given.  ``stop()`` checks this too when ``strict``.
        """
        self._canned.check()

    def _answer(self, request):
        """Answer *request* (the request object): expectations first."""
        self._canned.answer(request)

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


    def url(self, path="/"):
        """Return the URL of *path* on this server: scheme, host, port.

        An IPv6 host is put in brackets; a server bound to all interfaces
        is addressed on the loopback interface.
        """
        if not path.startswith("/"):
            path = "/" + path
        host = self._client_host()
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
            return http.client.HTTPSConnection(self._client_host(), self.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection(self._client_host(), self.port, timeout=timeout)


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
