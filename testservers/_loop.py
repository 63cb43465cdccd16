"""The threads of a server, as parts it holds: the service loop and the
connections.

:class:`_ServiceLoop` is the one service thread: it blocks in a selector on
the listening socket and on a wake-up socketpair, and runs the tasks other
threads queue for it (a fault that must touch the listener) in order.
:class:`_Connections` tracks the open stream connections and runs each on a
thread of its own, taken from a small pool of idle threads that
:meth:`_Connections.end_all` ends: a new thread per connection costs a
clone, a stack mapping and a hand-shake with the new thread, about a
quarter of what a short HTTP exchange costs.

Both take their lock from the server (its records' condition), so the one
lock order of ``_base`` holds.
"""

import errno
import heapq
import itertools
import logging
import os
import selectors
import socket
import sys
import threading
import _thread
import time

__all__ = []

_log = logging.getLogger("testservers")

#: How long an idle connection thread waits for the next connection.
IDLE_THREAD_TIMEOUT = 2.0

#: How many idle connection threads a server keeps at most.
MAX_IDLE_THREADS = 8


class _Outcome(threading.Event):
    """An event that carries the value or exception of what it waited for."""

    def __init__(self, func=None):
        super().__init__()
        self._func = func
        self.value = self.error = None

    def done(self, error=None):
        self.error = error
        self.set()

    def run(self, arg):
        try:
            self.value = self._func(arg)
        except BaseException as exc:
            self.error = exc
        finally:
            self.set()


class _ServiceLoop:
    """The service thread of *server*, and the tasks queued for it.

    The loop calls ``server._on_readable(sock)`` when the listener is
    readable, and stops once ``server._stopping`` is set and it has been
    woken.  ``thread`` is None while no loop runs.
    """

    def __init__(self, server):
        self._server = server
        self._cond = server._cond       # guards _wake and _timers
        self._lock = self._cond.lock
        self.thread = None
        self._wake = None               # (reader, writer) while a loop runs
        self._timers = []               # heap of (due, seq, callable)
        self._seq = itertools.count()

    def start(self, name):
        """Start a loop thread; return ``(thread, begun)``, *begun* set once
        it serves (with ``begun.error`` if it failed first)."""
        wake = socket.socketpair()
        for s in wake:
            s.setblocking(False)
        with self._lock:
            self._wake = wake
        begun = _Outcome()
        thread = threading.Thread(target=self._run, args=(wake, begun), daemon=True,
                                  name=name)
        self.thread = thread
        thread.start()
        return thread, begun

    def detach(self):
        """Forget the thread (stop() joins what this returns)."""
        thread, self.thread = self.thread, None
        return thread

    def _run(self, wake, begun):
        server = self._server
        sel = selectors.DefaultSelector()
        try:
            sel.register(wake[0], selectors.EVENT_READ)
            if server.socket is not None:
                sel.register(server.socket, selectors.EVENT_READ)
            server.ready.set()
            begun.done()
            # A restart from a handler on this thread starts a new loop with a
            # new wake-up pair: this one ends as soon as the handler returns.
            while not server._stopping and self._wake is wake:
                for key, _ in sel.select(self._next_timeout()):
                    if key.fileobj is wake[0]:
                        _drain(wake[0])
                    elif not server._stopping:
                        server._on_readable(key.fileobj)
                self._run_tasks(sel)
        except BaseException as exc:
            if begun.is_set():
                server._record_error(exc)
            else:
                begun.done(exc)     # start() raises it
        finally:
            sel.close()
            with self._lock:
                leftover = []
                if self._wake is wake:
                    # No loop follows this one: what was asked of it runs
                    # here, without a selector, so nobody waits in vain.
                    self._wake = None
                    leftover, self._timers = self._timers, []
                self._cond.notify_all()     # async_stop() awaits this
            for s in wake:
                s.close()
            for _, _, func in sorted(leftover, key=lambda t: t[:2]):
                try:
                    func(None)
                except Exception as exc:
                    server._record_error(exc)

    def wakeup(self):
        with self._lock:
            wake = self._wake
            if wake is not None:
                try:
                    wake[1].send(b"\0")
                except OSError:
                    pass    # full (a wake-up is pending anyway) or closed

    def call_soon(self, func, delay=0.0):
        """Run ``func(selector)`` on the service thread after *delay* s.

        Return False, having done nothing, if no loop is running to do it.
        """
        with self._lock:
            if self._wake is None:
                return False
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), func))
        self.wakeup()
        return True

    def ask(self, func, lock, timeout):
        """Run ``func(selector)`` on the service thread and return its value.

        The loop thread is read under *lock* (the server's lifecycle lock),
        which is not held while waiting.  With no loop, ``func(None)`` runs
        here; from the loop thread itself it is queued and None returned.
        """
        task = _Outcome(func)
        with lock:
            thread = self.thread
            if thread is None or not self.call_soon(task.run):
                return func(None)
        if thread is threading.current_thread():
            return None
        if not task.wait(timeout):
            raise TimeoutError("%r: the service loop did not answer within %g s: %s"
                               % (self._server, timeout, _where(thread)))
        if task.error is not None:
            raise task.error
        return task.value

    # Both look at the heap without the lock first: a task queued after that
    # look wakes the loop (call_soon), which then looks again.

    def _next_timeout(self):
        if not self._timers:
            return None             # idle: block, use no CPU
        with self._lock:
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - time.monotonic())

    def _run_tasks(self, sel):
        if not self._timers:
            return
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                func = heapq.heappop(self._timers)[2]
            func(sel)


