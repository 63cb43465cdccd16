"""The sinks of ``python -m testservers``: servers whose handlers print.

Each ``SINKS`` entry builds a server from the checked options (see
``_cli``) and an :class:`Out`.  Whatever a client sent is printed so that
it cannot drive the terminal: text that is printable is shown as it is,
anything else as a Python literal, as the tcp and udp sinks show bytes.
"""

import threading

from ._logformats import parse_syslog, split_syslog_stream

# Fields that frame the response or manage the connection: the http sink
# sends them and --header may not.  Content-Length and Transfer-Encoding
# (RFC 9112 6), Connection and the Keep-Alive it names (RFC 9110 7.6.1),
# Upgrade (7.8), Trailer (6.6.2) and TE (10.1.4).
OWNED_FIELDS = frozenset(["content-length", "transfer-encoding", "connection",
                          "keep-alive", "upgrade", "trailer", "te"])
# RFC 9110 8.6: no Content-Length on a 204; on a 304 it would describe the
# body a 200 would have had, which the sink does not know.
_NO_LENGTH = (204, 304)


class Out:
    """Print whole blocks from any thread, flushed, never interleaved.

    When the reader goes away (``... | head -1``), call *gone* once, which
    ends the sink, instead of failing in every handler.
    """

    def __init__(self, stream, gone):
        self.stream = stream
        self.gone = gone
        self.broken = False
        self.lock = threading.Lock()

    def __call__(self, *lines):
        with self.lock:
            if self.broken:
                return
            try:
                for line in lines:
                    self.stream.write(line + "\n")
                self.stream.flush()
            except OSError:         # BrokenPipeError: nobody reads stdout
                self.broken = True
                self.gone()


def _printable(text):
    return text.replace("\t", " ").isprintable()


def safe(text):
    """Return *text* if it is printable, else its repr (control characters escaped)."""
    return text if _printable(text) else repr(text)


def shown(data):
    """Return the lines to print for a body or a message.

    Printable UTF-8 text (tabs and line ends allowed) is shown line by
    line; anything else (a control character, an escape sequence,
    invalid UTF-8) as one bytes literal.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [repr(data)]
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and lines[-1] == "":
        del lines[-1]               # the final line end
    if all(_printable(line) for line in lines):
        return lines
    return [repr(data)]


# -- the sinks --------------------------------------------------------------------

def _smtp(args, out):
    from ._smtp import TestSMTPServer
    server = None
    logins = {}     # Connection.id -> (user, whether TLS was on when they logged in)

    def connection(peer):
        # A peer address names one open connection at a time.
        for record in reversed(server.connections):
            if record.peer == peer and record.closed is None:
                return record
        return None

    def on_auth(peer, user, mechanism):
        record = connection(peer)
        if record is not None:
            logins[record.id] = (user, record.tls)
        # None: the login goes ahead (235)

    def handler(peer, mailfrom, rcpttos, data):
        record = connection(peer)
        tls = record is not None and record.tls
        user, tls_then = logins.get(record.id, (None, tls)) if record else (None, tls)
        if tls_then != tls:
            user = None     # STARTTLS after AUTH forgets the login (RFC 3207 4.2)
        out("---------- MESSAGE FOLLOWS ----------",
            "peer: %s  user: %s  tls: %s" % (peer, "-" if user is None else safe(user),
                                            "yes" if tls else "no"),
            "from: %s  to: %s" % (safe(mailfrom), ", ".join(safe(r) for r in rcpttos)),
            *shown(data) + ["------------ END MESSAGE ------------"])
    server = TestSMTPServer(
        args.address, handler, decode_data=False, auth=dict(args.auth) or None,
        auth_required=args.require_auth, on_auth=on_auth if args.auth else None,
        starttls="required" if args.require_starttls else args.starttls,
        tls=args.tls)
    return server


def _http(args, out):
    from ._http import TestHTTPServer
    # The bytes given on the command line, even those that are not UTF-8.
    payload = args.body.encode("utf-8", "surrogateescape")
    given = {name.lower() for name, _ in args.header}

    def handler(request):
        body = request.body()
        out("---------- %s %s %s from %s" % (request.command, safe(request.path),
                                              request.request_version,
                                              request.client_address),
            *["%s: %s" % (safe(name), safe(value))
              for name, value in request.headers.items()])
        if body:
            out("", *shown(body))
        # Server and Date as send_response() sends them, unless --header gave them.
        request.send_response_only(args.status)
        if "server" not in given:
            request.send_header("Server", request.version_string())
        if "date" not in given:
            request.send_header("Date", request.date_time_string())
        for name, value in args.header:
            request.send_header(name, value)
        if args.status not in _NO_LENGTH:
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)    # nothing for HEAD: the server drops it
    return TestHTTPServer(args.address, handler, tls=args.tls)


def _tcp(args, out):
    from ._stream import TestTCPServer, TestUnixStreamServer

    def handler(request):
        name = request.client_address or "a Unix client"
        out("---------- connection from %s" % (name,))
        while True:
            data = request.connection.recv(65536)
            if not data:
                break
            out(repr(data))
        out("---------- %s closed" % (name,))
    cls = TestUnixStreamServer if args.unix else TestTCPServer
    return cls(args.address, handler, tls=args.tls)


def _udp(args, out):
    from ._datagram import TestUDPServer, TestUnixDatagramServer

    def handler(request):
        out("%s: %r" % (request.client_address or "-", request.packet))
    cls = TestUnixDatagramServer if args.unix else TestUDPServer
    return cls(args.address, handler)


def _syslog(args, out):
    from ._datagram import TestUDPServer, TestUnixDatagramServer
    from ._stream import TestTCPServer, TestUnixStreamServer

    def show(data):
        out(safe(str(parse_syslog(data))))

    if args.tcp:
        def handler(request):
            rest = b""
            while True:
                data = request.connection.recv(65536)
                if not data:
                    break
                messages, rest = split_syslog_stream(rest + data)
                for message in messages:
                    show(message)
            if rest.strip(b"\0\r\n"):
                show(rest)              # unframed: the end of the stream ends it
        cls = TestUnixStreamServer if args.unix else TestTCPServer
    else:
        def handler(request):
            show(request.packet)
        cls = TestUnixDatagramServer if args.unix else TestUDPServer
    return cls(args.address, handler)


SINKS = {"smtp": _smtp, "http": _http, "tcp": _tcp, "udp": _udp, "syslog": _syslog}
