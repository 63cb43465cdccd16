"""One HTTP/1.1 connection: the request object handlers get, and its loop.

:class:`_RequestHandler` is the :class:`http.server.BaseHTTPRequestHandler`
a handler receives.  Its ``handle()`` serves a whole connection, reading
each request itself (RFC 9112) instead of through ``parse_request()``:
request heads with limits and timeouts and CRLF line ends; the whole body
before the handler runs, by Content-Length or chunked coding, after a 100
Continue when one is expected.  Requests it cannot accept it answers
itself (400, 408, 413, 414, 417, 431, 501, 505) and then closes.  What the
handler writes goes through the server's response writer (``_http``).
"""

import http.server
import io
import re
import socket
import time

from ._base import _log
from ._httpcanned import Request, _split_target
from ._httpreply import _Reply, _started

__all__ = []

REQUEST_TIMEOUT = 10.0          # s for each read of a request in progress -> 408
KEEP_ALIVE_TIMEOUT = 60.0       # s an idle persistent connection stays open
MAX_REQUEST_LINE = 8192         # bytes, without CRLF -> 414
MAX_HEADER_SIZE = 65536         # bytes of header lines (and of trailers) -> 431
MAX_HEADERS = 100               # header lines, http.client's own limit -> 431
MAX_BODY_SIZE = 64 * 1024 * 1024    # bytes of decoded body -> 413
LINGER_TIMEOUT = 2.0            # s to drain a client after an error response
_MAX_EMPTY_LINES = 8            # CRLFs ignored before a request line (RFC 9112 2.2)

_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"                   # RFC 9110 5.6.2
_TOKEN = re.compile(_TCHARS + rb"+")
_METHOD = re.compile(_TCHARS + rb"*")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_REQUEST_LINE = re.compile(rb"(%s+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])" % _TCHARS)
# RFC 9112 7.1; the extensions are ignored, but they hold no NUL, bare CR
# or other control character (RFC 9110 5.5).
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[\t\x20-\x7e\x80-\xff]*)?")
_DIGITS = re.compile(r"[0-9]{1,18}")
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_READ_PIECE = 65536             # a body is read in pieces of at most this many bytes
_OWS = " \t"                    # RFC 9110 5.6.3; str.strip() would also eat \x0b, \x85...


class _Reject(Exception):
    """A request the server answers itself, with *status*, and then closes."""

    def __init__(self, status, reason):
        super().__init__(status, reason)
        self.status, self.reason = status, reason


def _diagnose(line):
    """Raise the _Reject that says what is wrong with a bad request line."""
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise _Reject(400, "malformed request line: %r" % line[:80])
    raise _Reject(400, "malformed HTTP version: %r" % parts[2][:20])


