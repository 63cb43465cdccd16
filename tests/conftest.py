"""Shared fixtures: the leak guard that every test runs under, and a logger."""

import gc
import logging
import os
import sys
import threading
import time
import warnings

import pytest

#: The one generous timeout of the suite: it only costs time when a test fails.
TIMEOUT = 10.0

#: "Promptly" (issue 10: these bounds must hold on a machine whose cores are
#: all busy).  A stop() that does only its own work ends in milliseconds even
#: there; one that waits for something it should not (a poll, a thread
#: blocked in a read, a handler, a timeout) waits SLOW s at least, as each
#: test makes that something last.  A bound of PROMPT tells the two apart,
#: three times over, without racing the scheduler.
PROMPT = TIMEOUT
SLOW = 3 * TIMEOUT

#: How long the leak guard waits, in all, for the threads a test leaves
#: running to finish (one that has done its work may still be on its last
#: lines when the test returns).  It only costs time when a test leaks.
THREAD_GRACE = 1.0

_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def _open_fds():
    fds = {}
    for name in os.listdir(_FD_DIR):
        try:
            fds[int(name)] = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            pass        # the descriptor listdir itself used, now closed
    return fds


def _leaks(threads_before, fds_before):
    """Return the threads alive and the descriptors open that were not before."""
    threads = [t for t in threading.enumerate()
               if t not in threads_before and t.is_alive()]
    fds = {fd: target for fd, target in _open_fds().items()
           if fds_before.get(fd) != target}
    return threads, fds


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail a test that leaves a thread or a file descriptor behind.

    Most tests leave nothing, and pass after two listings.  Only when one
    looks leaky does the guard let its threads finish exiting (a bounded
    join) and run the garbage collector, which closes an unreferenced
    socket in a reference cycle, and then look again: a socket closed only
    by the collector fails the test too, named by its ResourceWarning.
    (Collecting after every test cost a quarter of the suite's time.)
    """
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    yield
    threads, fds = _leaks(threads_before, fds_before)
    if not threads and not fds:
        return
    deadline = time.monotonic() + THREAD_GRACE
    for thread in threads:
        try:
            thread.join(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, AssertionError):
            pass        # a thread threading did not start cannot be joined
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    threads, fds = _leaks(threads_before, fds_before)
    problems = []
    for warning in caught:
        if issubclass(warning.category, ResourceWarning):
            problems.append("closed only by the garbage collector: %s" % warning.message)
        else:       # not the guard's business: on its way as if not caught
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
    if threads:
        problems.append("threads left running: %s" % ", ".join(t.name for t in threads))
    if fds:
        problems.append("file descriptors left open: %s" % ", ".join(
            "%d -> %s" % item for item in sorted(fds.items())))
    if problems:
        pytest.fail("%s leaked %s" % (request.node.nodeid, "; ".join(problems)),
                    pytrace=False)


@pytest.fixture
def server():
    """A started TestHTTPServer with no handler (canned responses)."""
    import testservers
    server = testservers.TestHTTPServer().start()
    yield server
    server.stop()


def http_call(server, method, target, body=None, headers=None):
    """Make one request with http.client; return (status, body)."""
    conn = server.http_connection(TIMEOUT)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def logger(request):
    """A logger of its own that propagates nowhere; its handlers closed after."""
    log = logging.getLogger("testservers.tests." + request.node.name)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


# Warnings are errors (setup.cfg, and python -W error in README's command),
# except while pytest configures its plugins: there another installed
# plugin's warning about its own configuration (pytest-asyncio's unset
# option) would be an INTERNALERROR before any test ran.  This conftest's
# pytest_configure runs before the other plugins' (it is registered last and
# tryfirst), and the filters are back to strict before the session starts.
_configuring = warnings.catch_warnings()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _configuring.__enter__()
    warnings.simplefilter("default")     # shown, not raised


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _configuring.__exit__(None, None, None)


def pytest_report_header(config):
    return "testservers under Python %s" % sys.version.split()[0]


pytest_plugins = ["pytester"]
