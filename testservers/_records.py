"""What the servers received, and how a test waits for it.

Every server keeps thread-safe records of what arrived (connections,
datagrams, and in the protocol servers messages and requests) and of the
exceptions its handlers raised.  The ``wait_...`` helpers block on one
condition variable that every new record and every error notifies, so a
waiting test wakes as soon as its condition holds, and at once when a
handler fails.
"""

import threading
import time

# _awaitable makes the twins of the servers' waits; they import it from here.
from ._aio import _AWAITING, _AsyncWait, _awaitable

__all__ = ["Connection", "Datagram"]

#: How long a ``wait_...`` helper waits when its caller gives no timeout.
WAIT_TIMEOUT = 10.0

#: How many records of each kind a server keeps before it refuses more.
MAX_RECORDS = 100000

_RECHECK = 0.05     # wait_for() re-evaluates a predicate at least this often



class Connection:
    """One accepted stream connection, as the server saw it.

    ``id`` counts from 1 in accept order; ``peer`` is the client address;
    ``opened`` and ``closed`` are :func:`time.monotonic` times (``closed``
    is ``None`` while the connection is open); ``bytes_received`` and
    ``bytes_sent`` count payload bytes through the socket (decrypted bytes
    under TLS); ``closed_by`` is ``"client"`` when the peer ended the
    stream first, ``"server"`` otherwise; ``reset`` tells whether the peer
    reset the connection; ``tls`` whether TLS was in use, and
    ``tls_info`` what its handshake showed (a :class:`TLSInfo`, ``None``
    without TLS); ``fault`` names
    the fault that hit it (``"garbage"``, ``"hang_up"``, ``"drop"``,
    ``"reset"``), or is ``None``.  ``data`` holds
    the bytes received, for the servers that record them (TCP and Unix
    stream), and is ``None`` for the others.
    """

    def __init__(self, id, peer, record_data=False):
        self.id = id
        self.peer = peer
        self.opened = time.monotonic()
        self.closed = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.closed_by = None
        self.reset = False
        self.tls = False
        self.tls_info = None        # a TLSInfo, set by the handshake
        self.fault = None
        self._data = bytearray() if record_data else None
        self._data_full = False     # more arrived than max_data allows

    @property
    def data(self):
        """The bytes received so far, or ``None`` when not recorded."""
        return None if self._data is None else bytes(self._data)

    def __repr__(self):
        state = "open" if self.closed is None else "closed by %s" % self.closed_by
        return "<Connection %d from %r, %s, %d bytes in, %d out>" % (
            self.id, self.peer, state, self.bytes_received, self.bytes_sent)


class Datagram:
    """One received datagram: ``data`` (bytes), ``sender``, ``received``.

    ``received`` is a :func:`time.monotonic` time.  ``sender`` is the
    source address as :meth:`socket.socket.recvfrom` returned it (``None``
    or an empty string for an unbound Unix datagram socket).
    """

    __slots__ = ("data", "sender", "received")

    def __init__(self, data, sender):
        self.data = data
        self.sender = sender
        self.received = time.monotonic()

    def __repr__(self):
        return "<Datagram %r from %r>" % (self.data[:60], self.sender)


def _add_note(exc, note):
    # PEP 678 notes: printed by 3.11+ tracebacks and by pytest on every
    # version; on older versions the attribute is still there to read.
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        exc.__notes__ = list(getattr(exc, "__notes__", ())) + [note]


class _Found(list):
    """The records a count wait found: a list that is true even when empty,
    so that waiting for 0 items is satisfied at once."""

    def __bool__(self):
        return True


def _check_timeout(timeout):
    """Return *timeout*, or :data:`WAIT_TIMEOUT` for None; refuse others."""
    if timeout is None:
        return WAIT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds or None, not %r" % (timeout,))
    if not timeout >= 0:
        raise ValueError("timeout must be >= 0, not %r" % (timeout,))
    return timeout


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError("count must be an int, not %r" % (count,))
    if count < 0:
        raise ValueError("count must be >= 0, not %r" % (count,))


class _Changes(threading.Condition):
    """The records' condition: it counts its notifications.

    A waiter notes ``changes`` before it evaluates its predicate without
    the lock, and waits only if nothing changed meanwhile, so no
    notification is lost between the two.
    """

    def __init__(self):
        # The lock itself, for the sections that only hold it: entered
        # directly, it spares the Condition's Python-level __enter__ and
        # __exit__ (several per connection).
        self.lock = threading.RLock()
        super().__init__(self.lock)
        self.changes = 0
        self.wakers = []    # one callable per awaiting coroutine

    def notify_all(self):
        self.changes += 1
        if self._waiters:   # Condition's own list: no thread waits, the usual case
            super().notify_all()
        for wake in self.wakers:
            wake()

    notifyAll = notify_all


