"""The lifecycle every server shares: bind, port, ready, start and stop.

The contract, once for every class:

1. The constructor checks its arguments and binds, so ``port`` is known
   and a bind error is raised in the caller's thread.  The address family
   comes from the address.
2. :meth:`~_BaseServer.start` runs the service loop on a named thread and
   returns once ``ready`` is set; starting twice raises RuntimeError, and a
   loop that dies before it is ready raises what killed it.
3. :meth:`~_BaseServer.stop` is idempotent, safe before start, and returns
   at once: a socketpair registered in the loop's selector wakes it.  It
   closes the listener, shuts down accepted connections so blocked reads
   return, joins every thread against one deadline, removes the Unix
   socket path, clears ``ready``, and then raises what went wrong.

Threads and locks.  One service thread per server blocks in its selector;
each stream connection has a thread of its own, from a small pool of idle
threads (``_loop``); the test's thread calls
start(), stop(), the faults and the waits.  The locks, in the only order
in which one may be taken while another is held:

1. ``_lifecycle`` (an RLock): start/stop state changes.  Held only for
   the bookkeeping, never across a join, a wait on another thread, or
   user code.  A ``stop()`` in progress is marked by ``_stop_owner``; a
   nested or concurrent ``stop()`` returns at once and leaves the work to
   it, and ``start()`` meanwhile raises RuntimeError.
2. ``_cond`` (the condition of the record store; an RLock): records, errors,
   the live connections, the timer heap.  Never held while user code runs
   (handlers, hooks, ``wait_for`` predicates).
3. ``_faults._lock``: a leaf; nothing is acquired under it.

No lock is ever held across ``Thread.join()``.
"""

import inspect
import logging
import os
import selectors
import socket
import socketserver
import threading
import time

from ._address import (addr_text, client_host, open_listener, parse_address, path_identity,
                       refuse_host_string, unlink_own_path)
from ._aio import _awaitable, _in_thread
from ._faults import Fault, _FaultState, _check_number
from ._loop import _Connections, _ServiceLoop, _where
from ._records import MAX_RECORDS, _RecordStore

__all__ = []

_log = logging.getLogger("testservers")

#: How long :meth:`_BaseServer.stop` waits for threads by default.
STOP_TIMEOUT = 30.0

#: How long a fault waits for the service loop to carry it out.
LOOP_TIMEOUT = 30.0


