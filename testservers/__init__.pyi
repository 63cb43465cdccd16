# Type information for the public API of testservers, exactly __all__.
#
# One stub for the package rather than annotations in the modules: the code
# keeps the standard library's unannotated style, and the private modules
# behind __all__ can be split, merged and renamed without touching it.  The
# classes whose names start with an underscore exist only here, to share
# declarations; import nothing from them.  tests/test_typing.py fails when
# this file and the code disagree on a public name or a parameter: update it
# with the code.  Valid for Python 3.8: typing's forms, no "X | Y".

import email.message
import http.client
import http.server
import logging
import os
import smtplib
import socket as _socket  # the servers have an attribute named socket
import socketserver
import ssl
import subprocess
import threading
import unittest
from typing import (Any, BinaryIO, Callable, ClassVar, Dict, Iterable, List, Mapping,
                    Optional, Pattern, Tuple, Type, TypeVar, Union)

__version__: str

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

_T = TypeVar("_T")
_S = TypeVar("_S", bound="_Server")

# What a constructor listens on: None (127.0.0.1, a free port), a port,
# (host, port), an IPv6 (host, port, flowinfo, scope_id), or a Unix path.
_ListenAddr = Union[None, int, Tuple[str, int], Tuple[str, int, int, int],
                    str, bytes, "os.PathLike[str]"]
_UnixAddr = Union[None, str, bytes, "os.PathLike[str]"]
_Path = Union[str, "os.PathLike[str]"]

# Socket addresses vary with the family (a tuple, a path, bytes), as in
# typeshed's socket module.
_Address = Any

_StreamHandler = Union[None, Callable[[socketserver.StreamRequestHandler], object],
                       Type[socketserver.BaseRequestHandler]]
_DatagramHandler = Union[None, Callable[[socketserver.DatagramRequestHandler], object],
                         Type[socketserver.BaseRequestHandler]]


class _HTTPRequestHandler(http.server.BaseHTTPRequestHandler):
    # What an HTTP handler is called with: a BaseHTTPRequestHandler with the
    # server's additions (a name of the stub only; the class is private).
    record: "Request"
    def body(self) -> bytes: ...
    def respond(self, status: int = ..., *, headers: Any = ..., body: Any = ...,
                json: Any = ..., chunk_delay: float = ...,
                truncate: Optional[int] = ...) -> None: ...


_HTTPHandler = Union[None, Callable[[_HTTPRequestHandler], object],
                     Type[http.server.BaseHTTPRequestHandler]]
# handler(peer, mailfrom, rcpttos, data) -> None or a reply line; data is a
# str with decode_data true, else bytes.
_SMTPHandler = Optional[Callable[[Any, str, List[str], Any], Optional[str]]]
_SMTPAuth = Union[None, Mapping[str, str], Callable[[str, str], object]]
# A hook (on_mail, on_rcpt, on_data, on_auth) returns None or a reply line.
_SMTPHook = Optional[Callable[..., Optional[str]]]
_SMTPTable = Union[None, Mapping[str, Any], Callable[[str], Any]]

STOP_TIMEOUT: float
WAIT_TIMEOUT: float
CA_CERT_FILE: str
SERVER_CERT_FILE: str
CLIENT_CERT_FILE: str
CERT_NOT_AFTER: str
TLS_SCENARIOS: Tuple[str, ...]


# -- records --------------------------------------------------------------

class TLSInfo:
    version: Optional[str]
    cipher: Optional[str]
    server_name: Optional[str]
    alpn_offered: Tuple[str, ...]
    alpn_protocol: Optional[str]
    client_cert: Optional[Dict[str, Any]]
    client_subject: Optional[Dict[str, str]]
    handshake_error: Optional[str]
    hello_read: bool
    def __init__(self) -> None: ...


class Connection:
    id: int
    peer: _Address
    opened: float
    closed: Optional[float]
    bytes_received: int
    bytes_sent: int
    closed_by: Optional[str]
    reset: bool
    tls: bool
    tls_info: Optional[TLSInfo]
    fault: Optional[str]
    def __init__(self, id: int, peer: _Address, record_data: bool = ...) -> None: ...
    @property
    def data(self) -> Optional[bytes]: ...


