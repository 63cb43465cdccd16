"""python -m testservers as a subprocess, driven by real clients."""

import http.client
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

try:
    import resource
except ImportError:     # not on Windows
    resource = None

import testservers
from conftest import TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_UNIX = hasattr(socket, "AF_UNIX")


def _ipv6_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6 = socket.has_ipv6 and _ipv6_works()


class Child:
    """A Python child whose output lines can be awaited.

    It runs under faulthandler (``-X faulthandler``): when it hangs, the
    test fails with its stderr and a traceback of each of its threads,
    which SIGABRT makes it print.  *timeout* bounds each wait; it only
    costs time when the child hangs.
    """

    def __init__(self, args, timeout=TIMEOUT, sigint=signal.default_int_handler):
        self.timeout = timeout
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8")
        # A child inherits an ignored SIGINT, and the sink keeps it ignored,
        # as it should under nohup: a test run that is itself a background
        # job of a shell would see no Ctrl-C reach its sinks.  The child
        # gets *sigint* (exec turns a handler into the default action).
        previous = signal.signal(signal.SIGINT, sigint)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-X", "dev", "-X", "faulthandler", "-W", "error"] + list(args),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
                universal_newlines=True, encoding="utf-8")
        finally:
            signal.signal(signal.SIGINT, previous)
        if hasattr(resource, "prlimit"):      # Linux
            # SIGABRT prints the tracebacks; it is not worth a core file.
            resource.prlimit(self.proc.pid, resource.RLIMIT_CORE, (0, 0))
        self.lines = queue.Queue()
        self.seen = []
        self.errors = []
        self.readers = [threading.Thread(target=self._read_stdout),
                        threading.Thread(target=self._read_stderr)]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.errors.append(line)

    @property
    def stderr(self):
        return "".join(self.errors)

    def expect(self, pattern):
        """Return the next line matching *pattern*; fail at EOF or after the timeout."""
        while True:
            try:
                line = self.lines.get(timeout=self.timeout)
            except queue.Empty:
                line = False
            if line is False:       # outside the except: no chained traceback
                self.hung("printed no line matching %r within %g s"
                          % (pattern, self.timeout))
            if line is None:
                self.close()
                pytest.fail("the child ended (status %s) with no line matching %r; "
                            "saw %r; stderr:\n%s" % (self.proc.returncode, pattern,
                                                     self.seen, self.stderr))
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def wait(self, what="exit"):
        """Return the exit status; fail, with the child's tracebacks, after the timeout."""
        try:
            code = self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            self.hung("did not %s within %g s" % (what, self.timeout))
        self.close()
        return code

    def hung(self, what):
        """Fail with the child's stderr and each of its threads' tracebacks."""
        if self.proc.poll() is None and hasattr(signal, "SIGABRT") and os.name == "posix":
            self.proc.send_signal(signal.SIGABRT)   # faulthandler: every thread
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.close()
        pytest.fail("the child %s; saw %r; its stderr and threads:\n%s"
                    % (what, self.seen, self.stderr), pytrace=False)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.proc.returncode is None:
            self.close()


