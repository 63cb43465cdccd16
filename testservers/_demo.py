"""python -m testservers demo: every server, driven by the stdlib clients.

Each step starts a server, drives it with the clients people test
(logging's handlers, smtplib, urllib), waits for the records, prints what
arrived and how long start and stop took, and stops it.
"""

import logging
import logging.handlers
import os
import platform
import shutil
import smtplib
import socket
import tempfile
import time
import urllib.request

from ._logformats import log_records, parse_syslog


def _ms(seconds):
    return "%.1f ms" % (seconds * 1000)


def _logger(name, handler):
    logger = logging.getLogger("testservers.demo." + name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    return logger


def _socket_handler(server, out):
    handler = logging.handlers.SocketHandler("127.0.0.1", server.port)
    log = _logger("tcp", handler)
    log.error("disk %s is full", "/var")
    log.warning("retrying in %d s", 5)
    handler.close()
    (conn,) = server.wait_connections(1, closed=True)
    for record in log_records(conn.data):
        out("  received %s record: %r" % (record.levelname, record.getMessage()))
    out("  over 1 connection of %d bytes" % conn.bytes_received)


def _datagram_handler(server, out):
    handler = logging.handlers.DatagramHandler("127.0.0.1", server.port)
    _logger("udp", handler).info("one datagram per record")
    handler.close()
    for datagram in server.wait_datagrams(1):
        (record,) = log_records(datagram.data)
        out("  received %s record: %r" % (record.levelname, record.getMessage()))


def _syslog_handler(server, out, address):
    handler = logging.handlers.SysLogHandler(address)
    handler.ident = "demo: "
    _logger("syslog", handler).error("sp\xe4m over syslog")
    handler.close()
    for datagram in server.wait_datagrams(1):
        out("  received syslog message: %s" % parse_syslog(datagram.data))


def _smtp_handler(server, out):
    handler = logging.handlers.SMTPHandler(
        ("127.0.0.1", server.port), "app@example.org", ["ops@example.org"],
        "Disk full", credentials=("ops", "s3cret"), secure=(), timeout=10)
    _logger("smtp", handler).critical("the disk is full")
    handler.close()
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="localhost",
                      timeout=10) as client:
        client.starttls()
        client.login("ops", "s3cret")
        client.sendmail("demo@example.org", ["a@example.org", "b@example.org"],
                        b"Subject: plain smtplib\r\n\r\nhello\r\n")
    for message in server.wait_messages(2):
        out("  received mail from %s to %s: Subject %r (user %r, TLS %s)" % (
            message.mailfrom, ", ".join(message.rcpttos), message.message["Subject"],
            message.user, "on" if message.tls else "off"))


def _http_handler(server, out):
    from ._tls import client_ssl_context
    server.expect("POST", "/log", status=204)
    server.expect("GET", "/health", json={"status": "ok"})
    handler = logging.handlers.HTTPHandler(
        "localhost:%d" % server.port, "/log", method="POST", secure=True,
        context=client_ssl_context())
    _logger("http", handler).error("over HTTPS, verified")
    handler.close()
    with urllib.request.urlopen(server.url("/health").replace("127.0.0.1", "localhost"),
                                context=client_ssl_context(), timeout=10) as response:
        out("  urllib got %d %s" % (response.status, response.read().decode()))
    for request in server.wait_requests(2):
        out("  received %s %s%s" % (request.method, request.path,
                                     " msg=%r" % request.form()["msg"][0]
                                     if request.method == "POST" else ""))


def _step(out, title, server, drive):
    started = time.perf_counter()
    server.start()
    start_time = time.perf_counter() - started
    where = server.server_address if server.port is None else "%s port %d" % (
        server.server_address[0], server.port)
    out("%s on %s (started in %s)" % (title, where, _ms(start_time)))
    try:
        drive()
    finally:
        started = time.perf_counter()
        server.stop()
        out("  stopped in %s" % _ms(time.perf_counter() - started))


def run_demo(stream):
    """Run the demo, printing to *stream*; return 0."""
    from ._datagram import TestUDPServer, TestUnixDatagramServer
    from ._http import TestHTTPServer
    from ._smtp import TestSMTPServer
    from ._stream import TestTCPServer

    def out(line):
        stream.write(line + "\n")
        stream.flush()

    out("testservers demo on Python %s (%s)" % (platform.python_version(), platform.system()))
    tmp = tempfile.mkdtemp(prefix="testservers-demo-")
    try:
        tcp = TestTCPServer(("127.0.0.1", 0))
        _step(out, "TestTCPServer + SocketHandler", tcp, lambda: _socket_handler(tcp, out))
        udp = TestUDPServer(("127.0.0.1", 0))
        _step(out, "TestUDPServer + DatagramHandler", udp, lambda: _datagram_handler(udp, out))
        syslog = TestUDPServer(("127.0.0.1", 0))
        _step(out, "TestUDPServer + SysLogHandler", syslog,
              lambda: _syslog_handler(syslog, out, ("127.0.0.1", syslog.port)))
        if hasattr(socket, "AF_UNIX"):
            path = os.path.join(tmp, "log")
            unix = TestUnixDatagramServer(path)
            _step(out, "TestUnixDatagramServer + SysLogHandler", unix,
                  lambda: _syslog_handler(unix, out, path))
        smtp = TestSMTPServer(("127.0.0.1", 0), None, auth={"ops": "s3cret"},
                              starttls="required")
        _step(out, "TestSMTPServer (STARTTLS, AUTH) + SMTPHandler, smtplib", smtp,
              lambda: _smtp_handler(smtp, out))
        # HTTPHandler never closes its connection: keep_alive=False closes it
        # from our side, so its socket is not left for the garbage collector.
        http = TestHTTPServer(("127.0.0.1", 0), None, tls=True, keep_alive=False)
        _step(out, "TestHTTPServer (HTTPS) + HTTPHandler, urllib", http,
              lambda: _http_handler(http, out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out("Every server started, served and stopped, and left nothing behind.")
    return 0
