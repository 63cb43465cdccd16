"""The request object's common part, and handler classes run unchanged.

:class:`_Adapter` is the :class:`http.server.BaseHTTPRequestHandler` layer
under every request object: it takes the connection's pump (``_httpconn``)
as its socket, notes the response framing as ``send_header()`` is called,
and logs quietly.  :func:`adapted` puts it under a handler class given to
the server, so that the class's own methods win as they would over
http.server's, and :class:`_Replay` is that class's ``rfile``.
"""

import email.utils
import functools
import http.server
import io
import time

from ._base import _log

__all__ = []


class _Adapter(http.server.BaseHTTPRequestHandler):
    """What every request object shares: the pump's socket, records, framing.

    The head a handler builds with ``send_response()`` and
    ``send_header()`` is kept here, and its framing (Content-Length,
    Transfer-Encoding, Connection) noted as the fields are added, so the
    response writer need not parse it again.
    """

    def __init__(self, request, client_address, server):
        # BaseRequestHandler.__init__, plus a note of the handler's error
        # for finish(), which runs before the error reaches the server.
        self.request, self.client_address, self.server = request, client_address, server
        self._failure = None
        self.setup()
        try:
            self.handle()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self.finish()

    def setup(self):
        self._setup_pump()
        self.rfile = io.BufferedReader(_Replay(self, self._pump))

    def _setup_pump(self):
        self.connection = self.request
        self._pump = pump = self.request._testservers_pump
        pump.handler = self
        self._head_lines = []
        self._clear_framing()
        self._status = None
        self.wfile = pump.writer
        # As parse_request() leaves them on a request it cannot read.
        self.command, self.requestline = None, ""
        self.request_version = self.default_request_version

    def finish(self):
        pump = self._pump
        try:
            if self._failure is None:
                self._end_response()
            elif not pump.writer.sent and pump.record is not None:
                pump.writer.discard()
                pump.send_simple(500, "the handler raised %s" % (repr(self._failure)[:200],),
                                 True)
        finally:
            self.wfile.close()
            self.rfile.close()

    def _end_response(self):
        """Send what is left of a response; return True if the connection goes on."""
        pump = self._pump
        self._head_lines = []
        if pump.record is None:
            return True
        pump.record = None
        wrote = pump.writer.finish()
        return wrote and not pump.writer.must_close

    def _response_begun(self):
        return bool(self._head_lines) or self._pump.writer.begun

    # -- the head, as http.server builds it (without its private buffer) -----

    def _clear_framing(self):
        # What the head's fields said of its framing: its Content-Length
        # values (None: none), whether it has a Transfer-Encoding, and its
        # Connection tokens (lower case).
        self._lengths, self._chunked, self._tokens = None, False, _NO_TOKENS

    def send_response_only(self, code, message=None):
        if self.request_version != "HTTP/0.9":
            if message is None:
                message = self.responses[code][0] if code in self.responses else ""
            self._head_lines.append(("%s %d %s\r\n" % (self.protocol_version, code, message))
                                    .encode("latin-1", "strict"))
            self._status = code
            self._clear_framing()

    def send_header(self, keyword, value):
        if self.request_version != "HTTP/0.9":
            self._head_lines.append(("%s: %s\r\n" % (keyword, value)).encode("latin-1", "strict"))
        name = keyword.lower()
        if name not in _FRAMING_FIELDS:
            return
        if name == "content-length":
            if self._lengths is None:
                self._lengths = []
            self._lengths.append(str(value))
        elif name == "transfer-encoding":
            self._chunked = True
        else:
            tokens = {t.strip().lower() for t in str(value).split(",")}
            self._tokens = self._tokens | tokens
            if "close" in tokens:
                self.close_connection = True
            elif "keep-alive" in tokens:
                self.close_connection = False

    def end_headers(self):
        if self.request_version != "HTTP/0.9":
            self._head_lines.append(b"\r\n")
            self.flush_headers()

    def flush_headers(self):
        lines, self._head_lines = self._head_lines, []
        if not lines:
            return
        head = b"".join(lines)
        if self._status is None:
            self.wfile.write(head)      # no send_response(): as raw bytes
            return
        self.wfile.write_head(head, self._status, self._lengths or (), self._chunked,
                              self._tokens)
        self._status = None

    def date_time_string(self, timestamp=None):
        """Return *timestamp* (default: now) as an HTTP date, as http.server does."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return http_date()

    # -- quiet by default ----------------------------------------------------

    def address_string(self):
        peer = self.client_address
        return str(peer[0]) if isinstance(peer, tuple) else (str(peer) or "unix")

    def log_message(self, format, *args):
        # http.server writes to stderr; here the testservers logger, when
        # the server's log option asks.  A handler's own log_message wins.
        if self.server.log:
            _log.info("%r: %s %s", self.server, self.address_string(), format % args)


_FRAMING_FIELDS = frozenset(("content-length", "transfer-encoding", "connection"))
_NO_TOKENS = frozenset()

_date = (None, "")      # (second, its HTTP date)


_stamp = (None, None, b"")     # (second, server name, the Server and Date lines)


def server_and_date(server_name):
    """Return a response's Server and Date field lines, as bytes.

    As ``send_header()`` makes them, once per second (neither bears on
    the framing, which is all ``send_header()`` notes besides).
    """
    global _stamp
    now = int(time.time())
    second, name, lines = _stamp
    if second != now or name != server_name:
        lines = ("Server: %s\r\nDate: %s\r\n" % (server_name, http_date())).encode(
            "latin-1", "strict")
        _stamp = (now, server_name, lines)    # one tuple: a thread sees all or none
    return lines


def http_date():
    """Return the current time as an HTTP date (RFC 9110 5.6.7).

    The text is made once per second and shared: formatting it costs more
    than the rest of a small response head.
    """
    global _date
    now = int(time.time())          # formatdate() drops the fraction too
    second, text = _date
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _date = (now, text)         # one tuple: a thread sees both or neither
    return text


class _Replay(io.RawIOBase):
    """The ``rfile`` of a handler class: each request as it was sent.

    Reading past a request's end answers it (the handler's response is
    sent) and reads the next; at the connection's end, after a refused
    request, or once the server stops, it is the end of the stream, so
    that ``handle_one_request()`` closes the connection as it does at EOF.
    """

    def __init__(self, handler, pump):
        super().__init__()
        self._handler, self._pump = handler, pump
        self._sources = []
        self._begun = False

    def readable(self):
        return True

    def readinto(self, buffer):
        while True:
            while self._sources:
                n = self._sources[0].readinto(buffer)
                if n:
                    return n
                self._sources.pop(0).close()
            if not self._next():
                return 0

    def _next(self):
        pump, handler = self._pump, self._handler
        if self._begun and not handler._end_response():
            return False
        if self._begun and pump.head.close:
            return False        # the request said close, or keep_alive is off
        self._begun = True
        if pump.server._stopping or not pump.read_request():
            return False
        head = pump.head
        # The handler's own head decides, except that a connection the
        # server will close says so (RFC 9112 9.6).
        edit = b"close" if head.close and head.version != "HTTP/1.0" else None
        pump.start_response(edit)
        self._sources = [io.BytesIO(head.raw), pump.body_file()]
        return True

    def close(self):
        for source in self._sources:
            source.close()
        self._sources = []
        super().close()


@functools.lru_cache(maxsize=None)
def adapted(cls):
    """Return *cls*, a BaseHTTPRequestHandler subclass, over :class:`_Adapter`.

    The class keeps its name, and every method it defines wins, as it
    would over http.server's own.
    """
    return type(cls.__name__, (cls, _Adapter), {"__module__": cls.__module__,
                                                "__qualname__": cls.__qualname__,
                                                "__doc__": cls.__doc__})
