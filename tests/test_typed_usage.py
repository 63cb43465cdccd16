"""A test written as a strictly typed user would write it.

It runs in the suite like any other, and ``mypy --strict`` checks it
against the installed package's type stub (README, "Contributing"), so
the stub stays precise enough for real use: starting servers, reading
``port``, records and waits, ``expect()`` and faults.  Only the standard
library and testservers are imported, so mypy needs nothing else.
"""

import asyncio
import json
import logging
import logging.handlers
import smtplib
import socket
import socketserver
import threading
import unittest
import urllib.request
from typing import List, Optional

from testservers import (Connection, Datagram, Fault, Message, Request, TestHTTPServer,
                         TestSMTPServer, TestTCPServer, TestUDPServer, TestUnixStreamServer,
                         client_ssl_context, log_records)

TIMEOUT = 10.0


def test_tcp_records_and_waits() -> None:
    with TestTCPServer(("127.0.0.1", 0)) as server:
        port: int = server.port
        with socket.create_connection(("127.0.0.1", port), TIMEOUT) as client:
            client.sendall(b"hello")
        connections: List[Connection] = server.wait_connections(1, closed=True)
        data: Optional[bytes] = connections[0].data
        assert data == b"hello"
        assert server.wait_for(lambda: len(server.connections) == 1, TIMEOUT)


def test_handler_and_errors() -> None:
    seen = threading.Event()

    def handle(request: socketserver.StreamRequestHandler) -> None:
        request.wfile.write(request.rfile.readline().upper())
        seen.set()

    server = TestTCPServer(None, handle).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), TIMEOUT) as client:
            client.sendall(b"ping\n")
            assert client.makefile("rb").readline() == b"PING\n"
        assert seen.wait(TIMEOUT)
        errors: List[BaseException] = server.take_errors()
        assert errors == []
    finally:
        server.stop()


def test_udp_and_logging() -> None:
    with TestUDPServer() as server:
        handler = logging.handlers.DatagramHandler("127.0.0.1", server.port)
        handler.handle(logging.makeLogRecord({"msg": "disk full"}))
        handler.close()
        datagrams: List[Datagram] = server.wait_datagrams(1)
        records: List[logging.LogRecord] = log_records(datagrams[0].data)
        assert records[0].getMessage() == "disk full"


def test_http_expect() -> None:
    with TestHTTPServer(tls=True) as server:
        expectation = server.expect("GET", "/users/7", json={"id": 7}, times=1)
        with urllib.request.urlopen(server.url("/users/7"), timeout=TIMEOUT,
                                    context=client_ssl_context()) as response:
            assert json.load(response) == {"id": 7}
        requests: List[Request] = expectation.wait(1)
        assert requests[0].path == "/users/7"
        assert expectation.count == 1
        server.check_expectations()


def test_smtp_message() -> None:
    with TestSMTPServer() as server:
        with smtplib.SMTP("127.0.0.1", server.port, "localhost", timeout=TIMEOUT) as client:
            client.sendmail("a@example.org", ["b@example.org"],
                            b"Subject: typed\r\n\r\nbody\r\n")
        messages: List[Message] = server.wait_messages(1)
        assert messages[0].message["Subject"] == "typed"
        assert messages[0].rcpttos == ["b@example.org"]


def test_faults_and_unix() -> None:
    with TestUnixStreamServer() as server:
        assert server.port is None
        fault: Fault = server.refuse()
        fault.undo()
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(TIMEOUT)
            client.connect(server.server_address)
        server.wait_connections(1, closed=True)


def test_awaitable_wait() -> None:
    with TestTCPServer() as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as client:
            client.sendall(b"async")
        (connection,) = asyncio.run(server.async_wait_connections(1, closed=True))
        assert connection.data == b"async"


class UnittestStyle(unittest.TestCase):
    def setUp(self) -> None:
        self.server = TestTCPServer().start_for(self)

    def test_port(self) -> None:
        self.assertIsInstance(self.server.port, int)
