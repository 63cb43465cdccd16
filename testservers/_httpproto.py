"""HTTP/1.1, server side, as a state machine: bytes in, events out.

:class:`ServerConnection` reads requests (RFC 9112) from bytes given to
:meth:`~ServerConnection.receive_data` and returns them as events from
:meth:`~ServerConnection.next_event`: a :class:`RequestHead`, then
:class:`Data` pieces of the decoded body, then :class:`EndOfMessage`.  A
request it cannot accept is a :class:`Rejected` event with the status to
answer (400, 408, 413, 414, 417, 431, 501, 505) and the reason; the
connection then closes.  Timeouts are data: :meth:`~ServerConnection.deadline`
says which one applies now, and the caller, which owns the clock's other
side (a socket), reports its expiry with :meth:`~ServerConnection.timed_out`.
:func:`response_framing` decides how a response is framed from what the
handler declared (with the events, the limits and the grammar, in
``_httpevents``, and imported from here).  No socket here: the rules are tested by feeding bytes.
"""

import time

from ._httpevents import (  # noqa: F401 (the core's names, imported from here)
    CONTINUE, FRAMED, INTERIM, KEEP_ALIVE_TIMEOUT, MAX_BODY_SIZE, MAX_CHUNK_LINE,
    MAX_HEADER_SIZE, MAX_HEADERS, MAX_REQUEST_LINE, NEED_DATA, PAUSED, RAW,
    REQUEST_TIMEOUT, UNFRAMED, ConnectionClosed, Data, Deadline, EndOfMessage, Rejected,
    RequestHead, _CHUNK_SIZE, _DIGITS, _MAX_EMPTY_LINES, _METHOD_PEEK, _NOT_TCHAR, _OWS,
    _PLAIN_HEAD, _REQUEST_LINE, _TOKEN, _bad_target, _diagnose, connection_value,
    response_framing)

__all__ = []

# The header fields the core itself reads (lower case).
_CHECKED = frozenset(("connection", "host", "transfer-encoding", "content-length", "expect"))

# Parser states.
(_IDLE, _HEAD, _BODY, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _DONE,
 _OVER) = range(9)


