"""Measure throughput under concurrency for each protocol, beside the stdlib.

Sixteen client threads work at once against one server, on loopback:

* TCP: connections per second, each connect, one line echoed, close;
* UDP: datagrams per second received, 16 senders sending back to back
  (with the datagrams lost, if any: a thread per datagram falls behind);
* HTTP: keep-alive requests per second, each client one
  :class:`http.client.HTTPConnection`;
* SMTP: messages per second, each client one :class:`smtplib.SMTP` session.

The stdlib contenders: :class:`socketserver.ThreadingTCPServer` and
:class:`~socketserver.ThreadingUDPServer` as they come and with
``request_queue_size = 128`` (the reference for TCP; UDP has no listen
queue), and :class:`http.server.ThreadingHTTPServer` with an HTTP/1.1
Content-Length handler and ``TCP_NODELAY``.  The stdlib has no SMTP server
since 3.12; CPython's ``test.test_logging.TestSMTPServer`` (smtpd and
asyncore) is the reference when it imports.  The ratio column divides by
the reference row of each protocol.  Clients and server share one
process, as in a test suite.  Rounds are interleaved, each figure is a
median; every measurement stops after N operations per client or a time
cap.  Stdlib only, loopback only.

    python benchmarks/bench_load.py [--quick] [--rounds N] [--clients N]
"""

import argparse
import http.client
import http.server
import os
import platform
import smtplib
import socket
import socketserver
import statistics
import sys
import threading
import time
import warnings

from _common import Threaded, import_test_logging

import testservers  # noqa: E402

test_logging = import_test_logging("TestSMTPServer")

HOST = "127.0.0.1"
TIMEOUT = 30.0
MAIL = (b"From: bench@example.org\r\nTo: sink@example.org\r\nSubject: load\r\n\r\n"
        + b"A line of a log message, about as long as they come.\r\n" * 8)


# -- servers: each has start(), stop() and port -------------------------------------

def tcp_echo(request):
    request.wfile.write(request.rfile.readline())


class StdlibTCPHandler(socketserver.StreamRequestHandler):
    def handle(self):
        tcp_echo(self)


class Counter:
    """Count what a handler saw, and when the last one came; ``done`` is
    set when the count reaches ``expected``."""

    def __init__(self, expected):
        self.expected, self.count, self.last = expected, 0, None
        self.lock, self.done = threading.Lock(), threading.Event()

    def add(self):
        with self.lock:
            self.count += 1
            self.last = time.perf_counter()
            if self.count >= self.expected:
                self.done.set()


class StdlibUDPHandler(socketserver.DatagramRequestHandler):
    def handle(self):
        self.server.counter.add()


def http_answer(request):
    request.send_response(200)
    request.send_header("Content-Length", "2")
    request.end_headers()
    request.wfile.write(b"ok")


class StdlibHTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    do_GET = http_answer

    def log_message(self, format, *args):
        pass


def Stdlib(cls, handler, queue=None, counter=None):
    """A socketserver server behind start()/stop()."""
    if queue is not None:
        cls = type(cls.__name__, (cls,), {"request_queue_size": queue})
    server = cls((HOST, 0), handler, bind_and_activate=True)
    server.counter = counter
    return Threaded(server)


class TestLoggingSMTP:
    def __init__(self, counter):
        self.server = test_logging.TestSMTPServer(
            (HOST, 0), lambda *args: counter.add(), 0.001, {})
        self.port = self.server.port

    def start(self):
        self.server.start()         # it has no ready event; it serves once started
        return self

    def stop(self):
        self.server.stop()


# -- clients ---------------------------------------------------------------------------

def run_clients(clients, work, count, cap):
    """Run ``work(i, session, count, deadline)`` on *clients* threads released
    together; return (operations done, the time they were released).

    ``work.open()``, if there is one, opens each client's session first,
    one after another: what is measured is the traffic on open sessions
    (a listen backlog of 5, as smtpd has, fails a burst of 16 connects).
    """
    opener = getattr(work, "open", lambda: None)
    sessions = [opener() for _ in range(clients)]
    done, errors = [0] * clients, []
    gate = threading.Barrier(clients + 1)

    def run(i):
        try:
            gate.wait(TIMEOUT)
            done[i] = work(i, sessions[i], count, time.perf_counter() + cap)
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    gate.wait(TIMEOUT)
    started = time.perf_counter()
    for t in threads:
        t.join(cap + TIMEOUT)
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise RuntimeError("clients still running after the cap")
    return sum(done), started


def tcp_work(port):
    def work(i, session, count, deadline):
        n = 0
        while n < count and time.perf_counter() < deadline:
            with socket.create_connection((HOST, port), TIMEOUT) as c:
                c.sendall(b"ping %d\n" % i)
                if c.recv(100) != b"ping %d\n" % i:
                    raise AssertionError("bad echo")
            n += 1
        return n
    return work


def http_work(port):
    def open():
        conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
        conn.connect()
        return conn

    def work(i, conn, count, deadline):
        n = 0
        try:
            while n < count and time.perf_counter() < deadline:
                conn.request("GET", "/")
                if conn.getresponse().read() != b"ok":
                    raise AssertionError("bad response")
                n += 1
        finally:
            conn.close()
        return n
    work.open = open
    return work


