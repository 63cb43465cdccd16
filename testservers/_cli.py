"""python -m testservers: debugging sinks, and the demo.

The sinks replace ``python -m smtpd -n -c DebuggingServer`` (removed in 3.12)
and its kin: each listens on loopback, prints its address first, then each
message, request, stream or datagram readably as it arrives, until Ctrl-C
or SIGTERM, and exits 0.
"""

import argparse
import os
import signal
import sys
import threading

from ._logformats import parse_syslog, split_syslog_stream

PROG = "python -m testservers"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, exit 2: a bad argument is not worth a usage dump.
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def _port(text):
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid port %r: not a number" % text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("invalid port %d: not in 0..65535" % port)
    return port


def _user(text):
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, got %r" % text)
    return user, password


class _Out:
    """Print whole blocks from any thread, flushed, never interleaved.

    When the reader goes away (``... | head -1``), it sets *gone*, which
    ends the sink, instead of failing in every handler.
    """

    def __init__(self, stream, gone):
        self.stream = stream
        self.gone = gone
        self.broken = False
        self.lock = threading.Lock()

    def __call__(self, *lines):
        with self.lock:
            if self.gone.is_set():
                return
            try:
                for line in lines:
                    self.stream.write(line + "\n")
                self.stream.flush()
            except OSError:         # BrokenPipeError: nobody reads stdout
                self.broken = True
                self.gone.set()


def _text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


# -- the sinks --------------------------------------------------------------------

def _smtp(args, out):
    from ._smtp import TestSMTPServer

    def handler(peer, mailfrom, rcpttos, data):
        out("---------- MESSAGE FOLLOWS ----------",
            "peer: %s  from: %s  to: %s" % (peer, mailfrom, ", ".join(rcpttos)),
            _text(data).rstrip("\n"),
            "------------ END MESSAGE ------------")
    return TestSMTPServer(
        args.address, handler, auth=dict(args.auth) if args.auth else None,
        auth_required=bool(args.auth) and args.require_auth,
        starttls="required" if args.require_starttls else args.starttls,
        tls=args.tls)


def _http(args, out):
    from ._http import TestHTTPServer
    headers = dict(h.split(":", 1) for h in args.header)

    def handler(request):
        body = request.body()
        out("---------- %s %s %s from %s" % (request.command, request.path,
                                              request.request_version,
                                              request.client_address),
            *["%s: %s" % item for item in request.headers.items()])
        if body:
            out("", _text(body))
        payload = args.body.encode("utf-8")
        request.send_response(args.status)
        for name, value in headers.items():
            request.send_header(name.strip(), value.strip())
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
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
        out(str(parse_syslog(data)))

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


def _parser():
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser("demo", help="start every server, drive it with the stdlib "
                          "clients, print what arrived and how long it took")
    demo.set_defaults(func=None)
    helps = {"smtp": "print each mail (headers and body)",
             "http": "print each request and answer it",
             "tcp": "print each stream's bytes",
             "udp": "print each datagram",
             "syslog": "print each syslog message (RFC 3164 and 5424)"}
    for name, func in SINKS.items():
        p = sub.add_parser(name, help=helps[name], description=helps[name].capitalize() + ".")
        p.set_defaults(func=func)
        p.add_argument("--host", default="127.0.0.1", help="address to listen on "
                       "(default: 127.0.0.1; use ::1 for IPv6)")
        p.add_argument("--port", type=_port, default=0,
                       help="port (default: 0, a free port, printed first)")
        if name in ("tcp", "udp", "syslog"):
            p.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
        if name in ("smtp", "http", "tcp"):
            p.add_argument("--tls", action="store_true",
                           help="implicit TLS with the bundled test certificate")
    smtp = sub.choices["smtp"]
    smtp.add_argument("--starttls", action="store_true", help="offer STARTTLS")
    smtp.add_argument("--require-starttls", action="store_true",
                      help="refuse mail before STARTTLS (530)")
    smtp.add_argument("--auth", type=_user, action="append", metavar="USER:PASSWORD",
                      help="accept AUTH PLAIN/LOGIN for this user (repeatable)")
    smtp.add_argument("--require-auth", action="store_true",
                      help="refuse mail before AUTH (530)")
    http = sub.choices["http"]
    http.add_argument("--status", type=int, default=200, help="status code (default: 200)")
    http.add_argument("--body", default="", help="response body (default: empty)")
    http.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                      help="response header (repeatable)")
    syslog = sub.choices["syslog"]
    syslog.add_argument("--tcp", action="store_true",
                        help="a stream socket, octet counting or LF/NUL framing "
                        "(default: datagrams)")
    return parser


def _serve(args, parser):
    stop = threading.Event()
    out = _Out(sys.stdout, stop)
    if getattr(args, "unix", None):
        args.address = args.unix
    else:
        args.address = (args.host, args.port)
    if args.command == "http":
        for header in args.header:
            if ":" not in header:
                parser.error("argument --header: expected NAME:VALUE, got %r" % header)
    try:
        server = args.func(args, out)
    except OSError as exc:
        parser.error("cannot listen on %s: %s" % (
            args.address if isinstance(args.address, str) else "%s port %s" % args.address,
            exc.strerror or exc))
    except ValueError as exc:       # options that exclude each other
        parser.error(str(exc))
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        server.start()
        where = server.server_address if server.port is None else "%s port %d" % (
            server.server_address[0], server.port)
        out("%s %s: listening on %s" % (PROG, args.command, where))
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        errors = server.take_errors()
        server.stop()
    if out.broken:
        # As the docs of signal advise: no flush at exit into the broken pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for exc in errors:      # a sink's own failures
        sys.stderr.write("%s: error in the %s sink: %r\n" % (PROG, args.command, exc))
    return 1 if errors else 0


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo
        return run_demo(sys.stdout)
    return _serve(args, parser)
