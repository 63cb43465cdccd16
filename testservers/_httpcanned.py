"""Canned HTTP responses: Expectation, UnexpectedRequest, and the part
(:class:`_Expectations`) that holds an HTTP server's expectations.

The expectations that ``TestHTTPServer.expect()`` registers answer first,
in the spirit of pytest-httpserver but with nothing to install; a request
that matches none goes to the server's handler, or, when it has none, is
answered 404 and recorded as an :exc:`UnexpectedRequest` (listing why
each expectation did not match), which ``stop()`` raises.  What an
expectation matches is in ``_httpmatch``, how it answers in
``_httpreply``, the :class:`Request` record in ``_httprecords``.
"""

from ._httpmatch import _Matcher, check_callable
from ._httpreply import _call, _Reply, _number
from ._records import _awaitable

__all__ = ["Request", "Expectation", "UnexpectedRequest"]

#: How many expectations the unmatched-request report lists.
REPORT_LIMIT = 20


class UnexpectedRequest(AssertionError):
    """A request that no expectation of a handler-less server matched."""


class Expectation:
    """A canned response and the requests it answers; see ``expect()``.

    ``count`` is how many requests it answered and ``requests`` lists them;
    ``times`` is how often it answers (``None``: always); ``remaining`` is
    how often it still will.  :meth:`wait` blocks until it has answered.
    The other attributes hold the arguments of ``expect()``.
    """

    def __init__(self, server, matcher, reply, handler, delay, times, ordered):
        self._server = server
        self._matcher, self._reply, self.handler = matcher, reply, handler
        self.method, self.path, self.query = matcher.method, matcher.path, matcher.query
        self.match_headers = matcher.headers
        self.match_body, self.match_json = matcher.body, matcher.json
        self.match_form, self.match = matcher.form, matcher.predicate
        self.status = self.headers = self.body = self.chunk_delay = self.truncate = None
        if reply is not None:
            self.status, self.headers, self.body = reply.status, reply.headers, reply.body
            self.chunk_delay, self.truncate = reply.chunk_delay, reply.truncate
        self.delay = delay
        self.ordered = ordered
        self.times = times
        self._requests = []         # at most the server's max_records of them
        self._count = 0

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

    def wait(self, count=None, timeout=None):
        """Wait until it answered *count* requests (default: ``times``, or 1).

        Return the requests it answered.  A handler error recorded meanwhile
        is raised at once; :exc:`TimeoutError` says what arrived instead.
        """
        count = count or self.times or 1
        return self._server.wait_for(
            lambda: list(self._requests) if self._count >= count else None,
            timeout, "%d requests matching %s" % (count, self._describe()))

    async_wait = _awaitable(wait)

    def _used_up(self):
        if self.times is not None and self._count >= self.times:
            return ["used up (answered %d of %d)" % (self._count, self.times)]
        return None

    def _claim(self, request, head):
        """Count *request* as answered, unless it is no longer available.

        Called with the server's lock held, after the (unlocked) match.
        """
        server = self._server
        why = self._used_up()
        if why is None and self.ordered and head() is not self:
            why = ["ordered: another is due first"]
        if why is not None:
            return why
        self._count += 1
        if len(self._requests) < server.max_records:
            self._requests.append(request)
        elif self._count == server.max_records + 1:
            server._record_error(OverflowError(
                "%r: %r kept %d requests, the server's max_records; later "
                "ones were only counted" % (server, self, server.max_records)))
        server._cond.notify_all()
        return None

    def _respond(self, request, halt):
        if self.delay:
            halt.wait(self.delay)
        if self._reply is None:
            _call(self.handler, request)
        else:
            self._reply.send(request, halt)

    def _describe(self):
        return self._matcher.describe()

    def _answer_text(self):
        mode = "ordered" if self.ordered else "always" if self.times is None else (
            "%d times" % self.times)
        answer = self._reply.describe() if self._reply is not None else "handler %s" % (
            getattr(self.handler, "__name__", None) or repr(self.handler))
        return "%s, %s" % (answer, mode)

    def __repr__(self):
        return "<Expectation %s -> %s, answered %d>" % (
            self._describe(), self._answer_text(), self._count)


def _is_default(value, default):
    return value is default or (type(value) is type(default) and value == default)


