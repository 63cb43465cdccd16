"""TestSMTPServer end to end: smtplib, logging.handlers.SMTPHandler, raw
sockets for the clients that misbehave, and the named faults."""

import email.message
import logging
import logging.handlers
import smtplib
import socket
import sys
import threading
import time
import unittest

import pytest

import testservers
from conftest import PROMPT, TIMEOUT
import kinds  # noqa: F401  (first: kinds imports kinds_smtp, which imports kinds)
from kinds_smtp import PIPELINED

HOST = "127.0.0.1"
MESSAGE = b"From: me@example.org\r\nSubject: hi\r\n\r\nline one\r\n.dotted\r\n"


def client(server, **kwargs):
    """Connect smtplib to *server* (its EHLO name fixed: no DNS lookup)."""
    return smtplib.SMTP(HOST, server.port, local_hostname="localhost",
                        timeout=TIMEOUT, **kwargs)


def tls_context():
    return testservers.client_ssl_context()


class Raw:
    """A raw socket client that reads whole SMTP replies."""

    def __init__(self, server):
        self.sock = socket.create_connection((HOST, server.port), TIMEOUT)
        self.file = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Return the next reply, all its lines; b"" at the end of the stream."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return b"".join(lines)
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def read_to_end(self):
        """Read until the server closes (a reset counts as a close)."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass

    def replies(self, count):
        return [self.reply() for _ in range(count)]

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def smtp_handler(server, **kwargs):
    return logging.handlers.SMTPHandler((HOST, server.port), "log@example.org",
                                        ["ops@example.org"], "Log", timeout=TIMEOUT,
                                        **kwargs)


class FailingHandler(logging.handlers.SMTPHandler):
    """An SMTPHandler that keeps its error instead of printing it."""

    error = None

    def handleError(self, record):
        self.error = sys.exc_info()[1]
        # emit() leaves its smtplib.SMTP open when it fails: close it.
        smtp = sys.exc_info()[2].tb_frame.f_locals.get("smtp")
        if smtp is not None:
            smtp.close()


def emit(handler, msg="Hello \u2713"):
    handler.handle(logging.makeLogRecord({"msg": msg}))
    handler.close()


def assert_served(server):
    """The next client gets through: nothing a bad client did sticks."""
    with client(server) as c:
        assert c.sendmail("a@example.org", ["b@example.org"], b"next\r\n") == {}


# -- CPython's test_logging, verbatim ----------------------------------------


class SMTPHandlerTest(unittest.TestCase):
    """test_logging's SMTPHandlerTest.test_basic with our class in its place."""

    TIMEOUT = TIMEOUT

    def test_basic(self):
        sockmap = {}
        server = testservers.TestSMTPServer((HOST, 0), self.process_message, 0.001,
                                            sockmap)
        server.start()
        addr = (HOST, server.port)
        h = logging.handlers.SMTPHandler(addr, 'me', 'you', 'Log',
                                         timeout=self.TIMEOUT)
        self.assertEqual(h.toaddrs, ['you'])
        self.messages = []
        r = logging.makeLogRecord({'msg': 'Hello \u2713'})
        self.handled = threading.Event()
        h.handle(r)
        self.handled.wait(self.TIMEOUT)
        server.stop()
        self.assertTrue(self.handled.is_set())
        self.assertEqual(len(self.messages), 1)
        peer, mailfrom, rcpttos, data = self.messages[0]
        self.assertEqual(mailfrom, 'me')
        self.assertEqual(rcpttos, ['you'])
        self.assertIn('\nSubject: Log\n', data)
        self.assertTrue(data.endswith('\n\nHello \u2713'))
        h.close()

    def process_message(self, *args):
        self.messages.append(args)
        self.handled.set()


# -- smtplib --------------------------------------------------------------------


