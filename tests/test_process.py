"""Process mode (issue 5): every row of the kinds table run in a child process.

The handlers are module-level functions (in kinds), so they pickle by name
and the child imports them.  Each child costs a new interpreter, so the
contract for a row runs as one test over three children: the one the
constructor starts, the one start() after stop() starts, and the one
restart() starts.
"""

import ast
import functools
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import testservers
import testservers._process
from conftest import PROMPT, SLOW, TIMEOUT
from kinds import KINDS, ROWS, smtp_echo, stream_echo

FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
TCP = ROWS["TestTCPServer"][0]
HTTP = ROWS["TestHTTPServer"][0]


# -- what runs in the child ------------------------------------------------------

def _connections(server):
    return server.connections


def stuck():
    """A wait_for() predicate that blocks the child's command loop."""
    threading.Event().wait(TIMEOUT)     # stuck, until the parent's deadline ends it
    return True


def past(due):
    """A wait_for() predicate: true once time.monotonic() reaches *due*
    (CLOCK_MONOTONIC: the same clock in every process)."""
    return time.monotonic() >= due


def interpreter_settings():
    """A wait_for() predicate that returns the settings of its interpreter."""
    return tuple(sys.flags), list(sys.warnoptions)


class Unpicklable(Exception):
    def __init__(self, a, b):       # pickle calls Unpicklable(a): a TypeError
        super().__init__(a)


def raise_unpicklable(request):
    request.rfile.readline()
    raise Unpicklable("the handler's own exception", None)


def print_and_crash(request):
    request.rfile.readline()
    print("this goes to the child's stderr file, not into the replies")
    os.write(2, b"the handler ends its process\n")
    os._exit(3)


@pytest.fixture
def make(tmp_path):
    """Build servers of a kind in process mode; stop what a failing test left."""
    made = []

    def make(kind, poll_interval=0.5, **options):
        server = kind.make(None, poll_interval, tmp_path, process=True, **options)
        made.append(server)
        return server
    yield make
    for server in made:
        if server.process.returncode is None:
            server.take_errors()
        server.stop()


def _fds():
    return set(os.listdir(FD_DIR))


@pytest.mark.parametrize("kind", KINDS, ids=repr)
def test_lifecycle_contract(kind, make, tmp_path):
    threads, fds = set(threading.enumerate()), _fds()

    # 1. The constructor binds (in the child): the port is known here.
    server = make(kind, poll_interval=SLOW)
    address = server.server_address
    if kind.unix:
        assert server.port is None and os.path.exists(address)
    else:
        assert isinstance(server.port, int) and server.port > 0
        assert address[1] == server.port == server.server_port
    assert not server.ready.is_set()

    # 2. stop() before start() is prompt; start() after it binds again.
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < PROMPT
    assert server.socket is None and not os.path.exists(str(tmp_path / "s.sock"))
    assert server.start() is server
    assert server.ready.is_set() and server.server_address == address
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    kind.roundtrip(server, 1)       # records come back; TIME_WAIT left behind

    # 3. restart() serves on the same address and carries the records over.
    first_child = server.process
    server.restart()
    assert server.process is not first_child and first_child.returncode == 0
    assert server.server_address == address
    kind.roundtrip(server, 2)

    # 4. A handler error is raised by stop(), promptly at poll_interval=SLOW,
    #    with the traceback from the child in a note.
    kind.fail(server)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="the handler saw fail") as info:
        server.stop()
    assert time.monotonic() - started < PROMPT
    notes = getattr(info.value, "__notes__", [])
    assert any(kind.cls.__name__ in note for note in notes)
    assert any("in the child process" in note and kind.echo.__name__ in note
               for note in notes)
    assert not server.ready.is_set()
    assert [type(e) for e in server.errors] == [AssertionError]
    assert len(getattr(server, kind.records)) == 2 + kind.records_per_fail

    # 5. Nothing is left: no child, thread, descriptor or socket file.
    server.stop()                   # raised once: a second stop is quiet
    assert "stopped" in repr(server)
    assert server.process.returncode == 0
    assert not os.path.exists(str(tmp_path / "s.sock"))
    assert set(threading.enumerate()) <= threads
    assert _fds() <= fds


