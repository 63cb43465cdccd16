"""Byte-level tests for testservers._httpproto, the sans-IO HTTP/1.1 core.

Every exchange runs twice through the feed_mode fixture: once fed whole
and once one byte at a time.  Both must give the same events, which the
exact expected values check.  Deadlines run on a fake clock; no socket.
"""

import os
import subprocess
import sys

import pytest

from testservers import _httpproto
from testservers._httpproto import (
    CONTINUE, FRAMED, INTERIM, NEED_DATA, PAUSED, RAW, UNFRAMED, ConnectionClosed, Data,
    EndOfMessage, Rejected, RequestHead, ServerConnection, connection_value,
    response_framing)

LIMITS = dict(max_request_line=1024, max_header_size=4096, max_headers=20,
              max_body_size=65536)

HOST = b"Host: h\r\n"
GET = b"GET / HTTP/1.1\r\n" + HOST
POST = b"POST /p HTTP/1.1\r\n" + HOST
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

# name: (request bytes, then the end of the stream; the status of the
# first response, 200 for a request the handler gets, None for a close
# without one).  Regression tests for what the hostile suite found are
# marked "(fixed)".
CASES_TABLE = {
    # truncated, then the client half-closes
    "truncated request line": (b"GET /inde", 400),
    "truncated version": (b"GET / HTTP/1.", 400),
    "truncated header": (GET + b"X-A: b", 400),
    "head without its empty line": (GET + b"X-A: b\r\n", 400),
    "nothing at all": (b"", None),
    # over the limits
    "oversized request line": (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    "endless request line": (b"GET /" + b"a" * 100000, 414),
    "oversized header": (GET + b"X-Big: " + b"b" * 5000 + b"\r\n\r\n", 431),
    "endless header line": (GET + b"X-Big: " + b"b" * 100000, 431),
    "too many headers": (GET + b"".join(b"X-%d: v\r\n" % i for i in range(21)) + b"\r\n", 431),
    "endless headers": (GET + b"X: y\r\n" * 20000, 431),
    # Content-Length
    "negative Content-Length": (POST + b"Content-Length: -1\r\n\r\n", 400),
    "non-numeric Content-Length": (POST + b"Content-Length: ten\r\n\r\nabc", 400),
    "Content-Length list 1, 2": (POST + b"Content-Length: 1, 2\r\n\r\nab", 400),
    "Content-Length list 2, 2": (POST + b"Content-Length: 2, 2\r\n\r\nab", 200),  # RFC 9110 8.6
    "conflicting Content-Lengths": (POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                                    400),
    "Content-Length with a plus": (POST + b"Content-Length: +2\r\n\r\nab", 400),
    "Content-Length of 30 digits": (POST + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n", 400),
    "Content-Length over the limit": (POST + b"Content-Length: 65537\r\n\r\n", 413),
    "Content-Length with VT (fixed)": (POST + b"Content-Length: \x0b2\r\n\r\nab", 400),
    "body cut short": (POST + b"Content-Length: 10\r\n\r\nabc", 400),
    # Transfer-Encoding
    "Content-Length and chunked": (  # RFC 9112 6.3: chunked wins, then close
        POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n", 200),
    "empty Transfer-Encoding (fixed)": (
        POST + b"Transfer-Encoding:\r\nContent-Length: 2\r\n\r\nab", 400),
    "Transfer-Encoding with VT (fixed)": (
        POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 400),
    "Transfer-Encoding identity": (POST + b"Transfer-Encoding: identity\r\n\r\n", 400),
    "Transfer-Encoding gzip, chunked": (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    "Transfer-Encoding in HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      b"0\r\n\r\n", 400),
    # chunked bodies
    "chunk size not hex": (CHUNKED + b"zz\r\nab\r\n0\r\n\r\n", 400),
    "chunk size 0x": (CHUNKED + b"0x2\r\nab\r\n0\r\n\r\n", 400),
    "chunk size negative": (CHUNKED + b"-2\r\nab\r\n0\r\n\r\n", 400),
    "chunk size with a leading space": (CHUNKED + b" 2\r\nab\r\n0\r\n\r\n", 400),
    "chunk size of 17 digits": (CHUNKED + b"1" * 17 + b"\r\nab\r\n0\r\n\r\n", 400),
    "chunk size over the limit": (CHUNKED + b"ffffffffffffffff\r\nab", 413),
    "chunk extensions": (CHUNKED + b"2;a=b;c=\"d e\"\r\nok\r\n0;x\r\n\r\n", 200),
    "chunk extension with NUL (fixed)": (CHUNKED + b"2;a=\0\r\nok\r\n0\r\n\r\n", 400),
    "chunk extension with bare CR (fixed)": (CHUNKED + b"2;a=\rb\r\nok\r\n0\r\n\r\n", 400),
    "endless chunk extension": (CHUNKED + b"2;" + b"e" * 10000 + b"\r\nok\r\n0\r\n\r\n", 400),
    "no CRLF after chunk data": (CHUNKED + b"2\r\nokX\r\n0\r\n\r\n", 400),
    "chunk data cut short": (CHUNKED + b"a\r\nabc", 400),
    "no last chunk": (CHUNKED + b"2\r\nok\r\n", 400),
    "malformed trailer": (CHUNKED + b"2\r\nok\r\n0\r\nno colon\r\n\r\n", 400),
    "chunks over the limit": (CHUNKED + (b"1000\r\n" + b"x" * 4096 + b"\r\n") * 17 + b"0\r\n\r\n",
                              413),
    "chunk size line bare LF": (CHUNKED + b"2\nok\r\n0\r\n\r\n", 400),
    # garbage and NUL bytes
    "binary garbage": (bytes(range(256)) * 4, 400),
    "high bytes garbage": (bytes(range(255, -1, -1)) * 4, 400),
    "TLS ClientHello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 100, 400),
    "NUL in the method": (b"G\0T / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "NUL in the target": (b"GET /\0 HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "NUL in the version": (b"GET / HTTP/1\0.1\r\n" + HOST + b"\r\n", 400),
    "NUL in a header name": (GET + b"X\0: v\r\n\r\n", 400),
    "NUL in a header value (fixed)": (GET + b"X: a\0b\r\n\r\n", 400),
    "NUL before the request": (b"\0\0\0" + GET + b"\r\n", 400),
    "a method of 65 letters": (b"G" * 65 + b" / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    # line endings
    "bare LF everywhere": (b"GET / HTTP/1.1\nHost: h\n\n", 400),
    "bare LF ends the head": (GET + b"\n", 400),
    "bare CR everywhere": (b"GET / HTTP/1.1\rHost: h\r\r", 400),
    "bare CR in the request line": (b"GET /\r HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "bare CR in a header value (fixed)": (GET + b"X: a\rb\r\n\r\n", 400),
    "CR CR LF": (b"GET / HTTP/1.1\r\r\n" + HOST + b"\r\n", 400),
    "obsolete line folding": (GET + b"X: a\r\n b\r\n\r\n", 400),
    "too many empty lines first": (b"\r\n" * 9 + GET + b"\r\n", 400),
    "seven empty lines first": (b"\r\n" * 7 + GET + b"\r\n", 200),
    # request lines and targets
    "malformed absolute target (fixed)": (b"GET http://[/ HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "absolute target": (b"GET http://h/x?y HTTP/1.1\r\n" + HOST + b"\r\n", 200),
    "two spaces": (b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "no Host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (GET + HOST + b"\r\n", 400),
    "HTTP/1.0 without Host": (b"GET / HTTP/1.0\r\n\r\n", 200),
    "HTTP/2.0": (b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", 505),
    "HTTP/1.10": (b"GET / HTTP/1.10\r\n" + HOST + b"\r\n", 400),
    "PRI preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "Expect over the limit": (
        POST + b"Expect: 100-continue\r\nContent-Length: 99999\r\n\r\n", 413),
    "unknown Expect": (GET + b"Expect: 200-ok\r\n\r\n", 417),
    "valid then garbage": (GET + b"\r\n" + bytes(range(1, 100)), 200),
    "handler error then valid": (b"GET /raise HTTP/1.1\r\n" + HOST + b"\r\n" + GET + b"\r\n",
                                 200),
}


class Clock:
    """A fake time.monotonic(): moves only when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(params=["whole", "bytewise"])
def feed_mode(request):
    return request.param


def pending(conn):
    """Return the events from what *conn* holds already, to the first
    NEED_DATA, PAUSED, Rejected or ConnectionClosed."""
    events = [conn.next_event()]
    while not (events[-1] in (NEED_DATA, PAUSED)
               or isinstance(events[-1], (Rejected, ConnectionClosed))):
        events.append(conn.next_event())
    return events


def feed(conn, data, mode):
    """Give *data* to *conn* whole or a byte at a time; return the events.

    After each piece the events are taken until NEED_DATA, PAUSED (the
    rest of *data* is then given unread, as a pipelining client sends
    it), a Rejected or a ConnectionClosed; the list ends with that one.
    """
    events = []
    pieces = [data[i:i + 1] for i in range(len(data))] if mode == "bytewise" else [data]
    pieces = list(filter(None, pieces))
    for i, piece in enumerate(pieces):
        conn.receive_data(piece)
        events += pending(conn)
        last = events[-1]
        if isinstance(last, (Rejected, ConnectionClosed)):
            return events
        if last == PAUSED:
            rest = b"".join(pieces[i + 1:])
            if rest:
                conn.receive_data(rest)
            return events
        events.pop()
    return events + [NEED_DATA]


def eof(conn):
    """End the stream; return the events that follow."""
    conn.receive_data(b"")
    return pending(conn)


def summary(events):
    """Fold the events to [head, body bytes, trailers, ...], terminal last."""
    out, body = [], None
    for event in events:
        if isinstance(event, RequestHead):
            out.append((event.method, event.target, event.version))
            body = bytearray()
        elif isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            out.append(bytes(body))
            out.append(event.trailers)
        elif isinstance(event, Rejected):
            out.append((event.status, event.reason))
        elif isinstance(event, ConnectionClosed):
            out.append("closed")
        else:
            out.append(event)
    return out


def first_status(data, mode):
    """Return the status the server answers *data* (then EOF) with first."""
    conn = ServerConnection(**LIMITS)
    events = feed(conn, data, mode)
    if events[-1] == NEED_DATA:
        events += eof(conn)
    for event in events:
        if isinstance(event, EndOfMessage):
            return 200
        if isinstance(event, Rejected):
            return event.status
    return None


@pytest.mark.parametrize("name", sorted(CASES_TABLE))
def test_parsing_rules(name, feed_mode):
    data, expected = CASES_TABLE[name]
    assert first_status(data, feed_mode) == expected


@pytest.mark.parametrize("data, status", [
    (GET + b"X-Big: " + b"b" * 4080 + b"\r\n\r\n", 200),        # max_header_size exactly
    (GET + b"X-Big: " + b"b" * 4081 + b"\r\n\r\n", 431),
    (GET + b"".join(b"X-%d: v\r\n" % i for i in range(19)) + b"\r\n", 200),     # 20 lines
    (GET + b"".join(b"X-%d: v\r\n" % i for i in range(20)) + b"\r\n", 431),
    (b"GET /" + b"a" * 1010 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 200),   # 1024 bytes
    (b"GET /" + b"a" * 1011 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    (b"G" * 64 + b" / HTTP/1.1\r\n" + HOST + b"\r\n", 200),
], ids=["header-size", "header-size+1", "headers", "headers+1", "line", "line+1", "method"])
def test_limits_at_their_edge(data, status, feed_mode):
    # A whole head in the buffer takes a quicker path than one that
    # arrives in pieces: both give the same answer at every limit's edge.
    assert first_status(data, feed_mode) == status


def test_same_events_whole_and_bytewise():
    for name, (data, _) in sorted(CASES_TABLE.items()):
        got = []
        for mode in ("whole", "bytewise"):
            conn = ServerConnection(**LIMITS)
            events = feed(conn, data, mode)
            got.append(summary(events))
        assert got[0] == got[1], name


def test_seeded_mutations_same_events_whole_and_bytewise():
    # The hostile suite's mutator on the core: however the bytes arrive,
    # the events are the same, and the parser always ends in an event.
    import random
    from test_hostile import SEED, _mutate
    rng = random.Random(SEED)
    templates = [data for data, status in CASES_TABLE.values() if status == 200]
    for case in range(300):
        data = _mutate(rng, rng.choice(templates))
        got = [summary(feed(ServerConnection(**LIMITS), data, mode))
               for mode in ("whole", "bytewise")]
        assert got[0] == got[1], "seed %d case %d: %r" % (SEED, case, data)


def test_a_request_with_its_body_and_the_head_as_received(feed_mode):
    conn = ServerConnection()
    data = POST + b"Content-Length: 5\r\nX-A:  b \r\n\r\nhello"
    events = feed(conn, data, feed_mode)
    head = events[0]
    assert head.raw == data[:-5]
    assert head.fields == [("Host", "h"), ("Content-Length", "5"), ("X-A", "b ")]
    assert (head.length, head.chunked, head.close, head.expect_continue) == (5, False, False,
                                                                             False)
    assert summary(events) == [("POST", "/p", "HTTP/1.1"), b"hello", [], PAUSED]
    assert conn.complete and conn.deadline() is None


def test_chunked_body_decoded_with_extensions_and_trailers(feed_mode):
    conn = ServerConnection()
    data = CHUNKED + b"4;x=y\r\nbody\r\n2\r\n!!\r\n0\r\nT:  1 \r\nU: 2\r\n\r\n"
    assert summary(feed(conn, data, feed_mode)) == [
        ("POST", "/p", "HTTP/1.1"), b"body!!", [("T", "1"), ("U", "2")], PAUSED]


def test_empty_lines_before_a_request_are_skipped_not_kept(feed_mode):
    conn = ServerConnection()
    events = feed(conn, b"\r\n\r\n" + GET + b"\r\n", feed_mode)
    assert events[0].raw == GET + b"\r\n"


def test_pipelined_requests_wait_for_start_next(feed_mode):
    conn = ServerConnection()
    data = GET + b"\r\n" + POST + b"Content-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\n"
    assert summary(feed(conn, data, feed_mode)) == [("GET", "/", "HTTP/1.1"), b"", [], PAUSED]
    assert conn.next_event() == PAUSED
    conn.start_next()
    assert summary(pending(conn)) == [("POST", "/p", "HTTP/1.1"), b"ok", [],
                                                      PAUSED]
    conn.start_next()
    assert summary(feed(conn, HOST + b"\r\n", feed_mode)) == [("GET", "/3", "HTTP/1.1"), b"",
                                                              [], PAUSED]
    with pytest.raises(RuntimeError):
        ServerConnection().start_next()


@pytest.mark.parametrize("request_line, headers, keep_alive, close", [
    (b"GET / HTTP/1.1", HOST, True, False),
    (b"GET / HTTP/1.1", HOST + b"Connection: close\r\n", True, True),
    (b"GET / HTTP/1.1", HOST + b"Connection: Keep-Alive, CLOSE\r\n", True, True),
    (b"GET / HTTP/1.0", b"", True, True),                               # RFC 9112 9.3
    (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", True, False),
    (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", False, True),
    (b"GET / HTTP/1.1", HOST, False, True),
    (b"POST / HTTP/1.1", HOST + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
     True, True),
])
def test_persistence(request_line, headers, keep_alive, close, feed_mode):
    conn = ServerConnection(keep_alive=keep_alive)
    head = feed(conn, request_line + b"\r\n" + headers + b"\r\n", feed_mode)[0]
    assert head.close is close


@pytest.mark.parametrize("data, expect", [
    (POST + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", True),
    (CHUNKED[:-2] + b"Expect: 100-Continue\r\n\r\n", True),
    (POST + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n", False),
    (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", False),
])
def test_expect_continue(data, expect, feed_mode):
    head = feed(ServerConnection(), data, feed_mode)[0]
    assert head.expect_continue is expect
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_rejections_carry_the_head_read_so_far(feed_mode):
    events = feed(ServerConnection(**LIMITS), POST + b"Content-Length: 70000\r\n\r\n", feed_mode)
    (rejected,) = events
    assert (rejected.status, rejected.head.method, rejected.head.target) == (413, "POST", "/p")
    assert "max_body_size (65536)" in rejected.reason
    events = feed(ServerConnection(**LIMITS), b"\x16\x03\x01", feed_mode)
    assert events[0].head.method is None
    assert events[0].reason == "this is not an HTTP request: b'\\x16'"


@pytest.mark.parametrize("data, reason", [
    (b"GET /inde", "the connection ended inside the request line"),
    (GET + b"X: y", "the connection ended inside the request header"),
    (POST + b"Content-Length: 10\r\n\r\nabc", "the connection ended after 3 of 10 body bytes"),
    (CHUNKED + b"a\r\nabc", "the connection ended after 3 of 10 body bytes"),
    (CHUNKED + b"3\r\nabc\r", "a chunk is not followed by CRLF"),
    (CHUNKED + b"3\r\nabc\r\n0\r\nT: 1", "the connection ended inside the chunked trailer"),
    (b"GET /" + b"a" * 1030, "the request line is longer than 1024 bytes (max_request_line)"),
    (GET + b"X: " + b"a" * 5000, "the request header is longer than 4087 bytes "
     "(max_header_size)"),
    (CHUNKED + b"3;" + b"x" * 5000, "the chunk size line is longer than 4096 bytes"),
    (b"GET / HTTP/1.1\n", "HTTP requires CRLF line endings; the request line ends in a bare LF"),
], ids=lambda value: value[:24] if isinstance(value, str) else "")
def test_reasons(data, reason, feed_mode):
    conn = ServerConnection(**LIMITS)
    events = feed(conn, data, feed_mode)
    if not isinstance(events[-1], Rejected):
        events += eof(conn)
    assert events[-1].reason == reason


def test_unlimited_body_size_streams_any_length(feed_mode):
    conn = ServerConnection(max_body_size=None)
    events = feed(conn, POST + b"Content-Length: 999999999999\r\n\r\n" + b"x" * 300, feed_mode)
    assert events[0].length == 999999999999
    assert sum(len(e.data) for e in events if isinstance(e, Data)) == 300
    assert events[-1] == NEED_DATA


# -- deadlines ----------------------------------------------------------------------

def test_waiting_for_the_first_request_is_a_408():
    clock = Clock()
    conn = ServerConnection(request_timeout=5, keep_alive_timeout=30, clock=clock)
    assert conn.deadline() == (None, 5, 408)
    event = conn.timed_out()
    assert (event.status, event.reason) == (408, "the request did not arrive within 5 s")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_the_whole_head_within_request_timeout_of_its_first_byte(feed_mode):
    clock = Clock()
    conn = ServerConnection(request_timeout=5, clock=clock)
    conn.receive_data(b"G")
    assert conn.next_event() == NEED_DATA
    assert conn.deadline() == (1005.0, 5, 408)
    for byte in b"ET / HTTP/1.1\r\nX: y":
        clock.now += 1          # every byte in time, yet the deadline does not move
        conn.receive_data(bytes([byte]))
        assert conn.next_event() == NEED_DATA
        assert conn.deadline().at == 1005.0
    assert conn.timed_out().status == 408


def test_each_body_read_within_request_timeout_then_idle_keep_alive():
    clock = Clock()
    conn = ServerConnection(request_timeout=5, keep_alive_timeout=30, clock=clock)
    assert summary(feed(conn, POST + b"Content-Length: 4\r\n\r\nab", "whole")) == [
        ("POST", "/p", "HTTP/1.1"), NEED_DATA]
    assert conn.deadline() == (None, 5, 408)
    conn.receive_data(b"cd")
    assert isinstance(conn.next_event(), Data)
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.deadline() is None
    conn.start_next()
    assert conn.deadline() == (None, 30, None)      # unchanged from request to request
    clock.now += 100
    assert isinstance(conn.timed_out(), ConnectionClosed)


def test_a_pipelined_head_starts_its_deadline_at_start_next():
    clock = Clock()
    conn = ServerConnection(request_timeout=5, clock=clock)
    feed(conn, GET + b"\r\nGET /2", "whole")
    clock.now += 3
    conn.start_next()
    assert conn.next_event() == NEED_DATA
    assert conn.deadline() == (1008.0, 5, 408)


def test_end_of_stream_between_requests_is_a_quiet_close():
    conn = ServerConnection()
    feed(conn, GET + b"\r\n", "whole")
    conn.start_next()
    assert isinstance(eof(conn)[0], ConnectionClosed)


# -- responses ----------------------------------------------------------------------

@pytest.mark.parametrize("method, status, lengths, chunked, expected", [
    ("GET", 100, [], False, (INTERIM, None)),
    ("GET", 103, [], False, (INTERIM, None)),
    ("GET", 101, [], False, (RAW, None)),
    ("CONNECT", 200, [], False, (RAW, None)),
    ("CONNECT", 407, ["3"], False, (FRAMED, 3)),
    ("GET", 200, ["12"], False, (FRAMED, 12)),
    ("GET", 200, ["1", "2"], False, (FRAMED, None)),
    ("GET", 200, ["x"], False, (FRAMED, None)),
    ("GET", 200, [], True, (FRAMED, None)),
    ("GET", 200, ["3"], True, (FRAMED, None)),
    ("HEAD", 200, ["12"], False, (FRAMED, None)),
    ("HEAD", 200, [], False, (FRAMED, None)),
    ("GET", 204, [], False, (FRAMED, None)),
    ("GET", 304, ["5"], False, (FRAMED, None)),
    ("GET", 200, [], False, (UNFRAMED, None)),
    ("POST", 500, [], False, (UNFRAMED, None)),
])
def test_response_framing(method, status, lengths, chunked, expected):
    assert response_framing(method, status, lengths, chunked) == expected


@pytest.mark.parametrize("version, close, value", [
    ("HTTP/1.1", False, None), ("HTTP/1.1", True, b"close"),
    ("HTTP/1.0", False, b"keep-alive"), ("HTTP/1.0", True, None),
])
def test_connection_value(version, close, value):
    assert connection_value(version, close) == value


def test_the_core_imports_no_socket():
    # The package's own modules loaded alone (a bare package object, so
    # that testservers/__init__.py and the servers do not count).
    code = ("import sys, types\n"
            "package = types.ModuleType('core')\n"
            "package.__path__ = [sys.argv[1]]\n"
            "sys.modules['core'] = package\n"
            "import core._httpproto\n"
            "print(sorted(m for m in ('socket', 'ssl', 'selectors', 'http.client') "
            "if m in sys.modules), sorted(m for m in sys.modules if m.startswith('core.')))")
    where = os.path.dirname(os.path.abspath(_httpproto.__file__))
    out = subprocess.run([sys.executable, "-c", code, where],
                         stdout=subprocess.PIPE, check=True, timeout=60).stdout
    assert out.strip() == b"[] ['core._httpevents', 'core._httpproto']"
