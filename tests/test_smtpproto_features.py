"""Byte-level tests of what the SMTP session can be told to do: AUTH
mechanisms (CRAM-MD5, a choice, one's own), per-command hooks, scripted
replies, VRFY/EXPN tables and HELP text, EHLO keywords and extensions
switched off, DSN, and the transcript.

As in test_smtpproto, every conversation runs twice through feed_mode:
fed in its natural chunks and one byte at a time.
"""

import base64
import hmac
import json

import pytest

from test_smtpproto import (  # noqa: F401 (feed_mode is a fixture)
    DATA, EHLO, EHLO_OK, GO_AHEAD, HOST, MAIL, MAIL_OK, OK, RCPT, RCPT_OK,
    START, START_OK, b64, ehlo_reply, feed_mode, reply, run)
from testservers._smtpauth import mechanisms, md5_available
from testservers._smtpoptions import reply_lines
from testservers._smtpparams import xtext_decode
from testservers._smtpproto import SMTPSession
from testservers._smtprecords import Scripts

USERS = {"alice": "s3cret", "bob": "hunter2"}
ABORTED = reply("451 4.3.0 Requested action aborted: local error in processing")
AUTH_OK = reply("235 2.7.0 Authentication successful")
AUTH_BAD = reply("535 5.7.8 Authentication credentials invalid")
needs_md5 = pytest.mark.skipif(not md5_available(), reason="MD5 is forbidden here")


def feed(session, data, mode):
    """Feed *data* whole or byte by byte; return the replies."""
    pieces = [data] if mode == "chunks" else [data[k:k + 1] for k in range(len(data))]
    return b"".join(session.feed(piece) for piece in pieces)


def session_with(**options):
    session = SMTPSession(HOST, **options)
    session.greeting()
    return session


def auth_ehlo(names):
    lines = [HOST, "PIPELINING", "SIZE 33554432", "AUTH " + names,
             "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"]
    return reply(*["250-" + line for line in lines[:-1]] + ["250 " + lines[-1]])


# AUTH: CRAM-MD5, the choice of mechanisms, one's own

@needs_md5
def test_cram_md5(feed_mode):
    session = session_with(mechanisms=mechanisms(USERS, None, HOST))
    assert feed(session, EHLO, feed_mode) == auth_ehlo("CRAM-MD5 PLAIN LOGIN")
    prompt = feed(session, b"AUTH CRAM-MD5\r\n", feed_mode)
    assert prompt.startswith(b"334 ") and prompt.endswith(b"\r\n")
    challenge = base64.b64decode(prompt[4:-2])
    assert challenge.startswith(b"<") and challenge.endswith(b"@" + HOST.encode() + b">")
    digest = hmac.new(b"s3cret", challenge, "md5").hexdigest()
    response = b64(b"alice " + digest.encode()).encode() + b"\r\n"
    assert feed(session, response, feed_mode) == AUTH_OK
    assert session.authenticated_user == "alice"


@needs_md5
@pytest.mark.parametrize("answer, expected", [
    (lambda c: b"alice " + hmac.new(b"wrong", c, "md5").hexdigest().encode(), AUTH_BAD),
    (lambda c: b"carol " + hmac.new(b"s3cret", c, "md5").hexdigest().encode(), AUTH_BAD),
    (lambda c: b"alice" + hmac.new(b"s3cret", c, "md5").hexdigest().encode(),
     reply("501 5.5.2 Malformed CRAM-MD5 response")),
    (lambda c: b"alice XYZ", reply("501 5.5.2 Malformed CRAM-MD5 response")),
    (lambda c: b"\xff \xff", reply("501 5.5.2 Cannot decode response")),
    (None, reply("501 5.7.0 Authentication cancelled")),
])
def test_cram_md5_failures(feed_mode, answer, expected):
    session = session_with(mechanisms=mechanisms(USERS, ("CRAM-MD5",), HOST))
    feed(session, EHLO, feed_mode)
    challenge = base64.b64decode(feed(session, b"AUTH CRAM-MD5\r\n", feed_mode)[4:-2])
    line = b"*" if answer is None else b64(answer(challenge)).encode()
    assert feed(session, line + b"\r\nNOOP\r\n", feed_mode) == expected + OK
    assert session.authenticated_user is None


