"""The figures README.rst and Doc/ quote, rendered from one results file.

Each page holds its figures between two reST comments::

    .. benchmark figures: NAME

    (generated tables)

    .. end of benchmark figures

``update_docs(results)`` rewrites what lies between them from the results
of one run of ``run_all.py``; ``tests/test_benchmark_figures.py`` checks
that the pages hold exactly what ``benchmarks/results.json`` renders to,
and quote no measured figure outside these blocks.  Stdlib only: the test
imports this module without running any benchmark.
"""

import json
import os
import re
import textwrap

from _harness import ROOT, fmt

BEGIN = ".. benchmark figures: "
END = ".. end of benchmark figures"
BLOCK = re.compile(r"^\.\. benchmark figures: (\w+)\n(.*?)^\.\. end of benchmark figures$",
                   re.M | re.S)

#: Which page holds which block.
PAGES = {
    "README.rst": ["readme"],
    "Doc/library/testservers.rst": ["load", "performance"],
    "Doc/library/testservers-http.rst": ["upload", "http"],
    "Doc/library/testservers-smtp.rst": ["smtp"],
}
REGENERATE = "python3 benchmarks/run_all.py --pin 0 --trials 11 --update-docs"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def table(header, rows):
    """Return a reST simple table of *header* and *rows* (lists of str)."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    line = (lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return [rule, line(header), rule] + [line(r) for r in rows] + [rule]


def wrap(text):
    return textwrap.wrap(text, 76, break_on_hyphens=False, break_long_words=False)


def provenance(meta):
    pinned = ("the whole benchmark, client and server threads, pinned to CPU %s"
              % meta["pinned_cpu"] if meta["pinned_cpu"] is not None
              else "not pinned")
    peers = ", ".join("%s %s" % kv for kv in meta["versions"].items()
                      if kv[0] != "testservers" and kv[1] != "not installed")
    return wrap("Measured on %s%s with %s %s on %s; %s; %s trials per row, interleaved, on a "
            "machine shared with other work (load average %s at the start)%s.  "
            "This command regenerates every figure on this page and the others:"
            % (meta["date"], " (commit %s)" % meta["revision"] if meta.get("revision") else "",
               meta["implementation"], meta["python"],
               meta["machine"], pinned, meta["trials"],
               meta["loadavg_start"][0] if meta["loadavg_start"] else "n/a",
               "; peers: " + peers if peers else "")) + [
        "", ".. code-block:: sh", "", "   " + REGENERATE]


def _basis(results, measure, name):
    """CPU-time figures when pinned and measured, wall-clock ones otherwise."""
    row = measure["rows"][name]
    if results["meta"]["pinned_cpu"] is not None and row["cpu"]["n"]:
        return "cpu"
    return "wall"


def _ratio_to(results, key, mine, theirs, basis=None):
    measure = results["measures"].get(key)
    if not measure or mine not in measure["rows"] or theirs not in measure["rows"]:
        return None
    b = basis or _basis(results, measure, mine)
    if not measure["rows"][mine][b]["n"]:
        return None
    a, c = measure["rows"][mine][b]["median"], measure["rows"][theirs][b]["median"]
    return a / c if a is not None and c else None


def _x(value):
    if value is None:
        return "n/a"
    if value < 0.1:
        return "%.2g×" % value
    return "%.2f×" % value if value < 10 else "%.0f×" % value


def measure_rows(results, key, names=None, cpu=True):
    """Rows of one measure: server, median, min - max, ratio (and CPU ratio)."""
    measure = results["measures"][key]
    out = []
    for name, row in measure["rows"].items():
        if names is not None and name not in names:
            continue
        w = row["wall"]
        cells = [name, fmt(w["median"]), "%s - %s" % (fmt(w["min"]), fmt(w["max"])),
                 _x(w["ratio"])]
        if cpu:
            cells.append(_x(row["cpu"]["ratio"]))
        out.append(cells)
    return out


def measure_table(results, key, unit, names=None, cpu=True):
    measure = results["measures"].get(key)
    if not measure:
        return ["(not measured in this run)"]
    header = ["Server", unit, "min - max", "ratio"] + (["CPU ratio"] if cpu else [])
    lines = table(header, measure_rows(results, key, names, cpu))
    if measure["reference"]:
        lines += [""] + wrap("Ratios are to %s, %s." % (
            measure["reference"], "higher is better" if measure["higher_is_better"]
            else "lower is better"))
    return lines


def render_readme(results):
    ms = results["measures"]
    pinned = results["meta"]["pinned_cpu"] is not None
    ours = ["TestTCPServer", "TestUDPServer", "TestHTTPServer", "TestSMTPServer"]
    lines = [  # label, measure, testservers' row, the peers
        ("HTTP, new connection, /s", "http_new", "TestHTTPServer",
         ["test_logging TestHTTPServer", "ThreadingHTTPServer+TCP_NODELAY",
          "pytest-httpserver", "pytest-localserver"]),
        ("HTTP keep-alive, /s", "http_keepalive", "TestHTTPServer",
         ["ThreadingHTTPServer+TCP_NODELAY", "ThreadingHTTPServer",
          "test_logging TestHTTPServer", "pytest-httpserver", "pytest-localserver"]),
        ("SMTP, messages/s", "smtp", "TestSMTPServer",
         ["test_logging TestSMTPServer", "aiosmtpd"]),
        ("Start and stop, ms", "cycle", "TestSMTPServer",
         ["test_logging TestSMTPServer", "ThreadingHTTPServer", "pytest-httpserver",
          "aiosmtpd"]),
        ("stop() alone, ms", "stop", "TestSMTPServer",
         ["test_logging TestSMTPServer", "ThreadingHTTPServer", "pytest-httpserver",
          "aiosmtpd"]),
        ("10,000 datagrams, received", "udp_burst_10000", "TestUDPServer",
         ["test_logging TestUDPServer", "ThreadingUDPServer"]),
    ]
    rows = []
    for label, key, mine, peers in lines:
        measure = ms.get(key, {"rows": {}})
        if mine not in measure["rows"]:
            continue
        for peer in peers:
            if peer in measure["rows"]:
                cpu = _ratio_to(results, key, mine, peer, "cpu")
                rows.append([label, fmt(measure["rows"][mine]["wall"]["median"]), peer,
                             fmt(measure["rows"][peer]["wall"]["median"]),
                             _x(_ratio_to(results, key, mine, peer, "wall")),
                             "" if cpu is None else _x(cpu)])
    text = ("Medians of one run.  The ratio divides testservers' figure by the "
            "peer's; the CPU ratio does the same with requests or messages per second "
            "of CPU time (client and server together%s), which compares what each "
            "costs, not how long it waits: the standard library's server as it comes "
            "is slow on keep-alive because it waits for the client's delayed ACK, "
            "not because it works.  " % (", pinned to one CPU" if pinned else ""))
    idle = ms.get("idle", {}).get("rows", {})
    reports = [idle[n]["trials"][0].get("report") for n in ours if n in idle]
    reports = [r for r in reports if r]
    if reports:
        text += ("A started server left idle for 2 seconds used at most %s ms of CPU, "
                 "and {:,} construct-start-stop cycles of each class left %d threads and "
                 "%d descriptors behind." % (
                     fmt(max(r["idle_cpu_ms"] for r in reports)),
                     max(r["threads_left"] for r in reports),
                     max(r["fds_left"] for r in reports))).format(
                         min(r["cycles"] for r in reports))
    return (table(["Measure", "testservers", "Beside", "its figure", "ratio", "CPU ratio"],
                  rows)
            + [""] + wrap(text))


def render_http(results):
    return (["Keep-alive, requests per second on one connection:", ""]
            + measure_table(results, "http_keepalive", "requests/s")
            + ["", "A new connection per request (``Connection: close``):", ""]
            + measure_table(results, "http_new", "requests/s"))


def render_smtp(results):
    smtp_rows = ["TestSMTPServer", "test_logging TestSMTPServer", "aiosmtpd",
                 "pytest-localserver SMTP"]
    return (["Messages per second through one connection:", ""]
            + measure_table(results, "smtp", "messages/s")
            + ["", "Construct, start and stop, in milliseconds:", ""]
            + measure_table(results, "cycle", "ms", names=smtp_rows, cpu=False))


def render_performance(results):
    lines = ["Construct, start, wait until serving, stop, in milliseconds:", ""]
    lines += measure_table(results, "cycle", "ms", cpu=False)
    lines += [""] + wrap(":meth:`~TestTCPServer.stop` alone, after 50 to 70 ms of "
                         "idling, in milliseconds:") + [""]
    lines += measure_table(results, "stop", "ms", cpu=False)
    idle = results["measures"].get("idle")
    if idle:
        rows = []
        for name, row in idle["rows"].items():
            r = row["trials"][0].get("report") if row["trials"] else None
            if r:
                rows.append([name, fmt(r["idle_cpu_ms"]), fmt(r["cycles"]),
                             str(r["threads_left"]), str(r["fds_left"])])
        lines += [""] + wrap("CPU used by a started server left idle for 2 seconds, "
                             "and what a number of construct-start-stop cycles (at "
                             "most 1,000, or 5 seconds of them) left behind, each "
                             "server in a fresh interpreter:") + [""]
        lines += table(["Server", "idle CPU ms", "cycles", "threads left", "fds left"], rows)
    lines += ["", "TCP connections per second, each sending 100 bytes:", ""]
    lines += measure_table(results, "tcp_new", "connections/s")
    rows = []
    for key, n in (("udp_burst_500", 500), ("udp_burst_10000", 10000)):
        for name, row in results["measures"].get(key, {}).get("rows", {}).items():
            w = row["wall"]
            rows.append(["{:,}".format(n), name, fmt(w["median"]),
                         "%s - %s" % (fmt(w["min"]), fmt(w["max"]))])
    lines += [""] + wrap("Datagrams received of a burst sent back to back from one "
                         "socket:") + [""]
    lines += table(["Burst", "Server", "received", "min - max"], rows)
    return lines


def render_load(results):
    rows = []
    for protocol in ("tcp", "udp", "http", "smtp"):
        measure = results["measures"].get("load_" + protocol)
        if not measure:
            continue
        for name, row in measure["rows"].items():
            w = row["wall"]
            lost = row.get("extra", {}).get("median")
            rows.append([protocol.upper(), name, fmt(w["median"]),
                         "%s - %s" % (fmt(w["min"]), fmt(w["max"])), _x(w["ratio"]),
                         fmt(lost) if protocol == "udp" else ""])
    return (table(["Protocol", "Server", "per second", "min - max", "ratio", "lost"], rows)
            + [""] + wrap("Ratios are to the standard-library reference of each "
                          "protocol (test_logging's helper for SMTP); lost is the "
                          "median of datagrams that never arrived."))


def render_upload(results):
    upload = results.get("upload")
    if not upload:
        return wrap("``benchmarks/run_all.py`` did not measure uploads in the run "
                    "these pages quote.")
    seconds = upload["seconds"]
    return wrap(
        "``benchmarks/run_all.py`` measures this with ``benchmarks/bench_upload.py``: "
        "a server in a child process, with ``max_body_size=None`` and a handler that "
        "reads ``rfile`` 64 KiB at a time, takes a %d MiB upload framed by "
        "Content-Length and then one in chunked coding over loopback (%s s and %s s).  "
        "Its peak resident set size (``VmHWM``) was %.1f MiB after both uploads, "
        "against %.1f MiB before the first.  ``python3 benchmarks/bench_upload.py`` "
        "runs this measure alone."
        % (upload["size_mib"], fmt(seconds["content-length"]), fmt(seconds["chunked"]),
           upload["peak_kib"] / 1024.0, upload["peak_before_kib"] / 1024.0))


RENDER = {"readme": render_readme, "http": render_http, "smtp": render_smtp,
          "performance": render_performance, "load": render_load, "upload": render_upload}


def render(name, results):
    """Return the text between the markers of block *name*."""
    return "\n".join([""] + RENDER[name](results) + [""] + provenance(results["meta"])
                     + ["", ""])


def blocks(text):
    """Return {name: body} for every block in *text*."""
    return {m.group(1): m.group(2) for m in BLOCK.finditer(text)}


def outside_blocks(text):
    """Return *text* without its generated blocks."""
    return BLOCK.sub("", text)


def update_docs(results, root=ROOT):
    """Rewrite every block of every page from *results*; return the pages changed."""
    changed = []
    for page in PAGES:
        path = os.path.join(root, page)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = BLOCK.sub(lambda m: "%s%s\n%s%s" % (BEGIN, m.group(1),
                                                  render(m.group(1), results), END), text)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            changed.append(page)
    return changed
