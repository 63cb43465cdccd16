"""Hostile input for TestHTTPServer over raw sockets.

Every case gets a well-formed HTTP error response (or a clean close),
prints nothing, records no handler error (a malformed request is the
client's fault, not the handler's), leaks nothing, and the next valid
http.client request is served.  Each request the server read is answered
exactly once: the statuses of its Request records are the statuses on
the wire, in order.  A seeded mutator adds a bounded number of random
cases per run (TESTSERVERS_FUZZ_SEED and TESTSERVERS_FUZZ_CASES; the seed
is in every failure message).
"""

import os
import random
import re
import socket
import threading
import tracemalloc

import pytest

import testservers
from conftest import TIMEOUT
from test_hostile import SEED, _mutate
from test_httpproto import CASES_TABLE as PARSING_CASES

CASES = int(os.environ.get("TESTSERVERS_FUZZ_CASES", "400"))
LIMITS = dict(max_request_line=1024, max_header_size=4096, max_headers=20,
              max_body_size=65536)

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\t\x20-\x7e]*\r\n")
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e]*?)[ \t]*")


class Boom(Exception):
    """What the handler raises for a path under /raise."""


def echo(request):
    """Answer 200 with the method, path and body, framed by Content-Length;
    raise Boom for a path under /raise."""
    if request.path.startswith("/raise"):
        raise Boom(request.path)
    reply = b"echo %s %s %s" % (request.command.encode(), request.path.encode(),
                                request.body())
    request.send_response(200)
    request.send_header("Content-Length", str(len(reply)))
    request.end_headers()
    request.wfile.write(reply)


def exchange(server, data, pieces=1):
    """Send *data* in *pieces* writes, half-close, read to the end.

    Return (the bytes received, whether the connection was reset).
    """
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)    # pieces stay pieces
        step = max(1, -(-len(data) // pieces))
        try:
            for i in range(0, len(data), step):
                c.sendall(data[i:i + step])
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass            # the server answered and closed first: read what it said
        out = bytearray()
        while True:
            try:
                piece = c.recv(65536)
            except ConnectionResetError:
                return bytes(out), True
            if not piece:
                return bytes(out), False
            out += piece


def parse_responses(data):
    """Split *data* into [(status, {name: value}, body)], checking the syntax.

    Every response must start with a well-formed status line, have
    well-formed header fields and (unless interim) a Content-Length; the
    bytes must end exactly where the last response does.  A response with
    Content-Length but no body bytes after it answered a HEAD request.
    """
    responses, pos = [], 0
    while pos < len(data):
        match = _STATUS_LINE.match(data, pos)
        assert match, "no status line at byte %d: %r" % (pos, data[pos:pos + 80])
        end = data.find(b"\r\n\r\n", match.end() - 2)
        assert end >= 0, "a response head without its end: %r" % data[pos:pos + 200]
        headers = {}
        for line in data[match.end():end + 2].split(b"\r\n")[:-1]:
            field = _FIELD.fullmatch(line)
            assert field, "malformed header line %r" % line
            headers[field.group(1).lower().decode()] = field.group(2).decode()
        status, pos = int(match.group(1)), end + 4
        body = b""
        if status >= 200:
            assert "content-length" in headers, "an unframed response: %r" % data[:300]
            length = int(headers["content-length"])
            if length and data[pos:pos + 9] not in (b"", b"HTTP/1.1 "):
                body, pos = data[pos:pos + length], pos + length
                assert len(body) == length, "body cut short: %r" % data[-300:]
        responses.append((status, headers, body))
    return responses


def check_exchange(server, data, pieces=1, where="", handler=echo):
    """Run one exchange on a cleared server and check every invariant;
    return [(status, headers, body)] of the final responses.  *handler* is
    the server's (None for canned responses)."""
    server.clear_records()
    reply, reset = exchange(server, data, pieces)
    responses = parse_responses(reply)
    final = [r for r in responses if r[0] >= 200]
    for status, headers, body in final:
        assert body.startswith(b"echo " if status == 200 else b"%d " % status) or (
            not body), "%s: unexpected body %r" % (where, body[:100])
    records = server.requests
    if not reset:
        # Every request the server read was answered once, in order.
        assert [r.status for r in records] == [r[0] for r in final], (
            "%s: records %r, on the wire %r" % (where, records, reply[:300]))
    # A handler error only where the handler raised: nothing else is one.
    raised = [r for r in records if r.rejected is None and r.path.startswith("/raise")
              and handler is echo]
    errors = server.take_errors()
    assert len(errors) == len(raised) and all(isinstance(e, Boom) for e in errors), (
        "%s: errors %r" % (where, errors))
    assert all(r.status == 500 for r in raised)
    return final


def http_ok(server):
    """A valid http.client client is served correctly after whatever came before."""
    conn = server.http_connection(TIMEOUT)
    try:
        conn.request("POST", "/ok", body=b"fine")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"echo POST /ok fine")
        conn.request("GET", "/again")              # on the same connection
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"echo GET /again ")
    finally:
        conn.close()


