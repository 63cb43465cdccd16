"""Time the server lifecycle beside CPython's test_logging helpers, in one run.

For TCP and UDP servers at poll_interval 0.5 and 0.01 it measures

* cycle: construct + start + ready.wait() + stop (+ close), in ms;
* stop:  stop() alone, after the server has idled 50-70 ms (jittered, so a
  polling loop is not always caught just before its next wake-up).

Rounds are interleaved across the contenders, so drift on a noisy machine
hits all of them alike, and each figure is the median of its samples; the
last column is the ratio to test_logging's helper at the same
poll_interval (below 1 is faster).  Stdlib only; loopback only; every loop
is bounded in count and in time.

    python benchmarks/bench_lifecycle.py [--quick] [--rounds N]
"""

import argparse
import os
import random
import statistics
import sys
import threading
import time

from _common import import_test_logging

import testservers  # noqa: E402

test_logging = import_test_logging()

KINDS = ["tcp", "udp"]
POLLS = [0.5, 0.01]


def noop(request):
    pass


def make_ours(kind, poll):
    cls = {"tcp": testservers.TestTCPServer, "udp": testservers.TestUDPServer}[kind]
    return cls(("127.0.0.1", 0), noop, poll)


def make_theirs(kind, poll):
    cls = {"tcp": test_logging.TestTCPServer, "udp": test_logging.TestUDPServer}[kind]
    return cls(("127.0.0.1", 0), noop, poll)


def close(server):
    if hasattr(server, "server_close"):
        server.server_close()


def cycle(make, kind, poll):
    started = time.perf_counter()
    server = make(kind, poll)
    server.start()
    server.ready.wait()
    server.stop()
    close(server)
    return (time.perf_counter() - started) * 1000


def stop_latency(make, kind, poll, rng):
    server = make(kind, poll)
    server.start()
    server.ready.wait()
    threading.Event().wait(rng.uniform(0.05, 0.07))     # idle, jittered
    started = time.perf_counter()
    server.stop()
    elapsed = (time.perf_counter() - started) * 1000
    close(server)
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--budget", type=float, default=120.0,
                        help="stop starting rounds after this many seconds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    rng = random.Random(1234)
    contenders = [("testservers", make_ours)]
    if test_logging is not None:
        contenders.append(("test_logging", make_theirs))
    samples = {}
    deadline = time.monotonic() + args.budget
    for r in range(rounds):
        if r >= 2 and time.monotonic() > deadline:
            break
        for kind in KINDS:
            for poll in POLLS:
                for name, make in contenders:
                    key = (name, kind, poll)
                    if r == 0:
                        cycle(make, kind, poll)          # warm-up
                    samples.setdefault(key + ("cycle",), []).append(cycle(make, kind, poll))
                    samples.setdefault(key + ("stop",), []).append(
                        stop_latency(make, kind, poll, rng))
    print("Python %s, %d cores, %d rounds" % (
        sys.version.split()[0], os.cpu_count() or 0, len(samples[("testservers", "tcp", 0.5, "cycle")])))
    print("%-13s %-4s %5s %12s %10s %12s %10s" % (
        "server", "kind", "poll", "cycle ms", "x ref", "stop ms", "x ref"))
    for kind in KINDS:
        for poll in POLLS:
            for name, _ in contenders:
                row = []
                for op in ("cycle", "stop"):
                    value = statistics.median(samples[(name, kind, poll, op)])
                    ref = samples.get(("test_logging", kind, poll, op))
                    ratio = value / statistics.median(ref) if ref else float("nan")
                    row += [value, ratio]
                print("%-13s %-4s %5s %12.3f %10.3f %12.3f %10.3f" % (
                    (name, kind, poll) + tuple(row)))
    if test_logging is None:
        print("(test.test_logging is not importable here: no reference rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
