"""What an expectation matches: method, path, query, headers and body.

:class:`_Matcher` is built from the matching arguments of ``expect()``,
checking each (``TypeError`` for a wrong type, ``ValueError`` for a wrong
value) when the test registers it, not when a request arrives.  Given a
:class:`Request`, it returns ``None`` when the request matches and
otherwise the ways it differs, one short text each: those texts are the
unmatched-request report.  The form parsers (URL-encoded and
``multipart/form-data``, RFC 7578) serve ``Request.form()`` as well.
"""

import binascii
import codecs
import collections
import email.parser
import email.utils
import inspect
import json as _json
import quopri
import re
import urllib.parse

__all__ = []

_Pattern = type(re.compile(""))
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")     # RFC 9110 5.6.2
_SCALARS = (str, int, float)

#: One uploaded file of a ``multipart/form-data`` body.
FormFile = collections.namedtuple("FormFile", "filename content_type data")


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _name(func):
    return getattr(func, "__name__", None) or repr(func)


def check_callable(func, what):
    """Raise TypeError unless *func* can be called with one argument."""
    if not callable(func):
        raise TypeError("%s must be a callable that takes the request, not %r" % (what, func))
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):     # some builtins have none: trust them
        return
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError("%s %s%s must accept one positional argument, the request"
                        % (what, _name(func), signature)) from None


def _strings(value, what, allow_bytes=False):
    """Return *value* (a scalar or a list of them) as a list of str (or bytes)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError("%s: an empty list matches nothing" % what)
    out = []
    for item in values:
        if isinstance(item, bytes) and allow_bytes:
            out.append(item)
        elif isinstance(item, _SCALARS) and not isinstance(item, bool):
            out.append(item if isinstance(item, str) else str(item))
        else:
            raise TypeError("%s must be a str, an int%s, or a list of them, not %r"
                            % (what, ", bytes" if allow_bytes else "", item))
    return out


# -- forms ---------------------------------------------------------------------------

def _content_type(headers):
    return (headers.get_content_type() if headers.get("Content-Type") else "")


def parse_multipart(body, content_type):
    """Split a ``multipart/form-data`` body into (name, filename, type, data).

    *content_type* is the header value, whose ``boundary`` parameter
    delimits the parts (RFC 2046 5.1.1, RFC 7578 4.1).  Raise
    :exc:`ValueError` for a body that is not well formed.
    """
    head = email.parser.HeaderParser().parsestr("Content-Type: %s\n\n" % content_type)
    boundary = head.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise ValueError("multipart/form-data without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        rest = body[len(delimiter):]
    else:       # a preamble, then CRLF and the first delimiter
        at = body.find(b"\r\n" + delimiter)
        if at < 0:
            raise ValueError("no boundary %r in the body" % boundary)
        rest = body[at + 2 + len(delimiter):]
    parts = []
    while not rest.startswith(b"--"):           # "--" ends the close delimiter
        end = rest.find(b"\r\n")
        if end < 0 or rest[:end].strip(b" \t"):  # only transport padding may follow
            raise ValueError("malformed boundary line after part %d" % len(parts))
        rest = rest[end + 2:]
        end = rest.find(b"\r\n" + delimiter)
        if end < 0:
            raise ValueError("the body ends inside part %d, before the closing boundary"
                             % (len(parts) + 1))
        part, rest = rest[:end], rest[end + 2 + len(delimiter):]
        if part.startswith(b"\r\n"):
            fields, data = b"", part[2:]        # a part with no header fields
        else:
            fields, blank, data = part.partition(b"\r\n\r\n")
            if not blank:
                raise ValueError("part %d has no blank line after its header fields"
                                 % (len(parts) + 1))
        meta = email.parser.HeaderParser().parsestr(
            fields.decode("utf-8", "replace").replace("\r\n", "\n") + "\n\n")
        name = meta.get_param("name", header="content-disposition")
        if name is None:
            raise ValueError("part %d has no Content-Disposition name" % (len(parts) + 1))
        coding = (meta.get("Content-Transfer-Encoding") or "").strip().lower()
        if coding in ("base64", "quoted-printable"):    # deprecated (RFC 7578 4.7), still sent
            data = (binascii.a2b_base64 if coding == "base64" else quopri.decodestring)(data)
        parts.append((email.utils.collapse_rfc2231_value(name), meta.get_filename(),
                      meta.get("Content-Type"), data))
    return parts


def _charset(name):
    """Return *name* if Python has that codec, else ``"utf-8"``."""
    try:
        return codecs.lookup(name).name if name else "utf-8"
    except LookupError:
        return "utf-8"


def parse_form(request):
    """Return (fields, files) of a form body: dicts of lists.

    A ``multipart/form-data`` body gives its text parts in *fields*
    (decoded by their charset, UTF-8 when none) and its file parts (those
    with a filename) in *files*, as :class:`FormFile`; any other body is
    read as ``application/x-www-form-urlencoded``.
    """
    headers = request.headers
    if _content_type(headers) != "multipart/form-data":
        charset = _charset(headers.get_content_charset())
        return urllib.parse.parse_qs(request.body.decode("latin-1"), keep_blank_values=True,
                                     encoding=charset, errors="replace"), {}
    fields, files = {}, {}
    for name, filename, ctype, data in parse_multipart(request.body, headers["Content-Type"]):
        if filename is None:
            charset = ctype and email.parser.HeaderParser().parsestr(
                "Content-Type: %s\n\n" % ctype).get_content_charset()
            fields.setdefault(name, []).append(data.decode(_charset(charset), "replace"))
        else:
            files.setdefault(name, []).append(FormFile(filename, ctype, data))
    return fields, files


# -- JSON compared as data -----------------------------------------------------------------

def _json_difference(actual, expected, where="$"):
    """Say where *actual* first differs from *expected* (parsed JSON), or None.

    As data, not text: key order and spacing do not count, 1 and 1.0 are
    one number, but ``true`` is not ``1``.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "at %s: %s, expected an object" % (where, _short(actual, 40))
        for key in expected:
            if key not in actual:
                return "at %s: no key %r" % (where, key)
        for key in actual:
            if key not in expected:
                return "at %s: unexpected key %r" % (where, key)
        for key, value in expected.items():
            diff = _json_difference(actual[key], value, "%s.%s" % (where, key))
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return "at %s: %s, expected an array" % (where, _short(actual, 40))
        if len(actual) != len(expected):
            return "at %s: %d items, expected %d" % (where, len(actual), len(expected))
        for i, (a, e) in enumerate(zip(actual, expected)):
            diff = _json_difference(a, e, "%s[%d]" % (where, i))
            if diff:
                return diff
        return None
    same_kind = (isinstance(actual, bool) == isinstance(expected, bool)
                 and isinstance(actual, (int, float)) == isinstance(expected, (int, float)))
    if same_kind and actual == expected:
        return None
    return "at %s: %s, expected %s" % (where, _short(actual, 40), _short(expected, 40))


