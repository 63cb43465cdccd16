"""The lifecycle every server shares: bind, port, ready, start and stop.

The contract, once for every class:

1. The constructor binds, so ``port`` is known and a bind error is raised
   in the caller's thread.  The address family comes from the address.
2. :meth:`~_BaseServer.start` runs the service loop on a named thread and
   returns once ``ready`` is set; starting twice raises RuntimeError.
3. :meth:`~_BaseServer.stop` is idempotent, safe before start, and returns
   at once: a socketpair registered in the loop's selector wakes it.  It
   closes the listener, shuts down accepted connections so blocked reads
   return, joins every thread against one deadline, removes the Unix
   socket path, clears ``ready``, and then raises what went wrong.
"""

import errno
import heapq
import itertools
import logging
import os
import selectors
import socket
import socketserver
import stat
import sys
import tempfile
import threading
import time

from ._faults import _FaultsMixin
from ._records import _Recorder

__all__ = []

_log = logging.getLogger("testservers")

#: How long :meth:`_BaseServer.stop` waits for threads by default.
STOP_TIMEOUT = 30.0

#: The host a server binds when it is given only a port, or nothing.
DEFAULT_HOST = "127.0.0.1"

_PATH_TYPES = (str, bytes, os.PathLike)


def _is_ip_literal(host, family):
    try:
        socket.inet_pton(family, host.split("%", 1)[0])
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    return True


