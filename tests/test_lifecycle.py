"""The lifecycle contract in thread mode, over every row of kinds.KINDS.

test_process runs the same contract over the same rows in process mode.
"""

import os
import threading
import time

import pytest

from conftest import PROMPT, SLOW, TIMEOUT
import kinds
from kinds import KINDS

every_kind = pytest.mark.parametrize("kind", KINDS, ids=repr)
# The kinds whose handlers can block in a socket read (datagram handlers run
# on the service thread with the datagram in memory), and the Unix ones.
reading_kinds = pytest.mark.parametrize(
    "kind", [k for k in KINDS if k.handler_reads_socket], ids=repr)
unix_kinds = pytest.mark.parametrize("kind", [k for k in KINDS if k.unix], ids=repr)


@pytest.fixture
def make(tmp_path):
    """Build servers from a Kind and stop whatever the test left running."""
    made = []

    def make(kind, body=None, poll_interval=0.5, **options):
        server = kind.make(body, poll_interval, tmp_path, **options)
        made.append(server)
        return server
    yield make
    for server in made:
        server.take_errors()
        server.stop()


@every_kind
def test_port_known_before_start(kind, make):
    server = make(kind)
    if kind.unix:
        assert server.port is None
        assert os.path.exists(server.server_address)
    else:
        assert isinstance(server.port, int) and server.port > 0
        assert server.server_address[1] == server.port == server.server_port
    assert not server.ready.is_set()


@every_kind
def test_ready_set_by_start_cleared_by_stop(kind, make):
    server = make(kind)
    assert server.start() is server
    assert server.ready.is_set()
    server.stop()
    assert not server.ready.is_set()


@every_kind
def test_round_trip_through_handler(kind, make):
    server = make(kind)
    server.start()
    kind.roundtrip(server)
    server.stop()


@every_kind
def test_context_manager_starts_and_stops(kind, make):
    with make(kind) as server:
        assert server.ready.is_set()
        kind.roundtrip(server)
    assert not server.ready.is_set()
    assert server.socket is None


@every_kind
def test_stop_twice(kind, make):
    server = make(kind)
    server.start()
    server.stop()
    server.stop()
    assert "stopped" in repr(server)


@every_kind
def test_stop_before_start(kind, make):
    server = make(kind)
    started = time.monotonic()
    server.stop()
    server.stop(2.0)
    assert time.monotonic() - started < PROMPT
    assert server.socket is None


@every_kind
def test_start_twice_raises(kind, make):
    server = make(kind)
    server.start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    kind.roundtrip(server)      # the first start still serves


@every_kind
def test_restart_after_stop_serves_same_port(kind, make):
    server = make(kind)
    server.start()
    address = server.server_address
    kind.roundtrip(server)          # leaves connections in TIME_WAIT
    server.stop()
    server.start()
    assert server.server_address == address
    kind.roundtrip(server)
    server.restart()
    assert server.server_address == address
    kind.roundtrip(server)


@every_kind
def test_start_after_stop_before_start(kind, make):
    server = make(kind)
    port = server.port
    server.stop()
    server.start()
    assert server.port == port
    kind.roundtrip(server)


@every_kind
@pytest.mark.parametrize("poll_interval", [SLOW, 0.5, 0.01])
def test_stop_returns_promptly_whatever_poll_interval(kind, make, poll_interval):
    server = make(kind, poll_interval=poll_interval)
    server.start()
    kind.roundtrip(server)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < PROMPT      # a polling loop: SLOW s


@reading_kinds
def test_stop_with_handler_blocked_in_read(kind, make):
    server = make(kind, poll_interval=SLOW)
    server.start()
    entered = threading.Event()
    client = kind.block_in_read(server, entered)
    try:
        assert entered.wait(TIMEOUT)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < PROMPT
    finally:
        client.close()


