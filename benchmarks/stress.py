"""Run the whole test suite many times at once, under CPU load, to find flakes.

Usage::

    python3 benchmarks/stress.py [--runs 20] [--parallel 4] [--burn]
                                 [--python PATH] [--timeout 900] [-- PYTEST_ARGS]

Each run is ``PATH -X dev -W error -m pytest -q`` in the project's root, in
a session (process group) of its own and with a temporary directory of its
own, ``--parallel`` of them at a time; ``--burn`` adds one busy-looping
process per core for as long as runs are left, so the runs compete for the
CPU as on a crowded CI machine.  Arguments after ``--`` go to pytest (a
test file, ``-k``, ``-x``...).  Each run prints one line, pass or fail, and
for each failed test its id and the first lines of what it reported; the
last line reads ``stress: 20 runs, 0 failed``, and the exit status is 1 if
any run failed (or timed out), 0 otherwise.  Everything is bounded: a run
still going after ``--timeout`` seconds has its whole process group ended
(pytest's faulthandler dumps every thread of a test that hangs for half
that time first), and the burners end with the script, or by themselves
at the time it would have ended at the latest.  This is a tool for people,
not part of CI.  The goal (issue 10): no failure in 20 runs, 4 at a time,
on a 2-core machine, on 3.8 and on 3.13.
"""

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: How many lines of each failed test's report are printed.
FAILURE_LINES = 6

#: How long a run's process group has to end after SIGTERM before SIGKILL.
KILL_GRACE = 10.0

# A burner spins until its end time, and stops early when its parent, this
# script, goes away (it is then adopted: its parent pid changes).
_BURNER = """\
import os, sys, time
parent, end = os.getppid(), time.monotonic() + float(sys.argv[1])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(200000):
        pass
"""

_print_lock = threading.Lock()
_running = set()            # the Popen of every run in progress
_stopping = threading.Event()


def say(*lines):
    with _print_lock:
        for line in lines:
            print(line, flush=True)


def end_group(proc):
    """End the run's whole process group: pytest and whatever it started."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass


def _test_id(case):
    """The pytest node id of a junit (xunit1) testcase element."""
    path, name = case.get("file") or "", case.get("name")
    classname = case.get("classname") or ""
    module = path[:-3].replace("/", ".") if path.endswith(".py") else ""
    parts = [path or classname]
    if module and classname.startswith(module + "."):
        parts.append(classname[len(module) + 1:].replace(".", "::"))
    return "::".join(parts + [name])


def failures(junit_path):
    """Return (test id, first lines of its report) for each failed test:
    pytest's message, then the ``E`` lines of the report."""
    try:
        tree = ET.parse(junit_path)
    except (OSError, ET.ParseError):
        return []
    found = []
    for case in tree.iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is None:
                continue
            text = (node.text or "").splitlines()
            errors = [line for line in text if line.startswith("E ")]
            lines = (node.get("message") or "").splitlines()[:1] + (errors or text)
            lines = [line.rstrip() for line in lines if line.strip()]
            found.append((_test_id(case) + (" (error)" if tag == "error" else ""),
                          lines[:FAILURE_LINES]))
    return found


def hang_report(output):
    """Say where a run that timed out hung, from pytest's faulthandler dump:
    the innermost frames of each thread, and the test function's frame."""
    starts = [i for i, line in enumerate(output) if "Timeout (" in line]
    if not starts:
        return ["no faulthandler dump; the output ends with:"] + output[-FAILURE_LINES:]
    lines, frames = [], 0
    for line in output[starts[-1]:]:
        if not line.startswith("  File "):
            lines.append(line)          # "Timeout", "Thread 0x... (most recent call first):"
            frames = 0
        elif frames < 2 or " in test_" in line:
            lines.append(line)
            frames += 1
    return [line.rstrip() for line in lines if line.strip()][:4 * FAILURE_LINES]


def run_once(number, args, workdir):
    """Run the suite once; return (passed, summary line, failed tests, log path)."""
    rundir = os.path.join(workdir, "run-%d" % number)
    os.mkdir(rundir)
    junit = os.path.join(rundir, "junit.xml")
    log = os.path.join(rundir, "output.txt")
    cmd = [args.python, "-X", "dev", "-W", "error", "-m", "pytest", "-q",
           "-p", "no:cacheprovider", "--basetemp", os.path.join(rundir, "tmp"),
           "--junitxml", junit, "-o", "junit_family=xunit1",
           "-o", "faulthandler_timeout=%d" % max(1, args.timeout // 2)] + args.pytest_args
    if _stopping.is_set():
        return False, "not run: stopping", [], log
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(proc)
        try:
            proc.wait(args.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            end_group(proc)     # also what a finished pytest may have left
            _running.discard(proc)
    elapsed = time.monotonic() - started
    with open(log, "rb") as f:
        output = f.read().decode("utf-8", "replace").strip().splitlines()
    failed = failures(junit)
    passed = proc.returncode == 0 and not timed_out and not failed
    if timed_out:
        summary = "TIMEOUT after %.0f s" % elapsed
        failed.append(("(the run)", hang_report(output)))
    else:
        summary = "%s (exit %s) in %.1f s: %s" % (
            "pass" if passed else "FAIL", proc.returncode, elapsed,
            output[-1] if output else "no output")
    return passed, summary, failed, log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="how many runs (20)")
    parser.add_argument("--parallel", type=int, default=4, help="how many at once (4)")
    parser.add_argument("--burn", action="store_true",
                        help="keep every core busy with a spinning process meanwhile")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to test with (this one)")
    parser.add_argument("--timeout", type=int, default=900,
                        help="seconds one run may take before it is ended (900)")
    parser.add_argument("--keep", action="store_true",
                        help="keep every run's output and junit XML, not only failed ones")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.parallel < 1 or args.timeout < 1:
        parser.error("--runs, --parallel and --timeout must be positive")

    waves = -(-args.runs // args.parallel)
    bound = waves * (args.timeout + 2 * KILL_GRACE) + 60
    workdir = tempfile.mkdtemp(prefix="testservers-stress-")
    burners = []
    failed_runs = 0
    say("stress: %d runs of %s, %d at a time%s, in %s" % (
        args.runs, args.python, args.parallel,
        ", every core busy" if args.burn else "", workdir))
    try:
        if args.burn:
            for _ in range(os.cpu_count() or 1):
                burners.append(subprocess.Popen(
                    [sys.executable, "-c", _BURNER, str(bound)], stdin=subprocess.DEVNULL))
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            futures = {pool.submit(run_once, n, args, workdir): n
                       for n in range(1, args.runs + 1)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    number = futures[future]
                    passed, summary, failed, log = future.result()
                    lines = ["run %d: %s" % (number, summary)]
                    for test_id, report in failed:
                        lines.append("  %s" % test_id)
                        lines.extend("      %s" % line for line in report)
                    if not passed:
                        failed_runs += 1
                        lines.append("  output: %s" % log)
                    say(*lines)
            except BaseException:
                # Ctrl-C (the runs have sessions of their own: it did not
                # reach them) or a bug here: end what runs, start nothing.
                _stopping.set()
                for future in futures:
                    future.cancel()
                for proc in list(_running):
                    end_group(proc)
                raise
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait()
        if not failed_runs and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    say("stress: %d runs, %d failed" % (args.runs, failed_runs))
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