class Datagram:
    data: bytes
    sender: _Address
    received: float
    def __init__(self, data: bytes, sender: _Address) -> None: ...


class Message:
    peer: _Address
    mailfrom: str
    rcpttos: List[str]
    data: bytes
    user: Optional[str]
    tls: bool
    helo: Optional[str]
    esmtp: bool
    mail_options: List[str]
    rcpt_options: List[List[str]]
    smtputf8: bool
    dsn: Optional[Dict[str, Any]]
    reply: Optional[str]
    connection_id: int
    received: float
    def __init__(self, peer: _Address, envelope: Any, connection_id: int,
                 esmtp: bool = ...) -> None: ...
    @property
    def text(self) -> str: ...
    @property
    def message(self) -> email.message.EmailMessage: ...


class Request:
    method: Optional[str]
    target: Optional[str]
    path: Optional[str]
    query: str
    version: Optional[str]
    headers: http.client.HTTPMessage
    body: bytes
    trailers: List[Tuple[str, str]]
    client_address: _Address
    tls: bool
    connection: Optional[Connection]
    rejected: Optional[str]
    status: Optional[int]
    received: float
    def __init__(self, method: Optional[str], target: Optional[str], version: Optional[str],
                 headers: Optional[http.client.HTTPMessage], body: bytes,
                 client_address: _Address, tls: bool, connection: Optional[Connection],
                 rejected: Optional[str] = ...,
                 trailers: Iterable[Tuple[str, str]] = ...) -> None: ...
    @property
    def params(self) -> Dict[str, List[str]]: ...
    def text(self) -> str: ...
    def form(self) -> Dict[str, List[str]]: ...
    def files(self) -> Dict[str, List[Any]]: ...
    def json(self) -> Any: ...
    @property
    def body_size(self) -> int: ...
    @property
    def spooled(self) -> bool: ...
    def body_file(self) -> BinaryIO: ...


class UnexpectedRequest(AssertionError): ...


class Expectation:
    method: Optional[str]
    path: Union[str, Pattern[str]]
    query: Any
    match_headers: Any
    match_body: Any
    match_json: Any
    match_form: Any
    match: Optional[Callable[[Request], object]]
    handler: _HTTPHandler
    status: Optional[int]
    headers: Any
    body: Any
    chunk_delay: Optional[float]
    truncate: Optional[int]
    delay: float
    times: Optional[int]
    ordered: bool
    def __init__(self, server: Any, matcher: Any, reply: Any, handler: _HTTPHandler,
                 delay: float, times: Optional[int], ordered: bool) -> None: ...
    @property
    def requests(self) -> List[Request]: ...
    @property
    def count(self) -> int: ...
    @property
    def remaining(self) -> Optional[int]: ...
    def wait(self, count: Optional[int] = ..., timeout: Optional[float] = ...) -> List[Request]: ...
    async def async_wait(self, count: Optional[int] = ...,
                         timeout: Optional[float] = ...) -> List[Request]: ...


class Fault:
    server: Any
    name: str
    def __init__(self, server: Any, name: str,
                 undo: Optional[Callable[[], object]] = ...) -> None: ...
    def undo(self) -> None: ...
    def __enter__(self) -> "Fault": ...
    def __exit__(self, *exc_info: object) -> None: ...


class SyslogMessage:
    raw: bytes
    priority: Optional[int]
    facility: Optional[int]
    severity: Optional[int]
    version: Optional[int]
    timestamp: Optional[str]
    hostname: Optional[str]
    app_name: Optional[str]
    procid: Optional[str]
    msgid: Optional[str]
    structured_data: Optional[str]
    text: str
    def __init__(self, raw: bytes) -> None: ...
    @property
    def facility_name(self) -> Optional[str]: ...
    @property
    def severity_name(self) -> Optional[str]: ...


# -- what every server has ------------------------------------------------

