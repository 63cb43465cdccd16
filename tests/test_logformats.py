"""Decoding SocketHandler frames (safely) and syslog messages."""

import logging
import logging.handlers
import os
import pickle
import struct

import pytest

import testservers
from testservers import log_records, parse_syslog, split_syslog_stream


def frame(obj, protocol=1):
    data = pickle.dumps(obj, protocol)
    return struct.pack(">L", len(data)) + data


def test_log_records_from_socket_handler_frames():
    handler = logging.handlers.SocketHandler("localhost", None)
    records = [logging.makeLogRecord({"msg": "a %s", "args": ("b",), "levelno": 40,
                                      "levelname": "ERROR"}),
               logging.makeLogRecord({"msg": "second"})]
    data = b"".join(handler.makePickle(r) for r in records)
    handler.close()
    got = log_records(data + data[:7])          # a trailing partial frame is ignored
    assert [r.getMessage() for r in got] == ["a b", "second"]
    assert got[0].levelname == "ERROR"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [Evil(), {"msg": Evil()}, {"exc": ValueError("x")}])
def test_log_records_refuses_globals(payload):
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        log_records(frame(payload))


def test_log_records_needs_a_dict_and_a_sane_length():
    with pytest.raises(pickle.UnpicklingError):
        log_records(frame(["not", "a", "dict"]))
    with pytest.raises(ValueError, match="MAX_FRAME"):
        log_records(struct.pack(">L", 2 ** 31) + b"x")


def test_parse_syslog_python_handler_format():
    msg = parse_syslog(b"<11>h\xc3\xa4m-sp\xc3\xa4m\x00")
    assert (msg.facility, msg.severity, msg.facility_name, msg.severity_name) == (
        1, 3, "user", "err")
    assert msg.text == "h\xe4m-sp\xe4m" and msg.version is None
    assert str(msg) == "user.err h\xe4m-sp\xe4m"


def test_parse_syslog_rfc3164():
    msg = parse_syslog(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n")
    assert (msg.facility_name, msg.severity_name) == ("auth", "crit")
    assert (msg.timestamp, msg.hostname, msg.text) == (
        "Oct 11 22:14:15", "mymachine", "su: 'su root' failed")


def test_parse_syslog_rfc5424():
    raw = (b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
           b'[exampleSDID@32473 iut="3" eventSource="Application"] \xef\xbb\xbfAn application event')
    msg = parse_syslog(raw)
    assert (msg.version, msg.facility_name, msg.severity_name) == (1, "local4", "notice")
    assert (msg.hostname, msg.app_name, msg.procid, msg.msgid) == (
        "mymachine.example.com", "evntslog", None, "ID47")
    assert msg.structured_data.startswith("[exampleSDID@32473")
    assert msg.text == "An application event"
    nil = parse_syslog(b"<13>1 - - - - - -")
    assert nil.text == "" and nil.timestamp is None


def test_parse_syslog_without_priority_keeps_everything():
    msg = parse_syslog(b"no priority here")
    assert msg.priority is None and msg.text == "no priority here"
    assert str(msg) == "- no priority here"
    assert parse_syslog(b"<999>x").text == "<999>x"


def test_split_syslog_stream_framings():
    stream = b"12 <13>1 - - - " + b"<14>nul\x00<15>lf\n<16>partial"
    messages, rest = split_syslog_stream(stream[:5])
    assert (messages, rest) == ([], stream[:5])
    messages, rest = split_syslog_stream(stream)
    assert messages == [b"<13>1 - - - ", b"<14>nul", b"<15>lf"]
    assert rest == b"<16>partial"


def test_exported():
    for name in ("log_records", "parse_syslog", "split_syslog_stream", "SyslogMessage"):
        assert name in testservers.__all__