class _SocketReader(io.RawIOBase):
    """The raw stream under ``rfile``: the socket, its timeout, a deadline.

    Like :meth:`socket.socket.makefile`'s reader, but it remembers the
    timeout (each change is a system call) and, while ``deadline`` is set,
    no read waits past it: :exc:`socket.timeout` is raised instead.
    """

    def __init__(self, sock):
        super().__init__()
        self._sock = sock
        self.timeout = sock.gettimeout()
        self.deadline = None

    def readable(self):
        return True

    def fileno(self):
        return self._sock.fileno()

    def set_timeout(self, seconds):
        if seconds != self.timeout:
            self._sock.settimeout(seconds)
            self.timeout = seconds

    def readinto(self, buffer):
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            if self.timeout is None or remaining < self.timeout:
                self.set_timeout(remaining)
        return self._sock.recv_into(buffer)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """The request object a handler gets: a BaseHTTPRequestHandler.

    ``handle()`` serves the whole connection, one request after another.
    Besides the usual attributes, ``body()`` returns the decoded request
    body (also readable from ``rfile``), ``record`` is its
    :class:`Request`, and ``respond()`` sends a whole response at once.
    """

    protocol_version = "HTTP/1.1"

    def __init__(self, sock, peer, server, conn, writer):
        self.conn_record = conn
        self.record = None
        self.linger = False
        self._writer = writer       # a _ResponseWriter on sock, from the server
        super().__init__(sock, peer, server)

    def __getattr__(self, name):
        # Any method is served (test_logging's DelegatingHTTPRequestHandler).
        if name.startswith("do_"):
            return self._call_handler
        raise AttributeError(name)

    def body(self):
        """Return the request body: bytes, with any chunked coding removed."""
        return self._body

    def setup(self):
        self.connection = self.request
        self._raw = _SocketReader(self.connection)
        self.rfile = self._stream = io.BufferedReader(self._raw)
        self.wfile = self._writer

    def finish(self):
        self._writer.close()
        self._stream.close()

    def address_string(self):
        peer = self.client_address
        return str(peer[0]) if isinstance(peer, tuple) else (str(peer) or "unix")

    def log_message(self, format, *args):
        if self.server.log:
            _log.info("%r: %s %s", self.server, self.address_string(), format % args)

    def handle(self):
        first = True
        while self._handle_one(first) and not self.server._stopping:
            first = False

    def _handle_one(self, first):
        server = self.server
        self.command = self.path = self.headers = self.record = None
        self.request_version, self.requestline = "HTTP/1.1", ""
        self._headers_buffer, self._body, self._trailers = [], b"", []
        self.close_connection = True
        try:
            self._timeout(server.request_timeout if first else server.keep_alive_timeout)
            try:
                start = self._stream.peek(1)
            except socket.timeout:
                if not first:
                    return False    # an idle persistent connection: close quietly
                raise
            if not start:
                return False
            self._timeout(server.request_timeout)
            # The whole head within request_timeout of its first byte: a
            # client that trickles a byte at a time (slowloris) would
            # otherwise restart a per-read timeout with every byte.
            self._raw.deadline = time.monotonic() + server.request_timeout
            self._read_request(start)
        except _Reject as exc:
            self._reject(exc.status, exc.reason)
            return False
        except socket.timeout:
            self._reject(408, "the request did not arrive within %g s" % server.request_timeout)
            return False
        finally:
            self._raw.deadline = None
        return self._respond()

    # -- reading ------------------------------------------------------------

    def _timeout(self, seconds):
        self._raw.set_timeout(seconds)

    def _read_line(self, limit, status, what, setting=None):
        line = self._stream.readline(limit + 2)
        if line.endswith(b"\r\n"):
            return line[:-2]
        if line.endswith(b"\n"):
            raise _Reject(400, "HTTP requires CRLF line endings; the %s ends in a bare LF" % what)
        if len(line) >= limit + 2:
            raise _Reject(status, "the %s is longer than %d bytes%s" % (
                what, limit, " (%s)" % setting if setting else ""))
        raise _Reject(400, "the connection ended inside the %s" % what)

    def _read_fields(self, what):
        """Read header lines to the empty one; return [(name, value)] as str."""
        server, total, fields = self.server, 0, []
        while True:
            line = self._read_line(max(0, server.max_header_size - total), 431, what,
                                   "max_header_size")
            if not line:
                return fields
            total += len(line) + 2
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                if line[:1] in (b" ", b"\t"):
                    raise _Reject(400, "obsolete line folding in the %s" % what)
                raise _Reject(400, "malformed line in the %s: %r" % (what, line[:80]))
            if b"\0" in value or b"\r" in value:
                # RFC 9110 5.5, RFC 9112 2.2: reject rather than guess.
                raise _Reject(400, "a NUL or bare CR in the %s: %r" % (what, line[:80]))
            fields.append((name.decode("ascii"), value.decode("latin-1").lstrip(_OWS)))
            if len(fields) > server.max_headers:
                raise _Reject(431, "more than %d lines in the %s (max_headers)"
                              % (server.max_headers, what))

    def _read_request(self, start):
        server = self.server
        word = _METHOD.match(start, 0, 64)
        if start[word.end():word.end() + 1] not in b" \r\n":
            raise _Reject(400, "this is not an HTTP request: %r" % bytes(start[:16]))
        for _ in range(_MAX_EMPTY_LINES):
            line = self._read_line(server.max_request_line, 414, "request line",
                                   "max_request_line")
            if line:
                break
        self.raw_requestline = line + b"\r\n"
        self.requestline = line.decode("latin-1")
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            _diagnose(line)
        method, target, major, minor = match.groups()
        self.command, self.path = method.decode("ascii"), target.decode("ascii")
        if _split_target(self.path)[0] is None:
            raise _Reject(400, "malformed request target: %r" % self.path[:80])
        self.request_version = "HTTP/%c.%c" % (major[0], minor[0])
        if major != b"1":
            raise _Reject(505, "this server speaks HTTP/1.x, not %s" % self.request_version)
        http11 = minor != b"0"
        # An HTTPMessage as http.client.parse_headers builds it, without the
        # email parser: obsolete folding is refused above, so each line is
        # one field (the email parser's compat32 policy keeps values as is).
        self.headers = headers = self.MessageClass()
        fields = {}
        for name, value in self._read_fields("request header"):
            headers.set_raw(name, value)
            fields.setdefault(name.lower(), []).append(value)
        self._raw.deadline = None       # the head is in: each body read has the timeout
        self._timeout(server.request_timeout)
        tokens = {t.strip(_OWS).lower() for v in fields.get("connection", ())
                  for t in v.split(",")}
        self.close_connection = ("close" in tokens or not (http11 or "keep-alive" in tokens)
                                 or not server.keep_alive)
        if http11 and len(fields.get("host", ())) != 1:
            raise _Reject(400, "an HTTP/1.1 request needs one Host header (RFC 9112 3.2)")
        length, chunked = self._framing(fields, http11)
        expect = fields.get("expect")
        if expect is not None:
            if [e.strip(_OWS).lower() for e in expect] != ["100-continue"]:
                raise _Reject(417, "cannot meet the expectation %r" % ", ".join(expect))
            if http11 and (chunked or length):
                self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._body = self._read_chunked() if chunked else self._read_exactly(length)

    def _framing(self, fields, http11):
        """Return (length, chunked) for the body (RFC 9112 6.1-6.3)."""
        limit = self.server.max_body_size
        codings = [c.strip(_OWS).lower() for v in fields.get("transfer-encoding", ())
                   for c in v.split(",") if c.strip(_OWS)]
        lengths = {v.strip(_OWS) for h in fields.get("content-length", ()) for v in h.split(",")}
        if "transfer-encoding" in fields and not codings:
            raise _Reject(400, "an empty Transfer-Encoding")
        if codings:
            if not http11:
                raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
            if codings[-1] != "chunked":
                raise _Reject(400, "Transfer-Encoding must end in chunked")
            if len(codings) > 1:
                raise _Reject(501, "cannot decode Transfer-Encoding %s" % ", ".join(codings))
            if lengths:
                self.close_connection = True    # both: chunked wins, then close
            return 0, True
        if not lengths:
            return 0, False
        value = lengths.pop()
        if lengths or not _DIGITS.fullmatch(value):
            raise _Reject(400, "malformed Content-Length")
        if limit is not None and int(value) > limit:
            raise _Reject(413, "the body (%s bytes) exceeds max_body_size (%d)" % (value, limit))
        return int(value), False

    def _read_exactly(self, length, out=None):
        """Read *length* body bytes; return them, or append them to *out*.

        Read in pieces: BufferedReader.read(n) allocates n bytes at once,
        so a declared length, not what arrived, would decide the memory
        (and with no max_body_size, 10**17 raises MemoryError).
        """
        if out is None and length <= _READ_PIECE:
            data = self._stream.read(length) if length else b""
            if len(data) < length:
                raise _Reject(400, "the connection ended after %d of %d body bytes"
                              % (len(data), length))
            return data
        buf = io.BytesIO() if out is None else out
        got = 0
        while got < length:
            piece = self._stream.read(min(_READ_PIECE, length - got))
            if not piece:
                raise _Reject(400, "the connection ended after %d of %d body bytes"
                              % (got, length))
            buf.write(piece)
            got += len(piece)
        return None if out is not None else buf.getvalue()

    def _read_chunked(self):
        body, limit = io.BytesIO(), self.server.max_body_size
        while True:
            line = self._read_line(4096, 400, "chunk size line")
            match = _CHUNK_SIZE.fullmatch(line)
            if not match:
                raise _Reject(400, "malformed chunk size line: %r" % line[:40])
            size = int(match.group(1), 16)
            if size == 0:
                break
            if limit is not None and body.tell() + size > limit:
                raise _Reject(413, "the chunked body exceeds max_body_size (%d)" % limit)
            self._read_exactly(size, body)
            if self._stream.read(2) != b"\r\n":
                raise _Reject(400, "a chunk is not followed by CRLF")
        self._trailers = [(name, value.strip(_OWS))
                          for name, value in self._read_fields("chunked trailer")]
        return body.getvalue()

    # -- answering ----------------------------------------------------------

    def _new_record(self, rejected=None):
        record = Request(self.command, self.path, self.command and self.request_version,
                         self.headers, self._body, self.client_address,
                         self.conn_record.tls, self.conn_record, rejected, self._trailers)
        self.record = record
        self.server._append_record("requests", record)
        return record

    def _connection_value(self):
        if self.close_connection:
            return b"close" if self.request_version != "HTTP/1.0" else None
        return b"keep-alive" if self.request_version == "HTTP/1.0" else None

    def _respond(self):
        server, writer = self.server, self._writer
        record = self._new_record()
        writer.start(record, self.command, self._connection_value(), server.close_unframed)
        self.rfile = io.BytesIO(self._body)
        try:
            try:
                self._call_handler()
                if self._headers_buffer:
                    self.end_headers()          # what the handler must have meant
                wrote = writer.finish()
            finally:
                self.rfile = self._stream
        except BaseException as exc:        # pytest.fail() raises a BaseException
            if writer.failed is not None and isinstance(exc, OSError):
                raise                           # the client went away
            server._record_error(exc)
            if writer.sent:
                return False
            writer.discard()
            self._send_simple(500, "the handler raised %s" % (repr(exc)[:200],),
                              self.close_connection)
            return not self.close_connection
        if not (wrote or writer.sent):
            return False            # no response at all: hang up, as asked
        return not (self.close_connection or writer.must_close)

    def _call_handler(self):
        self.server._answer(self)   # expectations first, then the handler (_httpcanned)

    def respond(self, status=200, *, headers=None, body=b"", json=None, chunk_delay=0.0,
                truncate=None):
        """Send a whole response, built as ``expect()`` builds a canned one."""
        if _started(self):
            raise RuntimeError("respond() after the response was started")
        _Reply(status, headers, body, json, chunk_delay, truncate).send(self, self.server._halt)

    def _reject(self, status, reason):
        self._new_record(reason)
        self.linger = True
        self._send_simple(status, reason, True)

    def _send_simple(self, status, text, close):
        """Send a plain-text response from the server itself, in one write."""
        phrase = self.responses.get(status, ("",))[0]
        body = ("%d %s: %s\n" % (status, phrase, text)).encode("utf-8", "replace")
        value = b"close" if close else self._connection_value()
        head = b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (
            status, phrase.encode("latin-1"), self.version_string().encode("latin-1"),
            self.date_time_string().encode("latin-1"))
        head += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body)
        if value:
            head += b"Connection: " + value + b"\r\n"
        if self.record is not None:
            self.record.status = status
        self.log_request(status)
        self.close_connection = self.close_connection or close
        self._writer._sock_send(head + b"\r\n" + (b"" if self.command == "HEAD" else body))

    def drain(self):
        """Read what the client still sends, for a while, before closing.

        Closing with unread bytes makes the kernel send a reset, which can
        destroy the error response before the client reads it.
        """
        sock = self.connection
        try:
            if not self.linger:
                sock.settimeout(0)
                if not socket.socket.recv(sock, 1, socket.MSG_PEEK | _MSG_DONTWAIT):
                    return
            socket.socket.shutdown(sock, socket.SHUT_WR)
            sock.settimeout(LINGER_TIMEOUT)
            for _ in range(16):
                if not sock.recv(65536):
                    return
        except OSError:
            pass
