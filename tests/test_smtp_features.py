"""What a test can tell TestSMTPServer to do, end to end through smtplib and
logging.handlers.SMTPHandler: AUTH mechanisms, hooks, scripted replies
(answer()), VRFY/EXPN/HELP, EHLO keywords and extensions switched off, DSN,
transcripts, and smtpd's handler contract."""

import json
import logging
import logging.handlers
import smtplib
import sys

import pytest

import testservers
from conftest import TIMEOUT
from testservers._smtpauth import md5_available

HOST = "127.0.0.1"
USERS = {"alice": "s3cret"}


def client(server):
    return smtplib.SMTP(HOST, server.port, local_hostname="localhost", timeout=TIMEOUT)


def sent(server, verb):
    """The command lines of the latest connection that start with *verb*."""
    return [line[3:] for line in server.transcript()
            if line.startswith("C: " + verb)]


class KeepingHandler(logging.handlers.SMTPHandler):
    """An SMTPHandler that keeps its error instead of printing it."""

    error = None

    def handleError(self, record):
        self.error = sys.exc_info()[1]
        smtp = sys.exc_info()[2].tb_frame.f_locals.get("smtp")
        if smtp is not None:        # emit() leaves it open when it fails
            smtp.close()


def log_to(server, **kwargs):
    handler = KeepingHandler((HOST, server.port), "log@example.org",
                             ["ops@example.org", "gone@example.org"], "Log",
                             timeout=TIMEOUT, **kwargs)
    handler.handle(logging.makeLogRecord({"msg": "Hello"}))
    handler.close()
    return handler


# -- AUTH ---------------------------------------------------------------------


@pytest.mark.skipif(not md5_available(), reason="MD5 is forbidden here")
def test_login_uses_cram_md5_first_with_a_mapping():
    with testservers.TestSMTPServer(auth=USERS) as server:
        with client(server) as c:
            c.ehlo()
            assert c.esmtp_features["auth"] == " CRAM-MD5 PLAIN LOGIN"
            assert c.login("alice", "s3cret")[0] == 235
            assert sent(server, "AUTH") == ["AUTH CRAM-MD5"]
            c.sendmail("alice@example.org", "b@example.org", b"x\r\n")
        assert server.messages[0].user == "alice"


def test_login_alone_is_what_login_uses():
    with testservers.TestSMTPServer(auth=USERS, auth_mechanisms=["LOGIN"]) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("alice", "wrong")
            assert c.login("alice", "s3cret") == (235, b"2.7.0 Authentication successful")
        assert [line.split()[:2] for line in sent(server, "AUTH")] == [
            ["AUTH", "LOGIN"], ["AUTH", "LOGIN"]]


def test_xoauth2_through_smtp_auth():
    def xoauth2(initial):
        response = initial if initial is not None else (yield b"")
        fields = dict(f.split("=", 1) for f in response.decode().split("\x01") if "=" in f)
        if fields.get("auth") == "Bearer ya29.token":
            return fields["user"]
        yield json.dumps({"status": "401", "schemes": "bearer"})
        return None

    def token(user, value):
        def authobject(challenge=None):
            if challenge:       # the error: answer with the dummy response
                assert json.loads(challenge)["status"] == "401"
                return "\x01"
            return "user=%s\x01auth=Bearer %s\x01\x01" % (user, value)
        return authobject

    with testservers.TestSMTPServer(auth_mechanisms=[("XOAUTH2", xoauth2)],
                                    auth_required=True) as server:
        with client(server) as c:
            c.ehlo()
            assert c.has_extn("auth") and "XOAUTH2" in c.esmtp_features["auth"]
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                c.auth("XOAUTH2", token("alice", "expired"))
            assert info.value.smtp_code == 535
            assert c.auth("XOAUTH2", token("alice", "ya29.token"))[0] == 235
            c.sendmail("alice@example.org", "b@example.org", b"x\r\n")
        assert server.messages[0].user == "alice"


def test_on_auth_refuses_with_its_own_reply():
    with testservers.TestSMTPServer(
            auth=USERS, auth_mechanisms=["PLAIN"],
            on_auth=lambda peer, user, mechanism: "534 5.7.9 Mechanism too weak") as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                c.login("alice", "s3cret")
            assert info.value.smtp_code == 534


# -- per-command hooks --------------------------------------------------------


