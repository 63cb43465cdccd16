"""How an expectation answers: a handler of its own, request.respond(),
streamed (chunked) bodies with pauses, truncated responses; strict mode;
expectations before a server handler; a handler that returns a value."""

import http.client
import json
import queue
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

import testservers
from conftest import TIMEOUT, http_call as call


def raw(server, request):
    """Send *request* on a new connection; return everything until EOF."""
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


# -- a handler per expectation, and respond() ---------------------------------------

def test_expectation_handler_computes_while_others_stay_canned(server):
    def total(request):
        items = request.record.json()["items"]
        request.respond(json={"total": sum(items)}, headers={"X-Count": len(items)})

    calc = server.expect("POST", "/total", handler=total)
    server.expect("GET", "/health", body="ok")
    status, body = call(server, "POST", "/total", b'{"items": [1, 2, 3]}')
    assert (status, json.loads(body)) == (200, {"total": 6})
    assert call(server, "GET", "/health") == (200, b"ok")
    assert call(server, "POST", "/total", b'{"items": []}')[1] == b'{"total": 0}'
    assert calc.count == 2 and "handler total" in repr(calc)


def test_expectation_handler_with_the_stdlib_api(server):
    def teapot(request):
        request.send_response(418)
        request.send_header("Content-Type", "text/plain")
        request.end_headers()
        request.wfile.write(b"short and stout " + request.body())

    server.expect("PUT", "/tea", handler=teapot, times=1)
    request = urllib.request.Request(server.url("/tea"), data=b"earl grey", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=TIMEOUT)
    assert info.value.code == 418 and info.value.read() == b"short and stout earl grey"
    info.value.close()


def test_expectation_handler_error_gives_500_and_is_raised(server):
    def broken(request):
        raise KeyError("nope")

    server.expect("GET", "/b", handler=broken)
    status, body = call(server, "GET", "/b")
    assert status == 500 and b"KeyError" in body
    (error,) = server.take_errors()
    assert isinstance(error, KeyError)


def test_respond_in_a_server_handler_and_twice_refused():
    seen = queue.Queue()

    def handler(request):
        request.respond(201, body="made", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        try:
            request.respond(body="again")
        except RuntimeError as exc:
            seen.put(exc)

    with testservers.TestHTTPServer(None, handler) as server:
        conn = server.http_connection()
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b"made")
        assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        conn.close()
        assert "after the response was started" in str(seen.get(timeout=TIMEOUT))


def test_respond_validates_like_expect():
    errors = queue.Queue()

    def handler(request):
        for kwargs in ({"status": "200"}, {"status": 700}, {"body": 5}, {"body": {"a": 1}},
                       {"truncate": 99}, {"chunk_delay": 1}):
            try:
                request.respond(**kwargs)
            except (TypeError, ValueError) as exc:
                errors.put(type(exc))
        request.respond(status=204)

    with testservers.TestHTTPServer(None, handler) as server:
        assert call(server, "GET", "/") == (204, b"")
    assert [errors.get_nowait() for _ in range(6)] == [
        TypeError, ValueError, TypeError, TypeError, ValueError, ValueError]


# -- streamed bodies ----------------------------------------------------------------

def test_iterable_body_is_sent_chunked(server):
    server.expect("GET", "/s", body=[b"first ", "second ", bytearray(b"third"), b""])
    data = raw(server, b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body == b"6\r\nfirst \r\n7\r\nsecond \r\n5\r\nthird\r\n0\r\n\r\n"
    assert call(server, "GET", "/s") == (200, b"first second third")     # answers again


def test_generator_body_is_streamed_as_it_is_made(server):
    # Each piece is made only after the client has read the one before:
    # the pieces go out as they come, not buffered to the end.
    got = queue.Queue()

    def pieces():
        for i in range(3):
            yield b"piece %d\n" % i
            assert got.get(timeout=TIMEOUT) == b"piece %d\n" % i

    server.expect("GET", "/feed", body=pieces(), times=1)
    conn = server.http_connection()
    conn.request("GET", "/feed")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    for _ in range(3):
        got.put(response.readline())
    assert response.read() == b""
    conn.close()


def test_chunk_delay_pauses_between_pieces(server):
    server.expect("GET", "/slow", body=[b"a", b"b", b"c"], chunk_delay=0.05)
    started = time.monotonic()
    assert call(server, "GET", "/slow") == (200, b"abc")
    assert time.monotonic() - started >= 0.1         # two pauses, none before the first


def test_read_timeout_of_a_client_between_pieces(server):
    server.expect("GET", "/stall", body=[b"head", b"never"], chunk_delay=30)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.2)
    conn.request("GET", "/stall")
    response = conn.getresponse()                   # the head came at once
    assert response.status == 200
    with pytest.raises(socket.timeout):
        response.read()
    conn.close()
    server.stop(timeout=TIMEOUT)                    # the pause is cut short


