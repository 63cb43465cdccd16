"""TestSMTPServer: real sockets around the sans-IO SMTP session.

Each connection runs on a thread of its own (see ``_stream``), through
the connection pump of ``_pump``: the thread sends the session's
greeting, passes every chunk it receives to :meth:`SMTPSession.feed`,
sends the replies, and upgrades the connection when the session asks for
STARTTLS.  Every message is
recorded as a :class:`Message` before its reply goes out, so a client
that has seen "250" finds the message in ``server.messages``.  The
options are checked once, into a ``SessionConfig`` that every session
shares; the handler and hooks are bound to each connection's peer.
"""

import collections.abc
import inspect


from ._base import _log
from ._faults import Fault
from ._records import WAIT_TIMEOUT, _awaitable
from ._smtpauth import mechanisms as _auth_mechanisms
from ._smtpoptions import (DEFAULT_MAX_RECIPIENTS, DEFAULT_SIZE_LIMIT,
                           SessionConfig, reply_lines, strip_esc)
from ._smtpproto import ABORTED, COMMANDS, SMTPSession, handler_reply
from ._smtprecords import Message, Scripts, Transcript, smtpd_bytes
from ._faults import _check_flags
from ._pump import _Pump
from ._stream import _StreamServer

__all__ = ["TestSMTPServer", "Message"]

#: Seconds a client may stay silent before it gets 421 and is closed
#: (RFC 5321 4.5.3.2.7 asks for at least 5 minutes).
IDLE_TIMEOUT = 300.0

_RECV_SIZE = 65536
_STARTTLS_MODES = {False: "off", True: "offered", "required": "required"}
# What each hook is called with (the peer first, as the handler).
_HOOKS = {"on_mail": ("peer", "mailfrom", "mail_options"),
          "on_rcpt": ("peer", "mailfrom", "rcptto", "rcpt_options"),
          "on_data": ("peer", "mailfrom", "rcpttos"),
          "on_auth": ("peer", "user", "mechanism")}
_SMTPD_KEYWORDS = ("mail_options", "rcpt_options")


def _check_params(what, func, names, keywords=()):
    """Refuse *func* unless it can be called with *names* (positional) and
    *keywords*; return the keywords of _SMTPD_KEYWORDS it accepts."""
    if not callable(func):
        raise TypeError("%s must be a callable or None, not %r" % (what, func))
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):     # a callable that hides its signature
        return ()
    params = signature.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = tuple(k for k in _SMTPD_KEYWORDS if var_kw or (
        k in params and params[k].kind in (params[k].POSITIONAL_OR_KEYWORD,
                                           params[k].KEYWORD_ONLY)))
    call = ", ".join(names + tuple("%s=[...]" % k for k in keywords if k in accepted))
    try:
        signature.bind(*names, **{k: [] for k in keywords if k in accepted})
    except TypeError:
        raise TypeError("TestSMTPServer calls its %s as %s(%s); %r takes %s"
                        % (what, what, call, func, signature)) from None
    return accepted


def _is_context(value):
    try:
        import ssl
    except ImportError:         # a Python built without OpenSSL
        return False
    return isinstance(value, ssl.SSLContext)


