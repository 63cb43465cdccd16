"""Lifecycle rows for the SMTP servers: TestSMTPServer over plain TCP."""

import smtplib

import testservers
from conftest import TIMEOUT
from kinds import Kind

# One whole SMTP session, pipelined in a single write (RFC 2920), so the
# handler runs without the client waiting for any reply.
PIPELINED = (b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n"
             b"RCPT TO:<b@example.org>\r\nDATA\r\nSubject: go\r\n\r\ngo\r\n.\r\n")


class SMTPKind(Kind):
    """SMTP: the handler is called as handler(peer, mailfrom, rcpttos, data)."""

    def handler(self, body):
        def handle(peer, mailfrom, rcpttos, data):
            if body is not None:
                body((peer, mailfrom, rcpttos, data))
            return "250 2.0.0 echo " + data.rpartition("\n")[2]
        return handle

    def roundtrip(self, server):
        client = smtplib.SMTP("127.0.0.1", server.port, local_hostname="localhost",
                              timeout=TIMEOUT)
        try:
            assert client.ehlo()[0] == 250
            assert client.mail("a@example.org")[0] == 250
            assert client.rcpt("b@example.org")[0] == 250
            assert client.data(b"Subject: ping\r\n\r\nping") == (250, b"2.0.0 echo ping")
        finally:
            client.quit()

    def trigger(self, server):
        sock = self.connect(server)
        sock.sendall(PIPELINED)
        return sock

    def block_in_read(self, server, entered):
        """Leave the connection thread blocked reading from an idle client."""
        sock = self.connect(server)
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            data = sock.recv(1024)
            assert data, "the server closed before its greeting"
            greeting += data
        assert greeting.startswith(b"220 ")
        entered.set()
        return sock


smtp_kind = SMTPKind("smtp")
smtp_kind.cls = testservers.TestSMTPServer
KINDS = [smtp_kind]