# -- the matcher -------------------------------------------------------------------

class _Matcher:
    """The request side of an expectation; see the module docstring."""

    def __init__(self, method, path, query, headers, body, json, form, predicate):
        if method is not None:
            if not isinstance(method, str):
                raise TypeError("method must be a str or None, not %r" % (method,))
            if not _TOKEN.fullmatch(method):
                raise ValueError("method must be a token such as 'GET', not %r" % method)
            method = method.upper()
        if isinstance(path, str):
            if "#" in path:
                raise ValueError("a request target carries no fragment: %r" % path)
            if "?" in path:     # expect("GET", "/x?a=1"): the same as query="a=1"
                if query is not None:
                    raise ValueError("give the query in the path or as query=, not both: "
                                     "%r and query=%r" % (path, query))
                path, query = path.split("?", 1)
            if not (path.startswith("/") or path == "*"):
                raise ValueError("path must start with '/', not %r" % path)
        elif not isinstance(path, _Pattern):
            raise TypeError("path must be a str or a compiled re pattern, not %r" % (path,))
        if isinstance(query, dict):
            for key in query:
                if not isinstance(key, str):
                    raise TypeError("query keys must be str, not %r" % (key,))
            query = {key: _strings(value, "query value of %r" % key)
                     for key, value in query.items()}
        elif query is not None and not isinstance(query, str):
            raise TypeError("query must be None, a str or a dict, not %r" % (query,))
        self.method, self.path, self.query = method, path, query
        self.headers = []
        if headers is not None and not isinstance(headers, (dict, list, tuple)) and not (
                hasattr(headers, "items")):
            raise TypeError("match_headers must be a mapping or a list of (name, value) "
                            "pairs, not %r" % (headers,))
        for item in headers.items() if hasattr(headers, "items") else (headers or ()):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError("match_headers must be a mapping or a list of (name, value) "
                                "pairs; found %r" % (item,))
            name, value = item
            if not isinstance(name, str):
                raise TypeError("match_headers names must be str, not %r" % (name,))
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            elif not (value is None or isinstance(value, (str, _Pattern))):
                raise TypeError("match_headers value of %r must be a str, an int, a "
                                "compiled re pattern or None (absent), not %r" % (name, value))
            self.headers.append((name, value))
        if body is not None and not isinstance(body, (bytes, bytearray, str)):
            raise TypeError("match_body must be bytes or str, not %r" % (type(body).__name__,))
        self.body = bytes(body) if isinstance(body, bytearray) else body
        self.json = None
        if json is not None:
            # As the client would send it: tuples are lists, keys are strings.
            self.json = _json.loads(_json.dumps(json))
        if form is not None:
            if not isinstance(form, dict):
                raise TypeError("match_form must be a dict, not %r" % (form,))
            form = {_key(key): _strings(value, "match_form value of %r" % key, True)
                    for key, value in form.items()}
        self.form = form
        if predicate is not None:
            check_callable(predicate, "match")
        self.predicate = predicate

    def differences(self, request, record_error):
        """Return None if *request* matches, else a list of how it differs.

        The body is looked at only when method, path, query and headers
        match, and the predicate only when everything else does.  An
        exception the predicate raises is passed to *record_error*.
        """
        why = []
        method = request.method
        if self.method not in (None, method) and not (
                self.method == "GET" and method == "HEAD"):     # RFC 9110 9.3.2
            why.append("method is %s, not %s" % (method, self.method))
        if isinstance(self.path, str):
            if request.path != self.path:
                why.append("path is %r, not %r" % (request.path, self.path))
        elif not self.path.fullmatch(request.path):
            why.append("path %r does not match %r" % (request.path, self.path.pattern))
        if isinstance(self.query, str) and request.query != self.query:
            why.append("query is %r, not %r" % (request.query, self.query))
        elif isinstance(self.query, dict) and request.params != self.query:
            why.append("query is %s, not %s" % (_short(request.params), _short(self.query)))
        for name, want in self.headers:
            values = request.headers.get_all(name) or []
            if want is None:
                if values:
                    why.append("header %s is sent (%s); expected none" % (name, _short(values[0])))
            elif not values:
                why.append("no header %s" % name)
            elif isinstance(want, str) and want not in values:
                why.append("header %s is %s, not %r" % (name, _short(values[0]), want))
            elif not isinstance(want, str) and not any(want.fullmatch(v) for v in values):
                why.append("header %s %s does not match %r" % (name, _short(values[0]), want.pattern))
        if not why:
            why = self._body_differences(request)
        if not why and self.predicate is not None:
            try:
                if not self.predicate(request):
                    why.append("match %s returned false" % _name(self.predicate))
            except Exception as exc:
                record_error(exc)
                why.append("match %s raised %s" % (_name(self.predicate), _short(exc)))
        return why or None

    def _body_differences(self, request):
        why, body = [], request.body
        if isinstance(self.body, bytes) and body != self.body:
            why.append("body is %s, not %s" % (_short(body), _short(self.body)))
        elif isinstance(self.body, str):
            try:
                text = request.text()
            except (UnicodeError, LookupError) as exc:
                text = exc
            if text != self.body:
                why.append("body is %s, not %s" % (_short(text), _short(self.body)))
        if self.json is not None:
            try:
                diff = _json_difference(_json.loads(body), self.json)
            except ValueError as exc:
                diff = "not JSON (%s)" % exc
            if diff:
                why.append("JSON body %s" % diff)
        if self.form is not None:
            try:
                fields, files = parse_form(request)
            except ValueError as exc:
                why.append("form body: %s" % exc)
                return why
            for name, want in self.form.items():
                have = fields.get(name, []) + [f.data for f in files.get(name, ())]
                if not have:
                    why.append("no form field %r" % name)
                elif len(have) != len(want) or not all(map(_same_field, have, want)):
                    why.append("form field %r is %s, not %s" % (name, _short(have), _short(want)))
        return why

    def describe(self):
        """A short text of what it matches: ``GET /p?q``, then the rest."""
        path = self.path if isinstance(self.path, str) else "re %r" % self.path.pattern
        if isinstance(self.query, str):
            path += "?" + self.query
        elif self.query is not None:
            path += "?" + urllib.parse.urlencode(self.query, doseq=True)
        extras = ["header %s" % name for name, _ in self.headers]
        if self.body is not None:
            extras.append("body %s" % _short(self.body, 40))
        if self.json is not None:
            extras.append("JSON %s" % _short(self.json, 40))
        if self.form is not None:
            extras.append("form %s" % ", ".join(self.form))
        if self.predicate is not None:
            extras.append("match %s" % _name(self.predicate))
        return "%s %s%s" % (self.method or "*", path,
                            " with " + ", ".join(extras) if extras else "")


def _same_field(have, want):
    if isinstance(want, bytes):
        return (have if isinstance(have, bytes) else have.encode("utf-8")) == want
    return (have.decode("utf-8", "replace") if isinstance(have, bytes) else have) == want


def _key(key):
    if not isinstance(key, str):
        raise TypeError("match_form keys must be str, not %r" % (key,))
    return key
