"""The measuring machinery the benchmarks share: pinning, trials, statistics,
the description of the machine, and the JSON and markdown reports.

A measure is a list of rows (one server each) run for a number of trials.
Trials are interleaved across the rows (row A, row B, ..., then A again),
so drift on a shared machine hits every row alike.  Each trial returns a
dict with ``value`` (the figure: a rate, or a time) and, where it means
something, ``cpu`` (the same figure per second of process CPU time).
"""

import datetime
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- pinning -----------------------------------------------------------------------

def pin(cpu):
    """Run every thread of this process, and every one started later, on *cpu*.

    ``os.sched_setaffinity(0, ...)`` sets the calling thread only; threads
    inherit the mask of the thread that starts them, and child processes
    that of their parent, so each existing thread is set by its id too.
    """
    if not hasattr(os, "sched_setaffinity"):
        raise RuntimeError("--pin needs os.sched_setaffinity (Linux)")
    mask = {int(cpu)}
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = []
    for tid in tids:
        try:
            os.sched_setaffinity(tid, mask)
        except OSError:         # the thread has ended since
            pass
    os.sched_setaffinity(0, mask)


# -- statistics --------------------------------------------------------------------

def summary(values):
    """Return min, median and max of *values* (None for an empty list)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": min(values), "median": statistics.median(values),
            "max": max(values), "n": len(values)}


class Measure:
    """One measure: its rows, its unit, its reference row and its samples."""

    def __init__(self, key, title, unit, higher_is_better, reference, rows,
                 trial, trials, budget, note="", extra_label=None):
        self.key, self.title, self.unit = key, title, unit
        self.higher_is_better = higher_is_better
        self.reference = reference
        self.rows = rows            # [(name, make)]; make() returns the trial's argument
        self.trial = trial          # trial(make) -> {"value": v, "cpu": c, ...}
        self.trials, self.budget, self.note = trials, budget, note
        self.extra_label = extra_label
        self.skipped = {}           # name -> why

    def run(self, log):
        """Run every row *trials* times, interleaved; stop early past *budget* s."""
        samples = {name: [] for name, _ in self.rows}
        started = time.monotonic()
        for t in range(self.trials):
            if t >= 2 and time.monotonic() - started > self.budget:
                log("  %s: budget of %.0f s spent after %d trials" % (self.key, self.budget, t))
                break
            for name, make in self.rows:
                try:
                    samples[name].append(self.trial(make))
                except Exception as exc:        # one row failing must not end the run
                    samples[name].append({"value": None, "error": repr(exc)})
                    log("  %s / %s: %r" % (self.key, name, exc))
        return self.result(samples, time.monotonic() - started)

    def result(self, samples, seconds):
        rows = {}
        for name, trials in samples.items():
            row = {"trials": trials,
                   "wall": summary([s.get("value") for s in trials]),
                   "cpu": summary([s.get("cpu") for s in trials])}
            extra = [s.get("extra") for s in trials if s.get("extra") is not None]
            if extra:
                row["extra"] = summary(extra)
            errors = [s["error"] for s in trials if "error" in s]
            if errors:
                row["errors"] = errors
            rows[name] = row
        ref = rows.get(self.reference)
        for name, row in rows.items():
            for basis in ("wall", "cpu"):
                mine = row[basis]["median"]
                theirs = ref[basis]["median"] if ref else None
                row[basis]["ratio"] = (mine / theirs if mine is not None and theirs
                                       else None)
        return {"title": self.title, "unit": self.unit, "note": self.note,
                "extra_label": self.extra_label,
                "higher_is_better": self.higher_is_better,
                "reference": self.reference if ref else None,
                "rows": rows, "skipped": dict(self.skipped), "seconds": round(seconds, 1)}


# -- the machine -------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def revision():
    """Return the commit measured, marked when testservers/ has changes not in it."""
    import subprocess
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "testservers"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + (" with uncommitted changes" if dirty else "")) or None


def describe(pinned, trials, command, versions):
    """Return the run's metadata: date, Python, machine, settings, peers."""
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": "%s, %s, %d CPUs" % (platform.system(), cpu_model(), os.cpu_count() or 0),
        "platform": platform.platform(),
        "pinned_cpu": pinned,
        "trials": trials,
        "command": command,
        "loadavg_start": loadavg(),
        "versions": versions,
        "revision": revision(),
    }