@needs_md5
def test_cram_md5_takes_no_initial_response(feed_mode):
    session = session_with(mechanisms=mechanisms(USERS, None, HOST))
    feed(session, EHLO, feed_mode)
    assert feed(session, b"AUTH CRAM-MD5 " + b64(b"alice x").encode() + b"\r\n",
                feed_mode) == reply("501 5.5.2 CRAM-MD5 takes no initial response")


def test_mechanism_choice_and_order(feed_mode):
    login_only = mechanisms(USERS, ("login",), HOST)
    result = run([EHLO, b"AUTH PLAIN " + b64(b"\0alice\0s3cret").encode() + b"\r\n",
                  b"AUTH LOGIN " + b64(b"alice").encode() + b"\r\n",
                  b64(b"s3cret").encode() + b"\r\n"], feed_mode, mechanisms=login_only)
    assert result.replies == auth_ehlo("LOGIN") + reply(
        "504 5.5.4 Unrecognized authentication type", "334 UGFzc3dvcmQ6") + AUTH_OK
    result = run([EHLO], feed_mode, mechanisms=mechanisms(USERS, ("LOGIN", "PLAIN"), HOST))
    assert result.replies == auth_ehlo("LOGIN PLAIN")


def test_default_mechanisms():
    names = [name for name, _ in mechanisms(USERS, None, HOST)]
    assert names == (["CRAM-MD5"] if md5_available() else []) + ["PLAIN", "LOGIN"]
    assert [name for name, _ in mechanisms(lambda u, p: True, None, HOST)] == [
        "PLAIN", "LOGIN"]
    assert mechanisms(None, None, HOST) == []


@pytest.mark.parametrize("auth, chosen, error, match", [
    (lambda u, p: True, ("CRAM-MD5",), ValueError, "mapping"),
    (None, ("PLAIN",), ValueError, "needs auth="),
    (USERS, ("SCRAM-SHA-1",), ValueError, "not a built-in"),
    (USERS, ("PLAIN", "plain"), ValueError, "twice"),
    (USERS, ("bad name!",), ValueError, "not a SASL mechanism name"),
    (USERS, "PLAIN", TypeError, "sequence"),
    (USERS, (("X", "not callable"),), TypeError, "pair"),
    (USERS, (42,), TypeError, "pair"),
])
def test_bad_mechanism_choices(auth, chosen, error, match):
    with pytest.raises(error, match=match):
        mechanisms(auth, chosen, HOST)


def xoauth2(initial):
    """XOAUTH2: "user=U^Aauth=Bearer T^A^A"; a wrong token gets the JSON
    error challenge, the client's dummy response, then 535."""
    response = initial if initial is not None else (yield b"")
    fields = dict(field.split("=", 1) for field in
                  response.decode().split("\x01") if "=" in field)
    if fields.get("auth") == "Bearer token-1":
        return fields["user"]
    yield json.dumps({"status": "401", "schemes": "bearer"})
    return None


def test_own_mechanism(feed_mode):
    own = mechanisms(USERS, (("XOAUTH2", xoauth2), "PLAIN"), HOST)
    good = b64(b"user=alice\x01auth=Bearer token-1\x01\x01").encode()
    bad = b64(b"user=alice\x01auth=Bearer nope\x01\x01").encode()
    error = b64(b'{"status": "401", "schemes": "bearer"}')
    result = run([EHLO, b"AUTH XOAUTH2 " + bad + b"\r\n", b"\r\n",
                  b"AUTH XOAUTH2\r\n", good + b"\r\n"], feed_mode, mechanisms=own)
    assert result.replies == auth_ehlo("XOAUTH2 PLAIN") + reply(
        "334 " + error) + AUTH_BAD + reply("334 ") + AUTH_OK
    assert result.session.authenticated_user == "alice"


