"""Named faults: break the network on purpose, and mend it on demand.

Each fault method acts at once, on the running server, and returns a
:class:`Fault` handle: ``handle.undo()`` (or leaving ``with``) mends that
fault, ``clear_faults()`` mends them all.  Every server can ``refuse()``;
the stream servers add ``drop()``, ``delay()``, ``drip()``, ``garbage()``
and ``hang_up()`` (``_stream``), the datagram servers ``drop_datagrams()``
(``_datagram``).

Faults nest.  Each setting keeps a stack of the faults that set it, and
the newest one still in force decides: undoing a fault removes exactly its
own layer, whatever the order of the undos, and what was in force before
it comes back.
"""

import threading

__all__ = ["Fault"]

#: What a garbage reply sends unless told otherwise: no protocol parses it.
GARBAGE = b"\x00\xff\xfe garbage \x16\x03\x00\r\n\x1b[0m\x80\r\n"


class Fault:
    """A handle on one applied fault: :meth:`undo` mends it.

    Usable as a context manager; ``name`` says which fault it is.
    """

    def __init__(self, server, name, undo=None):
        self.server = server
        self.name = name
        self._undo = undo

    def undo(self):
        """Mend this fault (a no-op for one-shot faults and the second time)."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.undo()

    def __repr__(self):
        return "<Fault %s on %r>" % (self.name, self.server)


class _FaultState:
    """The faults in force, read by the service and connection threads.

    The attributes below are the values in force, read without a lock on
    the hot paths (an attribute read is atomic).  They change only under
    ``_lock``, a leaf lock: nothing else is acquired while it is held.
    """

    DEFAULTS = {
        "refusing": False,
        "accept_delay": 0.0,
        "reply_delay": 0.0,
        "drip": None,           # (chunk, interval)
        "garbage": None,        # bytes sent to each new connection
        "hang_up": False,
    }

    def __init__(self):
        self._lock = threading.Lock()
        self._layers = {}       # setting -> [(token, value)], oldest first
        self._drops = []        # [token, remaining] per drop_datagrams fault
        self.drop_pending = 0   # the sum of the remaining drops
        vars(self).update(self.DEFAULTS)

    def push(self, settings):
        """Put *settings* (a dict) in force; return the token that undoes them."""
        token = object()
        with self._lock:
            for name, value in settings.items():
                self._layers.setdefault(name, []).append((token, value))
                setattr(self, name, value)
        return token

    def pop(self, token):
        """Remove the layer of *token*; what it covered is in force again."""
        with self._lock:
            for name, stack in self._layers.items():
                stack[:] = [layer for layer in stack if layer[0] is not token]
                setattr(self, name, stack[-1][1] if stack else self.DEFAULTS[name])
            self._drops = [d for d in self._drops if d[0] is not token]
            self.drop_pending = sum(d[1] for d in self._drops)

    def add_drops(self, count):
        token = object()
        with self._lock:
            self._drops.append([token, count])
            self.drop_pending += count
        return token

    def take_drop(self):
        """Count one datagram against the oldest drop fault; True to drop it."""
        if not self.drop_pending:       # the common case, without the lock
            return False
        with self._lock:
            for drop in self._drops:
                if drop[1]:
                    drop[1] -= 1
                    self.drop_pending -= 1
                    return True
        return False

    def __getstate__(self):
        # Process mode carries the faults in force across a restart.
        state = dict(vars(self))
        del state["_lock"]
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        self._lock = threading.Lock()


def _check_number(name, value, minimum=0.0):
    """Refuse a *value* that is not a real number >= *minimum*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number, not %r" % (name, value))
    if not value >= minimum:        # NaN fails too
        raise ValueError("%s must be >= %s, not %r" % (name, minimum, value))
    return value


def _check_flags(**flags):
    """Refuse an option meant as True or False that is neither."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError("%s must be True or False, not %r" % (name, value))


def _check_int(name, value, minimum=0):
    """Refuse a *value* that is not an int >= *minimum*."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %r" % (name, value))
    if value < minimum:
        raise ValueError("%s must be >= %d, not %r" % (name, minimum, value))
    return value
