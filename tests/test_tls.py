"""The bundled test CA, the contexts for both ends, and TLS stream servers."""

import datetime
import http.client
import os
import smtplib
import socket
import ssl
import subprocess
import shutil
import threading
import urllib.error
import urllib.request

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


# -- the certificates a client must refuse -----------------------------------

# What a verifying client says of each (OpenSSL's X509_V_ERR_* codes).
REFUSALS = {
    "expired": (10, "certificate has expired"),
    "not-yet-valid": (9, "certificate is not yet valid"),
    "wrong-host": (62, "Hostname mismatch"),
    "self-signed": (18, "self-signed certificate"),
}

CERTS = os.path.join(os.path.dirname(testservers.CA_CERT_FILE))


def cert_path(name):
    return os.path.join(CERTS, name + ".pem")


def decoded(name):
    return ssl._ssl._test_decode_cert(cert_path(name))


def year(text):
    return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").year


def test_scenarios_are_the_documented_names():
    assert testservers.TLS_SCENARIOS == tuple(REFUSALS)


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_each_scenario_is_refused_for_its_own_reason(name):
    code, message = REFUSALS[name]
    with testservers.TestTCPServer(None, echo_line, tls=name) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                testservers.client_ssl_context().wrap_socket(raw, server_hostname="localhost")
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert (info.value.verify_code, info.value.verify_message[:len(message)]) == (code, message)
    # The server saw the client give up: the client's alert, not a handler error.
    assert conn.tls and conn.tls_info.handshake_error and conn.tls_info.version is None
    assert server.errors == []


def test_validity_dates():
    now = datetime.datetime.now().year
    for name in ("ca", "server", "client", "wrong-host", "self-signed"):
        cert = decoded(name)
        assert (year(cert["notBefore"]), year(cert["notAfter"])) == (2020, 2120), name
    expired = decoded("expired")
    assert year(expired["notAfter"]) == 2001 < now      # stays expired
    later = decoded("not-yet-valid")
    assert year(later["notBefore"]) == 2100 > now and year(later["notAfter"]) == 2120


def test_bad_certificates_name_what_they_are():
    names = {("DNS", "localhost"), ("IP Address", "127.0.0.1"),
             ("IP Address", "0:0:0:0:0:0:0:1")}
    for name in ("expired", "not-yet-valid", "self-signed"):
        assert set(decoded(name)["subjectAltName"]) == names, name
    assert decoded("wrong-host")["subjectAltName"] == (("DNS", "wrong.host.invalid"),)
    ca = dict(rdn[0] for rdn in decoded("ca")["subject"])
    for name in ("expired", "not-yet-valid", "wrong-host", "client"):
        assert dict(rdn[0] for rdn in decoded(name)["issuer"]) == ca, name
    own = decoded("self-signed")
    assert own["issuer"] == own["subject"] != decoded("ca")["subject"]


def test_wrong_host_passes_for_its_own_name_under_strict_verification():
    # Only the name is wrong: for wrong.host.invalid the chain verifies.
    with testservers.TestTCPServer(None, echo_line, tls="wrong-host") as server:
        line, _ = tls_roundtrip_to(server, "wrong.host.invalid")
        assert line == b"secret\n"


def test_self_signed_passes_when_trusted_under_strict_verification():
    # Only the trust is missing: a client that trusts it verifies it.
    context = testservers.client_ssl_context(cafile=cert_path("self-signed"))
    with testservers.TestTCPServer(None, echo_line, tls="self-signed") as server:
        assert tls_roundtrip(server, context=context)[0] == b"secret\n"