class _RecordStore:
    """The records and errors of one server, and the waits on them.

    A part the server holds (``server._store``): the server's public
    ``wait_for()``, ``errors``, ``take_errors()``, ``raise_errors()`` and
    ``clear_records()`` are this store's.  *owner* is the server, for its
    ``repr()`` in messages, its ``max_records`` (a setting of the server,
    read each time) and its ``_summary()``, which a server may extend.
    """

    def __init__(self, owner):
        self._owner = owner
        self.cond = _Changes()
        self._errors = []
        self._unreported = 0   # how many errors at the end of _errors are unraised
        self._errors_dropped = 0    # handler errors past max_records, only counted
        self._records = {}
        self._overflowed = set()

    def __getstate__(self):
        # Process mode carries the records and errors across a restart.
        state = dict(vars(self))
        del state["cond"], state["_owner"]
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        self.cond = _Changes()
        self._owner = None          # the server that takes it over sets it

    # -- records ---------------------------------------------------------

    def append(self, kind, record):
        """Store *record* under *kind* and wake the waiters."""
        with self.cond.lock:
            items = self._records.get(kind)
            if items is None:
                items = self._records[kind] = []
            if len(items) >= self._owner.max_records:
                if kind not in self._overflowed:
                    self._overflowed.add(kind)
                    self._errors.append(OverflowError(
                        "%r kept %d %s records, its max_records; later ones "
                        "were dropped (raise max_records or call "
                        "clear_records())" % (self._owner, len(items), kind)))
                    self._unreported += 1
                    self.cond.notify_all()
                return False
            items.append(record)
            self.cond.notify_all()
            return True

    def notify(self):
        with self.cond.lock:
            self.cond.notify_all()

    def snapshot(self, kind):
        with self.cond.lock:
            return list(self._records.get(kind, ()))

    def clear(self):
        with self.cond.lock:
            self._records.clear()
            self._overflowed.clear()

    def summary(self):
        """Say briefly what arrived, for the message of a failed wait."""
        with self.cond.lock:
            parts = []
            for kind, items in sorted(self._records.items()):
                text = "%d %s" % (len(items), kind)
                if items:
                    text += " (last: %r)" % (items[-1],)
                parts.append(text)
        return ", ".join(parts) or "nothing"

    # -- waiting ----------------------------------------------------------

    def wait_for(self, predicate, timeout, what):
        timeout = _check_timeout(timeout)
        if _AWAITING.get():
            return _AsyncWait(self, predicate, timeout, what)
        deadline = time.monotonic() + timeout
        cond = self.cond
        while True:
            with cond:
                seen = cond.changes
            self.raise_errors()
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.timeout_error(timeout, what)
            with cond:
                if cond.changes == seen:
                    cond.wait(min(remaining, _RECHECK))

    def wait_count(self, kind, count, timeout, accept=None):
        _check_count(count)
        label = kind if accept is None else "closed " + kind

        def enough():
            items = self.snapshot(kind)
            if accept is not None:
                items = [item for item in items if accept(item)]
            return _Found(items) if len(items) >= count else None
        return self.wait_for(enough, timeout, "%d %s" % (count, label))

    def timeout_error(self, timeout, what):
        owner = self._owner
        ready = getattr(owner, "ready", None)
        idle = "" if ready is None or ready.is_set() else " (and it was not serving)"
        return TimeoutError("%r: waited %.3g s for %s; received %s%s"
                            % (owner, timeout, what, owner._summary(), idle))

    # -- errors -----------------------------------------------------------

    def record_error(self, exc):
        with self.cond.lock:
            if any(e is exc for e in self._errors):
                return      # raised into a handler (by stop()) and out again
            # The list is a record store too: a handler that fails on every
            # request of a long run must not hold every traceback.  When it
            # is full, an error already raised makes room for the new one.
            limit = self._owner.max_records
            if len(self._errors) >= limit and len(self._errors) > self._unreported:
                del self._errors[0]
                self._errors_dropped += 1
            if len(self._errors) < limit:
                self._errors.append(exc)
                self._unreported += 1
            else:
                self._errors_dropped += 1
            self.cond.notify_all()

    def errors(self):
        with self.cond.lock:
            return list(self._errors)

    def has_errors(self):
        with self.cond.lock:
            return bool(self._errors)

    def take_errors(self):
        with self.cond.lock:
            errors, self._errors = self._errors, []
            self._unreported = self._errors_dropped = 0
            return errors

    def raise_errors(self):
        with self.cond.lock:
            if not self._unreported:
                return
            pending = self._errors[-self._unreported:]
            self._unreported = 0
            dropped = self._errors_dropped
        first = pending[0]
        note = "raised in a handler of %r" % (self._owner,)
        if len(pending) > 1:
            note += "; %d more handler errors followed: %s (see .errors)" % (
                len(pending) - 1, ", ".join(repr(e) for e in pending[1:4]))
        if dropped:
            note += "; %d more were not kept (max_records)" % dropped
        _add_note(first, note)
        raise first