def test_sendmail_handler_gets_smtpd_arguments_and_record():
    calls = []
    with testservers.TestSMTPServer(None, lambda *args: calls.append(args)) as server:
        with client(server) as c:
            assert c.sendmail("me@example.org", ["you@example.org", "them@example.org"],
                              MESSAGE) == {}
            # Recorded before the 250 went out: no wait needed.
            (msg,) = server.messages
    (peer, mailfrom, rcpttos, data), = calls
    assert peer == msg.peer and peer[0] == HOST
    assert (mailfrom, rcpttos) == ("me@example.org", ["you@example.org", "them@example.org"])
    assert data == "From: me@example.org\nSubject: hi\n\nline one\n.dotted"
    assert msg.data == MESSAGE          # dot-unstuffed, CRLF, final CRLF
    assert msg.text == data
    assert (msg.mailfrom, msg.rcpttos) == (mailfrom, rcpttos)
    assert msg.message["Subject"] == "hi"
    assert msg.message.get_content() == "line one\n.dotted\n"
    assert (msg.user, msg.tls, msg.helo, msg.esmtp) == (None, False, "localhost", True)
    assert msg.mail_options == ["size=%d" % len(MESSAGE)]
    assert msg.reply == "250 2.0.0 OK" and not msg.smtputf8
    assert msg.connection_id == server.connections[0].id == 1
    assert "me@example.org" in repr(msg)


def test_send_message_headers_and_body():
    m = email.message.EmailMessage()
    m["From"] = "Me <me@example.org>"
    m["To"] = "you@example.org, Them <them@example.org>"
    m["Subject"] = "Report"
    m.set_content("first\nsecond\n")
    m.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                     filename="blob.bin")
    with testservers.TestSMTPServer() as server:
        with server.smtp_client() as c:
            c.send_message(m)
        (msg,) = server.wait_messages(1, TIMEOUT)
    assert msg.mailfrom == "me@example.org"
    assert msg.rcpttos == ["you@example.org", "them@example.org"]
    got = msg.message
    assert got["To"].addresses[1].display_name == "Them"
    assert got.get_body(("plain",)).get_content() == "first\nsecond\n"
    (attachment,) = got.iter_attachments()
    assert attachment.get_filename() == "blob.bin"
    assert attachment.get_content() == b"\x00\x01binary"


def test_decode_data_false_gives_bytes_as_smtpd_did():
    calls = []
    with testservers.TestSMTPServer(None, lambda *a: calls.append(a[3]),
                                    decode_data=False) as server:
        with client(server) as c:
            c.sendmail("a@example.org", "b@example.org", MESSAGE)
        (msg,) = server.messages
    # smtpd joined the lines with LF and dropped the last line's end.
    assert calls == [b"From: me@example.org\nSubject: hi\n\nline one\n.dotted"]
    assert msg.data == MESSAGE      # the record keeps the bytes as received


def test_handler_reply_string_is_sent():
    def handler(peer, mailfrom, rcpttos, data):
        if "reject" in data:
            return "550 5.7.1 not this one"
        return None

    with testservers.TestSMTPServer(None, handler) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPDataError) as info:
                c.sendmail("a@example.org", "b@example.org", b"reject me\r\n")
            assert info.value.smtp_code == 550
            assert c.sendmail("a@example.org", "b@example.org", b"fine\r\n") == {}
        assert [m.reply for m in server.messages] == ["550 5.7.1 not this one",
                                                      "250 2.0.0 OK"]


@pytest.mark.parametrize("bad", [ValueError("handler broke"), 42])
def test_handler_error_gives_451_is_recorded_and_session_goes_on(bad):
    def handler(peer, mailfrom, rcpttos, data):
        if data == "first":
            if isinstance(bad, Exception):
                raise bad
            return bad      # not a reply: a TypeError, as a handler error
        return None

    with testservers.TestSMTPServer(None, handler) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPDataError) as info:
                c.sendmail("a@example.org", "b@example.org", b"first\r\n")
            assert info.value.smtp_code == 451
            assert c.sendmail("a@example.org", "b@example.org", b"second\r\n") == {}
        errors = server.take_errors()
        assert [type(e) for e in errors] == [type(bad) if isinstance(bad, Exception)
                                             else TypeError]
        assert [m.reply[:3] for m in server.messages] == ["451", "250"]


def test_handler_error_raised_by_wait_before_the_message():
    def handler(*args):
        raise RuntimeError("seen first")

    with testservers.TestSMTPServer(None, handler) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPDataError):
                c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        with pytest.raises(RuntimeError, match="seen first"):
            server.wait_messages(1, TIMEOUT)
        assert len(server.take_errors()) == 1


def test_wait_messages_timeout_says_what_arrived():
    with testservers.TestSMTPServer() as server:
        with client(server) as c:
            c.sendmail("a@example.org", "b@example.org", b"one\r\n")
        with pytest.raises(TimeoutError, match="2 messages.*1 messages"):
            server.wait_messages(2, timeout=0.05)


