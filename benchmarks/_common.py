"""What the benchmarks share: this checkout's package on sys.path, CPython's
test_logging helpers when the interpreter has its test package, and a
socketserver server run on a thread behind the start()/stop() of the others.
"""

import os
import sys
import threading
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def import_test_logging(need="TestTCPServer"):
    """Return ``test.test_logging``, or None if it (or *need* in it) is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # smtpd, asyncore
            import test.test_logging as module
        getattr(module, need)
    except Exception:           # no test package in this Python build
        return None
    return module


class Threaded:
    """A socketserver server served on a thread, with start() and stop();
    *poll* is its serve_forever() poll_interval."""

    def __init__(self, server, poll=0.05):
        server.daemon_threads = True
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, args=(poll,))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