def smtp_work(port):
    def open():
        c = smtplib.SMTP(HOST, port, local_hostname="localhost", timeout=TIMEOUT)
        c.ehlo()
        return c

    def work(i, c, count, deadline):
        n = 0
        with c:
            while n < count and time.perf_counter() < deadline:
                c.sendmail("bench@example.org", ["sink@example.org"], MAIL)
                n += 1
        return n
    work.open = open
    return work


def udp_work(port):
    def work(i, session, count, deadline):
        n = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            while n < count and time.perf_counter() < deadline:
                c.sendto(b"%d %d" % (i, n), (HOST, port))
                n += 1
        return n
    return work


# -- measurements ---------------------------------------------------------------------

def measure(protocol, make, clients, count, cap):
    """Return (operations per second, operations lost) for one server."""
    counter = Counter(float("inf"))
    server = make(counter).start()
    work_for = WORK[protocol]
    try:
        if protocol != "UDP":
            run_clients(clients, work_for(server.port), 3, cap)     # warm up
            counter.count = 0
        done, started = run_clients(clients, work_for(server.port), count, cap)
        if protocol == "UDP":
            # Until every datagram arrived, or none did for 0.5 s: the rest is lost.
            counter.expected = done
            last = -1
            while counter.count < done and counter.count != last:
                last = counter.count
                counter.done.wait(0.5)
            got, ended = counter.count, counter.last
        else:
            got, ended = done, time.perf_counter()
    finally:
        server.stop()
    if protocol == "SMTP" and counter.count != done:
        raise AssertionError("%d of %d messages arrived" % (counter.count, done))
    return got / (ended - started), (done - got, done)


WORK = {"TCP": tcp_work, "UDP": udp_work, "HTTP": http_work, "SMTP": smtp_work}


def _ours(cls, handler):
    def make(counter):
        server = cls((HOST, 0), handler(counter))
        server.max_records = 10 ** 7        # a long run keeps every record
        return server
    return make


def _stdlib(cls, handler, queue=None):
    return lambda counter: Stdlib(cls, handler, queue, counter)


TCP_REFERENCE = "stdlib ThreadingTCPServer, backlog 128"
CONTENDERS = [      # (protocol, name, make, is the reference)
    ("TCP", "TestTCPServer", _ours(testservers.TestTCPServer, lambda c: tcp_echo), False),
    ("TCP", TCP_REFERENCE, _stdlib(socketserver.ThreadingTCPServer, StdlibTCPHandler, 128),
     True),
    ("TCP", "stdlib ThreadingTCPServer, as it comes",
     _stdlib(socketserver.ThreadingTCPServer, StdlibTCPHandler), False),
    ("UDP", "TestUDPServer", _ours(testservers.TestUDPServer, lambda c: lambda r: c.add()),
     False),
    ("UDP", "stdlib ThreadingUDPServer", _stdlib(socketserver.ThreadingUDPServer,
                                                 StdlibUDPHandler), True),
    ("HTTP", "TestHTTPServer", _ours(testservers.TestHTTPServer, lambda c: http_answer),
     False),
    ("HTTP", "stdlib ThreadingHTTPServer, TCP_NODELAY",
     _stdlib(http.server.ThreadingHTTPServer, StdlibHTTPHandler), True),
    ("SMTP", "TestSMTPServer", _ours(testservers.TestSMTPServer,
                                     lambda c: lambda *args: c.add()), False),
]
if test_logging is not None:
    CONTENDERS.append(("SMTP", "test_logging TestSMTPServer (smtpd)", TestLoggingSMTP, True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round, fewer operations (about 20 s)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    counts = ({"TCP": 50, "UDP": 500, "HTTP": 200, "SMTP": 50} if args.quick else
              {"TCP": 200, "UDP": 2000, "HTTP": 1000, "SMTP": 200})
    cap = 2.0 if args.quick else 5.0       # seconds per measurement, at most
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for _ in range(rounds):
            for protocol, name, make, _ in CONTENDERS:
                results.setdefault(name, []).append(
                    measure(protocol, make, args.clients, counts[protocol], cap))
    print("Python %s on %s, %d cores; %d concurrent clients; %d round(s), up to "
          "%s operations per client (or %.0f s); medians"
          % (platform.python_version(), platform.machine(), os.cpu_count() or 0,
             args.clients, rounds, ", ".join("%s %d" % kv for kv in counts.items()), cap))
    header = "%-5s %-42s %14s %6s  %s" % ("", "server", "per second", "ratio",
                                          "lost (median of rounds)")
    print(header)
    print("-" * len(header))
    for protocol in WORK:
        rows = [(name, ref) for p, name, _, ref in CONTENDERS if p == protocol]
        refs = [statistics.median(r[0] for r in results[name]) for name, ref in rows if ref]
        for name, _ in rows:
            rate = statistics.median(r[0] for r in results[name])
            lost, sent = sorted(r[1] for r in results[name])[len(results[name]) // 2]
            unit = {"TCP": "conn", "UDP": "dgram", "HTTP": "req", "SMTP": "msg"}[protocol]
            print("%-5s %-42s %9.0f %-4s %6s  %s" % (
                protocol, name, rate, unit, "%.2f" % (rate / refs[0]) if refs else "-",
                "%d of %d" % (lost, sent) if protocol == "UDP" else ""))
    if test_logging is None:
        print("(test.test_logging's TestSMTPServer is not importable here: no SMTP reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
