"""The leak guard of conftest.py, run on tests that leak (issue 10).

The guard looks twice, and collects garbage, only when a test looks leaky;
it must catch as much as it did when it collected after every test.
"""

import pathlib

CONFTEST = pathlib.Path(__file__).with_name("conftest.py").read_text()

LEAKY_TESTS = '''
import gc
import os
import socket
import threading


def test_clean():
    pass


def test_thread_just_exiting():
    go = threading.Event()
    thread = threading.Thread(target=go.wait, name="exiting-thread")
    thread.start()
    go.set()        # it ends a moment after the test does: not a leak


def test_thread():
    threading.Thread(target=threading.Event().wait, name="leaked-thread",
                     daemon=True).start()


def test_fd():
    os.open(os.devnull, os.O_RDONLY)


def test_socket_only_the_collector_closes():
    gc.disable()    # only the guard's collection may find it
    box = [socket.socket()]
    box.append(box)
'''


def test_guard_catches_a_thread_an_fd_and_a_socket_in_garbage(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                           "-W", "error", "-q")
    # Every test passes; the guard fails three of them at teardown.
    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines_random([
        "*test_thread leaked threads left running: leaked-thread*",
        "*test_fd leaked file descriptors left open: * -> /dev/null*",
        "*test_socket_only_the_collector_closes leaked closed only by the garbage "
        "collector: unclosed <socket.socket*",
    ])
    result.stdout.no_fnmatch_line("*exiting-thread*")