@pytest.mark.parametrize("mechanism, error", [
    (lambda initial: 42, TypeError),
    (lambda initial: "", TypeError),
    (lambda initial: 1 / 0, ZeroDivisionError),
    (lambda initial: (yield 42), TypeError),
])
def test_own_mechanism_errors_are_recorded(feed_mode, mechanism, error):
    result = run([EHLO, b"AUTH OWN =\r\n", b"NOOP\r\n"], feed_mode,
                 mechanisms=mechanisms(None, (("OWN", mechanism),), HOST))
    assert result.replies == auth_ehlo("OWN") + reply(
        "454 4.7.0 Temporary authentication failure") + OK
    assert [type(e) for e in result.errors] == [error]


def test_own_mechanism_replaces_a_builtin(feed_mode):
    plain = mechanisms(None, (("PLAIN", lambda initial: "anyone"),), HOST)
    result = run([EHLO, b"AUTH PLAIN =\r\n"], feed_mode, mechanisms=plain)
    assert result.replies == auth_ehlo("PLAIN") + AUTH_OK


@pytest.mark.parametrize("hook, expected, user, errors", [
    (lambda user, mechanism: "235 2.7.0 Welcome " + user, "235 2.7.0 Welcome alice",
     "alice", []),
    (lambda user, mechanism: "534 5.7.9 Authentication mechanism is too weak",
     "534 5.7.9 Authentication mechanism is too weak", None, []),
    (lambda user, mechanism: [][0], "454 4.7.0 Temporary authentication failure",
     None, [IndexError]),
])
def test_on_auth(feed_mode, hook, expected, user, errors):
    seen = []

    def on_auth(user, mechanism):
        seen.append((user, mechanism))
        return hook(user, mechanism)
    result = run([EHLO, b"AUTH PLAIN " + b64(b"\0alice\0s3cret").encode() + b"\r\n"],
                 feed_mode, mechanisms=mechanisms(USERS, ("PLAIN",), HOST),
                 on_auth=on_auth)
    assert result.replies == auth_ehlo("PLAIN") + reply(expected)
    assert seen == [("alice", "PLAIN")]
    assert result.session.authenticated_user == user
    assert [type(e) for e in result.errors] == errors


# Per-command hooks

def test_on_mail(feed_mode):
    calls = []

    def on_mail(mailfrom, options):
        calls.append((mailfrom, options))
        return "550 5.7.1 Not from you" if mailfrom == "spam@b" else None
    result = run([EHLO, b"MAIL FROM:<spam@b> SIZE=3\r\n", b"MAIL FROM:<>\r\n", RCPT,
                  DATA, b".\r\n"], feed_mode, on_mail=on_mail)
    assert result.replies == EHLO_OK + reply("550 5.7.1 Not from you") + (
        MAIL_OK + RCPT_OK + GO_AHEAD + OK)
    assert calls == [("spam@b", ["SIZE=3"]), ("<>", [])]
    assert result.envelopes[0].mailfrom == "<>"


def test_on_rcpt_partial_refusal(feed_mode):
    calls = []

    def on_rcpt(mailfrom, rcptto, options):
        calls.append((mailfrom, rcptto, options))
        if rcptto.startswith("gone"):
            return "550 5.1.1 No such mailbox"
        if rcptto.startswith("far"):
            return "251 2.1.5 User not local; will forward"
        return None
    client = [EHLO, MAIL, b"RCPT TO:<one@b>\r\n", b"RCPT TO:<gone@b>\r\n",
              b"RCPT TO:<far@b>\r\n", DATA, b"x\r\n.\r\n"]
    result = run(client, feed_mode, on_rcpt=on_rcpt)
    assert result.replies == EHLO_OK + MAIL_OK + RCPT_OK + reply(
        "550 5.1.1 No such mailbox", "251 2.1.5 User not local; will forward"
    ) + GO_AHEAD + OK
    assert result.envelopes[0].rcpttos == ["one@b", "far@b"]
    assert [c[1] for c in calls] == ["one@b", "gone@b", "far@b"]
    assert calls[0] == ("alice@example.org", "one@b", [])


