"""The arguments of MAIL and RCPT: paths and ESMTP parameters, checked.

Pure functions for the SMTP session (see ``_smtpproto``): each takes the
text of a command's argument and returns either an error reply line or
what it parsed.  The DSN parameters (RFC 3461) are decoded from xtext.
"""

import re

__all__ = []

# "<path>" then " params" (RFC 5321 4.1.2): a quoted local part may hold
# spaces and ">"; unquoted spaces, "<", and control characters are refused.
_PATH = re.compile(r' *<((?:"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
                   r'|[^"<> \x00-\x1f\x7f])*)>(?: +(.*))?')

# RFC 3461 4: xchar is "!" to "~" but "+" and "="; "+" and two upper-case
# hex digits stand for any octet.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_XTEXT_HEX = re.compile(rb"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # an atom (RFC 5322)
_NOTIFY = ("SUCCESS", "FAILURE", "DELAY")

MAX_ENVID = 100     # RFC 3461 4.4
MAX_ORCPT = 500     # RFC 3461 4.2

NULL_SENDER = "<>"  # the null reverse-path, as smtpd passed it on

BAD_OPTION = "555 5.5.4 Unsupported option"


def is_utf8(text):
    """Return True if *text* was decoded from valid UTF-8 (no surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_path(arg, keyword):
    """Parse ``FROM:<path> params`` or ``TO:<path> params``.

    Return ``(address, params)`` or None on a syntax error.  Angle brackets
    are required; spaces after the colon are tolerated, as Postfix does.
    The null path ``<>`` gives the address ``"<>"`` (as :mod:`!smtpd` gave
    it); a source route is dropped.
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
    return address or NULL_SENDER, params


def xtext_decode(value):
    """Decode RFC 3461 xtext; return the text, or None if it is not xtext
    or its octets are not UTF-8."""
    if _XTEXT.fullmatch(value) is None:
        return None
    raw = _XTEXT_HEX.sub(lambda m: bytes((int(m.group(1), 16),)),
                         value.encode("ascii"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _split_params(params):
    """Split ESMTP parameters into ``(KEYWORD, "=" or "", value)``.

    Return ``(None, split)``, or ``(reply, None)`` when a keyword is given
    twice (a 501: RFC 5321 leaves it undefined, so it is refused).
    """
    seen, split = set(), []
    for param in params:
        key, eq, value = param.partition("=")
        key = key.upper()
        if key in seen:
            return "501 5.5.4 Duplicate %s parameter" % key, None
        seen.add(key)
        split.append((key, eq, value))
    return None, split


def mail_params(params, offered, size_limit):
    """Check the parameters of MAIL against the extensions *offered*.

    *offered* is a set of extension names in force ("SIZE", "8BITMIME",
    "SMTPUTF8", "AUTH", "DSN").  Return ``(None, parsed)`` with *parsed* a
    dict of "smtputf8", "ret" and "envid", or ``(reply, None)``.
    """
    parsed = {"smtputf8": False, "ret": None, "envid": None}
    if not params:
        return None, parsed
    refused, split = _split_params(params)
    if refused:
        return refused, None
    for key, eq, value in split:
        if key == "SIZE" and eq and "SIZE" in offered:      # RFC 1870 6
            if not (value.isascii() and value.isdigit()):
                return "501 5.5.4 Bad SIZE parameter", None
            if size_limit and int(value) > size_limit:
                return ("552 5.3.4 Message size exceeds fixed maximum "
                        "message size", None)
        elif key == "BODY" and eq and "8BITMIME" in offered:    # RFC 6152 3
            if value.upper() not in ("7BIT", "8BITMIME"):
                return "501 5.5.4 Unsupported BODY type", None
        elif key == "SMTPUTF8" and not eq and "SMTPUTF8" in offered:
            parsed["smtputf8"] = True       # RFC 6531 3.4
        elif key == "AUTH" and eq and "AUTH" in offered:
            # RFC 4954 5: an xtext identity or "<>", accepted and ignored.
            if xtext_decode(value) is None:
                return "501 5.5.4 Bad AUTH parameter", None
        elif key == "RET" and eq and "DSN" in offered:      # RFC 3461 4.3
            if value.upper() not in ("FULL", "HDRS"):
                return "501 5.5.4 Bad RET parameter", None
            parsed["ret"] = value.upper()
        elif key == "ENVID" and eq and "DSN" in offered:    # RFC 3461 4.4
            envid = xtext_decode(value)
            if envid is None or len(value) > MAX_ENVID:
                return "501 5.5.4 Bad ENVID parameter", None
            parsed["envid"] = envid
        else:
            return BAD_OPTION, None
    return None, parsed


def rcpt_params(params, offered):
    """Check the parameters of RCPT against the extensions *offered*.

    Return ``(None, parsed)`` with *parsed* a dict of "notify" (a tuple of
    keywords, or None) and "orcpt" (``(addr_type, address)``, or None), or
    ``(reply, None)``.  Only DSN (RFC 3461) defines RCPT parameters here.
    """
    parsed = {"notify": None, "orcpt": None}
    if not params:
        return None, parsed
    refused, split = _split_params(params)
    if refused:
        return refused, None
    for key, eq, value in split:
        if not (eq and "DSN" in offered and key in ("NOTIFY", "ORCPT")):
            return BAD_OPTION, None
        if key == "NOTIFY":     # RFC 3461 4.1: NEVER alone, or a list
            words = tuple(value.upper().split(","))
            if not (words == ("NEVER",) or (
                    set(words) <= set(_NOTIFY) and len(set(words)) == len(words))):
                return "501 5.5.4 Bad NOTIFY parameter", None
            parsed["notify"] = words
        else:                   # RFC 3461 4.2: addr-type ";" xtext
            addr_type, semicolon, address = value.partition(";")
            address = xtext_decode(address)
            if (not semicolon or not _ADDR_TYPE.fullmatch(addr_type)
                    or not address or len(value) > MAX_ORCPT):
                return "501 5.5.4 Bad ORCPT parameter", None
            parsed["orcpt"] = (addr_type, address)
    return None, parsed


class Envelope:
    """One received message, as the session hands it over.

    The attributes are mailfrom (the reverse-path without angle brackets,
    "<>" for the null reverse-path), rcpttos (a list of addresses), data
    (the message bytes after dot-unstuffing, CRLF line endings as sent,
    including the CRLF that ends the last line), mail_options (the MAIL
    parameters as given, such as "SIZE=123"), rcpt_options (a list beside
    rcpttos: the parameters of each RCPT), helo (the HELO/EHLO argument),
    user (the authenticated user or None), tls (true if the message came
    over TLS), smtputf8 (true if MAIL carried SMTPUTF8) and dsn (None when
    DSN is not offered, else a dict: "ret" and "envid" from MAIL, "notify"
    and "orcpt" lists beside rcpttos, as mail_params() and rcpt_params()
    parse them).
    """

    def __init__(self, mailfrom, rcpttos, data, mail_options=(),
                 rcpt_options=None, helo="", user=None, tls=False,
                 smtputf8=False, dsn=None):
        self.mailfrom = mailfrom
        self.rcpttos = list(rcpttos)
        self.data = data
        self.mail_options = list(mail_options)
        self.rcpt_options = [list(options) for options in (
            rcpt_options if rcpt_options is not None else [()] * len(self.rcpttos))]
        self.helo = helo
        self.user = user
        self.tls = tls
        self.smtputf8 = smtputf8
        self.dsn = dsn

    def __repr__(self):
        return "<%s mailfrom=%r rcpttos=%r %d bytes>" % (
            type(self).__name__, self.mailfrom, self.rcpttos, len(self.data))
