"""BaseHTTPRequestHandler subclasses as TestHTTPServer handlers, unchanged.

The handlers are written the way suites write them for
http.server.HTTPServer (CPython's test_urllib2_localnet, test_httplib):
basic and digest authentication, a proxy that reads absolute-form request
lines, a handler that frames its own chunked response, one that decodes a
chunked upload itself, HTTP/1.0 handlers, overrides of handle() and
handle_one_request().  Records, faults, TLS and stop() keep working.
"""

import hashlib
import http.client
import http.server
import socket
import threading
import urllib.error
import urllib.request

import pytest

import testservers
from conftest import TIMEOUT


def opener(*handlers):
    """A urllib opener that ignores the environment's proxies."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)


class Quiet(http.server.BaseHTTPRequestHandler):
    """Keep the log lines instead of printing them."""

    lines = []

    def log_message(self, format, *args):
        self.lines.append(format % args)


def read_body(handler):
    """Read a request body from rfile as http.server handlers do: by
    Content-Length, or by decoding the chunked coding line by line."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b""):
                    pass        # trailers
                return body
            body += handler.rfile.read(size)
            assert handler.rfile.read(2) == b"\r\n"
    return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))


class Echo(Quiet):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.reply(b"%s %s" % (self.command.encode(), self.path.encode()))

    def do_POST(self):
        self.reply(read_body(self))

    do_PUT = do_POST

    def reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def serve():
    made = []

    def serve(handler_class, **options):
        server = testservers.TestHTTPServer(("127.0.0.1", 0), handler_class, **options)
        made.append(server)
        return server.start()
    yield serve
    for server in made:
        server.stop()


def test_a_handler_class_is_accepted_and_keeps_alive(serve):
    server = serve(Echo)
    conn = server.http_connection()
    try:
        for i in range(3):
            conn.request("GET", "/%d" % i)
            response = conn.getresponse()
            assert (response.status, response.version, response.read()) == (
                200, 11, b"GET /%d" % i)
    finally:
        conn.close()
    assert [r.target for r in server.requests] == ["/0", "/1", "/2"]
    assert [r.status for r in server.requests] == [200, 200, 200]
    (connection,) = server.connections
    assert all(r.connection is connection for r in server.requests)


def test_something_else_than_a_handler_class_is_refused():
    import socketserver
    with pytest.raises(TypeError, match="calls its handler as handler"):
        testservers.TestHTTPServer(("127.0.0.1", 0), socketserver.StreamRequestHandler)


@pytest.mark.parametrize("framing", ["Content-Length", "chunked"])
def test_the_handler_reads_the_body_from_rfile_as_sent(serve, framing):
    server = serve(Echo)
    body = b"x" * 70000 + b"end"
    conn = server.http_connection()
    try:
        if framing == "chunked":
            conn.request("POST", "/up", body=iter([body[:1000], body[1000:]]),
                         encode_chunked=True)
        else:
            conn.request("POST", "/up", body=body)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, body)
        conn.request("GET", "/after")       # the same connection goes on
        assert conn.getresponse().read() == b"GET /after"
    finally:
        conn.close()
    assert server.requests[0].body == body


class Old(Quiet):
    """http.server's defaults: HTTP/1.0, no Content-Length."""

    server_version = "OldServer/1.0"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"old style")


def test_an_http10_handler_keeps_its_status_line_and_closes(serve):
    server = serve(Old)
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        reply = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            reply += piece
    assert reply.startswith(b"HTTP/1.0 200 OK\r\nServer: OldServer/1.0 Python/")
    assert reply.endswith(b"\r\n\r\nold style")
    assert Quiet.lines[-1].startswith('"GET / HTTP/1.1" 200')
    assert server.requests[0].status == 200


def test_keep_alive_off_closes_after_each_response(serve):
    server = serve(Echo, keep_alive=False)
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        f = sock.makefile("rb")
        reply = f.read()
        f.close()
    assert reply.count(b"HTTP/1.1 200 ") == 1 and b"Connection: close\r\n" in reply
    assert [r.target for r in server.requests] == ["/1"]


class Basic(Echo):
    """Basic authentication as test_urllib2_localnet's handler does it."""

    def do_GET(self):
        if self.headers.get("Authorization") != "Basic dXNlcjpwYXNz":    # user:pass
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.reply(b"welcome")


def test_basic_auth_with_urllib(serve):
    server = serve(Basic)
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, server.url(), "user", "pass")
    with opener(urllib.request.HTTPBasicAuthHandler(passwords)).open(server.url("/secret"),
                                                                     timeout=TIMEOUT) as f:
        assert f.read() == b"welcome"
    assert [r.status for r in server.requests] == [401, 200]


class Digest(Echo):
    """RFC 7616 digest authentication (MD5, qop=auth), as a suite writes it."""

    nonce = "0123456789abcdef"

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Digest "):
            fields = dict(part.strip().split("=", 1) for part in auth[7:].split(","))
            fields = {k: v.strip('"') for k, v in fields.items()}

            def md5(text):
                return hashlib.md5(text.encode()).hexdigest()
            ha1 = md5("user:test:pass")
            ha2 = md5("%s:%s" % (self.command, fields["uri"]))
            expected = md5(":".join([ha1, fields["nonce"], fields["nc"], fields["cnonce"],
                                     fields["qop"], ha2]))
            if fields.get("response") == expected:
                return self.reply(b"digest ok")
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Digest realm="test", qop="auth", '
                         'nonce="%s", algorithm=MD5' % self.nonce)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_digest_auth_with_urllib(serve):
    server = serve(Digest)
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, server.url(), "user", "pass")
    with opener(urllib.request.HTTPDigestAuthHandler(passwords)).open(server.url("/d"),
                                                                      timeout=TIMEOUT) as f:
        assert f.read() == b"digest ok"
    assert [r.status for r in server.requests] == [401, 200]
    assert server.requests[1].headers["Authorization"].startswith("Digest ")