def test_rcpt_hook_partial_refusal():
    def on_rcpt(peer, mailfrom, rcptto, options):
        assert peer[0] == HOST
        return "550 5.1.1 No such mailbox" if rcptto.startswith("gone") else None

    with testservers.TestSMTPServer(on_rcpt=on_rcpt) as server:
        with client(server) as c:
            refused = c.sendmail("a@example.org", ["one@example.org", "gone@example.org",
                                                   "two@example.org"], b"x\r\n")
        assert refused == {"gone@example.org": (550, b"5.1.1 No such mailbox")}
        (msg,) = server.messages
        assert msg.rcpttos == ["one@example.org", "two@example.org"]
        # logging's SMTPHandler: the refused recipient does not stop the mail.
        handler = log_to(server)
        assert handler.error is None
        assert server.wait_messages(2, TIMEOUT)[1].rcpttos == ["ops@example.org"]


def test_mail_and_data_hooks():
    def on_mail(peer, mailfrom, mail_options):
        return "553 5.7.1 Not from you" if mailfrom == "spam@example.org" else None

    def on_data(peer, mailfrom, rcpttos):
        return "554 5.7.1 No data today" if "late@example.org" in rcpttos else None

    with testservers.TestSMTPServer(on_mail=on_mail, on_data=on_data) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                c.sendmail("spam@example.org", "b@example.org", b"x\r\n")
            assert info.value.smtp_code == 553
            with pytest.raises(smtplib.SMTPDataError) as info:
                c.sendmail("a@example.org", "late@example.org", b"x\r\n")
            assert info.value.smtp_code == 554
            c.rset()    # a refused DATA leaves the transaction, as in Postfix
            assert c.sendmail("a@example.org", "b@example.org", b"x\r\n") == {}
        assert [m.rcpttos for m in server.messages] == [["b@example.org"]]


def test_hook_error_is_recorded_and_raised():
    def on_mail(peer, mailfrom, mail_options):
        raise LookupError("no sender table")

    with testservers.TestSMTPServer(on_mail=on_mail) as server:
        with client(server) as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n")
            assert info.value.smtp_code == 451
        with pytest.raises(LookupError, match="no sender table"):
            server.wait_messages(1, TIMEOUT)
        assert [type(e) for e in server.take_errors()] == [LookupError]


# -- scripted replies -----------------------------------------------------------


def test_answer_once_then_as_usual():
    with testservers.TestSMTPServer() as server:
        with server.answer("RCPT", "451 4.3.0 Try again later"):
            with client(server) as c:
                refused = c.sendmail("a@example.org", ["b@example.org", "c@example.org"],
                                     b"x\r\n")
            assert refused == {"b@example.org": (451, b"4.3.0 Try again later")}
        assert server.messages[0].rcpttos == ["c@example.org"]
        assert server.connections[0].fault == "answer"