def test_helo_client_without_esmtp():
    with testservers.TestSMTPServer() as server:
        with client(server) as c:
            assert c.helo("localhost")[0] == 250
            assert not c.does_esmtp
            assert c.sendmail("a@example.org", "b@example.org", b"old school\r\n") == {}
        (first,) = server.messages
    with testservers.TestSMTPServer(esmtp=False) as server:
        with client(server) as c:
            # An RFC 821 server refuses EHLO: smtplib falls back to HELO.
            c.sendmail("a@example.org", "b@example.org", b"fallback\r\n")
            assert c.ehlo_resp is None or not c.does_esmtp
            assert c.helo_resp == b"localhost" and not c.does_esmtp
        (second,) = server.messages
    assert (first.helo, first.esmtp, first.mail_options) == ("localhost", False, [])
    assert (second.esmtp, second.text) == (False, "fallback")


def test_smtputf8_addresses():
    with testservers.TestSMTPServer() as server:
        with client(server) as c:
            c.sendmail("\u00e5lice@ex\u00e4mple.org", ["b\u00f8b@example.org"],
                       "Subject: \u00fc\r\n\r\nh\u00e9\r\n".encode(),
                       mail_options=["SMTPUTF8"])
            m = email.message.EmailMessage()
            m["From"] = "\u00c5lice <\u00e5lice@ex\u00e4mple.org>"
            m["To"] = "b\u00f8b@example.org"
            m["Subject"] = "Gr\u00fc\u00dfe"
            m.set_content("h\u00e9llo\n")
            c.send_message(m)       # smtplib adds SMTPUTF8 by itself
            code, text = c.mail("\u00e5lice@example.org")     # no SMTPUTF8: refused
            assert (code, text) == (553, b"5.6.7 Must declare SMTPUTF8 to send "
                                         b"non-ASCII addresses")
        first, second = server.messages
    assert first.mailfrom == "\u00e5lice@ex\u00e4mple.org"
    assert first.rcpttos == ["b\u00f8b@example.org"] and first.smtputf8
    assert first.message["Subject"] == "\u00fc"
    assert "SMTPUTF8" in second.mail_options and second.smtputf8
    assert second.message["Subject"] == "Gr\u00fc\u00dfe"
    assert str(second.message["From"]) == "\u00c5lice <\u00e5lice@ex\u00e4mple.org>"
    assert second.message.get_content() == "h\u00e9llo\n"


def test_hostname_in_greeting_and_ehlo():
    with testservers.TestSMTPServer(hostname="mx.test") as server:
        with client(server) as c:
            assert c.ehlo()[1].startswith(b"mx.test\n")
        with Raw(server) as raw:
            assert raw.reply() == b"220 mx.test ESMTP testservers\r\n"


def test_max_recipients():
    with testservers.TestSMTPServer(max_recipients=2) as server:
        with client(server) as c:
            refused = c.sendmail("a@example.org", ["1@x.org", "2@x.org", "3@x.org"], b"x\r\n")
        assert refused == {"3@x.org": (452, b"4.5.3 Error: too many recipients")}
        assert server.messages[0].rcpttos == ["1@x.org", "2@x.org"]


def test_pipelined_session():
    with testservers.TestSMTPServer() as server:
        with Raw(server) as raw:
            raw.send(PIPELINED + b"QUIT\r\n")
            replies = raw.replies(7)
            assert [r[:4] for r in replies] == [b"220 ", b"250-", b"250 ", b"250 ",
                                                 b"354 ", b"250 ", b"221 "]
            assert raw.reply() == b""
        assert server.messages[0].text == "Subject: go\n\ngo"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_loopback():
    try:
        server = testservers.TestSMTPServer(("::1", 0))
    except OSError:
        pytest.skip("::1 does not bind")
    with server:
        with server.smtp_client() as c:
            c.sendmail("a@example.org", "b@example.org", b"six\r\n")
        assert server.messages[0].peer[0] == "::1"


# -- AUTH ---------------------------------------------------------------------


