"""Checks for the options of an SMTP session, and the replies a test gives.

The session (``_smtpproto``) and the server (``_smtp``) take many options
from the test: EHLO keywords, extensions to leave out, VRFY and EXPN
tables, HELP text, hooks and scripted replies.  Each is checked here once,
so a wrong value raises TypeError or ValueError where it is given, and
what a hook or a table returns is checked the same way when it is used.
"""

import collections.abc
import re

__all__ = []

DEFAULT_SIZE_LIMIT = 33554432  # 32 MiB, advertised as SIZE (RFC 1870)
DEFAULT_MAX_RECIPIENTS = 1000  # RFC 5321 4.5.3.1.8 requires at least 100
DEFAULT_MAX_ERRORS = 20  # as Postfix's smtpd_hard_error_limit
MAX_TRANSCRIPT = 10000  # lines of one session's transcript

STARTTLS_MODES = ("off", "offered", "required")

#: The extensions that a test can leave out of the EHLO reply.
EXTENSIONS = ("PIPELINING", "SIZE", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8")

# RFC 5321 4.1.1.1: ehlo-keyword *(SP ehlo-param)
_EHLO_LINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?: [\x21-\x7e]+)*")
# One reply line (RFC 5321 4.2): a code, then a space and text, or nothing.
_REPLY = re.compile(r"[2-5][0-9][0-9](?: [^\r\n]*)?")
# A line of a multi-line reply as a test writes it: "451-text" or "451 text".
_REPLY_LINE = re.compile(r"([2-5][0-9][0-9])(?:[ -]([^\r\n]*))?")
# An enhanced status code after the reply code (RFC 3463, RFC 2034).
_ESC = re.compile(r"([2-5][0-9][0-9][ -])[245]\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)")


def strip_esc(line):
    """Remove the enhanced status code from a reply line (RFC 2034 off)."""
    return _ESC.sub(r"\1", line, count=1)


def _strings(name, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, collections.abc.Iterable):
        raise TypeError("%s must be a sequence of str, not %r" % (name, value))
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise TypeError("%s must be a sequence of str, not %r" % (name, value))
    return items


def check_disabled(value):
    """Check *disable_extensions*; return a frozenset of upper-case names."""
    names = frozenset(name.upper() for name in _strings("disable_extensions", value))
    unknown = sorted(names - set(EXTENSIONS))
    if unknown:
        raise ValueError("disable_extensions takes %s; not %s"
                         % (", ".join(EXTENSIONS), ", ".join(unknown)))
    return names


def check_keywords(value, advertised):
    """Check *ehlo_keywords* against the keywords *advertised* already."""
    lines = _strings("ehlo_keywords", value)
    seen = set(advertised)
    for line in lines:
        if not _EHLO_LINE.fullmatch(line):
            raise ValueError("an EHLO keyword line is a keyword and parameters "
                             "(RFC 5321 4.1.1.1), such as 'DELIVERBY 120'; "
                             "not %r" % (line,))
        keyword = line.split(" ", 1)[0].upper()
        if keyword in seen:
            raise ValueError("the EHLO reply has %s already; a keyword the "
                             "server offers is switched by its own option"
                             % keyword)
        seen.add(keyword)
    return tuple(lines)


def check_table(name, value):
    """Check a VRFY or EXPN table: None, a mapping, or a callable."""
    if value is None or isinstance(value, collections.abc.Mapping) or callable(value):
        return value
    raise TypeError("%s must be None, a mapping or a callable(argument), not %r"
                    % (name, value))


def check_help(value):
    """Check *help_text*: None or a str; return its lines."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("help_text must be a str or None, not %r" % (value,))
    lines = value.splitlines() or [""]
    if any(re.search(r"[\x00-\x1f\x7f]", line) for line in lines):
        raise ValueError("help_text must not hold control characters: %r" % (value,))
    return lines


def check_hook(name, value):
    if value is not None and not callable(value):
        raise TypeError("%s must be a callable or None, not %r" % (name, value))
    return value


def hook_reply(result, codes, name):
    """Check what a hook returned: None, or one reply line whose code starts
    with one of *codes*.  Return the line (or None)."""
    if result is None:
        return None
    if not isinstance(result, str):
        raise TypeError("%s must return None or a reply line str, not %s"
                        % (name, type(result).__name__))
    if not (_REPLY.fullmatch(result) and result.startswith(codes)):
        raise ValueError("%s must return None or one reply line with a code "
                         "starting %s, such as '550 5.7.1 refused'; got %r"
                         % (name, " or ".join(codes), result))
    return result


def reply_lines(reply):
    """Check a scripted reply; return its lines ready to send.

    *reply* is one line such as ``"451 4.3.0 try later"``, or several, in
    a sequence or a str split by newlines, all with the same code (2xx,
    4xx or 5xx: the command it answers is not carried out, so it cannot
    ask for more).  The continuation marks ("451-") are set here.
    """
    if isinstance(reply, str):
        given = reply.splitlines()
    else:
        given = _strings("reply", reply)
    codes = set()
    texts = []
    for line in given:
        match = _REPLY_LINE.fullmatch(line)
        if match is None or match.group(1)[0] == "3":
            raise ValueError("a scripted reply is lines of a code (2xx, 4xx or "
                             "5xx) and text, such as '451 4.3.0 try later'; "
                             "not %r" % (line,))
        codes.add(match.group(1))
        texts.append(match.group(2))
    if len(codes) != 1:
        raise ValueError("a scripted reply needs one code on every line, not %r"
                         % (reply,))
    code = codes.pop()
    lines = [code + "-" + (text or "") for text in texts[:-1]]
    return lines + [code + (" " + texts[-1] if texts[-1] is not None else "")]


def table_reply(value):
    """Check what a VRFY or EXPN table gave for an argument.

    Return None (not found), ``(True, lines)`` for a whole reply given as
    it is, or ``(False, texts)`` for the texts of a 250 reply.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if _REPLY_LINE.match(value) and (len(value) == 3 or value[3] in " -"):
            return True, reply_lines(value)
        texts = value.splitlines() or [""]
    else:
        texts = _strings("a VRFY or EXPN table value", value)
        if not texts:
            raise ValueError("a VRFY or EXPN table value must not be empty")
    if any(re.search(r"[\x00-\x1f\x7f]", text) for text in texts):
        raise ValueError("a VRFY or EXPN text must not hold control characters: %r"
                         % (value,))
    return False, texts


