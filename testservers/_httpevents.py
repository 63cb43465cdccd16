"""The HTTP core's events, deadlines, limits and grammar, and response framing.

``_httpproto``'s :class:`~_httpproto.ServerConnection` returns these
events and applies these limits; :func:`response_framing` and
:func:`connection_value` are the response side of the same rules.  No
socket here either.
"""

import collections
import re
import urllib.parse

__all__ = []

REQUEST_TIMEOUT = 10.0          # s: the head within this of its first byte; each body read
KEEP_ALIVE_TIMEOUT = 60.0       # s an idle persistent connection stays open
MAX_REQUEST_LINE = 8192         # bytes, without CRLF -> 414
MAX_HEADER_SIZE = 65536         # bytes of header lines (and of trailers) -> 431
MAX_HEADERS = 100               # header lines, http.client's own limit -> 431
MAX_BODY_SIZE = 64 * 1024 * 1024    # bytes of decoded body -> 413
MAX_CHUNK_LINE = 4096           # bytes of a chunk size line with its extensions
_MAX_EMPTY_LINES = 8            # CRLFs ignored before a request line (RFC 9112 2.2)
_METHOD_PEEK = 64               # a method longer than this is not HTTP

_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"                   # RFC 9110 5.6.2
_TOKEN = re.compile(_TCHARS + rb"+")
_NOT_TCHAR = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_REQUEST_LINE = re.compile(rb"(%s+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])" % _TCHARS)
# A whole head that is plainly valid, in one match: the request line, then
# field lines whose names are tokens and whose values hold no NUL, CR or LF
# (RFC 9110 5.5, RFC 9112 2.2), the last group holding the field lines.
_PLAIN_HEAD = re.compile(rb"(%s+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])"
                         rb"((?:\r\n%s+:[^\r\n\0]*)*)" % (_TCHARS, _TCHARS))
# RFC 9112 7.1; the extensions are ignored, but they hold no NUL, bare CR
# or other control character (RFC 9110 5.5).
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[\t\x20-\x7e\x80-\xff]*)?")
_DIGITS = re.compile(r"[0-9]{1,18}")
_OWS = " \t"                    # RFC 9110 5.6.3; str.strip() would also eat \x0b, \x85...

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


def _diagnose(line):
    """Return the Rejected that says what is wrong with a bad request line."""
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        return Rejected(400, "malformed request line: %r" % line[:80])
    return Rejected(400, "malformed HTTP version: %r" % parts[2][:20])


def _bad_target(target):
    """Tell whether an absolute-form *target* is one urlsplit() refuses."""
    if target.startswith("/") or target == "*":
        return False
    try:
        urllib.parse.urlsplit(target)       # RFC 9112 3.2.2
    except ValueError:          # an unbalanced "[" in the authority, say
        return True
    return False