def test_login_with_credentials_table():
    with testservers.TestSMTPServer(auth={"alice": "s3cret"}) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                c.login("alice", "wrong")
            assert info.value.smtp_code == 535
            assert c.login("alice", "s3cret")[0] == 235
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        with client(server) as c:     # LOGIN as well as PLAIN
            c.ehlo()
            c.user, c.password = "alice", "s3cret"
            assert c.auth("LOGIN", c.auth_login)[0] == 235
            c.sendmail("a@example.org", "b@example.org", b"y\r\n")
        with client(server) as c:     # optional: mail without AUTH too
            c.sendmail("a@example.org", "b@example.org", b"z\r\n")
        assert [m.user for m in server.messages] == ["alice", "alice", None]


def test_auth_required_and_callable():
    seen = []

    def check(user, password):
        seen.append((user, password))
        return password == "pw-" + user

    with testservers.TestSMTPServer(auth=check, auth_required=True) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n")
            assert info.value.smtp_code == 530
            c.login("bob", "pw-bob")
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        assert server.messages[0].user == "bob"
    assert seen == [("bob", "pw-bob")]


def test_auth_callable_error_gives_454_and_is_recorded():
    def check(user, password):
        raise LookupError("no user database")

    with testservers.TestSMTPServer(auth=check) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                c.login("bob", "pw")
            assert info.value.smtp_code == 454
        # smtplib tried PLAIN, then LOGIN: each call failed and was recorded.
        assert [type(e) for e in server.take_errors()] == [LookupError, LookupError]


# -- TLS ------------------------------------------------------------------------


def test_starttls_offered():
    with testservers.TestSMTPServer(starttls=True) as server:
        with client(server) as c:
            c.sendmail("a@example.org", "b@example.org", b"plain\r\n")
            c.starttls(context=tls_context())
            c.sendmail("a@example.org", "b@example.org", b"secret\r\n")
        assert [m.tls for m in server.messages] == [False, True]
        assert server.connections[0].tls
        assert server.starttls_context is not None and server.sslctx is None


def test_starttls_required_with_auth_and_custom_context():
    context = testservers.server_ssl_context()
    with testservers.TestSMTPServer(starttls="required", starttls_context=context,
                                    auth={"u": "p"}) as server:
        assert server.starttls_context is context
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n")
            assert info.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPNotSupportedError):
                c.login("u", "p")           # AUTH is offered only over TLS
            c.starttls(context=tls_context())
            c.login("u", "p")
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        (msg,) = server.messages
        assert (msg.user, msg.tls) == ("u", True)


@pytest.mark.parametrize("how", ["tls", "sslctx"])
def test_implicit_tls(how):
    options = {"tls": True} if how == "tls" else {"sslctx": testservers.server_ssl_context()}
    with testservers.TestSMTPServer(**options) as server:
        with smtplib.SMTP_SSL(HOST, server.port, local_hostname="localhost",
                              timeout=TIMEOUT, context=tls_context()) as c:
            assert b"STARTTLS" not in c.ehlo()[1]
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        with server.smtp_client() as c:
            assert isinstance(c, smtplib.SMTP_SSL)
            c.sendmail("a@example.org", "b@example.org", b"y\r\n")
        assert [m.tls for m in server.messages] == [True, True]
        with Raw(server) as raw:    # a plain-text client: a clean close
            raw.send(b"EHLO localhost\r\n")
            raw.read_to_end()
        server.wait_connections(3, TIMEOUT, closed=True)
        assert server.errors == []


@pytest.mark.parametrize("options", [{"starttls": True}, {"tls": True}])
def test_stop_with_idle_tls_sessions_open(options):
    server = testservers.TestSMTPServer(**options).start()
    c = server.smtp_client()
    try:
        if "starttls" in options:
            c.starttls(context=tls_context())
        c.ehlo()
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < PROMPT      # not the 300 s idle timeout
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.noop()
    finally:
        c.close()
    assert server.errors == []


def test_starttls_client_that_breaks_tls_is_closed_cleanly():
    with testservers.TestSMTPServer(starttls=True) as server:
        with Raw(server) as raw:
            raw.reply()
            raw.send(b"EHLO localhost\r\n")
            raw.reply()
            raw.send(b"STARTTLS\r\n")
            assert raw.reply().startswith(b"220 2.0.0")
            raw.send(b"MAIL FROM:<a@example.org>\r\n")     # no ClientHello
            raw.read_to_end()
        server.wait_connections(1, TIMEOUT, closed=True)
        assert_served(server)
        assert server.errors == []


