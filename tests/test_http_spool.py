"""Large request bodies spool to temporary files; stop() removes them.

Bodies up to spool_threshold stay in memory; larger ones go to a file in
a directory of the server's, read back by Request.body on each access and
by Request.body_file() piece by piece, and by the handler's rfile.
"""

import hashlib
import os
import socket
import tracemalloc

import pytest

import testservers
from conftest import TIMEOUT


def digest_rfile(request):
    """A handler that reads a Content-Length body from rfile in pieces."""
    left, digest = int(request.headers.get("Content-Length", 0)), hashlib.sha256()
    while left:
        piece = request.rfile.read(min(left, 65536))
        assert piece
        digest.update(piece)
        left -= len(piece)
    request.respond(200, body=digest.hexdigest())


def upload(server, body, chunked=False):
    conn = server.http_connection()
    try:
        if chunked:
            conn.request("POST", "/up", body=iter([body[i:i + 7000]
                                                   for i in range(0, len(body), 7000)]),
                         encode_chunked=True)
        else:
            conn.request("POST", "/up", body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def spool_dir(server):
    return server._spool_dir


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_large_body_is_spooled_and_given_back(chunked):
    body = os.urandom(50000)
    seen = []

    def handler(request):
        seen.append((request.body() == body, request.record.spooled))
        request.respond(200, body=b"ok")

    server = testservers.TestHTTPServer(("127.0.0.1", 0), handler, spool_threshold=4096)
    with server:
        assert upload(server, body, chunked) == (200, b"ok")
        (record,) = server.requests
        assert record.spooled and record.body_size == len(body)
        assert "_body" not in vars(record) or not isinstance(vars(record)["_body"], bytes)
        assert record.body == body
        with record.body_file() as f:
            assert f.read(1000) == body[:1000] and f.read() == body[1000:]
        where = spool_dir(server)
        assert len(os.listdir(where)) == 1
    assert seen == [(True, True)]
    assert not os.path.exists(where)            # stop() removed the files
    with pytest.raises(RuntimeError, match="stop"):
        record.body


def test_a_small_body_stays_in_memory_and_outlives_stop():
    server = testservers.TestHTTPServer(("127.0.0.1", 0), digest_rfile, spool_threshold=4096)
    with server:
        upload(server, b"x" * 4096)
    (record,) = server.requests
    assert not record.spooled and record.body == b"x" * 4096
    with record.body_file() as f:
        assert f.read() == b"x" * 4096
    assert spool_dir(server) is None


def test_the_handler_reads_a_spooled_body_from_rfile_in_pieces():
    body = os.urandom(300000)
    with testservers.TestHTTPServer(("127.0.0.1", 0), digest_rfile,
                                    spool_threshold=1000) as server:
        assert upload(server, body) == (200, hashlib.sha256(body).hexdigest().encode())


def test_a_refused_or_abandoned_body_leaves_no_file():
    with testservers.TestHTTPServer(("127.0.0.1", 0), digest_rfile, spool_threshold=100,
                                    max_body_size=5000) as server:
        status, _ = upload(server, b"y" * 6000, chunked=True)       # 413 mid-body
        assert status == 413
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4000\r\n\r\n"
                         + b"z" * 3000)
        server.wait_connections(2, TIMEOUT, closed=True)
        where = spool_dir(server)
        assert where is not None and os.listdir(where) == []


def test_memory_stays_bounded_with_no_body_limit():
    size = 24 * 1024 * 1024
    block = b"m" * 65536
    with testservers.TestHTTPServer(("127.0.0.1", 0), digest_rfile,
                                    max_body_size=None) as server:
        tracemalloc.start()
        try:
            with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n" % size)
                for _ in range(size // len(block)):
                    sock.sendall(block)
                f = sock.makefile("rb")
                reply = f.read()
                f.close()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert server.requests[0].body_size == size and server.requests[0].spooled
    assert peak < 4 * 1024 * 1024, "peak %d bytes" % peak


@pytest.mark.parametrize("value, exc", [(-1, ValueError), (1.5, TypeError), ("1", TypeError),
                                        (True, TypeError)])
def test_spool_threshold_is_checked(value, exc):
    # A wrong type is a TypeError, a wrong value a ValueError (issue 10).
    with pytest.raises(exc, match="spool_threshold"):
        testservers.TestHTTPServer(("127.0.0.1", 0), spool_threshold=value)


def test_a_handler_class_reads_a_spooled_chunked_body_as_sent():
    import http.server

    class Decode(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            digest = hashlib.sha256()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    assert self.rfile.readline() == b"\r\n"
                    break
                digest.update(self.rfile.read(size))
                assert self.rfile.read(2) == b"\r\n"
            out = digest.hexdigest().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    body = os.urandom(200000)
    with testservers.TestHTTPServer(("127.0.0.1", 0), Decode, spool_threshold=4096) as server:
        assert upload(server, body, chunked=True) == (
            200, hashlib.sha256(body).hexdigest().encode())
        assert server.requests[0].spooled and server.requests[0].body == body