class _BaseServer:
    """The lifecycle shared by every server class.

    Subclasses set ``socket_type`` and implement ``_on_readable(sock)``,
    called on the service thread when the listening socket is readable.
    They may override ``_configure_socket(sock)`` (options before the
    bind), ``_check_handler(handler)``, and set ``handler_params`` (the
    names a handler is called with) and ``handler_class_base`` (the
    request handler classes accepted in place of a callable, or None).
    """

    __test__ = False              # not a pytest test class, despite its name
    address_family = socket.AF_INET   # for host names; literals decide alone
    socket_type = socket.SOCK_STREAM
    unix_only = False             # True for the Unix-socket classes
    handler_params = ("request",)     # what a handler is called with
    handler_class_base = socketserver.BaseRequestHandler

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5):
        refuse_host_string(type(self), listen_addr)
        self._check_handler(handler)
        # Accepted for the test_logging signature; the loop never polls, so
        # the value changes nothing (stop() wakes the loop at once).
        _check_number("poll_interval", poll_interval)
        self._store = _RecordStore(self)
        self._init_faults()
        self._handler = handler
        self.poll_interval = poll_interval
        self.ready = threading.Event()
        self._lifecycle = threading.RLock()
        self._stop_owner = None     # the thread whose stop() is in progress
        self._stuck = []            # threads that outlived a stop() deadline
        self._stopping = False
        # The parts (see _loop): the service thread, the connection threads.
        self._loop = _ServiceLoop(self)
        self._conns = _Connections(self)
        self._tmpdir = None
        self._unix_inode = None
        self.socket = None
        if vars(self).pop("_restoring", False):
            return          # _restore_state() takes the address over and binds
        self.family, self._bind_addr, self._tmpdir = parse_address(type(self), listen_addr)
        try:
            self._bind(reuse=False)
        except BaseException:
            self._remove_tmpdir()
            raise

    def _init_faults(self):
        self._faults = _FaultState()
        self._halt = threading.Event()      # set by stop(): cuts fault waits short

    def _check_handler(self, handler):
        """Refuse a *handler* that cannot be called as the class calls it."""
        if handler is None:
            return
        base = self.handler_class_base
        if base is not None and isinstance(handler, type) and issubclass(handler, base):
            return
        names = ", ".join(self.handler_params)
        if not callable(handler):
            raise TypeError("%s handler must be None or a callable handler(%s)%s, not %r"
                            % (type(self).__name__, names, " or a %s subclass"
                               % base.__name__ if base is not None else "", handler))
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError):
            return      # a builtin or an extension type: cannot tell, so trust it
        try:
            signature.bind(*self.handler_params)
        except TypeError:
            raise TypeError("%s calls its handler as handler(%s); %r takes %s"
                            % (type(self).__name__, names, handler, signature)) from None

    # -- addresses and binding (see _address) ------------------------------

    def _bind(self, reuse):
        def configure(sock):
            self._configure_socket(sock)
            self._unlink_own_path()     # a stale socket file of ours
        sock = open_listener(self.family, self.socket_type, self._bind_addr, reuse,
                             configure, self.request_queue_size)
        self.socket = sock
        self.server_address = sock.getsockname()
        if self.family == getattr(socket, "AF_UNIX", None):
            self.port = None
            path = self._bind_addr
            self._unix_inode = path_identity(path)
            if isinstance(path, str) and not self.server_address:
                self.server_address = path
        else:
            self.port = self.server_address[1]
            # A restart binds the port it had, whatever was asked first.
            self._bind_addr = (self._bind_addr[0], self.port) + self._bind_addr[2:]

    # socketserver's 5 (and even 128) overflows under a burst of connects:
    # ask for the most, which the kernel caps (net.core.somaxconn).
    request_queue_size = max(socket.SOMAXCONN, 4096)

    def _configure_socket(self, sock):
        """Set options on a new listening socket before it binds."""

    def _close_listener(self, unlink=True):
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if unlink:
            self._unlink_own_path()

    def _unlink_own_path(self):
        if self._unix_inode is not None:
            unlink_own_path(self._bind_addr, self._unix_inode)
            self._unix_inode = None

    @property
    def server_port(self):
        """The port, under the name :class:`http.server.HTTPServer` uses."""
        return self.port

    def _addr_text(self):
        return addr_text(self.family, self._bind_addr, self.port)

    def _client_host(self):
        """The host a client on this machine connects to (loopback for a
        server bound to every interface)."""
        return client_host(self.server_address)

    def __repr__(self):
        state = "serving" if self._thread is not None else (
            "bound" if self.socket is not None else "stopped")
        return "<%s %s %s>" % (type(self).__name__, self._addr_text(), state)

    # -- start and stop ---------------------------------------------------

    def start(self):
        """Start serving on a background thread; return once ready.

        Raises :exc:`RuntimeError` if the server is already started, or
        while another thread's :meth:`stop` is in progress.  After
        :meth:`stop`, it binds the same port (or path) again and serves.
        If the service loop fails before it is ready, the server is
        stopped again and the exception that ended the loop is raised.
        """
        with self._lifecycle:
            if self._loop.thread is not None:
                raise RuntimeError("%r is already started; stop() it first" % self)
            if self._stop_owner is not None:
                raise RuntimeError("%r: stop() is in progress in %r"
                                   % (self, self._stop_owner.name))
            if self._tmpdir is not None:
                os.makedirs(self._tmpdir, mode=0o700, exist_ok=True)
            if self.socket is None and not self._faults.refusing:
                self._bind(reuse=True)
            self._stopping = False
            self._halt.clear()
            self._conns.open()
            thread, begun = self._loop.start(self._thread_name())
        if not begun.wait(STOP_TIMEOUT):
            where = _where(thread)
            self.stop(0)
            raise TimeoutError("%r: the service loop did not start within %g s: %s"
                               % (self, STOP_TIMEOUT, where))
        if begun.error is not None:
            self.stop()     # the loop is over: this joins it and cleans up
            raise begun.error
        return self

    def _thread_name(self):
        return "%s(%s)" % (type(self).__name__, self._addr_text())

    @property
    def _thread(self):
        """The service thread, or None when not serving."""
        return self._loop.thread

    def _wakeup(self):
        self._loop.wakeup()

    def _call_soon(self, func, delay=0.0):
        """Run ``func(selector)`` on the service thread after *delay* s.

        Return False, having done nothing, if no loop is running to do it.
        """
        return self._loop.call_soon(func, delay)

    def _in_loop(self, func):
        """Run ``func(selector)`` on the service thread and wait for it.

        When the server is not serving, run ``func(None)`` here instead;
        from the service thread itself (a datagram handler), queue it and
        return at once.  Exceptions propagate to the caller.  No lock is
        held while waiting: stop() may run meanwhile, and the loop then
        runs what was queued on its way out.
        """
        return self._loop.ask(func, self._lifecycle, LOOP_TIMEOUT)

    def _on_readable(self, sock):
        raise NotImplementedError

    def _handler_class(self, delegating):
        """The request handler class to instantiate: the handler itself when
        it is a socketserver.BaseRequestHandler subclass, else *delegating*,
        which calls it."""
        handler = self._handler
        if isinstance(handler, type) and issubclass(handler, socketserver.BaseRequestHandler):
            return handler
        return delegating

    def stop(self, timeout=None):
        """Stop serving, release everything, and report what went wrong.

        Safe to call before :meth:`start` and more than once.  It returns
        as soon as the threads end; *timeout* (default :data:`STOP_TIMEOUT`)
        bounds the wait, after which :exc:`TimeoutError` names each thread
        still alive and where it is.  Then the first handler exception not
        raised before is raised, with a note saying how many followed.

        A ``stop()`` called while another is in progress (a handler
        stopping its own server during the test's ``stop()``) returns at
        once and leaves the work to the first.
        """
        if timeout is None:
            timeout = STOP_TIMEOUT
        _check_number("timeout", timeout)
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        self._stopping = True   # before the lock: a fault waiting for it gives up
        self._halt.set()        # cut fault delays short
        with self._lifecycle:
            if self._stop_owner is not None:
                return          # nested or concurrent: the first stop() finishes
            self._stop_owner = me
            self._stopping = True
            thread = self._loop.detach()
        try:
            alive = self._stop_unlocked(thread, me, deadline)
        finally:
            with self._lifecycle:
                self._stop_owner = None
        if alive:
            raise TimeoutError("%r: stop() gave up after %.3g s; still alive: %s"
                               % (self, timeout, "; ".join(_where(t) for t in alive)))
        self.raise_errors()

    def _stop_unlocked(self, thread, me, deadline):
        """The work of stop(), with no lock held across its joins."""
        if thread is not None:
            self._wakeup()
            if thread is not me:
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._stuck.append(thread)
        with self._lifecycle:
            self._close_listener()
        threads = self._conns.end_all()
        self._stuck.extend(t for t in threads if t not in self._stuck)
        for t in self._stuck:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))
        # The calling thread (a handler stopping its own server) stays
        # listed, so the next stop() joins it; it cannot wait for itself.
        self._stuck = [t for t in self._stuck if t.is_alive()]
        alive = [t for t in self._stuck if t is not me]
        if not alive:
            self._remove_tmpdir()
        self.ready.clear()
        with self._cond:
            self._cond.notify_all()
        return alive

    def _remove_tmpdir(self):
        if self._tmpdir is not None:
            try:
                os.rmdir(self._tmpdir)
            except OSError:
                pass

    def start_for(self, testcase):
        """Start serving for a :class:`unittest.TestCase`; return the server.

        The stop is registered with ``testcase.addCleanup`` before the start,
        so a failing ``setUp`` still cleans up, and a handler error fails the
        test it happened in.  ``self.server = TestTCPServer(...).start_for(self)``
        is the whole ``setUp`` line (``enterContext`` needs Python 3.11).
        """
        testcase.addCleanup(self.stop)
        return self.start()

    @classmethod
    def in_process(cls, *args, **kwargs):
        """Build this server in a child process; return a proxy to it.

        The arguments are the constructor's.  The proxy has the same
        ``port``, ``ready``, :meth:`start`, :meth:`stop`, records and
        methods; see :class:`testservers.ProcessServer`.
        """
        # Through the package's public name, looked up at call time: this
        # module imports no part of process mode, which is built on it.
        from . import ProcessServer
        return ProcessServer(cls, *args, **kwargs)

    def restart(self, timeout=None):
        """Stop, then start again on the same port (or path).

        While another thread's :meth:`stop` is in progress (the test
        stopping the server as its handler restarts it), the stop wins:
        the server stays stopped and this returns at once.
        """
        self.stop(timeout)
        with self._lifecycle:
            if self._stop_owner is not None:
                return self
        return self.start()

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # -- the same from a coroutine ---------------------------------------------

    async def async_start(self):
        """Start serving, from a coroutine; return the server.

        :meth:`start` blocks only until the service thread has begun (well
        under a millisecond), so this calls it directly.
        """
        return self.start()

    async def async_stop(self, timeout=None):
        """Stop as :meth:`stop` does, without blocking the event loop.

        The joins run on a short-lived thread of their own, which this
        joins once it has finished; errors are raised here as by
        :meth:`stop`.
        """
        await _in_thread(self.stop, timeout)

    async def __aenter__(self):
        if self._thread is None:
            self.start()
        return self

    async def __aexit__(self, *exc_info):
        await self.async_stop()

    # -- records and errors: the record store's (see _records) ---------------

    max_records = MAX_RECORDS

    @property
    def _cond(self):
        """The lock and condition of the records (2nd in the lock order)."""
        return self._store.cond

    def wait_for(self, predicate, timeout=None, what="the condition"):
        """Block until ``predicate()`` returns a true value, and return it.

        The predicate runs in the calling thread, with no lock held, first
        at once and then each time a record or an error arrives (and at
        least every 50 ms, for predicates that look at other state).  A
        handler error recorded meanwhile is raised at once.  After
        *timeout* seconds (default :data:`WAIT_TIMEOUT`)
        :exc:`TimeoutError` is raised, naming *what* was awaited and what
        arrived instead.
        """
        return self._store.wait_for(predicate, timeout, what)

    async_wait_for = _awaitable(wait_for)

    @property
    def errors(self):
        """A list of the exceptions raised in handlers, oldest first."""
        return self._store.errors()

    def take_errors(self):
        """Return the recorded handler errors and forget them.

        A test that provokes errors on purpose takes them, checks them, and
        then :meth:`stop` does not raise them.
        """
        return self._store.take_errors()

    def raise_errors(self):
        """Raise the oldest handler error not raised before, if any.

        A note on the exception names the server and counts the errors
        that followed it; all of them stay in :attr:`errors`.  :meth:`stop`
        and the ``wait_...`` helpers call this; a test may call it at any
        point to fail fast.
        """
        self._store.raise_errors()

    def clear_records(self):
        """Forget every record (not the errors)."""
        self._store.clear()

    # What the server classes record and wait with.
    def _append_record(self, kind, record):
        return self._store.append(kind, record)

    def _record_error(self, exc):
        self._store.record_error(exc)

    def _snapshot(self, kind):
        return self._store.snapshot(kind)

    def _notify(self):
        self._store.notify()

    def _wait_count(self, kind, count, timeout, accept=None):
        return self._store.wait_count(kind, count, timeout, accept)

    def _summary(self):
        """Say briefly what arrived, for a failed wait (a class may add to it)."""
        return self._store.summary()

    # -- faults every server has (see _faults) ----------------------------

    def refuse(self):
        """Close the listener, so new connections are refused; undo re-binds.

        Open connections carry on.  For a Unix socket the file stays, so
        clients get ECONNREFUSED rather than ENOENT; a datagram server's
        senders get ICMP port unreachable.  Returns a :class:`Fault`.
        """
        faults = self._faults
        token = faults.push({"refusing": True})
        self._in_loop(self._stop_listening)

        def undo():
            faults.pop(token)
            if self._faults is faults:
                self._in_loop(self._start_listening)
        return Fault(self, "refuse", undo)

    def clear_faults(self):
        """Mend every fault: listen again, no delays, no garbage, no drops."""
        refusing = self._faults.refusing
        self._faults = _FaultState()
        if refusing:
            self._in_loop(self._start_listening)

    def _stop_listening(self, sel):
        if self.socket is not None:
            if sel is not None:
                sel.unregister(self.socket)
            self._close_listener(unlink=False)

    def _start_listening(self, sel):
        # Not serving (sel is None): start() binds when it is called.
        if sel is not None and self.socket is None and not self._faults.refusing:
            self._bind(reuse=True)
            sel.register(self.socket, selectors.EVENT_READ)

    def _fault_wait(self, seconds):
        """Wait *seconds*, or less if the server stops meanwhile."""
        if seconds > 0:
            self._halt.wait(seconds)

    @staticmethod
    def _shutdown_socket(sock):
        try:
            # socket.socket's own shutdown, also for an SSLSocket: it only
            # wakes blocked reads and writes, and leaves the TLS state alone.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    # -- connection threads -----------------------------------------------

    def _spawn_connection(self, sock, peer, target, prepare=None):
        """Track *sock* and run ``target(sock, peer, conn_id)`` on a thread,
        after ``prepare(sock, peer, conn_id)`` in this one."""
        self._conns.spawn(sock, peer, target, prepare)

    # -- process mode: the state a restarted child takes over --

    def _export_state(self):
        """Return the state a server built anew for this one takes over.

        The result maps attribute names to values: the records, errors,
        expectations, scripts and settings, and the address bound (with
        the private directory of a Unix socket).  What belongs to this
        server alone is left out: its sockets, threads, locks, events,
        faults and the parts that hold them.  The values are not copied;
        the caller pickles what it can (see :mod:`._processwire`).
        """
        own = ("socket", "_unix_inode", "_thread", "_wake", "_timers", "_live", "_stuck",
               "_stop_owner", "_stopping", "_loop", "_conns")
        resources = (socket.socket, threading.Thread, threading.Condition, threading.Event,
                     threading.Semaphore, type(threading.Lock()), type(threading.RLock()),
                     _FaultState)
        state = {name: value for name, value in vars(self).items()
                 if name not in own and not isinstance(value, resources)}
        state["_conns._ids"] = self._conns._ids     # connection ids go on counting
        return state

    @classmethod
    def _restore_state(cls, args, kwargs, state, bind=True):
        """Build a server that takes *state* over; return it.

        *args* and *kwargs* are the constructor's; *state* is what
        :meth:`_export_state` returned, or a callable that returns it given
        the new server (so that values referring to their server, as
        expectations do, can refer to this one).  The address is the
        state's.  With *bind* true the server binds it again, with
        SO_REUSEADDR: the connections the old server closed sit in
        TIME_WAIT on its port, and a plain bind fails until they expire.
        The private directory of a Unix socket is made again.  With *bind*
        false it is a copy that never binds, to read the records from.
        """
        self = cls.__new__(cls)
        self._restoring = True      # __init__ leaves the address to us
        self.__init__(*args, **kwargs)
        state = dict(state(self) if callable(state) else state)
        self._conns._ids = state.pop("_conns._ids", self._conns._ids)
        if "_store" in state:
            # The parts (loop, connections) hold this server's condition:
            # the store taken over keeps it, so the lock order stays one.
            state["_store"].cond = self._store.cond
        vars(self).update(state)
        self._store._owner = self       # an unpickled store knows no owner
        if bind:
            if self._tmpdir is not None:
                os.makedirs(self._tmpdir, mode=0o700, exist_ok=True)
            try:
                self._bind(reuse=True)
            except BaseException:
                self._remove_tmpdir()
                raise
        return self
