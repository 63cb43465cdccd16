"""Byte-level tests for testservers._smtpproto, the sans-IO SMTP session.

Every conversation runs twice through the feed_mode fixture: once fed in
its natural chunks and once one byte at a time.  Both must produce the same
replies and envelopes, which the exact expected values check.
"""

import base64
import tracemalloc

import pytest

from testservers._smtpauth import mechanisms
from testservers._smtpproto import (
    MAX_AUTH_LINE, MAX_COMMAND_LINE, Envelope, SMTPSession)

HOST = "mx.test"
EHLO = b"EHLO client.test\r\n"
MAIL = b"MAIL FROM:<alice@example.org>\r\n"
RCPT = b"RCPT TO:<bob@example.org>\r\n"
DATA = b"DATA\r\n"


def reply(*lines):
    """Return the wire form of reply lines."""
    return b"".join(line.encode("utf-8") + b"\r\n" for line in lines)


def ehlo_reply(size="SIZE 33554432", starttls=False, auth=False):
    lines = [HOST, "PIPELINING", size]
    if starttls:
        lines.append("STARTTLS")
    if auth:
        lines.append("AUTH PLAIN LOGIN")
    lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"]
    lines = ["250-" + line for line in lines[:-1]] + ["250 " + lines[-1]]
    return reply(*lines)


EHLO_OK = ehlo_reply()
OK = reply("250 2.0.0 OK")
MAIL_OK = reply("250 2.1.0 OK")
RCPT_OK = reply("250 2.1.5 OK")
GO_AHEAD = reply("354 End data with <CR><LF>.<CR><LF>")
BYE = reply("221 2.0.0 Bye")
START = EHLO + MAIL + RCPT + DATA
START_OK = EHLO_OK + MAIL_OK + RCPT_OK + GO_AHEAD


def b64(data):
    return base64.b64encode(data).decode("ascii")


class Result:
    def __init__(self, replies, envelopes, errors, session):
        self.replies = replies
        self.envelopes = envelopes
        self.errors = errors
        self.session = session

    @property
    def data(self):
        return [envelope.data for envelope in self.envelopes]


@pytest.fixture(params=["chunks", "bytewise"])
def feed_mode(request):
    return request.param


def run(chunks, mode, handler=None, **kwargs):
    """Feed chunks (bytes or a list of bytes) to a new session.

    In "bytewise" mode each chunk is fed one byte at a time.  tls_established()
    is called at chunk boundaries when want_tls is set, so bytes pipelined
    after STARTTLS within one chunk are discarded in both modes.
    """
    envelopes, errors = [], []

    def on_message(envelope):
        envelopes.append(envelope)
        return handler(envelope) if handler is not None else None

    session = SMTPSession(HOST, on_message=on_message, **kwargs)
    replies = bytearray()
    for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
        if mode == "chunks":
            pieces = [chunk]
        else:
            pieces = [chunk[k:k + 1] for k in range(len(chunk))]
        for piece in pieces:
            replies += session.feed(piece)
            errors += session.pending_errors
            session.pending_errors.clear()
        if session.want_tls:
            session.tls_established()
    return Result(bytes(replies), envelopes, errors, session)


def credentials(user, password):
    return (user, password) == ("user", "pässword")


AUTH = {"mechanisms": mechanisms(credentials, ("PLAIN", "LOGIN"), HOST)}
PLAIN_OK = b64("\0user\0pässword".encode())


# Greeting, HELO and EHLO

def test_greeting():
    greeting = reply("220 mx.test ESMTP testservers")
    assert SMTPSession(HOST).greeting() == greeting


def test_simple_transaction(feed_mode):
    client = [EHLO, MAIL, RCPT, b"RCPT TO:<carol@example.org>\r\n", DATA,
              b"Subject: hi\r\n\r\nbody\r\n.\r\n", b"QUIT\r\n"]
    result = run(client, feed_mode)
    assert result.replies == (EHLO_OK + MAIL_OK + RCPT_OK + RCPT_OK
                              + GO_AHEAD + OK + BYE)
    [envelope] = result.envelopes
    assert vars(envelope) == {
        "mailfrom": "alice@example.org",
        "rcpttos": ["bob@example.org", "carol@example.org"],
        "data": b"Subject: hi\r\n\r\nbody\r\n", "mail_options": [],
        "rcpt_options": [[], []], "helo": "client.test", "user": None,
        "tls": False, "smtputf8": False, "dsn": None}
    assert result.session.closed
    assert "alice@example.org" in repr(envelope)


