"""Run every benchmark of testservers in one go; the docs quote this run.

    python3 benchmarks/run_all.py [--pin CPU] [--trials N] [--quick]
                                  [--only KEY,...] [--json OUT] [--md OUT]
                                  [--update-docs] [--render-docs JSON]

It measures, beside the standard library's own servers and CPython's
test_logging helpers (when this interpreter has its ``test`` package; the
SMTP one needs smtpd, so Python 3.11 or older), and beside
pytest-httpserver, pytest-localserver and aiosmtpd when they can be
imported (a missing one is skipped with a line; they are never
dependencies: install them in a throw-away virtual environment and run
this script with that environment's interpreter, ``PYTHONPATH`` set to
this checkout):

* ``http_new``: HTTP requests per second, a new connection per request;
* ``http_keepalive``: HTTP requests per second on one connection;
* ``smtp``: messages per second through one smtplib connection;
* ``tcp_new``: TCP connections per second, each sending 100 bytes;
* ``udp_burst_500``, ``udp_burst_10000``: datagrams of a burst received;
* ``cycle`` and ``stop``: construct-start-stop, and stop() alone, in ms;
* ``idle``: CPU used by a started, idle server in 2 s, and the threads and
  descriptors left after 1000 construct-start-stop cycles (each row in a
  fresh interpreter);
* ``load_tcp``, ``load_udp``, ``load_http``, ``load_smtp``: 16 clients at
  once (``benchmarks/bench_load.py``);
* ``upload``: the peak memory of a server taking a 512 MiB upload, framed
  by Content-Length and then chunked (``benchmarks/bench_upload.py``;
  ``--upload-mib`` sets the size, 0 skips it; the disk needs that much
  free).

Each figure is given as min, median and max over the trials, with its
ratio to the measure's reference row from the same run; throughput also
per second of process CPU time (client and server together).  ``--pin
CPU`` pins the whole process, client and server threads alike, to one
CPU: on a machine with few cores, unpinned trials flip between same-CPU
and cross-CPU wake-ups, and a ratio of pinned CPU time is what compares
the cost of two servers.  Without ``--pin`` the trials default to 11.
Every loop is bounded in count and in time; a watchdog ends the run after
``--deadline`` seconds.  Loopback only.

``--update-docs`` writes the results to ``benchmarks/results.json`` and
rewrites the figures in README.rst and Doc/ from them; ``--render-docs
JSON`` only rewrites the docs from a results file.
"""

import argparse
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _figures  # noqa: E402
import _harness  # noqa: E402
from _harness import Measure, log  # noqa: E402

RESULTS = os.path.join(HERE, "results.json")


def rows(skipped):
    """Return {name: (kind, make)} for every server this interpreter can run."""
    import _peers as p
    out = {}
    for kind, label in (("http", "HTTP"), ("smtp", "SMTP"), ("tcp", "TCP"), ("udp", "UDP")):
        out["Test%sServer" % label] = (kind, p.ours(kind))
    out["TestSMTPServer, SMTPS"] = ("smtp", p.ours("smtp", tls=True))
    out["TestSMTPServer, STARTTLS"] = ("smtp", p.ours("smtp", starttls=True))
    for kind, label in (("http", "HTTP"), ("smtp", "SMTP"), ("tcp", "TCP"), ("udp", "UDP")):
        name = "test_logging Test%sServer" % label
        make = p.test_logging_row(kind)
        if make is None:
            skipped[name] = ("not importable: this Python has no test package"
                             if kind != "smtp" or sys.version_info < (3, 12)
                             else "needs smtpd, which Python 3.12 removed")
        else:
            out[name] = (kind, make)
    out["ThreadingHTTPServer+TCP_NODELAY"] = ("http", p.stdlib("http", nodelay=True))
    out["ThreadingHTTPServer"] = ("http", p.stdlib("http", nodelay=False))
    out["ThreadingTCPServer"] = ("tcp", p.stdlib("tcp"))
    out["ThreadingUDPServer"] = ("udp", p.stdlib("udp"))
    for name, kind, build in (
            ("pytest-httpserver", "http", p.pytest_httpserver_row),
            ("pytest-localserver", "http", lambda: p.pytest_localserver_row("http")),
            ("pytest-localserver SMTP", "smtp", lambda: p.pytest_localserver_row("smtp")),
            ("aiosmtpd", "smtp", p.aiosmtpd_row)):
        make = p.optional(name, build, skipped)
        if make is not None:
            out[name] = (kind, make)
    return out


