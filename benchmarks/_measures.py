"""One trial of each measure, for one server row.

Every trial builds a fresh server from the row's ``make(counter)``, warms
it up, does a bounded amount of work (a count, and a cap in seconds), stops
the server and returns ``{"value": ..., "cpu": ...}``: ``value`` per
second of wall time (or a time in ms, or a count), ``cpu`` per second of
this process's CPU time (client and server threads together: pinned to one
CPU, that is what a request costs).  Loopback only.
"""

import gc
import http.client
import json
import os
import random
import smtplib
import socket
import subprocess
import sys
import threading
import time

from _peers import BODY, HOST, Counter

import testservers  # noqa: E402

TIMEOUT = 30.0
MAIL = (b"From: bench@example.org\r\nTo: sink@example.org\r\nSubject: bench\r\n\r\n"
        + b"A line of a log message, about as long as they come.\r\n" * 8)


def _clock():
    return time.perf_counter(), time.process_time()


def _rates(done, start, end):
    wall, cpu = end[0] - start[0], end[1] - start[1]
    return {"value": done / wall if wall > 0 else None,
            "cpu": done / cpu if cpu > 0 else None}


# -- HTTP --------------------------------------------------------------------------

def http_keep_alive(count, cap):
    """N ``GET /`` on one http.client connection; extra = TCP connections used."""
    def trial(make):
        server = make(Counter()).start()
        conn = http.client.HTTPConnection(HOST, server.port, timeout=TIMEOUT)
        try:
            for _ in range(20):                 # warm up
                conn.request("GET", "/")
                conn.getresponse().read()
            done, socks, last = 0, 0, None
            start = _clock()
            while done < count and time.perf_counter() - start[0] < cap:
                conn.request("GET", "/")
                if conn.sock is not last:       # http.client reconnected silently
                    socks, last = socks + 1, conn.sock
                if conn.getresponse().read() != BODY:
                    raise AssertionError("bad response")
                done += 1
            result = _rates(done, start, _clock())
        finally:
            conn.close()
            server.stop()
        result["extra"] = socks
        return result
    return trial


def http_new_connection(count, cap):
    """N times: connect, ``GET /`` with ``Connection: close``, read, close."""
    def one(port):
        conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            if conn.getresponse().read() != BODY:
                raise AssertionError("bad response")
        finally:
            conn.close()

    def trial(make):
        server = make(Counter()).start()
        try:
            for _ in range(10):
                one(server.port)
            done, start = 0, _clock()
            while done < count and time.perf_counter() - start[0] < cap:
                one(server.port)
                done += 1
            return _rates(done, start, _clock())
        finally:
            server.stop()
    return trial


# -- SMTP --------------------------------------------------------------------------

def smtp_session(count, cap):
    """One smtplib connection, N sendmail() (MAIL, RCPT, DATA: 4 round trips);
    over implicit TLS or STARTTLS when the row's ``make.transport`` says so."""
    def client(port, transport):
        if transport == "smtps":
            return smtplib.SMTP_SSL(HOST, port, local_hostname="localhost", timeout=TIMEOUT,
                                    context=testservers.client_ssl_context())
        c = smtplib.SMTP(HOST, port, local_hostname="localhost", timeout=TIMEOUT)
        if transport == "starttls":
            c.starttls(context=testservers.client_ssl_context())
        return c

    def trial(make):
        counter = Counter()
        server = make(counter).start()
        try:
            c = client(server.port, getattr(make, "transport", "plain"))
            c.ehlo()
            for _ in range(10):
                c.sendmail("bench@example.org", ["sink@example.org"], MAIL)
            done, start = 0, _clock()
            while done < count and time.perf_counter() - start[0] < cap:
                c.sendmail("bench@example.org", ["sink@example.org"], MAIL)
                done += 1
            end = _clock()
            c.quit()
            counter.wait_for(done + 10, TIMEOUT)
        finally:
            server.stop()
        if counter.count != done + 10:
            raise AssertionError("%d of %d messages arrived" % (counter.count, done + 10))
        return _rates(done, start, end)
    return trial