class Proxy(Echo):
    """A proxy that answers for the origin named in the request line."""

    def do_GET(self):
        assert self.path.startswith("http://"), self.path
        self.reply(b"proxied " + self.path.encode())


def test_a_proxy_handler_reads_absolute_form(serve):
    server = serve(Proxy)
    proxies = urllib.request.ProxyHandler({"http": server.url()})
    with urllib.request.build_opener(proxies).open("http://origin.invalid/page?q=1",
                                                   timeout=TIMEOUT) as f:
        assert f.read() == b"proxied http://origin.invalid/page?q=1"
    (record,) = server.requests
    assert (record.target, record.path, record.query) == (
        "http://origin.invalid/page?q=1", "/page", "q=1")


class OwnChunks(Quiet):
    """test_httplib's way: the handler writes the chunked coding itself."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (b"hello ", b"chunked ", b"world"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


def test_a_handler_that_writes_its_own_chunked_coding(serve):
    server = serve(OwnChunks)
    conn = server.http_connection()
    try:
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == b"hello chunked world"
    finally:
        conn.close()
    assert len(server.connections) == 1


class OwnLoop(Echo):
    """Overrides of handle() and handle_one_request(), counted."""

    calls = []

    def handle(self):
        self.calls.append("handle")
        super().handle()

    def handle_one_request(self):
        self.calls.append("one")
        super().handle_one_request()


def test_overrides_of_handle_and_handle_one_request(serve):
    OwnLoop.calls = []
    server = serve(OwnLoop)
    conn = server.http_connection()
    try:
        for _ in range(2):
            conn.request("GET", "/x")
            assert conn.getresponse().read() == b"GET /x"
    finally:
        conn.close()
    server.wait_connections(1, TIMEOUT, closed=True)
    assert OwnLoop.calls == ["handle", "one", "one", "one"]     # the last one reads EOF


class Continue(Echo):
    pass


def test_expect_100_continue_sends_one_interim_response(serve):
    server = serve(Continue)
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
        sock.sendall(b"PUT /c HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 4\r\n\r\n")
        f = sock.makefile("rb")
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert f.readline() == b"\r\n"
        sock.sendall(b"data")
        assert f.readline() == b"HTTP/1.1 200 OK\r\n"
        while f.readline() != b"\r\n":
            pass
        assert f.read(4) == b"data"
        f.close()


class Broken(Echo):
    def do_GET(self):
        raise ValueError("broken handler")


def test_a_handler_error_is_a_500_and_raised_by_stop():
    server = testservers.TestHTTPServer(("127.0.0.1", 0), Broken).start()
    try:
        conn = server.http_connection()
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, b"broken handler" in response.read()) == (500, True)
        conn.close()
    finally:
        with pytest.raises(ValueError, match="broken handler"):
            server.stop()
    assert server.requests[0].status == 500


def test_refused_requests_are_answered_and_recorded_before_the_handler(serve):
    server = serve(Echo, max_body_size=10)
    conn = server.http_connection()
    try:
        conn.request("POST", "/big", body=b"x" * 11)
        response = conn.getresponse()
        assert response.status == 413
        response.read()
    finally:
        conn.close()
    (record,) = server.requests
    assert record.status == 413 and "max_body_size" in record.rejected


def test_over_tls(serve):
    server = serve(Echo, tls=True)
    conn = server.http_connection()
    try:
        conn.request("POST", "/tls", body=b"secret")
        assert conn.getresponse().read() == b"secret"
    finally:
        conn.close()
    assert server.requests[0].tls


def test_a_fault_applies(serve):
    server = serve(Echo)
    with server.garbage(b"nonsense"):
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert sock.recv(100) == b"nonsense"
    assert server.connections[0].fault == "garbage"


def test_stop_ends_an_idle_keep_alive_connection():
    server = testservers.TestHTTPServer(("127.0.0.1", 0), Echo).start()
    conn = server.http_connection()
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"GET /"
        server.stop(timeout=TIMEOUT)            # the connection waits for its next request
    finally:
        conn.close()
    assert not server.ready.is_set()


def test_the_stdlib_file_handler(serve, tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"from a file")

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

    server = serve(Files)
    with opener().open(server.url("/hello.txt"), timeout=TIMEOUT) as f:
        assert f.read() == b"from a file"
    with pytest.raises(urllib.error.HTTPError) as info:
        opener().open(server.url("/missing"), timeout=TIMEOUT)
    info.value.close()
    assert info.value.code == 404
    assert [r.status for r in server.requests] == [200, 404]


def test_concurrent_connections_each_get_their_own_handler(serve):
    server = serve(Echo)
    results, errors = [], []

    def client(i):
        try:
            conn = server.http_connection()
            conn.request("POST", "/%d" % i, body=b"%d" % i)
            results.append(conn.getresponse().read())
            conn.close()
        except Exception as exc:        # reported below
            errors.append(exc)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors and sorted(results) == sorted(b"%d" % i for i in range(8))


class Looks(Echo):
    seen = []

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        Looks.seen.append(hasattr(self, "_headers_buffer"))
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.mark.parametrize("style", ["class", "callable"])
def test_no_private_stdlib_buffer_is_used(serve, style):
    # send_response_only(), send_header(), end_headers() and
    # flush_headers() are overridden as documented, so http.server's
    # private _headers_buffer is never made.
    Looks.seen = []
    server = serve(Looks if style == "class" else (lambda request: Looks.do_GET(request)))
    conn = server.http_connection()
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
    finally:
        conn.close()
    assert Looks.seen == [False]