class _Server:
    address_family: ClassVar[_socket.AddressFamily]
    socket_type: ClassVar[_socket.SocketKind]
    unix_only: ClassVar[bool]
    request_queue_size: ClassVar[int]
    handler_class_base: ClassVar[Optional[Type[socketserver.BaseRequestHandler]]]
    handler_params: ClassVar[Tuple[str, ...]]
    max_records: int
    poll_interval: float
    ready: threading.Event
    socket: Optional[_socket.socket]
    server_address: _Address
    family: _socket.AddressFamily
    port: Optional[int]
    @property
    def server_port(self) -> Optional[int]: ...
    def start(self: _S) -> _S: ...
    async def async_start(self: _S) -> _S: ...
    def stop(self, timeout: Optional[float] = ...) -> None: ...
    async def async_stop(self, timeout: Optional[float] = ...) -> None: ...
    def restart(self: _S, timeout: Optional[float] = ...) -> _S: ...
    def start_for(self: _S, testcase: unittest.TestCase) -> _S: ...
    @classmethod
    def in_process(cls, *args: Any, **kwargs: Any) -> "ProcessServer": ...
    def wait_for(self, predicate: Callable[[], Optional[_T]], timeout: Optional[float] = ...,
                 what: str = ...) -> _T: ...
    async def async_wait_for(self, predicate: Callable[[], Optional[_T]],
                             timeout: Optional[float] = ..., what: str = ...) -> _T: ...
    @property
    def errors(self) -> List[BaseException]: ...
    def take_errors(self) -> List[BaseException]: ...
    def raise_errors(self) -> None: ...
    def clear_records(self) -> None: ...
    def refuse(self) -> Fault: ...
    def clear_faults(self) -> None: ...
    def __enter__(self: _S) -> _S: ...
    def __exit__(self, *exc_info: object) -> None: ...
    async def __aenter__(self: _S) -> _S: ...
    async def __aexit__(self, *exc_info: object) -> None: ...


class _StreamServer(_Server):
    max_data: int
    record_data: ClassVar[bool]
    client_speaks_first: ClassVar[bool]
    sslctx: Optional[ssl.SSLContext]
    @property
    def connections(self) -> List[Connection]: ...
    def wait_connections(self, count: int = ..., timeout: Optional[float] = ...,
                         closed: bool = ...) -> List[Connection]: ...
    async def async_wait_connections(self, count: int = ..., timeout: Optional[float] = ...,
                                     closed: bool = ...) -> List[Connection]: ...
    def drop(self, reset: bool = ...) -> Fault: ...
    def delay(self, accept: float = ..., reply: float = ...) -> Fault: ...
    def drip(self, chunk: int = ..., interval: float = ...) -> Fault: ...
    def garbage(self, data: bytes = ...) -> Fault: ...
    def hang_up(self) -> Fault: ...


# -- the servers ----------------------------------------------------------

class TestTCPServer(_StreamServer):
    port: int
    def __init__(self, listen_addr: _ListenAddr = ..., handler: _StreamHandler = ...,
                 poll_interval: float = ..., *, sslctx: Optional[ssl.SSLContext] = ...,
                 tls: Union[bool, str] = ...,
                 client_auth: Union[bool, str] = ...) -> None: ...
    @property
    def server_port(self) -> int: ...


class TestUnixStreamServer(TestTCPServer):
    port: None  # type: ignore[assignment]
    def __init__(self, listen_addr: _UnixAddr = ..., handler: _StreamHandler = ...,
                 poll_interval: float = ..., *, sslctx: Optional[ssl.SSLContext] = ...,
                 tls: Union[bool, str] = ...,
                 client_auth: Union[bool, str] = ...) -> None: ...
    @property
    def server_port(self) -> None: ...  # type: ignore[override]


class TestUDPServer(_Server):
    port: int
    max_packet_size: ClassVar[int]
    dropped_datagrams: List[Datagram]
    def __init__(self, listen_addr: _ListenAddr = ..., handler: _DatagramHandler = ...,
                 poll_interval: float = ...) -> None: ...
    @property
    def server_port(self) -> int: ...
    @property
    def datagrams(self) -> List[Datagram]: ...
    def wait_datagrams(self, count: int = ..., timeout: Optional[float] = ...) -> List[Datagram]: ...
    async def async_wait_datagrams(self, count: int = ...,
                                   timeout: Optional[float] = ...) -> List[Datagram]: ...
    def drop_datagrams(self, count: int) -> Fault: ...
    @property
    def kernel_drops(self) -> Optional[int]: ...


