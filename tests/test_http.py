"""TestHTTPServer as an HTTP/1.1 server: keep-alive, pipelining, framing,
100-continue, request bodies, every 4xx, timeouts, errors and quiet."""

import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

import testservers
from conftest import PROMPT, TIMEOUT


@pytest.fixture
def make():
    """Build started servers; stop them (raising what they recorded) after."""
    made = []

    def make(handler=None, **options):
        server = testservers.TestHTTPServer(("127.0.0.1", 0), handler, **options)
        made.append(server)
        return server.start()
    yield make
    for server in made:
        server.stop()


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), TIMEOUT)


def read_response(f, method="GET"):
    """Read one response from the binary file *f*: (status, headers, body).

    Header names are lower-cased.  A body without Content-Length is read
    to the end of the stream.
    """
    line = f.readline()
    assert line.startswith(b"HTTP/1.1 ") and line.endswith(b"\r\n"), line
    status = int(line.split()[1])
    headers = {}
    while True:
        line = f.readline()
        assert line.endswith(b"\r\n"), line
        if line == b"\r\n":
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return status, headers, body


def exchange(server, data):
    """Send *data* on a new connection; return the response and whether the
    server closed the connection after it."""
    with connect(server) as sock:
        sock.sendall(data)
        f = sock.makefile("rb")
        response = read_response(f)
        closed = f.read(1) == b""
        f.close()
    return response + (closed,)


def echo(request):
    """Answer with the method, path and body, framed by Content-Length."""
    reply = b"%s %s %s" % (request.command.encode(), request.path.encode(), request.body())
    request.send_response(200)
    request.send_header("Content-Length", str(len(reply)))
    request.end_headers()
    request.wfile.write(reply)


def logging_style(request):
    """test_logging's handler: read Content-Length bytes, frame nothing."""
    if request.command == "POST":
        request.rfile.read(int(request.headers["Content-Length"]))
    request.send_response(200)
    request.end_headers()


# -- connections -------------------------------------------------------------

def test_keep_alive_serves_many_requests_on_one_connection(make):
    server = make(echo)
    conn = server.http_connection()
    for i in range(5):
        conn.request("POST", "/n/%d" % i, body=b"x" * i)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") is None
        assert response.read() == b"POST /n/%d %s" % (i, b"x" * i)
    conn.close()
    requests = server.wait_requests(5)
    assert len({id(r.connection) for r in requests}) == 1
    assert [r.status for r in requests] == [200] * 5


def test_pipelined_requests_answered_in_order(make):
    server = make(echo)
    with connect(server) as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
                     + b"POST /last HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nend")
        f = sock.makefile("rb")
        bodies = [read_response(f)[2] for _ in range(6)]
        f.close()
    assert bodies == [b"GET /%d " % i for i in range(5)] + [b"POST /last end"]
    assert server.connections[0].id == 1 and len(server.connections) == 1


def test_connection_close_is_honoured(make):
    server = make(echo)
    status, headers, body, closed = exchange(
        server, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, body, closed) == (200, b"GET /a ", True)
    assert headers["connection"] == "close"


def test_http10_closes_unless_keep_alive_asked(make):
    server = make(echo)
    status, headers, body, closed = exchange(server, b"GET /old HTTP/1.0\r\n\r\n")
    assert (status, body, closed) == (200, b"GET /old ", True)
    assert "connection" not in headers
    with connect(server) as sock:
        f = sock.makefile("rb")
        for i in range(2):
            sock.sendall(b"GET /k%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            status, headers, body = read_response(f)
            assert (status, body, headers["connection"]) == (200, b"GET /k%d " % i, "keep-alive")
        f.close()
    assert [r.version for r in server.requests] == ["HTTP/1.0"] * 3


def test_unframed_response_gets_length_and_close(make):
    # test_logging's handlers write send_response(200); end_headers() only.
    server = make(logging_style)
    conn = server.http_connection()
    conn.request("POST", "/log", body=b"a=1")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == "0"
    assert response.getheader("Connection") == "close"
    assert response.read() == b""
    conn.close()
    assert server.wait_requests(1)[0].body == b"a=1"


def test_unframed_response_kept_alive_when_asked(make):
    def handler(request):
        request.send_response(200)
        request.end_headers()
        request.wfile.write(b"no length given")

    server = make(handler, close_unframed=False)
    conn = server.http_connection()
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == "15"
        assert response.getheader("Connection") is None
        assert response.read() == b"no length given"
    conn.close()
    assert len(server.connections) == 1


def test_flush_streams_unframed_body_and_closes(make):
    go = threading.Event()

    def handler(request):
        request.send_response(200)
        request.end_headers()
        request.wfile.write(b"first;")
        request.wfile.flush()
        assert go.wait(TIMEOUT)
        request.wfile.write(b"second")

    server = make(handler)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"first;"):
            data += sock.recv(4096)       # arrives before the handler ends
        go.set()
        f = sock.makefile("rb")
        rest = f.read()
        f.close()
    head, _, body = (data + rest).partition(b"\r\n\r\n")
    assert body == b"first;second"
    assert b"Connection: close" in head and b"Content-Length" not in head


