"""Time TestSMTPServer beside CPython's test_logging TestSMTPServer, in one run.

It measures

* msgs/s: messages per second through one smtplib connection, N sendmail()
  calls in a row (each is MAIL, RCPT, DATA and the message: four round
  trips, as smtplib does not pipeline), the handler recording every
  message; for testservers also over implicit TLS (SMTPS) and STARTTLS;
* cycle: construct + start + stop, in ms, at poll_interval 0.5 and 0.001
  (test_logging's own SMTPHandlerTest uses 0.001).

test_logging's helper is built on smtpd and asyncore (test.support's copies
from 3.12 on); it is used when ``test.test_logging`` imports.  Rounds are
interleaved across the contenders, each figure is the median of its
samples, and "x ref" is the ratio to test_logging's helper (for msgs/s,
above 1 is faster; for cycle, below 1 is).  Stdlib only; loopback only;
every loop is bounded in count and in time.

    python benchmarks/bench_smtp.py [--quick] [--rounds N] [--messages N]
"""

import argparse
import os
import smtplib
import statistics
import sys
import time
import warnings

from _common import import_test_logging

import testservers  # noqa: E402

test_logging = import_test_logging("TestSMTPServer")

HOST = "127.0.0.1"
BODY = (b"From: bench@example.org\r\nTo: sink@example.org\r\nSubject: bench\r\n\r\n"
        + b"A line of a log message, about as long as they come.\r\n" * 8)
POLLS = [0.5, 0.001]


def make_ours(poll, handler, transport="plain"):
    options = {"tls": True} if transport == "smtps" else (
        {"starttls": True} if transport == "starttls" else {})
    return testservers.TestSMTPServer((HOST, 0), handler, poll, **options)


def make_theirs(poll, handler, transport="plain"):
    return test_logging.TestSMTPServer((HOST, 0), handler, poll, {})


def client(server, transport):
    if transport == "smtps":
        return smtplib.SMTP_SSL(HOST, server.port, local_hostname="localhost", timeout=30,
                                context=testservers.client_ssl_context())
    c = smtplib.SMTP(HOST, server.port, local_hostname="localhost", timeout=30)
    if transport == "starttls":
        c.starttls(context=testservers.client_ssl_context())
    return c


def throughput(make, transport, count):
    received = []
    server = make(0.001, lambda *args: received.append(args), transport)
    server.start()
    try:
        c = client(server, transport)
        c.ehlo()
        started = time.perf_counter()
        for _ in range(count):
            c.sendmail("bench@example.org", ["sink@example.org"], BODY)
        elapsed = time.perf_counter() - started
        c.quit()
    finally:
        server.stop()
    if len(received) != count:
        raise RuntimeError("%d of %d messages arrived" % (len(received), count))
    return count / elapsed


def cycle(make, poll):
    started = time.perf_counter()
    server = make(poll, None)
    server.start()
    server.stop()
    return (time.perf_counter() - started) * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 200 messages")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--budget", type=float, default=120.0,
                        help="stop starting rounds after this many seconds")
    args = parser.parse_args(argv)
    rounds, count = (2, 200) if args.quick else (args.rounds, args.messages)
    rates = [("testservers", "plain", make_ours), ("testservers", "smtps", make_ours),
             ("testservers", "starttls", make_ours)]
    cycles = [("testservers", make_ours)]
    if test_logging is not None:
        rates.append(("test_logging", "plain", make_theirs))
        cycles.append(("test_logging", make_theirs))
    samples = {}
    deadline = time.monotonic() + args.budget
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for r in range(rounds):
            if r >= 1 and time.monotonic() > deadline:
                break
            for name, transport, make in rates:
                if r == 0:
                    throughput(make, transport, min(count, 50))        # warm-up
                samples.setdefault((name, transport), []).append(
                    throughput(make, transport, count))
            for name, make in cycles:
                for poll in POLLS:
                    samples.setdefault((name, poll), []).append(cycle(make, poll))
    done = len(samples[("testservers", "plain")])
    print("Python %s, %d cores, %d rounds of %d messages" % (
        sys.version.split()[0], os.cpu_count() or 0, done, count))
    ref = samples.get(("test_logging", "plain"))
    print("%-13s %-9s %10s %8s" % ("server", "transport", "msgs/s", "x ref"))
    for name, transport, _ in rates:
        value = statistics.median(samples[(name, transport)])
        ratio = value / statistics.median(ref) if ref else float("nan")
        print("%-13s %-9s %10.0f %8.2f" % (name, transport, value, ratio))
    print()
    print("%-13s %6s %10s %8s" % ("server", "poll", "cycle ms", "x ref"))
    for name, _ in cycles:
        for poll in POLLS:
            value = statistics.median(samples[(name, poll)])
            ref = samples.get(("test_logging", poll))
            ratio = value / statistics.median(ref) if ref else float("nan")
            print("%-13s %6s %10.3f %8.3f" % (name, poll, value, ratio))
    if test_logging is None:
        print("(test.test_logging's TestSMTPServer is not importable here: no reference rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