class TestUnixDatagramServer(TestUDPServer):
    port: None  # type: ignore[assignment]
    def __init__(self, listen_addr: _UnixAddr = ..., handler: _DatagramHandler = ...,
                 poll_interval: float = ...) -> None: ...
    @property
    def server_port(self) -> None: ...  # type: ignore[override]


class TestSMTPServer(_StreamServer):
    port: int
    hostname: str
    decode_data: bool
    auth: _SMTPAuth
    auth_required: bool
    auth_mechanisms: Optional[Iterable[Any]]
    starttls: Union[bool, str]
    starttls_context: Optional[ssl.SSLContext]
    size_limit: int
    max_recipients: int
    timeout: Optional[float]
    esmtp: bool
    dsn: bool
    disable_extensions: Iterable[str]
    ehlo_keywords: Iterable[str]
    vrfy: _SMTPTable
    expn: _SMTPTable
    help_text: Optional[str]
    on_mail: _SMTPHook
    on_rcpt: _SMTPHook
    on_data: _SMTPHook
    on_auth: _SMTPHook
    def __init__(self, listen_addr: _ListenAddr = ..., handler: _SMTPHandler = ...,
                 poll_interval: float = ..., sockmap: object = ..., *, hostname: str = ...,
                 decode_data: bool = ..., auth: _SMTPAuth = ..., auth_required: bool = ...,
                 auth_mechanisms: Optional[Iterable[Any]] = ...,
                 starttls: Union[bool, str] = ...,
                 starttls_context: Union[ssl.SSLContext, str, None] = ...,
                 sslctx: Optional[ssl.SSLContext] = ..., tls: Union[bool, str] = ...,
                 client_auth: Union[bool, str] = ...,
                 size_limit: int = ..., max_recipients: int = ...,
                 timeout: Optional[float] = ..., esmtp: bool = ..., dsn: bool = ...,
                 disable_extensions: Iterable[str] = ..., ehlo_keywords: Iterable[str] = ...,
                 vrfy: _SMTPTable = ..., expn: _SMTPTable = ...,
                 help_text: Optional[str] = ..., on_mail: _SMTPHook = ...,
                 on_rcpt: _SMTPHook = ..., on_data: _SMTPHook = ...,
                 on_auth: _SMTPHook = ...) -> None: ...
    @property
    def server_port(self) -> int: ...
    @property
    def messages(self) -> List[Message]: ...
    def wait_messages(self, count: int = ..., timeout: Optional[float] = ...) -> List[Message]: ...
    async def async_wait_messages(self, count: int = ...,
                                  timeout: Optional[float] = ...) -> List[Message]: ...
    def smtp_client(self, timeout: float = ...,
                    context: Optional[ssl.SSLContext] = ...) -> smtplib.SMTP: ...
    def transcript(self, connection: Union[None, Connection, int] = ...) -> List[str]: ...
    def answer(self, command: str,
               reply: Union[str, List[str], Callable[[str], Union[None, str, List[str]]]],
               times: Optional[int] = ..., close: bool = ...) -> Fault: ...