# -- TCP and UDP -------------------------------------------------------------------

def tcp_connections(count, cap):
    """N connections in turn, each sending 100 bytes and closing."""
    payload = b"x" * 100

    def trial(make):
        counter = Counter()
        server = make(counter).start()
        try:
            done = 0
            for _ in range(5):                  # warm up
                with socket.create_connection((HOST, server.port), TIMEOUT) as c:
                    c.sendall(payload)
                done += 1
                counter.wait_for(done, TIMEOUT)
            count0, start = done, _clock()
            while done - count0 < count and time.perf_counter() - start[0] < cap:
                with socket.create_connection((HOST, server.port), TIMEOUT) as c:
                    c.sendall(payload)
                done += 1
                # Each connection read whole before the next one: a round trip,
                # as a client that waits for its request to be handled.
                if not counter.wait_for(done, TIMEOUT):
                    break
            end = _clock()
        finally:
            server.stop()
        if counter.count != done:
            raise AssertionError("%d of %d connections read whole" % (counter.count, done))
        return _rates(done - count0, start, end)
    return trial


def udp_burst(count):
    """N 100-byte datagrams back to back from one socket; value = received."""
    def trial(make):
        counter = Counter()
        server = make(counter).start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(count):
                    s.sendto(b"%099d" % i, (HOST, server.port))
            last = -1
            while counter.count < count and counter.count != last:
                last = counter.count            # until all came, or none for 0.5 s
                counter.wait_for(count, 0.5)
        finally:
            server.stop()
        return {"value": counter.count}
    return trial


# -- lifecycle ---------------------------------------------------------------------

def cycle():
    """Construct, start, wait until it serves, stop; in ms."""
    def trial(make):
        started = time.perf_counter()
        make(Counter()).start().stop()
        return {"value": (time.perf_counter() - started) * 1000}
    return trial


def stop_latency(seed=1234):
    """stop() alone, after 50-70 ms idle (jittered: a polling loop is not
    always caught just before its next wake-up); in ms."""
    rng = random.Random(seed)

    def trial(make):
        server = make(Counter()).start()
        threading.Event().wait(rng.uniform(0.05, 0.07))
        started = time.perf_counter()
        server.stop()
        return {"value": (time.perf_counter() - started) * 1000}
    return trial


# -- in a child process: idle CPU and what 1000 cycles leave -----------------------

def child_report(make, window, cycles, budget):
    """Idle CPU of a started server, then threads and fds left by *cycles* cycles."""
    server = make(Counter()).start()
    threading.Event().wait(0.1)
    cpu = time.process_time()
    threading.Event().wait(window)
    idle_ms = (time.process_time() - cpu) * 1000
    server.stop()
    for _ in range(2):
        make(Counter()).start().stop()
    gc.collect()
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    done, started = 0, time.monotonic()
    while done < cycles and time.monotonic() - started < budget:
        make(Counter()).start().stop()
        done += 1
    gc.collect()
    threading.Event().wait(0.3)
    return {"idle_cpu_ms": idle_ms, "cycles": done,
            "threads_left": threading.active_count() - threads,
            "fds_left": len(os.listdir("/proc/self/fd")) - fds}


def in_child(script, row, window, cycles, budget):
    """Run child_report() for *row* in a fresh interpreter (inherits the pin)."""
    out = subprocess.run(
        [sys.executable, script, "--child", row, "--window", str(window),
         "--cycles", str(cycles), "--child-budget", str(budget)],
        capture_output=True, text=True, timeout=budget + window + 60)
    if out.returncode != 0:
        raise RuntimeError("child for %r failed: %s" % (row, out.stderr.strip()[-300:]))
    return json.loads(out.stdout.strip().splitlines()[-1])