def test_pipelined_in_one_chunk(feed_mode):
    client = (START + b"one\r\n.\r\n" + MAIL + RCPT + DATA
              + b"two\r\n.\r\nQUIT\r\n")
    result = run(client, feed_mode)
    assert result.replies == (START_OK + OK + MAIL_OK + RCPT_OK + GO_AHEAD
                              + OK + BYE)
    assert result.data == [b"one\r\n", b"two\r\n"]


def test_commands_case_insensitive_and_bare_lf(feed_mode):
    client = (b"ehlo client.test\n" b"mail from:<a@b>\n" b"rcpt To:<c@d>\r\n"
              b"data\n" b"x\r\n.\r\n" b"quit\n")
    result = run(client, feed_mode)
    assert result.replies == START_OK + OK + BYE
    assert result.envelopes[0].mailfrom == "a@b"


def test_helo(feed_mode):
    client = [b"HELO client.test\r\n", b"MAIL FROM:<a@b> SIZE=10\r\n", MAIL,
              b"RCPT TO:<c@d> NOTIFY=NEVER\r\n", RCPT, DATA, b"x\r\n.\r\n"]
    result = run(client, feed_mode)
    assert result.replies == (
        reply("250 mx.test", "555 5.5.4 Unsupported option") + MAIL_OK
        + reply("555 5.5.4 Unsupported option") + RCPT_OK + GO_AHEAD + OK)
    assert result.session.esmtp is False
    assert result.envelopes[0].helo == "client.test"