def first(available, *names):
    return next((n for n in names if n in available), None)


def measures(args, available, skipped):
    import _measures as m
    quick = args.quick
    n = (lambda full, small: small if quick else full)
    cap = 0.5 if quick else 2.0
    trials = args.trials

    def pick(*names):
        present = [(x, available[x][1]) for x in names if x in available]
        return present

    http_rows = ["TestHTTPServer", "test_logging TestHTTPServer",
                 "ThreadingHTTPServer+TCP_NODELAY", "ThreadingHTTPServer",
                 "pytest-httpserver", "pytest-localserver"]
    smtp_rows = ["TestSMTPServer", "TestSMTPServer, SMTPS", "TestSMTPServer, STARTTLS",
                 "test_logging TestSMTPServer", "aiosmtpd", "pytest-localserver SMTP"]
    tcp_rows = ["TestTCPServer", "test_logging TestTCPServer", "ThreadingTCPServer"]
    udp_rows = ["TestUDPServer", "test_logging TestUDPServer", "ThreadingUDPServer"]
    life_rows = ["TestTCPServer", "TestUDPServer", "TestHTTPServer", "TestSMTPServer",
                 "test_logging TestTCPServer", "test_logging TestUDPServer",
                 "test_logging TestHTTPServer", "test_logging TestSMTPServer",
                 "ThreadingTCPServer", "ThreadingHTTPServer", "pytest-httpserver",
                 "pytest-localserver", "aiosmtpd", "pytest-localserver SMTP"]
    idle_rows = ["TestTCPServer", "TestUDPServer", "TestHTTPServer", "TestSMTPServer",
                 "test_logging TestTCPServer", "ThreadingHTTPServer",
                 "pytest-httpserver", "aiosmtpd"]
    life_ref = first(available, "aiosmtpd", "test_logging TestTCPServer")
    out = [
        Measure("http_new", "HTTP, a new connection per request", "requests/s", True,
                first(available, "test_logging TestHTTPServer", "ThreadingHTTPServer+TCP_NODELAY"),
                pick(*http_rows), m.http_new_connection(n(400, 50), cap), trials, 120,
                "Each request: connect, GET / with Connection: close, read 2 bytes, close."),
        Measure("http_keepalive", "HTTP keep-alive, one connection", "requests/s", True,
                "ThreadingHTTPServer+TCP_NODELAY", pick(*http_rows),
                m.http_keep_alive(n(2000, 200), cap), trials, 120,
                "GET / on one http.client connection; a server that closes each "
                "connection makes the client reconnect.", "TCP connections used"),
        Measure("smtp", "SMTP, one connection", "messages/s", True,
                first(available, "test_logging TestSMTPServer", "aiosmtpd"), pick(*smtp_rows),
                m.smtp_session(n(500, 50), cap), trials, 120,
                "smtplib sendmail() of a 500-byte message, each MAIL, RCPT, DATA."),
        Measure("tcp_new", "TCP, a new connection each", "connections/s", True,
                "ThreadingTCPServer", pick(*tcp_rows), m.tcp_connections(n(400, 50), cap),
                trials, 90, "Connect, send 100 bytes, close; the handler reads them."),
        Measure("udp_burst_500", "UDP, a burst of 500 datagrams", "datagrams received", True,
                "ThreadingUDPServer", pick(*udp_rows), m.udp_burst(500), trials, 60,
                "100-byte datagrams sent back to back from one socket in this process."),
        Measure("udp_burst_10000", "UDP, a burst of 10,000 datagrams", "datagrams received",
                True, "ThreadingUDPServer", pick(*udp_rows), m.udp_burst(10000), trials, 60),
        Measure("cycle", "Construct, start, stop", "ms", False, life_ref, pick(*life_rows),
                m.cycle(), trials, 120, "Every server at poll_interval 0.5 (the peers' "
                "default; Werkzeug and aiosmtpd have no such knob)."),
        Measure("stop", "stop() after 50-70 ms idle", "ms", False, life_ref, pick(*life_rows),
                m.stop_latency(), trials, 120),
    ]
    script = os.path.abspath(__file__)
    idle = Measure("idle", "Idle CPU in 2 s, and leaks after cycles", "ms of CPU", False,
                   None, [(x, x) for x in idle_rows if x in available],
                   lambda row: _idle_trial(m, script, row, quick), 1, 300,
                   "Each row in a fresh interpreter: CPU time used by a started server "
                   "left idle for 2 s; then threads and descriptors left after up to 1000 "
                   "construct-start-stop cycles (at most 5 s of them).", "threads left")
    out.append(idle)
    if not args.no_load:
        out += load_measures(args)
    wanted = {"http": http_rows, "smtp": smtp_rows, "tcp": tcp_rows, "udp": udp_rows,
              "cycle": life_rows, "stop": life_rows, "idle": idle_rows}
    for measure in out:
        names = wanted.get(measure.key.split("_")[0], [])
        measure.skipped = {x: skipped[x] for x in names if x in skipped}
    if args.only:
        keys = args.only.split(",")
        out = [x for x in out if any(x.key == k or x.key.startswith(k) for k in keys)]
    return out


