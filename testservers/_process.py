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
import io
import itertools
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref

from ._base import STOP_TIMEOUT
from ._records import _add_note

__all__ = ["ProcessServer"]

#: How long a child may take to exit once its input closes, and to answer
#: stop() after that call's own deadline, before it is killed.
EXIT_GRACE = 5.0

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_HEADER = struct.Struct(">Q")

# The child's first lines.  The first message holds only built-in types: the
# package can be imported only once sys.path is the parent's.
_BOOTSTRAP = """\
import pickle, struct, sys
f = sys.stdin.buffer
size, = struct.unpack(">Q", f.read(8))
sys.path[:], package = pickle.loads(f.read(size))
import importlib
importlib.import_module(package + "._process")._child_main(f)
"""

# What the binding and the lifecycle own: a restarted child keeps its own,
# and takes every other attribute (records, errors, expectations) over.
_BINDING = frozenset([
    "socket", "server_address", "port", "family", "_bind_addr", "_unix_inode",
    "_tmpdir", "_faults", "_stopping", "_thread", "_wake", "_stuck", "_live",
    "_timers", "_tasks", "_buffer"])

# Methods that build a client: they run here, where the client is used.
_CLIENT_HELPERS = frozenset(["url", "http_connection", "smtp_client"])

_COUNT = re.compile(r"count\((-?\d+)\)")    # itertools.count pickles no more in 3.14
_NOTHING = object()


class _Lost:
    """Stands for a value that could not leave its process."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return "<%s left in the child process>" % self.what


class _GoneError(RuntimeError):
    """The object behind a stand-in ended with its child process."""


class _Method(str):
    """The child's answer when the attribute asked for is a method: its doc."""


def _exc_text(exc):
    """Return None if *exc* survives a pickle round trip, else a description."""
    try:
        pickle.loads(pickle.dumps(exc, _PROTOCOL))
        return None
    except Exception as error:
        return "%r was raised in the child process and cannot be pickled (%s):\n%s" % (
            exc, error, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _with_child_traceback(exc, server):
    """Note where a handler error was raised: its traceback stays behind."""
    if (exc.__traceback__ is not None and _exc_text(exc) is None
            and any(e is exc for e in getattr(server, "_errors", ()))):
        _add_note(exc, "Traceback in the child process (pid %d):\n%s" % (
            os.getpid(), "".join(traceback.format_tb(exc.__traceback__)).rstrip()))
    return exc


class _Pickler(pickle.Pickler):
    """Pickle for the other process: the server by name, handles by number."""

    def __init__(self, file, server, registry=None, force=_NOTHING):
        super().__init__(file, _PROTOCOL)
        self.server, self.registry, self.force = server, registry, force

    def persistent_id(self, obj):
        if obj is self.server and obj is not None:
            return ("server", None)
        if type(obj) is _RemoteRef:
            return ("ref", obj._rid)
        if self.registry is not None and (obj is self.force or self._bound(obj)):
            return ("ref", self.registry.add(obj))
        if type(obj) is itertools.count and _COUNT.fullmatch(repr(obj)):
            return ("count", int(_COUNT.fullmatch(repr(obj)).group(1)))
        if isinstance(obj, BaseException) and _exc_text(obj) is not None:
            return ("exc", _exc_text(obj))
        return None

    def _bound(self, obj):
        # A handle keeps the server in an attribute (Fault.server, Expectation._server).
        d = getattr(obj, "__dict__", None)
        return type(d) is dict and any(v is self.server for v in d.values())


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, server, resolve):
        super().__init__(file)
        self.server, self.resolve = server, resolve

    def persistent_load(self, pid):
        kind, arg = pid
        if kind == "server":
            return self.server
        if kind == "ref":
            return self.resolve(arg)
        if kind == "count":
            return itertools.count(arg)
        if kind == "exc":
            return RuntimeError(arg)
        raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))


def _dumps(obj, server, registry=None, force=_NOTHING):
    buf = io.BytesIO()
    _Pickler(buf, server, registry, force).dump(obj)
    return buf.getvalue()


def _loads(data, server, resolve=None):
    return _Unpickler(io.BytesIO(data), server, resolve).load()


def _dump_state(server, registry):
    """Pickle the attributes of *server* and the handles, for the other side.

    Records, errors, expectations and settings cross by value, bound to the
    server there; locks, sockets, threads and SSL contexts cross as
    :class:`_Lost`.
    """
    def pickles(value):
        try:
            _dumps(value, server)
            return True
        except Exception:
            return False
    items = {name: value if pickles(value) else _Lost(type(value).__name__)
             for name, value in vars(server).items()}
    refs = {rid: obj for rid, obj in registry.items() if pickles(obj)}
    return _dumps((items, refs, registry.next_rid), server)


