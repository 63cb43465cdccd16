"""Real socket servers for test suites, from the standard library alone.

Every class binds in its constructor (port 0 allowed, the real port in
``port``), serves on a background thread after ``start()``, sets ``ready``
as the service loop begins, and ``stop()`` returns at once, releases every
thread, socket and file, and raises what the handlers raised::

    server = TestTCPServer(("127.0.0.1", 0), handler)
    server.start()
    ...
    server.stop()

The public API is exactly ``__all__``; the modules behind it are private.
"""

from ._records import Connection, Datagram
from ._faults import Fault
from ._base import STOP_TIMEOUT
from ._records import WAIT_TIMEOUT
from ._stream import TestTCPServer, TestUnixStreamServer
from ._datagram import TestUDPServer, TestUnixDatagramServer
from ._process import ProcessServer
from ._smtp import Message, TestSMTPServer
from ._http import TestHTTPServer, TestUnixHTTPServer
from ._httpcanned import Expectation, UnexpectedRequest
from ._httprecords import Request
from ._logformats import SyslogMessage, log_records, parse_syslog, split_syslog_stream
from ._tls import (CA_CERT_FILE, CERT_NOT_AFTER, CLIENT_CERT_FILE, SERVER_CERT_FILE,
                   TLS_SCENARIOS, TLSInfo, client_ssl_context, server_ssl_context)

__version__ = "0.1.0"

__all__ = [
    "TestTCPServer", "TestUnixStreamServer",
    "TestUDPServer", "TestUnixDatagramServer",
    "ProcessServer",
    "TestSMTPServer", "Message",
    "TestHTTPServer", "TestUnixHTTPServer", "Request", "Expectation",
    "UnexpectedRequest",
    "Connection", "Datagram", "Fault",
    "STOP_TIMEOUT", "WAIT_TIMEOUT",
    "CA_CERT_FILE", "SERVER_CERT_FILE", "CLIENT_CERT_FILE", "CERT_NOT_AFTER",
    "TLS_SCENARIOS", "TLSInfo", "server_ssl_context", "client_ssl_context",
    "log_records", "parse_syslog", "split_syslog_stream", "SyslogMessage",
]