class TestHTTPServer(_StreamServer):
    port: int
    log: bool
    allow_unmatched: bool
    strict: bool
    keep_alive: bool
    close_unframed: bool
    request_timeout: Optional[float]
    keep_alive_timeout: Optional[float]
    max_request_line: int
    max_header_size: int
    max_headers: int
    max_body_size: Optional[int]
    spool_threshold: int
    def __init__(self, listen_addr: _ListenAddr = ..., handler: _HTTPHandler = ...,
                 poll_interval: float = ..., log: bool = ...,
                 sslctx: Optional[ssl.SSLContext] = ..., *, tls: Union[bool, str] = ...,
                 client_auth: Union[bool, str] = ...,
                 allow_unmatched: bool = ..., strict: bool = ..., keep_alive: bool = ...,
                 close_unframed: bool = ..., request_timeout: Optional[float] = ...,
                 keep_alive_timeout: Optional[float] = ..., max_request_line: int = ...,
                 max_header_size: int = ..., max_headers: int = ...,
                 max_body_size: Optional[int] = ...,
                 spool_threshold: int = ...) -> None: ...
    @property
    def server_port(self) -> int: ...
    @property
    def requests(self) -> List[Request]: ...
    def wait_requests(self, count: int = ..., timeout: Optional[float] = ...) -> List[Request]: ...
    async def async_wait_requests(self, count: int = ...,
                                  timeout: Optional[float] = ...) -> List[Request]: ...
    def url(self, path: str = ...) -> str: ...
    def http_connection(self, timeout: float = ...,
                        context: Optional[ssl.SSLContext] = ...) -> http.client.HTTPConnection: ...
    def expect(self, method: Optional[str], path: Union[str, Pattern[str]], *,
               query: Union[None, str, Mapping[str, Any]] = ...,
               match_headers: Optional[Mapping[str, Union[None, str, Pattern[str]]]] = ...,
               match_body: Union[None, bytes, str] = ..., match_json: Any = ...,
               match_form: Optional[Mapping[str, Any]] = ...,
               match: Optional[Callable[[Request], object]] = ...,
               status: int = ...,
               headers: Union[None, Mapping[str, str], Iterable[Tuple[str, str]]] = ...,
               body: Union[bytes, str, Iterable[Union[bytes, str]]] = ...,
               json: Any = ..., handler: _HTTPHandler = ..., delay: float = ...,
               chunk_delay: float = ..., truncate: Optional[int] = ...,
               times: Optional[int] = ..., ordered: bool = ...) -> Expectation: ...
    @property
    def expectations(self) -> List[Expectation]: ...
    def check_expectations(self) -> None: ...
    def clear_expectations(self) -> None: ...


class TestUnixHTTPServer(TestHTTPServer):
    port: None  # type: ignore[assignment]
    def __init__(self, listen_addr: _UnixAddr = ..., handler: _HTTPHandler = ...,
                 poll_interval: float = ..., log: bool = ...,
                 sslctx: Optional[ssl.SSLContext] = ..., *, tls: Union[bool, str] = ...,
                 client_auth: Union[bool, str] = ...,
                 allow_unmatched: bool = ..., strict: bool = ..., keep_alive: bool = ...,
                 close_unframed: bool = ..., request_timeout: Optional[float] = ...,
                 keep_alive_timeout: Optional[float] = ..., max_request_line: int = ...,
                 max_header_size: int = ..., max_headers: int = ...,
                 max_body_size: Optional[int] = ...,
                 spool_threshold: int = ...) -> None: ...
    @property
    def server_port(self) -> None: ...  # type: ignore[override]


class ProcessServer:
    # Stands in for a server in a child process: what the class below does
    # not declare is forwarded to the child, and typed Any.
    ready: threading.Event
    process: Optional["subprocess.Popen[bytes]"]
    def __init__(self, cls: Type[_Server], *args: Any, **kwargs: Any) -> None: ...
    @property
    def port(self) -> Optional[int]: ...
    @property
    def server_port(self) -> Optional[int]: ...
    @property
    def server_address(self) -> _Address: ...
    @property
    def family(self) -> _socket.AddressFamily: ...
    def start(self) -> "ProcessServer": ...
    def stop(self, timeout: Optional[float] = ...) -> None: ...
    def restart(self, timeout: Optional[float] = ...) -> "ProcessServer": ...
    def start_for(self, testcase: unittest.TestCase) -> "ProcessServer": ...
    def __enter__(self) -> "ProcessServer": ...
    def __exit__(self, *exc_info: object) -> None: ...
    async def async_start(self) -> "ProcessServer": ...
    async def async_stop(self, timeout: Optional[float] = ...) -> None: ...
    async def __aenter__(self) -> "ProcessServer": ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...


# -- functions ------------------------------------------------------------

def server_ssl_context(certfile: Optional[_Path] = ..., keyfile: Optional[_Path] = ..., *,
                       scenario: Optional[str] = ...,
                       client_auth: Union[bool, str] = ...) -> ssl.SSLContext: ...
def client_ssl_context(cafile: Optional[_Path] = ..., *,
                       client_cert: Union[bool, _Path] = ...) -> ssl.SSLContext: ...
def log_records(data: bytes) -> List[logging.LogRecord]: ...
def parse_syslog(data: bytes) -> SyslogMessage: ...
def split_syslog_stream(buffer: bytes) -> Tuple[List[bytes], bytes]: ...
