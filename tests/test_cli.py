"""python -m testservers as a subprocess, driven by real clients."""

import logging
import logging.handlers
import os
import queue
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

import testservers
from conftest import TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_UNIX = hasattr(socket, "AF_UNIX")


class Sink:
    """A `python -m testservers ...` child whose output lines can be awaited."""

    def __init__(self, *args):
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "dev", "-W", "error", "-m", "testservers"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
            universal_newlines=True, encoding="utf-8")
        self.lines = queue.Queue()
        self.seen = []
        self.reader = threading.Thread(target=self._read)
        self.reader.start()
        first = self.expect(r"listening on")
        m = re.search(r"port (\d+)", first)
        self.port = int(m.group(1)) if m else None

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern):
        """Return the next line matching *pattern*, failing at EOF or TIMEOUT."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail("no line matching %r; saw %r" % (pattern, self.seen))
            if line is None:
                pytest.fail("the sink ended; no line matching %r; saw %r; stderr %r"
                            % (pattern, self.seen, self.proc.stderr.read()))
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def terminate(self):
        """SIGTERM it: it must exit 0 with nothing on stderr."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(TIMEOUT)
        finally:
            self.close()
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(TIMEOUT)
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.proc.returncode is None:
            self.close()


def run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "testservers"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                          env=env, universal_newlines=True, timeout=60)


def logger_for(handler, name):
    log = logging.getLogger("testservers.cli." + name)
    log.propagate = False
    log.handlers[:] = [handler]
    return log


def test_smtp_sink_prints_mail():
    with Sink("smtp") as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            client.sendmail("me@example.org", ["you@example.org"],
                            b"Subject: hello\r\n\r\nbody line\r\n")
        sink.expect(r"MESSAGE FOLLOWS")
        sink.expect(r"from: me@example.org\s+to: you@example.org")
        sink.expect(r"^Subject: hello$")
        sink.expect(r"^body line$")
        sink.expect(r"END MESSAGE")
        assert sink.terminate() == 0
        assert sink.stderr == ""


def test_smtp_sink_with_starttls_and_auth_takes_smtphandler():
    with Sink("smtp", "--require-starttls", "--auth", "ops:pw", "--require-auth") as sink:
        handler = logging.handlers.SMTPHandler(
            ("127.0.0.1", sink.port), "app@example.org", ["ops@example.org"], "Alert",
            credentials=("ops", "pw"), secure=(), timeout=TIMEOUT)
        logger_for(handler, "smtp").error("over STARTTLS")
        handler.close()
        sink.expect(r"^Subject: Alert$")
        sink.expect(r"^over STARTTLS$")
        assert sink.terminate() == 0 and sink.stderr == ""


@pytest.mark.parametrize("tls", [False, True])
def test_http_sink_prints_request_and_answers(tls):
    args = ["http", "--status", "201", "--body", "made", "--header", "X-Test: yes"]
    with Sink(*args + (["--tls"] if tls else [])) as sink:
        url = "%s://localhost:%d/things?a=1" % ("https" if tls else "http", sink.port)
        request = urllib.request.Request(url, data=b"name=value")
        context = testservers.client_ssl_context() if tls else None
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            assert response.status == 201 and response.read() == b"made"
            assert response.headers["X-Test"] == "yes"
        sink.expect(r"POST /things\?a=1 HTTP/1.1")
        sink.expect(r"^Content-Type: application/x-www-form-urlencoded$")
        sink.expect(r"^name=value$")
        assert sink.terminate() == 0 and sink.stderr == ""


def test_tcp_sink_prints_stream():
    with Sink("tcp") as sink:
        with socket.create_connection(("127.0.0.1", sink.port), TIMEOUT) as c:
            c.sendall(b"hello\x00")
        sink.expect(r"connection from")
        sink.expect(r"b'hello\\x00'")
        sink.expect(r"closed")
        assert sink.terminate() == 0 and sink.stderr == ""


