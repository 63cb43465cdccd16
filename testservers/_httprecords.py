"""The record of one HTTP request: :class:`Request`.

One is kept for every request the HTTP servers read, whoever answered it
(a handler, an expectation, or the server itself with a 4xx).
"""

import json as _json
import time
import urllib.parse
from http.client import HTTPMessage

from ._httpbody import SpooledBody, open_body
from ._httpmatch import parse_form

__all__ = ["Request"]


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


class _Fields(tuple):
    """``(message_class, [(name, value), ...])``: headers not parsed yet.

    A request's :class:`~http.client.HTTPMessage` is built from its fields
    when first asked for (most handlers never read most requests' headers).
    """

    __slots__ = ()

    def build(self):
        # As http.client.parse_headers builds it, without the email parser:
        # obsolete folding is refused, so each line is one field (the email
        # parser's compat32 policy keeps values as they are).
        message_class, fields = self
        message = message_class()
        for name, value in fields:
            message.set_raw(name, value)
        return message


class Request:
    """One HTTP request as the server read it.

    ``method``, ``target`` (the request-target as sent), ``path`` and
    ``query`` (``target`` split at ``?``, neither percent-decoded),
    ``version`` (``"HTTP/1.1"``), ``headers`` (an
    :class:`http.client.HTTPMessage`), ``body`` (bytes, with any chunked
    coding removed; a large body is read from its temporary file on each
    access, see :meth:`body_file`), ``body_size``, ``trailers`` (a list of ``(name, value)`` pairs of a
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
        self._headers = headers if headers is not None else _Fields((HTTPMessage, ()))
        self._body = body
        self.trailers = list(trailers)
        self.client_address = client_address
        self.tls = tls
        self.connection = connection
        self.rejected = rejected
        self.status = None
        self.received = time.monotonic()

    @property
    def headers(self):
        """The header fields, an :class:`http.client.HTTPMessage`."""
        headers = self._headers
        if type(headers) is _Fields:
            headers = self._headers = headers.build()
        return headers

    @headers.setter
    def headers(self, value):
        self._headers = value

    @property
    def body(self):
        """The body as bytes (read from its file if it was spooled to one)."""
        body = self._body
        return body.read() if isinstance(body, SpooledBody) else body

    @body.setter
    def body(self, value):
        self._body = value

    @property
    def body_size(self):
        """The length of the decoded body, without reading it."""
        body = self._body
        return body.size if isinstance(body, SpooledBody) else len(body or b"")

    @property
    def spooled(self):
        """True if the body is kept in a temporary file rather than in memory."""
        return isinstance(self._body, SpooledBody)

    def body_file(self):
        """Return a new binary file object reading the body from its start.

        A body larger than the server's *spool_threshold* is kept in a
        temporary file until the server's ``stop()``; reading it this way
        does not load it whole.  Close the file when done.
        """
        return open_body(self._body if self._body is not None else b"")

    @property
    def params(self):
        """The query as a dict of lists, by :func:`urllib.parse.parse_qs`."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    def text(self):
        """Return the body decoded by the charset of Content-Type (UTF-8 if none)."""
        return self.body.decode(self.headers.get_content_charset() or "utf-8")

    def form(self):
        """Return the fields of a form body as a dict of lists of str.

        The body is ``multipart/form-data`` when Content-Type says so (its
        text parts; the files are in :meth:`files`), and otherwise
        ``application/x-www-form-urlencoded``.  A malformed multipart body
        raises :exc:`ValueError`.
        """
        return parse_form(self)[0]

    def files(self):
        """Return the files of a ``multipart/form-data`` body, a dict of lists.

        Each file is a named tuple ``(filename, content_type, data)``.
        """
        return parse_form(self)[1]

    def json(self):
        """Return the body parsed as JSON."""
        return _json.loads(self.body)

    def __repr__(self):
        what = ("%s %s %s" % (self.method, self.target, self.version)
                if self.method else "unparsed request")
        return "<Request %s -> %s, %d body bytes%s>" % (
            what, self.status, self.body_size,
            ", rejected: %s" % self.rejected if self.rejected else "")
