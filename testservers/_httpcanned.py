"""HTTP records and canned responses: Request, Expectation, UnexpectedRequest.

A :class:`Request` is kept for every request the HTTP servers read, whoever
answered it.  With no handler, a server answers from the expectations that
:meth:`_CannedMixin.expect` registers, in the spirit of pytest-httpserver
but with nothing to install: a request that matches none is answered 404
and recorded as an :exc:`UnexpectedRequest`, which ``stop()`` raises.
"""

import json as _json
import re
import time
import urllib.parse
from http.client import HTTPMessage

__all__ = ["Request", "Expectation", "UnexpectedRequest"]

_Pattern = type(re.compile(""))

# Responses that carry no body and, for 204, no Content-Length
# (RFC 9110 6.4.1, 8.6).
_NO_BODY = (204, 304)


def _split_target(target):
    """Split a request-target into (path, query), as sent (not decoded).

    The path is ``None`` when *target* is ``None`` or an absolute-form
    target that :func:`urllib.parse.urlsplit` refuses (``http://[/``).
    """
    if target is None:
        return None, ""
    if target.startswith("/") or target == "*":
        path, _, query = target.partition("?")
        return path, query
    try:
        parts = urllib.parse.urlsplit(target)      # absolute-form (RFC 9112 3.2.2)
    except ValueError:          # an unbalanced "[" in the authority, say
        return None, ""
    return parts.path or "/", parts.query


class Request:
    """One HTTP request as the server read it.

    ``method``, ``target`` (the request-target as sent), ``path`` and
    ``query`` (``target`` split at ``?``, neither percent-decoded),
    ``version`` (``"HTTP/1.1"``), ``headers`` (an
    :class:`http.client.HTTPMessage`), ``body`` (bytes, with any chunked
    coding removed), ``trailers`` (a list of ``(name, value)`` pairs of a
    chunked body), ``client_address``, ``tls`` (bool), ``connection`` (the
    :class:`Connection` it arrived on) and ``received`` (a
    :func:`time.monotonic` time).

    ``status`` is the status code of the response, set as the response
    head goes out (``None`` before that, and for responses a handler wrote
    that do not start with a status line).  ``rejected`` is ``None`` for a
    request that reached a handler or an expectation, and otherwise says
    why the server answered it itself (400, 408, 413, 414, 417, 431, 501,
    505); fields it could not parse are then ``None``.
    """

    def __init__(self, method, target, version, headers, body, client_address,
                 tls, connection, rejected=None, trailers=()):
        self.method = method
        self.target = target
        self.path, self.query = _split_target(target)
        self.version = version
        self.headers = headers if headers is not None else HTTPMessage()
        self.body = body
        self.trailers = list(trailers)
        self.client_address = client_address
        self.tls = tls
        self.connection = connection
        self.rejected = rejected
        self.status = None
        self.received = time.monotonic()

    @property
    def params(self):
        """The query as a dict of lists, by :func:`urllib.parse.parse_qs`."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    def text(self):
        """Return the body decoded by the charset of Content-Type (UTF-8 if none)."""
        return self.body.decode(self.headers.get_content_charset() or "utf-8")

    def form(self):
        """Return an ``application/x-www-form-urlencoded`` body as a dict of lists."""
        return urllib.parse.parse_qs(self.body.decode("latin-1"), keep_blank_values=True)

    def json(self):
        """Return the body parsed as JSON."""
        return _json.loads(self.body)

    def __repr__(self):
        what = ("%s %s %s" % (self.method, self.target, self.version)
                if self.method else "unparsed request")
        return "<Request %s -> %s, %d body bytes%s>" % (
            what, self.status, len(self.body or b""),
            ", rejected: %s" % self.rejected if self.rejected else "")


class UnexpectedRequest(AssertionError):
    """A request that no expectation of a handler-less server matched."""


def _header_pairs(headers):
    if headers is None:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    pairs = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, (str, int)):
            raise TypeError("headers must map str names to str values, not %r: %r"
                            % (name, value))
        pairs.append((name, str(value)))
    return pairs


class Expectation:
    """A canned response and the requests it answers; see ``expect()``.

    ``count`` is how many requests it answered and ``requests`` lists them;
    ``times`` is how often it answers (``None``: always); ``remaining`` is
    how often it still will.  :meth:`wait` blocks until it has answered.
    """

    def __init__(self, server, method, path, query, match_headers, status,
                 headers, body, json, delay, times, ordered):
        if method is not None and not isinstance(method, str):
            raise TypeError("method must be a str or None, not %r" % (method,))
        if not isinstance(path, (str, _Pattern)):
            raise TypeError("path must be a str or a compiled re pattern, not %r" % (path,))
        if isinstance(path, str) and not (path.startswith("/") or path == "*"):
            raise ValueError("path must start with '/' (without the query), not %r" % path)
        if query is not None and not isinstance(query, (str, dict)):
            raise TypeError("query must be None, a str or a dict, not %r" % (query,))
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError("status must be an int from 200 to 599, not %r" % (status,))
        if json is not None and body:
            raise ValueError("give body or json, not both")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("times must be None or a positive int, not %r" % (times,))
        if delay < 0:
            raise ValueError("delay must not be negative, not %r" % (delay,))
        self._server = server
        self.method = method.upper() if method is not None else None
        self.path = path
        self.query = query
        self.match_headers = _header_pairs(match_headers)
        self.status = status
        self.headers = _header_pairs(headers)
        self.delay = delay
        self.ordered = ordered
        self.times = 1 if ordered and times is None else times
        self._requests = []         # at most the server's max_records of them
        self._count = 0
        ctype = None
        if json is not None:
            body, ctype = _json.dumps(json).encode("utf-8"), "application/json"
        elif isinstance(body, str):
            body, ctype = body.encode("utf-8"), "text/plain; charset=utf-8"
        elif not isinstance(body, (bytes, bytearray)):
            raise TypeError("body must be bytes or str, not %r" % (type(body).__name__,))
        self.body = bytes(body)
        names = {name.lower() for name, _ in self.headers}
        if ctype and "content-type" not in names and status not in _NO_BODY:
            self.headers.append(("Content-Type", ctype))
        if not names & {"content-length", "transfer-encoding"} and status not in _NO_BODY:
            self.headers.append(("Content-Length", str(len(self.body))))

    @property
    def requests(self):
        """The :class:`Request` records it answered, oldest first."""
        with self._server._cond:
            return list(self._requests)

    @property
    def count(self):
        """How many requests it answered."""
        return self._count

    @property
    def remaining(self):
        """How many more requests it answers, or ``None`` for no limit."""
        return None if self.times is None else self.times - self._count

    def _matches(self, request):
        if self.times is not None and self._count >= self.times:
            return False
        if self.method not in (None, request.method) and not (
                self.method == "GET" and request.method == "HEAD"):   # RFC 9110 9.3.2
            return False
        if isinstance(self.path, str):
            if request.path != self.path:
                return False
        elif not self.path.fullmatch(request.path):
            return False
        if isinstance(self.query, str) and request.query != self.query:
            return False
        if isinstance(self.query, dict):
            want = {k: list(v) if isinstance(v, (list, tuple)) else [v]
                    for k, v in self.query.items()}
            if request.params != want:
                return False
        return all(value in (request.headers.get_all(name) or ())
                   for name, value in self.match_headers)

    def wait(self, count=None, timeout=None):
        """Wait until it answered *count* requests (default: ``times``, or 1).

        Return the requests it answered.  A handler error recorded meanwhile
        is raised at once; :exc:`TimeoutError` says what arrived instead.
        """
        count = count or self.times or 1
        return self._server.wait_for(
            lambda: list(self._requests) if self._count >= count else None,
            timeout, "%d requests matching %s" % (count, self._describe()))

    def _respond(self, handler):
        handler.send_response(self.status)
        for name, value in self.headers:
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD" and self.status not in _NO_BODY and self.body:
            handler.wfile.write(self.body)

    def _describe(self):
        path = self.path if isinstance(self.path, str) else "re %r" % self.path.pattern
        query = "" if self.query is None else "?%s" % (
            self.query if isinstance(self.query, str) else urllib.parse.urlencode(
                self.query, doseq=True))
        return "%s %s%s" % (self.method or "*", path, query)

    def __repr__(self):
        mode = "ordered" if self.ordered else "always" if self.times is None else (
            "%d times" % self.times)
        return "<Expectation %s -> %d, %s, answered %d>" % (
            self._describe(), self.status, mode, self._count)


class _CannedMixin:
    """The canned-response part of the HTTP servers (``handler=None``)."""

    allow_unmatched = False

    def expect(self, method, path, *, query=None, match_headers=None, status=200,
               headers=None, body=b"", json=None, delay=0.0, times=None,
               ordered=False):
        """Answer requests for *method* and *path* with a canned response.

        *method* is a method name (``"GET"`` also answers HEAD, without
        the body), or ``None`` for any; *path* is the path
        without the query, exact as sent, or a compiled :mod:`re` pattern
        that must match it whole.  *query* (a raw query string, or a dict
        compared with :attr:`Request.params`) and *match_headers* (name to
        value; each must be among the request's values for that name)
        narrow the match.  The response is *status* with *headers*, and
        *body* (bytes, or str sent as UTF-8 ``text/plain``) or *json* (any
        value :func:`json.dumps` takes, sent as ``application/json``);
        Content-Length is added.  *delay* seconds pass before it is sent.

        *times* ``None`` answers every match, an int that many matches.
        *ordered* expectations (``times`` defaults to 1) answer only in the
        order they were registered.  Ordered ones are tried first (only the
        next one due), then those with *times*, then the others, each in
        registration order.  Return the :class:`Expectation`.
        """
        exp = Expectation(self, method, path, query, match_headers, status,
                          headers, body, json, delay, times, ordered)
        with self._cond:
            self._expectations.append(exp)
        return exp

    @property
    def expectations(self):
        """The registered :class:`Expectation` objects, oldest first."""
        with self._cond:
            return list(self._expectations)

    def clear_expectations(self):
        """Forget every expectation."""
        with self._cond:
            self._expectations = []

    def check_expectations(self):
        """Raise :exc:`AssertionError` unless every expectation was used.

        Used means: answered at least once, and exactly ``times`` times when
        ``times`` was given.  ``stop()`` does not check this.
        """
        with self._cond:
            unused = [e for e in self._expectations
                      if not e._count or (e.times is not None and e.remaining)]
        if unused:
            raise AssertionError("%r: %d expectations not used as declared: %s" % (
                self, len(unused), "; ".join(repr(e) for e in unused)))

    def _match(self, request):
        exps = self._expectations
        head = next((e for e in exps if e.ordered and e.remaining), None)
        candidates = ([head] if head is not None else []) + [
            e for e in exps if not e.ordered and e.times is not None] + [
            e for e in exps if not e.ordered and e.times is None]
        for exp in candidates:
            if exp._matches(request):
                exp._count += 1
                if len(exp._requests) < self.max_records:
                    exp._requests.append(request)
                elif exp._count == self.max_records + 1:
                    self._record_error(OverflowError(
                        "%r: %r kept %d requests, the server's max_records; later "
                        "ones were only counted" % (self, exp, self.max_records)))
                self._cond.notify_all()
                return exp, head
        return None, head

    def _respond_canned(self, handler):
        request = handler.record
        with self._cond:
            exp, head = self._match(request)
            count = len(self._expectations)
        if exp is None:
            text = "no expectation matches %s %s" % (request.method, request.target)
            if head is not None:
                text += "; the next ordered one is %s" % head._describe()
            if not self.allow_unmatched:
                self._record_error(UnexpectedRequest(
                    "%r: %s (%d expectations registered; the client got 404)"
                    % (self, text, count)))
            handler._send_simple(404, text, handler.close_connection)
            return
        if exp.delay:
            self._halt.wait(exp.delay)
        exp._respond(handler)
