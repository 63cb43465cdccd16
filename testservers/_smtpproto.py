"""The server side of one SMTP session as a sans-IO state machine.

SMTPSession speaks RFC 5321 with SIZE, 8BITMIME, SMTPUTF8, PIPELINING,
ENHANCEDSTATUSCODES, DSN, STARTTLS and AUTH, but performs no I/O: the
caller sends greeting(), passes every received chunk to feed() and sends
the bytes that feed() returns.  Input is read as command lines, as the
lines of an AUTH exchange, or as message data after a 354 reply.  All
complete lines of a chunk are processed in order (RFC 2920 pipelining) and
their replies concatenated; a partial line waits for the next chunk.

Its parts: a ``_smtpoptions.SessionConfig`` (the options, shared by many
sessions), an ``_smtpwire.Output`` (replies, transcript, error count), a
``_smtpauth.Auth`` and, during DATA, a ``_smtpwire.DataReader``.  After
each feed() the caller honours:

- closed: true after a 221 or 421 reply (QUIT, too many errors, or the
  test's own).  Send what feed() returned and close the connection; later
  input is ignored.
- want_tls: true once "220 2.0.0 Ready to start TLS" has been produced.
  Send the replies, wrap the socket in TLS, then call tls_established().
  Input that follows the STARTTLS line in the same chunk, or that arrives
  before tls_established(), was sent in plaintext and is discarded (RFC
  3207 4.2, CVE-2011-0411).
- pending_errors: the exceptions raised by the test's callbacks, oldest
  first.  feed() never propagates them: the command whose callback failed
  gets 451 (454 in AUTH) and the session goes on.  The caller records
  them and empties the list.

The test's callbacks: on_message(envelope) when a message ends, returning
None (250) or a reply line; the hooks on_mail(mailfrom, options),
on_rcpt(mailfrom, rcptto, options), on_data(mailfrom, rcpttos) and
on_auth(user, mechanism), each returning None (the usual reply) or a
reply line that accepts (2xx, or 354 for DATA) or refuses the command; and
scripted(command, arg), which returns ``(lines, close)`` to answer a
command (or "." for the end of the data) in place of the session, or
None.  The
transcript holds the command lines ("C: ...") and replies ("S: ..."); the
message data is left out (its end shows as "C: .").
"""

from ._smtpauth import Auth
from ._smtpoptions import SessionConfig, check_hook, hook_reply
from ._smtpparams import (BAD_OPTION, NULL_SENDER, Envelope, is_utf8,
                          mail_params, parse_path, rcpt_params)
from ._smtpwire import (ABORTED, MAX_AUTH_LINE, MAX_COMMAND_LINE,  # noqa: F401
                        DataReader, LineReader, Output)

# Commands allowed before TLS when starttls="required" (RFC 3207 4).
_PRE_TLS = frozenset(("EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"))
COMMANDS = frozenset(("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
                      "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH"))
_OK = "250 2.0.0 OK"
_SEND_EHLO = "503 5.5.1 Error: send EHLO first"
_IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress"
_NEED_MAIL = "503 5.5.1 Error: need MAIL command"
_NEED_SMTPUTF8 = "553 5.6.7 Must declare SMTPUTF8 to send non-ASCII addresses"
_ACCEPT = ("2", "4", "5")     # the codes a MAIL or RCPT hook may give