def tls_roundtrip_to(server, server_hostname):
    context = testservers.client_ssl_context()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as c:
            c.sendall(b"secret\n")
            return c.makefile("rb").readline(), c.version()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("name, passes, fails", [
    ("expired", ["-no_check_time"], []),
    ("not-yet-valid", ["-no_check_time"], []),
    ("wrong-host", ["-verify_hostname", "wrong.host.invalid"],
     ["-verify_hostname", "localhost"]),
    ("server", ["-verify_ip", "127.0.0.1"], None),
])
def test_openssl_strict_verification_fails_only_for_the_intended_reason(name, passes, fails):
    def verify(options):
        return subprocess.run(
            ["openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile",
             testservers.CA_CERT_FILE] + options + [cert_path(name)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if name != "wrong-host":
        passes = passes + ["-verify_hostname", "localhost"]
    out = verify(passes)
    assert out.returncode == 0, out.stdout
    if fails is not None:
        assert verify(fails).returncode != 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_client_certificate_is_for_clients():
    out = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
         testservers.CA_CERT_FILE, testservers.CLIENT_CERT_FILE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout


def ok(request):
    request.send_response(200)
    request.send_header("Content-Length", "2")
    request.end_headers()
    request.wfile.write(b"ok")


@pytest.mark.parametrize("name", ["expired", "self-signed"])
def test_urllib_refuses_a_scenario(name):
    with testservers.TestHTTPServer(None, ok, tls=name) as server:
        with pytest.raises(urllib.error.URLError) as info:
            urllib.request.urlopen(server.url(), timeout=TIMEOUT,
                                   context=testservers.client_ssl_context())
        server.wait_connections(1, TIMEOUT, closed=True)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    assert info.value.reason.verify_code == REFUSALS[name][0]
    assert server.requests == [] and server.errors == []


def test_http_client_refuses_the_wrong_host_by_ip_address():
    # For an IP address the mismatch is OpenSSL's "IP address mismatch" (64).
    with testservers.TestHTTPServer(None, ok, tls="wrong-host") as server:
        conn = server.http_connection(timeout=TIMEOUT)
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            conn.request("GET", "/")
        conn.close()
        server.wait_connections(1, TIMEOUT, closed=True)
    assert (info.value.verify_code, info.value.verify_message[:19]) == (
        64, "IP address mismatch")


def test_smtplib_refuses_implicit_tls_scenario():
    with testservers.TestSMTPServer(tls="not-yet-valid") as server:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            smtplib.SMTP_SSL("localhost", server.port, local_hostname="localhost",
                             timeout=TIMEOUT, context=testservers.client_ssl_context())
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert info.value.verify_code == 9
    assert conn.tls_info.server_name == "localhost" and server.messages == []


def test_smtplib_refuses_starttls_scenario():
    context = testservers.server_ssl_context(scenario="expired")
    with testservers.TestSMTPServer(starttls=True, starttls_context=context) as server:
        with smtplib.SMTP("localhost", server.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                client.starttls(context=testservers.client_ssl_context())
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert info.value.verify_code == 10
    assert conn.tls_info.server_name == "localhost"
    assert conn.tls_info.handshake_error == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    assert server.errors == []


def test_unix_stream_server_takes_a_scenario(tmp_path):
    path = str(tmp_path / "s")
    with testservers.TestUnixStreamServer(path, echo_line, tls="self-signed") as server:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(TIMEOUT)
            raw.connect(path)
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                testservers.client_ssl_context().wrap_socket(raw, server_hostname="localhost")
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert info.value.verify_code == 18
    assert conn.tls_info.server_name == "localhost"
    assert conn.tls_info.handshake_error == "TLSV1_ALERT_UNKNOWN_CA"


# -- option values --------------------------------------------------------------

@pytest.mark.parametrize("cls", [testservers.TestTCPServer, testservers.TestHTTPServer,
                                 testservers.TestSMTPServer])
def test_unknown_scenario_is_a_value_error_naming_the_good_ones(cls):
    with pytest.raises(ValueError) as info:
        cls(None, None, tls="expire")
    text = str(info.value)
    assert "'expire'" in text and all(repr(n) in text for n in testservers.TLS_SCENARIOS)


@pytest.mark.parametrize("value", [1, None, b"expired", ["expired"]])
def test_tls_of_another_type_is_a_type_error(value):
    with pytest.raises(TypeError):
        testservers.TestTCPServer(None, None, tls=value)


def test_tls_and_sslctx_exclude_each_other():
    with pytest.raises(ValueError):
        testservers.TestTCPServer(None, None, tls="expired",
                                  sslctx=testservers.server_ssl_context())


def test_server_ssl_context_option_values():
    with pytest.raises(ValueError) as info:
        testservers.server_ssl_context(scenario="nope")
    assert "'self-signed'" in str(info.value)
    with pytest.raises(ValueError):
        testservers.server_ssl_context(testservers.SERVER_CERT_FILE, scenario="expired")
    with pytest.raises(ValueError):
        testservers.server_ssl_context(client_auth="required")
    with pytest.raises(TypeError):
        testservers.server_ssl_context(client_auth=1)
    with pytest.raises(TypeError):
        testservers.client_ssl_context(client_cert=1)
    with pytest.raises(ValueError):
        testservers.client_ssl_context(client_cert="")


def test_client_auth_option_helper():
    from testservers._tls import _client_auth_option
    context = testservers.server_ssl_context()
    assert _client_auth_option(None, False, False) is None
    assert _client_auth_option(context, True, False) is context
    assert context.verify_mode == ssl.CERT_NONE
    assert _client_auth_option(context, "expired", True) is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert _client_auth_option(testservers.server_ssl_context(), True,
                               "optional").verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError):     # no TLS to ask within
        _client_auth_option(None, False, True)
    with pytest.raises(ValueError):     # the caller's own context is not changed
        _client_auth_option(testservers.server_ssl_context(), False, True)
    with pytest.raises(ValueError):
        _client_auth_option(context, True, "yes")
    with pytest.raises(TypeError):
        _client_auth_option(context, True, None)


# -- mutual TLS -----------------------------------------------------------------

def mtls_server(client_auth=True):
    return testservers.TestTCPServer(
        None, echo_line, sslctx=testservers.server_ssl_context(client_auth=client_auth))


def test_mutual_tls_with_the_bundled_client_certificate():
    with mtls_server() as server:
        context = testservers.client_ssl_context(client_cert=True)
        assert tls_roundtrip(server, context=context)[0] == b"secret\n"
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    info = conn.tls_info
    assert info.client_subject == {"commonName": "testservers client",
                                   "organizationName": "testservers"}
    assert info.client_cert["subject"] == ((("commonName", "testservers client"),),
                                           (("organizationName", "testservers"),))
    assert info.handshake_error is None


def test_mutual_tls_refuses_a_client_without_certificate():
    with mtls_server() as server:
        context = testservers.client_ssl_context()
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            # TLS 1.3 finishes the client's side first: the refusal comes as
            # an alert on its first read, or as a reset when the server
            # closed with the client's last bytes unread.
            with pytest.raises((ssl.SSLError, ConnectionResetError)) as info:
                with context.wrap_socket(raw, server_hostname="localhost") as c:
                    c.recv(100)
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    if isinstance(info.value, ssl.SSLError):
        assert info.value.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert conn.tls_info.handshake_error == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert conn.tls_info.client_subject is None and conn.bytes_received == 0
    assert server.errors == []


def test_mutual_tls_refuses_a_certificate_from_another_ca():
    with mtls_server() as server:
        context = testservers.client_ssl_context(client_cert=cert_path("self-signed"))
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                with context.wrap_socket(raw, server_hostname="localhost") as c:
                    c.recv(100)
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.tls_info.handshake_error == "CERTIFICATE_VERIFY_FAILED"
    assert conn.bytes_received == 0 and server.errors == []


def test_optional_client_auth_lets_both_in():
    with mtls_server("optional") as server:
        assert tls_roundtrip(server)[0] == b"secret\n"
        context = testservers.client_ssl_context(client_cert=testservers.CLIENT_CERT_FILE)
        assert tls_roundtrip(server, context=context)[0] == b"secret\n"
        first, second = server.wait_connections(2, TIMEOUT, closed=True)
    assert first.tls_info.client_subject is None
    assert second.tls_info.client_subject["commonName"] == "testservers client"


def test_mutual_tls_over_https_with_urllib():
    sslctx = testservers.server_ssl_context(client_auth=True)
    with testservers.TestHTTPServer(None, ok, sslctx=sslctx) as server:
        context = testservers.client_ssl_context(client_cert=True)
        with urllib.request.urlopen(server.url(), timeout=TIMEOUT, context=context) as r:
            assert r.read() == b"ok"
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(server.url(), timeout=TIMEOUT,
                                   context=testservers.client_ssl_context()).close()
        server.wait_connections(2, TIMEOUT, closed=True)
    (request,) = server.requests
    assert request.connection.tls_info.client_subject["commonName"] == "testservers client"


def test_mutual_tls_on_smtp_starttls():
    context = testservers.server_ssl_context(client_auth=True)
    with testservers.TestSMTPServer(starttls="required", starttls_context=context) as server:
        with server.smtp_client(TIMEOUT) as client:
            client.starttls(context=testservers.client_ssl_context(client_cert=True))
            client.sendmail("a@example.org", ["b@example.org"], "Subject: x\r\n\r\nhi\r\n")
        (message,) = server.wait_messages(1, TIMEOUT)
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert message.tls
    assert conn.tls_info.client_subject["commonName"] == "testservers client"


# -- what the records hold --------------------------------------------------------

def test_records_hold_version_cipher_and_sni():
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        context = testservers.client_ssl_context()
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"secret\n")
                c.makefile("rb").readline()
                version, cipher = c.version(), c.cipher()[0]
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    info = conn.tls_info
    assert (info.version, info.cipher) == (version, cipher)
    assert info.server_name == "localhost" and info.hello_read
    assert info.alpn_offered == () and info.alpn_protocol is None
    assert info.client_cert is None and info.handshake_error is None
    assert "TLSv1" in repr(info) and "localhost" in repr(info)
    assert "pending" in repr(testservers.TLSInfo())


def test_no_sni_for_an_ip_address():
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        tls_roundtrip(server, "127.0.0.1")
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.tls_info.hello_read and conn.tls_info.server_name is None


def test_plain_connection_has_no_tls_info():
    with testservers.TestTCPServer() as server:
        socket.create_connection(("127.0.0.1", server.port), TIMEOUT).close()
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.tls is False and conn.tls_info is None


def test_urllib_offering_http11_by_alpn():
    with testservers.TestHTTPServer(None, ok, tls=True) as server:
        context = testservers.client_ssl_context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        url = "https://localhost:%d/" % server.port
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as r:
            assert r.read() == b"ok"
        (request,) = server.wait_requests(1, TIMEOUT)
    info = request.connection.tls_info
    assert info.alpn_offered == ("h2", "http/1.1") and info.server_name == "localhost"
    assert info.alpn_protocol is None       # the bundled context chooses none


def test_alpn_choice_of_an_own_context_and_its_sni_callback_are_kept():
    sslctx = testservers.server_ssl_context()
    sslctx.set_alpn_protocols(["http/1.1"])
    seen = []
    sslctx.sni_callback = lambda sock, name, ctx: seen.append(name)
    with testservers.TestHTTPServer(None, ok, sslctx=sslctx) as server:
        context = testservers.client_ssl_context()
        context.set_alpn_protocols(["http/1.1"])    # as http.client's own context does
        conn = http.client.HTTPSConnection("localhost", server.port, timeout=TIMEOUT,
                                           context=context)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        conn.close()
        (request,) = server.wait_requests(1, TIMEOUT)
    info = request.connection.tls_info
    assert info.alpn_offered == ("http/1.1",) and info.alpn_protocol == "http/1.1"
    assert seen == ["localhost"] == [info.server_name]


def test_smtp_starttls_records_after_the_upgrade():
    with testservers.TestSMTPServer(starttls=True) as server:
        with smtplib.SMTP("localhost", server.port, local_hostname="localhost",
                          timeout=TIMEOUT) as client:
            assert server.wait_connections(1, TIMEOUT)[0].tls_info is None
            client.starttls(context=testservers.client_ssl_context())
            version = client.sock.version()
            client.noop()
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.tls_info.version == version
    assert conn.tls_info.server_name == "localhost"


def test_plain_text_on_a_tls_server_is_recorded_as_such():
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                c.recv(100)
            except ConnectionResetError:
                pass
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    info = conn.tls_info
    assert not info.hello_read and info.handshake_error and info.version is None


def test_silent_client_times_out_once(monkeypatch):
    import testservers._stream
    monkeypatch.setattr(testservers._stream, "HANDSHAKE_TIMEOUT", 0.05)
    with testservers.TestTCPServer(None, echo_line, tls=True) as server:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as c:
            (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
            assert c.recv(100) == b""       # the server closed, without a word
    assert not conn.tls_info.hello_read
    assert "timed out" in conn.tls_info.handshake_error
    assert server.errors == []


def test_stop_wakes_a_connection_waiting_for_its_client_hello():
    server = testservers.TestTCPServer(None, echo_line, tls=True)
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT):
        server.wait_connections(1, TIMEOUT)
        server.stop(timeout=TIMEOUT / 2)    # HANDSHAKE_TIMEOUT would be 10 s
    assert server.errors == []


# -- the ClientHello, read by the server -----------------------------------------

def client_hello(server_hostname="localhost", alpn=("h2", "http/1.1")):
    """Return the first bytes a TLS client sends: its ClientHello records."""
    context = testservers.client_ssl_context()
    if alpn:
        context.set_alpn_protocols(list(alpn))
    outgoing = ssl.MemoryBIO()
    obj = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def refragment(hello, size):
    """Split the handshake message of *hello* into records of *size* bytes."""
    message = hello[5:]
    out = b""
    for start in range(0, len(message), size):
        piece = message[start:start + size]
        out += hello[:3] + len(piece).to_bytes(2, "big") + piece
    return out


def test_parse_client_hello_at_every_length():
    from testservers._tls import _hello_fields, _hello_message
    for data in (client_hello(), refragment(client_hello(), 100)):
        for n in range(len(data)):
            body, need = _hello_message(data[:n])
            assert body is None and n < need <= len(data)
        body, need = _hello_message(data + b"more")
        assert need == 0
        assert _hello_fields(body) == ("localhost", ("h2", "http/1.1"))


def test_parse_client_hello_without_sni_or_alpn():
    from testservers._tls import _hello_fields, _hello_message
    body, _ = _hello_message(client_hello(server_hostname=None, alpn=()))
    assert _hello_fields(body) == (None, ())


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x00\x00", b"\x17\x03\x03\x00\x05hello",
    b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",      # a ServerHello
    b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",      # a ClientHello of 16 MiB
])
def test_parse_refuses_what_is_not_a_client_hello(data):
    from testservers._tls import _hello_message
    with pytest.raises(ValueError):
        _hello_message(data)