class SessionConfig:
    """The options of an SMTP session, checked once for many sessions.

    hostname names the server in the greeting and replies.  mechanisms is
    the list of ``(name, mechanism)`` AUTH offers, in order (see
    ``_smtpauth``); when empty, AUTH is not offered.  If auth_required is
    true, MAIL needs a successful AUTH first.  starttls is "off",
    "offered" or "required" (every command but EHLO, HELO, STARTTLS, NOOP,
    RSET and QUIT is refused with 530 before TLS, and AUTH is advertised
    only over TLS).  size_limit is the largest message in octets (0: no
    limit); max_recipients bounds the RCPT commands of a message (452
    after that); after max_errors error replies of its own rules a session
    answers 421 and closes.  esmtp=False answers EHLO as an RFC 821
    server; disabled names extensions left out (see EXTENSIONS); dsn
    offers DSN (RFC 3461); ehlo_keywords are extra lines of the EHLO
    reply.  vrfy and expn are tables (a mapping or a callable) for VRFY
    and EXPN; help_text replaces the HELP text; max_transcript bounds a
    session's transcript.  Raise TypeError or ValueError for a bad value.
    """

    def __init__(self, hostname="localhost", *, mechanisms=(), auth_required=False,
                 starttls="off", size_limit=DEFAULT_SIZE_LIMIT,
                 max_recipients=DEFAULT_MAX_RECIPIENTS, max_errors=DEFAULT_MAX_ERRORS,
                 esmtp=True, disabled=(), dsn=False, ehlo_keywords=(), vrfy=None,
                 expn=None, help_text=None, max_transcript=MAX_TRANSCRIPT):
        if not isinstance(hostname, str) or not hostname or any(
                c.isspace() or c < " " for c in hostname):
            raise ValueError("hostname must be a non-empty str without "
                             "whitespace, got %r" % (hostname,))
        if starttls not in STARTTLS_MODES:
            raise ValueError("starttls must be one of %s, got %r"
                             % (", ".join(STARTTLS_MODES), starttls))
        self.mechanisms = dict(mechanisms)
        if auth_required and not self.mechanisms:
            raise ValueError("auth_required=True needs an AUTH mechanism "
                             "(auth= or auth_mechanisms=)")
        for name, value, low in (("size_limit", size_limit, 0),
                                 ("max_recipients", max_recipients, 1),
                                 ("max_errors", max_errors, 1),
                                 ("max_transcript", max_transcript, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError("%s must be an int >= %d, got %r"
                                 % (name, low, value))
        self.hostname = hostname
        self.auth_required = bool(auth_required)
        self.starttls = starttls
        self.size_limit = size_limit
        self.max_recipients = max_recipients
        self.max_errors = max_errors
        self.max_transcript = max_transcript
        self.esmtp = bool(esmtp)    # False: an RFC 821 server, HELO only
        self.extensions = frozenset(EXTENSIONS) - check_disabled(disabled)
        self.esc = "ENHANCEDSTATUSCODES" in self.extensions
        self.dsn = bool(dsn)
        # Keywords the server advertises itself cannot be given again; one
        # switched off can, and is then advertised but not implemented.
        advertised = set(self.extensions)
        for keyword, offered in (("DSN", self.dsn), ("AUTH", self.mechanisms),
                                 ("STARTTLS", starttls != "off")):
            if offered:
                advertised.add(keyword)
        self.ehlo_keywords = check_keywords(ehlo_keywords, advertised)
        self.vrfy = check_table("vrfy", vrfy)
        self.expn = check_table("expn", expn)
        self.help = check_help(help_text) or [
            "Commands: AUTH DATA EHLO EXPN HELO HELP MAIL NOOP QUIT RCPT "
            "RSET STARTTLS VRFY"]

    def ehlo_lines(self, tls_active, auth_offered):
        """Return the lines of the EHLO reply, without their codes."""
        offered = self.extensions
        lines = [self.hostname]
        if "PIPELINING" in offered:
            lines.append("PIPELINING")
        if "SIZE" in offered:
            lines.append("SIZE %d" % self.size_limit if self.size_limit else "SIZE")
        if self.starttls != "off" and not tls_active:
            lines.append("STARTTLS")
        if auth_offered:
            lines.append("AUTH " + " ".join(self.mechanisms))
        if self.dsn:
            lines.append("DSN")
        lines += [name for name in EXTENSIONS[2:] if name in offered]
        return lines + list(self.ehlo_keywords)