# -- reports -----------------------------------------------------------------------

def fmt(value, unit=""):
    """Format a figure for people: 3 significant digits, thousands separated."""
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return "{:,}".format(int(value))
    if abs(value) >= 100:
        return "{:,.0f}".format(value)
    if abs(value) >= 10:
        return "%.1f" % value
    if abs(value) >= 1:
        return "%.2f" % value
    return "%.3f" % value


def ratio(value):
    return "n/a" if value is None else ("%.2f" % value if value < 100 else "%.0f" % value)


def table_lines(key, measure, pinned):
    """Return a measure as markdown lines: min, median, max and ratios."""
    unit = measure["unit"]
    lines = ["### %s (`%s`)" % (measure["title"], key), ""]
    if measure.get("note"):
        lines += [measure["note"], ""]
    cpu = any(r["cpu"]["n"] for r in measure["rows"].values())
    head = "| row | min | median | max | × ref |"
    rule = "|---|---:|---:|---:|---:|"
    if cpu:
        head += " per CPU-second, median | × ref (CPU) |"
        rule += "---:|---:|"
    extra = measure.get("extra_label") if any(
        "extra" in r for r in measure["rows"].values()) else None
    if extra:
        head += " %s, median |" % extra
        rule += "---:|"
    lines += ["%s: %s; reference: %s; ratios %s." % (
        "unit", unit, measure["reference"] or "none",
        "above 1 are better" if measure["higher_is_better"] else "below 1 are better"),
        "", head, rule]
    for name, row in measure["rows"].items():
        w = row["wall"]
        line = "| %s | %s | %s | %s | %s |" % (name, fmt(w["min"]), fmt(w["median"]),
                                               fmt(w["max"]), ratio(w["ratio"]))
        if cpu:
            line += " %s | %s |" % (fmt(row["cpu"]["median"]), ratio(row["cpu"]["ratio"]))
        if extra:
            line += " %s |" % fmt(row.get("extra", {}).get("median"))
        if "errors" in row:
            line += " (%d errors: %s)" % (len(row["errors"]), row["errors"][0][:80])
        lines.append(line)
    for name, why in measure["skipped"].items():
        lines.append("| %s | skipped: %s | | | |" % (name, why))
    return lines + [""]


def markdown(results):
    meta = results["meta"]
    lines = ["# testservers benchmarks", "",
             "%s, Python %s (%s), %s; %s; %s trials; load average at start %s." % (
                 meta["date"], meta["python"], meta["implementation"], meta["machine"],
                 "pinned to CPU %s" % meta["pinned_cpu"] if meta["pinned_cpu"] is not None
                 else "not pinned", meta["trials"], meta["loadavg_start"]),
             "", "Command: `%s`" % meta["command"], ""]
    if results.get("goals"):
        lines += ["## Goals (ratios on the %s basis)" % results["goals_basis"], "",
                  "| goal | ratio | met |", "|---|---:|---|"]
        for g in results["goals"]:
            lines.append("| %s | %s | %s |" % (g["goal"], ratio(g["ratio"]),
                                               {True: "yes", False: "NO", None: "n/a"}[g["met"]]))
        lines.append("")
    for line in results.get("skipped_peers", []):
        lines.append("* %s" % line)
    lines.append("")
    for key, measure in results["measures"].items():
        lines += table_lines(key, measure, meta["pinned_cpu"])
    upload = results.get("upload")
    if upload:
        lines += ["### Two %d MiB uploads (`upload`)" % upload["size_mib"], "",
                  "Server peak RSS: %.1f MiB before, %.1f MiB after; %s." % (
                      upload["peak_before_kib"] / 1024.0, upload["peak_kib"] / 1024.0,
                      ", ".join("%s %.2f s" % kv for kv in upload["seconds"].items())), ""]
    return "\n".join(lines)


def write_json(path, results):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")


def log(message):
    print(message, file=sys.stderr, flush=True)