def test_parse_refuses_a_cut_extension():
    from testservers._tls import _hello_fields, _hello_message
    body, _ = _hello_message(client_hello())
    for n in range(0, len(body), 7):
        try:
            _hello_fields(body[:n])
        except ValueError:
            pass        # cut short: refused, never an IndexError


class SignallingSocket:
    """A socket stand-in that says when its first peek returned."""

    def __init__(self, sock):
        self.sock, self.family = sock, sock.family
        self.peeked = threading.Event()
        self.peeks = 0

    def recv(self, size, flags=0):
        data = self.sock.recv(size, flags)
        self.peeks += 1
        self.peeked.set()
        return data

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)


def test_client_hello_in_pieces_is_waited_for_without_spinning():
    from testservers._tls import TLSInfo, _peek_client_hello
    hello = refragment(client_hello(), 200)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), TIMEOUT) as client:
            server_side, _ = listener.accept()
            with server_side:
                server_side.settimeout(TIMEOUT)
                client.sendall(hello[:150])
                wrapped = SignallingSocket(server_side)
                info = TLSInfo()
                peeker = threading.Thread(target=_peek_client_hello, args=(wrapped, info))
                peeker.start()
                assert wrapped.peeked.wait(TIMEOUT)
                client.sendall(hello[150:])
                peeker.join(TIMEOUT)
                assert not peeker.is_alive()
                assert info.hello_read and wrapped.peeks >= 2
                assert (info.server_name, info.alpn_offered) == ("localhost", ("h2", "http/1.1"))
                # Nothing was consumed: the handshake reads it all.
                assert server_side.recv(len(hello) + 10, socket.MSG_PEEK) == hello
                lowat = getattr(socket, "SO_RCVLOWAT", None)
                if lowat is not None:
                    assert server_side.getsockopt(socket.SOL_SOCKET, lowat) == 1


