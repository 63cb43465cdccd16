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

Every call has a deadline (issue 10): a child that does not answer within
CALL_TIMEOUT s, plus the call's own timeout, is stuck.  It is killed, after
SIGTERM has made it write where each of its threads was, and the call
raises TimeoutError; the proxy is then as after a stop() whose final state
was lost, so reads say so instead of answering from an old copy.
"""

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from ._base import LOOP_TIMEOUT, STOP_TIMEOUT
from ._processwire import (_PROTOCOL, _GoneError, _Method, _RemoteRef, _dump_state, _dumps,
                           _load_state, _loads, _read_frame, _send_frame)
from ._aio import _in_thread, _settle
from ._records import WAIT_TIMEOUT

__all__ = ["ProcessServer"]

#: How long a child may take to exit once its input closes, and to answer
#: stop() after that call's own deadline, before it is killed.
EXIT_GRACE = 5.0

#: How long the child may take to answer any other call, beyond the call's
#: own *timeout* if it has one: longer than the child's own deadlines (its
#: start() and its faults wait up to 30 s for the service loop), so that a
#: slow child says why itself.  A child silent longer is stuck: it is killed.
CALL_TIMEOUT = max(STOP_TIMEOUT, LOOP_TIMEOUT) + EXIT_GRACE

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

# sys.flags fields that are switched on by a command-line letter, repeated
# as often as the count says (-OO, -bb, -vv).
_FLAG_LETTERS = [("debug", "d"), ("dont_write_bytecode", "B"), ("no_user_site", "s"),
                 ("no_site", "S"), ("ignore_environment", "E"), ("verbose", "v"),
                 ("bytes_warning", "b"), ("quiet", "q"), ("isolated", "I"),
                 ("optimize", "O"), ("safe_path", "P")]


def _interpreter_flags():
    """Return the options that give a child this interpreter's settings.

    Built from what is public: :data:`sys.flags` and :data:`sys.warnoptions`
    (``-W error`` stays an error in the handlers, ``-O`` drops their asserts,
    ``-X dev`` shows what it shows).  The ``-X`` options that only the
    private ``sys._xoptions`` records are not passed: ``importtime``,
    ``showrefcount``, ``frozen_modules``, ``tracemalloc`` and
    ``faulthandler`` are diagnostics of the parent, and the child registers
    its own fault handler.  The environment (``PYTHONWARNINGS``,
    ``PYTHONHASHSEED``, ...) is inherited as it is.
    """
    flags = sys.flags
    args = ["-" + letter * int(getattr(flags, name, 0))
            for name, letter in _FLAG_LETTERS if getattr(flags, name, 0)]
    warnoptions = list(sys.warnoptions)
    # -X dev and -b add a filter of their own to sys.warnoptions, which the
    # child's -X dev and -b add again.
    implied = []
    if flags.dev_mode:
        implied.append("default")
    if flags.bytes_warning:
        implied.append("error::BytesWarning" if flags.bytes_warning > 1
                       else "default::BytesWarning")
    for option in implied:
        if option in warnoptions:
            warnoptions.remove(option)
    args += ["-W" + option for option in warnoptions]
    if flags.dev_mode:
        args += ["-X", "dev"]
    if flags.utf8_mode:
        args += ["-X", "utf8"]
    if getattr(flags, "warn_default_encoding", 0):          # 3.10+
        args += ["-X", "warn_default_encoding"]
    digits = getattr(flags, "int_max_str_digits", -1)       # 3.11+; -1: not set
    if digits >= 0:
        args += ["-X", "int_max_str_digits=%d" % digits]
    return args


def _address_text(view):
    """The address of the server *view* copies, as its repr shows it."""
    if view is None:
        return "(unbound)"
    if view.port is None:
        return repr(view.server_address)
    host = view.server_address[0]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, view.port)


# -- the parent -----------------------------------------------------------------


def _reap(proc, errfile, kill=False):
    """End the child, close the pipes and the file; return the end of its stderr.

    With *kill*, the child is stuck: SIGTERM makes it write where each of
    its threads is before it dies (see _child_main), and SIGCONT wakes it
    if it was stopped; a child still alive EXIT_GRACE s later is killed.
    """
    proc.stdin.close()
    if kill and hasattr(signal, "SIGCONT"):
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
    elif kill:
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


def _own_timeout(timeout_at, args, kwargs):
    """The *timeout* a call passes (see _Method.of), in seconds, or 0."""
    if timeout_at is None:
        return 0.0
    position, value = timeout_at
    if "timeout" in kwargs:
        value = kwargs["timeout"]
    elif position is not None and len(args) > position:
        value = args[position]
    if value is None:
        value = WAIT_TIMEOUT        # what the wait_... helpers take for None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0                  # the child refuses it, and says why


class ProcessServer:
    """Run a server class in a child process, and stand in for it here.

    ``ProcessServer(cls, *args, **kwargs)`` (``cls.in_process(...)``) checks
    that the class, handler and arguments pickle, then builds the server in
    a child process, where it binds; a bind error is raised here.  ``port``,
    ``server_port``, ``server_address`` and ``family`` are then known;
    ``ready`` is an event of this process; ``process`` is the
    :class:`subprocess.Popen` of the latest child.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`start_for`;
    every other attribute and method is the server's, run in the child.  A
    child that does not answer a call within :data:`CALL_TIMEOUT` s more
    than the call's own *timeout* is killed, and the call raises
    :exc:`TimeoutError`.
    """

    __slots__ = ("_cls", "_args", "_kwargs", "_lock", "_proc", "_errfile", "_finalizer",
                 "_view", "_registry", "_started", "_proxies", "_lost", "_awaiting",
                 "process", "ready", "__weakref__")

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
        self._proc = self.process = self._view = self._lost = None
        self._started = self._awaiting = False
        self._proxies = weakref.WeakValueDictionary()
        self.ready = threading.Event()
        self._spawn(None)

    # -- the child and the messages -------------------------------------

    def _spawn(self, state):
        build = _dumps(("build", self._cls, self._args, self._kwargs, state), self)
        errfile = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([sys.executable] + _interpreter_flags()
                                    + ["-c", _BOOTSTRAP],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=errfile, bufsize=0)
        except BaseException:
            errfile.close()
            raise
        self._proc, self._errfile, self.process = proc, errfile, proc
        self._finalizer = weakref.finalize(self, _reap, proc, errfile)
        if os.name == "posix":      # for _send_frame's deadline
            os.set_blocking(proc.stdin.fileno(), False)
        label = "%s.in_process()" % self._cls.__name__
        deadline = time.monotonic() + CALL_TIMEOUT
        try:
            with contextlib.suppress(OSError):  # if the child died, _exchange() says why
                _send_frame(proc.stdin.fileno(),
                            pickle.dumps((sys.path, __package__), _PROTOCOL), deadline)
            self._make_view(self._exchange(build, label, CALL_TIMEOUT, deadline))
        except BaseException:
            self._end_child()
            raise

    def _end_child(self, kill=False):
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        self._finalizer.detach()
        return _reap(proc, self._errfile, kill)

    def _exchange(self, data, label, allowed, deadline=None):
        """Send one message to the child and return its answer.

        A child that has not answered within *allowed* s (by *deadline*) is
        stuck: it is killed, and TimeoutError names *label* (the call).
        """
        proc = self._proc
        if deadline is None:
            deadline = time.monotonic() + allowed
        try:
            _send_frame(proc.stdin.fileno(), data, deadline)
        except TimeoutError:
            raise self._abandon(label, allowed) from None
        except OSError:
            return self._answer(proc, None)
        return self._receive(proc, label, allowed, deadline)

    def _receive(self, proc, label, allowed, deadline):
        """Read the child's answer by *deadline*; see _answer()."""
        try:
            raw = _read_frame(proc.stdout, deadline)
        except TimeoutError:
            raise self._abandon(label, allowed) from None
        except OSError:
            raw = None
        return self._answer(proc, raw)

    def _answer(self, proc, raw):
        """Return the child's answer *raw*, or raise what it says went wrong."""
        if raw is None:
            tail = self._end_child()
            raise RuntimeError("%r: the child process (pid %d) ended unexpectedly with "
                               "exit code %s; its stderr ends with:\n%s"
                               % (self, proc.pid, proc.returncode, tail.rstrip()))
        status, value = _loads(raw, self, self._proxy)
        if status == "err":
            raise value
        return value

    def _abandon(self, label, allowed):
        """Kill the stuck child; return the TimeoutError that says so."""
        pid = self._proc.pid
        self._started = False
        self.ready.clear()
        tail = self._end_child(kill=True)
        self._lost = ("%s: the child process (pid %d) was killed when %s got no answer, "
                      "and what it held is lost; start() starts a new child, with the "
                      "state the last one had when it was built or last stopped"
                      % (self._cls.__name__, pid, label))
        return TimeoutError("%s got no answer from its child process (pid %d) within "
                            "%.3g s: the child was killed; its stderr ends with:\n%s"
                            % (label, pid, allowed, tail.rstrip() or "(nothing)"))

    def _check_not_lost(self):
        if self._lost is not None:
            raise _GoneError(self._lost)

    def _rpc(self, *message, label, timeout=0.0, allowed=None):
        """Run one call in the child; wait CALL_TIMEOUT s more than *timeout*
        for the answer, or *allowed* s."""
        with self._lock:
            data = self._encode(message)
            if allowed is None:
                allowed = CALL_TIMEOUT + timeout
            return self._exchange(data, label, allowed)

    def _encode(self, message):
        """Pickle a call for the child (the lock held); refuse what cannot go."""
        if self._awaiting:
            raise RuntimeError("%r: a coroutine is awaiting an answer from the child "
                               "process; await it before calling again" % self)
        if self._proc is None:
            self._check_not_lost()
            raise RuntimeError("%r has no child process; start() it first" % self)
        try:
            return _dumps(message, self)
        except Exception as exc:
            raise TypeError("%r: %s cannot be sent to the child process: pass values "
                            "that pickle (no lambdas or closures): %s"
                            % (self, message[-2:], exc)) from None

    # -- the same from a coroutine -----------------------------------------

    def _async_twin(self, name):
        """The awaitable twin of the wait *name*: the call is sent at once
        and its answer awaited on the event loop, which goes on meanwhile."""
        if self._proc is None:          # the final records, here
            self._check_not_lost()
            return getattr(self._view, "async_" + name)
        method = self._rpc("get", None, name, label="%s.%s" % (self._cls.__name__, name))
        if not isinstance(method, _Method):
            raise AttributeError("%s.%s is not a wait" % (self._cls.__name__, name))
        timeout_at = method.timeout_at

        def twin(*args, **kwargs):
            message = ("call", None, name, args, kwargs)
            allowed = CALL_TIMEOUT + _own_timeout(timeout_at, args, kwargs)
            return self._await_answer(message, method.label + "()", allowed)
        twin.__name__ = twin.__qualname__ = "async_" + name
        return twin

    async def _await_answer(self, message, label, allowed):
        import asyncio
        loop = asyncio.get_running_loop()
        # One call at a time on the pipes: a call from another thread makes
        # this wait for the lock; a sync call from this thread meanwhile is
        # refused (_encode), as it would interleave with the answer awaited.
        with self._lock:
            data = self._encode(message)
            proc = self._proc
            deadline = time.monotonic() + allowed
            try:
                _send_frame(proc.stdin.fileno(), data, deadline)
            except TimeoutError:
                raise self._abandon(label, allowed) from None
            except OSError:
                return self._answer(proc, None)
            self._awaiting = True
        try:
            readable = loop.create_future()
            fd = proc.stdout.fileno()
            loop.add_reader(fd, _settle, readable)
            try:
                await asyncio.wait_for(readable, allowed)
            except asyncio.TimeoutError:
                with self._lock:
                    raise self._abandon(label, allowed) from None
            finally:
                loop.remove_reader(fd)
            with self._lock:
                return self._receive(proc, label, allowed, deadline)
        finally:
            self._awaiting = False

    async def async_start(self):
        """Start, from a coroutine: the child starts on a short-lived thread."""
        await _in_thread(self.start)
        return self

    async def async_stop(self, timeout=None):
        """Stop, from a coroutine: the child ends on a short-lived thread."""
        await _in_thread(self.stop, timeout)

    async def __aenter__(self):
        if not self._started:
            await self.async_start()
        return self

    async def __aexit__(self, *exc_info):
        await self.async_stop()

    def _member(self, rid, name, type_name=None):
        label = "%s.%s" % (type_name or self._cls.__name__, name)
        value = self._rpc("get", rid, name, label=label)
        if not isinstance(value, _Method):
            return value

        def method(*args, **kwargs):
            return self._rpc("call", rid, name, args, kwargs, label=value.label + "()",
                             timeout=_own_timeout(value.timeout_at, args, kwargs))
        method.__name__ = method.__qualname__ = name
        method.__doc__ = str(value) or None
        return method

    def _proxy(self, rid, type_name="object"):
        ref = self._proxies.get(rid)
        if ref is None:
            ref = self._proxies[rid] = _RemoteRef(self, rid, type_name)
        return ref

    def _make_view(self, state):
        # The server as its child last reported it, in an instance that never
        # binds, with locks of its own: the client helpers run on it, and once
        # the child has ended everything does, on the final records.
        self._view, self._registry = _load_state(self._cls, self._args, self._kwargs,
                                                 state, bind=False)

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
            self._lost = None
            if self._proc is None:
                self._spawn(_dump_state(self._view, self._registry))
            self._rpc("start", label="%s.start()" % self._cls.__name__)
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
            allowed = EXIT_GRACE + (STOP_TIMEOUT if timeout is None else timeout)
            try:
                error, state = self._rpc("stop", timeout, allowed=allowed,
                                         label="%s.stop()" % self._cls.__name__)
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
        if name in _CLIENT_HELPERS:
            return getattr(self._view, name)
        if name.startswith("async_wait"):
            return self._async_twin(name[len("async_"):])
        if self._proc is None:
            self._check_not_lost()
            return getattr(self._view, name)
        return self._member(None, name)

    def __setattr__(self, name, value):
        if name in ProcessServer.__slots__:
            object.__setattr__(self, name, value)
        elif self._proc is None:
            self._check_not_lost()
            setattr(self._view, name, value)
        else:
            self._rpc("set", None, name, value,
                      label="setting %s.%s" % (self._cls.__name__, name))

    def __repr__(self):
        return "<ProcessServer %s %s %s, pid %s>" % (
            self._cls.__name__, _address_text(self._view),
            "serving" if self._started else "bound" if self._proc else "stopped",
            getattr(self.process, "pid", None))