class SMTPSession:
    """One server-side SMTP session (RFC 5321) as a state machine.

    The options are a ``SessionConfig`` given as *config*, or the keyword
    arguments of one (*hostname* and the rest).  *tls_active* is true from
    the start for implicit TLS.  The callbacks are described in the module
    docstring.

    Methods: greeting(), feed(data), tls_established(), timeout_reply().
    Read-only attributes: closed, want_tls, tls_active, helo, esmtp,
    authenticated_user, transcript.  The caller empties pending_errors.
    """

    def __init__(self, hostname="localhost", *, config=None, tls_active=False,
                 on_message=None, on_mail=None, on_rcpt=None, on_data=None,
                 on_auth=None, scripted=None, **options):
        if config is None:
            config = SessionConfig(hostname, **options)
        elif options:
            raise TypeError("give config or options, not both")
        self.config = config
        self.tls_active = bool(tls_active)
        self.on_message = on_message
        self.on_mail = check_hook("on_mail", on_mail)
        self.on_rcpt = check_hook("on_rcpt", on_rcpt)
        self.on_data = check_hook("on_data", on_data)
        self.scripted = scripted
        self._out = Output(config.hostname, config.esc, config.max_errors,
                           config.max_transcript)
        self.transcript = self._out.transcript
        self.pending_errors = self._out.errors
        self._auth = Auth(config.mechanisms, self._out, check_hook("on_auth", on_auth))
        self.want_tls = False
        self._lines = LineReader()
        self._reader = None  # a DataReader after 354
        self._reset_session()

    @property
    def closed(self):
        return self._out.closed

    @property
    def authenticated_user(self):
        return self._auth.user

    def _reset_session(self):
        # The state that a TLS handshake forgets (RFC 3207 4.2).
        self.helo = None
        self.esmtp = False
        self._params_offered = frozenset()  # whose parameters MAIL and RCPT take
        self._auth.reset()
        self._reset_transaction()

    def _reset_transaction(self):
        self._mailfrom = None
        self._mail_options = []
        self._mail_dsn = None
        self._rcpttos = []
        self._rcpt_options = []
        self._rcpt_dsn = []
        self._smtputf8 = False

    def greeting(self):
        """Return the 220 greeting to send when the connection opens."""
        self._out.send("220 %s ESMTP testservers" % self.config.hostname)
        return self._out.take()

    def timeout_reply(self):
        """Close the session and return the 421 reply for an idle client.

        Return b"" if the session is already closed.
        """
        if self.closed:
            return b""
        self._out.reply("421 4.4.2 %s Error: timeout exceeded" % self.config.hostname)
        return self._out.take()

    def tls_established(self):
        """Note that the TLS handshake after STARTTLS has completed.

        The session forgets the HELO/EHLO name, authentication and any
        transaction (RFC 3207 4.2); the client must send EHLO again.
        Raise RuntimeError if no STARTTLS is pending.
        """
        if not self.want_tls:
            raise RuntimeError("tls_established() called while no STARTTLS "
                               "is pending (want_tls is False)")
        self.want_tls = False
        self.tls_active = True
        self._lines.clear()
        self._reset_session()

    def feed(self, data):
        """Consume received bytes and return the reply bytes to send.

        data is a bytes-like object, possibly empty; the result may be b"".
        Return b"" and ignore data if the session is closed or waiting for
        tls_established().
        """
        if isinstance(data, str):
            raise TypeError("feed() takes bytes, not str")
        data = bytes(data)
        i = 0
        while i < len(data) and not (self._out.closed or self.want_tls):
            if self._reader is not None:
                i, ended = self._reader.feed(data, i)
                if ended:
                    self._end_data()
            else:
                i = self._feed_line(data, i)
        return self._out.take()

    # Command lines

    def _feed_line(self, data, i):
        """Consume command line bytes from data[i:]; return the new index."""
        i, line, too_long = self._lines.feed(data, i, self._auth.exchange is not None)
        if too_long:
            self._line_too_long()
        if line is None:
            return i
        text = line.decode("utf-8", "surrogateescape")
        self._out.note("C: " + (text if text.isascii() else
                                line.decode("utf-8", "backslashreplace")))
        if self._auth.exchange is not None:
            self._auth.respond(text)
        else:
            self._command(text)
        return i

    def _line_too_long(self):
        self._out.note("C: (a line over the length limit, discarded)")
        if self._auth.exchange is not None:
            self._auth.cancel()
            self._out.error("500 5.5.6 Authentication Exchange line is too long")
        else:
            self._out.error("500 5.5.6 Error: line too long")

    def _command(self, text):
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        out = self._out
        if self.scripted is not None and verb in COMMANDS and \
                out.scripted(self.scripted, verb, arg):
            return
        if not verb:
            out.error("500 5.5.2 Error: bad syntax")
        elif verb not in COMMANDS:
            out.error("500 5.5.2 Error: command not recognized")
        elif (self.config.starttls == "required" and not self.tls_active
                and verb not in _PRE_TLS):
            out.error("530 5.7.0 Must issue a STARTTLS command first")
        elif verb == "EHLO" and not self.config.esmtp:
            # As an RFC 821 server answers: the client falls back to HELO.
            out.error("500 5.5.1 Error: command not recognized")
        elif verb in ("HELO", "EHLO"):
            self._hello(verb, arg)
        elif verb == "QUIT":
            out.reply("221 2.0.0 Bye")
        elif verb == "NOOP":
            out.reply(_OK)  # RFC 5321 4.1.1.9: an argument is ignored.
        elif verb == "HELP":
            out.lines("214", "2.0.0", self.config.help)
        else:
            getattr(self, "_cmd_" + verb.lower())(arg)

    def _auth_offered(self):
        return bool(self.config.mechanisms) and (
            self.config.starttls != "required" or self.tls_active)

    def _offered(self):
        """The extensions whose MAIL and RCPT parameters are in force."""
        if not self.esmtp:
            return frozenset()
        offered = set(self.config.extensions)
        if self._auth_offered():
            offered.add("AUTH")
        if self.config.dsn:
            offered.add("DSN")
        return frozenset(offered)

    def _hello(self, verb, arg):
        if self._out.refused(
                (not arg, "501 5.5.4 Syntax: %s hostname" % verb),
                (not is_utf8(arg), "501 5.5.2 Error: invalid UTF-8")):
            return
        # RFC 5321 4.1.4: a later HELO/EHLO resets the transaction as RSET.
        self._reset_transaction()
        self.helo = arg
        self.esmtp = verb == "EHLO"
        self._params_offered = self._offered()
        if not self.esmtp:
            return self._out.send("250 " + self.config.hostname)
        lines = self.config.ehlo_lines(self.tls_active, self._auth_offered())
        for line in lines[:-1]:
            self._out.send("250-" + line)
        self._out.send("250 " + lines[-1])

    def _cmd_mail(self, arg):
        parsed = parse_path(arg, "FROM:")
        out = self._out
        if out.refused(
                (self.helo is None, "503 5.5.1 Error: send HELO/EHLO first"),
                (self.config.auth_required and self._auth.user is None,
                 "530 5.7.0 Authentication required"),
                (self._mailfrom is not None,
                 "503 5.5.1 Error: nested MAIL command"),
                (parsed is None, "501 5.5.4 Syntax: MAIL FROM:<address>"),
                (parsed and parsed[1] and not self.esmtp, BAD_OPTION)):
            return  # ESMTP parameters need EHLO
        address, params = parsed
        error, info = mail_params(params, self._params_offered, self.config.size_limit)
        if out.refused(
                (error is not None, error),
                (not is_utf8(address), "553 5.1.7 Bad sender address syntax"),
                (not (error or info["smtputf8"] or address.isascii()),
                 _NEED_SMTPUTF8)):  # RFC 6531 3.5
            return
        if out.consult(self.on_mail, "on_mail", _ACCEPT, "250 2.1.0 OK",
                       address, list(params)):
            self._mailfrom = address
            self._mail_options = params
            self._mail_dsn = info
            self._smtputf8 = info["smtputf8"]

    def _cmd_rcpt(self, arg):
        address, params = parse_path(arg, "TO:") or ("", None)
        out = self._out
        if out.refused(
                (self._mailfrom is None, _NEED_MAIL),
                (address in ("", NULL_SENDER), "501 5.5.4 Syntax: RCPT TO:<address>")):
            return
        error, info = rcpt_params(params, self._params_offered)
        if out.refused(
                (error is not None, error),
                (not is_utf8(address), "553 5.1.3 Bad recipient address syntax"),
                (not (self._smtputf8 or address.isascii()),
                 _NEED_SMTPUTF8),  # RFC 6531 3.5
                # RFC 5321 4.5.3.1.10: 452, not 552.
                (len(self._rcpttos) >= self.config.max_recipients,
                 "452 4.5.3 Error: too many recipients")):
            return
        if out.consult(self.on_rcpt, "on_rcpt", _ACCEPT, "250 2.1.5 OK",
                       self._mailfrom, address, list(params)):
            self._rcpttos.append(address)
            self._rcpt_options.append(params)
            self._rcpt_dsn.append(info)

    def _cmd_data(self, arg):
        if self._out.refused(
                (arg, "501 5.5.4 Syntax: DATA"),
                (self._mailfrom is None, _NEED_MAIL),
                # RFC 5321 3.3 allows 503 or 554 here.
                (not self._rcpttos, "554 5.5.1 Error: no valid recipients")):
            return
        if self._out.consult(self.on_data, "on_data", ("354", "4", "5"),
                             "354 End data with <CR><LF>.<CR><LF>",
                             self._mailfrom, list(self._rcpttos)):
            self._reader = DataReader(self.config.size_limit)

    def _cmd_rset(self, arg):
        if not self._out.refused((arg, "501 5.5.4 Syntax: RSET")):
            self._reset_transaction()
            self._out.reply(_OK)

    def _cmd_vrfy(self, arg):
        if self._out.refused((not arg, "501 5.5.4 Syntax: VRFY address")):
            return
        if self.config.vrfy is None:
            self._out.reply("252 2.5.0 Cannot VRFY user, but will accept "
                            "message and attempt delivery")  # RFC 5321 3.5.3
        else:
            self._out.look_up(self.config.vrfy, arg, "550 5.1.1 No such user: %s")

    def _cmd_expn(self, arg):
        if not self._out.refused(
                (self.config.expn is None, "502 5.5.1 EXPN not implemented"),
                (not arg, "501 5.5.4 Syntax: EXPN list")):
            self._out.look_up(self.config.expn, arg, "550 5.1.1 No such list: %s")

    def _cmd_starttls(self, arg):
        if self._out.refused(
                (self.config.starttls == "off", "502 5.5.1 STARTTLS not implemented"),
                (self.tls_active, "503 5.5.1 Error: TLS already active"),
                (arg, "501 5.5.4 Syntax: STARTTLS"),
                (not self.esmtp, _SEND_EHLO),
                (self._mailfrom is not None, _IN_TRANSACTION)):
            return
        self._out.reply("220 2.0.0 Ready to start TLS")
        self.want_tls = True

    def _cmd_auth(self, arg):   # RFC 4954; the exchange is _smtpauth's
        name, _, initial = arg.partition(" ")
        name, initial = name.upper(), initial.strip()
        if not self._out.refused(
                (not self._auth_offered(), "502 5.5.1 AUTH not implemented"),
                (not self.esmtp, _SEND_EHLO),
                (self._auth.user is not None,
                 "503 5.5.1 Error: already authenticated"),
                (self._mailfrom is not None, _IN_TRANSACTION),
                (not name or " " in initial,
                 "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
                (name not in self.config.mechanisms,
                 "504 5.5.4 Unrecognized authentication type")):
            self._auth.start(name, initial)

    def _end_data(self):
        reader, self._reader = self._reader, None
        out = self._out
        out.note("C: .")
        if self.scripted is not None and out.scripted(self.scripted, ".", ""):
            return self._reset_transaction()
        if reader.data is None:
            self._reset_transaction()
            return out.error("552 5.3.4 Message too big")  # RFC 1870 6
        dsn = None
        if self.config.dsn:
            dsn = {"ret": self._mail_dsn["ret"], "envid": self._mail_dsn["envid"],
                   "notify": [info["notify"] for info in self._rcpt_dsn],
                   "orcpt": [info["orcpt"] for info in self._rcpt_dsn]}
        envelope = Envelope(
            self._mailfrom, self._rcpttos, bytes(reader.data), self._mail_options,
            self._rcpt_options, self.helo, self._auth.user, self.tls_active,
            self._smtputf8, dsn)
        self._reset_transaction()
        try:
            reply = handler_reply(
                None if self.on_message is None else self.on_message(envelope))
        except BaseException as exc:    # an assertion library's too
            return out.failed(exc)
        if reply is None:
            out.reply(_OK)
        else:
            out.send(reply)
        if reply is None or reply.startswith("2"):
            out.error_count = 0


def handler_reply(result):
    """Check what on_message returned: None, or the reply line to send."""
    return hook_reply(result, _ACCEPT, "the handler")