class _Expectations:
    """The expectations of an HTTP server: a part it holds (``_canned``).

    It keeps them, finds the one that answers a request (before any
    handler), reports why none did, and keeps strict mode's state: what
    ``stop()`` last raised for, and when a check is waived.  The server's
    ``expect()``, ``expectations``, ``clear_expectations()`` and
    ``check_expectations()`` are its.
    """

    def __init__(self, server):
        self._server = server
        self.items = []             # the Expectation objects, oldest first
        self._waived = 0            # > 0 in restart(), and leaving a with block by an exception
        self._strict_seen = None    # the use of the expectations strict mode last raised for

    def make(self, method, path, query, match_headers, match_body, match_json, match_form,
             match, status, headers, body, json, handler, delay, chunk_delay, truncate,
             times, ordered):
        """Check the arguments of ``expect()``; register and return the Expectation."""
        matcher = _Matcher(method, path, query, match_headers, match_body, match_json,
                           match_form, match)
        if not isinstance(ordered, bool):
            raise TypeError("ordered must be True or False, not %r" % (ordered,))
        if times is not None:
            if isinstance(times, bool) or not isinstance(times, int):
                raise TypeError("times must be None or an int, not %r" % (times,))
            if times < 1:
                raise ValueError("times must be None or a positive int, not %r" % (times,))
        _number(delay, "delay")
        reply = None
        if handler is not None:
            check_callable(handler, "handler")
            given = [name for name, value, default in (
                ("status", status, 200), ("headers", headers, None), ("body", body, b""),
                ("json", json, None), ("chunk_delay", chunk_delay, 0.0),
                ("truncate", truncate, None)) if not _is_default(value, default)]
            if given:
                raise ValueError("a handler sends its own response: give handler or %s, "
                                 "not both" % ", ".join(given))
        else:
            reply = _Reply(status, headers, body, json, chunk_delay, truncate)
        if ordered and times is None:
            times = 1
        if reply is not None and reply.one_shot and times != 1:
            raise ValueError("a body given as an iterator (a generator) can be sent once: "
                             "pass times=1, or give a list of pieces to answer every time")
        exp = Expectation(self._server, matcher, reply, handler, delay, times, ordered)
        with self._server._cond:
            self.items.append(exp)
        return exp

    def snapshot(self):
        with self._server._cond:
            return list(self.items)

    def clear(self):
        with self._server._cond:
            self.items = []

    def check(self):
        """Raise :exc:`AssertionError` unless every expectation was used."""
        with self._server._cond:
            unused = [e for e in self.items
                      if not e._count or (e.times is not None and e.remaining)]
        if unused:
            raise AssertionError("%r: %d expectations not used as declared: %s" % (
                self._server, len(unused), "; ".join(repr(e) for e in unused)))

    # -- strict mode --------------------------------------------------------

    def check_after_stop(self):
        """Strict mode, after a stop(): check, once for a given use."""
        with self._server._cond:
            if self._waived:
                return
            seen = self._state()
            if seen == self._strict_seen:
                return          # raised (or waived) already for just this
            self._strict_seen = seen
        self.check()

    def _state(self):
        return [(e, e._count) for e in self.items]

    def waive(self, more=1):
        """Waive the strict check (*more* = 1) or end a waiver (-1)."""
        with self._server._cond:
            self._waived += more

    def waived(self, func, *args):
        """Call ``func(*args)`` with the strict check waived."""
        self.waive()
        try:
            return func(*args)
        finally:
            self.waive(-1)

    def settle(self):
        """The exception leaving a with block said more than the expectations
        it left unused: do not replace it with theirs, now or later."""
        with self._server._cond:
            self._strict_seen = self._state()

    # -- answering ------------------------------------------------------------

    def answer(self, request):
        """Answer *request*: by an expectation, else the handler, else 404."""
        server = self._server
        handler = server._handler
        if handler is not None and not self.items:
            _call(handler, request)     # the usual case: no matching at all
            return
        exp, report = self._match(request.record)
        if exp is not None:
            exp._respond(request, server._halt)
        elif handler is not None:
            _call(handler, request)
        else:
            self._unmatched(request, report)

    def _match(self, request):
        """Return (the expectation that answers *request*, None) or (None, report).

        The matching runs with no lock held (a ``match`` predicate is the
        test's code); only the claim of the match takes the lock.  The
        next ordered expectation is tried first, then those with ``times``,
        then the others, each group in registration order.
        """
        server = self._server
        with server._cond:
            exps = list(self.items)

        def head():
            return next((e for e in self.items if e.ordered and not e._used_up()), None)
        due = head()
        order = ([due] if due is not None else []) + [
            e for e in exps if not e.ordered and e.times is not None] + [
            e for e in exps if not e.ordered and e.times is None]
        reasons, errors, found = {}, [], None
        for exp in order:
            why = exp._used_up() or exp._matcher.differences(request, errors.append)
            if why is None:
                with server._cond:
                    why = exp._claim(request, head)
                if why is None:
                    found = exp
                    break
            reasons[exp] = why
        for exc in errors:
            server._record_error(exc)
        if found is not None:
            return found, None
        report = []
        for exp in exps[:REPORT_LIMIT]:
            why = reasons.get(exp) or exp._used_up() or [
                "ordered: %s is due first" % (due._describe() if due else "another")]
            report.append("  %s -> %s: %s" % (exp._describe(), exp._answer_text(),
                                              "; ".join(why)))
        if len(exps) > REPORT_LIMIT:
            report.append("  and %d more" % (len(exps) - REPORT_LIMIT))
        if due is not None:
            report.append("the next ordered one is %s" % due._describe())
        return None, report

    def _unmatched(self, request, report):
        record = request.record
        text = "no expectation matches %s %s" % (record.method, record.target)
        if report:
            count = len(self.items)
            text += "; the %s:\n%s" % ("expectation" if count == 1 else "%d expectations" % count,
                                       "\n".join(report))
        else:
            text += "; there are no expectations"
        server = self._server
        if not server.allow_unmatched:
            server._record_error(UnexpectedRequest("%r: the client got 404: %s" % (server, text)))
        request._send_simple(404, text, request.close_connection)