def test_stop_cuts_a_generator_stream_short():
    server = testservers.TestHTTPServer().start()
    server.expect("GET", "/", body=iter([b"1", b"2"]), chunk_delay=60, times=1)
    conn = server.http_connection()
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.read(1) == b"1"
    server.stop(timeout=TIMEOUT)                    # TimeoutError if it waited 60 s
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()


def test_streamed_body_to_http10_and_head(server):
    server.expect("GET", "/s", body=[b"one", b"two"], headers={"X-A": "1"})
    data = raw(server, b"GET /s HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head and b"Connection: close" in head and body == b"onetwo"
    conn = server.http_connection()
    conn.request("HEAD", "/s")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked" and response.read() == b""
    conn.request("GET", "/s")                       # the same connection goes on
    assert conn.getresponse().read() == b"onetwo"
    conn.close()


def test_streamed_body_with_the_tests_own_framing(server):
    server.expect("GET", "/cl", body=[b"12", b"345"], headers={"Content-Length": "5"},
                  chunk_delay=0.01)
    conn = server.http_connection()
    conn.request("GET", "/cl")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") is None and response.read() == b"12345"
    conn.close()


def test_a_bad_piece_is_an_error_and_closes(server):
    server.expect("GET", "/bad", body=iter([b"ok", 42]), times=1)
    conn = server.http_connection()
    conn.request("GET", "/bad")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    with pytest.raises(TypeError, match="bytes or str pieces, not 42"):
        server.wait_connections(2, TIMEOUT)         # raised at once
    assert [type(e) for e in server.take_errors()] == [TypeError]


# -- truncated responses ------------------------------------------------------------

def test_truncated_body_then_close(server):
    server.expect("GET", "/cut", body=b"0123456789", truncate=4)
    data = raw(server, b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 10" in head and body == b"0123"
    with pytest.raises(http.client.IncompleteRead):
        with urllib.request.urlopen(server.url("/cut"), timeout=TIMEOUT) as response:
            response.read()
    conn = server.http_connection()
    conn.request("GET", "/cut")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert info.value.partial == b"0123"
    conn.close()


def test_truncated_head_only(server):
    server.expect("GET", "/h", body="body", truncate=0)
    data = raw(server, b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.endswith(b"Content-Length: 4\r\n\r\n")


def test_truncated_stream_stops_mid_chunk(server):
    server.expect("GET", "/t", body=[b"abc", b"defgh", b"ij"], truncate=5)
    data = raw(server, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.partition(b"\r\n\r\n")[2] == b"3\r\nabc\r\n5\r\nde"
    conn = server.http_connection()
    conn.request("GET", "/t")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


# -- expect() validation of the answer ----------------------------------------------

def gen():
    yield b"x"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(status="200"), TypeError, "status must be an int"),
    (dict(status=True), TypeError, "status must be an int"),
    (dict(status=204, body="x"), ValueError, "a 204 response has no body"),
    (dict(status=304, body=[b"x"]), ValueError, "a 304 response has no body"),
    (dict(body={"a": 1}), TypeError, "for JSON, pass json="),
    (dict(body=[b"ok", 3]), TypeError, "bytes or str pieces, not 3"),
    (dict(body=gen()), ValueError, "can be sent once: pass times=1"),
    (dict(body=gen(), times=2), ValueError, "can be sent once"),
    (dict(headers="X-A: 1"), TypeError, "a mapping or a list of"),
    (dict(headers={"X A": "1"}), ValueError, "not a header name"),
    (dict(headers={"X-A": "1\r\nX-B: 2"}), ValueError, "holds CR, LF or NUL"),
    (dict(headers=[("X-A",)]), TypeError, "found \\('X-A',\\)"),
    (dict(delay="1"), TypeError, "delay must be a number"),
    (dict(chunk_delay=1), ValueError, "chunk_delay needs a streamed body"),
    (dict(body=[b"x"], chunk_delay=-0.1), ValueError, "chunk_delay must not be negative"),
    (dict(body=[b"x"], chunk_delay=None), TypeError, "chunk_delay must be a number"),
    (dict(body=b"abc", truncate=3), ValueError, "less than the body's 3 bytes"),
    (dict(body=b"abc", truncate=-1), ValueError, "at least 0"),
    (dict(body=b"abc", truncate=1.5), TypeError, "truncate must be None or an int"),
    (dict(body=b"abc", truncate=True), TypeError, "truncate must be None or an int"),
    (dict(times="2"), TypeError, "times must be None or an int"),
    (dict(ordered=1), TypeError, "ordered must be True or False"),
    (dict(handler="f"), TypeError, "handler must be a callable"),
    (dict(handler=lambda: None), TypeError, "must accept one positional argument"),
    (dict(handler=lambda r: None, body="x"), ValueError, "give handler or body"),
    (dict(handler=lambda r: None, status=201), ValueError, "give handler or status"),
    (dict(handler=lambda r: None, truncate=0), ValueError, "give handler or truncate"),
])
def test_answer_arguments_validated(server, kwargs, error, message):
    kwargs = dict(dict(method="GET", path="/"), **kwargs)
    with pytest.raises(error, match=message):
        server.expect(**kwargs)
    assert server.expectations == []


def test_generator_body_with_times_one_or_ordered(server):
    server.expect("GET", "/g", body=gen(), times=1)
    server.expect("GET", "/o", body=gen(), ordered=True)
    assert call(server, "GET", "/g") == (200, b"x")
    assert call(server, "GET", "/o") == (200, b"x")


# -- issue 10: expect() on a server with a handler; a handler's return value -------------

def test_expectations_answer_before_the_server_handler():
    def handler(request):
        request.respond(body="from the handler")

    with testservers.TestHTTPServer(None, handler) as server:
        exp = server.expect("GET", "/canned", body="from the expectation", times=1)
        assert call(server, "GET", "/canned") == (200, b"from the expectation")
        assert call(server, "GET", "/canned") == (200, b"from the handler")   # used up
        assert call(server, "GET", "/other") == (200, b"from the handler")
        assert exp.count == 1 and len(server.requests) == 3
    assert server.errors == []                      # no UnexpectedRequest with a handler


@pytest.mark.parametrize("value", ["hello", b"hello", (200, "ok"), 0])
def test_handler_returning_a_value_is_an_error_and_a_500(value):
    server = testservers.TestHTTPServer(None, lambda request: value).start()
    status, body = call(server, "GET", "/")
    assert status == 500 and b"TypeError" in body
    with pytest.raises(TypeError, match="wrote nothing and returned %s" % re.escape(repr(value))):
        server.stop()
    # What a handler that wrote its response returns is ignored: here the
    # byte count wfile.write() returned.
    with testservers.TestHTTPServer(
            None, lambda r: r.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")) \
            as server:
        assert call(server, "GET", "/") == (200, b"hi")
    assert server.errors == []


def test_expectation_handler_returning_a_value_is_an_error(server):
    server.expect("GET", "/", handler=lambda request: {"json": "meant"})
    assert call(server, "GET", "/")[0] == 500
    (error,) = server.take_errors()
    assert isinstance(error, TypeError) and "{'json': 'meant'}" in str(error)


# -- strict -------------------------------------------------------------------------

def test_strict_stop_raises_for_unused_expectations():
    server = testservers.TestHTTPServer(strict=True).start()
    server.expect("GET", "/used")
    server.expect("GET", "/never")
    server.expect("GET", "/twice", times=2)
    call(server, "GET", "/used")
    call(server, "GET", "/twice")
    server.restart()                                # not the end of the test: no check
    with pytest.raises(AssertionError) as info:
        server.stop()
    message = str(info.value)
    assert "2 expectations not used as declared" in message
    assert "/never" in message and "/twice" in message and "/used" not in message
    server.stop()                                   # raised once


def test_strict_with_everything_used_and_in_a_with_block():
    with testservers.TestHTTPServer(strict=True) as server:
        server.expect("GET", "/a", times=1)
        call(server, "GET", "/a")
    with pytest.raises(AssertionError, match="/b"):
        with testservers.TestHTTPServer(strict=True) as server:
            server.expect("GET", "/b")
    with testservers.TestHTTPServer() as server:     # not strict by default
        server.expect("GET", "/never")


def test_strict_does_not_hide_the_exception_leaving_a_with_block():
    with pytest.raises(ZeroDivisionError):
        with testservers.TestHTTPServer(strict=True) as server:
            server.expect("GET", "/never")
            1 / 0
    server.stop()                                   # nor raise later for it


def test_strict_validated():
    for value in ("yes", 1, None):
        with pytest.raises(TypeError, match="strict must be True or False"):
            testservers.TestHTTPServer(strict=value)


# -- process mode -------------------------------------------------------------------

def is_big(request):
    return request.json()["n"] > 10


def double(request):
    request.respond(json=request.record.json()["n"] * 2)


def test_new_options_cross_to_a_child_process():
    server = testservers.TestHTTPServer.in_process(strict=True)
    server.expect("POST", "/p?x=1", match_json={"a": [1]}, body=[b"a", b"b"])
    server.expect("POST", "/n", match=is_big, handler=double)
    server.start()
    try:
        assert call(server, "POST", "/p?x=1", b'{"a": [1.0]}') == (200, b"ab")
        assert call(server, "POST", "/n", b'{"n": 21}') == (200, b"42")
        assert call(server, "POST", "/n", b'{"n": 1}')[0] == 404
        assert "match is_big returned false" in str(server.take_errors()[0])
    finally:
        server.stop()