def _idle_trial(m, script, row, quick):
    report = m.in_child(script, row, 0.3 if quick else 2.0, 20 if quick else 1000,
                        1.0 if quick else 5.0)
    return {"value": report["idle_cpu_ms"], "extra": report["threads_left"],
            "report": report}


def load_measures(args):
    import bench_load
    counts = ({"TCP": 20, "UDP": 200, "HTTP": 50, "SMTP": 20} if args.quick else
              {"TCP": 100, "UDP": 500, "HTTP": 300, "SMTP": 60})
    units = {"TCP": "connections/s", "UDP": "datagrams/s", "HTTP": "requests/s",
             "SMTP": "messages/s"}
    out = []
    for protocol in ("TCP", "UDP", "HTTP", "SMTP"):
        contenders = [(name, make) for p, name, make, _ in bench_load.CONTENDERS if p == protocol]
        refs = [name for p, name, _, ref in bench_load.CONTENDERS if p == protocol and ref]

        def trial(make, protocol=protocol):
            rate, (lost, sent) = bench_load.measure(
                protocol, make, args.clients, counts[protocol], 0.5 if args.quick else 3.0)
            return {"value": rate, "extra": lost}
        out.append(Measure(
            "load_" + protocol.lower(), "%s, %d clients at once" % (protocol, args.clients),
            units[protocol], True, refs[0] if refs else None, contenders, trial,
            min(args.trials, 3), 90,
            "Up to %d operations per client." % counts[protocol], "lost"))
    return out


GOALS = [   # (text, measure, row, reference row, comparison, target)
    ("HTTP new connection ≥ 1.1 × test_logging's helper", "http_new", "TestHTTPServer",
     "test_logging TestHTTPServer", ">=", 1.1),
    ("HTTP keep-alive ≥ 0.95 × ThreadingHTTPServer+TCP_NODELAY", "http_keepalive",
     "TestHTTPServer", "ThreadingHTTPServer+TCP_NODELAY", ">=", 0.95),
    ("HTTP keep-alive ≥ 3 × pytest-httpserver", "http_keepalive", "TestHTTPServer",
     "pytest-httpserver", ">=", 3.0),
    ("SMTP ≥ 1.2 × test_logging's helper", "smtp", "TestSMTPServer",
     "test_logging TestSMTPServer", ">=", 1.2),
    ("SMTP ≥ 2.5 × aiosmtpd", "smtp", "TestSMTPServer", "aiosmtpd", ">=", 2.5),
] + [("%s %s ≤ aiosmtpd's" % (cls, op), op, cls, "aiosmtpd", "<=", 1.0)
     for op in ("cycle", "stop")
     for cls in ("TestTCPServer", "TestUDPServer", "TestHTTPServer", "TestSMTPServer")]


def goals(results):
    """Return each goal's ratio: CPU time when pinned (throughput), else wall."""
    basis = "cpu" if results["meta"]["pinned_cpu"] is not None else "wall"
    out = []
    for text, key, row, ref, op, target in GOALS:
        measure = results["measures"].get(key)
        value = None
        if measure and row in measure["rows"] and ref in measure["rows"]:
            b = basis if measure["rows"][row]["cpu"]["n"] else "wall"
            mine, theirs = (measure["rows"][x][b]["median"] for x in (row, ref))
            if mine is not None and theirs:
                value = mine / theirs
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        out.append({"goal": text, "ratio": value, "met": met})
    idle = results["measures"].get("idle")
    if idle:
        for cls in ("TestTCPServer", "TestUDPServer", "TestHTTPServer", "TestSMTPServer"):
            row = idle["rows"].get(cls)
            if row and row["trials"] and "report" in row["trials"][0]:
                r = row["trials"][0]["report"]
                out.append({"goal": "%s: no thread or fd left after %d cycles"
                            % (cls, r["cycles"]), "ratio": None,
                            "met": r["threads_left"] == 0 and r["fds_left"] <= 0})
                out.append({"goal": "%s: idle CPU %.2f ms in 2 s" % (cls, r["idle_cpu_ms"]),
                            "ratio": None, "met": r["idle_cpu_ms"] < 2.0})
    upload = results.get("upload")
    if upload:
        peak = upload["peak_kib"] / 1024.0
        out.append({"goal": "two %d MiB uploads: server peak RSS %.1f MiB < 64 MiB"
                    % (upload["size_mib"], peak), "ratio": None, "met": peak < 64})
    return basis, out