def test_on_data(feed_mode):
    answers = iter(["452 4.3.1 Come back later", "354 Go on", None])
    result = run([START, MAIL, RCPT, DATA, b"two\r\n.\r\n", MAIL, RCPT, DATA,
                  b"three\r\n.\r\n"], feed_mode, on_data=lambda mailfrom, rcpttos: next(answers))
    assert result.replies == EHLO_OK + MAIL_OK + RCPT_OK + reply(
        "452 4.3.1 Come back later") + reply("503 5.5.1 Error: nested MAIL command") + (
        RCPT_OK + reply("354 Go on") + OK + MAIL_OK + RCPT_OK + GO_AHEAD + OK)
    assert result.data == [b"two\r\n", b"three\r\n"]
    assert result.envelopes[0].rcpttos == ["bob@example.org"] * 2


@pytest.mark.parametrize("hook, error", [
    (lambda *args: 1 / 0, ZeroDivisionError),
    (lambda *args: b"550 no", TypeError),
    (lambda *args: "550 two\r\n550 lines", ValueError),
    (lambda *args: "354 not for RCPT", ValueError),
    (lambda *args: "hello", ValueError),
])
def test_hook_failures_are_recorded(feed_mode, hook, error):
    result = run([EHLO, MAIL, RCPT, RCPT], feed_mode, on_rcpt=hook)
    assert result.replies == EHLO_OK + MAIL_OK + ABORTED * 2
    assert [type(e) for e in result.errors] == [error, error]
    assert not result.session.closed


def test_421_from_a_hook_or_the_handler_closes(feed_mode):
    result = run([EHLO, MAIL, b"NOOP\r\n"], feed_mode,
                 on_mail=lambda *args: "421 4.3.2 Shutting down")
    assert result.replies == EHLO_OK + reply("421 4.3.2 Shutting down")
    assert result.session.closed
    result = run([START, b".\r\n", b"NOOP\r\n"], feed_mode,
                 handler=lambda envelope: "421 4.3.2 Bye now")
    assert result.replies == START_OK + reply("421 4.3.2 Bye now")
    assert result.session.closed


def test_hooks_must_be_callable():
    for name in ("on_mail", "on_rcpt", "on_data", "on_auth"):
        with pytest.raises(TypeError, match=name):
            SMTPSession(**{name: "not callable"})


# Scripted replies

def scripts(*entries):
    store = Scripts(reply_lines)
    for command, reply_, times, close in entries:
        store.add(command, reply_ if callable(reply_) else reply_lines(reply_),
                  times, close)
    return store


def test_scripted_replies(feed_mode):
    store = scripts(("RCPT", "451 4.3.0 Try later", 1, False),
                    ("RCPT", ["452-4.5.3 Too many", "452 4.5.3 for now"], 1, False),
                    ("QUIT", "500 Not now", None, False))
    client = [EHLO, MAIL, RCPT, RCPT, RCPT, DATA, b"x\r\n.\r\n", b"QUIT\r\n", b"quit\r\n"]
    result = run(client, feed_mode, scripted=store.take)
    assert result.replies == EHLO_OK + MAIL_OK + reply(
        "451 4.3.0 Try later", "452-4.5.3 Too many", "452 4.5.3 for now") + (
        RCPT_OK + GO_AHEAD + OK + reply("500 Not now", "500 Not now"))
    assert result.envelopes[0].rcpttos == ["bob@example.org"]
    assert not result.session.closed


def test_scripted_end_of_data_drops_the_message(feed_mode):
    store = scripts((".", "554 5.7.1 Rejected after all", 1, False))
    result = run([START, b"one\r\n.\r\n", RCPT, MAIL, RCPT, DATA, b"two\r\n.\r\n"],
                 feed_mode, scripted=store.take)
    assert result.replies == START_OK + reply(
        "554 5.7.1 Rejected after all", "503 5.5.1 Error: need MAIL command") + (
        MAIL_OK + RCPT_OK + GO_AHEAD + OK)
    assert result.data == [b"two\r\n"]