def test_answer_421_at_data_closes():
    with testservers.TestSMTPServer() as server:
        server.answer("DATA", "421 4.3.2 System shutting down")
        with client(server) as c:
            with pytest.raises(smtplib.SMTPDataError) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n")
            assert info.value.smtp_code == 421
            (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
            assert conn.closed_by == "server"
            with pytest.raises(smtplib.SMTPServerDisconnected):
                c.noop()
        assert server.messages == []


def test_answer_many_times_multiline_and_undo():
    with testservers.TestSMTPServer() as server:
        fault = server.answer("NOOP", "250-first line\n250 second line", times=None)
        with client(server) as c:
            assert c.noop() == (250, b"first line\nsecond line")
            assert c.noop() == (250, b"first line\nsecond line")
            fault.undo()
            assert c.noop() == (250, b"2.0.0 OK")


def test_answer_500_at_quit_and_clear_faults():
    with testservers.TestSMTPServer() as server:
        server.answer("QUIT", "500 5.5.1 Not now", times=2)
        with pytest.raises(smtplib.SMTPResponseException) as info:
            with client(server):
                pass
        assert info.value.smtp_code == 500
        server.clear_faults()
        with client(server) as c:
            assert c.noop()[0] == 250
        assert server.transcript()[-1] == "S: 221 2.0.0 Bye"


def test_answer_after_the_data_and_smtp_handler():
    with testservers.TestSMTPServer() as server:
        server.answer(".", "552 5.3.4 Too big for us")
        handler = log_to(server)
        assert isinstance(handler.error, smtplib.SMTPDataError)
        assert handler.error.smtp_code == 552
        assert server.messages == []


@pytest.mark.parametrize("args, error", [
    (("FOO", "500 x"), ValueError), (("RCPT", "354 go on"), ValueError),
    (("RCPT", "nonsense"), ValueError), (("RCPT", "451 x", 0), ValueError),
    (("RCPT", "451 x", True), ValueError), ((None, "451 x"), ValueError),
    (("RCPT", 451), TypeError),
])
def test_answer_refuses_bad_arguments(args, error):
    with testservers.TestSMTPServer() as server:
        with pytest.raises(error):
            server.answer(*args)


# -- VRFY, EXPN, HELP, EHLO ---------------------------------------------------------


def test_vrfy_expn_and_help():
    with testservers.TestSMTPServer(
            vrfy={"fred@example.org": "Fred Smith <fred@example.org>"},
            expn={"staff": ["Ann <ann@example.org>", "Bo <bo@example.org>"]},
            help_text="See https://example.org/help") as server:
        with client(server) as c:
            assert c.verify("fred@example.org") == (
                250, b"2.1.5 Fred Smith <fred@example.org>")
            assert c.verify("nobody")[0] == 550
            assert c.expn("staff") == (
                250, b"2.1.5 Ann <ann@example.org>\n2.1.5 Bo <bo@example.org>")
            assert c.help() == b"2.0.0 See https://example.org/help"
    with testservers.TestSMTPServer() as server:
        with client(server) as c:
            assert c.verify("anyone")[0] == 252
            assert c.expn("staff") == (502, b"5.5.1 EXPN not implemented")


def test_ehlo_keywords_and_extensions_switched_off():
    with testservers.TestSMTPServer(
            ehlo_keywords=["DELIVERBY 120"],
            disable_extensions=["SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE"]) as server:
        with client(server) as c:
            c.ehlo()
            assert c.esmtp_features["deliverby"] == "120"
            assert not c.has_extn("smtputf8") and not c.has_extn("size")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                c.sendmail("\u00e5lice@example.org", "b@example.org", b"x\r\n",
                           mail_options=["SMTPUTF8"])
            assert c.noop() == (250, b"OK")     # no enhanced status code
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        assert server.messages[0].mail_options == []    # no SIZE without SIZE


def test_8bitmime_switched_off():
    with testservers.TestSMTPServer(disable_extensions=["8BITMIME"]) as server:
        with client(server) as c:
            c.ehlo()
            assert not c.has_extn("8bitmime")
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n",
                           mail_options=["BODY=8BITMIME"])
            assert info.value.smtp_code == 555


# -- DSN, records, transcripts ---------------------------------------------------