class _BaseServer(_FaultsMixin, _Recorder):
    """The lifecycle shared by every server class.

    Subclasses set ``socket_type`` and implement ``_on_readable(sock)``,
    called on the service thread when the listening socket is readable.
    """

    __test__ = False              # not a pytest test class, despite its name
    address_family = socket.AF_INET   # for host names; literals decide alone
    socket_type = socket.SOCK_STREAM
    unix_only = False             # True for the Unix-socket classes
    _reuse_on_first_bind = False  # process mode's restart sets it in its child

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5):
        self._init_records()
        self._init_faults()
        self._handler = handler
        # Accepted for the test_logging signature; the loop never polls, so
        # the value changes nothing (stop() wakes the loop at once).
        self.poll_interval = poll_interval
        self.ready = threading.Event()
        self._lifecycle = threading.RLock()
        self._thread = None
        self._stuck = []            # threads that outlived a stop() deadline
        self._stopping = False
        self._wake = None           # (reader, writer) socketpair while serving
        self._timers = []           # heap of (due, seq, callable)
        self._seq = itertools.count()
        self._conn_ids = itertools.count(1)
        self._live = {}             # id -> (socket, thread) of open connections
        self._tmpdir = None
        self._unix_inode = None
        self.socket = None
        self.family, self._bind_addr = self._parse_address(listen_addr)
        self._bind(reuse=self._reuse_on_first_bind)

    # -- addresses and binding -------------------------------------------

    def _parse_address(self, addr):
        if self.unix_only and addr is None:
            self._tmpdir = tempfile.mkdtemp(prefix="testservers-")
            return socket.AF_UNIX, os.path.join(self._tmpdir, "socket")
        if isinstance(addr, _PATH_TYPES):
            if not hasattr(socket, "AF_UNIX"):
                raise ValueError("Unix sockets are not available on this platform")
            return socket.AF_UNIX, os.fspath(addr)
        if self.unix_only:
            raise TypeError("%s needs a filesystem path (or None), not %r"
                            % (type(self).__name__, addr))
        if addr is None:
            addr = (DEFAULT_HOST, 0)
        elif isinstance(addr, int) and not isinstance(addr, bool):
            addr = (DEFAULT_HOST, addr)
        if not isinstance(addr, (tuple, list)) or len(addr) not in (2, 4):
            raise TypeError("listen_addr must be (host, port), a port, a path "
                            "or None, not %r" % (addr,))
        host = addr[0]
        if _is_ip_literal(host, socket.AF_INET6):
            family = socket.AF_INET6
        elif _is_ip_literal(host, socket.AF_INET):
            family = socket.AF_INET
        else:
            # A host name: the class attribute decides, as in socketserver
            # (test_logging sets it to AF_INET6 for its IPv6 tests).
            family = self.address_family
            if family not in (socket.AF_INET, socket.AF_INET6):
                family = socket.AF_INET
        return family, tuple(addr)

    def _bind(self, reuse):
        sock = socket.socket(self.family, self.socket_type)
        try:
            # Only a restart re-binds with SO_REUSEADDR, and only on POSIX,
            # where it cannot steal a live port: connections the server closed
            # first sit in TIME_WAIT on the port, and Linux refuses a plain
            # re-bind until they expire.  (Accepted sockets set it as well;
            # the kernel checks both sides.)
            if reuse and os.name == "posix" and self.family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._configure_socket(sock)
            self._unlink_own_path()
            sock.bind(self._bind_addr)
            if self.socket_type == socket.SOCK_STREAM:
                sock.listen(self.request_queue_size)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self.server_address = sock.getsockname()
        if self.family == socket.AF_UNIX:
            self.port = None
            path = self._bind_addr
            if path and path[:1] not in ("\0", b"\0"):
                st = os.stat(path)
                self._unix_inode = (st.st_dev, st.st_ino)
            if isinstance(path, str) and not self.server_address:
                self.server_address = path
        else:
            self.port = self.server_address[1]
            # A restart binds the port it had, whatever was asked first.
            self._bind_addr = (self._bind_addr[0], self.port) + self._bind_addr[2:]

    request_queue_size = 128   # socketserver's 5 overflows under a burst

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
            path = self._bind_addr
            try:
                st = os.stat(path)
                # Remove only our own socket, not a file someone put there since.
                if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self._unix_inode:
                    os.unlink(path)
            except OSError:
                pass
            self._unix_inode = None

    @property
    def server_port(self):
        """The port, under the name :class:`http.server.HTTPServer` uses."""
        return self.port

    def _addr_text(self):
        if self.family == socket.AF_UNIX:
            return repr(self._bind_addr)
        host = self._bind_addr[0]
        if ":" in host:
            host = "[%s]" % host
        return "%s:%s" % (host, self.port)

    def __repr__(self):
        state = "serving" if self._thread is not None else (
            "bound" if self.socket is not None else "stopped")
        return "<%s %s %s>" % (type(self).__name__, self._addr_text(), state)

    # -- start and stop ---------------------------------------------------

    def start(self):
        """Start serving on a background thread; return once ready.

        Raises :exc:`RuntimeError` if the server is already started.  After
        :meth:`stop`, it binds the same port (or path) again and serves.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError("%r is already started; stop() it first" % self)
            if self._tmpdir is not None:
                os.makedirs(self._tmpdir, mode=0o700, exist_ok=True)
            if self.socket is None and not self._faults.refusing:
                self._bind(reuse=True)
            self._stopping = False
            self._halt.clear()
            self._wake = wake = socket.socketpair()
            for s in wake:
                s.setblocking(False)
            thread = threading.Thread(
                target=self._serve, args=(wake,), daemon=True,
                name="%s(%s)" % (type(self).__name__, self._addr_text()))
            self._thread = thread
            thread.start()
        self.ready.wait(STOP_TIMEOUT)
        return self

    def _serve(self, wake):
        sel = selectors.DefaultSelector()
        try:
            sel.register(wake[0], selectors.EVENT_READ)
            if self.socket is not None:
                sel.register(self.socket, selectors.EVENT_READ)
            self.ready.set()
            # A restart from a handler on this thread starts a new loop with a
            # new wake-up pair: this one ends as soon as the handler returns.
            while not self._stopping and self._wake is wake:
                for key, _ in sel.select(self._next_timeout()):
                    if key.fileobj is wake[0]:
                        _drain(wake[0])
                    elif not self._stopping:
                        self._on_readable(key.fileobj)
                self._run_tasks(sel)
        except BaseException as exc:
            self._record_error(exc)
        finally:
            sel.close()
            with self._cond:
                if self._wake is wake:
                    self._wake = None
            for s in wake:
                s.close()

    def _wakeup(self):
        with self._cond:
            wake = self._wake
            if wake is not None:
                try:
                    wake[1].send(b"\0")
                except OSError:
                    pass    # full (a wake-up is pending anyway) or closed

    def _call_soon(self, func, delay=0.0):
        """Run ``func(selector)`` on the service thread after *delay* s."""
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), func))
        self._wakeup()

    def _next_timeout(self):
        with self._cond:
            if not self._timers:
                return None         # idle: block, use no CPU
            return max(0.0, self._timers[0][0] - time.monotonic())

    def _run_tasks(self, sel):
        now = time.monotonic()
        while True:
            with self._cond:
                if not self._timers or self._timers[0][0] > now:
                    return
                func = heapq.heappop(self._timers)[2]
            func(sel)

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
        """
        deadline = time.monotonic() + (STOP_TIMEOUT if timeout is None else timeout)
        me = threading.current_thread()
        self._stopping = True   # before the lock: a fault waiting for it gives up
        self._halt.set()        # cut fault delays short
        with self._lifecycle:
            self._stopping = True
            thread, self._thread = self._thread, None
            if thread is not None:
                self._wakeup()
                if thread is not me:
                    thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    self._stuck.append(thread)
            self._close_listener()
            with self._cond:
                live = list(self._live.values())
            for sock, _ in live:
                self._shutdown_socket(sock)
            self._stuck.extend(t for _, t in live)
            for t in self._stuck:
                if t is not me:
                    t.join(max(0.0, deadline - time.monotonic()))
            # The calling thread (a handler stopping its own server) stays
            # listed, so the next stop() joins it; it cannot wait for itself.
            self._stuck = [t for t in self._stuck if t.is_alive()]
            alive = [t for t in self._stuck if t is not me]
            if self._tmpdir is not None and not alive:
                try:
                    os.rmdir(self._tmpdir)
                except OSError:
                    pass
            self.ready.clear()
            with self._cond:
                self._timers.clear()
                self._cond.notify_all()
        if alive:
            raise TimeoutError("%r: stop() gave up after %.3g s; still alive: %s"
                               % (self, STOP_TIMEOUT if timeout is None else timeout,
                                  "; ".join(_where(t) for t in alive)))
        self.raise_errors()

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
        from ._process import ProcessServer
        return ProcessServer(cls, *args, **kwargs)

    def restart(self, timeout=None):
        """Stop, then start again on the same port (or path)."""
        self.stop(timeout)
        return self.start()

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @staticmethod
    def _shutdown_socket(sock):
        try:
            # socket.socket's own shutdown, also for an SSLSocket: it only
            # wakes blocked reads and writes, and leaves the TLS state alone.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    # -- connection threads -----------------------------------------------

    def _spawn_connection(self, sock, peer, target):
        """Track *sock* and run ``target(sock, peer, conn_id)`` on a thread."""
        conn_id = next(self._conn_ids)
        thread = threading.Thread(
            target=self._run_connection, args=(target, sock, peer, conn_id),
            daemon=True, name="%s(%s) conn %d from %s" % (
                type(self).__name__, self._addr_text(), conn_id, peer or "unnamed"))
        with self._cond:
            self._live[conn_id] = (sock, thread)
        thread.start()

    def _run_connection(self, target, sock, peer, conn_id):
        try:
            target(sock, peer, conn_id)
        except BaseException as exc:
            # Only the connection's own I/O can say the peer went away (its
            # errors are tagged): a handler's own timeout or refused upstream
            # connection is a handler error like any other.
            if getattr(exc, "_testservers_io", False) and (
                    _is_disconnect(exc) or self._stopping):
                _log.debug("%r: connection %d ended: %r", self, conn_id, exc)
            else:
                self._record_error(exc)
        finally:
            try:
                sock.close()
            except OSError:
                pass
            with self._cond:
                self._live.pop(conn_id, None)
                self._cond.notify_all()


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
