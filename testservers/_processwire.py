"""Process mode's wire: what crosses the pipes, and the child's side.

Messages are pickles behind an 8-byte length.  Objects bound to the child's
server (the server itself, a Fault, an Expectation) and results that do not
pickle cross as persistent ids into a registry in the child, so the parent
holds stand-ins (see :mod:`._process`).  :func:`_child_main` is what the
child runs: it builds the server, answers calls until its stdin closes,
then stops the server and exits.
"""

import contextlib
import faulthandler
import inspect
import io
import itertools
import os
import pickle
import re
import select
import struct
import sys
import time
import traceback

from ._records import _add_note

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_HEADER = struct.Struct(">Q")

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
    """The child's answer when the attribute asked for is a method: its doc.

    ``label`` names it (``Fault.undo``), and ``timeout_at`` says where its
    ``timeout`` argument is, as (position or None, default), or is None:
    the parent waits that much longer for the answer (see :mod:`._process`).
    """

    label = "the method"
    timeout_at = None

    @classmethod
    def of(cls, obj, name, method):
        answer = cls(getattr(method, "__doc__", None) or "")
        answer.label = "%s.%s" % (type(obj).__name__, name)
        try:
            params = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):     # a builtin without a signature
            return answer
        for i, param in enumerate(params):
            if param.name == "timeout" and param.kind in (
                    param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                default = None if param.default is param.empty else param.default
                position = i if param.kind == param.POSITIONAL_OR_KEYWORD else None
                answer.timeout_at = (position, default)
        return answer


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
            and server is not None and any(e is exc for e in server.errors)):
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
            return ("ref", self.registry.add(obj), type(obj).__name__)
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
        kind, arg = pid[0], pid[1]
        if kind == "server":
            return self.server
        if kind == "ref":       # from the child, the type's name follows
            return self.resolve(*pid[1:])
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
    """Pickle the state *server* exports and the handles, for the other side.

    Records, errors, expectations and settings cross by value, bound to the
    server there; what does not pickle (an SSL context) crosses as
    :class:`_Lost`.
    """
    def pickles(value):
        try:
            _dumps(value, server)
            return True
        except Exception:
            return False
    items = {name: value if pickles(value) else _Lost(type(value).__name__)
             for name, value in server._export_state().items()}
    refs = {rid: obj for rid, obj in registry.items() if pickles(obj)}
    return _dumps((items, refs, registry.next_rid), server)


def _load_state(cls, args, kwargs, state, bind):
    """Build a server of *cls* from the constructor's arguments that takes
    over the pickled *state* (see _dump_state); return it, its registry,
    and the values that stayed in the other process, by name.

    With *bind* it binds the state's address again; without, it is the
    parent's copy, which never binds, and a value that could not leave the
    child stands as a :class:`_Lost` where the copy has none of its own.
    """
    loaded = {}

    def load(server):
        items, refs, next_rid = _loads(state, server)
        loaded.update(refs=refs, next_rid=next_rid,
                      lost={k: v for k, v in items.items() if isinstance(v, _Lost)})
        return {k: v for k, v in items.items() if not isinstance(v, _Lost)}
    server = cls._restore_state(args, kwargs, load, bind=bind)
    if not bind:
        for name, lost in loaded["lost"].items():
            vars(server).setdefault(name, lost)
    return server, _Registry(loaded["refs"], loaded["next_rid"])


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


def _send_frame(fd, data, deadline):
    """Write one message to the non-blocking pipe *fd* by *deadline*.

    Raise TimeoutError when the reader leaves the pipe full that long.
    """
    view = memoryview(_HEADER.pack(len(data)) + data)
    if not hasattr(select, "poll"):     # Windows: its pipes only block
        while view:
            view = view[os.write(fd, view):]
        return
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    while view:
        if not poll.poll(max(0.0, deadline - time.monotonic()) * 1000):
            raise TimeoutError
        with contextlib.suppress(BlockingIOError):
            view = view[os.write(fd, view):]


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


def _build(cls, args, kwargs, state):
    """Build the server; after a stop, bind the same address again and
    take over the *state* of the server that stopped."""
    if state is None:
        return cls(*args, **kwargs), _Registry()
    return _load_state(cls, args, kwargs, state, bind=True)


def _child_main(reader):
    """Serve the parent until its end of the pipes closes (see _BOOTSTRAP)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent's Ctrl-C is the parent's
    if hasattr(faulthandler, "register"):
        # The parent ends a child that stopped answering with SIGTERM: say
        # where every thread is (into the stderr file), then die of it.
        faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)
        # That walk over the threads' frames runs while they run, and can
        # crash the dying child (SIGSEGV, seen on 3.13): no core file then.
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):
            pass
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
                    obj = target(args[0])
                    value = getattr(obj, args[1])
                    method = callable(value) and not isinstance(value, type)
                    result = _Method.of(obj, args[1], value) if method else value
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


class _RemoteRef:
    """Stand in for an object in the child: forward reads, calls and ``with``.

    Once the child has ended, the copy that stop() brought back answers; an
    object that did not pickle is gone, and leaving ``with`` on it is a no-op.
    """

    __slots__ = ("_server", "_rid", "_type", "__weakref__")

    def __init__(self, server, rid, type_name="object"):
        self._server, self._rid, self._type = server, rid, type_name

    def _member(self, name):
        if self._server._proc is None:
            self._server._check_not_lost()
            return getattr(self._server._registry.lookup(self._rid), name)
        return self._server._member(self._rid, name, self._type)

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
