"""SASL for SMTP AUTH (RFC 4954): the exchange and the built-in mechanisms.

A mechanism is a callable ``mechanism(initial)``.  *initial* is the
decoded initial response of the AUTH command as bytes (``b""`` for "="),
or None when the client sent none.  It returns the authenticated user name
(a str), or None (or False) to refuse the credentials with 535.  To ask
the client for more, it is a generator: each ``yield challenge`` (bytes or
str) sends "334 <base64 challenge>" and evaluates to the client's decoded
response, bytes; its ``return`` value is the outcome.  An exception it
raises is a handler error: the client gets 454 and the server records it.

PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195) are built in; CRAM-MD5
needs each user's password, so it is only made from a mapping.
"""

import base64
import collections.abc
import hmac
import inspect
import os
import re
import time

__all__ = []

BUILTIN = ("CRAM-MD5", "PLAIN", "LOGIN")
# SASL mechanism names (RFC 4422 3.1): upper-case letters, digits, "-", "_".
_MECHANISM_NAME = re.compile(r"[A-Z0-9_-]{1,20}")
# Canonical base64 (RFC 4648 4); binascii's own checks differ between
# Python versions (3.8 decodes "=" to b"").
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*"
                     r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_HEX_DIGEST = re.compile(r"[0-9a-f]{32}")

DECODE_ERROR = "501 5.5.2 Cannot decode response"
TEMPORARY_FAILURE = "454 4.7.0 Temporary authentication failure"


class Malformed(Exception):
    """A client's response that breaks its mechanism: answered with *reply*."""

    def __init__(self, reply):
        super().__init__(reply)
        self.reply = reply


def b64decode(text):
    """Decode canonical base64 text; return None if it is not that."""
    if _BASE64.fullmatch(text) is None:
        return None
    return base64.b64decode(text.encode("ascii"), validate=True)


def _text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(DECODE_ERROR) from None


def md5_available():
    """Tell whether HMAC-MD5 works here (a FIPS build may forbid MD5)."""
    try:
        hmac.new(b"key", b"message", "md5")
    except ValueError:
        return False
    return True


def _checker(auth):
    """Turn the server's *auth* option into ``check(user, password)``."""
    if isinstance(auth, collections.abc.Mapping):
        return lambda user, password: user in auth and auth[user] == password
    return auth


def plain(auth):
    """Return the PLAIN mechanism (RFC 4616) checking against *auth*."""
    check = _checker(auth)

    def mechanism(initial):
        response = initial
        if response is None:
            response = yield b""
        parts = _text(response).split("\0")
        # RFC 4616 2: [authzid] NUL authcid NUL passwd
        if len(parts) != 3 or not parts[1]:
            raise Malformed("501 5.5.2 Malformed PLAIN response")
        authzid, user, password = parts
        # Acting for another identity (an authzid) is never authorized.
        if authzid not in ("", user) or not check(user, password):
            return None
        return user
    return mechanism


def login(auth):
    """Return the LOGIN mechanism (draft-murchison-sasl-login)."""
    check = _checker(auth)

    def mechanism(initial):
        user = initial
        if user is None:
            user = yield b"Username:"
        user = _text(user)
        password = _text((yield b"Password:"))
        return user if check(user, password) else None
    return mechanism


def cram_md5(passwords, hostname):
    """Return the CRAM-MD5 mechanism (RFC 2195) for the mapping *passwords*."""
    def mechanism(initial):
        if initial is not None:
            # RFC 4954 4: the client does not begin this exchange.
            raise Malformed("501 5.5.2 CRAM-MD5 takes no initial response")
        challenge = ("<%s.%d@%s>" % (os.urandom(8).hex(), int(time.time()),
                                     hostname)).encode("ascii")
        user, space, digest = _text((yield challenge)).rpartition(" ")
        if not (space and user and _HEX_DIGEST.fullmatch(digest)):
            raise Malformed("501 5.5.2 Malformed CRAM-MD5 response")
        password = passwords.get(user) if user in passwords else None
        if not isinstance(password, str):
            return None
        expected = hmac.new(password.encode("utf-8"), challenge, "md5").hexdigest()
        return user if hmac.compare_digest(expected, digest) else None
    return mechanism


def mechanisms(auth, chosen, hostname):
    """Build the session's ``[(name, mechanism)]`` from the server's options.

    *auth* is None, a mapping ``{user: password}`` or a callable
    ``auth(user, password)``.  *chosen* is None for the default (CRAM-MD5
    when *auth* is a mapping and MD5 works, then PLAIN and LOGIN), or a
    sequence of built-in names and ``(name, mechanism)`` pairs, offered in
    that order.  Raise TypeError or ValueError for a bad choice.
    """
    if chosen is None:
        if auth is None:
            return []
        chosen = BUILTIN if isinstance(auth, collections.abc.Mapping) and \
            md5_available() else BUILTIN[1:]
    elif isinstance(chosen, (str, bytes)) or not isinstance(
            chosen, collections.abc.Iterable):
        raise TypeError("auth_mechanisms must be a sequence of names and "
                        "(name, mechanism) pairs, not %r" % (chosen,))
    result = []
    for item in chosen:
        if isinstance(item, str):
            name, mechanism = item.upper(), None
        elif isinstance(item, tuple) and len(item) == 2 and \
                isinstance(item[0], str) and callable(item[1]):
            name, mechanism = item[0].upper(), item[1]
        else:
            raise TypeError("each of auth_mechanisms must be a name or a "
                            "(name, callable) pair, not %r" % (item,))
        if not _MECHANISM_NAME.fullmatch(name):
            raise ValueError("%r is not a SASL mechanism name" % (name,))
        if any(name == other for other, _ in result):
            raise ValueError("auth_mechanisms names %s twice" % name)
        if mechanism is None:
            mechanism = _builtin(name, auth, hostname)
        result.append((name, mechanism))
    return result


