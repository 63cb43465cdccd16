"""Process mode: serve from a child process, with the same lifecycle here.

The processes exchange length-prefixed pickles over the child's stdin and
stdout, which are pipes: this process creates no socket, so a patched
:mod:`socket` (gevent, eventlet) is no obstacle.  (:mod:`multiprocessing`
leaves a resource-tracker process and a descriptor behind, and its duplex
Pipe is a socketpair.)  The child imports this package by its own name
with this process's :data:`sys.path`, exits when its stdin closes, and
never prints: its stderr goes to a file read only to explain a crash.
Objects bound to the server (a Fault, an Expectation) or that do not
pickle stay in the child, behind stand-ins; ``stop()`` keeps a copy of the
final state, which ``start()`` carries into a new child.
"""

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from ._base import STOP_TIMEOUT
from ._processwire import (_PROTOCOL, _Lost, _Method, _Registry, _RemoteRef,
                           _dump_state, _dumps, _loads, _read_frame, _write_frame)

__all__ = ["ProcessServer"]

#: How long a child may take to exit once its input closes, and to answer
#: stop() after that call's own deadline, before it is killed.
EXIT_GRACE = 5.0

# The child's first lines.  The first message holds only built-in types: the
# package can be imported only once sys.path is the parent's.
_BOOTSTRAP = """\
import pickle, struct, sys
f = sys.stdin.buffer
size, = struct.unpack(">Q", f.read(8))
sys.path[:], package = pickle.loads(f.read(size))
import importlib
importlib.import_module(package + "._processwire")._child_main(f)
"""

# Methods that build a client: they run here, where the client is used.
_CLIENT_HELPERS = frozenset(["url", "http_connection", "smtp_client"])


# -- the parent -----------------------------------------------------------------


def _reap(proc, errfile, kill=False):
    """End the child, close the pipes and the file; return the end of its stderr."""
    proc.stdin.close()
    if kill:
        proc.kill()
    try:
        proc.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    errfile.seek(max(0, errfile.seek(0, os.SEEK_END) - 4000))
    tail = errfile.read().decode("utf-8", "replace")
    errfile.close()
    return tail


