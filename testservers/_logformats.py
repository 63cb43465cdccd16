"""Decoding what logging handlers send: SocketHandler frames and syslog.

Nothing received is ever evaluated: :func:`log_records` unpickles with an
unpickler that refuses every global, so a frame can build only plain data
(dicts, lists, tuples, strings, numbers, None), which is all that
:class:`logging.handlers.SocketHandler` sends.
"""

import io
import logging
import pickle
import re
import struct

__all__ = ["log_records", "SyslogMessage", "parse_syslog", "split_syslog_stream"]

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
              "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console",
              "solaris-cron") + tuple("local%d" % i for i in range(8))   # RFC 5424 6.2.1
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

#: The largest SocketHandler frame :func:`log_records` accepts.
MAX_FRAME = 16 * 1024 * 1024


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            "refused to load %s.%s: log record frames hold plain data only"
            % (module, name))


def log_records(data):
    """Return the :class:`logging.LogRecord`\\ s in SocketHandler *data*.

    *data* is what a :class:`logging.handlers.SocketHandler` wrote to a
    stream (a :attr:`Connection.data`) or a
    :class:`~logging.handlers.DatagramHandler` datagram: frames of a 4-byte
    big-endian length and a pickled dict.  A frame cut short at the end is
    ignored; a frame that asks to load any class or function raises
    :exc:`pickle.UnpicklingError` instead of running anything.
    """
    records = []
    view = memoryview(data)
    while len(view) >= 4:
        (size,) = struct.unpack(">L", view[:4])
        if size > MAX_FRAME:
            raise ValueError("a frame of %d bytes is over MAX_FRAME" % size)
        if len(view) < 4 + size:
            break
        state = _PlainUnpickler(io.BytesIO(view[4:4 + size])).load()
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a log record frame holds a dict, not %s"
                                         % type(state).__name__)
        records.append(logging.makeLogRecord(state))
        view = view[4 + size:]
    return records


class SyslogMessage:
    """One parsed syslog message.

    ``priority``, ``facility`` and ``severity`` are numbers (``None`` when the
    message has no ``<PRI>``); ``facility_name`` and ``severity_name`` their
    keywords; ``version`` is 1 for RFC 5424 and ``None`` for the BSD format
    (RFC 3164) that :class:`logging.handlers.SysLogHandler` sends;
    ``timestamp``, ``hostname``, ``app_name``, ``procid``, ``msgid`` and
    ``structured_data`` are strings or ``None``; ``text`` is the message;
    ``raw`` the bytes as received.
    """

    def __init__(self, raw):
        self.raw = raw
        self.priority = self.facility = self.severity = self.version = None
        self.timestamp = self.hostname = self.app_name = None
        self.procid = self.msgid = self.structured_data = None
        self.text = ""

    @property
    def facility_name(self):
        return None if self.facility is None else (
            FACILITIES[self.facility] if self.facility < len(FACILITIES) else str(self.facility))

    @property
    def severity_name(self):
        return None if self.severity is None else SEVERITIES[self.severity]

    def __str__(self):
        head = "%s.%s" % (self.facility_name, self.severity_name) \
            if self.priority is not None else "-"
        parts = [p for p in (self.timestamp, self.hostname, self.app_name) if p]
        return "%s %s%s" % (head, "[%s] " % " ".join(parts) if parts else "", self.text)

    def __repr__(self):
        return "<SyslogMessage %s>" % self


_PRI = re.compile(rb"<([0-9]{1,3})>")
_RFC5424 = re.compile(rb"1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+) ?")
_RFC3164 = re.compile(rb"([A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}) (\S+) ")


def _nil(value):
    return None if value == "-" else value


def parse_syslog(data):
    """Parse one syslog message (RFC 5424 or RFC 3164) from *data* (bytes).

    A trailing NUL or newline is dropped; bytes that follow no format are
    kept whole as ``text``.
    """
    msg = SyslogMessage(data)
    data = data.rstrip(b"\0\r\n")
    m = _PRI.match(data)
    if m and int(m.group(1)) < 192:                 # RFC 5424 6.2.1: 0..191
        msg.priority = int(m.group(1))
        msg.facility, msg.severity = divmod(msg.priority, 8)
        data = data[m.end():]
        m5 = _RFC5424.match(data)
        m3 = None if m5 else _RFC3164.match(data)
        if m5:
            msg.version = 1
            (msg.timestamp, msg.hostname, msg.app_name, msg.procid, msg.msgid,
             msg.structured_data) = [_nil(g.decode("utf-8", "replace")) for g in m5.groups()]
            data = data[m5.end():]
            if data.startswith(b"\xef\xbb\xbf"):    # RFC 5424 6.4: the BOM
                data = data[3:]
        elif m3:
            msg.timestamp = m3.group(1).decode("ascii")
            msg.hostname = m3.group(2).decode("utf-8", "replace")
            data = data[m3.end():]
    msg.text = data.decode("utf-8", "replace")
    return msg


def split_syslog_stream(buffer):
    """Split a syslog TCP stream into messages: return (messages, rest).

    Octet counting (RFC 6587 3.4.1: ``LEN SP MSG``) is recognised by its
    leading digit; otherwise messages end with LF or NUL (non-transparent
    framing, RFC 6587 3.4.2, and SysLogHandler's NUL).  *rest* is what is
    left of an incomplete message.
    """
    messages = []
    while buffer:
        m = re.match(rb"([1-9][0-9]{0,8}) ", buffer)
        if m:
            end = m.end() + int(m.group(1))
            if len(buffer) < end:
                break
            messages.append(buffer[m.end():end])
            buffer = buffer[end:]
            continue
        cut = min([i for i in (buffer.find(b"\n"), buffer.find(b"\0")) if i >= 0],
                  default=-1)
        if cut < 0:
            break
        if cut:
            messages.append(buffer[:cut])
        buffer = buffer[cut + 1:]
    return messages, buffer
