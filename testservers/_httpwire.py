"""The HTTP response writer: the ``wfile`` handlers write to.

:class:`_ResponseWriter` frames what a handler declared and sends each
response in as few writes as it can, through the connection's pump
(``_pump._Pump``, the one place where the HTTP front end touches its
socket, as the SMTP one does).
"""

import io
import re

from ._httpproto import FRAMED, INTERIM, RAW, response_framing

__all__ = []

RESPONSE_BUFFER = 1024 * 1024   # unframed response bytes held before streaming
_MAX_HEAD_SCAN = 65536          # bytes of a raw-written head looked at

# The writer's states.  _HEAD: the head is not complete yet.  _FRAMED: the
# head frames the body (or there is none); writes pass through.  _UNFRAMED:
# the body is held until the handler returns.  _STREAM: unframed, but
# flushed; writes pass through and the connection closes after.  _RAW: no
# status line; bytes pass through and the connection closes after.
_HEAD, _FRAMED, _UNFRAMED, _STREAM, _RAW = range(5)
_PASSING = (_FRAMED, _STREAM, _RAW)

# For heads a handler writes as bytes rather than through send_header():
# the status code, and the fields that decide the framing.
_STATUS_LINE = re.compile(rb"http/[0-9]\.[0-9] ([1-5][0-9][0-9])(?: |\r\n)")
_FRAMING_FIELD = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:([^\r\n]*)")


class _ResponseWriter(io.BufferedIOBase):
    """``wfile``: hold what the handler writes, send each response whole.

    The request object tells it the head it built with send_header()
    (:meth:`write_head`): the framing comes from the fields declared, with
    no scan.  Bytes written that start with a status line are scanned
    for it instead.  If the head carries Content-Length or
    Transfer-Encoding (or the response has no body: HEAD, 204, 304), each
    body write is sent at once, the first together with the head.
    Otherwise the body is held until the handler returns and sent in the
    same write as the head, with Content-Length added; ``flush()``, or
    more than :data:`RESPONSE_BUFFER` bytes held, sends it early instead,
    with ``Connection: close``, the body ending when the connection does.
    Bytes that do not start with a status line pass through untouched,
    and the connection closes after them.
    """

    def __init__(self, wire):
        self._wire = wire
        self.failed = None          # the OSError a send raised
        self.start(None, "GET", None, True)

    def start(self, record, method, edit, close_unframed, continued=False):
        self._record, self._method = record, method
        self._edit = edit           # a Connection value for the head, or None
        self._close_unframed = close_unframed
        self._continued = continued     # a 100 Continue went out for this request
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
        return self._wire.fileno()

    @property
    def begun(self):
        """True once anything of the response was written."""
        return self.sent or bool(self._held)

    def write(self, data):
        if self._wire is None:
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
        self._written()
        return size

    def _written(self):
        state = self._state
        if state == _FRAMED and self._method == "HEAD":
            del self._held[self._body_at:]
        if state in _PASSING:
            if len(self._held) > self._body_at:
                self._send()
        elif state == _UNFRAMED and len(self._held) - self._body_at > RESPONSE_BUFFER:
            self._stream()

    def write_head(self, head, status, lengths, chunked, tokens):
        """Take a whole head built by send_header(): *status*, its
        Content-Length values, whether it has Transfer-Encoding, and its
        Connection tokens (lower case)."""
        if self._state != _HEAD or self._held:
            self.write(head)            # after raw bytes: as raw bytes
            return
        if self._wire is None:
            raise ValueError("write to a closed response")
        self._held += head
        self._declare(status, lengths, chunked, tokens, len(head))
        if self._state == _HEAD:        # an interim response went out
            return
        self._written()

    def _declare(self, code, lengths, chunked, tokens, end):
        """Set the framing for a head of *end* bytes at the start of _held."""
        kind, length = response_framing(self._method, code, lengths, chunked)
        if kind == INTERIM:             # send it now; the final one follows
            interim = bytes(self._held[:end])
            del self._held[:end]
            if not (code == 100 and self._continued):     # the server sent it already
                self._sock_send(interim)
            return
        self._has_conn = bool(tokens)
        self.must_close = "close" in tokens
        self._body_at = end
        if self._record is not None:
            self._record.status = code
        if kind == RAW:
            self._state, self._body_at, self.must_close = _RAW, 0, True
        elif kind == FRAMED:
            self._state = _FRAMED
            self._length = length
            self._connection_header(self._edit)
        else:                           # UNFRAMED
            self._state = _UNFRAMED

    def flush(self):
        if self._wire is None:
            return
        if self._state == _HEAD and self._held:
            self._state, self.must_close = _RAW, True
        if self._state == _UNFRAMED:
            self._stream()
        elif self._held:
            self._send()

    def close(self):
        self._wire = None           # flush() does nothing now
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
                if len(held) > _MAX_HEAD_SCAN:
                    self._state, self.must_close = _RAW, True
                return
            head = bytes(held[:end + 2]).lower()
            status = _STATUS_LINE.match(head)
            if status is None:
                self._state, self.must_close = _RAW, True
                return
            fields = {}
            for name, value in _FRAMING_FIELD.findall(head):
                fields.setdefault(name, []).append(value.strip().decode("latin-1"))
            tokens = {t.strip() for v in fields.get(b"connection", ()) for t in v.split(",")}
            tokens.discard("")
            self._declare(int(status.group(1)), fields.get(b"content-length", ()),
                          b"transfer-encoding" in fields, tokens, end + 4)

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
            self._wire.send(data)
        except OSError as exc:
            self.failed = exc
            raise
