"""The canned response: fixed, streamed in pieces, or cut short.

:class:`_Reply` holds the response arguments of ``expect()`` and of the
request object's ``respond()``, checked when they are given (``TypeError``
for a wrong type, ``ValueError`` for a wrong value), and writes the
response through the request object, so that the server's response writer
frames it and sends the head with the first piece.
"""

import json as _json
import re

from ._httpmatch import _short

__all__ = []

# Responses that carry no body and, for 204, no Content-Length
# (RFC 9110 6.4.1, 8.6).
NO_BODY = (204, 304)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")     # RFC 9110 5.6.2
_FIXED = (bytes, bytearray, memoryview, str)


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number of seconds, not %r" % (what, value))
    if not value >= 0:
        raise ValueError("%s must not be negative, not %r" % (what, value))
    return value


def header_pairs(headers, what="headers"):
    """Return *headers* (a mapping or pairs) as a list of (str, str)."""
    if headers is None:
        return []
    if isinstance(headers, (str, bytes)):
        raise TypeError("%s must be a mapping or a list of (name, value) pairs, not %r"
                        % (what, headers))
    pairs = []
    for item in headers.items() if hasattr(headers, "items") else headers:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError("%s must be a mapping or a list of (name, value) pairs; "
                            "found %r" % (what, item))
        name, value = item
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(
                value, (str, int)):
            raise TypeError("%s must map str names to str (or int) values, not %r: %r"
                            % (what, name, value))
        value = str(value)
        if not _TOKEN.fullmatch(name):
            raise ValueError("%s: %r is not a header name (RFC 9110 5.1)" % (what, name))
        if any(c in value for c in "\r\n\0"):
            raise ValueError("%s: the value of %s holds CR, LF or NUL: %r" % (what, name, value))
        pairs.append((name, value))
    return pairs


def _piece(piece):
    if isinstance(piece, str):
        return piece.encode("utf-8")
    if isinstance(piece, (bytes, bytearray, memoryview)):
        return bytes(piece)
    raise TypeError("a streamed body yields bytes or str pieces, not %r" % (piece,))


class _Reply:
    """A response to send: status, headers, and a body, whole or in pieces."""

    def __init__(self, status=200, headers=None, body=b"", json=None, chunk_delay=0.0,
                 truncate=None):
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError("status must be an int, not %r" % (status,))
        if not 200 <= status <= 599:
            raise ValueError("status must be from 200 to 599, not %r" % (status,))
        self.status = status
        self.headers = header_pairs(headers)
        self.chunk_delay = _number(chunk_delay, "chunk_delay")
        ctype = None
        if json is not None:
            if not isinstance(body, _FIXED) or len(body):
                raise ValueError("give body or json, not both")
            body, ctype = _json.dumps(json).encode("utf-8"), "application/json"
        elif isinstance(body, str):
            body, ctype = body.encode("utf-8"), "text/plain; charset=utf-8"
        elif isinstance(body, (dict, set, frozenset)) or not isinstance(
                body, _FIXED) and not hasattr(body, "__iter__"):
            raise TypeError("body must be bytes, str, or an iterable of bytes or str "
                            "pieces (streamed), not %r%s" % (type(body).__name__, (
                                "; for JSON, pass json=" if isinstance(body, dict) else "")))
        self.streamed = not isinstance(body, _FIXED)
        if self.streamed:
            if isinstance(body, (list, tuple)):
                for piece in body:
                    _piece(piece)           # refuse a wrong piece now, not mid-response
            self.one_shot = iter(body) is body      # a generator: it answers once
        else:
            body, self.one_shot = bytes(body), False
        self.body = body
        if (self.streamed or body) and status in NO_BODY:
            raise ValueError("a %d response has no body (RFC 9110 6.4.1)" % status)
        if chunk_delay and not self.streamed:
            raise ValueError("chunk_delay needs a streamed body (an iterable of pieces)")
        if truncate is not None:
            if isinstance(truncate, bool) or not isinstance(truncate, int):
                raise TypeError("truncate must be None or an int (body bytes to send), "
                                "not %r" % (truncate,))
            if truncate < 0 or not self.streamed and truncate >= len(body):
                raise ValueError("truncate must be at least 0 and less than the %s, not %r"
                                 % ("body's %d bytes" % len(body) if not self.streamed
                                    else "streamed body's length", truncate))
        self.truncate = truncate
        names = {name.lower() for name, _ in self.headers}
        # Framing the test gave itself is left alone, so a wrong one can be sent.
        self.framed = bool(names & {"content-length", "transfer-encoding"})
        if ctype and "content-type" not in names and status not in NO_BODY:
            self.headers.append(("Content-Type", ctype))
        if not self.framed and not self.streamed and status not in NO_BODY:
            self.headers.append(("Content-Length", str(len(body))))

    def send(self, request, halt):
        """Write the response to *request* (a BaseHTTPRequestHandler).

        *halt* is an Event that ends a pause between pieces early (the
        server's stop); the response then stops where it is.
        """
        request.send_response(self.status)
        for name, value in self.headers:
            request.send_header(name, value)
        # A chunked response only to HTTP/1.1 (RFC 9112 7); HTTP/1.0 gets
        # the pieces unframed, the body ending when the connection does.
        chunked = (self.streamed and not self.framed and self.status not in NO_BODY
                   and request.request_version != "HTTP/1.0")
        if chunked:
            request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        wfile = request.wfile
        if request.command == "HEAD" or self.status in NO_BODY:
            if self.truncate is not None:
                request.close_connection = True
            return
        if not self.streamed:
            wfile.write(self.body if self.truncate is None else self.body[:self.truncate])
            if self.truncate is not None:
                request.close_connection = True
            return
        wfile.flush()       # the head goes now, before the first piece is made
        left = self.truncate
        first = True
        for piece in self.body:
            piece = _piece(piece)
            if not piece:
                continue    # a zero-size chunk would end a chunked body
            if not first and self.chunk_delay and halt.wait(self.chunk_delay):
                request.close_connection = True     # stop() cut the pause short
                return
            first = False
            cut = left is not None and len(piece) > left
            data = piece[:left] if cut else piece
            wfile.write(b"%x\r\n%s%s" % (len(piece), data, b"" if cut else b"\r\n")
                        if chunked else data)
            if cut:
                break
            if left is not None:
                left -= len(piece)
        if self.truncate is not None:
            request.close_connection = True     # cut short: no last chunk, then close
        elif chunked:
            wfile.write(b"0\r\n\r\n")           # the last chunk (RFC 9112 7.1)

    def describe(self):
        body = ("streamed" if self.streamed else "%d bytes" % len(self.body))
        if self.truncate is not None:
            body += ", cut after %d" % self.truncate
        return "%d, %s" % (self.status, body)


def _started(request):
    """Tell whether a response to *request* (the request object) was begun."""
    return request._response_begun()


def _call(func, request):
    """Call a handler with the request object.

    A handler that wrote nothing and returned a value (a str, bytes, a
    tuple) most likely meant it as the response, and the client would see
    the connection close (issue 10): that is a TypeError, and the client
    gets a 500.  What a handler that wrote a response returns is ignored,
    so that ``lambda request: request.wfile.write(...)`` works.
    """
    result = func(request)
    if result is not None and not _started(request):
        raise TypeError(
            "the handler %s wrote nothing and returned %s; an HTTP handler sends its "
            "response through the request object it gets (send_response(), "
            "send_header(), end_headers() and wfile, or respond()), and returning "
            "a value does not send it"
            % (getattr(func, "__name__", None) or repr(func), _short(result, 200)))