class _Connections:
    """The open stream connections of *server* and the threads serving them.

    ``live`` maps a connection id to ``(socket, thread)``; a STARTTLS swaps
    the socket in place (:meth:`swap`), so that :meth:`shutdown_all` always
    reaches the socket in use.  Threads come from a pool: after its
    connection a thread waits up to :data:`IDLE_THREAD_TIMEOUT` seconds
    for the next one (at most :data:`MAX_IDLE_THREADS` wait), named after
    the connection it serves, so a stuck one is named by ``stop()``.
    """

    def __init__(self, server):
        self._server = server
        self._cond = server._cond
        self._lock = self._cond.lock
        self.live = {}
        self._ids = itertools.count(1)
        self._idle = []             # _Worker objects waiting for work
        self._workers = set()       # every pool thread alive
        self._closed = False
        self._prefix = ""

    def open(self):
        with self._lock:
            self._closed = False
            # The threads' names start with the server's, which a restart
            # keeps (it binds the same address): made once per start().
            self._prefix = self._server._thread_name()

    def spawn(self, sock, peer, target, prepare=None):
        """Track *sock* and run ``target(sock, peer, conn_id)`` on a thread.

        ``prepare(sock, peer, conn_id)`` runs first, in the caller's thread
        (the service thread, which accepts in order), so what it records
        is in accept order whichever connection thread runs first.
        """
        conn_id = next(self._ids)
        if prepare is not None:
            prepare(sock, peer, conn_id)
        prefix = self._prefix
        job = (target, sock, peer, conn_id,
               "%s conn %d from %s" % (prefix, conn_id, peer or "unnamed"), prefix)
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self)
                self._workers.add(worker.thread)
            self.live[conn_id] = (sock, worker.thread)
        worker.give(job)

    def swap(self, conn_id, sock):
        """Make *sock* the socket in use by connection *conn_id*."""
        with self._lock:
            if conn_id in self.live:
                self.live[conn_id] = (sock, self.live[conn_id][1])

    def current(self, conn_id, default):
        with self._lock:
            return self.live.get(conn_id, (default,))[0]

    def sockets(self):
        with self._lock:
            return [sock for sock, _ in self.live.values()]

    def end_all(self):
        """Shut every connection down and end the pool (stop()).

        A handler blocked in a read sees the end of the stream; idle
        threads exit now, busy ones after their job.  Return every pool
        thread still alive, for the caller to join against its deadline.
        """
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = list(self._workers)
            sockets = [sock for sock, _ in self.live.values()]
        for worker in idle:
            worker.give(None)
        for sock in sockets:
            # The server ends these connections, whatever the handler's
            # read makes of the shutdown that follows.
            record = getattr(sock, "_record", None)
            if record is not None and record.closed_by is None:
                record.closed_by = "server"
            self._server._shutdown_socket(sock)
        return threads

    def _run(self, target, sock, peer, conn_id):
        """Serve one connection; record what the handler raised."""
        server = self._server
        try:
            target(sock, peer, conn_id)
        except BaseException as exc:
            # The one policy of every server: only the connection's own I/O
            # can say the peer went away (its errors are tagged), and that
            # ends the connection quietly.  Anything else is a handler
            # error, SystemExit and a handler's own timeout included.
            if getattr(exc, "_testservers_io", False) and (
                    _is_disconnect(exc) or server._stopping):
                _log.debug("%r: connection %d ended: %r", server, conn_id, exc)
            else:
                server._record_error(exc)
        finally:
            try:
                sock.close()
            except OSError:
                pass
            self._finished(conn_id)

    def _finished(self, conn_id):
        with self._lock:
            self.live.pop(conn_id, None)
            self._cond.notify_all()

    def _park(self, worker):
        """Offer *worker* for the next job; False if it should exit."""
        with self._lock:
            if self._closed or len(self._idle) >= MAX_IDLE_THREADS:
                self._workers.discard(worker.thread)
                return False
            self._idle.append(worker)
            return True

    def _unpark(self, worker):
        """The wait of *worker* ran out: True if it may exit (no job came)."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                self._workers.discard(worker.thread)
                return True
            return False        # a job was given meanwhile: take it


class _Worker:
    """One pool thread: runs the jobs given to it, one at a time."""

    def __init__(self, pool):
        self._pool = pool
        self._job = None
        # Held while no job is given: give() releases it, the thread takes
        # it.  A plain lock, not a Semaphore: the hand-off is one wake-up,
        # with no Condition (and its own lock) for the thread to go through.
        self._ready = _thread.allocate_lock()
        self._ready.acquire()
        self.thread = threading.Thread(target=self._run, daemon=True, name="idle")
        self._started = False

    def give(self, job):
        self._job = job
        if not self._started:
            self._started = True
            self.thread.name = job[4] if job is not None else "idle"
            self.thread.start()
        self._ready.release()

    def _run(self):
        pool = self._pool
        while True:
            self._ready.acquire()
            job, self._job = self._job, None
            if job is None:             # close(): the server stops
                with pool._lock:
                    pool._workers.discard(self.thread)
                return
            target, sock, peer, conn_id, name, prefix = job
            self.thread.name = name
            pool._run(target, sock, peer, conn_id)
            self.thread.name = prefix + " idle"
            if not pool._park(self):
                return
            if not self._ready.acquire(timeout=IDLE_THREAD_TIMEOUT):
                if pool._unpark(self):
                    return
                self._ready.acquire()       # the job given meanwhile
            self._ready.release()           # ... is taken at the loop's top


_DISCONNECT_ERRNOS = {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED,
                      errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT}


def _is_disconnect(exc):
    """Tell whether *exc* only means that the peer went away or went quiet."""
    if isinstance(exc, (ConnectionError, socket.timeout)):
        return True
    name = type(exc).__name__
    if name in ("SSLEOFError", "SSLZeroReturnError"):
        return True
    return isinstance(exc, OSError) and exc.errno in _DISCONNECT_ERRNOS


def _drain(sock):
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


_STDLIB_DIR = os.path.dirname(os.__file__)
_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def _where(thread):
    """Name *thread* and where it is: its innermost frame, and the innermost
    frame outside the standard library and this package when they differ."""
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return repr(thread.name)
    places = [frame]
    f = frame
    while f is not None and f.f_code.co_filename.startswith((_STDLIB_DIR, _OWN_DIR)):
        f = f.f_back
    if f is not None and f is not frame:
        places.append(f)
    return "%r in %s" % (thread.name, ", called from ".join(
        "%s() at %s:%d" % (p.f_code.co_name, p.f_code.co_filename, p.f_lineno)
        for p in places))
