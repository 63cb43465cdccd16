"""Named faults: break the network on purpose, and mend it on demand.

Each fault method acts at once, on the running server, and returns a
:class:`Fault` handle: ``handle.undo()`` (or leaving ``with``) mends that
fault, :meth:`_FaultsMixin.clear_faults` mends them all.  The vocabulary:

========================  =====================================================
``refuse()``              close the listener: new connections are refused
                          (ECONNREFUSED) on the same port or path
``drop(reset=False)``     end every open connection now: a FIN, or a reset
``delay(accept, reply)``  wait before accepting, or before each reply
``drip(chunk, interval)`` send every reply *chunk* bytes at a time
``garbage(data)``         answer new connections with *data*, then close
``hang_up()``             close new connections with no reply at all
``drop_datagrams(n)``     discard the next *n* datagrams (counted)
``restart()``             stop and start again on the same port
========================  =====================================================
"""

import selectors
import socket
import struct
import threading

__all__ = ["Fault"]

_LOOP_TIMEOUT = 30.0    # how long a fault waits for the service loop to run it

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
    """The faults in force, read by the service and connection threads."""

    def __init__(self):
        self.refusing = False
        self.accept_delay = 0.0
        self.reply_delay = 0.0
        self.drip = None            # (chunk, interval)
        self.garbage = None         # bytes sent to each new connection
        self.hang_up = False
        self.drop_datagrams = 0


class _FaultsMixin:
    """The fault methods of every server (see the module docstring)."""

    def _init_faults(self):
        self._faults = _FaultState()
        self._halt = threading.Event()      # set by stop(): cuts fault waits short
        self.dropped_datagrams = []

    def _setting(self, name, attr, value):
        old = getattr(self._faults, attr)
        setattr(self._faults, attr, value)

        def undo():
            setattr(self._faults, attr, type(old)() if old is not None else None)
        return Fault(self, name, undo)

    def refuse(self):
        """Close the listener, so new connections are refused; undo re-binds.

        Open connections carry on.  For a Unix socket the file stays, so
        clients get ECONNREFUSED rather than ENOENT.
        """
        self._faults.refusing = True
        self._in_loop(self._stop_listening)
        return Fault(self, "refuse", self._accept_again)

    def _accept_again(self):
        self._faults.refusing = False
        self._in_loop(self._start_listening)

    def drop(self, reset=False):
        """End every open connection now, cleanly or with *reset* (RST).

        A handler blocked in a read sees the end of the stream; its later
        writes fail.  Returns a :class:`Fault` with nothing to undo.
        """
        with self._cond:
            live = list(self._live.values())
        for sock, _ in live:
            record = getattr(sock, "_record", None)
            if record is not None:
                record.fault = "reset" if reset else "drop"
                record.closed_by = "server"
            try:
                if reset:
                    # close() sends the RST (linger 0); until the handler thread
                    # gets there, reads see EOF and writes fail.  Mark it first:
                    # the woken thread must not send a FIN on its way out.
                    sock._dropped = True
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    _LINGER_ZERO)
                    socket.socket.shutdown(sock, socket.SHUT_RD)
                else:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        return Fault(self, "reset" if reset else "drop")

    def delay(self, accept=0.0, reply=0.0):
        """Wait *accept* seconds before each accept, *reply* before each reply.

        A reply is what the server sends after it has received something (and
        a greeting, for protocols that start with one).
        """
        if accept < 0 or reply < 0:
            raise ValueError("delays must be >= 0, not %r, %r" % (accept, reply))
        self._faults.accept_delay = float(accept)
        self._faults.reply_delay = float(reply)

        def undo():
            self._faults.accept_delay = self._faults.reply_delay = 0.0
        return Fault(self, "delay", undo)

    def drip(self, chunk=1, interval=0.01):
        """Send every reply *chunk* bytes at a time, *interval* s apart."""
        if chunk < 1 or interval < 0:
            raise ValueError("drip needs chunk >= 1 and interval >= 0")
        return self._setting("drip", "drip", (int(chunk), float(interval)))

    def garbage(self, data=GARBAGE):
        """Answer each new connection with *data*, then close it.

        Servers whose clients speak first (HTTP) read the request first.
        """
        return self._setting("garbage", "garbage", bytes(data))

    def hang_up(self):
        """Close each new connection with no reply (after the request, for
        servers whose clients speak first)."""
        return self._setting("hang_up", "hang_up", True)

    def drop_datagrams(self, count):
        """Discard the next *count* datagrams; they go to ``dropped_datagrams``."""
        if count < 0:
            raise ValueError("count must be >= 0, not %r" % (count,))
        self._faults.drop_datagrams = int(count)

        def undo():
            self._faults.drop_datagrams = 0
        return Fault(self, "drop_datagrams", undo)

    def clear_faults(self):
        """Mend every fault: listen again, no delays, no garbage."""
        refusing = self._faults.refusing
        self._faults = _FaultState()
        if refusing:
            self._in_loop(self._start_listening)

    # -- helpers for the servers -------------------------------------------------

    def _in_loop(self, func):
        """Run ``func(selector)`` on the service thread and wait for it.

        When the server is not serving, run ``func(None)`` here instead.
        Exceptions propagate to the caller.
        """
        # stop() holds the lock while it joins handler threads: a handler
        # asking for a fault then must not wait for it, or stop() waits out
        # its deadline.  The fault's flag is set already; start() honours it.
        while not self._lifecycle.acquire(timeout=0.05):
            if self._stopping:
                return None
        try:
            return self._in_loop_locked(func)
        finally:
            self._lifecycle.release()

    def _in_loop_locked(self, func):
        thread = self._thread
        if thread is None:
            return func(None)
        if thread is threading.current_thread():     # from a datagram handler
            self._call_soon(func)
            return None
        done = threading.Event()
        outcome = []

        def task(sel):
            try:
                outcome.append((True, func(sel)))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.set()
        self._call_soon(task)
        if not done.wait(_LOOP_TIMEOUT):
            raise TimeoutError("%r: the service loop did not answer" % self)
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _stop_listening(self, sel):
        if self.socket is not None:
            if sel is not None:
                sel.unregister(self.socket)
            self._close_listener(unlink=False)

    def _start_listening(self, sel):
        # Not serving (sel is None): start() binds when it is called.
        if sel is not None and self.socket is None:
            self._bind(reuse=True)
            sel.register(self.socket, selectors.EVENT_READ)


    def _fault_wait(self, seconds):
        """Wait *seconds*, or less if the server stops meanwhile."""
        if seconds > 0:
            self._halt.wait(seconds)


_LINGER_ZERO = struct.pack("ii", 1, 0)     # struct linger: on, 0 s: close() resets