# -- the client_auth option of the stream servers ---------------------------------


def _echo_line(request):
    request.wfile.write(request.rfile.readline())


def test_client_auth_option_composes_with_scenarios():
    with testservers.TestTCPServer(None, _echo_line, tls="wrong-host", client_auth=True) as server:
        assert server.sslctx.verify_mode == ssl.CERT_REQUIRED
        ctx = testservers.client_ssl_context(client_cert=True)
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="wrong.host.invalid") as c:
                c.sendall(b"x\n")
                assert c.makefile("rb").readline() == b"x\n"
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
    assert conn.tls_info.client_subject["commonName"] == "testservers client"


@pytest.mark.parametrize("options, exc", [
    ({"client_auth": True}, ValueError),
    ({"client_auth": True, "sslctx": None, "tls": False}, ValueError),
    ({"client_auth": "yes", "tls": True}, ValueError),
    ({"client_auth": 1, "tls": True}, TypeError),
])
def test_client_auth_option_refused(options, exc):
    with pytest.raises(exc):
        testservers.TestTCPServer(None, None, **options)


def test_client_auth_with_own_sslctx_refused():
    with pytest.raises(ValueError):
        testservers.TestTCPServer(None, None, sslctx=testservers.server_ssl_context(),
                                  client_auth=True)


