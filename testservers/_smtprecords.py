"""What TestSMTPServer keeps: messages, transcripts, and scripted replies.

:class:`Message` is the record of one received message; a transcript is
the dialogue of one connection as the session wrote it; the script store
holds the replies a test asked for with ``TestSMTPServer.answer()``,
shared by every connection thread.
"""

import email
import email.policy
import threading
import time

__all__ = ["Message"]


def smtpd_text(data):
    """Return *data* as :mod:`!smtpd` handed it over with decode_data=True:
    decoded as UTF-8, lines joined by LF, no newline at the end."""
    return smtpd_bytes(data).decode("utf-8", "replace")


def smtpd_bytes(data):
    """Return *data* as :mod:`!smtpd` handed it over with decode_data=False:
    bytes, lines joined by LF, no newline at the end."""
    if data.endswith(b"\r\n"):
        data = data[:-2]
    return data.replace(b"\r\n", b"\n")


class Message:
    """One message that the server received.

    ``peer`` is the client address; ``mailfrom`` the envelope sender
    (``"<>"`` for the null sender); ``rcpttos`` the list of envelope
    recipients; ``data`` the message bytes as received, after
    dot-unstuffing, with CRLF line endings and the final CRLF; ``text``
    the same as :mod:`!smtpd` gave it with ``decode_data=True``;
    ``message`` the :class:`email.message.EmailMessage` parsed from
    ``data`` (on first use).  ``user`` is the authenticated user or
    ``None``; ``tls`` tells whether TLS was in use; ``helo`` is the
    HELO/EHLO argument and ``esmtp`` true after EHLO; ``mail_options``
    lists the MAIL parameters as sent; ``rcpt_options`` is a list beside
    ``rcpttos`` with the parameters of each RCPT; ``smtputf8`` tells
    whether MAIL carried SMTPUTF8; ``dsn`` is ``None`` unless the server
    offers DSN, else a dict of the DSN parameters, decoded; ``reply`` is
    the reply line the client got; ``connection_id`` is the ``id`` of the
    :class:`Connection`; ``received`` is a :func:`time.monotonic` time.
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
        self.rcpt_options = [list(options) for options in envelope.rcpt_options]
        self.smtputf8 = envelope.smtputf8
        self.dsn = envelope.dsn
        self.reply = None
        self.connection_id = connection_id
        self.received = time.monotonic()
        self._message = None

    @property
    def text(self):
        """The message as a str, as ``smtpd`` gave it with ``decode_data=True``."""
        return smtpd_text(self.data)

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


class Transcript:
    """The dialogue of one connection: ``lines`` grows as it goes on."""

    __slots__ = ("connection_id", "lines")

    def __init__(self, connection_id, lines):
        self.connection_id = connection_id
        self.lines = lines

    def __repr__(self):
        return "<Transcript of connection %d, %d lines>" % (
            self.connection_id, len(self.lines))


class Scripts:
    """The scripted replies in force, oldest first, for every connection.

    Each entry answers its command *times* times (None: until removed).
    When several entries name one command, the oldest answers first, so a
    sequence of replies is scripted by adding them in order.  An entry's
    reply is its lines, or a callable given the command's argument that
    returns a reply (checked by *check*) or None to let the command run.
    """

    def __init__(self, check):
        self._lock = threading.Lock()
        self._entries = []
        self._check = check

    def add(self, command, lines, times, close):
        entry = [command, lines, times, close, False]     # False: not removed
        with self._lock:
            self._entries.append(entry)
        return entry

    def remove(self, entry):
        with self._lock:
            entry[4] = True     # a use given back later stays removed
            # By identity: two entries may be equal.
            self._entries[:] = [e for e in self._entries if e is not entry]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def take(self, command, arg):
        """Return ``(lines, close)`` for *command* and count it, or None.

        The entry is claimed under the lock before a callable reply runs
        (without it), so two connections cannot both take the last use of
        an entry; a callable that returns None gives the use back.  The
        exceptions of a callable reply propagate (the use is spent).
        """
        if not self._entries:       # the common case, without the lock
            return None
        with self._lock:
            at, entry = next(((i, e) for i, e in enumerate(self._entries)
                              if e[0] == command), (None, None))
            if entry is None:
                return None
            if entry[2] is not None:
                entry[2] -= 1
                if entry[2] <= 0:
                    del self._entries[at]
        lines = entry[1]
        if callable(lines):     # the test's code: run without the lock
            lines = lines(arg)
            if lines is None:
                self._give_back(at, entry)
                return None
            lines = self._check(lines)
        return lines, entry[3]

    def _give_back(self, at, entry):
        with self._lock:
            if entry[2] is not None and not entry[4]:
                entry[2] += 1
                if not any(e is entry for e in self._entries):
                    self._entries.insert(min(at, len(self._entries)), entry)

    def __getstate__(self):
        # Process mode sends a server's state across: the lock stays here.
        with self._lock:
            return [list(entry) for entry in self._entries], self._check

    def __setstate__(self, state):
        self._lock = threading.Lock()
        self._entries, self._check = state
