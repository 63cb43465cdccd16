"""The two ends of an SMTP session's wire, without I/O.

:class:`Output` queues the reply lines a session sends, keeps the
session's transcript and its error count, and knows which replies close
the session.  :class:`DataReader` takes message data after a 354 reply:
it finds the end, removes dot-stuffing, and holds at most the size limit.
Both are parts that ``_smtpproto.SMTPSession`` holds.
"""

import collections.abc

from ._smtpoptions import hook_reply, strip_esc, table_reply

__all__ = []

ABORTED = "451 4.3.0 Requested action aborted: local error in processing"
MAX_COMMAND_LINE = 512  # RFC 5321 4.5.3.1.4, including the CRLF
MAX_AUTH_LINE = 12288  # RFC 4954 4


class LineReader:
    """Command lines, each ended by LF (CRLF, or a bare LF as Postfix
    accepts), at most MAX_COMMAND_LINE octets, or MAX_AUTH_LINE for AUTH
    and the lines of its exchange.  Of an over-long line it holds nothing
    and skips the rest."""

    def __init__(self):
        self._buf = bytearray()     # a partial line
        self._discarding = False    # skipping the rest of an over-long line

    def clear(self):
        self._buf.clear()
        self._discarding = False

    def feed(self, data, i, in_auth):
        """Consume bytes from data[i:]: return ``(index, line, too_long)``,
        *line* being the bytes of a whole line (without its end) or None."""
        end = data.find(b"\n", i)
        if self._discarding:
            if end >= 0:
                self._discarding = False
            return (len(data) if end < 0 else end + 1), None, False
        head = (bytes(self._buf[:5]) + data[i:i + 5])[:5] if self._buf else data[i:i + 5]
        limit = MAX_AUTH_LINE if in_auth or head.upper() == b"AUTH " else \
            MAX_COMMAND_LINE
        if end < 0:
            # Hold at most `limit` octets while waiting for the LF.
            if len(self._buf) + len(data) - i > limit:
                self.clear()
                self._discarding = True
                return len(data), None, True
            self._buf += data[i:]
            return len(data), None, False
        if len(self._buf) + end + 1 - i > limit:
            self._buf.clear()
            return end + 1, None, True
        line = bytes(self._buf) + data[i:end]
        self._buf.clear()
        return end + 1, line[:-1] if line.endswith(b"\r") else line, False