@pytest.mark.parametrize("script, close", [
    (("DATA", "421 4.3.2 Closing", 1, False), True),
    (("MAIL", "451 4.3.0 Closing too", 1, True), True),
    (("MAIL", "221 2.0.0 Bye early", 1, False), True),
    (("MAIL", "451 4.3.0 Stay", 1, False), False),
])
def test_scripted_close(feed_mode, script, close):
    result = run([EHLO, MAIL, RCPT, DATA, b"NOOP\r\n"], feed_mode,
                 scripted=scripts(script).take)
    assert result.session.closed == close
    assert reply(script[1]) in result.replies


def test_scripted_callable(feed_mode):
    def answer(arg):
        if arg.startswith("TO:<x"):
            raise KeyError(arg)
        return "550 5.1.1 Not " + arg if "nobody" in arg else None
    store = scripts(("RCPT", answer, None, False))
    client = [EHLO, MAIL, b"RCPT TO:<nobody@b>\r\n", RCPT, b"RCPT TO:<x@b>\r\n"]
    result = run(client, feed_mode, scripted=store.take)
    assert result.replies == EHLO_OK + MAIL_OK + reply(
        "550 5.1.1 Not TO:<nobody@b>") + RCPT_OK + ABORTED
    assert [type(e) for e in result.errors] == [KeyError]


def test_script_store_counts_and_removes():
    store = Scripts(reply_lines)
    first = store.add("RCPT", ["451 a"], 2, False)
    store.add("RCPT", ["452 b"], 1, False)
    forever = store.add("NOOP", ["250 c"], None, False)
    assert [store.take("RCPT", "")[0] for _ in range(3)] == [["451 a"], ["451 a"], ["452 b"]]
    assert store.take("RCPT", "") is None
    assert [store.take("NOOP", "")[0] for _ in range(3)] == [["250 c"]] * 3
    store.remove(forever)
    store.remove(first)     # gone already: nothing happens
    assert store.take("NOOP", "") is None


@pytest.mark.parametrize("bad", ["354 go on", "hello", "451 a\n452 b", "1234 x", [], [5]])
def test_bad_scripted_replies(bad):
    with pytest.raises((ValueError, TypeError)):
        reply_lines(bad)


def test_reply_lines_sets_continuation_marks():
    assert reply_lines("451 one\n451-two\n451 three") == ["451-one", "451-two", "451 three"]
    assert reply_lines(("250",)) == ["250"]


# VRFY, EXPN and HELP

VRFY_TABLE = {"fred@example.org": "Fred Smith <fred@example.org>",
              "smith": "553 5.1.4 User ambiguous",
              "two": ["Fred <fred@example.org>", "Joe <joe@example.org>"]}


def test_vrfy_table(feed_mode):
    client = [b"VRFY fred@example.org\r\n", b"VRFY smith\r\n", b"VRFY two\r\n",
              b"VRFY nobody\r\n"]
    result = run(client, feed_mode, vrfy=VRFY_TABLE)
    assert result.replies == reply(
        "250 2.1.5 Fred Smith <fred@example.org>", "553 5.1.4 User ambiguous",
        "250-2.1.5 Fred <fred@example.org>", "250 2.1.5 Joe <joe@example.org>",
        "550 5.1.1 No such user: nobody")


def test_expn_table_and_callable(feed_mode):
    lists = {"staff": ["Ann <ann@b>", "Bo <bo@b>"]}
    result = run([b"EXPN staff\r\n", b"EXPN other\r\n", b"EXPN\r\n"], feed_mode,
                 expn=lambda name: lists.get(name.lower()))
    assert result.replies == reply("250-2.1.5 Ann <ann@b>", "250 2.1.5 Bo <bo@b>",
                                   "550 5.1.1 No such list: other",
                                   "501 5.5.4 Syntax: EXPN list")
    result = run([b"EXPN staff\r\n"], feed_mode)
    assert result.replies == reply("502 5.5.1 EXPN not implemented")


