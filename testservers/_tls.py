"""The bundled test certificates, TLS contexts for both ends, and TLS records.

The files in ``certs/`` beside this module come from one throw-away test CA
(``ca.pem``): a server certificate with its key (``server.pem``) for
``localhost``, ``127.0.0.1`` and ``::1``, a client certificate for mutual
TLS (``client.pem``), and four server certificates that a verifying client
must refuse, one reason each: ``expired.pem`` (2000-2001),
``not-yet-valid.pem`` (2100-2120), ``wrong-host.pem`` (for
``wrong.host.invalid`` only) and ``self-signed.pem`` (signed by its own
key, which nobody trusts).  The others are valid from 2020-01-01 to
2120-01-01.  All carry the extensions that Python 3.13's
``VERIFY_X509_STRICT`` demands: basicConstraints (critical), keyUsage,
subject and authority key identifiers.  The keys are P-256, so handshakes
are cheap.  The CA's private key is not shipped: nobody can mint further
certificates that a :func:`client_ssl_context` would trust.

``certs/make-certs.sh`` holds the exact OpenSSL commands that made them.

:class:`TLSInfo` is what a stream server records of each TLS handshake.
The server name (SNI) and the ALPN protocols a client offered are read
from its ClientHello, which the server peeks at (``MSG_PEEK``) before the
handshake; :mod:`ssl` itself exposes neither list to a server.
"""

import os
import socket

try:
    import ssl
except ImportError:         # a Python built without OpenSSL
    ssl = None

__all__ = ["CA_CERT_FILE", "SERVER_CERT_FILE", "CLIENT_CERT_FILE", "CERT_NOT_AFTER",
           "TLS_SCENARIOS", "TLSInfo", "server_ssl_context", "client_ssl_context"]

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")

#: Path of the test CA certificate (PEM), for ``curl --cacert`` or
#: ``requests``' ``verify=``.
CA_CERT_FILE = os.path.join(_HERE, "ca.pem")

#: Path of the server certificate followed by its unencrypted key (PEM).
SERVER_CERT_FILE = os.path.join(_HERE, "server.pem")

#: Path of the client certificate followed by its unencrypted key (PEM),
#: for ``curl --cert`` or ``requests``' ``cert=``.
CLIENT_CERT_FILE = os.path.join(_HERE, "client.pem")

#: When the bundled good certificates expire (UTC), as an ISO 8601 string.
CERT_NOT_AFTER = "2120-01-01T00:00:00Z"

# The server certificates a client must refuse, by the name the ``tls``
# option and server_ssl_context(scenario=...) take.
_SCENARIO_FILES = {
    "expired": "expired.pem",               # X509_V_ERR_CERT_HAS_EXPIRED (10)
    "not-yet-valid": "not-yet-valid.pem",   # X509_V_ERR_CERT_NOT_YET_VALID (9)
    "wrong-host": "wrong-host.pem",         # X509_V_ERR_HOSTNAME_MISMATCH (62)
    "self-signed": "self-signed.pem",       # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT (18)
}

#: The names of the bad server certificates, as the ``tls`` option of every
#: stream server and ``server_ssl_context(scenario=...)`` take them.
TLS_SCENARIOS = tuple(_SCENARIO_FILES)

_CLIENT_AUTH = {True: "CERT_REQUIRED", "optional": "CERT_OPTIONAL"}


