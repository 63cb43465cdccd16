"""Process mode (issue 5): every server class run in a child process.

The handlers are module-level functions, so they pickle by name and the
child imports this module to run them.  Each child costs a new interpreter,
so the contract for a class runs as one test over three children: the one
the constructor starts, the one start() after stop() starts, and the one
restart() starts.
"""

import functools
import importlib.util
import itertools
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

import testservers
import testservers._process
from conftest import TIMEOUT

HAS_UNIX = hasattr(socket, "AF_UNIX")
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"

# "Promptly" (issue 10: it must hold on a machine whose cores are all
# busy): a stop() that does its own work, a child's exit included, ends well
# within TIMEOUT even there; one that waited for the poll_interval would
# wait SLOW s, three times as long.
PROMPT = TIMEOUT
SLOW = 3 * TIMEOUT


# -- handlers: they run in the child ------------------------------------------

def stream_echo(request):
    line = request.rfile.readline()
    if line == b"fail\n":
        raise AssertionError("the handler saw fail")
    request.wfile.write(b"echo " + line)


def datagram_echo(request):
    if request.packet == b"fail":
        raise AssertionError("the handler saw fail")
    request.wfile.write(b"echo " + request.packet)


def http_echo(request):
    if request.path == "/fail":
        raise AssertionError("the handler saw fail")
    body = b"echo " + request.path.encode("ascii")
    request.send_response(200)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def smtp_echo(peer, mailfrom, rcpttos, data):
    if "fail" in data:
        raise AssertionError("the handler saw fail")
    return "250 2.0.0 echo " + data.rpartition("\n")[2]


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


# -- one row per server class: how a client talks to it --------------------------

class Stream:
    handler = staticmethod(stream_echo)
    records = "connections"
    records_per_fail = 1

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path

    def connect(self, server, kind=socket.SOCK_STREAM):
        if server.family == getattr(socket, "AF_UNIX", None):
            sock = socket.socket(socket.AF_UNIX, kind)
        else:
            sock = socket.socket(server.family, kind)
        sock.settimeout(TIMEOUT)
        sock.connect(server.server_address)
        return sock

    def roundtrip(self, server, n):
        """Talk to the server once; check the n-th record came back."""
        with self.connect(server) as sock:
            sock.sendall(b"ping\n")
            assert sock.makefile("rb").readline() == b"echo ping\n"
        conns = server.wait_connections(n, TIMEOUT, closed=True)
        assert [c.data for c in conns] == [b"ping\n"] * n

    def fail(self, server):
        with self.connect(server) as sock:
            sock.sendall(b"fail\n")
            assert sock.recv(100) == b""        # the handler raised


class Datagram(Stream):
    handler = staticmethod(datagram_echo)
    records = "datagrams"
    records_per_fail = 2
    names = itertools.count()

    def connect(self, server, kind=socket.SOCK_DGRAM):
        if server.family != getattr(socket, "AF_UNIX", None):
            return super().connect(server, kind)
        # A Unix datagram client binds a name of its own to get replies.
        sock = socket.socket(socket.AF_UNIX, kind)
        sock.settimeout(TIMEOUT)
        sock.bind(str(self.tmp_path / ("client%d" % next(self.names))))
        sock.connect(server.server_address)
        return sock

    def roundtrip(self, server, n):
        with self.connect(server) as sock:
            sock.send(b"ping")
            assert sock.recv(100) == b"echo ping"
        assert [d.data for d in server.wait_datagrams(n, TIMEOUT)] == [b"ping"] * n

    def fail(self, server):
        with self.connect(server) as sock:
            sock.send(b"fail")
            sock.send(b"ping")
            # Handled in order: the reply to "ping" means "fail" was handled.
            # (wait_datagrams() would raise the handler's error itself.)
            assert sock.recv(100) == b"echo ping"


class HTTP(Stream):
    handler = staticmethod(http_echo)
    records = "requests"

    def get(self, server, path):
        conn = server.http_connection(TIMEOUT)      # a client helper: runs here
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def roundtrip(self, server, n):
        assert self.get(server, "/ping") == (200, b"echo /ping")
        assert [r.path for r in server.wait_requests(n, TIMEOUT)] == ["/ping"] * n

    def fail(self, server):
        assert self.get(server, "/fail")[0] == 500