def test_bad_options():
    with pytest.raises(TypeError):
        testservers.TestSMTPServer(None, None, 0.5, None, bogus=1)
    with pytest.raises(TypeError):
        testservers.TestSMTPServer(None, None, 0.5, None, "positional")
    with pytest.raises(TypeError, match="auth"):
        testservers.TestSMTPServer(auth=["alice"])
    with pytest.raises(TypeError, match="handler"):
        testservers.TestSMTPServer(None, "not callable")
    for options in [dict(starttls="yes"), dict(starttls=True, tls=True),
                    dict(starttls_context=testservers.server_ssl_context()),
                    dict(auth_required=True), dict(hostname="two words"),
                    dict(size_limit=-1), dict(max_recipients=0), dict(timeout=0)]:
        with pytest.raises(ValueError):
            testservers.TestSMTPServer(**options)


# -- logging.handlers.SMTPHandler -------------------------------------------------


def test_smtp_handler_plain():
    with testservers.TestSMTPServer() as server:
        emit(smtp_handler(server))
        (msg,) = server.wait_messages(1, TIMEOUT)
    assert (msg.mailfrom, msg.rcpttos, msg.user) == ("log@example.org", ["ops@example.org"],
                                                     None)
    headers = msg.message
    assert (headers["From"], headers["To"], headers["Subject"]) == (
        "log@example.org", "ops@example.org", "Log")
    assert headers["Date"].datetime is not None
    assert headers.get_content() == "Hello \u2713\n"


def test_smtp_handler_with_credentials():
    with testservers.TestSMTPServer(auth={"logger": "pw"}, auth_required=True) as server:
        emit(smtp_handler(server, credentials=("logger", "pw")))
        (msg,) = server.wait_messages(1, TIMEOUT)
        assert (msg.user, msg.tls) == ("logger", False)
        assert msg.message.get_content() == "Hello \u2713\n"
        handler = FailingHandler((HOST, server.port), "log@example.org", "ops@example.org",
                                 "Log", credentials=("logger", "wrong"), timeout=TIMEOUT)
        emit(handler)
        assert isinstance(handler.error, smtplib.SMTPAuthenticationError)
        assert handler.error.smtp_code == 535
        assert len(server.messages) == 1


@pytest.mark.parametrize("starttls", [True, "required"])
def test_smtp_handler_secure_over_starttls(starttls):
    with testservers.TestSMTPServer(auth={"logger": "pw"}, starttls=starttls) as server:
        emit(smtp_handler(server, credentials=("logger", "pw"), secure=()))
        (msg,) = server.wait_messages(1, TIMEOUT)
    assert (msg.user, msg.tls) == ("logger", True)
    assert msg.message["Subject"] == "Log"
    assert msg.message.get_content() == "Hello \u2713\n"


# -- clients that misbehave ---------------------------------------------------------


@pytest.fixture
def quiet_server(capfd):
    """A server whose test must print nothing, record no error, leave no
    connection open, and serve the next client."""
    server = testservers.TestSMTPServer(size_limit=1000).start()
    yield server
    try:
        conns = server.wait_connections(len(server.connections), TIMEOUT, closed=True)
        assert all(c.closed is not None for c in conns)
        assert_served(server)
        assert server.errors == []
    finally:
        server.stop()
    assert capfd.readouterr() == ("", "")


def test_garbage_bytes(quiet_server):
    with Raw(quiet_server) as raw:
        raw.reply()
        raw.send(b"\x00\xff\xfe\x80\x16\x03\x01garbage\r\n")
        assert raw.reply() == b"500 5.5.2 Error: command not recognized\r\n"
        raw.send(b"NOOP\r\n")
        assert raw.reply() == b"250 2.0.0 OK\r\n"
        raw.send(b"\xc0\xffjunk\r\n" * 30)      # 19 more errors, then 421
        replies = raw.replies(20)
        assert all(r.startswith(b"500 ") for r in replies[:19])
        assert replies[19] == b"421 4.7.0 localhost Error: too many errors\r\n"
        assert raw.reply() == b""
    assert quiet_server.messages == []


def test_over_long_line(quiet_server):
    with Raw(quiet_server) as raw:
        raw.reply()
        raw.send(b"EHLO " + b"x" * 100000 + b"\r\n")
        assert raw.reply() == b"500 5.5.6 Error: line too long\r\n"
        raw.send(b"NOOP\r\n")
        assert raw.reply() == b"250 2.0.0 OK\r\n"