def test_large_unframed_response_streams_then_closes(make):
    piece = bytes(range(256)) * 2048            # 512 KiB

    def handler(request):
        request.send_response(200)
        request.end_headers()
        for _ in range(4):                      # past the 1 MiB held
            request.wfile.write(piece)

    server = make(handler)
    conn = server.http_connection()
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.getheader("Content-Length") is None
    assert response.getheader("Connection") == "close"
    assert response.read() == piece * 4
    conn.close()


def test_framed_body_writes_go_out_as_written(make):
    go = threading.Event()

    def handler(request):
        request.send_response(200)
        request.send_header("Content-Length", "10")
        request.end_headers()
        request.wfile.write(b"01234")
        assert go.wait(TIMEOUT)
        request.wfile.write(b"56789")

    server = make(handler)
    conn = server.http_connection()
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.read(5) == b"01234"
    go.set()
    assert response.read() == b"56789"
    conn.request("GET", "/")             # still kept alive
    assert conn.getresponse().read() == b"0123456789"
    conn.close()


def test_chunked_response_from_handler(make):
    def handler(request):
        request.send_response(200)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        for piece in (b"he", b"llo"):
            request.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        request.wfile.write(b"0\r\n\r\n")

    server = make(handler)
    conn = server.http_connection()
    for _ in range(2):
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    conn.close()


def test_head_204_and_304_get_no_length_added(make):
    def handler(request):
        request.send_response({"/204": 204, "/304": 304}.get(request.path, 200))
        request.end_headers()

    server = make(handler)
    with connect(server) as sock:
        f = sock.makefile("rb")
        for method, path in (("GET", "/204"), ("GET", "/304"), ("HEAD", "/")):
            sock.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method.encode(), path.encode()))
            status, headers, body = read_response(f, method)
            assert "content-length" not in headers and body == b""
            assert "connection" not in headers
        f.close()
    assert [r.status for r in server.wait_requests(3)] == [204, 304, 200]


def test_handler_that_writes_nothing_hangs_up(make):
    server = make(lambda request: None)
    conn = server.http_connection()
    conn.request("GET", "/")
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()


def test_short_body_closes_instead_of_leaving_client_waiting(make):
    def handler(request):
        request.send_response(200)
        request.send_header("Content-Length", "10")
        request.end_headers()
        request.wfile.write(b"short")

    server = make(handler)
    conn = server.http_connection()
    conn.request("GET", "/")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


def test_close_with_pipelined_requests_unread_keeps_first_response(make):
    server = make(logging_style)           # answers with Connection: close
    with connect(server) as sock:
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
        f = sock.makefile("rb")
        status, headers, body = read_response(f)
        assert (status, headers["connection"]) == (200, "close")
        assert f.read() == b""             # the rest unanswered, no reset
        f.close()


def test_close_with_unread_bytes_does_not_cut_a_large_response(make):
    # More pipelined requests than the server reads at once: some are still
    # unread in the kernel when it closes.  A close() then sends a reset,
    # which throws away what the send buffer still holds of the response,
    # unless the server first reads what the client sent.
    big = b"x" * (8 << 20)

    def handler(request):
        request.send_response(200)
        request.send_header("Connection", "close")
        request.send_header("Content-Length", str(len(big)))
        request.end_headers()
        request.wfile.write(big)

    server = make(handler)
    with connect(server) as sock:
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)
        f = sock.makefile("rb")
        status, headers, body = read_response(f)
        assert (status, len(body)) == (200, len(big))
        assert f.read() == b""
        f.close()


def test_faults_apply_to_http(make):
    server = make(echo)
    with server.drip(chunk=7, interval=0):
        conn = server.http_connection()
        conn.request("GET", "/drip")
        assert conn.getresponse().read() == b"GET /drip "
        conn.close()
    with server.hang_up():
        conn = server.http_connection()
        conn.request("GET", "/")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
        conn.close()


