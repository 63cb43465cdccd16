"""The bundled test certificate authority and TLS contexts for both ends.

The files in ``certs/`` beside this module are a throw-away test CA
(``ca.pem``) and a server certificate with its key (``server.pem``) for
``localhost``, ``127.0.0.1`` and ``::1``.  Both are valid from
2020-01-01 to 2120-01-01 and carry the extensions that Python 3.13's
``VERIFY_X509_STRICT`` demands: basicConstraints (critical), keyUsage,
subject and authority key identifiers.  The keys are P-256, so handshakes
are cheap.  The CA's private key is not shipped: nobody can mint further
certificates that a :func:`client_ssl_context` would trust.

``certs/make-certs.sh`` holds the exact OpenSSL commands that made them.
"""

import os
import ssl

__all__ = ["CA_CERT_FILE", "SERVER_CERT_FILE", "CERT_NOT_AFTER",
           "server_ssl_context", "client_ssl_context"]

_HERE = os.path.dirname(os.path.abspath(__file__))

#: Path of the test CA certificate (PEM), for ``curl --cacert`` or
#: ``requests``' ``verify=``.
CA_CERT_FILE = os.path.join(_HERE, "certs", "ca.pem")

#: Path of the server certificate followed by its unencrypted key (PEM).
SERVER_CERT_FILE = os.path.join(_HERE, "certs", "server.pem")

#: When the bundled certificates expire (UTC), as an ISO 8601 string.
CERT_NOT_AFTER = "2120-01-01T00:00:00Z"


def server_ssl_context(certfile=None, keyfile=None):
    """Return a server-side :class:`ssl.SSLContext`.

    By default it presents the bundled certificate for ``localhost``,
    ``127.0.0.1`` and ``::1``; *certfile* and *keyfile* select another
    chain, as :meth:`ssl.SSLContext.load_cert_chain` takes them.  The
    context asks for no client certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile or SERVER_CERT_FILE, keyfile)
    return context


def client_ssl_context(cafile=None):
    """Return a client-side :class:`ssl.SSLContext` that trusts the test CA.

    It is :func:`ssl.create_default_context` with *cafile* (the bundled
    :data:`CA_CERT_FILE` by default) as its only trust anchor, so host
    names and certificates are verified exactly as in production, and
    ``VERIFY_X509_STRICT`` is on for every Python version, not only 3.13.
    Pass it as ``context=`` to :mod:`http.client`, :mod:`urllib.request`,
    :mod:`smtplib` or :class:`logging.handlers.HTTPHandler`.
    """
    context = ssl.create_default_context(cafile=cafile or CA_CERT_FILE)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _context_for_option(tls):
    """Return the server context that the ``tls`` option *tls* asks for.

    ``True`` means the bundled certificate.  Any other value is refused
    with :exc:`ValueError`, naming the values that are accepted.
    """
    if tls is True:
        return server_ssl_context()
    raise ValueError("tls must be False or True, not %r" % (tls,))
