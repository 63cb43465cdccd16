"""One HTTP/1.1 connection: the core's events, for http.server handlers.

:class:`_Exchange` feeds the sans-IO core (``_httpproto``) from the
connection's pump (``_pump._Pump``, as SMTP's) and collects each request: its head,
its decoded body (spooled to a file when large, ``_httpbody``) and its
record.  Requests the core refuses it answers itself (400, 408, 413, 414,
417, 431, 501, 505), and then the connection closes.

Handlers get a :class:`http.server.BaseHTTPRequestHandler`.  A callable
handler is called with a :class:`_RequestHandler`, whose ``handle()``
takes each request from the pump.  A ``BaseHTTPRequestHandler`` subclass
runs as under :mod:`http.server` (its own ``handle()``,
``handle_one_request()`` and ``parse_request()``), on an ``rfile`` that
replays each request as it was sent once the pump accepted it whole
(``_httpadapter``).
"""

import http.client
import http.server

from ._httpadapter import _Adapter, http_date, server_and_date
from ._httpbody import _Spool, body_stream
from ._httprecords import Request, _Fields
from ._httpproto import (CONTINUE, NEED_DATA, Data, EndOfMessage, Rejected, RequestHead,
                         ServerConnection, connection_value)
from ._httpreply import _Reply, _started
from ._httpwire import _ResponseWriter
from ._pump import RECV_SIZE, _Pump

__all__ = []

_UNSET = object()       # a request object's headers were not set by its handler


class _Exchange:
    """Read one connection's requests whole, through the core."""

    def __init__(self, server, sock, record):
        self.server = server
        self.conn_record = record
        self.wire = _Pump(server, sock, record)     # the one connection pump
        self.writer = _ResponseWriter(self.wire)
        self.proto = ServerConnection(
            max_request_line=server.max_request_line, max_header_size=server.max_header_size,
            max_headers=server.max_headers, max_body_size=server.max_body_size,
            request_timeout=server.request_timeout,
            keep_alive_timeout=server.keep_alive_timeout, keep_alive=server.keep_alive)
        self.handler = None         # the request object, once set up
        self.head = None            # the RequestHead being answered
        self.headers = None         # its HTTPMessage
        self.body, self.trailers = b"", []
        self.record = None
        self.linger = False         # drain the client at length before closing
        self._spool = None

    def read_request(self):
        """Read the next request whole; return True, or False to end the connection.

        A request the core refuses is recorded and answered here.
        """
        proto, wire = self.proto, self.wire
        if proto.complete:
            proto.start_next()
        self.head = self.headers = self.record = None
        self.body, self.trailers = b"", []
        spool = None
        try:
            while True:
                event = proto.next_event()
                if event is NEED_DATA:
                    deadline = proto.deadline()
                    data = wire.recv(RECV_SIZE, deadline.at, deadline.each)
                    if data is None:
                        event = proto.timed_out()
                    else:
                        proto.receive_data(data)
                        continue
                cls = type(event)
                if cls is Data:
                    if spool is None:           # made on the first piece only
                        spool = self._spool = _Spool(self.server.spool_threshold,
                                                     self.server._spool_file)
                    spool.write(event.data)
                elif cls is RequestHead:
                    self.head = event
                    if event.expect_continue:
                        wire.send(CONTINUE)     # RFC 9110 10.1.1
                elif cls is EndOfMessage:
                    if spool is not None:
                        self.body = spool.value()
                        self._spool = None
                    self.trailers = event.trailers
                    self._make_headers(self.head)
                    return True
                elif cls is Rejected:
                    self.reject(event)
                    return False
                else:                           # ConnectionClosed
                    return False
        except BaseException:
            if spool is not None:
                spool.discard()
            self._spool = None
            raise

    def _make_headers(self, head):
        # The record's headers, built from the fields when first read.
        if head is None or head.fields is None:
            self.headers = None
            return
        message_class = (self.handler.MessageClass if self.handler is not None
                         else http.client.HTTPMessage)
        self.headers = _Fields((message_class, head.fields))

    def new_record(self, rejected=None):
        head = self.head
        record = Request(head.method, head.target, head.method and head.version,
                         self.headers, self.body, self.conn_record.peer,
                         self.conn_record.tls, self.conn_record, rejected, self.trailers)
        self.record = record
        self.server._append_record("requests", record)
        return record

    def start_response(self, edit):
        """Make the record and ready the writer for this request's response."""
        head = self.head
        self.writer.start(self.new_record(), head.method, edit, self.server.close_unframed,
                          head.expect_continue)

    def body_file(self):
        """Return a new file reading this request's body as it was sent."""
        return body_stream(self.body, self.head.chunked, self.trailers)

    def reject(self, event):
        """Record a refused request and answer it, then close."""
        if self._spool is not None:
            self._spool.discard()
            self._spool = None
        self.head = event.head if event.head is not None else RequestHead()
        self._make_headers(event.head)
        self.new_record(event.reason)
        self.linger = True
        handler = self.handler
        if handler is not None:
            handler.close_connection = True
            line = self.head.raw.partition(b"\r\n")[0]
            handler.requestline = line.decode("latin-1")     # for log_request()
        self.send_simple(event.status, event.reason, True)

    def send_simple(self, status, text, close):
        """Send a plain-text response from the server itself, in one write."""
        handler = self.handler
        phrase = http.server.BaseHTTPRequestHandler.responses.get(status, ("",))[0]
        body = ("%d %s: %s\n" % (status, phrase, text)).encode("utf-8", "replace")
        head = self.head
        value = b"close" if close else connection_value(head.version, head.close)
        server_name = (handler.version_string() if handler is not None
                       else http.server.BaseHTTPRequestHandler.server_version)
        out = b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (
            status, phrase.encode("latin-1"), server_name.encode("latin-1"),
            http_date().encode("latin-1"))
        out += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body)
        if value:
            out += b"Connection: " + value + b"\r\n"
        if self.record is not None:
            self.record.status = status
        if handler is not None:
            handler.log_request(status)
        self.writer._sock_send(out + b"\r\n" + (b"" if head.method == "HEAD" else body))

    def close(self):
        """Drop a body left half read (the connection failed)."""
        if self._spool is not None:
            self._spool.discard()
            self._spool = None

    def end(self):
        """Let the client go: drain it unless the server is stopping."""
        if not self.server._stopping:
            self.wire.drain(self.linger)