def test_raw_bytes_pass_through_and_close(make):
    server = make(lambda request: request.wfile.write(b"not HTTP at all"))
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f = sock.makefile("rb")
        assert f.read() == b"not HTTP at all"
        f.close()


# -- request bodies ------------------------------------------------------------

def test_expect_100_continue_answered_before_body(make):
    server = make(echo)
    with connect(server) as sock:
        sock.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        f = sock.makefile("rb")
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert f.readline() == b"\r\n"
        sock.sendall(b"data")
        assert read_response(f)[2] == b"PUT /up data"
        f.close()


def test_expect_100_with_http_client_and_too_large_body(make):
    server = make(echo, max_body_size=10)
    status, _, body, closed = exchange(
        server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                b"Expect: 100-continue\r\n\r\n")
    assert (status, closed) == (413, True)     # no 100 first: read_response checks
    assert b"max_body_size" in body
    assert server.requests[0].rejected


def test_chunked_upload_decoded_in_body_framed_in_rfile(make):
    # rfile reads the body as http.server handlers expect it: in chunked
    # coding, with the trailers (the chunk sizes are the server's own).
    seen = []

    def handler(request):
        seen.append((request.body(), request.rfile.read()))
        echo(request)

    server = make(handler)
    with connect(server) as sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"8;ext=1\r\nxx\r\nxxxx\r\n5\r\nyyyyy\r\n0\r\nX-Sum: 13\r\n\r\n")
        f = sock.makefile("rb")
        assert read_response(f)[2] == b"POST /c xx\r\nxxxxyyyyy"
        f.close()
    assert seen == [(b"xx\r\nxxxxyyyyy", b"d\r\nxx\r\nxxxxyyyyy\r\n0\r\nX-Sum: 13\r\n\r\n")]
    (record,) = server.requests
    assert record.body == b"xx\r\nxxxxyyyyy" and record.trailers == [("X-Sum", "13")]


def test_chunked_upload_from_http_client(make):
    server = make(echo)
    conn = server.http_connection()
    conn.request("POST", "/gen", body=iter([b"a" * 1000, b"b" * 5000]), encode_chunked=True)
    assert conn.getresponse().read() == b"POST /gen " + b"a" * 1000 + b"b" * 5000
    conn.close()
    assert server.requests[0].headers["Transfer-Encoding"] == "chunked"


def test_large_body_and_unlimited_size(make):
    server = make(echo, max_body_size=None)
    payload = bytes(range(256)) * 8192         # 2 MiB
    request = urllib.request.Request(server.url("/big"), data=payload, method="PUT")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.read() == b"PUT /big " + payload