def child(args):
    """Run one row's idle and leak report; print it as one JSON line."""
    import json
    import _measures
    kind, make = rows({})[args.child]
    print(json.dumps(_measures.child_report(make, args.window, args.cycles, args.child_budget)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pin", type=int, default=None, metavar="CPU",
                        help="run the whole process (client and server threads) on CPU")
    parser.add_argument("--trials", type=int, default=None,
                        help="trials per row (default 5 pinned, 11 unpinned, 1 quick)")
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run")
    parser.add_argument("--only", default="", help="comma-separated measure keys (prefixes)")
    parser.add_argument("--no-load", action="store_true", help="skip the 16-client measures")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--upload-mib", type=int, default=None, metavar="MIB",
                        help="size of each upload of the upload measure "
                             "(default 512, quick 16; 0 skips it)")
    parser.add_argument("--json", metavar="OUT", help="write every sample to OUT")
    parser.add_argument("--md", metavar="OUT", help="write the markdown report to OUT")
    parser.add_argument("--update-docs", action="store_true",
                        help="write benchmarks/results.json and the figures in the docs")
    parser.add_argument("--render-docs", metavar="JSON",
                        help="only rewrite the docs' figures from a results file")
    parser.add_argument("--deadline", type=float, default=1500.0,
                        help="end the run after this many seconds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--cycles", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--child-budget", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.render_docs:
        changed = _figures.update_docs(_figures.load(args.render_docs))
        log("rewrote: %s" % (", ".join(changed) or "nothing"))
        return 0
    if args.pin is not None:
        _harness.pin(args.pin)
    if args.trials is None:
        args.trials = 1 if args.quick else (5 if args.pin is not None else 11)
    watchdog = threading.Timer(args.deadline, _expired, (args.deadline,))
    watchdog.daemon = True
    watchdog.start()

    import _peers
    skipped = {}
    available = rows(skipped)
    skipped_lines = ["%s: skipped, %s" % kv for kv in skipped.items()]
    for line in skipped_lines:
        log(line)
    # The command as anyone would type it here: the settings that shape the
    # run, not where this run's files went.
    command = "python3 benchmarks/run_all.py" + "".join(
        " " + flag for flag, on in (
            ("--pin %s" % args.pin, args.pin is not None), ("--trials %d" % args.trials, True),
            ("--quick", args.quick), ("--only " + args.only, args.only),
            ("--no-load", args.no_load), ("--clients %d" % args.clients, args.clients != 16),
            ("--upload-mib %s" % args.upload_mib, args.upload_mib is not None),
            ("--update-docs", args.update_docs)) if on)
    results = {"meta": _harness.describe(args.pin, args.trials, command.strip(),
                                         _peers.versions()),
               "skipped_peers": skipped_lines, "measures": {}}
    for measure in measures(args, available, skipped):
        log("%s: %d rows x %d trials" % (measure.key, len(measure.rows), measure.trials))
        results["measures"][measure.key] = measure.run(log)
    upload_mib = args.upload_mib if args.upload_mib is not None else (16 if args.quick else 512)
    if upload_mib and (not args.only or "upload" in args.only.split(",")):
        import bench_upload
        log("upload: two uploads of %d MiB" % upload_mib)
        results["upload"] = bench_upload.measure(upload_mib)
    results["meta"]["loadavg_end"] = _harness.loadavg()
    results["goals_basis"], results["goals"] = goals(results)
    report = _harness.markdown(results)
    print(report)
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write(report + "\n")
    if args.json:
        _harness.write_json(args.json, results)
    if args.update_docs:
        _harness.write_json(RESULTS, results)
        changed = _figures.update_docs(results)
        log("wrote %s; rewrote: %s" % (RESULTS, ", ".join(changed) or "nothing"))
    watchdog.cancel()
    return 0


def _expired(seconds):
    log("run_all: deadline of %.0f s passed; ending the run" % seconds)
    os._exit(2)


if __name__ == "__main__":
    sys.exit(main())
