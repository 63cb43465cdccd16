"""Hostile input over real sockets: each case gets the protocol's error or a
clean close, nothing is printed, nothing leaks, memory stays bounded, and
the next valid client is served.  A seeded mutator adds a bounded number of
random cases per run (TESTSERVERS_FUZZ_SEED and TESTSERVERS_FUZZ_CASES
choose them; the seed is in every failure message).
"""

import base64
import os
import random
import smtplib
import socket
import ssl
import tracemalloc

import pytest

import testservers
from conftest import TIMEOUT

SEED = int(os.environ.get("TESTSERVERS_FUZZ_SEED", "20261121"))
CASES = int(os.environ.get("TESTSERVERS_FUZZ_CASES", "500"))


def exchange(server, data, chunks=1, read=True):
    """Send *data* in *chunks* pieces, half-close, return all the replies."""
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
        step = max(1, len(data) // chunks)
        try:
            for i in range(0, len(data), step):
                c.sendall(data[i:i + step])
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass                # the server gave up on us first (EPIPE, ENOTCONN...)
        out = b""
        while read:
            try:
                piece = c.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            out += piece
        return out


def smtp_ok(server):
    """A valid client is served correctly after whatever came before."""
    before = len(server.messages)
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="localhost",
                      timeout=TIMEOUT) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: ok\r\n\r\nfine\r\n")
    assert len(server.messages) == before + 1
    assert server.messages[-1].message["Subject"] == "ok"


@pytest.fixture
def smtp(capfd):
    server = testservers.TestSMTPServer(None, None, auth={"u": "p"}, starttls=True,
                                        size_limit=100000, timeout=5).start()
    yield server
    smtp_ok(server)
    server.stop()
    assert server.errors == []
    assert capfd.readouterr() == ("", "")


SMTP_CASES = {
    "out of order": b"DATA\r\nRCPT TO:<a@b>\r\nMAIL FROM:<a@b>\r\nQUIT\r\n",
    "over-long line": b"EHLO " + b"x" * 100000 + b"\r\nNOOP\r\nQUIT\r\n",
    "bad base64 in AUTH": b"EHLO c\r\nAUTH PLAIN !!!notbase64\r\nAUTH LOGIN\r\n%%%\r\nQUIT\r\n",
    "AUTH bad blob": b"EHLO c\r\nAUTH PLAIN " + base64.b64encode(b"no-nuls") + b"\r\nQUIT\r\n",
    "STARTTLS then plain text": b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n",
    "DATA without end": (b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                         + b"line\r\n" * 1000),
    "NUL bytes": b"EHLO \0\0\r\nMAIL\0FROM:<a@b>\r\n\0\0\0\r\nQUIT\r\n",
    "bare CR and LF": b"EHLO c\rMAIL FROM:<a@b>\nRCPT TO:<c@d>\r\r\nQUIT\n",
    "binary garbage": bytes(range(256)) * 20,
    "smuggling": (b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\n.\n"
                  b"MAIL FROM:<evil@x>\r\n\r\n.\r\nQUIT\r\n"),
    "error flood": b"BOGUS\r\n" * 5000,
}


@pytest.mark.parametrize("name", sorted(SMTP_CASES))
@pytest.mark.parametrize("chunks", [1, 7])
def test_smtp_hostile(smtp, name, chunks):
    replies = exchange(smtp, SMTP_CASES[name], chunks)
    assert replies.startswith(b"220 ")
    if name == "STARTTLS then plain text":
        replies, _, after = replies.partition(b"220 2.0.0 Ready to start TLS\r\n")
        assert after[:1] in (b"", b"\x15")         # nothing, or a TLS alert
    codes = [line[:3] for line in replies.split(b"\r\n") if line]
    assert all(c.isdigit() for c in codes), replies[:300]
    if name == "smuggling":
        assert [m.mailfrom for m in smtp.messages] == ["a@b"]        # one message only
        assert b"MAIL FROM:<evil@x>" in smtp.messages[0].data
    if name == "error flood":
        assert codes[-1] == b"421" and len(codes) <= 25              # bounded
    if name == "STARTTLS then plain text":
        assert b"250 2.1.0" not in replies                           # never executed


