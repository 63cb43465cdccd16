"""The events of the HTTP core, its deadlines, and response framing.

``_httpproto``'s :class:`~_httpproto.ServerConnection` returns these
events; :func:`response_framing` and :func:`connection_value` are the
response side of the same rules.  No socket here either.
"""

import collections

__all__ = []

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"     # RFC 9110 10.1.1

# What next_event() returns besides events: more bytes are needed, or the
# message is complete and start_next() must come before the next one.
NEED_DATA = "NEED_DATA"
PAUSED = "PAUSED"

# Response framings (response_framing()).
INTERIM, RAW, FRAMED, UNFRAMED = "interim", "raw", "framed", "unframed"

# A deadline: *at* is a time.monotonic() value by which the current part
# must be complete (or None), *each* the longest wait for any one read,
# *status* what expiry means (408, or None: close quietly).
Deadline = collections.namedtuple("Deadline", "at each status")


class RequestHead:
    """The head of a request: request line and header fields, as read.

    ``method``, ``target``, ``version`` (``"HTTP/1.1"``), ``fields`` (a
    list of ``(name, value)`` str pairs in order), ``raw`` (the head's bytes
    as received, empty lines before it excluded), ``length`` (the
    Content-Length, 0 without one), ``chunked``, ``close`` (the connection
    ends after the response) and ``expect_continue`` (send
    :data:`CONTINUE` before reading the body).  In a :class:`Rejected`
    event the attributes not yet read are ``None``.
    """

    def __init__(self):
        self.method = self.target = self.version = self.fields = None
        self.raw = b""
        self.length, self.chunked, self.close = 0, False, True
        self.expect_continue = False

    def __repr__(self):
        return "<RequestHead %s %s %s>" % (self.method, self.target, self.version)


class Data:
    """A piece of the decoded request body, ``data`` (bytes)."""

    def __init__(self, data):
        self.data = data


class EndOfMessage:
    """The end of a request body; ``trailers`` of a chunked one, (name, value) pairs."""

    def __init__(self, trailers=()):
        self.trailers = list(trailers)


class Rejected(Exception):
    """A request the server answers itself with ``status``, then closes.

    ``reason`` says why; ``head`` is the :class:`RequestHead` as far as it
    was read.
    """

    def __init__(self, status, reason, head=None):
        super().__init__(status, reason)
        self.status, self.reason, self.head = status, reason, head


class ConnectionClosed:
    """The client ended the connection (or idled out) between requests."""



def connection_value(version, close):
    """Return the Connection value a response needs (bytes), or None.

    HTTP/1.1 persists unless told ``close``; HTTP/1.0 closes unless told
    ``keep-alive`` (RFC 9112 9.3).
    """
    if close:
        return b"close" if version != "HTTP/1.0" else None
    return b"keep-alive" if version == "HTTP/1.0" else None


def response_framing(method, status, lengths, chunked):
    """Return (framing, length) for a response the handler declared.

    *lengths* are its Content-Length values (str), *chunked* whether it has
    a Transfer-Encoding.  :data:`INTERIM`: a 1xx response, sent at once,
    another follows.  :data:`RAW`: 101 or a CONNECT tunnel; bytes pass
    through and the connection closes after.  :data:`FRAMED`: the head
    frames the body, or there is none (HEAD, 204, 304, RFC 9110 6.4.1);
    *length* is the declared body size where it is one.
    :data:`UNFRAMED`: the server must frame it (or close after).
    """
    if status < 200 and status != 101:
        return INTERIM, None
    if status == 101 or (method == "CONNECT" and status < 300):
        return RAW, None
    if status in (204, 304) or method == "HEAD" or chunked:
        return FRAMED, None
    if lengths:
        value = lengths[0].strip()
        return FRAMED, (int(value) if len(lengths) == 1 and value.isdigit() else None)
    return UNFRAMED, None