def server_ssl_context(certfile=None, keyfile=None, *, scenario=None, client_auth=False):
    """Return a server-side :class:`ssl.SSLContext`.

    By default it presents the bundled certificate for ``localhost``,
    ``127.0.0.1`` and ``::1``; *certfile* and *keyfile* select another
    chain, as :meth:`ssl.SSLContext.load_cert_chain` takes them, and
    *scenario*, one of :data:`TLS_SCENARIOS`, a bundled certificate that
    clients must refuse.  With *client_auth* true the server asks for a
    client certificate signed by the test CA (as :data:`CLIENT_CERT_FILE`
    is) and fails the handshake without one; ``"optional"`` asks for one
    but lets a client without a certificate in.
    """
    _check_client_auth(client_auth)
    if scenario is not None:
        if certfile is not None or keyfile is not None:
            raise ValueError("give certfile or scenario, not both")
        certfile = os.path.join(_HERE, _SCENARIO_FILES[_check_scenario(scenario)])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile or SERVER_CERT_FILE, keyfile)
    if client_auth:
        context.verify_mode = getattr(ssl, _CLIENT_AUTH[client_auth])
        context.load_verify_locations(CA_CERT_FILE)
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def client_ssl_context(cafile=None, *, client_cert=False):
    """Return a client-side :class:`ssl.SSLContext` that trusts the test CA.

    It is :func:`ssl.create_default_context` with *cafile* (the bundled
    :data:`CA_CERT_FILE` by default) as its only trust anchor, so host
    names and certificates are verified exactly as in production, and
    ``VERIFY_X509_STRICT`` is on for every Python version, not only 3.13.
    With *client_cert* ``True`` it presents the bundled client certificate
    (:data:`CLIENT_CERT_FILE`) to a server that asks for one; a path
    presents that PEM file (certificate and key) instead.  Pass it as
    ``context=`` to :mod:`http.client`, :mod:`urllib.request`,
    :mod:`smtplib` or :class:`logging.handlers.HTTPHandler`.
    """
    if not isinstance(client_cert, (bool, str, os.PathLike)):
        raise TypeError("client_cert must be False, True or the path of a PEM "
                        "file, not %r" % (client_cert,))
    if client_cert == "":
        raise ValueError("client_cert must be False, True or the path of a PEM "
                         "file, not ''")
    context = ssl.create_default_context(cafile=cafile or CA_CERT_FILE)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if client_cert is not False:
        context.load_cert_chain(CLIENT_CERT_FILE if client_cert is True else client_cert)
    return context


def _check_scenario(scenario):
    if scenario not in _SCENARIO_FILES:
        raise ValueError("unknown TLS scenario %r; the bundled ones are %s"
                         % (scenario, ", ".join(map(repr, TLS_SCENARIOS))))
    return scenario


def _check_client_auth(client_auth):
    if not isinstance(client_auth, (bool, str)):
        raise TypeError("client_auth must be a bool or 'optional', not %r" % (client_auth,))
    if isinstance(client_auth, str) and client_auth != "optional":
        raise ValueError("client_auth must be False, True or 'optional', not %r"
                         % (client_auth,))


def _context_for_option(tls, client_auth=False):
    """Return the server context that the ``tls`` option *tls* asks for.

    ``True`` means the bundled certificate; a name from
    :data:`TLS_SCENARIOS` one of the bad ones.  Any other value is refused
    with :exc:`ValueError`, naming the values that are accepted.
    """
    _check_client_auth(client_auth)
    if tls is True:
        return server_ssl_context(client_auth=client_auth)
    if isinstance(tls, str) and tls in _SCENARIO_FILES:
        return server_ssl_context(scenario=tls, client_auth=client_auth)
    raise ValueError("tls must be False, True or one of %s, not %r"
                     % (", ".join(map(repr, TLS_SCENARIOS)), tls))


def _client_auth_option(sslctx, tls, client_auth):
    """Apply the ``client_auth`` option of a stream server; return *sslctx*.

    *sslctx* is the context the ``sslctx`` and ``tls`` options gave.  A
    context the ``tls`` option made is changed to ask for a client
    certificate; a context of the caller's own is not touched, so
    *client_auth* with it (or without TLS) is refused with
    :exc:`ValueError`.
    """
    _check_client_auth(client_auth)
    if client_auth is False:
        return sslctx
    if sslctx is None:
        raise ValueError("client_auth needs TLS: add tls=True (or a scenario name)")
    if tls is False:
        raise ValueError("client_auth applies to the bundled certificates (tls=); "
                         "for an sslctx of your own, set its verify_mode or use "
                         "server_ssl_context(client_auth=True)")
    sslctx.verify_mode = getattr(ssl, _CLIENT_AUTH[client_auth])
    sslctx.load_verify_locations(CA_CERT_FILE)
    sslctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return sslctx