@pytest.fixture
def http(capfd):
    server = testservers.TestHTTPServer(None, echo, **LIMITS).start()
    yield server
    http_ok(server)
    server.stop()       # raises any handler error
    assert capfd.readouterr() == ("", "")


HOST = b"Host: h\r\n"
GET = b"GET / HTTP/1.1\r\n" + HOST
POST = b"POST /p HTTP/1.1\r\n" + HOST
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

# Every parsing rule is tested byte by byte on the core, with no socket
# (tests/test_httpproto.py, CASES_TABLE).  Here a few of those cases, one
# per kind of answer, go end to end: the server's reply on the wire, its
# records, its errors and the next client.  name: (request bytes, the
# status of the first response, or None for a close without one).
END_TO_END = ("truncated header", "nothing at all", "oversized request line",
              "endless headers", "too many headers", "Content-Length over the limit",
              "body cut short", "Content-Length and chunked",
              "Transfer-Encoding gzip, chunked", "chunk extensions", "chunks over the limit",
              "binary garbage", "TLS ClientHello", "bare LF everywhere", "HTTP/2.0",
              "Expect over the limit", "unknown Expect", "valid then garbage")
CASES_TABLE = {name: PARSING_CASES[name] for name in END_TO_END}
CASES_TABLE["handler error then valid"] = (
    b"GET /raise HTTP/1.1\r\n" + HOST + b"\r\n" + GET + b"\r\n", 500)


@pytest.mark.parametrize("name", sorted(CASES_TABLE))
@pytest.mark.parametrize("pieces", [1, 7], ids=["whole", "in-7-pieces"])
def test_http_hostile(http, name, pieces):
    data, expected = CASES_TABLE[name]
    final = check_exchange(http, data, pieces, name)
    if expected is None:
        assert final == []
        return
    assert final and final[0][0] == expected, "%s: got %r" % (name, final[:1])
    if expected >= 400 and expected != 500:        # rejected by the server
        assert len(final) == 1, "a request after a rejected one was answered"
        assert final[0][1]["connection"] == "close"
        assert (http.requests[0].status, http.requests[0].rejected is not None) == (
            expected, True)
    if name == "Content-Length and chunked":
        assert final[0][2] == b"echo POST /p ok"
        assert [r.path for r in http.requests] == ["/p"]        # never /smuggled
        assert final[0][1]["connection"] == "close"
    if name == "valid then garbage":
        assert [s for s, _, _ in final] == [200, 400]
    if name == "handler error then valid":
        assert [(s, b[:5]) for s, _, b in final] == [(500, b"500 I"), (200, b"echo ")]


def test_http_hostile_against_canned_responses(capfd):
    # Rejections happen before matching: no UnexpectedRequest for any of them.
    with testservers.TestHTTPServer(allow_unmatched=True, **LIMITS) as server:
        server.expect(None, "/p", body=b"echo canned")
        for name, (data, expected) in sorted(CASES_TABLE.items()):
            final = check_exchange(server, data, 1, name, handler=None)
            if expected is not None and expected >= 400 and expected != 500:
                assert final[0][0] == expected, "%s: got %r" % (name, final[:1])
    assert capfd.readouterr() == ("", "")


# -- slow clients ------------------------------------------------------------------

