"""TestHTTPServer without a handler (expectations), its records and URLs,
HTTPS, the Unix variant, and logging.handlers.HTTPHandler against it."""

import http.client
import json
import logging
import logging.handlers
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import testservers
from conftest import PROMPT, TIMEOUT
from test_http import connect, read_response

HAS_UNIX = hasattr(socket, "AF_UNIX")


def get(server, path, method="GET", data=None, headers=None):
    """Make one request with urllib; return (status, headers, body)."""
    request = urllib.request.Request(server.url(path), data=data, method=method,
                                     headers=headers or {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        response = exc
    with response:
        return response.status, response.headers, response.read()


# -- expectations ------------------------------------------------------------------

def test_bodies_bytes_str_json_and_headers(server):
    server.expect("GET", "/bytes", body=b"\x00\x01")
    server.expect("GET", "/str", body="h\xe9", status=201, headers={"X-A": "1"})
    server.expect("POST", "/json", json={"ok": [1, 2]}, headers=[("Set-Cookie", "a=1"),
                                                                ("Set-Cookie", "b=2")])
    status, headers, body = get(server, "/bytes")
    assert (status, body, headers["Content-Length"]) == (200, b"\x00\x01", "2")
    assert headers["Content-Type"] is None
    status, headers, body = get(server, "/str")
    assert (status, body.decode("utf-8"), headers["X-A"]) == (201, "h\xe9", "1")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, headers, body = get(server, "/json", "POST", b"{}")
    assert json.loads(body) == {"ok": [1, 2]}
    assert headers["Content-Type"] == "application/json"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]


def test_canned_responses_keep_alive(server):
    server.expect("GET", "/a", body="x")
    conn = server.http_connection()
    for _ in range(3):
        conn.request("GET", "/a")
        response = conn.getresponse()
        assert response.read() == b"x" and response.getheader("Connection") is None
    conn.request("HEAD", "/a")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == "1" and response.read() == b""
    conn.close()
    assert len(server.connections) == 1


def test_match_by_pattern_query_method_and_headers(server):
    server.expect("GET", re.compile(r"/items/\d+"), body="item")
    server.expect("GET", "/search", query="q=a+b", body="raw query")
    server.expect("GET", "/search", query={"q": "x", "n": ["1", "2"]}, body="parsed")
    server.expect(None, "/any", body="any method")
    server.expect("GET", "/auth", match_headers={"Authorization": "Bearer t"}, body="in")
    server.expect("GET", "/auth", status=401)
    assert get(server, "/items/42")[2] == b"item"
    assert get(server, "/search?q=a+b")[2] == b"raw query"
    assert get(server, "/search?n=1&q=x&n=2")[2] == b"parsed"
    assert get(server, "/any", "PATCH", b"")[2] == b"any method"
    assert get(server, "/auth", headers={"Authorization": "Bearer t"})[2] == b"in"
    assert get(server, "/auth")[0] == 401
    assert get(server, "/items/x")[0] == 404
    errors = server.take_errors()
    assert [type(e) for e in errors] == [testservers.UnexpectedRequest]
    assert "GET /items/x" in str(errors[0])


def test_once_then_unmatched_is_an_error_at_stop():
    server = testservers.TestHTTPServer().start()
    exp = server.expect("GET", "/once", body="one", times=1)
    assert get(server, "/once")[2] == b"one"
    status, _, body = get(server, "/once")
    assert status == 404 and b"no expectation matches GET /once" in body
    assert exp.count == 1 and exp.remaining == 0
    with pytest.raises(testservers.UnexpectedRequest, match="GET /once"):
        server.stop()
    server.stop()


def test_times_tried_before_always(server):
    server.expect("GET", "/r", body="default")
    server.expect("GET", "/r", body="first two", times=2)
    assert [get(server, "/r")[2] for _ in range(3)] == [b"first two"] * 2 + [b"default"]


def test_ordered_expectations(server):
    first = server.expect("POST", "/step", body="1", ordered=True)
    server.expect("POST", "/step", body="2", ordered=True)
    server.expect("GET", "/done", body="3", ordered=True)
    assert get(server, "/done")[0] == 404          # out of order
    error, = server.take_errors()
    assert "next ordered one is POST /step" in str(error)
    assert [get(server, p, m, b"")[2] for m, p in
            (("POST", "/step"), ("POST", "/step"), ("GET", "/done"))] == [b"1", b"2", b"3"]
    assert first.requests[0].method == "POST"
    server.check_expectations()


def test_allow_unmatched():
    with testservers.TestHTTPServer(allow_unmatched=True) as server:
        assert get(server, "/nothing")[0] == 404
    assert server.errors == []


def test_check_expectations_names_unused(server):
    server.expect("GET", "/used")
    server.expect("GET", "/never")
    server.expect("GET", "/twice", times=2)
    get(server, "/used")
    get(server, "/twice")
    with pytest.raises(AssertionError) as info:
        server.check_expectations()
    message = str(info.value)
    assert "/never" in message and "/twice" in message and "/used" not in message
    get(server, "/twice")
    get(server, "/never")
    server.check_expectations()
    server.clear_expectations()
    assert server.expectations == []


def test_expectation_wait(server):
    exp = server.expect("POST", "/hook", status=204)
    threading.Thread(target=get, args=(server, "/hook", "POST", b"payload")).start()
    (request,) = exp.wait(timeout=TIMEOUT)
    assert request.body == b"payload"
    server.wait_for(lambda: request.status == 204, TIMEOUT)
    server.wait_connections(1, TIMEOUT, closed=True)    # the thread is done
    with pytest.raises(TimeoutError, match="2 requests matching POST /hook"):
        exp.wait(2, timeout=0.05)


def test_delay_and_stop_cuts_it_short():
    server = testservers.TestHTTPServer().start()
    server.expect("GET", "/slow", body="late", delay=0.05)
    started = time.monotonic()
    assert get(server, "/slow")[2] == b"late"
    assert time.monotonic() - started >= 0.05
    server.expect("GET", "/stuck", delay=60)
    with connect(server) as sock:
        sock.sendall(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
        server.wait_requests(2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < PROMPT      # not the delay's 60 s


@pytest.mark.parametrize("kwargs, error", [
    (dict(method=1, path="/"), TypeError),
    (dict(method="GET", path="no-slash"), ValueError),
    (dict(method="GET", path="/", status=99), ValueError),
    (dict(method="GET", path="/", body="x", json=1), ValueError),
    (dict(method="GET", path="/", times=0), ValueError),
    (dict(method="GET", path="/", body=3), TypeError),
    (dict(method="GET", path="/", headers={"X": None}), TypeError),
])
def test_expect_validates(server, kwargs, error):
    with pytest.raises(error):
        server.expect(**kwargs)


# -- records -----------------------------------------------------------------------

def test_request_record_fields(server):
    server.expect("POST", "/form", status=202)
    status, _, _ = get(server, "/form?x=1&x=2&y=", "POST", b"name=caf%C3%A9&n=1",
                       {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                        "X-Trace": "abc"})
    (r,) = server.wait_requests(1)
    assert (r.method, r.target, r.path, r.query) == ("POST", "/form?x=1&x=2&y=", "/form",
                                                     "x=1&x=2&y=")
    assert r.params == {"x": ["1", "2"], "y": [""]}
    assert r.form() == {"name": ["caf\xe9"], "n": ["1"]}
    assert r.text() == "name=caf%C3%A9&n=1"
    assert r.headers["x-trace"] == "abc" and r.version == "HTTP/1.1"
    assert r.client_address[0] == "127.0.0.1" and r.tls is False
    assert r.connection is server.connections[0]
    assert r.status == 202 and r.rejected is None
    assert "POST /form" in repr(r) and "202" in repr(r)


def test_json_record_and_absolute_form(server):
    server.expect("PUT", "/j")
    with connect(server) as sock:
        sock.sendall(b"PUT http://example.test/j?a=1 HTTP/1.1\r\nHost: example.test\r\n"
                     b"Content-Length: 8\r\n\r\n[1,2,3]\n")
        f = sock.makefile("rb")
        assert read_response(f)[0] == 200
        f.close()
    (r,) = server.requests
    assert (r.path, r.query, r.json()) == ("/j", "a=1", [1, 2, 3])
    server.clear_records()
    assert server.requests == []


def test_urls(tmp_path):
    with testservers.TestHTTPServer() as server:
        assert server.url() == "http://127.0.0.1:%d/" % server.port
        assert server.url("x?y=1") == "http://127.0.0.1:%d/x?y=1" % server.port
    with testservers.TestHTTPServer(("0.0.0.0", 0)) as server:
        assert server.url("/a") == "http://127.0.0.1:%d/a" % server.port
    with testservers.TestHTTPServer(tls=True) as server:
        assert server.url().startswith("https://127.0.0.1:")
    if HAS_UNIX:
        path = str(tmp_path / "h.sock")
        with testservers.TestUnixHTTPServer(path) as server:
            assert server.url("/p") == "http+unix://%s/p" % urllib.parse.quote(path, safe="")


def test_ipv6_url_has_brackets():
    try:
        server = testservers.TestHTTPServer(("::1", 0))
    except OSError as exc:
        pytest.skip("IPv6 loopback not available: %s" % exc)
    server.expect("GET", "/six", body="6")
    with server:
        assert server.url("/six") == "http://[::1]:%d/six" % server.port
        assert get(server, "/six")[2] == b"6"
        assert server.requests[0].client_address[0] == "::1"


# -- HTTPS and Unix ----------------------------------------------------------------

def test_https_with_bundled_ca_verifies():
    context = testservers.client_ssl_context()
    with testservers.TestHTTPServer(tls=True) as server:
        server.expect("GET", "/s", body="secret")
        with urllib.request.urlopen(server.url("/s"), timeout=TIMEOUT,
                                    context=context) as response:
            assert response.read() == b"secret"
        conn = http.client.HTTPSConnection("localhost", server.port, timeout=TIMEOUT,
                                           context=context)
        conn.request("GET", "/s")
        assert conn.getresponse().read() == b"secret"
        conn.close()
        assert [r.tls for r in server.wait_requests(2)] == [True, True]
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(server.url("/s"), timeout=TIMEOUT)   # not trusted


def test_sslctx_argument_and_plain_client_refused():
    sslctx = testservers.server_ssl_context()
    with testservers.TestHTTPServer(("127.0.0.1", 0), None, 0.5, False, sslctx) as server:
        server.expect("GET", "/", body="tls")
        conn = server.http_connection()
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"tls"
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        plain.request("GET", "/")
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.getresponse()
        plain.close()


@pytest.mark.skipif(not HAS_UNIX, reason="needs Unix sockets")
@pytest.mark.parametrize("tls", [False, True])
def test_unix_http_server(tmp_path, tls):
    server = testservers.TestUnixHTTPServer(str(tmp_path / "u.sock"), tls=tls)
    server.expect("POST", "/u", json={"unix": True})
    with server:
        conn = server.http_connection()
        conn.request("POST", "/u", body=b"{}")
        assert json.loads(conn.getresponse().read()) == {"unix": True}
        conn.close()
        (r,) = server.requests
        assert r.tls is tls and r.body == b"{}"


# -- logging.handlers.HTTPHandler ------------------------------------------------

@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_http_handler_get_and_post(logger, secure):
    # test_logging's HTTPHandlerTest.handle_request, unchanged.
    seen = []

    def handle_request(request):
        log_data = urllib.parse.urlparse(request.path)
        post_data = None
        if request.command == "POST":
            rlen = int(request.headers["Content-Length"])
            post_data = request.rfile.read(rlen)
        seen.append((request.command, log_data, post_data,
                     request.headers["Authorization"]))
        request.send_response(200)
        request.end_headers()

    server = testservers.TestHTTPServer(("localhost", 0), handle_request, 0.01, tls=secure)
    with server:
        handler = logging.handlers.HTTPHandler(
            "localhost:%d" % server.server_port, "/frob", secure=secure,
            context=testservers.client_ssl_context() if secure else None,
            credentials=("foo", "bar"))
        logger.addHandler(handler)
        for method in ("GET", "POST"):
            handler.method = method
            logger.error("sp\xe4m")
        server.wait_requests(2)
    (get_, post) = seen
    assert get_[0] == "GET" and get_[1].path == "/frob" and get_[2] is None
    assert post[0] == "POST" and post[1].path == "/frob"
    for data in (urllib.parse.parse_qs(get_[1].query),
                 urllib.parse.parse_qs(post[2].decode("utf-8"))):
        assert data["name"] == [logger.name]
        assert data["funcName"] == ["test_http_handler_get_and_post"]
        assert data["msg"] == ["sp\xe4m"]
    assert get_[3] == post[3] == "Basic Zm9vOmJhcg=="
    assert [r.status for r in server.requests] == [200, 200]


@pytest.mark.parametrize("how", ["keep_alive=False", "Connection: close"])
def test_http_handler_with_expectation(logger, how):
    # HTTPHandler never closes its connection: answer with Connection: close,
    # or the socket it drops warns (an error under -W error).
    server = testservers.TestHTTPServer(keep_alive=how == "Connection: close")
    with server:
        exp = server.expect("POST", "/log", status=204, headers={"Connection": "close"}
                            if how == "Connection: close" else None)
        logger.addHandler(logging.handlers.HTTPHandler(
            "127.0.0.1:%d" % server.port, "/log", method="POST"))
        logger.warning("hello %s", "there")
        (r,) = exp.wait(timeout=TIMEOUT)
        assert r.form()["msg"] == ["hello %s"] and r.form()["args"] == ["('there',)"]
        server.check_expectations()


def test_keep_alive_false_closes_after_each_response():
    with testservers.TestHTTPServer(keep_alive=False) as server:
        server.expect("GET", "/", body="x")
        conn = server.http_connection()
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.getheader("Connection") == "close" and response.read() == b"x"
        conn.close()
        assert len(server.wait_connections(2)) == 2