# -- what the server saw of a handshake ---------------------------------------

class TLSInfo:
    """What a stream server saw of one TLS handshake.

    ``version`` and ``cipher`` are the negotiated protocol (``"TLSv1.3"``)
    and cipher suite name, ``None`` if the handshake failed.
    ``server_name`` is the host name the client sent (SNI, RFC 6066 3), or
    ``None`` if it sent none (clients send none for an IP address).
    ``alpn_offered`` is a tuple of the ALPN protocols the client offered,
    in its order (RFC 7301 3.1), empty if it offered none.
    ``alpn_protocol`` is the one the server's context chose, or ``None``.
    ``client_cert`` is the verified client certificate as
    :meth:`ssl.SSLSocket.getpeercert` decodes it and ``client_subject`` its
    subject as a dict (``{"commonName": ..., "organizationName": ...}``),
    both ``None`` without one.  ``handshake_error`` is ``None`` after a
    handshake that succeeded, else what ended it: the OpenSSL reason, such
    as ``"SSLV3_ALERT_CERTIFICATE_EXPIRED"`` when the client refused the
    certificate, or the error's text.  ``hello_read`` tells whether the
    ClientHello was read at all; when it was not (the client sent no TLS,
    or the ClientHello did not arrive whole within the handshake timeout),
    ``server_name`` is ``None`` and ``alpn_offered`` empty, whatever the
    client sent.
    """

    __slots__ = ("version", "cipher", "server_name", "alpn_offered", "alpn_protocol",
                 "client_cert", "client_subject", "handshake_error", "hello_read")

    def __init__(self):
        self.version = self.cipher = self.server_name = self.alpn_protocol = None
        self.client_cert = self.client_subject = self.handshake_error = None
        self.alpn_offered = ()
        self.hello_read = False

    def __repr__(self):
        if self.handshake_error is not None:
            state = "failed: %s" % self.handshake_error
        elif self.version is None:
            state = "handshake pending"
        else:
            state = "%s %s" % (self.version, self.cipher)
        return "<TLSInfo %s, server_name=%r, alpn_offered=%r>" % (
            state, self.server_name, self.alpn_offered)

    def _handshake_done(self, tls):
        """Note what the handshake on *tls* (an SSLSocket) negotiated."""
        self.version = tls.version()
        cipher = tls.cipher()
        self.cipher = cipher[0] if cipher else None
        self.alpn_protocol = tls.selected_alpn_protocol()
        cert = tls.getpeercert()
        if cert:
            self.client_cert = cert
            self.client_subject = {name: value for rdn in cert.get("subject", ())
                                   for name, value in rdn}

    def _handshake_failed(self, exc):
        self.handshake_error = getattr(exc, "reason", None) or \
            ("%s: %s" % (type(exc).__name__, exc))


# -- the ClientHello, peeked at before the handshake ---------------------------

_RECORD_HANDSHAKE = 22      # RFC 8446 5.1, ContentType handshake
_CLIENT_HELLO = 1           # RFC 8446 4, HandshakeType client_hello
_EXT_SERVER_NAME = 0        # RFC 6066 3
_EXT_ALPN = 16              # RFC 7301 3.1
_MAX_RECORD = 2 ** 14 + 256     # RFC 5246 6.2.2: TLSCiphertext.length limit
MAX_CLIENT_HELLO = 65536    # more than any real ClientHello; a bound, not a rule