@pytest.mark.parametrize("table, error", [
    (lambda arg: 1 / 0, ZeroDivisionError), (lambda arg: 42, TypeError),
    (lambda arg: ["a\r\nb"], ValueError), (lambda arg: [], ValueError),
])
def test_table_failures_are_recorded(feed_mode, table, error):
    result = run([b"VRFY x\r\n", b"NOOP\r\n"], feed_mode, vrfy=table)
    assert result.replies == ABORTED + OK
    assert [type(e) for e in result.errors] == [error]


def test_help_text(feed_mode):
    result = run([b"HELP\r\n", b"HELP MAIL\r\n"], feed_mode,
                 help_text="Ask Fred.\nHe knows.")
    lines = ("214-2.0.0 Ask Fred.", "214 2.0.0 He knows.")
    assert result.replies == reply(*lines) * 2
    result = run([b"HELP\r\n"], feed_mode, help_text="Ask Fred.",
                 disabled=["ENHANCEDSTATUSCODES"])
    assert result.replies == reply("214 Ask Fred.")


@pytest.mark.parametrize("options, error", [
    ({"vrfy": ["fred"]}, TypeError), ({"expn": 42}, TypeError),
    ({"help_text": b"bytes"}, TypeError), ({"help_text": "a\x00b"}, ValueError),
])
def test_bad_tables_and_help(options, error):
    with pytest.raises(error):
        SMTPSession(**options)


# EHLO: extra keywords and extensions switched off

def test_ehlo_keywords(feed_mode):
    result = run([EHLO], feed_mode, ehlo_keywords=["DELIVERBY 120", "X-FOO bar baz"])
    assert result.replies == EHLO_OK.replace(b"250 SMTPUTF8", b"250-SMTPUTF8") + reply(
        "250-DELIVERBY 120", "250 X-FOO bar baz")


@pytest.mark.parametrize("keywords, error", [
    (["DELIVERBY\r\nX"], ValueError), (["-BAD"], ValueError), (["SIZE 10"], ValueError),
    (["ok", "OK"], ValueError), ("DELIVERBY", TypeError), ([b"X"], TypeError),
])
def test_bad_ehlo_keywords(keywords, error):
    with pytest.raises(error):
        SMTPSession(ehlo_keywords=keywords)


def test_switched_off_keyword_may_be_advertised_again(feed_mode):
    result = run([EHLO, b"MAIL FROM:<a@b> SIZE=10\r\n"], feed_mode,
                 disabled=["SIZE"], ehlo_keywords=["SIZE 99"])
    assert b"250-SIZE 99\r\n" not in result.replies     # the last line, not "250-"
    assert result.replies.endswith(reply("250 SIZE 99", "555 5.5.4 Unsupported option"))


def test_extensions_switched_off(feed_mode):
    off = ["SMTPUTF8", "8BITMIME", "PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"]
    client = [EHLO, b"MAIL FROM:<a@b> SMTPUTF8\r\n", b"MAIL FROM:<a@b> BODY=8BITMIME\r\n",
              b"MAIL FROM:<a@b> SIZE=1\r\n", "MAIL FROM:<jösé@b>\r\n".encode(), MAIL,
              RCPT, DATA, b"x\r\n.\r\n", b"BAD\r\n", b"QUIT\r\n"]
    result = run(client, feed_mode, disabled=[name.lower() for name in off])
    unsupported = "555 Unsupported option"
    assert result.replies == reply(
        "250 mx.test", unsupported, unsupported, unsupported,
        "553 Must declare SMTPUTF8 to send non-ASCII addresses", "250 OK", "250 OK",
        "354 End data with <CR><LF>.<CR><LF>", "250 OK",
        "500 Error: command not recognized", "221 Bye")


def test_each_extension_switched_off_alone(feed_mode):
    for name in ("SMTPUTF8", "8BITMIME", "PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"):
        result = run([EHLO], feed_mode, disabled=[name])
        advertised = [line[4:] for line in result.replies.decode().split("\r\n") if line]
        assert not any(line.startswith(name) for line in advertised), name
        assert len(advertised) == 5     # the host name and the four others


@pytest.mark.parametrize("disabled, error", [
    (["STARTTLS"], ValueError), (["FOO"], ValueError), ("SIZE", TypeError),
])
def test_bad_disabled(disabled, error):
    with pytest.raises(error):
        SMTPSession(disabled=disabled)