class _UnixSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(host)
        return sock


class SMTP(Stream):
    handler = staticmethod(smtp_echo)
    records = "messages"

    def client(self, server):
        if server.port is None:
            client = _UnixSMTP(local_hostname="localhost", timeout=TIMEOUT)
            client.connect(server.server_address)
            return client
        return server.smtp_client(TIMEOUT)          # a client helper: runs here

    def send(self, server, text):
        client = self.client(server)
        try:
            client.sendmail("a@example.org", ["b@example.org"],
                            "Subject: %s\r\n\r\n%s" % (text, text))
        finally:
            client.quit()

    def roundtrip(self, server, n):
        self.send(server, "ping")
        messages = server.wait_messages(n, TIMEOUT)
        assert [m.reply for m in messages] == ["250 2.0.0 echo ping"] * n

    def fail(self, server):
        with pytest.raises(smtplib.SMTPDataError):
            self.send(server, "fail")


def _row(cls):
    for name, row in (("TestHTTPServer", HTTP), ("TestSMTPServer", SMTP)):
        base = getattr(testservers, name, None)
        if base is not None and issubclass(cls, base):
            return row
    return Datagram if cls.socket_type == socket.SOCK_DGRAM else Stream


# Every server class the package exports, so new ones join by themselves.
SERVER_CLASSES = [
    obj for obj in (getattr(testservers, name) for name in testservers.__all__)
    if isinstance(obj, type) and hasattr(obj, "in_process")
    and (HAS_UNIX or not obj.unix_only)]


@pytest.fixture
def make(tmp_path):
    """Build servers in process mode; stop what a failing test left."""
    made = []

    def make(cls, handler=None, poll_interval=0.5, **options):
        address = str(tmp_path / "s.sock") if cls.unix_only else ("127.0.0.1", 0)
        server = cls.in_process(address, handler, poll_interval, **options)
        made.append(server)
        return server
    yield make
    for server in made:
        if server.process.returncode is None:
            server.take_errors()
        server.stop()


def _fds():
    return set(os.listdir(FD_DIR))


@pytest.mark.parametrize("cls", SERVER_CLASSES, ids=lambda cls: cls.__name__)
def test_lifecycle_contract(cls, make, tmp_path):
    row = _row(cls)(tmp_path)
    threads, fds = set(threading.enumerate()), _fds()

    # 1. The constructor binds (in the child): the port is known here.
    server = make(cls, row.handler, poll_interval=SLOW)
    address = server.server_address
    if cls.unix_only:
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
    row.roundtrip(server, 1)        # records come back; TIME_WAIT left behind

    # 3. restart() serves on the same address and carries the records over.
    first_child = server.process
    server.restart()
    assert server.process is not first_child and first_child.returncode == 0
    assert server.server_address == address
    row.roundtrip(server, 2)

    # 4. A handler error is raised by stop(), promptly at poll_interval=SLOW,
    #    with the traceback from the child in a note.
    row.fail(server)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="the handler saw fail") as info:
        server.stop()
    assert time.monotonic() - started < PROMPT
    notes = getattr(info.value, "__notes__", [])
    assert any(cls.__name__ in note for note in notes)
    assert any("in the child process" in note and row.handler.__name__ in note
               for note in notes)
    assert not server.ready.is_set()
    assert [type(e) for e in server.errors] == [AssertionError]
    assert len(getattr(server, row.records)) == 2 + row.records_per_fail

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
        row = Stream(None)
        port = server.port
        with server.refuse() as fault:
            assert fault.name == "refuse"
            assert "Fault refuse" in repr(fault)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), TIMEOUT)
        row.roundtrip(server, 1)            # accepting again, on the same port
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
    assert HTTP(None).get(server, "/hello") == (200, b"hi")
    assert [r.path for r in exp.wait(1, TIMEOUT)] == ["/hello"]
    server.stop()
    assert exp.count == 1 and server.requests[0].path == "/hello"   # the final copy
    server.start()
    assert HTTP(None).get(server, "/hello") == (200, b"hi")
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
        assert server.process.returncode == -signal.SIGTERM
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
        Stream(None).roundtrip(server, 1)
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
    assert server.process.returncode == -signal.SIGTERM
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