def test_smtp_slowloris_one_byte_at_a_time(smtp):
    data = b"EHLO slow\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    replies = exchange(smtp, data, chunks=len(data))
    assert replies.split(b"\r\n")[-2].startswith(b"221")
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("how", ["close", "reset"])
def test_smtp_client_vanishes_mid_data(smtp, how):
    c = socket.create_connection(("127.0.0.1", smtp.port), TIMEOUT)
    c.sendall(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhalf a mess")
    if how == "reset":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    c.close()
    smtp.wait_connections(1, TIMEOUT, closed=True)
    assert smtp.messages == []


def test_smtp_endless_data_keeps_memory_bounded(smtp):
    tracemalloc.start()
    try:
        with socket.create_connection(("127.0.0.1", smtp.port), TIMEOUT) as c:
            c.sendall(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            block = b"y" * 65535 + b"\n"
            for _ in range(160):                    # 10 MiB, 100 times the limit
                c.sendall(block)
            c.sendall(b"\r\n.\r\nQUIT\r\n")
            replies = c.makefile("rb").read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b"552 5.3.4" in replies
    assert peak < 4 * 1024 * 1024, "peak %d bytes" % peak


def test_smtp_plain_text_on_tls_port_and_tls_on_plain_port(capfd):
    with testservers.TestSMTPServer(tls=True) as smtps, \
            testservers.TestSMTPServer() as plain:
        assert exchange(smtps, b"EHLO c\r\nQUIT\r\n") in (b"",)       # no TLS: closed
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", plain.port), TIMEOUT) as raw:
            with pytest.raises((ssl.SSLError, OSError)):
                context.wrap_socket(raw, server_hostname="localhost")
        smtplib.SMTP_SSL("127.0.0.1", smtps.port, local_hostname="localhost",
                         context=testservers.client_ssl_context(), timeout=TIMEOUT).quit()
    assert smtps.errors == plain.errors == []
    assert capfd.readouterr() == ("", "")


def _mutate(rng, data):
    """One random mutation of a valid session: what fuzzers do, seeded."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:                    # flip a byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:                           # insert line-ending trouble
            data[pos:pos] = rng.choice([b"\r", b"\n", b"\0", b"\r\n.\r\n", b".", b"\r\n"])
        elif op == 2:                           # truncate
            del data[pos:]
        elif op == 3:                           # repeat a slice
            end = min(len(data), pos + rng.randint(1, 40))
            data[pos:pos] = data[pos:end] * rng.randint(1, 50)
        elif op == 4:                           # insert random bytes
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
        else:                                   # delete a slice
            del data[pos:pos + rng.randint(1, 20)]
    return bytes(data)


VALID_SMTP = (b"EHLO fuzz\r\nAUTH PLAIN " + base64.b64encode(b"\0u\0p") + b"\r\n"
              b"MAIL FROM:<a@example.org> SIZE=40 BODY=8BITMIME\r\n"
              b"RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"
              b"Subject: fuzz\r\n\r\n.dotted\r\nbody\r\n.\r\nRSET\r\nNOOP\r\n"
              b"VRFY x\r\nHELP\r\nQUIT\r\n")


def test_smtp_seeded_mutations(smtp):
    rng = random.Random(SEED)
    for case in range(CASES):
        data = _mutate(rng, VALID_SMTP)
        replies = exchange(smtp, data, chunks=rng.choice([1, 3, 17]))
        lines = [line for line in replies.split(b"\r\n") if line]
        lines = lines[:next((i for i, line in enumerate(lines)
                             if line.startswith(b"220 2.0.0 Ready to start TLS")), None)]
        assert all(line[:3].isdigit() and line[3:4] in (b" ", b"-") for line in lines), \
            "seed %d case %d: %r -> %r" % (SEED, case, data, replies[:500])
        if case % 25 == 24:
            smtp_ok(smtp)
    assert smtp.errors == []


# -- TCP and UDP ---------------------------------------------------------------

def test_udp_empty_and_maximum_datagrams(capfd):
    with testservers.TestUDPServer() as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            c.sendto(b"", server.server_address)
            c.sendto(b"m" * 65507, server.server_address)        # IPv4's largest
            with pytest.raises(OSError):
                c.sendto(b"m" * 65508, server.server_address)
            c.sendto(b"after", server.server_address)
        got = server.wait_datagrams(3, TIMEOUT)
    assert [len(d.data) for d in got] == [0, 65507, 5]
    assert server.errors == [] and capfd.readouterr() == ("", "")


def test_tcp_half_closed_stream_still_answered():
    def handler(request):
        data = request.rfile.read()          # to the client's half-close
        request.wfile.write(data[::-1])

    with testservers.TestTCPServer(None, handler) as server:
        assert exchange(server, b"abc\0def", chunks=3) == b"fed\0cba"
        conn = server.wait_connections(1, TIMEOUT, closed=True)[0]
        assert conn.data == b"abc\0def" and conn.closed_by == "client"