# DSN (RFC 3461)

DSN_MAIL = b"MAIL FROM:<a@b> RET=HDRS ENVID=QQ+2B314159\r\n"


def test_dsn(feed_mode):
    client = [EHLO, DSN_MAIL,
              b"RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d\r\n",
              b"RCPT TO:<e@f> notify=never\r\n", RCPT, DATA, b"x\r\n.\r\n"]
    result = run(client, feed_mode, dsn=True)
    assert result.replies == ehlo_reply().replace(
        b"250-ENHANCEDSTATUSCODES", b"250-DSN\r\n250-ENHANCEDSTATUSCODES") + (
        MAIL_OK + RCPT_OK * 3 + GO_AHEAD + OK)
    (envelope,) = result.envelopes
    assert envelope.dsn == {
        "ret": "HDRS", "envid": "QQ+314159",
        "notify": [("SUCCESS", "FAILURE"), ("NEVER",), None],
        "orcpt": [("rfc822", "c@d"), None, None]}
    assert envelope.rcpt_options == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;c+40d"],
                                     ["notify=never"], []]
    assert envelope.mail_options == ["RET=HDRS", "ENVID=QQ+2B314159"]


@pytest.mark.parametrize("command, expected", [
    (b"MAIL FROM:<a@b> RET=ALL\r\n", "501 5.5.4 Bad RET parameter"),
    (b"MAIL FROM:<a@b> RET=FULL RET=HDRS\r\n", "501 5.5.4 Duplicate RET parameter"),
    (b"MAIL FROM:<a@b> ENVID=a=b\r\n", "501 5.5.4 Bad ENVID parameter"),
    (b"MAIL FROM:<a@b> ENVID=a+2b\r\n", "501 5.5.4 Bad ENVID parameter"),
    (b"MAIL FROM:<a@b> ENVID=" + b"x" * 101 + b"\r\n", "501 5.5.4 Bad ENVID parameter"),
    (b"MAIL FROM:<a@b> SIZE=1 SIZE=2\r\n", "501 5.5.4 Duplicate SIZE parameter"),
    (b"RCPT TO:<c@d> NOTIFY=NEVER,SUCCESS\r\n", "501 5.5.4 Bad NOTIFY parameter"),
    (b"RCPT TO:<c@d> NOTIFY=DELAY,DELAY\r\n", "501 5.5.4 Bad NOTIFY parameter"),
    (b"RCPT TO:<c@d> NOTIFY=SOMETIMES\r\n", "501 5.5.4 Bad NOTIFY parameter"),
    (b"RCPT TO:<c@d> NOTIFY=NEVER NOTIFY=NEVER\r\n", "501 5.5.4 Duplicate NOTIFY parameter"),
    (b"RCPT TO:<c@d> ORCPT=c@d\r\n", "501 5.5.4 Bad ORCPT parameter"),
    (b"RCPT TO:<c@d> ORCPT=rfc822;\r\n", "501 5.5.4 Bad ORCPT parameter"),
    (b"RCPT TO:<c@d> ORCPT=rfc822;a+ZZ\r\n", "501 5.5.4 Bad ORCPT parameter"),
    (b"RCPT TO:<c@d> ORCPT=r(f);a\r\n", "501 5.5.4 Bad ORCPT parameter"),
    (b"RCPT TO:<c@d> FOO=BAR\r\n", "555 5.5.4 Unsupported option"),
])
def test_dsn_errors(feed_mode, command, expected):
    first = [MAIL] if command.startswith(b"RCPT") else []
    result = run([EHLO] + first + [command], feed_mode, dsn=True)
    assert result.replies.endswith(reply(expected))


def test_dsn_parameters_without_dsn(feed_mode):
    client = [EHLO, DSN_MAIL, MAIL, b"RCPT TO:<c@d> NOTIFY=NEVER\r\n"]
    result = run(client, feed_mode)
    unsupported = reply("555 5.5.4 Unsupported option")
    assert result.replies == EHLO_OK + unsupported + MAIL_OK + unsupported
    result = run([b"HELO c\r\n", MAIL, b"RCPT TO:<c@d> NOTIFY=NEVER\r\n"], feed_mode,
                 dsn=True)
    assert result.replies == reply("250 mx.test") + MAIL_OK + unsupported