def test_dsn_recorded():
    with testservers.TestSMTPServer(dsn=True) as server:
        with client(server) as c:
            c.ehlo()
            assert c.has_extn("dsn")
            c.sendmail("a@example.org", ["b@example.org", "c@example.org"], b"x\r\n",
                       mail_options=["RET=HDRS", "ENVID=QQ314159"],
                       rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+40example.org"])
            with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
                c.sendmail("a@example.org", "b@example.org", b"x\r\n",
                           rcpt_options=["NOTIFY=NEVER,DELAY"])
            assert info.value.recipients["b@example.org"][0] == 501
        (msg,) = server.messages
    assert msg.dsn == {"ret": "HDRS", "envid": "QQ314159",
                       "notify": [("SUCCESS", "FAILURE")] * 2,
                       "orcpt": [("rfc822", "b@example.org")] * 2}
    assert msg.rcpt_options == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+40example.org"]] * 2


def test_transcript_of_each_connection():
    with testservers.TestSMTPServer() as server:
        with pytest.raises(ValueError, match="no transcript"):
            server.transcript()
        with client(server) as c:
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
        with client(server) as c:
            c.noop()
        first, second = server.wait_connections(2, TIMEOUT, closed=True)
        # smtplib sends "mail FROM:" before 3.13 and "mail from:" since.
        assert [line.lower() for line in server.transcript(first)] == [line.lower() for line in [
            "S: 220 localhost ESMTP testservers", "C: ehlo localhost",
            "S: 250-localhost", "S: 250-PIPELINING", "S: 250-SIZE 33554432",
            "S: 250-ENHANCEDSTATUSCODES", "S: 250-8BITMIME", "S: 250 SMTPUTF8",
            "C: mail FROM:<a@example.org> size=3", "S: 250 2.1.0 OK",
            "C: rcpt TO:<b@example.org>", "S: 250 2.1.5 OK", "C: data",
            "S: 354 End data with <CR><LF>.<CR><LF>", "C: .", "S: 250 2.0.0 OK",
            "C: QUIT", "S: 221 2.0.0 Bye"]]
        assert server.transcript() == server.transcript(second.id) == [
            "S: 220 localhost ESMTP testservers", "C: noop", "S: 250 2.0.0 OK",
            "C: QUIT", "S: 221 2.0.0 Bye"]
        with pytest.raises(ValueError, match="connection 7"):
            server.transcript(7)


# -- smtpd's handler contract ------------------------------------------------------


def test_null_sender_and_smtpd_keywords():
    calls = []

    def handler(peer, mailfrom, rcpttos, data, mail_options=None, rcpt_options=None):
        calls.append((mailfrom, data, mail_options, rcpt_options))

    with testservers.TestSMTPServer(None, handler, decode_data=False, dsn=True) as server:
        with client(server) as c:
            c.sendmail("<>", ["b@example.org", "c@example.org"], b"bounce\r\n",
                       mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=NEVER"])
        assert server.messages[0].mailfrom == "<>"
    with testservers.TestSMTPServer(None, handler) as server:
        with client(server) as c:
            c.sendmail("<>", "b@example.org", b"text\r\n")
    assert calls == [
        ("<>", b"bounce", ["size=8", "BODY=8BITMIME"], ["NOTIFY=NEVER", "NOTIFY=NEVER"]),
        ("<>", "text", None, None)]


def test_handler_taking_any_keywords():
    seen = []
    with testservers.TestSMTPServer(None, lambda *args, **kwargs: seen.append(kwargs),
                                    decode_data=False) as server:
        with client(server) as c:
            c.sendmail("a@example.org", "b@example.org", b"x\r\n")
    assert seen == [{"mail_options": ["size=3"], "rcpt_options": []}]


@pytest.mark.parametrize("handler, options", [
    (lambda peer, mailfrom, rcpttos: None, {}),
    (lambda: None, {}),
    (lambda peer, mailfrom, rcpttos, data, extra: None, {}),
    (lambda peer, mailfrom, rcpttos, data, mail_options: None, {}),
    ("not callable", {}),
    (None, {"on_mail": lambda peer, mailfrom: None}),
    (None, {"on_rcpt": lambda peer, rcptto, options: None}),
    (None, {"on_data": lambda: None}),
    (None, {"on_auth": lambda peer, user: None}),
    (None, {"on_mail": "no"}),
])
def test_handlers_and_hooks_are_checked_at_construction(handler, options):
    with pytest.raises(TypeError):
        testservers.TestSMTPServer(None, handler, **options)


@pytest.mark.parametrize("options, error", [
    ({"auth_mechanisms": ["CRAM-MD5"], "auth": lambda user, password: True}, ValueError),
    ({"auth_mechanisms": ["PLAIN"]}, ValueError),
    ({"auth_mechanisms": "PLAIN", "auth": USERS}, TypeError),
    ({"disable_extensions": ["DSN"]}, ValueError),
    ({"ehlo_keywords": ["SIZE 10"]}, ValueError),
    ({"vrfy": "table"}, TypeError),
    ({"help_text": 214}, TypeError),
])
def test_bad_new_options(options, error):
    with pytest.raises(error):
        testservers.TestSMTPServer(**options)


def test_answer_and_transcript_in_process_mode():
    server = testservers.TestSMTPServer.in_process().start()
    try:
        fault = server.answer("RCPT", "451 4.3.0 Later")
        with client(server) as c:
            assert c.sendmail("a@example.org", ["b@example.org", "c@example.org"],
                              b"x\r\n") == {"b@example.org": (451, b"4.3.0 Later")}
        fault.undo()
        assert "S: 451 4.3.0 Later" in server.transcript()
        assert server.messages[0].rcpttos == ["c@example.org"]
    finally:
        server.stop()


def test_smtp_handler_logs_in_with_the_one_mechanism_offered():
    with testservers.TestSMTPServer(auth=USERS, auth_mechanisms=["LOGIN"],
                                    auth_required=True) as server:
        handler = log_to(server, credentials=("alice", "s3cret"))
        assert handler.error is None
        assert server.wait_messages(1, TIMEOUT)[0].user == "alice"
        assert [line.split()[:2] for line in sent(server, "AUTH")] == [["AUTH", "LOGIN"]]