@every_kind
def test_stop_with_handler_stuck_elsewhere_names_thread(kind, make):
    release = threading.Event()
    entered = threading.Event()

    def body(request):
        entered.set()
        release.wait(SLOW)

    server = make(kind, body)
    server.start()
    client = kind.trigger(server)
    try:
        assert entered.wait(TIMEOUT)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            server.stop(0.2)
        assert time.monotonic() - started < PROMPT     # not SLOW: it gave up
        message = str(info.value)
        assert type(server).__name__ in message
        assert "body() at" in message and __file__ in message
    finally:
        release.set()
        client.close()
    server.stop()               # the thread ended: this stop cleans up
    assert not server.ready.is_set()


@every_kind
def test_handler_exception_reraised_by_stop(kind, make):
    entered = threading.Event()

    def body(request):
        entered.set()
        assert 1 + 1 == 3, "the handler saw something wrong"

    server = make(kind, body)
    server.start()
    client = kind.trigger(server)
    try:
        assert entered.wait(TIMEOUT)
        with pytest.raises(AssertionError, match="the handler saw something wrong") as info:
            server.stop()
    finally:
        client.close()
    assert any(type(server).__name__ in note
               for note in getattr(info.value, "__notes__", ()))
    assert len(server.errors) == 1
    server.stop()               # raised once: a second stop is quiet


@every_kind
def test_handler_error_wakes_waiter_at_once(kind, make):
    def body(request):
        raise ValueError("boom")

    server = make(kind, body)
    server.start()
    client = kind.trigger(server)
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match="boom"):
            server.wait_for(lambda: False, timeout=SLOW, what="never")
        assert time.monotonic() - started < PROMPT     # not at the end of SLOW
    finally:
        client.close()
    assert [type(e) for e in server.take_errors()] == [ValueError]
    server.stop()               # taken: nothing to raise


@every_kind
def test_no_thread_or_fd_left_after_stop(kind, make):
    threads = set(threading.enumerate())
    fds = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    server = make(kind)
    server.start()
    kind.roundtrip(server)
    client = kind.trigger(server)       # one connection still open at stop()
    server.stop()
    client.close()
    assert set(threading.enumerate()) <= threads
    if fds is not None:
        assert set(os.listdir("/proc/self/fd")) <= fds


@unix_kinds
def test_unix_path_removed(kind, make):
    server = make(kind)
    path = server.server_address
    server.start()
    assert os.path.exists(path)
    server.stop()
    assert not os.path.exists(path)


@unix_kinds
def test_unix_default_path_in_private_directory(kind):
    server = kind.cls(None, kind.handler(None), **kind.options)
    path = server.server_address
    directory = os.path.dirname(path)
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o700)
    with server:
        kind.roundtrip(server)
    assert not os.path.exists(directory)


@every_kind
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_idle_server_does_not_poll(kind, make):
    server = make(kind, poll_interval=0.001)
    server.start()
    status = "/proc/self/task/%d/status" % server._thread.native_id

    def switches():
        with open(status) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    return int(line.split()[1])

    # A loop that polls every poll_interval (1 ms) would wake ~100 times in
    # this window; blocked in its selector, the service thread never does.
    before = switches()
    threading.Event().wait(0.1)     # sleep-ok: the idle window is what is measured
    assert switches() - before <= 2
    server.stop()


@every_kind
def test_bind_error_raised_in_caller(kind, make):
    server = make(kind)
    address = server.server_address if kind.unix else ("127.0.0.1", server.port)
    with pytest.raises(OSError):
        kind.cls(address, None)


@every_kind
def test_pytest_does_not_collect_servers(kind):
    assert kind.cls.__test__ is False


def test_every_public_server_class_has_a_row():
    assert kinds.SERVER_CLASSES, "no server class found in testservers.__all__"
    assert kinds.MISSING == [], "add rows for these classes to tests/kinds.py"


def test_the_table_has_the_tls_rows():
    # The swap of the plain socket for the TLS one is where races hide.
    secure = {(k.cls.__name__, k.secure) for k in KINDS if k.secure}
    assert secure >= {("TestTCPServer", "implicit"), ("TestHTTPServer", "implicit"),
                      ("TestSMTPServer", "implicit"), ("TestSMTPServer", "starttls")}