@pytest.mark.parametrize("text, decoded", [
    ("abc", "abc"), ("a+2Bb+3D", "a+b="), ("+C3+A9", "\u00e9"), ("", ""),
    ("a+2b", None), ("a=b", None), ("a b", None), ("+FF", None), ("\u00e9", None),
])
def test_xtext_decode(text, decoded):
    assert xtext_decode(text) == decoded


# The transcript

def test_transcript(feed_mode):
    client = [EHLO, MAIL, RCPT, DATA, b"Subject: x\r\n\r\nbody\r\n.\r\n",
              b"VRFY \xff\xfe\r\n", b"QUIT\r\n"]
    session = SMTPSession(HOST)
    session.greeting()
    for chunk in client:
        feed(session, chunk, feed_mode)
    assert session.transcript == [
        "S: 220 mx.test ESMTP testservers", "C: EHLO client.test",
        "S: 250-mx.test", "S: 250-PIPELINING", "S: 250-SIZE 33554432",
        "S: 250-ENHANCEDSTATUSCODES", "S: 250-8BITMIME", "S: 250 SMTPUTF8",
        "C: MAIL FROM:<alice@example.org>", "S: 250 2.1.0 OK",
        "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 OK", "C: DATA",
        "S: 354 End data with <CR><LF>.<CR><LF>", "C: .", "S: 250 2.0.0 OK",
        "C: VRFY \\xff\\xfe",
        "S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
        "C: QUIT", "S: 221 2.0.0 Bye"]


def test_transcript_is_bounded(feed_mode):
    session = SMTPSession(HOST, max_transcript=5)
    feed(session, b"NOOP\r\n" * 3 + b"x" * 600 + b"\r\n", feed_mode)
    assert session.transcript == ["C: NOOP", "S: 250 2.0.0 OK", "C: NOOP",
                                  "S: 250 2.0.0 OK",
                                  "... (max_transcript lines kept; later ones dropped)"]
    session = SMTPSession(HOST)
    feed(session, b"y" * 600 + b"\r\nNOOP\r\n", feed_mode)
    assert session.transcript == ["C: (a line over the length limit, discarded)",
                                  "S: 500 5.5.6 Error: line too long", "C: NOOP",
                                  "S: 250 2.0.0 OK"]
    assert SMTPSession(HOST, max_transcript=0).transcript == []


def test_a_scripted_use_is_claimed_before_its_callable_runs():
    # Two connections took the last use of a times=1 callable reply at
    # once: it answered both.  Now the first claims it; the second runs
    # its command as usual.
    import threading
    from testservers._smtprecords import Scripts
    from conftest import TIMEOUT
    scripts = Scripts(lambda lines: lines)
    started, release, results = threading.Event(), threading.Event(), []

    def reply(arg):
        started.set()
        release.wait(TIMEOUT)
        return ["451 4.3.0 busy"]
    scripts.add("RCPT", reply, 1, False)
    first = threading.Thread(target=lambda: results.append(scripts.take("RCPT", "a")))
    first.start()
    try:
        assert started.wait(TIMEOUT)
        assert scripts.take("RCPT", "b") is None
    finally:
        release.set()
        first.join(TIMEOUT)
    assert results == [(["451 4.3.0 busy"], False)]


def test_a_use_given_back_by_a_callable_stays_in_order_and_undo_wins():
    from testservers._smtprecords import Scripts
    scripts = Scripts(lambda lines: lines)
    passing = scripts.add("MAIL", lambda arg: None, 1, False)
    scripts.add("MAIL", ["452 later"], 1, False)
    assert scripts.take("MAIL", "x") is None        # the callable let it run...
    assert scripts.take("MAIL", "x") is None        # ... and still comes first
    scripts.remove(passing)
    assert scripts.take("MAIL", "x") == (["452 later"], False)
