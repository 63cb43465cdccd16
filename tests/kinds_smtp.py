"""Rows for TestSMTPServer: plain, implicit TLS (SMTPS) and STARTTLS.

Import kinds first (it imports this module, and holds the handler, so that
a child process that imports the handler by name meets no import cycle).
"""

import smtplib

import testservers
from conftest import TIMEOUT
from kinds import Kind, client_context, smtp_echo, wrap

# One whole SMTP session, pipelined in a single write (RFC 2920), so the
# handler runs without the client waiting for any reply.
PIPELINED = (b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n"
             b"RCPT TO:<b@example.org>\r\nDATA\r\nSubject: go\r\n\r\ngo\r\n.\r\n")


def read_reply(sock):
    """Read one whole SMTP reply (RFC 5321 4.2.1: its last line has a space
    after the code); return its lines."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        if len(lines) > 1 and any(line[3:4] == b" " for line in lines[:-1]):
            return lines[:-1]
        chunk = sock.recv(4096)
        assert chunk, "the server closed within a reply: %r" % data
        data += chunk


class SMTPKind(Kind):
    """SMTP: the handler is called as handler(peer, mailfrom, rcpttos, data)."""

    echo = staticmethod(smtp_echo)
    records = "messages"

    def client(self, server):
        client = server.smtp_client(TIMEOUT)        # SMTP_SSL for SMTPS
        if self.secure == "starttls":
            client.starttls(context=client_context())
        return client

    def send(self, server, text):
        client = self.client(server)
        try:
            client.sendmail("a@example.org", ["b@example.org"],
                            "Subject: %s\r\n\r\n%s" % (text, text))
        finally:
            client.quit()

    def roundtrip(self, server, count=None):
        client = self.client(server)
        try:
            assert client.ehlo()[0] == 250
            assert client.mail("a@example.org")[0] == 250
            assert client.rcpt("b@example.org")[0] == 250
            assert client.data(b"Subject: ping\r\n\r\nping") == (250, b"2.0.0 echo ping")
        finally:
            client.quit()
        if count is not None:
            messages = self.wait_records(server, count)
            assert [m.reply for m in messages] == ["250 2.0.0 echo ping"] * count

    def fail(self, server):
        try:
            self.send(server, "fail")
        except smtplib.SMTPDataError:
            pass
        else:
            raise AssertionError("the failing handler's message was accepted")

    def greeted(self, server):
        """Connect and read the greeting; after STARTTLS for that row."""
        sock = self.connect(server)
        try:
            assert read_reply(sock)[-1].startswith(b"220 ")
            if self.secure == "starttls":
                sock.sendall(b"EHLO client.test\r\n")
                assert read_reply(sock)[-1].startswith(b"250 ")
                sock.sendall(b"STARTTLS\r\n")
                assert read_reply(sock)[-1].startswith(b"220 ")
                sock = wrap(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def trigger(self, server):
        sock = self.greeted(server)
        sock.sendall(PIPELINED)
        return sock

    def block_in_read(self, server, entered):
        """Leave the connection thread blocked reading from an idle client."""
        sock = self.greeted(server)
        entered.set()
        return sock


ROWS = {"TestSMTPServer": [
    SMTPKind("smtp", testservers.TestSMTPServer),
    SMTPKind("smtps", testservers.TestSMTPServer, secure="implicit", tls=True),
    SMTPKind("smtp-starttls", testservers.TestSMTPServer, secure="starttls",
             starttls=True),
]}