class TestSMTPServer(_StreamServer):
    """An SMTP server that records every message and hands it to a handler.

    ``TestSMTPServer(listen_addr=None, handler=None, poll_interval=0.5,
    sockmap=None, *, hostname="localhost", decode_data=True, auth=None,
    auth_required=False, auth_mechanisms=None, starttls=False,
    starttls_context=None, sslctx=None, tls=False, client_auth=False, size_limit=33554432,
    max_recipients=1000, timeout=300.0, esmtp=True, dsn=False,
    disable_extensions=(), ehlo_keywords=(), vrfy=None, expn=None,
    help_text=None, on_mail=None, on_rcpt=None, on_data=None,
    on_auth=None)``

    *handler* is called as ``handler(peer, mailfrom, rcpttos, data)`` for
    each message, on the connection's thread, as :mod:`!smtpd` called
    ``process_message``: *mailfrom* is ``"<>"`` for the null sender; *data*
    is a str with ``decode_data=True``, else bytes, with LF line endings
    and no final newline; with *decode_data* false a handler that takes
    ``mail_options`` and ``rcpt_options`` keywords gets them.  It returns
    ``None`` (the client gets 250) or a reply line; an exception gives the
    client 451 and is raised by :meth:`stop`.  The hooks *on_mail*,
    *on_rcpt*, *on_data* and *on_auth* accept or refuse each command the
    same way.  See the SMTP reference for every option.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`smtp_client`, :meth:`wait_messages`, :meth:`wait_connections`,
    :meth:`wait_for`, :meth:`transcript`, :meth:`answer`,
    :meth:`take_errors`, :meth:`clear_records`, and the stream faults.
    Attributes: ``port``, ``server_address``, ``ready``, ``messages``,
    ``connections``, ``errors``.
    """

    handler_params = ("peer", "mailfrom", "rcpttos", "data")
    handler_class_base = None       # a callable only, never a request handler class

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5, sockmap=None,
                 *, hostname="localhost", decode_data=True, auth=None, auth_required=False,
                 auth_mechanisms=None, starttls=False, starttls_context=None, sslctx=None,
                 tls=False, client_auth=False, size_limit=DEFAULT_SIZE_LIMIT,
                 max_recipients=DEFAULT_MAX_RECIPIENTS, timeout=IDLE_TIMEOUT, esmtp=True,
                 dsn=False, disable_extensions=(), ehlo_keywords=(), vrfy=None, expn=None,
                 help_text=None, on_mail=None, on_rcpt=None, on_data=None, on_auth=None):
        # Check everything before binding, so a bad option leaks no socket.
        _check_flags(decode_data=decode_data, auth_required=auth_required, esmtp=esmtp,
                     dsn=dsn)
        if not (isinstance(starttls, bool) or starttls == "required"):
            raise ValueError("starttls must be False, True or 'required', not %r"
                             % (starttls,))
        if starttls and (tls or sslctx is not None):
            raise ValueError("starttls and implicit TLS (sslctx=, tls=True) "
                             "exclude each other; choose one")
        if starttls_context is not None and not starttls:
            raise ValueError("starttls_context needs starttls=True or 'required'")
        if not (starttls_context is None or isinstance(starttls_context, str)
                or _is_context(starttls_context)):
            raise TypeError("starttls_context must be an ssl.SSLContext, a name from "
                            "TLS_SCENARIOS or None, not %r" % (starttls_context,))
        if not (auth is None or callable(auth) or isinstance(auth, collections.abc.Mapping)):
            raise TypeError("auth must be None, a dict {user: password} or a "
                            "callable(user, password), not %r" % (auth,))
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or timeout <= 0):
            raise ValueError("timeout must be a positive number or None, not %r"
                             % (timeout,))
        for name, hook in (("on_mail", on_mail), ("on_rcpt", on_rcpt),
                           ("on_data", on_data), ("on_auth", on_auth)):
            if hook is not None:
                _check_params(name, hook, _HOOKS[name])
        self.hostname = hostname
        self.decode_data = bool(decode_data)
        self.auth = auth
        self.auth_required = bool(auth_required)
        self.auth_mechanisms = auth_mechanisms
        self.starttls = starttls
        self.size_limit = size_limit
        self.max_recipients = max_recipients
        self.timeout = timeout
        self.esmtp = bool(esmtp)
        self.dsn = bool(dsn)
        self.disable_extensions = disable_extensions
        self.ehlo_keywords = ehlo_keywords
        self.vrfy, self.expn, self.help_text = vrfy, expn, help_text
        self.on_mail, self.on_rcpt, self.on_data, self.on_auth = (
            on_mail, on_rcpt, on_data, on_auth)
        self._implicit_tls = bool(tls or sslctx is not None)
        self._config = SessionConfig(
            hostname, auth_required=auth_required, size_limit=size_limit,
            mechanisms=_auth_mechanisms(auth, auth_mechanisms, hostname),
            starttls="off" if self._implicit_tls else _STARTTLS_MODES[starttls],
            max_recipients=max_recipients, esmtp=esmtp, disabled=disable_extensions,
            dsn=dsn, ehlo_keywords=ehlo_keywords, vrfy=vrfy, expn=expn,
            help_text=help_text)
        self._handler_keywords = self._check_handler(handler)
        self._scripts = Scripts(reply_lines)
        if starttls:
            # client_auth applies to the STARTTLS context here, as it
            # applies to the implicit one in the base class.
            from ._tls import _check_client_auth, server_ssl_context
            _check_client_auth(client_auth)
            if starttls_context is None or isinstance(starttls_context, str):
                # A name from TLS_SCENARIOS: the bundled certificate that
                # clients must refuse, after STARTTLS.
                starttls_context = server_ssl_context(scenario=starttls_context,
                                                      client_auth=client_auth)
            elif client_auth is not False:
                raise ValueError("client_auth applies to the bundled certificate; for "
                                 "a starttls_context of your own, set its verify_mode")
            client_auth = False
        self.starttls_context = starttls_context
        super().__init__(listen_addr, handler, poll_interval, sslctx=sslctx, tls=tls,
                         client_auth=client_auth)

    def _check_handler(self, handler):
        """Refuse a handler that cannot be called as smtpd called one.

        Return the ``mail_options``/``rcpt_options`` keywords it takes,
        which it gets when *decode_data* is false (as from :mod:`!smtpd`).
        """
        if handler is None:
            return ()
        if not callable(handler):
            raise TypeError("TestSMTPServer handler must be None or a callable "
                            "handler(%s), not %r" % (", ".join(self.handler_params), handler))
        keywords = () if self.decode_data else _SMTPD_KEYWORDS
        accepted = _check_params("handler", handler, self.handler_params, keywords)
        return tuple(k for k in accepted if k in keywords)

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

    def transcript(self, connection=None):
        """Return the dialogue of a connection as a list of lines.

        Each line is ``"C: "`` and a command line the client sent, or
        ``"S: "`` and a reply line; message data is left out, its end
        shows as ``"C: ."``.  *connection* is a :class:`Connection` or its
        ``id``; by default the latest connection that spoke SMTP.
        """
        wanted = getattr(connection, "id", connection)
        for item in reversed(self._snapshot("transcripts")):
            if wanted is None or item.connection_id == wanted:
                return list(item.lines)
        if wanted is None:
            raise ValueError("%r has no transcript yet: no client spoke SMTP" % self)
        raise ValueError("%r has no transcript of connection %r" % (self, wanted))

    # -- scripted replies -------------------------------------------------------

    def answer(self, command, reply, times=1, close=False):
        """Answer *command* with *reply* instead of carrying it out.

        *command* is a command name such as ``"RCPT"``, or ``"."`` for the
        end of a message's data (the message is dropped).  *reply* is a
        reply line such as ``"451 4.3.0 Try again"``, or several (a list, or
        a str of lines), with one 2xx, 4xx or 5xx code; or a callable given
        the command's argument that returns such a reply, or ``None`` to
        let the command run (an exception it raises is a handler error).
        It is given *times* times (``None``: until undone), on every
        connection; with *close* true, or a 221 or 421 code, the server
        then closes the connection.  Return a :class:`Fault`: its
        ``undo()`` removes what is left of the script.
        """
        name = command.upper() if isinstance(command, str) else command
        if name not in COMMANDS and name != ".":
            raise ValueError("answer() takes a command (%s) or '.', not %r"
                             % (", ".join(sorted(COMMANDS)), command))
        if times is not None and (not isinstance(times, int) or
                                  isinstance(times, bool) or times < 1):
            raise ValueError("times must be an int >= 1 or None, not %r" % (times,))
        entry = self._scripts.add(name, reply if callable(reply) else reply_lines(reply),
                                  times, bool(close))
        return Fault(self, "answer", lambda: self._scripts.remove(entry))

    def clear_faults(self):
        """Mend every fault, and drop every scripted reply."""
        super().clear_faults()
        self._scripts.clear()

    # -- the connection -----------------------------------------------------

    def _new_session(self, peer, record, messages):
        def scripted(command, arg):
            found = self._scripts.take(command, arg)
            if found is not None:
                record.fault = "answer"
            return found

        def bind(hook):
            return None if hook is None else (lambda *args: hook(peer, *args))
        session = SMTPSession(
            config=self._config, tls_active=self._implicit_tls,
            on_message=lambda envelope: self._on_message(
                envelope, peer, record, messages, session.esmtp),
            on_mail=bind(self.on_mail), on_rcpt=bind(self.on_rcpt),
            on_data=bind(self.on_data), on_auth=bind(self.on_auth),
            scripted=scripted)
        return session

    def _serve_connection(self, sock, peer, record):
        messages = []       # recorded after the feed() that made them
        session = self._new_session(peer, record, messages)
        self._append_record("transcripts", Transcript(record.id, session.transcript))
        pump = _Pump(self, sock, record)
        pump.set_timeout(self.timeout)
        pump.send(session.greeting())
        while not session.closed:
            data = pump.recv(_RECV_SIZE)
            if data is None:
                pump.send(session.timeout_reply())
                return
            if not data:
                return      # the client left (maybe mid-DATA: nothing is recorded)
            reply = session.feed(data)
            self._settle(session, messages)
            if reply:
                pump.send(reply)
            if session.want_tls:
                if not pump.upgrade(self.starttls_context):
                    return      # the client failed the handshake: it knows
                session.tls_established()

    def _on_message(self, envelope, peer, record, messages, esmtp):
        message = Message(peer, envelope, record.id, esmtp)
        try:
            result = None
            if self._handler is not None:
                if self.decode_data:
                    result = self._handler(peer, message.mailfrom, message.rcpttos,
                                           message.text)
                else:
                    kwargs = {}
                    if "mail_options" in self._handler_keywords:
                        kwargs["mail_options"] = list(envelope.mail_options)
                    if "rcpt_options" in self._handler_keywords:
                        kwargs["rcpt_options"] = [
                            option for options in envelope.rcpt_options for option in options]
                    result = self._handler(peer, message.mailfrom, message.rcpttos,
                                           smtpd_bytes(message.data), **kwargs)
            message.reply = handler_reply(result) or self._own("250 2.0.0 OK")
        except BaseException:    # pytest.fail() included: the client gets 451
            message.reply = self._own(ABORTED)
            raise       # the session answers 451 and keeps it in pending_errors
        finally:
            messages.append(message)
        return result

    def _own(self, line):
        """A reply line of the session, as the client gets it."""
        return line if self._config.esc else strip_esc(line)

    def _settle(self, session, messages):
        """Record what the callbacks of one feed() did: errors first, so a
        waiter sees the error before the message."""
        errors = session.pending_errors
        while errors:
            self._record_error(errors.pop(0))
        for message in messages:
            self._append_record("messages", message)
        messages.clear()

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
        host = self._client_host()
        if self._implicit_tls:
            if context is None:
                from ._tls import client_ssl_context
                context = client_ssl_context()
            return smtplib.SMTP_SSL(host, self.port, local_hostname="localhost",
                                    timeout=timeout, context=context)
        return smtplib.SMTP(host, self.port, local_hostname="localhost", timeout=timeout)