HOST = b"Host: x\r\n"
BAD_REQUESTS = [
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: abc\r\n\r\n", "Content-Length"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n", "Content-Length"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     "Content-Length"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
     "chunk size"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
     "CRLF"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: identity\r\n\r\n", "chunked"),
    (501, b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", "gzip"),
    (413, b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 101\r\n\r\n", "max_body_size"),
    (413, b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"40\r\n" + b"x" * 64 + b"\r\n40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n", "max_body_size"),
    (414, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n" + HOST + b"\r\n", "request line"),
    (431, b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"b" * 600 + b"\r\n\r\n", "header"),
    (431, b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: 1\r\n" % i for i in range(11))
     + b"\r\n", "more than 10"),
    (400, b"GET / HTTP/1.1\n" + HOST + b"\n", "CRLF"),
    (400, b"GET / HTTP/1.1\r\n" + HOST + b"\n", "CRLF"),
    (400, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "not an HTTP request"),
    (400, b"HELLO\r\n\r\n", "request line"),
    (400, b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n", "request line"),
    (400, b"GET / HTTP/one\r\n" + HOST + b"\r\n", "version"),
    (505, b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", "HTTP/2.0"),
    (400, b"GET / HTTP/1.1\r\n\r\n", "Host"),
    (400, b"GET / HTTP/1.1\r\n" + HOST + b" folded\r\n\r\n", "folding"),
    (400, b"GET / HTTP/1.1\r\n" + HOST + b"Bad Name: 1\r\n\r\n", "malformed"),
    (417, b"GET / HTTP/1.1\r\n" + HOST + b"Expect: magic\r\n\r\n", "magic"),
    (400, b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nab", "ended after 2"),
]


@pytest.mark.parametrize("status, data, reason", BAD_REQUESTS,
                         ids=["%d-%d" % (s, i) for i, (s, _, _) in enumerate(BAD_REQUESTS)])
def test_bad_request_answered_and_closed(make, status, data, reason):
    called = []
    server = make(called.append, max_request_line=256, max_header_size=512,
                  max_headers=10, max_body_size=100)
    with connect(server) as sock:
        sock.sendall(data)
        if data.endswith(b"ab"):
            sock.shutdown(socket.SHUT_WR)       # a body cut short
        f = sock.makefile("rb")
        got, headers, body = read_response(f)
        assert f.read() == b""                 # and the server closed
        f.close()
    assert got == status
    assert headers["connection"] == "close"
    assert body.startswith(b"%d " % status) and reason.encode() in body
    (record,) = server.wait_requests(1)
    assert record.status == status and reason in record.rejected
    assert not called


def test_leading_empty_lines_ignored(make):
    server = make(echo)
    assert exchange(server, b"\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )[2] == b"GET /x "


def test_both_lengths_chunked_wins_then_close(make):
    server = make(echo)
    status, _, body, closed = exchange(
        server, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert (status, body, closed) == (200, b"POST / ok", True)


# -- timeouts ------------------------------------------------------------------

def test_silent_client_gets_408(make):
    server = make(echo, request_timeout=0.1)
    with connect(server) as sock:
        f = sock.makefile("rb")
        status, headers, body = read_response(f)
        assert f.read() == b""
        f.close()
    assert status == 408 and headers["connection"] == "close"
    assert server.requests[0].status == 408


def test_half_sent_request_gets_408(make):
    server = make(echo, request_timeout=0.1)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost:")
        f = sock.makefile("rb")
        assert read_response(f)[0] == 408
        f.close()


def test_silent_tls_client_gets_408(make):
    server = make(echo, tls=True, request_timeout=0.1)
    context = testservers.client_ssl_context()
    with context.wrap_socket(connect(server), server_hostname="localhost") as sock:
        f = sock.makefile("rb")
        assert read_response(f)[0] == 408
        f.close()
    assert server.requests[0].tls


def test_idle_keep_alive_closed_without_408(make):
    server = make(echo, keep_alive_timeout=0.1)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f = sock.makefile("rb")
        assert read_response(f)[0] == 200
        assert f.read() == b""                 # closed, not a word
        f.close()
    (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.closed_by == "server"
    assert len(server.requests) == 1


# -- handler errors and quiet -------------------------------------------------

def test_handler_error_gives_500_and_server_goes_on(make):
    def handler(request):
        if request.path == "/boom":
            raise ValueError("kaboom")
        echo(request)

    server = make(handler)
    conn = server.http_connection()
    conn.request("GET", "/boom")
    response = conn.getresponse()
    assert response.status == 500 and b"kaboom" in response.read()
    conn.request("GET", "/fine")                # the same connection
    assert conn.getresponse().read() == b"GET /fine "
    conn.close()
    with pytest.raises(ValueError, match="kaboom"):
        server.wait_requests(5)                 # raised at once, not at 5
    assert [type(e) for e in server.take_errors()] == [ValueError]
    assert [r.status for r in server.requests] == [500, 200]


def test_pytest_fail_in_handler_gives_500():
    server = testservers.TestHTTPServer(None, lambda request: pytest.fail("seen wrong")).start()
    status, _, body, _ = exchange(
        server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 500 and b"seen wrong" in body
    with pytest.raises(pytest.fail.Exception, match="seen wrong"):
        server.stop()


def test_handler_error_after_sending_closes(make):
    def handler(request):
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        request.wfile.write(b"partial")
        raise RuntimeError("half way")

    server = make(handler)
    conn = server.http_connection()
    conn.request("GET", "/")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    with pytest.raises(RuntimeError, match="half way"):
        server.stop()


def test_error_reraised_by_stop():
    server = testservers.TestHTTPServer(None, lambda request: 1 / 0).start()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url(), timeout=TIMEOUT)
    assert info.value.code == 500
    info.value.close()
    with pytest.raises(ZeroDivisionError):
        server.stop()
    server.stop()                       # raised once


def test_quiet_unless_logging_asked(make, capfd, caplog):
    server = make(logging_style)
    urllib.request.urlopen(server.url("/quiet"), timeout=TIMEOUT).close()
    exchange(server, b"BAD\r\n\r\n")
    loud = make(logging_style, log=True)
    with caplog.at_level(logging.INFO, logger="testservers"):
        urllib.request.urlopen(loud.url("/loud"), timeout=TIMEOUT).close()
        exchange(loud, b"BAD\r\n\r\n")
        loud.wait_requests(2)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    messages = [r.getMessage() for r in caplog.records if r.name == "testservers"]
    assert any('"GET /loud HTTP/1.1" 200' in m for m in messages)
    assert any(" 400 " in m for m in messages)
    assert not any("/quiet" in m for m in messages)


def test_stop_with_idle_keep_alive_client_is_prompt(make):
    server = make(echo)
    conn = server.http_connection()
    conn.request("GET", "/")
    conn.getresponse().read()
    started = time.monotonic()
    server.stop()
    # A stop() that waited for the idle client would take its 60 s.
    assert time.monotonic() - started < PROMPT
    conn.close()


def test_options_validated():
    for options in ({"request_timeout": 0}, {"max_headers": -1}, {"max_body_size": -5}):
        with pytest.raises(ValueError):
            testservers.TestHTTPServer(None, None, **options)
    for options in ({"keep_alive_timeout": "1"}, {"max_body_size": 1.5}, {"keep_alive": 1},
                    {"log": "yes"}, {"close_unframed": None}, {"spool_threshold": "big"}):
        with pytest.raises(TypeError):
            testservers.TestHTTPServer(None, None, **options)


def test_test_logging_signature():
    # TestHTTPServer(addr, handler, poll_interval, log, sslctx), as in test_logging.
    server = testservers.TestHTTPServer(("localhost", 0), echo, 0.01, False, None)
    server.start()
    server.ready.wait()
    assert server.server_port == server.port
    conn = http.client.HTTPConnection("localhost:%d" % server.server_port, timeout=TIMEOUT)
    conn.request("DELETE", "/any/method")
    assert conn.getresponse().read() == b"DELETE /any/method "
    conn.close()
    server.stop()


# -- the adapter's socket I/O and response writer, without a server -------------------

class FakeSocket:
    """Count settimeout() calls; recv() returns what is queued."""

    def __init__(self, *pieces):
        self.pieces, self.timeouts, self.sent = list(pieces), [], []
        self.timeout = None

    def gettimeout(self):
        return self.timeout

    def settimeout(self, value):
        self.timeouts.append(value)
        self.timeout = value

    def recv(self, size):
        return self.pieces.pop(0) if self.pieces else b""

    def sendall(self, data):
        self.sent.append(bytes(data))

    def fileno(self):
        return -1


def test_the_pump_switches_the_socket_timeout_only_on_a_change():
    from testservers._httpproto import ServerConnection
    from testservers._pump import _Pump
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    sock = FakeSocket(*[request] * 5)
    pump = _Pump(None, sock, None)
    proto = ServerConnection(request_timeout=10, keep_alive_timeout=60)
    for _ in range(5):
        deadline = proto.deadline()
        proto.receive_data(pump.recv(65536, deadline.at, deadline.each))
        while not proto.complete:
            proto.next_event()
        proto.start_next()
    assert sock.timeouts == [10, 60]        # the first request's, then the idle one's


def test_a_head_from_send_header_is_not_scanned_again(make, monkeypatch):
    from testservers import _httpwire

    def scan(self):
        raise AssertionError("the head was scanned")
    monkeypatch.setattr(_httpwire._ResponseWriter, "_scan", scan)
    server = make(echo)
    conn = server.http_connection()
    try:
        for _ in range(2):
            conn.request("POST", "/s", body=b"abc")
            assert conn.getresponse().read() == b"POST /s abc"
    finally:
        conn.close()


def test_the_request_object_of_a_callable_handler_has_http_servers_attributes(make):
    # The request line, the headers and rfile are made when first read; each
    # request of a keep-alive connection sees its own.
    seen = []

    def handler(request):
        seen.append((request.requestline, request.raw_requestline, request.command,
                     request.path, request.request_version, request.headers["X-N"],
                     request.headers is request.record.headers, request.rfile.read()))
        request.headers = "set by the handler"
        request.raw_requestline = b"set\r\n"
        seen.append((request.headers, request.raw_requestline))
        request.respond(200, body=b"ok")

    server = make(handler)
    conn = server.http_connection()
    for n, body in ((1, b"one"), (2, b"")):
        conn.request("POST", "/p?%d" % n, body=body, headers={"X-N": str(n)})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
    conn.close()
    assert seen == [
        ("POST /p?1 HTTP/1.1", b"POST /p?1 HTTP/1.1\r\n", "POST", "/p?1", "HTTP/1.1", "1",
         True, b"one"), ("set by the handler", b"set\r\n"),
        ("POST /p?2 HTTP/1.1", b"POST /p?2 HTTP/1.1\r\n", "POST", "/p?2", "HTTP/1.1", "2",
         True, b""), ("set by the handler", b"set\r\n")]
    assert [r.headers["X-N"] for r in server.requests] == ["1", "2"]