def _builtin(name, auth, hostname):
    if name not in BUILTIN:
        raise ValueError("%s is not a built-in mechanism (%s); give it as a "
                         "(name, mechanism) pair" % (name, ", ".join(BUILTIN)))
    if auth is None:
        raise ValueError("the %s mechanism needs auth= (a mapping or a "
                         "callable)" % name)
    if name == "PLAIN":
        return plain(auth)
    if name == "LOGIN":
        return login(auth)
    if not isinstance(auth, collections.abc.Mapping):
        raise ValueError("CRAM-MD5 needs the plain passwords: auth must be a "
                         "mapping {user: password}, not a callable")
    if not md5_available():
        raise ValueError("CRAM-MD5 needs MD5, which this Python forbids")
    return cram_md5(auth, hostname)


class Exchange:
    """One AUTH exchange in progress: drives its mechanism step by step."""

    def __init__(self, name, mechanism, initial):
        self.name = name
        result = mechanism(initial)
        self._gen = result if inspect.isgenerator(result) else None
        self._result = result

    def step(self, response):
        """Give the mechanism the client's *response* (None to begin).

        Return ``(challenge, None)`` while it asks for more, then
        ``(None, outcome)``.  Its exceptions propagate.
        """
        if self._gen is None:
            return None, self._result
        try:
            challenge = self._gen.send(response)
        except StopIteration as stop:
            self._gen = None
            return None, stop.value
        if isinstance(challenge, str):
            challenge = challenge.encode("utf-8")
        if not isinstance(challenge, (bytes, bytearray)):
            self.cancel()
            raise TypeError("an AUTH mechanism must yield bytes or str "
                            "challenges, not %r" % (challenge,))
        return bytes(challenge), None

    def cancel(self):
        """End the mechanism early (the client cancelled, or left)."""
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def outcome_user(outcome):
    """Check what a mechanism returned; return the user name or None."""
    if outcome is None or outcome is False:
        return None
    if not isinstance(outcome, str) or not outcome:
        raise TypeError("an AUTH mechanism must return the user name (a "
                        "non-empty str) or None, not %r" % (outcome,))
    return outcome


def b64encode(raw):
    return base64.b64encode(raw).decode("ascii")


class Auth:
    """The AUTH command of one session (RFC 4954): a part of the session.

    The session checks that AUTH may be given; :meth:`start` runs the
    exchange, :meth:`respond` takes each line of the client while
    ``exchange`` is not None, and ``user`` is the user it authenticated.
    Replies go to *output* (a ``_smtpwire.Output``); *on_auth(user,
    mechanism)* may accept or refuse an authentication that succeeded.
    """

    def __init__(self, mechanisms, output, on_auth=None):
        self.mechanisms = mechanisms
        self.output = output
        self.on_auth = on_auth
        self.exchange = None
        self.user = None

    def reset(self):
        """Forget the user and any exchange (after a TLS handshake)."""
        self.cancel()
        self.user = None

    def cancel(self):
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.cancel()

    def start(self, name, initial):
        """Begin the exchange of mechanism *name* (offered) with the
        *initial* response text of the AUTH command, or ""."""
        raw = None
        if initial:
            # RFC 4954 4: "=" stands for an empty initial response.
            raw = b"" if initial == "=" else b64decode(initial)
            if raw is None:
                return self.output.error(DECODE_ERROR)
        self._step(None, None, name, raw)

    def respond(self, text):
        """Take the client's line *text* in the exchange."""
        exchange, self.exchange = self.exchange, None
        raw = None if text == "*" else b64decode(text)
        if raw is None:
            exchange.cancel()
            return self.output.error("501 5.7.0 Authentication cancelled"
                                     if text == "*" else DECODE_ERROR)
        self._step(exchange, raw)

    def _step(self, exchange, response, name=None, initial=None):
        output = self.output
        try:
            if exchange is None:
                exchange = Exchange(name, self.mechanisms[name], initial)
            challenge, outcome = exchange.step(response)
            user = None if challenge is not None else outcome_user(outcome)
        except Malformed as exc:
            return output.error(exc.reply)
        except BaseException as exc:    # an assertion library's too
            return output.failed(exc, TEMPORARY_FAILURE)
        if challenge is not None:
            self.exchange = exchange
            return output.send("334 " + b64encode(challenge))
        if user is None:
            return output.error("535 5.7.8 Authentication credentials invalid")
        if output.consult(self.on_auth, "on_auth", ("2", "4", "5"),
                          "235 2.7.0 Authentication successful", user, exchange.name,
                          failure=TEMPORARY_FAILURE):
            self.user = user