class _Registry(dict):
    """The objects the other process has stand-ins for, by number; a test
    makes few, so they are kept as long as the child lives."""

    def __init__(self, refs=(), next_rid=1):
        super().__init__(refs)
        self.next_rid = next_rid
        self._rids = {id(obj): rid for rid, obj in self.items()}

    def add(self, obj):
        rid = self._rids.get(id(obj))
        if rid is None:
            rid = self._rids[id(obj)] = self.next_rid
            self[rid] = obj
            self.next_rid += 1
        return rid

    def lookup(self, rid):
        if rid not in self:
            raise _GoneError("this object lived in a child process that has ended")
        return self[rid]


def _write_frame(f, data):
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[f.write(view):]
    f.flush()


def _read_exactly(f, size, deadline):
    chunks = []
    while size:
        if deadline is not None and hasattr(select, "poll"):
            poll = select.poll()
            poll.register(f.fileno(), select.POLLIN)
            if not poll.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise TimeoutError
        chunk = f.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(f, deadline=None):
    """Read one message; return None at the end of the stream."""
    head = _read_exactly(f, _HEADER.size, deadline)
    return None if head is None else _read_exactly(f, _HEADER.unpack(head)[0], deadline)


# -- the child ------------------------------------------------------------------


def _build(cls, args, kwargs, restore):
    """Build the server; after a stop, bind the same address again and
    take over the state of the server that stopped."""
    if restore is None:
        return cls(*args, **kwargs), _Registry()
    tmpdir, state = restore
    cls._reuse_on_first_bind = True         # connections in TIME_WAIT block a plain bind
    if tmpdir:
        os.makedirs(tmpdir, 0o700, exist_ok=True)
    server = cls(*args, **kwargs)
    server._tmpdir = tmpdir or server._tmpdir
    items, refs, next_rid = _loads(state, server)
    for name, value in items.items():
        if name in vars(server) and name not in _BINDING and not isinstance(value, _Lost):
            vars(server)[name] = value
    return server, _Registry(refs, next_rid)


def _child_main(reader):
    """Serve the parent until its end of the pipes closes (see _BOOTSTRAP)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent's Ctrl-C is the parent's
    writer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)           # a print() in a handler must not corrupt the replies
    server, registry = None, _Registry()

    def target(rid):
        return server if rid is None else registry.lookup(rid)

    try:
        while True:
            data = _read_frame(reader)
            if data is None:
                break
            try:
                try:
                    op, *args = _loads(data, server, target)
                except Exception as exc:
                    raise TypeError("the child process could not unpickle what it was sent "
                                    "(%s: %s); the server class, handler and arguments must "
                                    "be importable by name" % (type(exc).__name__, exc))
                if op == "build":
                    server, registry = _build(*args)
                    result = _dump_state(server, registry)
                elif op == "start":
                    result = server.start() and None
                elif op == "stop":
                    error = None
                    try:
                        server.stop(args[0])
                    except BaseException as exc:
                        error = _with_child_traceback(exc, server)
                    result = (error, _dump_state(server, registry))
                elif op == "get":
                    value = getattr(target(args[0]), args[1])
                    method = callable(value) and not isinstance(value, type)
                    result = _Method(getattr(value, "__doc__", None) or "") if method else value
                elif op == "set":
                    result = setattr(target(args[0]), args[1], args[2])
                else:       # "call"
                    rid, name, args, kwargs = args
                    result = getattr(target(rid), name)(*args, **kwargs)
                reply = ("ok", result)
            except BaseException as exc:
                reply = ("err", _with_child_traceback(exc, server))
            try:
                data = _dumps(reply, server, registry)
            except Exception:
                if reply[0] == "ok":    # it does not pickle: it stays, the parent gets a handle
                    data = _dumps(reply, server, registry, force=reply[1])
                else:
                    data = _dumps(("err", RuntimeError(repr(reply[1]))), server)
            _write_frame(writer, data)
    finally:
        if server is not None:
            with contextlib.suppress(BaseException):
                server.stop(0.1)    # the parent went away: leave no socket file
        sys.stderr.flush()
        os._exit(0)


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


class _RemoteRef:
    """Stand in for an object in the child: forward reads, calls and ``with``.

    Once the child has ended, the copy that stop() brought back answers; an
    object that did not pickle is gone, and leaving ``with`` on it is a no-op.
    """

    __slots__ = ("_server", "_rid", "__weakref__")

    def __init__(self, server, rid):
        self._server, self._rid = server, rid

    def _member(self, name):
        if self._server._proc is None:
            return getattr(self._server._registry.lookup(self._rid), name)
        return self._server._member(self._rid, name)

    def __getattr__(self, name):
        if name.startswith("__") or name in _RemoteRef.__slots__:
            raise AttributeError(name)
        return self._member(name)

    def __enter__(self):
        return self._member("__enter__")()

    def __exit__(self, *exc_info):
        try:
            return self._member("__exit__")(None, None, None)
        except _GoneError:
            return None

    def __repr__(self):
        try:
            return self._member("__repr__")()
        except _GoneError:
            return "<an object gone with its child process>"


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