def test_client_disconnects_mid_data(quiet_server):
    with Raw(quiet_server) as raw:
        raw.send(b"EHLO localhost\r\nMAIL FROM:<a@example.org>\r\n"
                 b"RCPT TO:<b@example.org>\r\nDATA\r\n")
        assert raw.replies(5)[4].startswith(b"354 ")
        raw.send(b"Subject: cut\r\n\r\nhalf a mess")
    (conn,) = quiet_server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.closed_by == "client"
    assert quiet_server.messages == []


def test_message_over_size_limit(quiet_server):
    with client(quiet_server) as c:     # smtplib declares SIZE: 552 at MAIL
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            c.sendmail("a@example.org", "b@example.org", b"x" * 2000)
        assert info.value.smtp_code == 552
    with Raw(quiet_server) as raw:      # undeclared: read to the end, then 552
        raw.send(b"EHLO localhost\r\nMAIL FROM:<a@example.org>\r\n"
                 b"RCPT TO:<b@example.org>\r\nDATA\r\n")
        raw.replies(5)
        raw.send(b"y" * 5000 + b"\r\n.\r\nNOOP\r\n")
        assert raw.replies(2) == [b"552 5.3.4 Message too big\r\n", b"250 2.0.0 OK\r\n"]
    assert quiet_server.messages == []


def test_idle_client_gets_421():
    with testservers.TestSMTPServer(timeout=0.05) as server:
        with Raw(server) as raw:
            assert raw.reply().startswith(b"220 ")
            assert raw.reply() == b"421 4.4.2 localhost Error: timeout exceeded\r\n"
            assert raw.reply() == b""
        assert server.wait_connections(1, TIMEOUT, closed=True)[0].closed_by == "server"


# -- faults, as smtplib sees them -----------------------------------------------------


def test_fault_garbage_instead_of_greeting():
    with testservers.TestSMTPServer() as server:
        with server.garbage():
            with pytest.raises(smtplib.SMTPConnectError):
                client(server)
        assert_served(server)


def test_fault_hang_up():
    with testservers.TestSMTPServer() as server:
        with server.hang_up():
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client(server)
        assert_served(server)


@pytest.mark.parametrize("reset", [False, True])
def test_fault_drop_open_session(reset):
    with testservers.TestSMTPServer(starttls=True) as server:
        plain = client(server)
        secure = client(server)
        secure.starttls(context=tls_context())
        try:
            server.drop(reset=reset)
            for c in (plain, secure):
                with pytest.raises(smtplib.SMTPServerDisconnected):
                    c.mail("a@example.org")
        finally:
            plain.close()
            secure.close()
        conns = server.wait_connections(2, TIMEOUT, closed=True)
        assert {c.fault for c in conns} == {"reset" if reset else "drop"}
        assert_served(server)
        assert server.errors == []


def test_fault_delay_reply_times_the_client_out():
    with testservers.TestSMTPServer() as server:
        with server.delay(reply=30):
            with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out") as info:
                smtplib.SMTP(HOST, server.port, local_hostname="localhost", timeout=0.05)
            assert isinstance(info.value.__context__, socket.timeout)
    # stop() cut the server's 30 s wait short


def test_fault_drip_and_refuse():
    with testservers.TestSMTPServer() as server:
        with server.drip(chunk=7, interval=0):
            assert_served(server)
        with server.refuse():
            with pytest.raises(ConnectionRefusedError):
                client(server)
        assert_served(server)


def test_handler_base_exception_still_gets_451():
    def handler(peer, mailfrom, rcpttos, data):
        pytest.fail("assertion library says no")    # a BaseException subclass

    with pytest.raises(pytest.fail.Exception, match="says no"):
        with testservers.TestSMTPServer(None, handler) as server:
            with server.smtp_client() as c:
                with pytest.raises(smtplib.SMTPDataError) as info:
                    c.sendmail("a@example.org", "b@example.org", b"x\r\n")
                assert info.value.smtp_code == 451
                assert c.noop()[0] == 250       # the session goes on
            (message,) = server.messages
            assert message.reply.startswith("451")


@pytest.mark.parametrize("option", ["decode_data", "auth_required", "esmtp", "dsn"])
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_flags_take_true_or_false(option, value):
    with pytest.raises(TypeError, match=option):
        testservers.TestSMTPServer(**{option: value})