@pytest.mark.parametrize("command, expected", [
    (b"EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
    (b"HELO   \r\n", "501 5.5.4 Syntax: HELO hostname"),
    (b"EHLO \xff\xfe\r\n", "501 5.5.2 Error: invalid UTF-8"),
])
def test_hello_errors(feed_mode, command, expected):
    result = run([command, MAIL], feed_mode)
    assert result.replies == reply(expected,
                                   "503 5.5.1 Error: send HELO/EHLO first")
    assert result.session.helo is None


def test_second_ehlo_resets_transaction(feed_mode):
    result = run([EHLO, MAIL, RCPT, b"EHLO again\r\n", DATA, MAIL], feed_mode)
    assert result.replies == (EHLO_OK + MAIL_OK + RCPT_OK + EHLO_OK
                              + reply("503 5.5.1 Error: need MAIL command")
                              + MAIL_OK)
    assert result.session.helo == "again"


# MAIL and RCPT

def test_mail_sequence_errors(feed_mode):
    result = run([MAIL, EHLO, MAIL, MAIL], feed_mode)
    assert result.replies == (reply("503 5.5.1 Error: send HELO/EHLO first")
                              + EHLO_OK + MAIL_OK
                              + reply("503 5.5.1 Error: nested MAIL command"))


@pytest.mark.parametrize("command", [
    b"MAIL\r\n", b"MAIL FROM:\r\n", b"MAIL FROM:alice@example.org\r\n",
    b"MAIL FRM:<a@b>\r\n", b"MAIL FROM:<a@b\r\n", b"MAIL FROM:<a@b>SIZE=1\r\n",
    b"MAIL FROM:<a b@c>\r\n", b"MAIL FROM:<a\tb@c>\r\n",
    b"MAIL FROM:<@route>\r\n",
    b"MAIL FROM:<a<b@c>\r\n", b"MAIL TO:<a@b>\r\n",
])
def test_mail_syntax_errors(feed_mode, command):
    result = run([EHLO, command], feed_mode)
    assert result.replies == EHLO_OK + reply(
        "501 5.5.4 Syntax: MAIL FROM:<address>")


@pytest.mark.parametrize("command, mailfrom", [
    (b"MAIL FROM:<>\r\n", "<>"),   # as smtpd gave the null sender
    (b"MAIL FROM: <a@b>\r\n", "a@b"),
    (b"mail from:<a@b>   \r\n", "a@b"),
    (b"MAIL FROM:<@relay.test,@other.test:a@b>\r\n", "a@b"),
    (b'MAIL FROM:<"odd > name"@b>\r\n', '"odd > name"@b'),
    (b'MAIL FROM:<"q\\"x"@b>\r\n', '"q\\"x"@b'),
])
def test_mail_addresses(feed_mode, command, mailfrom):
    result = run([EHLO, command, RCPT, DATA, b".\r\n"], feed_mode)
    assert result.replies == EHLO_OK + MAIL_OK + RCPT_OK + GO_AHEAD + OK
    assert result.envelopes[0].mailfrom == mailfrom
    assert result.envelopes[0].data == b""


@pytest.mark.parametrize("params, expected", [
    (b"SIZE=100 BODY=8BITMIME", "250 2.1.0 OK"),
    (b"size=33554432 body=7bit", "250 2.1.0 OK"),
    (b"SIZE=33554433",
     "552 5.3.4 Message size exceeds fixed maximum message size"),
    (b"SIZE=12k", "501 5.5.4 Bad SIZE parameter"),
    (b"SIZE=", "501 5.5.4 Bad SIZE parameter"),
    (b"SIZE", "555 5.5.4 Unsupported option"),
    (b"BODY=BINARYMIME", "501 5.5.4 Unsupported BODY type"),
    (b"SMTPUTF8=yes", "555 5.5.4 Unsupported option"),
    (b"RET=HDRS", "555 5.5.4 Unsupported option"),
    (b"AUTH=<>", "555 5.5.4 Unsupported option"),  # AUTH is not offered
])
def test_mail_params(feed_mode, params, expected):
    result = run([EHLO, b"MAIL FROM:<a@b> " + params + b"\r\n"], feed_mode)
    assert result.replies == EHLO_OK + reply(expected)
    if expected.startswith("250"):
        assert result.session._mail_options == params.decode().split()


def test_mail_options_in_envelope(feed_mode):
    client = [EHLO, b"MAIL FROM:<a@b> SIZE=3 BODY=8BITMIME\r\n", RCPT, DATA,
              b"\xe9t\xe9\r\n.\r\n"]
    result = run(client, feed_mode)
    assert result.replies == START_OK + OK
    assert result.envelopes[0].mail_options == ["SIZE=3", "BODY=8BITMIME"]
    assert result.envelopes[0].data == b"\xe9t\xe9\r\n"


def test_mail_auth_param_when_auth_offered(feed_mode):
    result = run([EHLO, b"MAIL FROM:<a@b> AUTH=<>\r\n"], feed_mode, **AUTH)
    assert result.replies == ehlo_reply(auth=True) + MAIL_OK


def test_smtputf8(feed_mode):
    client = [EHLO, "MAIL FROM:<jösé@exämple.org> SMTPUTF8\r\n".encode(),
              "RCPT TO:<用户@例子.广告>\r\n".encode(), DATA,
              "Subject: ü\r\n.\r\n".encode()]
    result = run(client, feed_mode)
    assert result.replies == START_OK + OK
    [envelope] = result.envelopes
    assert envelope.mailfrom == "jösé@exämple.org"
    assert envelope.rcpttos == ["用户@例子.广告"]
    assert envelope.smtputf8 is True
    assert envelope.mail_options == ["SMTPUTF8"]


def test_non_ascii_needs_smtputf8(feed_mode):
    need = "553 5.6.7 Must declare SMTPUTF8 to send non-ASCII addresses"
    client = [EHLO, "MAIL FROM:<jösé@b>\r\n".encode(), MAIL,
              "RCPT TO:<jösé@b>\r\n".encode(), RCPT]
    result = run(client, feed_mode)
    assert result.replies == (EHLO_OK + reply(need) + MAIL_OK + reply(need)
                              + RCPT_OK)


def test_invalid_utf8_addresses(feed_mode):
    client = [EHLO, b"MAIL FROM:<\xff@b> SMTPUTF8\r\n",
              b"MAIL FROM:<a@b> SMTPUTF8\r\n", b"RCPT TO:<\xc3@b>\r\n"]
    result = run(client, feed_mode)
    assert result.replies == (
        EHLO_OK + reply("553 5.1.7 Bad sender address syntax") + MAIL_OK
        + reply("553 5.1.3 Bad recipient address syntax"))


def test_rcpt_errors(feed_mode):
    client = [EHLO, RCPT, MAIL, b"RCPT TO:<>\r\n", b"RCPT TO:bob@b\r\n",
              b"RCPT FROM:<bob@b>\r\n", b"RCPT TO:<bob@b> NOTIFY=NEVER\r\n",
              b"RCPT TO:<postmaster>\r\n"]
    syntax = "501 5.5.4 Syntax: RCPT TO:<address>"
    result = run(client, feed_mode)
    assert result.replies == (
        EHLO_OK + reply("503 5.5.1 Error: need MAIL command") + MAIL_OK
        + reply(syntax, syntax, syntax, "555 5.5.4 Unsupported option")
        + RCPT_OK)


def test_too_many_recipients(feed_mode):
    client = [EHLO, MAIL] + [b"RCPT TO:<r%d@b>\r\n" % k for k in range(4)]
    client += [DATA, b"x\r\n.\r\n"]
    result = run(client, feed_mode, max_recipients=2)
    too_many = reply("452 4.5.3 Error: too many recipients")
    assert result.replies == (EHLO_OK + MAIL_OK + RCPT_OK + RCPT_OK
                              + too_many + too_many + GO_AHEAD + OK)
    assert result.envelopes[0].rcpttos == ["r0@b", "r1@b"]


# DATA

def test_data_errors(feed_mode):
    client = [EHLO, DATA, MAIL, DATA, RCPT, b"DATA now\r\n", DATA, b".\r\n"]
    result = run(client, feed_mode)
    assert result.replies == (
        EHLO_OK + reply("503 5.5.1 Error: need MAIL command") + MAIL_OK
        + reply("554 5.5.1 Error: no valid recipients") + RCPT_OK
        + reply("501 5.5.4 Syntax: DATA") + GO_AHEAD + OK)


@pytest.mark.parametrize("body, data", [
    (b".\r\n", b""),
    (b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"..leading dot\r\n...two\r\nmid.dle\r\n.\r\n",
     b".leading dot\r\n..two\r\nmid.dle\r\n"),
    (b".x\r\n.\r\n", b"x\r\n"),  # a single stuffed dot is removed too
    (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"no final newline\r\n.\r\n", b"no final newline\r\n"),
    (b".\r\r\n.\r\n", b"\r\r\n"),
    (b".\rx\r\n.\r\n", b"\rx\r\n"),
    (b"a\r\r\n.\r\n", b"a\r\r\n"),
])
def test_dot_unstuffing(feed_mode, body, data):
    result = run([START, body, b"NOOP\r\n"], feed_mode)
    assert result.replies == START_OK + OK + OK
    assert result.data == [data]


@pytest.mark.parametrize("fake_end", [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n",
    b"\n.\r", b"\r\n .\r\n", b"\r\n\x00.\r\n",
])
def test_only_crlf_dot_crlf_ends_data(feed_mode, fake_end):
    # SMTP smuggling (CVE-2023-51764): the fake end and the smuggled
    # commands after it stay in the message; only a dot that starts a line
    # (after CRLF) is unstuffed.
    body = b"one" + fake_end + b"MAIL FROM:<evil@b>\r\nRCPT TO:<x@y>\r\n"
    result = run([START, body + b".\r\n", b"QUIT\r\n"], feed_mode)
    assert result.replies == START_OK + OK + BYE
    assert result.data == [body.replace(b"\r\n.", b"\r\n")]


def test_terminator_split_at_every_position():
    client = START + b"a\r\n..b\r\nc\r\n.\r\nNOOP\r\n"
    whole = run(client, "chunks")
    assert whole.replies == START_OK + OK + OK
    assert whole.data == [b"a\r\n.b\r\nc\r\n"]
    for cut in range(len(client) + 1):
        split = run([client[:cut], client[cut:]], "chunks")
        assert (split.replies, split.data) == (whole.replies, whole.data), cut


def test_long_data_lines_are_not_limited(feed_mode):
    line = b"x" * 20000 + b"\r\n"
    result = run([START, line + b".\r\n"], feed_mode)
    assert result.replies == START_OK + OK
    assert result.data == [line]


def test_message_size_limit(feed_mode):
    client = [START, b"12345678\r\n.\r\n", MAIL, RCPT, DATA,
              b"123456789\r\n" b"..more\r\n.\r\n", b"NOOP\r\n"]
    result = run(client, feed_mode, size_limit=10)
    assert result.replies == (
        ehlo_reply(size="SIZE 10") + MAIL_OK + RCPT_OK + GO_AHEAD + OK
        + MAIL_OK + RCPT_OK + GO_AHEAD
        + reply("552 5.3.4 Message too big") + OK)
    assert result.data == [b"12345678\r\n"]


def test_size_limit_zero_means_unlimited(feed_mode):
    client = [EHLO, b"MAIL FROM:<a@b> SIZE=99999999999\r\n"]
    result = run(client, feed_mode, size_limit=0)
    assert result.replies == ehlo_reply(size="SIZE") + MAIL_OK


def test_huge_message_keeps_memory_bounded():
    # 50 MB in 64 KiB chunks: the session must not hold more than the limit.
    limit = 1 << 20
    chunk = (b".stuffed\r\n" + (b"y" * 78 + b"\r\n") * 1000)[:65536]
    session = SMTPSession(HOST, size_limit=limit)
    assert session.feed(START).endswith(MAIL_OK + RCPT_OK + GO_AHEAD)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50 * 10**6 // len(chunk)):
            assert session.feed(chunk) == b""
            data = session._reader.data
            assert data is None or len(data) <= limit
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started:
            tracemalloc.stop()
    if started:
        assert peak - before < 4 * limit
    assert session._reader.data is None
    replies = session.feed(b"\r\n.\r\nNOOP\r\n")
    assert replies == reply("552 5.3.4 Message too big") + OK


# Other commands

def test_rset_noop_vrfy_expn_help(feed_mode):
    client = [EHLO, MAIL, b"RSET\r\n", b"RSET now\r\n", RCPT,
              b"NOOP anything at all\r\n", b"VRFY bob\r\n", b"VRFY\r\n",
              b"EXPN list\r\n", b"HELP\r\n", b"help me\r\n"]
    result = run(client, feed_mode)
    help_ = reply("214 2.0.0 Commands: AUTH DATA EHLO EXPN HELO HELP MAIL "
                  "NOOP QUIT RCPT RSET STARTTLS VRFY")
    assert result.replies == (
        EHLO_OK + MAIL_OK + OK + reply("501 5.5.4 Syntax: RSET")
        + reply("503 5.5.1 Error: need MAIL command") + OK
        + reply("252 2.5.0 Cannot VRFY user, but will accept message and "
                "attempt delivery", "501 5.5.4 Syntax: VRFY address",
                "502 5.5.1 EXPN not implemented")
        + help_ + help_)


def test_unknown_and_empty_commands(feed_mode):
    result = run([b"FOO bar\r\n", b"\r\n", b"\n", b"\xff\xfe\r\n", EHLO],
                 feed_mode)
    assert result.replies == reply(
        "500 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: bad syntax",
        "500 5.5.2 Error: bad syntax",
        "500 5.5.2 Error: command not recognized") + EHLO_OK


def test_quit_ignores_the_rest(feed_mode):
    result = run([EHLO + b"QUIT\r\nNOOP\r\n", b"NOOP\r\n"], feed_mode)
    assert result.replies == EHLO_OK + BYE
    assert result.session.closed
    assert result.session.feed(b"NOOP\r\n") == b""


def test_timeout_reply():
    session = SMTPSession(HOST)
    assert session.timeout_reply() == reply(
        "421 4.4.2 mx.test Error: timeout exceeded")
    assert session.closed
    assert session.timeout_reply() == b""
    assert session.feed(EHLO) == b""


# Limits

def test_command_line_limit(feed_mode):
    fits = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    one_over = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 6) + b"\r\n"
    too_long = reply("500 5.5.6 Error: line too long")
    client = [fits, one_over, b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n"]
    result = run(client, feed_mode)
    assert len(fits) == MAX_COMMAND_LINE
    assert result.replies == OK + too_long + too_long + OK


def test_partial_line_buffer_is_bounded():
    session = SMTPSession(HOST)
    chunk = b"x" * 65536
    assert session.feed(chunk) == reply("500 5.5.6 Error: line too long")
    for _ in range(100):
        assert session.feed(chunk) == b""
        assert len(session._lines._buf) <= MAX_COMMAND_LINE
    assert session.feed(b"tail\r\nNOOP\r\n") == OK
    session = SMTPSession(HOST)
    for _ in range(MAX_COMMAND_LINE):
        assert session.feed(b"y") == b""
    assert session.feed(b"y") == reply("500 5.5.6 Error: line too long")
    assert len(session._lines._buf) == 0


def test_error_limit(feed_mode):
    result = run([b"BAD\r\n"] * 3 + [b"NOOP\r\n"] * 3, feed_mode, max_errors=3)
    assert result.replies == reply(
        *["500 5.5.2 Error: command not recognized"] * 3
        + ["421 4.7.0 mx.test Error: too many errors"])
    assert result.session.closed


def test_error_flood_is_bounded():
    session = SMTPSession(HOST)
    replies = session.feed(b"garbage\r\n" * 100000)
    assert replies.count(b"\r\n") == 21
    assert replies.endswith(reply("421 4.7.0 mx.test Error: too many errors"))
    replies = SMTPSession(HOST).feed(b"z" * 10**6 + b"\n" + b"q" * 10**6)
    assert replies == reply("500 5.5.6 Error: line too long") * 2


def test_accepted_message_resets_error_count(feed_mode):
    bad = [b"BAD\r\n"] * 2
    client = bad + [START, b".\r\n"] + bad + [b"NOOP\r\n"]
    result = run(client, feed_mode, max_errors=3)
    unknown = reply("500 5.5.2 Error: command not recognized")
    assert result.replies == unknown * 2 + START_OK + OK + unknown * 2 + OK


# AUTH

def auth_run(client, mode, **kwargs):
    kwargs = dict(AUTH, **kwargs)
    return run([EHLO] + client, mode, **kwargs)


AUTH_EHLO = ehlo_reply(auth=True)
AUTH_OK = reply("235 2.7.0 Authentication successful")
AUTH_BAD = reply("535 5.7.8 Authentication credentials invalid")
DECODE = reply("501 5.5.2 Cannot decode response")
MALFORMED = reply("501 5.5.2 Malformed PLAIN response")
AUTH_SYNTAX = reply("501 5.5.4 Syntax: AUTH mechanism [initial-response]")


@pytest.mark.parametrize("client", [
    ["AUTH PLAIN " + PLAIN_OK],
    ["auth plain", PLAIN_OK],
    ["AUTH PLAIN " + b64("user\0user\0pässword".encode())],
    ["AUTH LOGIN", b64(b"user"), b64("pässword".encode())],
    ["AUTH LOGIN " + b64(b"user"), b64("pässword".encode())],
])
def test_auth_success(feed_mode, client):
    lines = [line.encode() + b"\r\n" for line in client]
    result = auth_run(lines + [MAIL, RCPT, DATA, b".\r\n"], feed_mode)
    prompts = {"AUTH PLAIN": "334 ", "AUTH LOGIN": "334 VXNlcm5hbWU6"}
    expected = AUTH_EHLO
    if len(client) > 1:
        expected += reply(prompts.get(client[0].upper(), "334 UGFzc3dvcmQ6"))
    if len(client) > 2:
        expected += reply("334 UGFzc3dvcmQ6")
    assert result.replies == (expected + AUTH_OK + MAIL_OK + RCPT_OK
                              + GO_AHEAD + OK)
    assert result.session.authenticated_user == "user"
    assert result.envelopes[0].user == "user"


@pytest.mark.parametrize("client, expected", [
    (["AUTH PLAIN " + b64(b"\0user\0wrong")], AUTH_BAD),
    (["AUTH PLAIN " + b64("boss\0user\0pässword".encode())], AUTH_BAD),
    (["AUTH LOGIN", b64(b"user"), b64(b"wrong")],
     reply("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6") + AUTH_BAD),
    (["AUTH PLAIN", "*"], reply("334 ", "501 5.7.0 Authentication cancelled")),
    (["AUTH LOGIN", b64(b"user"), "*"],
     reply("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
           "501 5.7.0 Authentication cancelled")),
    (["AUTH PLAIN not-base64!"], DECODE),
    (["AUTH PLAIN dXNlcg"], DECODE),  # missing padding
    (["AUTH PLAIN", "dXNlcg=="], reply("334 ") + MALFORMED),
    (["AUTH PLAIN", "="], reply("334 ") + DECODE),
    (["AUTH PLAIN ="], MALFORMED),
    (["AUTH PLAIN " + b64(b"\0\0pw")], MALFORMED),
    (["AUTH PLAIN " + b64(b"user\0pw")], MALFORMED),
    (["AUTH PLAIN", "dXNl cg=="], reply("334 ") + DECODE),
    (["AUTH PLAIN " + b64(b"\0us\xffer\0pw")], DECODE),
    (["AUTH LOGIN =", ""], reply("334 UGFzc3dvcmQ6") + AUTH_BAD),
    (["AUTH LOGIN", "\xe9"], reply("334 VXNlcm5hbWU6") + DECODE),
    (["AUTH CRAM-MD5"], reply("504 5.5.4 Unrecognized authentication type")),
    (["AUTH"], AUTH_SYNTAX),
    (["AUTH PLAIN a b"], AUTH_SYNTAX),
])
def test_auth_failures(feed_mode, client, expected):
    lines = [line.encode() + b"\r\n" for line in client]
    result = auth_run(lines + [b"NOOP\r\n"], feed_mode)
    assert result.replies == AUTH_EHLO + expected + OK
    assert result.session.authenticated_user is None


def test_auth_sequence_errors(feed_mode):
    auth = ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode()
    client = [b"HELO client.test\r\n", auth, EHLO, MAIL, auth, b"RSET\r\n",
              auth, auth]
    result = run(client, feed_mode, **AUTH)
    assert result.replies == (
        reply("250 mx.test", "503 5.5.1 Error: send EHLO first") + AUTH_EHLO
        + MAIL_OK + reply("503 5.5.1 Error: MAIL transaction in progress")
        + OK + AUTH_OK + reply("503 5.5.1 Error: already authenticated"))


def test_auth_not_offered(feed_mode):
    result = run([EHLO, ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode()], feed_mode)
    assert result.replies == EHLO_OK + reply("502 5.5.1 AUTH not implemented")


def test_auth_line_limit(feed_mode):
    fits = b"AUTH PLAIN " + b"A" * (MAX_AUTH_LINE - 13) + b"\r\n"
    response = b"B" * (MAX_AUTH_LINE - 2) + b"\r\n"
    client = [fits, b"AUTH PLAIN\r\n", response, b"AUTH PLAIN\r\n",
              b"C" + response, b"AUTH PLAIN A" + fits[11:], b"NOOP\r\n"]
    result = auth_run(client, feed_mode)
    assert len(fits) == len(response) == MAX_AUTH_LINE
    prompt = reply("334 ")
    assert result.replies == AUTH_EHLO + DECODE + prompt + DECODE + prompt + (
        reply("500 5.5.6 Authentication Exchange line is too long",
              "500 5.5.6 Error: line too long")) + OK


def test_auth_required(feed_mode):
    client = [MAIL, ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode(), MAIL]
    result = auth_run(client, feed_mode, auth_required=True)
    assert result.replies == (AUTH_EHLO
                              + reply("530 5.7.0 Authentication required")
                              + AUTH_OK + MAIL_OK)
    with pytest.raises(ValueError, match="needs an AUTH mechanism"):
        SMTPSession(auth_required=True)


def test_check_credentials_raising(feed_mode):
    def broken(user, password):
        raise KeyError(user)

    auth = ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode()
    result = run([EHLO, auth, b"NOOP\r\n"], feed_mode,
                 mechanisms=mechanisms(broken, ("PLAIN", "LOGIN"), HOST))
    assert result.replies == ehlo_reply(auth=True) + reply(
        "454 4.7.0 Temporary authentication failure") + OK
    assert [type(error) for error in result.errors] == [KeyError]


# STARTTLS

def test_starttls_offered(feed_mode):
    client = [EHLO, b"STARTTLS\r\n" + MAIL + b"AUTH PLAIN " + PLAIN_OK.encode()
              + b"\r\n", MAIL, EHLO, b"STARTTLS\r\n", b"AUTH PLAIN "
              + PLAIN_OK.encode() + b"\r\n", MAIL, RCPT, DATA, b"x\r\n.\r\n"]
    result = run(client, feed_mode, starttls="offered", **AUTH)
    assert result.replies == (
        ehlo_reply(starttls=True, auth=True)
        + reply("220 2.0.0 Ready to start TLS")
        + reply("503 5.5.1 Error: send HELO/EHLO first")
        + ehlo_reply(auth=True) + reply("503 5.5.1 Error: TLS already active")
        + AUTH_OK + MAIL_OK + RCPT_OK + GO_AHEAD + OK)
    assert result.session.tls_active
    assert result.envelopes[0].tls is True
    assert result.envelopes[0].helo == "client.test"


def test_starttls_forgets_session_state(feed_mode):
    auth = ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode()
    client = [EHLO, auth, b"STARTTLS\r\n", b"NOOP\r\n", MAIL]
    result = run(client, feed_mode, starttls="offered", **AUTH)
    assert result.replies == (
        ehlo_reply(starttls=True, auth=True) + AUTH_OK
        + reply("220 2.0.0 Ready to start TLS") + OK
        + reply("503 5.5.1 Error: send HELO/EHLO first"))
    session = result.session
    assert (session.helo, session.esmtp, session.authenticated_user) == (
        None, False, None)
    assert not session.want_tls


def test_starttls_required(feed_mode):
    need_tls = reply("530 5.7.0 Must issue a STARTTLS command first")
    auth = ("AUTH PLAIN %s\r\n" % PLAIN_OK).encode()
    client = [EHLO, MAIL, auth, b"HELP\r\n", b"VRFY x\r\n", b"RSET\r\n",
              b"NOOP\r\n", b"STARTTLS\r\n", EHLO, auth, MAIL]
    result = run(client, feed_mode, starttls="required", **AUTH)
    assert result.replies == (
        ehlo_reply(starttls=True) + need_tls * 4 + OK + OK
        + reply("220 2.0.0 Ready to start TLS") + ehlo_reply(auth=True)
        + AUTH_OK + MAIL_OK)


def test_starttls_errors(feed_mode):
    client = [b"HELO c\r\n", b"STARTTLS\r\n", EHLO, b"STARTTLS now\r\n", MAIL,
              b"STARTTLS\r\n"]
    result = run(client, feed_mode, starttls="offered")
    assert result.replies == reply(
        "250 mx.test", "503 5.5.1 Error: send EHLO first") + ehlo_reply(
        starttls=True) + reply("501 5.5.4 Syntax: STARTTLS") + MAIL_OK + reply(
        "503 5.5.1 Error: MAIL transaction in progress")
    result = run([EHLO, b"STARTTLS\r\n"], feed_mode)
    assert result.replies == EHLO_OK + reply("502 5.5.1 STARTTLS not implemented")


def test_implicit_tls(feed_mode):
    result = run([START, b".\r\n", b"STARTTLS\r\n"], feed_mode,
                 starttls="offered", tls_active=True)
    assert result.replies == START_OK + OK + reply(
        "503 5.5.1 Error: TLS already active")
    assert result.envelopes[0].tls is True


def test_input_before_tls_established_is_discarded():
    session = SMTPSession(HOST, starttls="offered")
    assert session.feed(EHLO) == ehlo_reply(starttls=True)
    assert session.feed(b"STARTTLS\r\nNOOP\r\n") == reply(
        "220 2.0.0 Ready to start TLS")
    assert session.want_tls
    assert session.feed(b"NOOP\r\n") == b""
    session.tls_established()
    assert session.feed(b"NOOP\r\n") == OK
    with pytest.raises(RuntimeError, match="want_tls"):
        session.tls_established()


# on_message

def test_on_message_custom_reply(feed_mode):
    result = run([START, b"x\r\n.\r\n"], feed_mode,
                 handler=lambda envelope: "550 5.7.1 rejected")
    assert result.replies == START_OK + reply("550 5.7.1 rejected")
    assert len(result.envelopes) == 1


def test_on_message_raising(feed_mode):
    def handler(envelope):
        if envelope.data == b"boom\r\n":
            raise ZeroDivisionError("boom")

    client = [START, b"boom\r\n.\r\n", RCPT, MAIL, RCPT, DATA, b"ok\r\n.\r\n"]
    result = run(client, feed_mode, handler=handler)
    assert result.replies == START_OK + reply(
        "451 4.3.0 Requested action aborted: local error in processing",
        "503 5.5.1 Error: need MAIL command") + (
        MAIL_OK + RCPT_OK + GO_AHEAD + OK)
    assert [str(error) for error in result.errors] == ["boom"]
    assert result.data == [b"boom\r\n", b"ok\r\n"]


@pytest.mark.parametrize("bad, error", [
    (b"550 ok", TypeError), ("550 two\r\n550 lines", ValueError),
    ("fine", ValueError), ("1234 x", ValueError), ("650 x", ValueError),
])
def test_on_message_bad_reply(feed_mode, bad, error):
    result = run([START, b".\r\n"], feed_mode, handler=lambda envelope: bad)
    assert result.replies == START_OK + reply(
        "451 4.3.0 Requested action aborted: local error in processing")
    assert [type(e) for e in result.errors] == [error]


def test_pending_errors_keeps_every_one_in_order():
    def handler(envelope):
        raise ValueError(envelope.data)

    session = SMTPSession(HOST, on_message=handler)
    client = START + b"1\r\n.\r\n" + MAIL + RCPT + DATA + b"2\r\n.\r\n"
    session.feed(client)
    assert [e.args for e in session.pending_errors] == [(b"1\r\n",), (b"2\r\n",)]


def test_without_on_message(feed_mode):
    session = SMTPSession(HOST)
    assert session.feed(START + b".\r\n") == START_OK + OK


# Construction

@pytest.mark.parametrize("kwargs", [
    {"hostname": ""}, {"hostname": "a b"}, {"hostname": "a\r\n"},
    {"starttls": "yes"}, {"size_limit": -1}, {"max_recipients": 0},
    {"max_errors": 0}, {"size_limit": 1.5},
])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        SMTPSession(**kwargs)


def test_feed_rejects_str():
    with pytest.raises(TypeError):
        SMTPSession().feed("EHLO x\r\n")


def test_envelope_defaults():
    envelope = Envelope("a@b", ("c@d",), b"x")
    assert vars(envelope) == {
        "mailfrom": "a@b", "rcpttos": ["c@d"], "data": b"x",
        "mail_options": [], "rcpt_options": [[]], "helo": "", "user": None,
        "tls": False, "smtputf8": False, "dsn": None}


def test_ehlo_refused_without_esmtp():
    session = SMTPSession(esmtp=False)
    session.greeting()
    assert session.feed(b"EHLO c\r\n") == b"500 5.5.1 Error: command not recognized\r\n"
    assert session.feed(b"HELO c\r\n") == b"250 localhost\r\n"
    assert session.helo == "c" and not session.esmtp