class ProcessServer:
    """Run a server class in a child process, and stand in for it here.

    ``ProcessServer(cls, *args, **kwargs)`` (``cls.in_process(...)``) checks
    that the class, handler and arguments pickle, then builds the server in
    a child process, where it binds; a bind error is raised here.  ``port``,
    ``server_port``, ``server_address`` and ``family`` are then known;
    ``ready`` is an event of this process; ``process`` is the
    :class:`subprocess.Popen` of the latest child.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`start_for`;
    every other attribute and method is the server's, run in the child.
    """

    __slots__ = ("_cls", "_args", "_kwargs", "_lock", "_proc", "_errfile", "_finalizer",
                 "_view", "_registry", "_started", "_proxies", "process", "ready",
                 "__weakref__")

    def __init__(self, cls, *args, **kwargs):
        named = [("argument %d" % i, a) for i, a in enumerate(args)] + list(kwargs.items())
        for name, value in [("class", cls)] + named:
            what = "the handler" if name in ("argument 1", "handler") else name
            try:
                pickle.dumps(value, _PROTOCOL)
                if getattr(value, "__module__", None) == "__main__":
                    raise TypeError("it belongs to the __main__ script, which the child "
                                    "does not run; define it in a module")
            except Exception as exc:
                raise TypeError(
                    "%s.in_process(): %s %r cannot run in a child process: pass a "
                    "module-level function or class (or None) as the handler, and "
                    "arguments that pickle: %s" % (
                        getattr(cls, "__name__", cls), what, value, exc)) from None
        self._cls, self._args, self._kwargs = cls, args, kwargs
        self._lock = threading.RLock()
        self._proc = self.process = self._view = None
        self._started = False
        self._proxies = weakref.WeakValueDictionary()
        self.ready = threading.Event()
        self._spawn(args, kwargs, None)

    # -- the child and the messages -------------------------------------

    def _spawn(self, args, kwargs, restore):
        build = _dumps(("build", self._cls, args, kwargs, restore), self)
        flags = getattr(subprocess, "_args_from_interpreter_flags", list)()  # -X dev, -W
        errfile = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([sys.executable] + flags + ["-c", _BOOTSTRAP],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=errfile, bufsize=0)
        except BaseException:
            errfile.close()
            raise
        self._proc, self._errfile, self.process = proc, errfile, proc
        self._finalizer = weakref.finalize(self, _reap, proc, errfile)
        try:
            with contextlib.suppress(OSError):  # if the child died, _exchange() says why
                _write_frame(proc.stdin, pickle.dumps((sys.path, __package__), _PROTOCOL))
            self._make_view(self._exchange(build, None))
        except BaseException:
            self._end_child()
            raise

    def _end_child(self, kill=False):
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        self._finalizer.detach()
        return _reap(proc, self._errfile, kill)

    def _exchange(self, data, deadline):
        """Send one message to the child and return its answer."""
        proc = self._proc
        try:
            _write_frame(proc.stdin, data)
            raw = _read_frame(proc.stdout, deadline)
        except TimeoutError:
            self._end_child(kill=True)
            raise TimeoutError("%r: the child process did not answer in time and was "
                               "killed" % self) from None
        except OSError:
            raw = None
        if raw is None:
            tail = self._end_child()
            raise RuntimeError("%r: the child process (pid %d) ended unexpectedly with "
                               "exit code %s; its stderr ends with:\n%s"
                               % (self, proc.pid, proc.returncode, tail.rstrip()))
        status, value = _loads(raw, self, self._proxy)
        if status == "err":
            raise value
        return value

    def _rpc(self, *message, deadline=None):
        with self._lock:
            if self._proc is None:
                raise RuntimeError("%r has no child process; start() it first" % self)
            try:
                data = _dumps(message, self)
            except Exception as exc:
                raise TypeError("%r: %s cannot be sent to the child process: pass values "
                                "that pickle (no lambdas or closures): %s"
                                % (self, message[-2:], exc)) from None
            return self._exchange(data, deadline)

    def _member(self, rid, name):
        value = self._rpc("get", rid, name)
        if not isinstance(value, _Method):
            return value

        def method(*args, **kwargs):
            return self._rpc("call", rid, name, args, kwargs)
        method.__name__ = method.__qualname__ = name
        method.__doc__ = str(value) or None
        return method

    def _proxy(self, rid):
        ref = self._proxies.get(rid)
        if ref is None:
            ref = self._proxies[rid] = _RemoteRef(self, rid)
        return ref

    def _make_view(self, state):
        # The server as its child last reported it, in an instance that never
        # bound, with locks of its own: the client helpers run on it, and once
        # the child has ended everything does, on the final records.
        view = object.__new__(self._cls)
        view._init_records()
        view._init_faults()
        view._lifecycle = threading.RLock()
        items, refs, next_rid = _loads(state, view)
        fresh = vars(view)
        fresh.update({k: v for k, v in items.items()
                      if k not in fresh or not isinstance(v, _Lost)})
        self._view, self._registry = view, _Registry(refs, next_rid)

    # -- the lifecycle ----------------------------------------------------

    def start(self):
        """Start serving in the child; return once it is ready.

        Raises :exc:`RuntimeError` if already started.  After :meth:`stop`, a
        new child binds the same address and takes over the records, errors
        and expectations (not the faults).
        """
        with self._lock:
            if self._started:
                raise RuntimeError("%r is already started; stop() it first" % self)
            if self._proc is None:
                view = self._view
                args, kwargs = list(self._args), dict(self._kwargs)
                if args:
                    args[0] = view._bind_addr
                else:
                    kwargs["listen_addr"] = view._bind_addr
                restore = (view._tmpdir, _dump_state(view, self._registry))
                self._spawn(tuple(args), kwargs, restore)
            self._rpc("start")
            self._started = True
            self.ready.set()
        return self

    def stop(self, timeout=None):
        """Stop the server, end the child, and raise what its handlers raised.

        Safe before :meth:`start` and more than once.  *timeout* bounds the
        child's stop; a child silent :data:`EXIT_GRACE` s longer is killed.
        No process, thread or descriptor is left; the records stay readable.
        """
        with self._lock:
            self._started = False
            self.ready.clear()
            if self._proc is None:
                return
            deadline = time.monotonic() + EXIT_GRACE + (
                STOP_TIMEOUT if timeout is None else timeout)
            try:
                error, state = self._rpc("stop", timeout, deadline=deadline)
            finally:
                self._end_child()
            self._make_view(state)
        if error is not None:
            raise error

    def restart(self, timeout=None):
        """Stop, then start again on the same address, in a new child."""
        self.stop(timeout)
        return self.start()

    def start_for(self, testcase):
        """Start for a :class:`unittest.TestCase`, registering the stop first."""
        testcase.addCleanup(self.stop)
        return self.start()

    def __enter__(self):
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # -- everything else is the server's ----------------------------------

    port = property(lambda self: self._view.port, doc="The port (None for Unix).")
    server_port = port
    server_address = property(lambda self: self._view.server_address,
                              doc="The bound address, or the Unix socket path.")
    family = property(lambda self: self._view.family, doc="The address family.")

    def __getattr__(self, name):
        if name.startswith("__") or name in ProcessServer.__slots__:
            raise AttributeError(name)
        if self._proc is None or name in _CLIENT_HELPERS:
            return getattr(self._view, name)
        return self._member(None, name)

    def __setattr__(self, name, value):
        if name in ProcessServer.__slots__:
            object.__setattr__(self, name, value)
        elif self._proc is None:
            setattr(self._view, name, value)
        else:
            self._rpc("set", None, name, value)

    def __repr__(self):
        view = self._view
        return "<ProcessServer %s %s %s, pid %s>" % (
            self._cls.__name__, view._addr_text() if view is not None else "(unbound)",
            "serving" if self._started else "bound" if self._proc else "stopped",
            getattr(self.process, "pid", None))