def _hello_message(data):
    """Find the ClientHello message in *data*, the first bytes a client sent.

    Return ``(body, 0)`` with the message body once *data* holds it whole,
    or ``(None, n)`` when at least *n* bytes are needed.  The message may
    span several handshake records (RFC 8446 5.1).  Raise
    :exc:`ValueError` if *data* does not start a ClientHello.
    """
    payload = bytearray()
    pos = 0
    while True:
        if len(data) < pos + 5:
            return None, pos + 5
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if data[pos] != _RECORD_HANDSHAKE or data[pos + 1] != 3 or \
                not 0 < length <= _MAX_RECORD:
            raise ValueError("not a TLS handshake record")
        end = pos + 5 + length
        if len(data) < end:
            return None, end
        payload += data[pos + 5:end]
        pos = end
        if len(payload) >= 4:
            if payload[0] != _CLIENT_HELLO:
                raise ValueError("not a ClientHello")
            size = 4 + int.from_bytes(payload[1:4], "big")
            if size > MAX_CLIENT_HELLO:
                raise ValueError("ClientHello of %d bytes" % size)
            if len(payload) >= size:
                return bytes(payload[4:size]), 0


class _Reader:
    """Read the length-prefixed vectors of TLS's presentation language."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("ClientHello cut short")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def vector(self, size_len):
        return _Reader(self.take(int.from_bytes(self.take(size_len), "big")))

    def more(self):
        return self.pos < len(self.data)


def _hello_fields(body):
    """Return ``(server_name, alpn_offered)`` from a ClientHello *body*."""
    hello = _Reader(body)
    hello.take(2 + 32)      # legacy_version, random (RFC 8446 4.1.2)
    hello.vector(1)         # legacy_session_id
    hello.vector(2)         # cipher_suites
    hello.vector(1)         # legacy_compression_methods
    server_name, alpn = None, ()
    extensions = hello.vector(2) if hello.more() else _Reader(b"")
    while extensions.more():
        kind = int.from_bytes(extensions.take(2), "big")
        ext = extensions.vector(2)
        if kind == _EXT_SERVER_NAME:
            names = ext.vector(2)
            while names.more():
                name_type, name = names.take(1)[0], names.vector(2)
                if name_type == 0:      # host_name, the only type defined
                    server_name = name.data.decode("ascii", "backslashreplace")
        elif kind == _EXT_ALPN:
            protocols = ext.vector(2)
            names = []
            while protocols.more():
                names.append(protocols.vector(1).data.decode("ascii", "backslashreplace"))
            alpn = tuple(names)
    return server_name, alpn


def _peek_client_hello(sock, info):
    """Read the client's ClientHello on *sock* into *info*, consuming nothing.

    *sock* is a plain connected socket whose timeout bounds the wait.  A
    ClientHello that arrives in pieces is waited for with ``SO_RCVLOWAT``
    where TCP honours it, so the wait never spins.  Raise
    :exc:`socket.timeout` if no complete ClientHello came in time; return
    quietly if the client sent something else, or closed.
    """
    lowat = getattr(socket, "SO_RCVLOWAT", None) \
        if sock.family in (socket.AF_INET, socket.AF_INET6) else None
    raised = False
    seen = 0
    try:
        for _ in range(8):      # a few records at most; bounded whatever comes
            data = sock.recv(_MAX_RECORD + 5 + seen, socket.MSG_PEEK)
            if len(data) <= seen:
                return          # the end of the stream, or no progress
            seen = len(data)
            try:
                body, need = _hello_message(data)
                if body is not None:
                    info.server_name, info.alpn_offered = _hello_fields(body)
                    info.hello_read = True
                    return
            except ValueError:
                return          # not TLS: the handshake fails and says so
            if lowat is None:
                return
            # Wake only once *need* bytes are queued (poll honours it).
            sock.setsockopt(socket.SOL_SOCKET, lowat, need)
            raised = True
    finally:
        if raised:
            try:
                sock.setsockopt(socket.SOL_SOCKET, lowat, 1)
            except OSError:
                pass