class Sink(Child):
    """A `python -m testservers ...` child; ``port`` is where it listens."""

    def __init__(self, *args, timeout=TIMEOUT, sigint=signal.default_int_handler):
        super().__init__(["-m", "testservers"] + list(args), timeout, sigint)
        try:
            first = self.expect(r"listening on")
        except BaseException:
            self.close()
            raise
        self.where = first.split("listening on ", 1)[1]
        m = re.search(r"port (\d+)", first)
        self.port = int(m.group(1)) if m else None

    def terminate(self):
        """SIGTERM it: it must exit 0 with nothing on stderr."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait("exit after SIGTERM")


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
        sink.expect(r"^peer: \('127.0.0.1', \d+\)  user: -  tls: no$")
        sink.expect(r"^from: me@example.org  to: you@example.org$")
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
        sink.expect(r"  user: ops  tls: yes$")
        sink.expect(r"^Subject: Alert$")
        sink.expect(r"^over STARTTLS$")
        assert sink.terminate() == 0 and sink.stderr == ""


def test_smtp_sink_shows_user_and_tls_over_implicit_tls():
    with Sink("smtp", "--tls", "--auth", "ops:pw", "--auth", "dev:secret") as sink:
        with smtplib.SMTP_SSL("localhost", sink.port, local_hostname="localhost",
                              timeout=TIMEOUT,
                              context=testservers.client_ssl_context()) as client:
            client.login("dev", "secret")
            client.sendmail("me@example.org", ["you@example.org"], b"\r\nfirst\r\n")
        with smtplib.SMTP_SSL("localhost", sink.port, local_hostname="localhost",
                              timeout=TIMEOUT,
                              context=testservers.client_ssl_context()) as client:
            client.sendmail("me@example.org", ["you@example.org"], b"\r\nsecond\r\n")
        sink.expect(r"  user: dev  tls: yes$")
        sink.expect(r"^first$")
        sink.expect(r"  user: -  tls: yes$")     # the next connection did not log in
        sink.expect(r"^second$")
        assert sink.terminate() == 0 and sink.stderr == ""


def test_smtp_sink_forgets_a_login_made_before_starttls():
    # RFC 3207 4.2: the server discards what it knew of the client.
    with Sink("smtp", "--starttls", "--auth", "ops:pw") as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            client.login("ops", "pw")
            client.sendmail("me@example.org", ["you@example.org"], b"\r\nin clear\r\n")
            client.starttls(context=testservers.client_ssl_context())
            client.sendmail("me@example.org", ["you@example.org"], b"\r\nover TLS\r\n")
        sink.expect(r"  user: ops  tls: no$")
        sink.expect(r"^in clear$")
        sink.expect(r"  user: -  tls: yes$")
        sink.expect(r"^over TLS$")
        assert sink.terminate() == 0 and sink.stderr == ""


@pytest.mark.parametrize("address, host", [("127.0.0.1:0", "127.0.0.1"), (":0", "127.0.0.1")]
                         + ([("[::1]:0", "::1")] if IPV6 else []))
def test_smtp_sink_takes_smtpds_host_port_argument(address, host):
    with Sink("smtp", address) as sink:
        assert sink.where == "%s port %d" % (host, sink.port) and sink.port != 0
        with smtplib.SMTP(host, sink.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            client.sendmail("me@example.org", ["you@example.org"], b"\r\nhello\r\n")
        sink.expect(r"^peer: \('%s', \d+" % re.escape(host))
        sink.expect(r"^hello$")
        assert sink.terminate() == 0 and sink.stderr == ""


def test_smtp_sink_escapes_control_characters():
    with Sink("smtp") as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            client.sendmail("me@example.org", ["you@example.org"],
                            b"Subject: x\r\n\r\n\x1b[2Jcleared\r\n")
        line = sink.expect(r"cleared")
        assert "\x1b" not in line and line.startswith("b'") and r"\x1b[2J" in line
        sink.expect(r"END MESSAGE")
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


@pytest.mark.parametrize("status", [204, 304])
def test_http_sink_sends_no_content_length_with_204_and_304(status):
    # RFC 9110 8.6 and 15.4.5; the connection stays usable after each.
    with Sink("http", "--status", str(status)) as sink:
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=TIMEOUT)
        try:
            for _ in range(2):
                conn.request("GET", "/")
                response = conn.getresponse()
                assert response.status == status and response.read() == b""
                assert response.getheader("Content-Length") is None
        finally:
            conn.close()
        assert sink.terminate() == 0 and sink.stderr == ""


def test_http_sink_repeats_headers_and_replaces_server_and_date():
    with Sink("http", "--header", "Set-Cookie: a=1", "--header", "Set-Cookie: b=2",
              "--header", "Server: mine/1.0", "--header", "Date: today") as sink:
        url = "http://127.0.0.1:%d/" % sink.port
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
            assert response.headers.get_all("Server") == ["mine/1.0"]
            assert response.headers.get_all("Date") == ["today"]
        assert sink.terminate() == 0 and sink.stderr == ""


def test_http_sink_sends_the_body_bytes_it_was_given():
    with Sink("http", "--body", os.fsdecode(b"caf\xc3\xa9 \xff")) as sink:
        url = "http://127.0.0.1:%d/" % sink.port
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            assert response.read() == b"caf\xc3\xa9 \xff"
        assert sink.terminate() == 0 and sink.stderr == ""

def test_http_sink_escapes_what_the_client_sent():
    with Sink("http") as sink:
        with socket.create_connection(("127.0.0.1", sink.port), TIMEOUT) as c:
            c.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nX-Odd: a\x1b[31mb\r\n"
                      b"Content-Length: 10\r\nConnection: close\r\n\r\n\x1b[31mred\x00\xff")
            assert c.recv(65536).startswith(b"HTTP/1.1 200 ")
        header = sink.expect(r"^X-Odd: ")
        body = sink.expect(r"red")
        assert header == r"X-Odd: 'a\x1b[31mb'"
        assert body == r"b'\x1b[31mred\x00\xff'"
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


def test_syslog_sink_escapes_control_characters():
    with Sink("syslog") as sink:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"<11>app: a\x1b[31mb", ("127.0.0.1", sink.port))
        line = sink.expect(r"app: ")
        assert "\x1b" not in line and r"a\x1b[31mb" in line
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
        assert sink.wait("exit after SIGINT") == 0
        assert sink.stderr == ""


def test_an_ignored_sigint_stays_ignored():
    # As under nohup: the sink keeps the SIGINT it inherited ignored, and a
    # datagram sent after one is still printed; SIGTERM still ends it.
    with Sink("udp", sigint=signal.SIG_IGN) as sink:
        sink.proc.send_signal(signal.SIGINT)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"still here", ("127.0.0.1", sink.port))
        sink.expect(r"still here")
        assert sink.terminate() == 0
        assert sink.stderr == ""


# Run the udp sink in this process again and again.  In run K, send the
# signal to ourselves at the K-th bytecode instruction after the sink said
# where it listens, or, if the main thread gets there first, just before a
# C function it may block in.  A handler that takes a lock (Event.set())
# deadlocks when the main thread already holds it.
SIGNAL_AT_EACH_INSTRUCTION = r'''
import io
import os
import signal
import sys

from testservers import _cli

SIGNUM = getattr(signal, sys.argv[1])
LIMIT = int(sys.argv[2])
# C functions the main thread may block in: the signal goes before them.
BLOCKING = frozenset(["poll", "select", "control", "acquire", "wait", "sleep"])
state = {"armed": False, "count": 0, "at": 0, "sent": None}


def fire(where):
    state["armed"] = False
    state["sent"] = where
    os.kill(os.getpid(), SIGNUM)


def local(frame, event, arg):
    # Lines too: 3.12.1 gives no opcode events (3.12.0 and 3.12.1 only).
    if state["armed"] and event in ("opcode", "line"):
        state["count"] += 1
        if state["count"] == state["at"]:
            fire("at %s event %d" % (event, state["count"]))
    return local


def call(frame, event, arg):
    if state["armed"]:
        frame.f_trace_opcodes = True
        return local
    return None


def profile(frame, event, arg):
    if state["armed"] and event == "c_call" and getattr(arg, "__name__", "") in BLOCKING:
        fire("before %s()" % arg.__name__)


class Output(io.TextIOBase):
    """The sink's stdout: arm the trace once it says where it listens."""

    def writable(self):
        return True

    def write(self, text):
        if "listening on" in text:
            state["armed"] = True
            frame = sys._getframe()
            while frame is not None:        # the frames already running
                frame.f_trace_opcodes = True
                frame.f_trace = local
                frame = frame.f_back
        return len(text)


