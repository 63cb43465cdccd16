"""The server side of one SMTP session as a sans-IO state machine.

SMTPSession speaks RFC 5321 with SIZE, 8BITMIME, SMTPUTF8, PIPELINING,
ENHANCEDSTATUSCODES, STARTTLS and AUTH PLAIN/LOGIN, but performs no I/O: the
caller sends greeting(), passes every received chunk to feed() and sends
the bytes that feed() returns.  Input is read as command lines, as the
lines of an AUTH exchange, or as message data after a 354 reply.  All
complete lines of a chunk are processed in order (RFC 2920 pipelining) and
their replies concatenated; a partial line waits for the next chunk.

The caller (the socket glue) honours three attributes after each feed():

- closed: true after the 221 reply to QUIT or any 421 reply.  Send what
  feed() returned and close the connection.  Later input is ignored and
  feed() returns b"".
- want_tls: true once the "220 2.0.0 Ready to start TLS" reply has been
  produced.  Send the replies, wrap the socket in TLS, then call
  tls_established().  Input that follows the STARTTLS line in the same chunk,
  or that arrives before tls_established(), was sent in plaintext and is
  discarded (RFC 3207 4.2, CVE-2011-0411).
- pending_error: the exception raised by the on_message or
  check_credentials callback, or None.  feed() never propagates it: the
  session answers that message with "451 4.3.0 Requested action aborted:
  local error in processing" (a failing check_credentials gets "454 4.7.0
  Temporary authentication failure"), resets the transaction, stores the
  exception here and goes on with the rest of the input.  The caller records
  it and sets the attribute back to None.  If several callbacks fail within
  one feed(), the first exception is kept.

Limits keep memory and output bounded whatever a client sends: a command
line holds at most MAX_COMMAND_LINE octets (MAX_AUTH_LINE in an AUTH
exchange) while waiting for its LF, message data at most size_limit octets,
and after max_errors error replies the session answers 421 and closes.
"""

import base64
import re

MAX_COMMAND_LINE = 512  # RFC 5321 4.5.3.1.4, including the CRLF
MAX_AUTH_LINE = 12288  # RFC 4954 4
DEFAULT_SIZE_LIMIT = 33554432  # 32 MiB, advertised as SIZE (RFC 1870)
DEFAULT_MAX_RECIPIENTS = 1000  # RFC 5321 4.5.3.1.8 requires at least 100
DEFAULT_MAX_ERRORS = 20  # as Postfix's smtpd_hard_error_limit

_STARTTLS_MODES = ("off", "offered", "required")
# Commands allowed before TLS when starttls="required" (RFC 3207 4).
_PRE_TLS = frozenset(("EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"))
_COMMANDS = frozenset(("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
                       "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH"))
# "<path>" then " params" (RFC 5321 4.1.2): a quoted local part may hold
# spaces and ">"; unquoted spaces, "<", and control characters are refused.
_PATH = re.compile(r' *<((?:"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
                   r'|[^"<> \x00-\x1f\x7f])*)>(?: +(.*))?')

# Canonical base64 (RFC 4648 4); binascii's own checks differ between
# Python versions (3.8 decodes "=" to b"").
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*"
                     r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
# What on_message may return: one reply line (RFC 5321 4.2).
_REPLY = re.compile(r"[2-5][0-9][0-9](?: [^\r\n]*)?")
_OK = "250 2.0.0 OK"
_SEND_EHLO = "503 5.5.1 Error: send EHLO first"
_IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress"
_NEED_MAIL = "503 5.5.1 Error: need MAIL command"
_NOT_IMPLEMENTED = "502 5.5.1 Error: command not implemented"
_BAD_OPTION = "555 5.5.4 Unsupported option"
_NEED_SMTPUTF8 = "553 5.6.7 Must declare SMTPUTF8 to send non-ASCII addresses"
_AUTH_DECODE = "501 5.5.2 Cannot decode response"