def test_udp_sink_prints_datagrams():
    with Sink("udp") as sink:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"ping", ("127.0.0.1", sink.port))
        sink.expect(r"b'ping'")
        assert sink.terminate() == 0 and sink.stderr == ""


@pytest.mark.parametrize("transport", ["udp", "tcp"] + (["unix"] if HAS_UNIX else []))
def test_syslog_sink_with_sysloghandler(transport, tmp_path):
    path = str(tmp_path / "log")
    args = ["syslog"] + {"udp": [], "tcp": ["--tcp"], "unix": ["--unix", path]}[transport]
    with Sink(*args) as sink:
        if transport == "unix":
            handler = logging.handlers.SysLogHandler(path)
        else:
            handler = logging.handlers.SysLogHandler(
                ("127.0.0.1", sink.port),
                socktype=socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM)
        handler.setFormatter(logging.Formatter("app: %(message)s"))
        log = logger_for(handler, "syslog")
        log.error("first sp\xe4m")
        log.warning("second")
        handler.close()
        sink.expect(r"^user\.err app: first sp\xe4m$")
        sink.expect(r"^user\.warning app: second$")
        assert sink.terminate() == 0 and sink.stderr == ""


@pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger not installed")
@pytest.mark.parametrize("options", [["--udp", "--rfc5424"], ["--udp", "--rfc3164"],
                                     ["--tcp", "--rfc5424"],
                                     ["--tcp", "--rfc5424", "--octet-count"]])
def test_syslog_sink_with_logger_command(options):
    args = ["syslog"] + (["--tcp"] if "--tcp" in options else [])
    with Sink(*args) as sink:
        subprocess.run(["logger", "--server", "127.0.0.1", "--port", str(sink.port),
                        "-p", "local3.notice", "-t", "tagged"] + options + ["hello there"],
                       check=True, timeout=TIMEOUT)
        line = sink.expect(r"hello there")
        assert line.startswith("local3.notice [") and "tagged" in line
        assert sink.terminate() == 0 and sink.stderr == ""


def test_ctrl_c_exits_zero():
    with Sink("udp") as sink:
        sink.proc.send_signal(signal.SIGINT)
        assert sink.proc.wait(TIMEOUT) == 0
        sink.close()
        assert sink.stderr == ""


@pytest.mark.parametrize("command", ["demo", "smtp", "http", "tcp", "udp", "syslog"])
def test_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["tcp", "--port", "70000"], "invalid port 70000"),
    (["udp", "--port", "http"], "invalid port 'http'"),
    (["smtp", "--auth", "nocolon"], "expected USER:PASSWORD"),
    (["tcp", "--unix", "/nonexistent-dir/sock"], "cannot listen on /nonexistent-dir/sock"),
    (["bogus"], "invalid choice"),
])
def test_bad_arguments_one_line_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_one_line_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("tcp", "--port", str(busy.getsockname()[1]))
    assert result.returncode == 2
    assert "Address already in use" in result.stderr and result.stderr.count("\n") == 1


def test_demo_runs_every_server():
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-m", "testservers",
                             "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=env, universal_newlines=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for expected in ("SocketHandler", "DatagramHandler", "SysLogHandler", "SMTPHandler",
                     "HTTPHandler", "received ERROR record: 'disk /var is full'",
                     "user 'ops', TLS on", "stopped in", "left nothing behind"):
        assert expected in result.stdout


def test_conflicting_options_one_line_exit_2():
    result = run("smtp", "--tls", "--starttls")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "exclude each other" in result.stderr and "Traceback" not in result.stderr


def test_sink_ends_quietly_when_its_reader_goes_away():
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-X", "dev", "-m", "testservers", "udp"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=env, universal_newlines=True)
    try:
        port = int(re.search(r"port (\d+)", proc.stdout.readline()).group(1))
        proc.stdout.close()             # as `| head -1` does after its line
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"nobody reads this", ("127.0.0.1", port))
        assert proc.wait(TIMEOUT) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