sys.stdout = Output()
for at in range(1, LIMIT + 1):
    state.update(armed=False, count=0, at=at, sent=None)
    sys.settrace(call)
    sys.setprofile(profile)
    try:
        code = _cli.main(["udp"])
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    sys.__stdout__.write("run %d: signal sent %s; exit status %s\n" % (at, state["sent"], code))
    sys.__stdout__.flush()
    if code != 0 or state["sent"] is None or state["sent"].startswith("before"):
        break'''


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_at_any_instruction_exits_zero(signame):
    with Child(["-c", SIGNAL_AT_EACH_INSTRUCTION, signame, "5000"]) as child:
        runs = 0
        while True:
            line = child.expect(r"^run \d+: ")
            assert line.endswith("; exit status 0"), line
            runs += 1
            if "signal sent before" in line:
                break
        assert runs > 5         # it went through the instructions before it blocked
        assert child.wait() == 0 and child.stderr == ""


def test_a_child_that_hangs_fails_with_its_stderr_and_threads():
    with Sink("udp") as sink:
        sink.timeout = 0.5      # the line never comes: no need to wait long
        with pytest.raises(pytest.fail.Exception) as failed:
            sink.expect(r"a line the sink never prints")
    message = str(failed.value)
    assert "printed no line matching 'a line the sink never prints' within 0.5 s" in message
    # faulthandler, after SIGABRT: the main thread and the server's thread
    assert message.count("most recent call first") >= 2, message
    assert "_cli.py" in message and "testservers" in message


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks")
def test_a_sink_that_ignores_sigterm_fails_with_its_stderr_and_threads():
    # The child inherits SIGTERM blocked, so SIGTERM never ends it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        sink = Sink("udp")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    with sink:
        sink.timeout = 0.5
        with pytest.raises(pytest.fail.Exception) as failed:
            sink.terminate()
    message = str(failed.value)
    assert "did not exit after SIGTERM within 0.5 s" in message
    assert message.count("most recent call first") >= 2, message


@pytest.mark.parametrize("command", ["demo", "smtp", "http", "tcp", "udp", "syslog"])
def test_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["tcp", "--port", "70000"], "invalid port 70000: expected 0-65535"),
    (["udp", "--port", "http"], "invalid port 'http': expected a number"),
    (["udp", "--port", "8_0"], "invalid port '8_0'"),
    (["udp", "--port", " 80"], "invalid port ' 80'"),
    (["udp", "--port", "-1"], "invalid port '-1'"),
    (["udp", "--host", ""], "give 0.0.0.0 or ::"),
    (["tcp", "--unix", "/nonexistent-dir/sock"], "cannot listen on /nonexistent-dir/sock"),
    (["tcp", "--unix", "sock", "--port", "0"], "--unix and --port exclude each other"),
    (["syslog", "--unix", "sock", "--host", "::1"], "--unix and --host exclude each other"),
    (["udp", "--unix", ""], "argument --unix: expected a path"),
    (["smtp", "--auth", "nocolon"], "expected USER:PASSWORD"),
    (["smtp", "--auth", ":pw"], "expected USER:PASSWORD"),
    (["smtp", "--require-auth"], "--require-auth needs --auth USER:PASSWORD"),
    (["smtp", "--auth", "a:1", "--auth", "a:2"], "user 'a' is given twice"),
    (["smtp", "--starttls", "--require-starttls"], "not allowed with argument --starttls"),
    (["smtp", "--tls", "--require-starttls"], "--tls and --require-starttls exclude each other"),
    (["smtp", "127.0.0.1"], "expected HOST:PORT, [IPV6]:PORT or :PORT, got '127.0.0.1'"),
    (["smtp", "::1:8025"], "put an IPv6 address in brackets, as in [::1]:8025"),
    (["smtp", "[::1]8025"], "expected HOST:PORT"),
    (["smtp", "127.0.0.1:99999"], "invalid port 99999"),
    (["smtp", "127.0.0.1:"], "invalid port ''"),
    (["smtp", ":0", "--port", "0"], "HOST:PORT and --port exclude each other"),
    (["smtp", ":0", "--host", "::1"], "HOST:PORT and --host exclude each other"),
    (["smtp", ":0", ":0"], "unrecognized arguments: :0"),
    (["http", "--status", "9999"], "invalid status 9999: expected 200-599"),
    (["http", "--status", "99"], "invalid status 99: expected 200-599"),
    (["http", "--status", "100"], "a 1xx response is interim"),
    (["http", "--status", "OK"], "invalid status 'OK': expected a number 200-599"),
    (["http", "--status", "204", "--body", "x"], "--status 204 answers with no body"),
    (["http", "--status", "304", "--body", "x"], "--status 304 answers with no body"),
    (["http", "--header", "Content-Length: 100"], "Content-Length is the sink's to send"),
    (["http", "--header", "transfer-encoding: chunked"], "transfer-encoding is the sink's"),
    (["http", "--header", "Connection: close"], "Connection is the sink's to send"),
    (["http", "--header", "Keep-Alive: timeout=5"], "Keep-Alive is the sink's to send"),
    (["http", "--header", "X-Test"], "expected NAME:VALUE, got 'X-Test'"),
    (["http", "--header", "Bad Name: x"], "invalid header name 'Bad Name'"),
    (["http", "--header", ": x"], "invalid header name ''"),
    (["http", "--header", "X-A: a\r\nEvil: b"], "invalid value for header X-A"),
    (["http", "--header", "X-A: a\x1b[31m"], "invalid value for header X-A"),
    (["http", "--header", "X-A: \u20ac"], "invalid value for header X-A"),
    (["bogus"], "invalid choice"),
])
def test_bad_arguments_one_line_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
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