class ServerConnection:
    """Read HTTP/1.1 requests from bytes; say what to answer and when.

    Give it bytes with :meth:`receive_data` (``b""`` for the end of the
    stream) and take events with :meth:`next_event` until it returns
    :data:`NEED_DATA` (give more) or :data:`PAUSED` (the request is
    complete: answer it, then call :meth:`start_next`).  A
    :class:`Rejected` event ends the connection.  *clock* is
    :func:`time.monotonic` unless a test gives its own.
    """

    def __init__(self, *, max_request_line=MAX_REQUEST_LINE, max_header_size=MAX_HEADER_SIZE,
                 max_headers=MAX_HEADERS, max_body_size=MAX_BODY_SIZE,
                 request_timeout=REQUEST_TIMEOUT, keep_alive_timeout=KEEP_ALIVE_TIMEOUT,
                 keep_alive=True, clock=time.monotonic):
        self.max_request_line = max_request_line
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_body_size = max_body_size
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.keep_alive = keep_alive
        self._clock = clock
        # The deadlines that do not move, made once (each is asked for per read).
        self._first_wait = Deadline(None, request_timeout, 408)
        self._idle_wait = Deadline(None, keep_alive_timeout, None)
        self._buf = bytearray()
        self._eof = False
        self._first = True          # no request was complete yet
        self._reset(_IDLE)

    def _reset(self, state):
        self._state = state
        self.head = RequestHead()
        self._empty_lines = 0
        self._start_checked = False
        self._searched = 0          # how far the current line was searched for LF
        self._total = 0             # bytes of header (or trailer) lines so far
        self._fields = []
        self._left = 0              # bytes of body (or of the chunk) still to come
        self._got = 0               # decoded body bytes so far
        self._chunk = 0             # the size of the current chunk
        self._head_start = None
        if state == _IDLE and self._buf:
            self._start_head()

    def _start_head(self):
        self._state = _HEAD
        self._head_start = self._clock()

    # -- input --------------------------------------------------------------

    def receive_data(self, data):
        """Add bytes from the client; ``b""`` says the stream ended."""
        if not data:
            self._eof = True
            return
        self._buf += data
        if self._state == _IDLE:
            self._start_head()

    def deadline(self):
        """Return the :data:`Deadline` that applies now, or None.

        Waiting for a request: each read within *request_timeout* for the
        first (then 408), *keep_alive_timeout* for the others (then close
        quietly).  Once a head has begun, the whole head within
        *request_timeout* of its first byte (a client that trickles a byte
        at a time would otherwise restart a per-read timeout with every
        byte); in a body, each read within *request_timeout*.
        """
        state = self._state
        if state == _IDLE:
            return self._first_wait if self._first else self._idle_wait
        if state == _HEAD:
            return Deadline(self._head_start + self.request_timeout, self.request_timeout, 408)
        if state in (_DONE, _OVER):
            return None
        return self._first_wait

    def timed_out(self):
        """Return the event for the expiry of :meth:`deadline`: 408 or a quiet close."""
        deadline = self.deadline()
        self._state = _OVER
        if deadline is None or deadline.status is None:
            return ConnectionClosed()
        return Rejected(408, "the request did not arrive within %g s" % self.request_timeout,
                        self.head)

    def start_next(self):
        """Begin the next request, once the response to this one is sent."""
        if self._state != _DONE:
            raise RuntimeError("start_next() before the request was complete")
        self._first = False
        self._reset(_IDLE)

    @property
    def complete(self):
        """True from the end of a request body until :meth:`start_next`."""
        return self._state == _DONE

    # -- events -------------------------------------------------------------

    def next_event(self):
        """Return the next event, :data:`NEED_DATA` or :data:`PAUSED`."""
        try:
            return self._next()
        except Rejected as exc:
            self._state = _OVER
            if exc.head is None:
                exc.head = self.head
            return exc

    def _next(self):
        state = self._state
        if state == _DONE:
            return PAUSED
        if state == _OVER:
            return ConnectionClosed()
        if state == _IDLE:
            if self._eof:
                self._state = _OVER
                return ConnectionClosed()
            return NEED_DATA
        if state == _HEAD:
            return self._read_head()
        if state == _BODY:
            return self._body_data()
        if state == _CHUNK_LINE:
            return self._chunk_size()
        if state == _CHUNK_DATA:
            return self._chunk_data()
        if state == _CHUNK_END:
            buf = self._buf
            if buf[:2] == b"\r\n":
                del buf[:2]
                self._state = _CHUNK_LINE
                return self._chunk_size()
            if len(buf) >= 2 or buf[:1] not in (b"", b"\r") or self._eof:
                raise Rejected(400, "a chunk is not followed by CRLF")
            return NEED_DATA
        return self._trailers()

    def _line(self, limit, status, what, setting=None):
        """Take one CRLF-ended line (without it) from the buffer, or None."""
        buf = self._buf
        end = buf.find(b"\n", self._searched, limit + 2)
        if end < 0:
            self._searched = min(len(buf), limit + 2)
            if len(buf) >= limit + 2:
                raise Rejected(status, "the %s is longer than %d bytes%s" % (
                    what, limit, " (%s)" % setting if setting else ""))
            if self._eof:
                raise Rejected(400, "the connection ended inside the %s" % what)
            return None
        self._searched = 0
        if end == 0 or buf[end - 1] != 13:
            raise Rejected(400, "HTTP requires CRLF line endings; the %s ends in a bare LF"
                           % what)
        line = bytes(buf[:end - 1])
        del buf[:end + 1]
        return line

    def _field_line(self, what):
        """Take one field line: (name, value), "" at the empty line, or None."""
        line = self._line(max(0, self.max_header_size - self._total), 431, what,
                          "max_header_size")
        if line is None:
            return None
        self._last_line = line
        if not line:
            return ""
        self._total += len(line) + 2
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            if line[:1] in (b" ", b"\t"):
                raise Rejected(400, "obsolete line folding in the %s" % what)
            raise Rejected(400, "malformed line in the %s: %r" % (what, line[:80]))
        if b"\0" in value or b"\r" in value:
            # RFC 9110 5.5, RFC 9112 2.2: reject rather than guess.
            raise Rejected(400, "a NUL or bare CR in the %s: %r" % (what, line[:80]))
        self._fields.append((name.decode("ascii"), value.decode("latin-1").lstrip(_OWS)))
        if len(self._fields) > self.max_headers:
            raise Rejected(431, "more than %d lines in the %s (max_headers)"
                           % (self.max_headers, what))
        return self._fields[-1]

    def _read_head(self):
        head, buf = self.head, self._buf
        if head.method is None:
            if not self._start_checked:
                if self._empty_lines == 0:
                    event = self._whole_head()
                    if event is not None:
                        return event
                # A first word that is no method: TLS, or binary garbage.
                bad = _NOT_TCHAR.search(buf, 0, _METHOD_PEEK + 1)
                if bad is None and len(buf) <= _METHOD_PEEK:
                    if not self._eof:
                        return NEED_DATA
                elif bad is None or buf[bad.start()] not in b" \r\n":
                    # Quoted up to the first wrong byte: the same however it arrived.
                    end = _METHOD_PEEK + 1 if bad is None else bad.start() + 1
                    raise Rejected(400, "this is not an HTTP request: %r" % bytes(buf[:end]))
                self._start_checked = True
            while True:
                line = self._line(self.max_request_line, 414, "request line",
                                  "max_request_line")
                if line is None:
                    return NEED_DATA
                self._empty_lines += 1
                if line or self._empty_lines >= _MAX_EMPTY_LINES:
                    break
            head.raw = line + b"\r\n"
            self._raw = [line]
            self._parse_request_line(line)
        raw = self._raw
        while True:
            field = self._field_line("request header")
            if field is None:
                return NEED_DATA
            raw.append(self._last_line)
            if field == "":
                head.raw = b"\r\n".join(raw) + b"\r\n"
                return self._head_done()

    def _whole_head(self):
        """Take a head that is all in the buffer and plainly valid, at once.

        The common case, taken line by line, costs a call per line; here
        the head is matched and split once.  Anything this does not accept
        as it stands (an empty line first, a bare LF, a limit reached, a
        field that is not plain) is left to the line by line path, which
        then gives the answer the rules give, so that both paths agree.
        """
        buf = self._buf
        end = buf.find(b"\r\n\r\n", 0, self.max_request_line + self.max_header_size + 4)
        if end < 0:
            return None
        block = bytes(buf[:end])
        match = _PLAIN_HEAD.fullmatch(block)
        if match is None:
            return None
        lines = match.group(5)
        line_end = end - len(lines)
        if (line_end > self.max_request_line or block.find(b" ") > _METHOD_PEEK
                or len(lines) > self.max_header_size):
            return None
        # The names are tokens, so latin-1 decodes them as ascii would.
        fields = [field.partition(":")[::2] for field in lines.decode("latin-1").split("\r\n")]
        del fields[0]               # what precedes the first CRLF: nothing
        if len(fields) > self.max_headers:
            return None
        self._parse_request_line(block[:line_end], match)
        del buf[:end + 4]
        head = self.head
        head.raw = block + b"\r\n\r\n"
        head.fields = [(name, value.lstrip(_OWS)) for name, value in fields]
        return self._head_done()

    def _parse_request_line(self, line, match=None):
        head = self.head
        if match is None:
            match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise _diagnose(line)
        method, target, major, minor = match.group(1, 2, 3, 4)
        head.method, head.target = method.decode("ascii"), target.decode("ascii")
        if target[:1] != b"/" and _bad_target(head.target):
            raise Rejected(400, "malformed request target: %r" % head.target[:80])
        head.version = "HTTP/%c.%c" % (major[0], minor[0])
        if major != b"1":
            raise Rejected(505, "this server speaks HTTP/1.x, not %s" % head.version)
        head.fields = self._fields

    def _head_done(self):
        head = self.head
        http11 = head.version != "HTTP/1.0"
        fields = {}             # the fields that matter here, by lower-case name
        for name, value in head.fields:
            name = name.lower()
            if name in _CHECKED:
                fields.setdefault(name, []).append(value)
        if fields:
            tokens = {t.strip(_OWS).lower() for v in fields.get("connection", ())
                      for t in v.split(",")}
            close = "close" in tokens or not (http11 or "keep-alive" in tokens)
        else:
            close = not http11
        head.close = close or not self.keep_alive
        if http11 and len(fields.get("host", ())) != 1:
            raise Rejected(400, "an HTTP/1.1 request needs one Host header (RFC 9112 3.2)")
        if "transfer-encoding" in fields or "content-length" in fields:
            self._framing(fields, http11)
        expect = fields.get("expect")
        if expect is not None:
            if [e.strip(_OWS).lower() for e in expect] != ["100-continue"]:
                raise Rejected(417, "cannot meet the expectation %r" % ", ".join(expect))
            head.expect_continue = http11 and (head.chunked or head.length > 0)
        self._fields = []
        self._total = 0
        if head.chunked:
            self._state = _CHUNK_LINE
        else:
            self._left = head.length
            self._state = _BODY
        return head

    def _framing(self, fields, http11):
        """Set the head's length and chunked (RFC 9112 6.1-6.3)."""
        head, limit = self.head, self.max_body_size
        codings = [c.strip(_OWS).lower() for v in fields.get("transfer-encoding", ())
                   for c in v.split(",") if c.strip(_OWS)]
        lengths = {v.strip(_OWS) for h in fields.get("content-length", ()) for v in h.split(",")}
        if "transfer-encoding" in fields and not codings:
            raise Rejected(400, "an empty Transfer-Encoding")
        if codings:
            if not http11:
                raise Rejected(400, "Transfer-Encoding in an HTTP/1.0 request")
            if codings[-1] != "chunked":
                raise Rejected(400, "Transfer-Encoding must end in chunked")
            if len(codings) > 1:
                raise Rejected(501, "cannot decode Transfer-Encoding %s" % ", ".join(codings))
            if lengths:
                head.close = True       # both: chunked wins, then close
            head.chunked = True
            return
        if not lengths:
            return
        value = lengths.pop()
        if lengths or not _DIGITS.fullmatch(value):
            raise Rejected(400, "malformed Content-Length")
        if limit is not None and int(value) > limit:
            raise Rejected(413, "the body (%s bytes) exceeds max_body_size (%d)" % (value, limit))
        head.length = int(value)

    def _piece(self):
        """Take up to the rest of the body (or chunk) from the buffer."""
        buf, left = self._buf, self._left
        if not buf:
            if self._eof:
                size = self._chunk if self._state == _CHUNK_DATA else self.head.length
                raise Rejected(400, "the connection ended after %d of %d body bytes"
                               % (size - left, size))
            return None
        if len(buf) <= left:
            data, self._buf = bytes(buf), bytearray()
        else:
            data = bytes(buf[:left])
            del buf[:left]
        self._left -= len(data)
        self._got += len(data)
        return Data(data)

    def _body_data(self):
        if not self._left:
            self._state = _DONE
            return EndOfMessage()
        return self._piece() or NEED_DATA

    def _chunk_size(self):
        line = self._line(MAX_CHUNK_LINE, 400, "chunk size line")
        if line is None:
            return NEED_DATA
        match = _CHUNK_SIZE.fullmatch(line)
        if not match:
            raise Rejected(400, "malformed chunk size line: %r" % line[:40])
        size = int(match.group(1), 16)
        if size == 0:
            self._state = _TRAILERS
            return self._trailers()
        limit = self.max_body_size
        if limit is not None and self._got + size > limit:
            raise Rejected(413, "the chunked body exceeds max_body_size (%d)" % limit)
        self._chunk = self._left = size
        self._state = _CHUNK_DATA
        return self._chunk_data()

    def _chunk_data(self):
        event = self._piece()
        if event is None:
            return NEED_DATA
        if not self._left:
            self._state = _CHUNK_END
        return event

    def _trailers(self):
        while True:
            field = self._field_line("chunked trailer")
            if field is None:
                return NEED_DATA
            if field == "":
                self._state = _DONE
                return EndOfMessage([(n, v.strip(_OWS)) for n, v in self._fields])