def test_https_server_takes_client_auth():
    with testservers.TestHTTPServer(tls=True, client_auth=True) as server:
        server.expect("GET", "/", body=b"hi")
        context = testservers.client_ssl_context(client_cert=True)
        conn = server.http_connection(context=context)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"hi"
        finally:
            conn.close()
        (record,) = server.wait_connections(1)
    assert record.tls_info.client_subject["commonName"] == "testservers client"


@pytest.mark.parametrize("options", [{"tls": True}, {"starttls": True}])
def test_smtp_server_takes_client_auth(options):
    with testservers.TestSMTPServer(client_auth=True, **options) as server:
        context = testservers.client_ssl_context(client_cert=True)
        if options.get("tls"):
            client = smtplib.SMTP_SSL("localhost", server.port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP("localhost", server.port, timeout=TIMEOUT)
        with client:
            if not options.get("tls"):
                client.starttls(context=context)
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
        (message,) = server.wait_messages(1)
        (record,) = server.wait_connections(1)
    assert message.tls
    assert record.tls_info.client_subject["commonName"] == "testservers client"


def test_smtp_client_auth_with_own_starttls_context_is_refused():
    with pytest.raises(ValueError, match="starttls_context"):
        testservers.TestSMTPServer(starttls=True, client_auth=True,
                                   starttls_context=testservers.server_ssl_context())


def test_a_context_of_your_own_is_counted_and_stays_usable():
    # The server makes counting sockets through the public
    # SSLContext.sslsocket_class; the context's other uses see no change.
    context = testservers.server_ssl_context()
    with testservers.TestTCPServer(None, echo_line, sslctx=context) as server:
        assert tls_roundtrip(server)[0] == b"secret\n"
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert (conn.bytes_received, conn.bytes_sent) == (7, 7)
    # The same context serves a plain wrap_socket() of its own.
    a, b = socket.socketpair()
    client_context = testservers.client_ssl_context()

    def client():
        with client_context.wrap_socket(b, server_hostname="localhost") as c:
            c.sendall(b"x")
            c.recv(1)
    thread = threading.Thread(target=client)
    thread.start()
    try:
        with context.wrap_socket(a, server_side=True) as s:
            assert s.recv(1) == b"x"
            s.sendall(b"y")
    finally:
        thread.join(TIMEOUT)


def test_starttls_takes_a_scenario_name():
    with testservers.TestSMTPServer(starttls=True, starttls_context="expired") as server:
        with smtplib.SMTP("localhost", server.port, timeout=TIMEOUT) as client:
            with pytest.raises(ssl.SSLCertVerificationError) as refused:
                client.starttls(context=testservers.client_ssl_context())
        assert refused.value.verify_code == 10      # X509_V_ERR_CERT_HAS_EXPIRED
    assert server.messages == []


@pytest.mark.parametrize("value, exc", [("bogus", ValueError), (True, TypeError), (1, TypeError)])
def test_starttls_context_is_checked(value, exc):
    with pytest.raises(exc):
        testservers.TestSMTPServer(starttls=True, starttls_context=value)