class Output:
    """Reply lines queued for the client, and the record of the dialogue.

    *esc* tells whether the session's own replies keep their enhanced
    status codes (RFC 2034); lines the test gives are sent as given.  After
    *max_errors* error replies, 421 follows and ``closed`` is set, as after
    any 221 or 421 reply.  ``transcript`` keeps at most *max_transcript*
    lines; ``errors`` the exceptions of the test's callbacks.
    """

    def __init__(self, hostname, esc, max_errors, max_transcript):
        self.hostname = hostname
        self.esc = esc
        self.max_errors = max_errors
        self.max_transcript = max_transcript
        self.transcript = []
        self.closed = False
        self.errors = []
        self.error_count = 0
        self._lines = []

    def take(self):
        """Return the queued replies as bytes, and empty the queue."""
        replies = b"".join(self._lines)
        self._lines.clear()
        return replies

    def note(self, line):
        """Add *line* to the transcript while it has room."""
        transcript = self.transcript
        if len(transcript) < self.max_transcript:
            transcript.append(line)
        elif len(transcript) == self.max_transcript and transcript:
            transcript[-1] = "... (max_transcript lines kept; later ones dropped)"

    def send(self, line):
        """Queue a reply line as it is (the test's, or already final)."""
        self.note("S: " + line)
        self._lines.append(line.encode("utf-8", "surrogateescape") + b"\r\n")
        if line[:3] in ("221", "421") and line[3:4] != "-":
            self.closed = True

    def reply(self, line):
        """Queue one of the session's own reply lines."""
        self.send(line if self.esc else strip_esc(line))

    def lines(self, code, esc, texts):
        """Queue a reply of the session: *code* and *esc* on each text."""
        for k, text in enumerate(texts):
            sep = "-" if k < len(texts) - 1 else " "
            self.send(code + sep + (esc + " " if self.esc else "") + text)

    def error(self, line):
        """Queue an error reply of the session's own rules, and count it."""
        self.reply(line)
        self.error_count += 1
        if self.error_count >= self.max_errors:
            self.reply("421 4.7.0 %s Error: too many errors" % self.hostname)

    def refused(self, *checks):
        """Send the error of the first (condition, reply) pair that holds.

        Return True if one did; the checks run in the order given.
        """
        for condition, line in checks:
            if condition:
                self.error(line)
                return True
        return False

    def failed(self, exc, reply=ABORTED):
        """A callback of the test raised *exc*: keep it, answer *reply*.

        Every exception counts, SystemExit and KeyboardInterrupt included,
        as for the other servers' handlers: the server records it and
        stop() raises it in the test's thread (see _loop._is_disconnect for
        the only exceptions that end a connection quietly).
        """
        self.errors.append(exc)
        self.reply(reply)

    def consult(self, hook, name, codes, default, *args, failure=ABORTED):
        """Send what *hook* returns for *args*, or *default* without a hook
        or when it returns None.  Return True if the command is accepted
        (a 2xx or 3xx reply); a hook that fails gets *failure* and False."""
        if hook is not None:
            try:
                line = hook_reply(hook(*args), codes, name)
            except BaseException as exc:    # an assertion library's too
                self.failed(exc, failure)
                return False
            if line is not None:
                self.send(line)
                return line[0] in "23"
        self.reply(default)
        return True

    def scripted(self, script, command, arg):
        """Answer *command* from *script*, if it has a reply for it.

        *script* is None or ``script(command, arg) -> (lines, close) or
        None``.  Return True if the command was answered (with 451 if the
        script raised).
        """
        if script is None:
            return False
        try:
            found = script(command, arg)
        except BaseException as exc:    # a callable reply of the test's
            self.failed(exc)
            return True
        if found is None:
            return False
        lines, close = found
        for line in lines:
            self.send(line)
        if close:
            self.closed = True
        return True

    def look_up(self, table, arg, not_found):
        """Answer VRFY or EXPN for *arg* from *table* (RFC 5321 3.5)."""
        try:
            found = table_reply(table.get(arg) if isinstance(
                table, collections.abc.Mapping) else table(arg))
        except BaseException as exc:
            return self.failed(exc)
        if found is None:
            self.reply(not_found % arg)
        elif found[0]:
            for line in found[1]:
                self.send(line)
        else:
            self.lines("250", "2.1.5", found[1])


class DataReader:
    """Message data, from the 354 reply to the line that holds only ".".

    Only CRLF "." CRLF ends the data (RFC 5321 4.1.1.4), the first CRLF
    being the end of the previous line or implied at the start: a bare LF
    or CR around the dot stays in the message, against SMTP smuggling
    (CVE-2023-51764).  A "." that starts a line is removed (RFC 5321
    4.5.2).  Up to two bytes that may begin "\\r\\n." or ".\\r\\n" wait in
    ``_pending`` for the next chunk.  Past *size_limit* octets (0: no
    limit) ``data`` becomes None and the rest is read and dropped.
    """

    def __init__(self, size_limit):
        self.size_limit = size_limit
        self.data = bytearray()
        self._size = 0
        self._bol = True  # at the start of a line of message data
        self._pending = b""

    def feed(self, data, i):
        """Consume message bytes from data[i:].

        Return ``(index, ended)``: the index after what was consumed, and
        whether the final "." line was among it.
        """
        buf = self._pending + data[i:]
        start = len(self._pending)  # buf[start:] is data[i:]
        pos = 0
        while True:
            if self._bol:
                head = buf[pos:pos + 3]
                if head == b".\r\n":
                    return i + pos + 3 - start, True
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
        return len(data), False

    def _emit(self, chunk):
        self._size += len(chunk)
        if self.data is None:
            return
        if self.size_limit and self._size > self.size_limit:
            self.data = None  # keep reading to the end but hold nothing
        else:
            self.data += chunk