def test_records_come_back_when_socket_is_monkeypatched(monkeypatch):
    real_socket = socket.socket

    class Broken(real_socket):
        def __init__(self, *args, **kwargs):
            raise AssertionError("the parent created a socket")

    monkeypatch.setattr(socket, "socket", Broken)
    monkeypatch.setattr(socket, "socketpair", Broken)
    server = testservers.TestTCPServer.in_process(None, stream_echo)
    server.start()
    try:
        with real_socket() as client:
            client.settimeout(TIMEOUT)
            client.connect(("127.0.0.1", server.port))
            client.sendall(b"ping\n")
            assert client.recv(100) == b"echo ping\n"
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert (conn.id, conn.data, conn.closed_by) == (1, b"ping\n", "server")
    finally:
        server.stop()
    assert server.connections[0].data == b"ping\n"
    assert server.process.returncode == 0


def _closure_handler():
    seen = []

    def handler(request):
        seen.append(request)
    return handler


@pytest.mark.parametrize("handler", [lambda request: None, _closure_handler()],
                         ids=["lambda", "closure"])
def test_handler_that_cannot_pickle_is_refused_before_spawning(handler, monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")
    monkeypatch.setattr(subprocess, "Popen", no_process)
    with pytest.raises(TypeError, match=r"TestTCPServer\.in_process\(\): the handler "
                       r".* cannot run in a child process: pass a module-level function"):
        testservers.TestTCPServer.in_process(None, handler)


def test_faults_and_remote_objects_through_the_proxy():
    with testservers.TestTCPServer.in_process(None, stream_echo) as server:
        port = server.port
        with server.refuse() as fault:
            assert fault.name == "refuse"
            assert "Fault refuse" in repr(fault)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), TIMEOUT)
        TCP.roundtrip(server, 1)            # accepting again, on the same port
        # What does not pickle stays in the child; the stand-in forwards calls.
        assert server.socket.getsockname() == server.server_address
        with pytest.raises(TypeError, match="cannot be sent to the child process"):
            server.wait_for(lambda: True)
        # The proxy pickles as the server in the child, for predicates.
        connections = server.wait_for(functools.partial(_connections, server), TIMEOUT)
        assert [c.data for c in connections] == [b"ping\n"]
        with pytest.raises(TimeoutError, match="2 closed connections"):
            server.wait_connections(2, 0.01, closed=True)
        with pytest.raises(AttributeError):
            server.no_such_attribute


def test_child_crash_is_reported_with_its_stderr():
    server = testservers.TestTCPServer.in_process(None, print_and_crash).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
        client.sendall(b"x\n")
        assert client.recv(100) == b""      # the child died with the connection
    with pytest.raises(RuntimeError, match=r"ended unexpectedly with exit code 3; "
                       r"(?s:.*)the handler ends its process"):
        server.stop()
    assert server.process.returncode == 3
    server.stop()


def test_exception_that_cannot_pickle_comes_back_as_runtime_error():
    server = testservers.TestTCPServer.in_process(None, raise_unpicklable).start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
        client.sendall(b"x\n")
        assert client.recv(100) == b""
    with pytest.raises(RuntimeError, match=r"(?s)Unpicklable\(.the handler's own "
                       r"exception.\) was raised in the child process and cannot be "
                       r"pickled.*in raise_unpicklable"):
        server.stop()
    assert [type(e) for e in server.errors] == [RuntimeError]