class Envelope:
    """One received message, as passed to the on_message callback.

    The attributes are mailfrom (the reverse-path without angle brackets,
    "" for the null reverse-path <>), rcpttos (a list of addresses), data
    (the message bytes after dot-unstuffing, CRLF line endings as sent,
    including the CRLF that ends the last line), mail_options and
    rcpt_options (lists of the ESMTP parameters as given, such as
    "SIZE=123"; no RCPT parameter is supported, so rcpt_options is always
    empty), helo (the HELO/EHLO argument), user (the authenticated user or
    None), tls (true if the message came over TLS) and smtputf8 (true if
    MAIL carried the SMTPUTF8 parameter).
    """

    def __init__(self, mailfrom, rcpttos, data, mail_options=(),
                 rcpt_options=(), helo="", user=None, tls=False,
                 smtputf8=False):
        self.mailfrom = mailfrom
        self.rcpttos = list(rcpttos)
        self.data = data
        self.mail_options = list(mail_options)
        self.rcpt_options = list(rcpt_options)
        self.helo = helo
        self.user = user
        self.tls = tls
        self.smtputf8 = smtputf8

    def __repr__(self):
        return "<%s mailfrom=%r rcpttos=%r %d bytes>" % (
            type(self).__name__, self.mailfrom, self.rcpttos, len(self.data))