def test_slowloris_complete_request_byte_at_a_time_is_answered(http):
    data = POST + b"Content-Length: 4\r\nX-Slow: yes\r\n\r\nbody"
    final = check_exchange(http, data, pieces=len(data))
    assert [(s, b) for s, _, b in final] == [(200, b"echo POST /p body")]


def test_slowloris_chunked_body_byte_at_a_time_is_answered(http):
    data = CHUNKED + b"4;x=y\r\nbody\r\n2\r\n!!\r\n0\r\nT: 1\r\n\r\n"
    final = check_exchange(http, data, pieces=len(data))
    assert [(s, b) for s, _, b in final] == [(200, b"echo POST /p body!!")]
    assert http.requests[0].trailers == [("T", "1")]


@pytest.mark.parametrize("stop_after", [b"GET /", GET + b"X-A: 1\r\n", POST +
                                        b"Content-Length: 5\r\n\r\nab"])
def test_slowloris_incomplete_request_gets_408(capfd, stop_after):
    with testservers.TestHTTPServer(None, echo, request_timeout=0.2) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for i in range(len(stop_after)):
                    c.sendall(stop_after[i:i + 1])
            except OSError:
                # The deadline runs from the first byte: on a loaded machine
                # the 408 may come while the bytes still trickle in.
                pass
            reply = b""                             # and then silence
            while True:
                try:
                    piece = c.recv(65536)
                except ConnectionResetError:        # what was sent after the 408
                    break
                if not piece:
                    break
                reply += piece
        (status, headers, body), = parse_responses(reply)
        assert status == 408 and headers["connection"] == "close"
        assert server.requests[0].status == 408
        http_ok(server)
    assert capfd.readouterr() == ("", "")


def test_slowloris_trickling_head_gets_408_at_the_deadline(capfd):
    # (fixed) request_timeout bounded each read, so a client that sent a
    # byte within every timeout held the connection until max_header_size:
    # here 4,096 bytes, at 20 ms each 80 s.  Now the whole head must arrive
    # within request_timeout of its first byte.
    got = threading.Event()
    with testservers.TestHTTPServer(None, echo, request_timeout=0.2, **LIMITS) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.sendall(GET + b"X-Slow: ")

            def read():
                f = c.makefile("rb")
                read.reply = f.read()
                f.close()
                got.set()
            reader = threading.Thread(target=read)
            reader.start()
            sent, budget = 0, int(TIMEOUT / 0.02)
            try:
                # A header byte every 20 ms (the pace is the attack, not a
                # wait for something), for at most TIMEOUT s: fifty deadlines,
                # and still far from the limits (before the fix the head
                # could grow to max_header_size, 4,096 bytes at 20 ms each).
                while sent < budget and not got.wait(0.02):
                    c.sendall(b"\r\nX-Slow: " if sent % 40 == 39 else b"x")
                    sent += 1
            except OSError:
                pass            # the server answered and closed
            reader.join(TIMEOUT)
        assert sent < budget, "no answer while the client kept trickling"
        assert got.is_set()
        (status, _, body), = parse_responses(read.reply)
        assert status == 408, body
        http_ok(server)
    assert capfd.readouterr() == ("", "")


# -- clients that vanish ------------------------------------------------------------

HALF_SENT = {
    "head": GET + b"X-Half: y",
    "body": POST + b"Content-Length: 100\r\n\r\n" + b"b" * 50,
    "chunked body": CHUNKED + b"10\r\n" + b"c" * 8,
    "100-continue body": POST + b"Expect: 100-continue\r\nContent-Length: 9\r\n\r\nabc",
}


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("where", sorted(HALF_SENT))
def test_client_vanishes_mid_request(http, where, how):
    c = socket.create_connection(("127.0.0.1", http.port), TIMEOUT)
    c.sendall(HALF_SENT[where])
    if how == "reset":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    c.close()
    (conn,) = http.wait_connections(1, TIMEOUT, closed=True)
    assert conn.closed_by in ("client", "server")
    assert all(r.rejected for r in http.requests)      # nothing reached the handler


# -- memory --------------------------------------------------------------------------