class _RequestHandler(_Adapter):
    """The request object a callable handler gets: a BaseHTTPRequestHandler.

    ``handle()`` serves the whole connection, one request after another.
    Besides the usual attributes, ``body()`` returns the decoded request
    body, ``rfile`` reads the body as it was sent (chunked coding
    included), ``record`` is its :class:`Request`, and ``respond()`` sends
    a whole response at once.
    """

    protocol_version = "HTTP/1.1"

    def __getattr__(self, name):
        # Any method is served (test_logging's DelegatingHTTPRequestHandler).
        if name.startswith("do_"):
            return self._call_handler
        raise AttributeError(name)

    def send_response(self, code, message=None):
        # http.server's, with the Server and Date lines made once a second.
        self.log_request(code)
        self.send_response_only(code, message)
        if self.request_version != "HTTP/0.9":
            self._head_lines.append(server_and_date(self.version_string()))

    def log_request(self, code="-", size="-"):
        # Quiet unless the server's log option asks (log_message() checks
        # it too): http.server's own formats its line first.
        if self.server.log:
            super().log_request(code, size)

    def body(self):
        """Return the request body: bytes, with any chunked coding removed."""
        return self.record.body if self.record is not None else b""

    def setup(self):
        self._setup_pump()
        self._stream = self.record = None
        self._own_headers = _UNSET

    # The body stream and the headers are made when first asked for: most
    # handlers read neither for most requests.

    @property
    def rfile(self):
        """The request body as it was sent (chunked coding included)."""
        stream = self._stream
        if stream is None and self.record is not None:
            stream = self._stream = self._pump.body_file()
        return stream

    @rfile.setter
    def rfile(self, value):
        self._stream = value

    _raw_line = None        # raw_requestline, when something set it

    @property
    def raw_requestline(self):
        """The request line as it was sent, with its CRLF."""
        if self._raw_line is not None:
            return self._raw_line
        head = self._pump.head
        raw = head.raw if head is not None else b""
        end = raw.find(b"\r\n")
        return raw[:end + 2] if end >= 0 else raw

    @raw_requestline.setter
    def raw_requestline(self, value):
        self._raw_line = value

    @property
    def requestline(self):
        """The request line, as str (what log_request() logs)."""
        line = self._line
        if line is None:
            line = self._line = self.raw_requestline[:-2].decode("latin-1")
        return line

    @requestline.setter
    def requestline(self, value):
        self._line = value

    @property
    def headers(self):
        """The request's header fields, an :class:`http.client.HTTPMessage`."""
        own = self._own_headers
        if own is not _UNSET:
            return own          # the handler set its own
        record = self.record
        return record.headers if record is not None else None

    @headers.setter
    def headers(self, value):
        self._own_headers = value

    def finish(self):
        if self._stream is not None:
            self._stream.close()
        self.wfile.close()

    def handle(self):
        pump = self._pump
        while self._handle_one(pump) and not self.server._stopping:
            pass

    def _handle_one(self, pump):
        self.command = self.path = self.record = None
        self._own_headers = _UNSET
        self.request_version, self.requestline = "HTTP/1.1", ""
        self._head_lines, self._status = [], None
        self.close_connection = True
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if not pump.read_request():
            return False
        head = pump.head
        self.command, self.path, self.request_version = head.method, head.target, head.version
        self._line = self._raw_line = None      # from the head, when asked for
        self.close_connection = head.close
        pump.start_response(connection_value(head.version, head.close))
        self.record = pump.record
        return self._respond(pump)

    def _respond(self, pump):
        writer = pump.writer
        try:
            self._call_handler()
            if self._head_lines:
                self.end_headers()          # what the handler must have meant
            wrote = writer.finish()
        except BaseException as exc:        # pytest.fail() raises a BaseException
            if writer.failed is not None and isinstance(exc, OSError):
                raise                           # the client went away
            self.server._record_error(exc)
            if writer.sent:
                return False
            writer.discard()
            pump.send_simple(500, "the handler raised %s" % (repr(exc)[:200],),
                             self.close_connection)
            return not self.close_connection
        finally:
            pump.record = None
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

    def _send_simple(self, status, text, close):
        """Send a plain-text response from the server itself (_httpcanned's 404)."""
        self.close_connection = self.close_connection or close
        self._pump.send_simple(status, text, close)