def _is_utf8(text):
    """Return True if text was decoded from valid UTF-8 (no surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_path(arg, keyword):
    """Parse "FROM:<path> params" or "TO:<path> params".

    Return (address, params) or None on a syntax error.  Angle brackets are
    required; spaces after the colon are tolerated, as Postfix does.
    """
    if arg[:len(keyword)].upper() != keyword:
        return None
    match = _PATH.fullmatch(arg, len(keyword))
    if match is None:
        return None
    address, params = match.group(1), (match.group(2) or "").split()
    if address.startswith("@"):
        # RFC 5321 4.1.1.3: accept a source route and ignore it.
        route, colon, address = address.partition(":")
        if not colon or not address:
            return None
    return address, params


class SMTPSession:
    """One server-side SMTP session (RFC 5321) as a state machine.

    hostname names the server in the greeting and replies.  on_message is
    called from feed() as on_message(envelope) with an Envelope when a
    message ends (never for a message over size_limit); it returns None to
    accept it ("250 2.0.0 OK") or a one-line reply string such as
    "550 rejected", which is sent instead (the smtpd contract).
    check_credentials(user, password) returns true to accept AUTH; when it
    is None, AUTH is not offered.  If auth_required is true, MAIL needs a
    successful AUTH first, and check_credentials must be given.

    starttls is "off", "offered" (STARTTLS is advertised) or "required"
    (also every command but EHLO, HELO, STARTTLS, NOOP, RSET and QUIT is
    refused with 530 before TLS, and AUTH is advertised only over TLS).
    tls_active is true from the start for implicit TLS (SMTPS).

    size_limit is the largest message in octets, advertised as "SIZE
    <limit>"; 0 advertises a bare "SIZE" and sets no limit (memory then grows
    with the message).  max_recipients bounds RCPT commands per message
    (452 after that).  After max_errors error replies (4xx and 5xx replies
    produced by the session, counted since the start or the last accepted
    message), the session replies 421 and closes.

    Methods: greeting(), feed(data), tls_established(), timeout_reply().
    Read-only attributes: closed, want_tls, tls_active, helo, esmtp,
    authenticated_user.  The caller clears pending_error after handling it.
    See the module docstring for the contract of feed().
    """

    def __init__(self, hostname="localhost", *, on_message=None,
                 check_credentials=None, auth_required=False,
                 starttls="off", tls_active=False,
                 size_limit=DEFAULT_SIZE_LIMIT,
                 max_recipients=DEFAULT_MAX_RECIPIENTS,
                 max_errors=DEFAULT_MAX_ERRORS, esmtp=True):
        if not isinstance(hostname, str) or not hostname or any(
                c.isspace() or c < " " for c in hostname):
            raise ValueError("hostname must be a non-empty str without "
                             "whitespace, got %r" % (hostname,))
        if starttls not in _STARTTLS_MODES:
            raise ValueError("starttls must be one of %s, got %r"
                             % (", ".join(_STARTTLS_MODES), starttls))
        if auth_required and check_credentials is None:
            raise ValueError("auth_required=True needs check_credentials")
        for name, value, low in (("size_limit", size_limit, 0),
                                 ("max_recipients", max_recipients, 1),
                                 ("max_errors", max_errors, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError("%s must be an int >= %d, got %r"
                                 % (name, low, value))
        self.hostname = hostname
        self.on_message = on_message
        self.check_credentials = check_credentials
        self.auth_required = auth_required
        self.starttls = starttls
        self.tls_active = bool(tls_active)
        self.size_limit = size_limit
        self.max_recipients = max_recipients
        self.max_errors = max_errors
        self.esmtp_offered = bool(esmtp)    # False: an RFC 821 server, HELO only
        self.closed = False
        self.want_tls = False
        self.pending_error = None
        self._replies = []
        self._errors = 0
        self._buf = bytearray()  # a partial command line
        self._discarding = False  # skipping the rest of an over-long line
        self._in_data = False
        self._reset_session()

    def _reset_session(self):
        # The state that a TLS handshake forgets (RFC 3207 4.2).
        self.helo = None
        self.esmtp = False
        self.authenticated_user = None
        self._auth = None  # (mechanism, user so far) during an AUTH exchange
        self._reset_transaction()

    def _reset_transaction(self):
        self._mailfrom = None
        self._rcpttos = []
        self._mail_options = []
        self._smtputf8 = False
        self._data = bytearray()  # None once the message exceeds size_limit
        self._size = 0
        self._bol = True  # at the start of a line of message data
        self._pending = b""

    def greeting(self):
        """Return the 220 greeting to send when the connection opens."""
        return ("220 %s ESMTP testservers\r\n" % self.hostname).encode()

    def timeout_reply(self):
        """Close the session and return the 421 reply for an idle client.

        Return b"" if the session is already closed.
        """
        if self.closed:
            return b""
        self.closed = True
        return ("421 4.4.2 %s Error: timeout exceeded\r\n"
                % self.hostname).encode()

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
        self._buf.clear()
        self._discarding = False
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
        while i < len(data) and not (self.closed or self.want_tls):
            if self._in_data:
                i = self._feed_data(data, i)
            else:
                i = self._feed_line(data, i)
        replies = b"".join(self._replies)
        self._replies.clear()
        return replies

    # Replies

    def _reply(self, line):
        self._replies.append(line.encode("utf-8") + b"\r\n")

    def _error(self, line):
        self._reply(line)
        self._errors += 1
        if self._errors >= self.max_errors:
            self._reply("421 4.7.0 %s Error: too many errors" % self.hostname)
            self.closed = True

    def _refused(self, *checks):
        """Send the error of the first (condition, reply) pair that holds.

        Return True if one did; the checks run in the order given.
        """
        for condition, line in checks:
            if condition:
                self._error(line)
                return True
        return False

    def _set_pending(self, exc):
        if self.pending_error is None:
            self.pending_error = exc

    # Command lines

    def _feed_line(self, data, i):
        """Consume command line bytes from data[i:]; return the new index."""
        end = data.find(b"\n", i)
        if self._discarding:
            if end < 0:
                return len(data)
            self._discarding = False
            return end + 1
        if self._auth is not None:
            limit = MAX_AUTH_LINE
        else:
            head = (bytes(self._buf[:5]) + data[i:i + 5])[:5]
            limit = MAX_AUTH_LINE if head.upper() == b"AUTH " else \
                MAX_COMMAND_LINE
        if end < 0:
            # Hold at most `limit` octets while waiting for the LF.
            if len(self._buf) + len(data) - i > limit:
                self._discarding = True
                self._line_too_long()
            else:
                self._buf += data[i:]
            return len(data)
        if len(self._buf) + end + 1 - i > limit:
            self._line_too_long()
            return end + 1
        line = bytes(self._buf) + data[i:end]
        self._buf.clear()
        # A bare LF ends a command line too, as Postfix accepts.
        if line.endswith(b"\r"):
            line = line[:-1]
        self._handle_line(line.decode("utf-8", "surrogateescape"))
        return end + 1

    def _line_too_long(self):
        self._buf.clear()
        if self._auth is not None:
            self._auth = None
            self._error("500 5.5.6 Authentication Exchange line is too long")
        else:
            self._error("500 5.5.6 Error: line too long")

    def _handle_line(self, text):
        if self._auth is not None:
            self._auth_response(text)
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if not verb:
            self._error("500 5.5.2 Error: bad syntax")
        elif verb not in _COMMANDS:
            self._error("500 5.5.2 Error: command not recognized")
        elif (self.starttls == "required" and not self.tls_active
                and verb not in _PRE_TLS):
            self._error("530 5.7.0 Must issue a STARTTLS command first")
        elif verb == "EHLO" and not self.esmtp_offered:
            # As an RFC 821 server answers: the client falls back to HELO.
            self._error("500 5.5.1 Error: command not recognized")
        elif verb in ("HELO", "EHLO"):
            self._hello(verb, arg)
        elif verb == "QUIT":
            self._reply("221 2.0.0 Bye")
            self.closed = True
        elif verb == "NOOP":
            self._reply(_OK)  # RFC 5321 4.1.1.9: an argument is ignored.
        elif verb == "HELP":
            self._reply("214 2.0.0 Commands: AUTH DATA EHLO EXPN HELO HELP "
                        "MAIL NOOP QUIT RCPT RSET STARTTLS VRFY")
        elif verb == "EXPN":
            self._error(_NOT_IMPLEMENTED)
        else:
            getattr(self, "_cmd_" + verb.lower())(arg)

    def _auth_offered(self):
        return self.check_credentials is not None and (
            self.starttls != "required" or self.tls_active)

    def _hello(self, verb, arg):
        if self._refused(
                (not arg, "501 5.5.4 Syntax: %s hostname" % verb),
                (not _is_utf8(arg), "501 5.5.2 Error: invalid UTF-8")):
            return
        # RFC 5321 4.1.4: a later HELO/EHLO resets the transaction as RSET.
        self._reset_transaction()
        self.helo = arg
        self.esmtp = verb == "EHLO"
        if not self.esmtp:
            return self._reply("250 " + self.hostname)
        lines = [self.hostname, "PIPELINING",
                 "SIZE %d" % self.size_limit if self.size_limit else "SIZE"]
        if self.starttls != "off" and not self.tls_active:
            lines.append("STARTTLS")
        if self._auth_offered():
            lines.append("AUTH PLAIN LOGIN")
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"]
        for line in lines[:-1]:
            self._reply("250-" + line)
        self._reply("250 " + lines[-1])

    def _cmd_mail(self, arg):
        parsed = _parse_path(arg, "FROM:")
        if self._refused(
                (self.helo is None, "503 5.5.1 Error: send HELO/EHLO first"),
                (self.auth_required and self.authenticated_user is None,
                 "530 5.7.0 Authentication required"),
                (self._mailfrom is not None,
                 "503 5.5.1 Error: nested MAIL command"),
                (parsed is None, "501 5.5.4 Syntax: MAIL FROM:<address>"),
                (parsed and parsed[1] and not self.esmtp, _BAD_OPTION)):
            return  # ESMTP parameters need EHLO
        address, params = parsed
        smtputf8 = False
        for param in params:
            key, eq, value = param.partition("=")
            key = key.upper()
            if key == "SIZE" and eq:  # RFC 1870 6
                if not (value.isascii() and value.isdigit()):
                    return self._error("501 5.5.4 Bad SIZE parameter")
                if self.size_limit and int(value) > self.size_limit:
                    return self._error("552 5.3.4 Message size exceeds "
                                       "fixed maximum message size")
            elif key == "BODY" and eq:  # RFC 6152 3
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return self._error("501 5.5.4 Unsupported BODY type")
            elif key == "SMTPUTF8" and not eq:  # RFC 6531 3.4
                smtputf8 = True
            elif key == "AUTH" and eq and self._auth_offered():
                pass  # RFC 4954 5: accepted and ignored
            else:
                return self._error(_BAD_OPTION)
        if self._refused(
                (not _is_utf8(address), "553 5.1.7 Bad sender address syntax"),
                (not (smtputf8 or address.isascii()), _NEED_SMTPUTF8)):
            return  # RFC 6531 3.5
        self._mailfrom = address
        self._mail_options = params
        self._smtputf8 = smtputf8
        self._reply("250 2.1.0 OK")

    def _cmd_rcpt(self, arg):
        address, params = _parse_path(arg, "TO:") or ("", None)
        if self._refused(
                (self._mailfrom is None, _NEED_MAIL),
                (not address, "501 5.5.4 Syntax: RCPT TO:<address>"),
                (params, _BAD_OPTION),
                (not _is_utf8(address),
                 "553 5.1.3 Bad recipient address syntax"),
                (not (self._smtputf8 or address.isascii()),
                 _NEED_SMTPUTF8),  # RFC 6531 3.5
                # RFC 5321 4.5.3.1.10: 452, not 552.
                (len(self._rcpttos) >= self.max_recipients,
                 "452 4.5.3 Error: too many recipients")):
            return
        self._rcpttos.append(address)
        self._reply("250 2.1.5 OK")

    def _cmd_data(self, arg):
        if self._refused(
                (arg, "501 5.5.4 Syntax: DATA"),
                (self._mailfrom is None, _NEED_MAIL),
                # RFC 5321 3.3 allows 503 or 554 here.
                (not self._rcpttos, "554 5.5.1 Error: no valid recipients")):
            return
        self._in_data = True
        self._reply("354 End data with <CR><LF>.<CR><LF>")

    def _cmd_rset(self, arg):
        if not self._refused((arg, "501 5.5.4 Syntax: RSET")):
            self._reset_transaction()
            self._reply(_OK)

    def _cmd_vrfy(self, arg):
        if not self._refused((not arg, "501 5.5.4 Syntax: VRFY address")):
            self._reply("252 2.5.0 Cannot VRFY user, but will accept "
                        "message and attempt delivery")  # RFC 5321 3.5.3

    def _cmd_starttls(self, arg):
        if self._refused(
                (self.starttls == "off", _NOT_IMPLEMENTED),
                (self.tls_active, "503 5.5.1 Error: TLS already active"),
                (arg, "501 5.5.4 Syntax: STARTTLS"),
                (not self.esmtp, _SEND_EHLO),
                (self._mailfrom is not None, _IN_TRANSACTION)):
            return
        self._reply("220 2.0.0 Ready to start TLS")
        self.want_tls = True

    # AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN

    def _cmd_auth(self, arg):
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        if self._refused(
                (self.check_credentials is None, _NOT_IMPLEMENTED),
                (not self.esmtp, _SEND_EHLO),
                (self.authenticated_user is not None,
                 "503 5.5.1 Error: already authenticated"),
                (self._mailfrom is not None, _IN_TRANSACTION),
                (not mechanism or " " in initial,
                 "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
                (mechanism not in ("PLAIN", "LOGIN"),
                 "504 5.5.4 Unrecognized authentication type")):
            return
        if not initial:
            self._auth = (mechanism, None)
            self._reply("334 " if mechanism == "PLAIN" else
                        "334 VXNlcm5hbWU6")  # "Username:"
            return
        # RFC 4954 4: "=" stands for an empty initial response.
        raw = b"" if initial == "=" else _b64decode(initial)
        if raw is None:
            return self._error(_AUTH_DECODE)
        self._auth_step(mechanism, None, raw)

    def _auth_response(self, text):
        mechanism, user = self._auth
        self._auth = None
        if text == "*":
            return self._error("501 5.7.0 Authentication cancelled")
        raw = _b64decode(text)
        if raw is None:
            return self._error(_AUTH_DECODE)
        self._auth_step(mechanism, user, raw)

    def _auth_step(self, mechanism, user, raw):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(_AUTH_DECODE)
        if mechanism == "LOGIN":
            if user is None:
                self._auth = ("LOGIN", text)
                return self._reply("334 UGFzc3dvcmQ6")  # "Password:"
            return self._check(user, text, user)
        parts = text.split("\0")
        # RFC 4616 2: [authzid] NUL authcid NUL passwd
        if len(parts) != 3 or not parts[1]:
            return self._error("501 5.5.2 Malformed PLAIN response")
        authzid, user, password = parts
        self._check(user, password, authzid or user)

    def _check(self, user, password, authzid):
        try:
            ok = self.check_credentials(user, password)
        except Exception as exc:
            self._set_pending(exc)
            return self._reply("454 4.7.0 Temporary authentication failure")
        # Acting for another identity (a PLAIN authzid) is never authorized.
        if not ok or authzid != user:
            return self._error("535 5.7.8 Authentication credentials invalid")
        self.authenticated_user = user
        self._reply("235 2.7.0 Authentication successful")

    # Message data

    def _feed_data(self, data, i):
        """Consume message bytes from data[i:]; return the new index.

        Only CRLF "." CRLF ends the data (RFC 5321 4.1.1.4), the first CRLF
        being the end of the previous line or implied at the start: a bare
        LF or CR around the dot stays in the message, against SMTP smuggling
        (CVE-2023-51764).  A "." that starts a line is removed (RFC 5321
        4.5.2).  Up to two bytes that may begin "\r\n." or ".\r\n" wait in
        _pending for the next chunk.
        """
        buf = self._pending + data[i:]
        start = len(self._pending)  # buf[start:] is data[i:]
        pos = 0
        while True:
            if self._bol:
                head = buf[pos:pos + 3]
                if head == b".\r\n":
                    self._end_data()
                    return i + pos + 3 - start
                if b".\r\n".startswith(head):
                    break  # too short to tell yet
                if head[:1] == b".":
                    pos += 1
                self._bol = False
            # Only a line that starts with "." needs a closer look.
            end = buf.find(b"\r\n.", pos)
            if end < 0:
                self._bol = buf.endswith(b"\r\n", pos)
                stop = len(buf) - (not self._bol and buf.endswith(b"\r", pos))
                self._emit(buf[pos:stop])
                pos = stop
                break
            self._emit(buf[pos:end + 2])
            pos = end + 2
            self._bol = True
        self._pending = buf[pos:]
        return len(data)

    def _emit(self, chunk):
        self._size += len(chunk)
        if self._data is None:
            return
        if self.size_limit and self._size > self.size_limit:
            self._data = None  # keep reading to the end but hold nothing
        else:
            self._data += chunk

    def _end_data(self):
        self._in_data = False
        if self._data is None:
            self._reset_transaction()
            return self._error("552 5.3.4 Message too big")  # RFC 1870 6
        envelope = Envelope(
            self._mailfrom, self._rcpttos, bytes(self._data),
            self._mail_options, [], self.helo, self.authenticated_user,
            self.tls_active, self._smtputf8)
        self._reset_transaction()
        try:
            reply = _handler_reply(
                None if self.on_message is None else self.on_message(envelope))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:    # an assertion library's BaseException too
            self._set_pending(exc)
            return self._reply("451 4.3.0 Requested action aborted: "
                               "local error in processing")
        self._reply(reply)
        if reply.startswith("2"):
            self._errors = 0


def _b64decode(text):
    """Decode canonical base64 text; return None if it is not that."""
    if _BASE64.fullmatch(text) is None:
        return None
    return base64.b64decode(text.encode("ascii"), validate=True)


def _handler_reply(result):
    """Check what on_message returned and return the reply line to send."""
    if result is None:
        return _OK
    if not isinstance(result, str):
        raise TypeError("on_message must return None or a reply str, not %s"
                        % type(result).__name__)
    if not (_REPLY.fullmatch(result) and _is_utf8(result)):
        raise ValueError("on_message must return a one-line SMTP reply such "
                         "as '550 rejected', got %r" % (result,))
    return result
