"""TestSMTPServer: real sockets around the sans-IO SMTP session.

Each connection runs on a thread of its own (see ``_stream``) with a
blocking socket: the thread sends the session's greeting, passes every
chunk it receives to :meth:`SMTPSession.feed`, sends the replies, and
upgrades the socket when the session asks for STARTTLS.  Every message is
recorded as a :class:`Message` before its reply goes out, so a client
that has seen "250" finds the message in ``server.messages``.
"""

import collections.abc
import email
import email.policy
import socket
import time

try:
    import ssl
except ImportError:         # a Python built without OpenSSL
    ssl = None

from ._base import _log
from ._records import WAIT_TIMEOUT, _awaitable
from ._smtpproto import (DEFAULT_MAX_RECIPIENTS, DEFAULT_SIZE_LIMIT,
                         SMTPSession, _handler_reply)
from ._stream import _StreamServer

__all__ = ["TestSMTPServer", "Message"]

#: Seconds a client may stay silent before it gets 421 and is closed
#: (RFC 5321 4.5.3.2.7 asks for at least 5 minutes).
IDLE_TIMEOUT = 300.0

_RECV_SIZE = 65536
_SSL_ERROR = ssl.SSLError if ssl is not None else ()
# The reply the session sends when on_message raises (see _smtpproto).
_ABORTED = "451 4.3.0 Requested action aborted: local error in processing"
_STARTTLS_MODES = {False: "off", True: "offered", "required": "required"}


def _smtpd_text(data):
    """Return *data* as ``smtpd`` with ``decode_data=True`` handed it over:
    decoded as UTF-8, lines joined by LF, no newline at the end."""
    if data.endswith(b"\r\n"):
        data = data[:-2]
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


