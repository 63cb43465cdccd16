"""Measure the server's peak memory while it takes a large upload.

    python3 benchmarks/bench_upload.py [--size MIB] [--json]

A child process serves :class:`testservers.TestHTTPServer` with
``max_body_size=None`` and a handler that reads ``rfile`` piece by piece
(64 KiB at a time) and answers with the body's SHA-256.  The parent
uploads *size* MiB (512 by default) over loopback with ``http.client``,
once framed by Content-Length and once in chunked coding, each on a new
connection, and checks the digest.  The child then reports its peak
resident set size, beside the figure it had before the first upload, in
KiB: ``VmHWM`` from ``/proc/self/status``, or where there is none,
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (which on Linux would also
count the parent's image the child was forked from).  The body goes
through a temporary file (the server spools bodies above its
``spool_threshold``, 1 MiB): the disk needs *size* MiB free.

Bounded: one upload of each framing, a time cap per upload, loopback only.
"""

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BLOCK = bytes(range(256)) * 256         # 64 KiB
CAP = 600.0                             # s for one upload at most

CHILD = r"""
import hashlib, resource, sys
import testservers

def handler(request):
    digest, left = hashlib.sha256(), None
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        # Decode the chunked coding from rfile, as http.server handlers do.
        while True:
            size = int(request.rfile.readline().split(b";")[0], 16)
            if not size:
                while request.rfile.readline() not in (b"\r\n", b""):
                    pass
                break
            while size:
                piece = request.rfile.read(min(size, 65536))
                digest.update(piece)
                size -= len(piece)
            request.rfile.read(2)
    else:
        left = int(request.headers["Content-Length"])
        while left:
            piece = request.rfile.read(min(left, 65536))
            digest.update(piece)
            left -= len(piece)
    request.respond(200, body=digest.hexdigest())

def peak():
    # VmHWM is this process's own high-water mark.  ru_maxrss would also
    # count the image it was forked from before its exec (Linux), which is
    # the whole parent when a long benchmark run starts it.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

with testservers.TestHTTPServer(("127.0.0.1", 0), handler, max_body_size=None,
                                request_timeout=60) as server:
    print(server.port, peak(), flush=True)
    sys.stdin.readline()                        # the parent's uploads are done
    print(peak(), len(server.requests), flush=True)
"""


def upload(port, size, chunked):
    """Upload *size* bytes of BLOCK; return (seconds, the server's digest)."""
    blocks = size // len(BLOCK)
    expected = hashlib.sha256()
    for _ in range(blocks):
        expected.update(BLOCK)
    deadline = time.monotonic() + CAP

    def body():
        for _ in range(blocks):
            if time.monotonic() > deadline:
                raise TimeoutError("upload took more than %g s" % CAP)
            yield BLOCK

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CAP)
    start = time.perf_counter()
    try:
        if chunked:
            conn.request("POST", "/upload", body=body(), encode_chunked=True)
        else:
            conn.request("POST", "/upload", body=body(),
                         headers={"Content-Length": str(blocks * len(BLOCK))})
        response = conn.getresponse()
        got = response.read().decode()
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    if response.status != 200 or got != expected.hexdigest():
        raise RuntimeError("upload failed: %s %r" % (response.status, got[:200]))
    return elapsed


def measure(size_mib=512):
    """Run the two uploads of *size_mib* MiB; return the figures as a dict.

    ``peak_before_kib`` and ``peak_kib`` are the server's peak RSS before
    the first upload and after both; ``seconds`` the time of each upload.
    ``run_all.py`` calls this, and the docs quote what it returned.
    """
    size = size_mib * 1024 * 1024
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env, universal_newlines=True)
    try:
        port, before = map(int, child.stdout.readline().split())
        times = {name: upload(port, size, chunked)
                 for name, chunked in (("content-length", False), ("chunked", True))}
        child.stdin.write("done\n")
        child.stdin.flush()
        after, requests = map(int, child.stdout.readline().split())
    finally:
        child.stdin.close()
        child.wait(60)
        child.stdout.close()
    return {"size_mib": size_mib, "peak_before_kib": before, "peak_kib": after,
            "requests": requests,
            "seconds": {k: round(v, 2) for k, v in times.items()},
            "python": sys.version.split()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="MiB per upload (512)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    result = measure(args.size)
    before, after, times = result["peak_before_kib"], result["peak_kib"], result["seconds"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("Python %s; two uploads of %d MiB (Content-Length, chunked), max_body_size=None"
          % (result["python"], args.size))
    print("server peak RSS before the uploads: %6.1f MiB" % (before / 1024))
    print("server peak RSS after the uploads:  %6.1f MiB" % (after / 1024))
    for name, seconds in times.items():
        print("%-15s %6.2f s  (%.0f MiB/s)" % (name, seconds, args.size / seconds))


if __name__ == "__main__":
    main()