def _peak_while(func):
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_endless_chunked_body_gets_413_with_memory_bounded(capfd):
    limit = 1024 * 1024
    block = b"1000\r\n" + b"z" * 4096 + b"\r\n"
    with testservers.TestHTTPServer(None, echo, max_body_size=limit) as server:
        def run():
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
                c.sendall(CHUNKED)

                def send():     # 64 MiB, 64 times the limit, or until refused
                    try:
                        for _ in range(16384):
                            c.sendall(block)
                    except OSError:
                        pass
                sender = threading.Thread(target=send)
                sender.start()
                f = c.makefile("rb")
                try:
                    line = f.readline()
                finally:
                    f.close()
                    try:
                        c.shutdown(socket.SHUT_RDWR)     # stops the sender at once
                    except OSError:
                        pass        # ENOTCONN: the server's reset got there first
                    sender.join(TIMEOUT)
                return line
        line, peak = _peak_while(run)
        assert line.startswith(b"HTTP/1.1 413 "), line
        assert "max_body_size" in server.requests[0].rejected
        http_ok(server)
    assert peak < 3 * limit, "peak %d bytes" % peak
    assert capfd.readouterr() == ("", "")


LARGE_DECLARED = [     # (framing, the status without a limit, with 64 MiB)
    (b"Content-Length: 60000000\r\n\r\n", 400, 400),
    (b"Content-Length: 999999999999999999\r\n\r\n", 400, 413),
    (b"Transfer-Encoding: chunked\r\n\r\n3000000\r\n", 400, 400),
    (b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 400, 413),
]


@pytest.mark.parametrize("limited", [False, True], ids=["no-limit", "64MiB"])
@pytest.mark.parametrize("framing, unlimited_status, limited_status", LARGE_DECLARED)
def test_declared_length_does_not_decide_memory(capfd, framing, unlimited_status,
                                                limited_status, limited):
    # (fixed) The body was read with one BufferedReader.read(length), which
    # allocates *length* bytes at once: 60 MB for a 3-byte body, and with
    # no max_body_size a MemoryError or OverflowError recorded as a
    # handler error.  Now memory follows the bytes that arrive.
    status = limited_status if limited else unlimited_status
    with testservers.TestHTTPServer(None, echo, max_body_size=64 * 1024 * 1024
                                    if limited else None) as server:
        def run():
            return exchange(server, POST + framing + b"abc")
        (reply, _), peak = _peak_while(run)
        (got, _, body), = parse_responses(reply)
        assert got == status, body
        if status == 400:
            assert b"the connection ended after 3 of " in body
        http_ok(server)
    assert peak < 1024 * 1024, "peak %d bytes" % peak
    assert capfd.readouterr() == ("", "")


def test_pipelined_flood_answered_once_each_in_order(http):
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(1000))
    final = check_exchange(http, data)
    assert [b for _, _, b in final] == [b"echo GET /%d " % i for i in range(1000)]


# -- the seeded mutator ------------------------------------------------------------------

TEMPLATES = [
    b"GET /path?q=1&r=%20 HTTP/1.1\r\nHost: h\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    POST + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
    b"a=1&b=2&c=3",
    CHUNKED[:-2] + b"X-Extra: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: t\r\n\r\n",
    GET + b"\r\n" + POST + b"Content-Length: 4\r\n\r\npipe",
    b"PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /h HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /raise HTTP/1.1\r\n" + HOST + b"\r\n" + GET + b"\r\n",     # a handler error, then on
]


def _mutate_request(rng, data):
    """Mutate the whole request, or one line of it and keep the rest, so
    that cases also reach the header fields, the body and the handler."""
    if rng.random() < 0.5:
        return _mutate(rng, data)
    lines = data.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    lines[i] = _mutate(rng, lines[i])
    return b"".join(lines)


def test_http_seeded_mutations(http):
    rng = random.Random(SEED)
    for case in range(CASES):
        data = _mutate_request(rng, rng.choice(TEMPLATES))
        pieces = rng.choice([1, 1, 3, 17])
        where = "seed %d case %d (%d pieces): %r" % (SEED, case, pieces, data)
        try:
            check_exchange(http, data, pieces, where)
        except Exception as exc:        # an assertion, or a client timeout
            raise AssertionError("%s\n%r" % (where, exc)) from exc
        if case % 25 == 24:
            http_ok(http)