class Message:
    """One message that the server received.

    ``peer`` is the client address; ``mailfrom`` the envelope sender
    (``""`` for the null sender ``<>``); ``rcpttos`` the list of envelope
    recipients; ``data`` the message bytes as received, after
    dot-unstuffing, with CRLF line endings and the final CRLF; ``text``
    the same as the old ``smtpd`` gave it with ``decode_data=True`` (a str
    decoded as UTF-8, lines joined by LF, no newline at the end);
    ``message`` the :class:`email.message.EmailMessage` parsed from
    ``data`` with :data:`email.policy.default` and LF line endings (on
    first use).  ``user`` is the authenticated user or ``None``; ``tls``
    tells whether TLS was in use; ``helo`` is the HELO/EHLO argument and
    ``esmtp`` true after EHLO; ``mail_options`` lists the MAIL parameters
    as sent; ``smtputf8`` tells whether MAIL carried SMTPUTF8; ``reply``
    is the reply line the client got; ``connection_id`` is the ``id`` of
    the :class:`Connection`; ``received`` is a :func:`time.monotonic`
    time.
    """

    def __init__(self, peer, envelope, connection_id, esmtp=True):
        self.peer = peer
        self.mailfrom = envelope.mailfrom
        self.rcpttos = list(envelope.rcpttos)
        self.data = envelope.data
        self.user = envelope.user
        self.tls = envelope.tls
        self.helo = envelope.helo
        self.esmtp = esmtp
        self.mail_options = list(envelope.mail_options)
        self.smtputf8 = envelope.smtputf8
        self.reply = None
        self.connection_id = connection_id
        self.received = time.monotonic()
        self._message = None

    @property
    def text(self):
        """The message as a str, as ``smtpd`` gave it with ``decode_data=True``."""
        return _smtpd_text(self.data)

    @property
    def message(self):
        """The parsed :class:`email.message.EmailMessage`."""
        if self._message is None:
            # SMTP lines end in CRLF; LF is what the email package keeps in
            # the parts it returns (get_content() == "text\n").
            self._message = email.message_from_bytes(
                self.data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        return self._message

    def __repr__(self):
        return "<Message from %r to %r, %d bytes, %r>" % (
            self.mailfrom, self.rcpttos, len(self.data), self.reply)


class TestSMTPServer(_StreamServer):
    """An SMTP server that records every message and hands it to a handler.

    ``TestSMTPServer(listen_addr=None, handler=None, poll_interval=0.5,
    sockmap=None, *, hostname="localhost", decode_data=True, auth=None,
    auth_required=False, starttls=False, starttls_context=None,
    sslctx=None, tls=False, size_limit=33554432, max_recipients=1000,
    timeout=300.0, esmtp=True)``

    *handler* is called as ``handler(peer, mailfrom, rcpttos, data)`` for
    each message, on the connection's thread, as in CPython's
    test_logging; *data* is a str as ``smtpd`` gave it with
    ``decode_data=True``, or with *decode_data* false the raw bytes.  It
    returns ``None`` (the client gets 250) or a reply line such as
    ``"550 5.7.1 rejected"``; an exception gives the client 451 and is
    raised by :meth:`stop`.  *sockmap* is accepted for test_logging's
    signature and ignored.  *hostname* is the name in the greeting.

    *auth* is a dict ``{user: password}`` or a callable ``auth(user,
    password) -> bool``; it turns on AUTH PLAIN and LOGIN, and
    *auth_required* makes MAIL answer 530 until the client logs in.
    *starttls* is ``False``, ``True`` (offered) or ``"required"`` (530
    before it), with *starttls_context* or the bundled test certificate.
    *sslctx*, or ``tls=True`` for the bundled certificate, serves implicit
    TLS (SMTPS) instead.  *size_limit*, *max_recipients* and *timeout*
    (idle seconds before 421, ``None`` for none) are limits.  With *esmtp*
    false the server answers EHLO with 500, as an RFC 821 server does, so
    clients fall back to HELO.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`smtp_client`, :meth:`wait_messages`, :meth:`wait_connections`,
    :meth:`wait_for`, :meth:`take_errors`, :meth:`clear_records`, and the
    faults.  Attributes: ``port``, ``server_address``, ``ready``,
    ``messages``, ``connections``, ``errors``.
    """

    handler_params = ("peer", "mailfrom", "rcpttos", "data")
    handler_class_base = None

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5, sockmap=None,
                 *, hostname="localhost", decode_data=True, auth=None, auth_required=False,
                 starttls=False, starttls_context=None, sslctx=None, tls=False,
                 size_limit=DEFAULT_SIZE_LIMIT, max_recipients=DEFAULT_MAX_RECIPIENTS,
                 timeout=IDLE_TIMEOUT, esmtp=True):
        # Check everything before binding, so a bad option leaks no socket.
        if not (isinstance(starttls, bool) or starttls == "required"):
            raise ValueError("starttls must be False, True or 'required', not %r"
                             % (starttls,))
        if starttls and (tls or sslctx is not None):
            raise ValueError("starttls and implicit TLS (sslctx=, tls=True) "
                             "exclude each other; choose one")
        if starttls_context is not None and not starttls:
            raise ValueError("starttls_context needs starttls=True or 'required'")
        if not (auth is None or callable(auth) or isinstance(auth, collections.abc.Mapping)):
            raise TypeError("auth must be None, a dict {user: password} or a "
                            "callable(user, password), not %r" % (auth,))
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or timeout <= 0):
            raise ValueError("timeout must be a positive number or None, not %r"
                             % (timeout,))
        if handler is not None and not callable(handler):
            raise TypeError("handler must be a callable or None, not %r" % (handler,))
        self.hostname = hostname
        self.decode_data = bool(decode_data)
        self.auth = auth
        self.auth_required = bool(auth_required)
        self.starttls = starttls
        self.size_limit = size_limit
        self.max_recipients = max_recipients
        self.timeout = timeout
        self.esmtp = bool(esmtp)
        self._implicit_tls = bool(tls or sslctx is not None)
        self._new_session()      # raises ValueError for the session's options
        if starttls and starttls_context is None:
            from ._tls import server_ssl_context
            starttls_context = server_ssl_context()
        self.starttls_context = starttls_context
        super().__init__(listen_addr, handler, poll_interval, sslctx=sslctx, tls=tls)

    def _new_session(self, on_message=None):
        return SMTPSession(
            self.hostname, on_message=on_message,
            check_credentials=None if self.auth is None else self._check_credentials,
            auth_required=self.auth_required,
            starttls="off" if self._implicit_tls else _STARTTLS_MODES[self.starttls],
            tls_active=self._implicit_tls, size_limit=self.size_limit,
            max_recipients=self.max_recipients, esmtp=self.esmtp)

    def _check_credentials(self, user, password):
        auth = self.auth
        if isinstance(auth, collections.abc.Mapping):
            return user in auth and auth[user] == password
        return auth(user, password)

    # -- records ------------------------------------------------------------

    @property
    def messages(self):
        """A list of the :class:`Message` records, oldest first."""
        return self._snapshot("messages")

    def wait_messages(self, count=1, timeout=None):
        """Wait until *count* messages were received; return them all.

        A message is recorded after the handler returned and before the
        client gets its reply, with the reply in ``Message.reply``.
        """
        return self._wait_count("messages", count, timeout)

    async_wait_messages = _awaitable(wait_messages)

    # -- the connection -----------------------------------------------------

    def _serve_connection(self, sock, peer, record):
        events = []     # ("error", exc) and ("message", Message), in order
        session = self._new_session(
            lambda envelope: self._on_message(envelope, peer, record, events,
                                              session.esmtp))
        sock.settimeout(self.timeout)
        sock.sendall(session.greeting())
        while not session.closed:
            try:
                data = sock.recv(_RECV_SIZE)
            except socket.timeout:
                sock.sendall(session.timeout_reply())
                return
            except _SSL_ERROR as exc:
                # A TLS client that breaks TLS: a clean close, no handler error.
                _log.debug("%r: TLS error from %r: %r", self, peer, exc)
                return
            if not data:
                return      # the client left (maybe mid-DATA: nothing is recorded)
            reply = session.feed(data)
            self._settle(session, events)
            if reply:
                sock.sendall(reply)
            if session.want_tls:
                # The base closes the TLS socket: it owns the connection now.
                sock = self._handshake(sock, record.id, record, self.starttls_context)
                if sock is None:
                    return      # the client failed the handshake: it knows
                sock.settimeout(self.timeout)
                session.tls_established()

    def _on_message(self, envelope, peer, record, events, esmtp):
        message = Message(peer, envelope, record.id, esmtp)
        try:
            result = None
            if self._handler is not None:
                data = message.text if self.decode_data else message.data
                result = self._handler(peer, message.mailfrom, envelope.rcpttos, data)
            message.reply = _handler_reply(result)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:    # pytest.fail() included: the client gets 451
            message.reply = _ABORTED
            events.append(("error", exc))
            raise       # the session answers 451 and keeps it as pending_error
        finally:
            events.append(("message", message))
        return message.reply

    def _settle(self, session, events):
        """Record what the callbacks of one feed() did, in order: errors
        first, so a waiter sees the error before the message."""
        pending, session.pending_error = session.pending_error, None
        for kind, item in events:
            if kind == "error":
                self._record_error(item)
            else:
                self._append_record("messages", item)
        if pending is not None and not any(item is pending for _, item in events):
            self._record_error(pending)     # from check_credentials
        events.clear()

    # -- clients --------------------------------------------------------------

    def smtp_client(self, timeout=WAIT_TIMEOUT, context=None):
        """Return an :class:`smtplib.SMTP` connected to this server.

        Its EHLO name is ``localhost`` (smtplib would otherwise look up the
        machine's name in the DNS).  For implicit TLS it is an
        :class:`smtplib.SMTP_SSL` that verifies the server with *context*
        (default: one that trusts the bundled test CA).  With STARTTLS,
        call its ``starttls(context=client_ssl_context())``.
        """
        import smtplib
        if self.port is None:
            raise RuntimeError("smtp_client() needs a server on a TCP port")
        host = self.server_address[0]
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        if self._implicit_tls:
            if context is None:
                from ._tls import client_ssl_context
                context = client_ssl_context()
            return smtplib.SMTP_SSL(host, self.port, local_hostname="localhost",
                                    timeout=timeout, context=context)
        return smtplib.SMTP(host, self.port, local_hostname="localhost", timeout=timeout)