def test_handler_the_child_cannot_import_is_reported(tmp_path, monkeypatch):
    (tmp_path / "ts_hidden_handlers.py").write_text("def handler(request):\n    pass\n")
    spec = importlib.util.spec_from_file_location(
        "ts_hidden_handlers", str(tmp_path / "ts_hidden_handlers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Importable here (it is in sys.modules), not in the child (not on sys.path).
    monkeypatch.setitem(sys.modules, "ts_hidden_handlers", module)
    with pytest.raises(TypeError, match="the child process could not unpickle .*"
                       "ts_hidden_handlers.*importable by name"):
        testservers.TestTCPServer.in_process(None, module.handler)


def test_bind_error_raised_by_the_constructor():
    with testservers.TestTCPServer() as taken:
        with pytest.raises(OSError) as info:
            testservers.TestTCPServer.in_process(("127.0.0.1", taken.port))
        assert type(info.value) in (OSError, PermissionError)


@pytest.mark.skipif(not hasattr(testservers, "TestHTTPServer"), reason="no HTTP server")
def test_canned_responses_and_expectations_survive_stop_and_restart():
    server = testservers.TestHTTPServer.in_process()
    exp = server.expect("GET", "/hello", body="hi")
    assert server.expectations == [exp]      # one stand-in per object in the child
    server.start()
    assert HTTP.get(server, "/hello") == (200, b"hi")
    assert [r.path for r in exp.wait(1, TIMEOUT)] == ["/hello"]
    server.stop()
    assert exp.count == 1 and server.requests[0].path == "/hello"   # the final copy
    server.start()
    assert HTTP.get(server, "/hello") == (200, b"hi")
    assert exp.count == 2 and len(server.requests) == 2
    server.check_expectations()
    server.stop()


def test_handler_from_the_main_script_is_refused(monkeypatch):
    def handler(request):
        pass
    handler.__module__, handler.__qualname__ = "__main__", "ts_main_handler"
    monkeypatch.setattr(sys.modules["__main__"], "ts_main_handler", handler, raising=False)
    with pytest.raises(TypeError, match="belongs to the __main__ script"):
        testservers.TestTCPServer.in_process(None, handler)


# -- deadlines: a stuck child is killed, the call that waited says so (issue 10) --

# The deadline the tests set, once the calls that must succeed are made:
# only the call to the stuck child runs under it.
SHORT = 0.2


def test_child_stuck_in_a_call_is_killed_and_the_call_named(monkeypatch):
    server = testservers.TestTCPServer.in_process(None, stream_echo).start()
    pid = server.process.pid
    with monkeypatch.context() as m:
        m.setattr(testservers._process, "CALL_TIMEOUT", SHORT)
        # The predicate runs in the child's command loop and blocks it.
        with pytest.raises(TimeoutError, match=r"^TestTCPServer\.wait_for\(\) got no answer "
                           r"from its child process \(pid %d\) within 0\.2\d* s: the child "
                           r"was killed" % pid) as info:
            server.wait_for(stuck, 0.01)
    if hasattr(signal, "SIGCONT"):      # POSIX: it said where it was stuck first
        assert "in stuck" in str(info.value)
        assert _killed_after_its_dump(server.process.returncode)
    assert server.process.returncode is not None and not server.ready.is_set()
    # What the child held is gone: reading it says so instead of reading
    # a stale copy, in the proxy and in a stand-in.
    with pytest.raises(RuntimeError, match=r"pid %d\) was killed when "
                       r"TestTCPServer\.wait_for\(\) got no answer" % pid):
        server.connections
    server.stop()                       # quiet, and nothing is left
    assert "stopped" in repr(server)
    server.start()                      # a new child serves again
    try:
        TCP.roundtrip(server, 1)
    finally:
        server.stop()
    assert server.process.returncode == 0


def _fault(server):
    return server.refuse()


# Each kind of call, made to a child stopped by SIGSTOP: (what it runs, its label).
STOPPED_CALLS = {
    "start": (lambda s: s.start, "TestTCPServer.start()"),
    "attribute": (lambda s: lambda: s.connections, "TestTCPServer.connections"),
    "wait": (lambda s: functools.partial(s.wait_connections, 1, 0.01),
             r"TestTCPServer.wait_connections()"),
    "fault": (lambda s: s.refuse, "TestTCPServer.refuse()"),
    "method": (lambda s: s.clear_records, "TestTCPServer.clear_records()"),
    # More than a pipe holds: the parent's write is what waits.
    "set": (lambda s: functools.partial(setattr, s, "poll_interval", b"x" * 300000),
            "setting TestTCPServer.poll_interval"),
    "stand-in": (lambda s: _fault(s).undo, "Fault.undo()"),
    "stand-in attribute": (lambda s: lambda f=_fault(s): f.name, "Fault.name"),
}


def _killed_after_its_dump(returncode):
    """Tell whether the stuck child died of the SIGTERM that made it dump
    its threads.  faulthandler walks every thread's frames inside the
    signal handler while the other threads, woken by SIGCONT, run: that
    walk is not safe, and on 3.13 it sometimes ends the child with SIGSEGV
    after the dump (twice in nine loaded 3.13 runs).  The child is dead and
    the call carries its traceback either way, which is what is promised."""
    return returncode in (-signal.SIGTERM, -signal.SIGSEGV)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP (POSIX)")
@pytest.mark.parametrize("call", sorted(STOPPED_CALLS))
def test_every_call_to_a_stopped_child_has_a_deadline(call, monkeypatch):
    prepare, label = STOPPED_CALLS[call]
    server = testservers.TestTCPServer.in_process(None, stream_echo)
    if call != "start":
        server.start()
    run = prepare(server)
    pid = server.process.pid
    # On code without deadlines the call would wait forever: wake the child
    # after TIMEOUT, so that the test fails instead.
    resume = threading.Timer(TIMEOUT, os.kill, (pid, signal.SIGCONT))
    os.kill(pid, signal.SIGSTOP)
    resume.start()
    try:
        with monkeypatch.context() as m:
            m.setattr(testservers._process, "CALL_TIMEOUT", SHORT)
            with pytest.raises(TimeoutError) as info:
                run()
    finally:
        resume.cancel()
        resume.join()
        server.stop()
    message = str(info.value)
    assert message.startswith("%s got no answer from its child process (pid %d)"
                              % (label, pid)), message
    assert "most recent call first" in message      # SIGCONT let it say where it was
    assert _killed_after_its_dump(server.process.returncode)
    with pytest.raises(RuntimeError, match="was killed when %s got no answer"
                       % re.escape(label)):
        server.errors


@pytest.mark.parametrize("how", ["positional", "keyword", "default"])
def test_a_wait_longer_than_the_call_deadline_is_not_cut(how, monkeypatch):
    # A call waits CALL_TIMEOUT s longer than its own timeout: a wait that
    # lasts three times CALL_TIMEOUT, within its own timeout, returns.
    server = testservers.TestTCPServer.in_process(None, stream_echo)
    try:
        wait_for = server.wait_for
        monkeypatch.setattr(testservers._process, "CALL_TIMEOUT", SHORT)
        predicate = functools.partial(past, time.monotonic() + 3 * SHORT)
        if how == "positional":
            assert wait_for(predicate, TIMEOUT) is True
        elif how == "keyword":
            assert wait_for(predicate, timeout=TIMEOUT) is True
        else:       # None: WAIT_TIMEOUT
            assert wait_for(predicate) is True
        monkeypatch.undo()
    finally:
        server.stop()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP (POSIX)")
def test_stop_of_a_stopped_child_kills_it_after_its_grace(monkeypatch):
    server = testservers.TestTCPServer.in_process(None, stream_echo).start()
    pid = server.process.pid
    resume = threading.Timer(TIMEOUT, os.kill, (pid, signal.SIGCONT))
    os.kill(pid, signal.SIGSTOP)
    resume.start()
    try:
        with monkeypatch.context() as m:
            m.setattr(testservers._process, "EXIT_GRACE", SHORT)
            with pytest.raises(TimeoutError, match=r"^TestTCPServer\.stop\(\) got no answer "
                               r"from its child process \(pid %d\)" % pid):
                server.stop(0.01)
    finally:
        resume.cancel()
        resume.join()
    assert server.process.returncode is not None and not server.ready.is_set()
    server.stop()       # quiet: nothing is left to end


# -- the state a restarted child takes over (issue 11) ----------------------------

def test_smtp_scripts_and_transcripts_survive_stop_and_restart():
    server = testservers.TestSMTPServer.in_process(None, smtp_echo)

    def rcpt():
        client = server.smtp_client(TIMEOUT)
        try:
            client.ehlo()
            client.mail("a@example.org")
            return client.rcpt("b@example.org")[0]
        finally:
            client.quit()

    try:
        server.answer("RCPT", "451 4.3.0 Try again", times=2)
        server.start()
        assert rcpt() == 451
        first = server.transcript()
        assert "S: 451 4.3.0 Try again" in first
        server.restart()
        assert server.transcript() == first         # the new child has it
        assert rcpt() == 451                        # the script's second time
        assert rcpt() == 250                        # and it is used up
        ids = [c.id for c in server.wait_connections(3, TIMEOUT, closed=True)]
        assert ids == [1, 2, 3]                     # ids go on counting
        assert server.transcript(1) == first
    finally:
        server.stop()
    assert server.transcript(3)[-1].startswith("S: 221")     # the final copy


def test_http_expectations_survive_restart():
    server = testservers.TestHTTPServer.in_process(tls=True)
    try:
        exp = server.expect("GET", "/hello", body="hi", times=2)
        server.start()
        assert HTTP.get(server, "/hello") == (200, b"hi")
        server.restart()
        assert HTTP.get(server, "/hello") == (200, b"hi")
        assert exp.count == 2
        server.check_expectations()
    finally:
        server.stop()
    assert [r.path for r in server.requests] == ["/hello", "/hello"]


def test_restart_in_a_private_directory_makes_it_again():
    server = testservers.TestUnixStreamServer.in_process(None, stream_echo)
    row = ROWS["TestUnixStreamServer"][0]
    path = server.server_address
    try:
        server.start()
        row.roundtrip(server, 1)
        server.stop()
        assert not os.path.exists(os.path.dirname(path))    # removed by the child
        server.start()
        assert server.server_address == path
        row.roundtrip(server, 2)
    finally:
        server.stop()
    assert not os.path.exists(os.path.dirname(path))


# -- no back doors: public names between the modules, and of the stdlib ----------

PACKAGE_DIR = os.path.dirname(testservers.__file__)


def _tree(module):
    with open(os.path.join(PACKAGE_DIR, module + ".py")) as f:
        return ast.parse(f.read())


def test_base_does_not_import_process_mode():
    for node in ast.walk(_tree("_base")):
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("_process", "_processwire"), ast.dump(node)


def test_process_mode_uses_only_the_public_names_of_base_and_the_stdlib():
    from testservers._base import _BaseServer
    server = testservers.TestTCPServer()
    server.stop()
    # The private names a server has: its class's and its instance's.
    private = {name for cls in type(server).__mro__ for name in vars(cls)
               if name.startswith("_") and not name.startswith("__")}
    private |= {name for name in vars(server) if name.startswith("_")}
    allowed = {"_export_state", "_restore_state"}
    assert allowed <= set(vars(_BaseServer))
    stdlib = {"sys", "os", "subprocess", "pickle", "signal", "socket", "select", "io",
              "struct", "threading", "tempfile", "inspect", "faulthandler", "time"}
    for module in ("_process", "_processwire"):
        tree = _tree(module)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "_base":
                assert all(not a.name.startswith("_") for a in node.names), ast.dump(node)
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in stdlib:
                # os._exit is public (documented), whatever its name says.
                assert not node.attr.startswith("_") or (node.value.id, node.attr) == (
                    "os", "_exit"), "%s: %s.%s" % (module, node.value.id, node.attr)
            elif node.attr in private:
                assert node.attr in allowed, "%s uses %s of the server (line %d)" % (
                    module, node.attr, node.lineno)


def test_child_runs_under_the_parents_interpreter_options(tmp_path):
    # The options of this run (-X dev -W error, as the suite runs) and more
    # in a fresh interpreter: the child sees the same sys.flags and filters.
    options = ["-O", "-B", "-b", "-I", "-X", "dev", "-X", "utf8",
               "-W", "error::UserWarning", "-W", "ignore::ImportWarning"]
    if sys.version_info >= (3, 10):
        options += ["-X", "warn_default_encoding"]
    if sys.version_info >= (3, 11):
        options += ["-P", "-X", "int_max_str_digits=5000"]
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    script = (
        "import sys\n"
        "sys.path[:0] = [%r, %r]\n"
        "import test_process, testservers\n"
        "server = testservers.TestTCPServer.in_process()\n"
        "try:\n"
        "    here = test_process.interpreter_settings()\n"
        "    there = server.wait_for(test_process.interpreter_settings, %r)\n"
        "finally:\n"
        "    server.stop()\n"
        "print(here == there)\n"
        "print(here)\n"
        "print(there)\n" % (os.path.dirname(PACKAGE_DIR), tests_dir, TIMEOUT))
    for argv in ([], options):
        result = subprocess.run([sys.executable] + argv + ["-c", script], cwd=str(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=SLOW)
        out = result.stdout.decode()
        assert result.returncode == 0, result.stderr.decode()
        assert out.startswith("True\n"), out


def test_interpreter_flags_of_this_run():
    flags = testservers._process._interpreter_flags()
    assert ("-X" in flags and "dev" in flags) == bool(sys.flags.dev_mode)
    assert [f for f in flags if f.startswith("-W")] == [
        "-W" + o for o in sys.warnoptions if not (o == "default" and sys.flags.dev_mode)]


def test_a_server_that_takes_state_over_keeps_one_condition():
    # The state a restarted child takes over brings a record store of its
    # own; the server's parts (its loop and its connections) must lock and
    # notify the condition that store's waiters wait on.
    from testservers._processwire import _Registry, _dump_state, _load_state
    old = testservers.TestTCPServer()
    old.stop()
    state = _dump_state(old, _Registry())
    new, _ = _load_state(testservers.TestTCPServer, (), {}, state, bind=False)
    assert new._store is not old._store
    assert new._loop._cond is new._cond and new._conns._cond is new._cond
    assert new._conns._lock is new._cond.lock
