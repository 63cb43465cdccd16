"""The bundled test CA, the contexts for both ends, and TLS stream servers."""

import datetime
import socket
import ssl
import subprocess
import shutil

import pytest

import testservers
from conftest import TIMEOUT


def echo_line(request):
    request.wfile.write(request.rfile.readline())


def tls_roundtrip(server, host="localhost", context=None):
    context = context or testservers.client_ssl_context()
    with socket.create_connection((host, server.port), TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=host) as c:
            c.sendall(b"secret\n")
            return c.makefile("rb").readline(), c.version()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_shorthand_verifies_with_client_context(host):
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        line, version = tls_roundtrip(server, host)
        assert line == b"secret\n" and version.startswith("TLS")
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.tls and conn.data == b"secret\n"
        assert conn.bytes_received == 7 and conn.bytes_sent == 7


def test_ipv6_name_in_certificate():
    try:
        server = testservers.TestTCPServer(("::1", 0), echo_line, tls=True)
    except OSError as exc:
        pytest.skip("IPv6 loopback not available: %s" % exc)
    with server:
        assert tls_roundtrip(server, "::1")[0] == b"secret\n"


def test_sslctx_parameter_takes_any_context():
    context = testservers.server_ssl_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with testservers.TestTCPServer(None, echo_line, sslctx=context) as server:
        assert server.sslctx is context
        assert tls_roundtrip(server)[0] == b"secret\n"


def test_strict_verification_as_python_313_does():
    context = testservers.client_ssl_context()
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The default context of every Python, strict flag added, trusts it too.
    plain = ssl.create_default_context(cafile=testservers.CA_CERT_FILE)
    plain.verify_flags |= ssl.VERIFY_X509_STRICT
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        assert tls_roundtrip(server, context=plain)[0] == b"secret\n"


def test_wrong_name_is_rejected_by_client():
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        context = testservers.client_ssl_context()
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(raw, server_hostname="example.org")
        server.wait_connections(1, TIMEOUT, closed=True)
    assert server.errors == []      # the client's failure is not a handler error


def test_plain_client_on_tls_server_is_not_a_handler_error(capfd):
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                c.recv(100)         # the server gives up on the handshake
            except ConnectionResetError:
                pass                # ... and closes with our bytes unread
        server.wait_connections(1, TIMEOUT, closed=True)
    assert server.errors == []
    assert capfd.readouterr() == ("", "")


def test_default_trust_store_does_not_trust_the_test_ca():
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        context = ssl.create_default_context()
        context.load_default_certs()
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(raw, server_hostname="localhost")


def _not_after(path):
    return ssl._ssl._test_decode_cert(path)["notAfter"]


def test_certificates_valid_for_a_century():
    for path in (testservers.CA_CERT_FILE, testservers.SERVER_CERT_FILE):
        expires = datetime.datetime.strptime(_not_after(path), "%b %d %H:%M:%S %Y %Z")
        assert expires.isoformat() + "Z" == testservers.CERT_NOT_AFTER.replace("Z", "") + "Z"
        assert expires.year >= datetime.datetime.now().year + 90


def test_server_certificate_names():
    cert = ssl._ssl._test_decode_cert(testservers.SERVER_CERT_FILE)
    assert set(cert["subjectAltName"]) == {
        ("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("IP Address", "0:0:0:0:0:0:0:1")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_strict_verification():
    out = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", testservers.CA_CERT_FILE,
         testservers.SERVER_CERT_FILE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout
