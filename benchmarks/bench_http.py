"""Measure HTTP requests per second beside the stdlib and test_logging, in one run.

Each server answers ``GET /`` with ``200``, ``Content-Length: 2`` and ``ok``.
Two figures per server, from :mod:`http.client` on loopback:

* keep-alive: N requests on one connection (a server that closes after
  every response, as test_logging's HTTP/1.0 helper does, makes the
  client reconnect each time, so this is then a new-connection figure);
* new-connection: N times connect, request, read, close.

The contenders: :class:`testservers.TestHTTPServer` with a handler, and
answering from an expectation; :class:`http.server.ThreadingHTTPServer`
with an HTTP/1.1 handler, as it comes (Nagle on: each keep-alive response
waits for the client's delayed ACK) and with ``disable_nagle_algorithm``;
and ``test.test_logging.TestHTTPServer`` when the Python has its test
package.  The ratio columns divide by the stdlib row with TCP_NODELAY, the
fair reference.  Rounds are interleaved so drift hits every contender
alike, and each figure is the median of its rounds.  Stdlib only, loopback
only; every measurement stops after N requests or a time cap.

    python benchmarks/bench_http.py [--quick] [--rounds N]
"""

import argparse
import http.client
import http.server
import os
import platform
import statistics
import sys
import time

from _common import Threaded, import_test_logging

import testservers  # noqa: E402

test_logging = import_test_logging("TestHTTPServer")

BODY = b"ok"
REFERENCE = "stdlib ThreadingHTTPServer, TCP_NODELAY"


def answer(request):
    request.send_response(200)
    request.send_header("Content-Length", str(len(BODY)))
    request.end_headers()
    request.wfile.write(BODY)


class StdlibHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    do_GET = answer

    def log_message(self, format, *args):
        pass


class StdlibNoDelayHandler(StdlibHandler):
    disable_nagle_algorithm = True


def Stdlib(handler_class):
    """ThreadingHTTPServer behind the start()/stop() the others have."""
    return Threaded(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class))


class TestLogging:
    def __init__(self):
        self.server = test_logging.TestHTTPServer(("127.0.0.1", 0), answer, 0.05)
        self.port = self.server.server_port

    def start(self):
        self.server.start()
        self.server.ready.wait()
        return self

    def stop(self):
        self.server.stop()
        self.server.server_close()


def ours_canned():
    server = testservers.TestHTTPServer(("127.0.0.1", 0))
    server.expect("GET", "/", body=BODY)
    return server


CONTENDERS = [
    ("TestHTTPServer, handler", lambda: testservers.TestHTTPServer(("127.0.0.1", 0), answer)),
    ("TestHTTPServer, expect()", ours_canned),
    (REFERENCE, lambda: Stdlib(StdlibNoDelayHandler)),
    ("stdlib ThreadingHTTPServer, as it comes", lambda: Stdlib(StdlibHandler)),
]
if test_logging is not None:
    CONTENDERS.append(("test_logging TestHTTPServer (HTTP/1.0)", TestLogging))


def keep_alive(port, count, cap):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done, started = 0, time.perf_counter()
    try:
        while done < count and time.perf_counter() - started < cap:
            conn.request("GET", "/")
            response = conn.getresponse()
            if response.read() != BODY:
                raise AssertionError("bad response %r" % response.status)
            done += 1
    finally:
        conn.close()
    return done / (time.perf_counter() - started)


def new_connection(port, count, cap):
    done, started = 0, time.perf_counter()
    while done < count and time.perf_counter() - started < cap:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/")
            if conn.getresponse().read() != BODY:
                raise AssertionError("bad response")
        finally:
            conn.close()
        done += 1
    return done / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    count_ka, count_new = (300, 100) if args.quick else (3000, 1000)
    cap = 1.0 if args.quick else 3.0       # seconds per measurement, at most
    results = {name: ([], []) for name, _ in CONTENDERS}
    for _ in range(rounds):
        for name, make in CONTENDERS:
            server = make().start()
            try:
                keep_alive(server.port, 20, cap)        # warm up
                results[name][0].append(keep_alive(server.port, count_ka, cap))
                results[name][1].append(new_connection(server.port, count_new, cap))
            finally:
                server.stop()
    print("Python %s on %s, %d CPUs; %d round(s), up to %d keep-alive and %d "
          "new-connection requests (or %.0f s) each; medians"
          % (platform.python_version(), platform.machine(), os.cpu_count() or 0,
             rounds, count_ka, count_new, cap))
    ref_ka, ref_new = (statistics.median(v) for v in results[REFERENCE])
    header = "%-42s %12s %6s %12s %6s" % ("server", "keep-alive/s", "ratio",
                                         "new-conn/s", "ratio")
    print(header)
    print("-" * len(header))
    for name, _ in CONTENDERS:
        ka, new = (statistics.median(v) for v in results[name])
        print("%-42s %12.0f %6.2f %12.0f %6.2f" % (name, ka, ka / ref_ka, new, new / ref_new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
