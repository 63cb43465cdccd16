"""python -m testservers: debugging sinks, and the demo.

The sinks replace ``python -m smtpd -n -c DebuggingServer`` (removed in 3.12)
and its kin: each listens on loopback, prints its address first, then each
message, request, stream or datagram readably as it arrives, until Ctrl-C
or SIGTERM, and exits 0.

Every option is checked before anything listens, so a mistake gets
argparse's one-line error and exit status 2 at once.  The sinks themselves
and how they print are in ``_clisinks``.
"""

import argparse
import os
import re
import selectors
import signal
import socket
import sys
import threading

from ._clisinks import OWNED_FIELDS, SINKS, Out

PROG = "python -m testservers"
DEFAULT_HOST = "127.0.0.1"

# RFC 9110 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9110 5.5: a field value is VCHAR, obs-text (0x80-0xFF), SP and HTAB;
# never CR, LF or NUL, which would end the field or the head early.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")
# RFC 9110 15.3.5, 15.4.5: these responses end at their header section.
_NO_CONTENT = (204, 304)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, exit 2: a bad argument is not worth a usage dump.
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


# -- the types of the options ---------------------------------------------------

def _number(text, what, low, high):
    # int() also takes " 80", "8_0" and non-ASCII digits: only ASCII digits here.
    if not (text.isdigit() and text.isascii()):
        raise argparse.ArgumentTypeError("invalid %s %r: expected a number %d-%d"
                                          % (what, text, low, high))
    value = int(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError("invalid %s %d: expected %d-%d"
                                          % (what, value, low, high))
    return value


def _port(text):
    return _number(text, "port", 0, 65535)


def _status(text):
    if not (text.isdigit() and text.isascii()):
        raise argparse.ArgumentTypeError("invalid status %r: expected a number 200-599"
                                          % text)
    code = int(text)
    if 100 <= code < 200:
        # RFC 9110 15.2: a 1xx response is interim; the client keeps waiting
        # for a final one, which the sink would never send.
        raise argparse.ArgumentTypeError(
            "invalid status %d: a 1xx response is interim and the client would "
            "wait for a final one; expected 200-599" % code)
    if not 200 <= code <= 599:      # RFC 9110 15: 1xx to 5xx
        raise argparse.ArgumentTypeError("invalid status %d: expected 200-599" % code)
    return code


def _host(text):
    if not text:
        raise argparse.ArgumentTypeError(
            "expected an address or host name, got ''; for every interface "
            "give 0.0.0.0 or ::")
    return text


def _address(text):
    """Parse smtpd's positional ``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT``."""
    expected = "expected HOST:PORT, [IPV6]:PORT or :PORT, got %r" % text
    bracketed = re.match(r"\[([^\]]+)\]:([^:]*)\Z", text)
    if bracketed:
        host, port = bracketed.groups()
    else:
        host, sep, port = text.rpartition(":")
        if not sep or "[" in host or "]" in host:
            raise argparse.ArgumentTypeError(expected)
        if ":" in host:
            raise argparse.ArgumentTypeError(
                "%s: put an IPv6 address in brackets, as in [%s]:%s" % (expected, host, port))
    return host or DEFAULT_HOST, _port(port)


def _user(text):
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, got %r" % text)
    return user, password


def _header(text):
    name, sep, value = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME:VALUE, got %r" % text)
    name, value = name.strip(), value.strip(" \t")
    if not _TOKEN.match(name):
        raise argparse.ArgumentTypeError(
            "invalid header name %r: expected a token of letters, digits and "
            "!#$%%&'*+-.^_`|~ before the colon" % name)
    if name.lower() in OWNED_FIELDS:
        raise argparse.ArgumentTypeError(
            "%s is the sink's to send: it frames each response with "
            "Content-Length and keeps the connection open" % name)
    if not _FIELD_VALUE.match(value):
        raise argparse.ArgumentTypeError(
            "invalid value for header %s: %r; expected Latin-1 text without "
            "control characters (no CR, LF or NUL)" % (name, value))
    return name, value


# -- the parser -------------------------------------------------------------------

def _parser():
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser("demo", help="start every server, drive it with the stdlib "
                          "clients, print what arrived and how long it took")
    demo.set_defaults(func=None)
    helps = {"smtp": "print each mail (envelope, user, TLS, headers and body)",
             "http": "print each request and answer it",
             "tcp": "print each stream's bytes",
             "udp": "print each datagram",
             "syslog": "print each syslog message (RFC 3164 and 5424)"}
    for name, func in SINKS.items():
        p = sub.add_parser(name, help=helps[name], description=helps[name].capitalize() + ".")
        p.set_defaults(func=func, parser=p)    # its errors name the command
        if name == "smtp":
            p.add_argument("address", nargs="?", type=_address, metavar="HOST:PORT",
                           help="address to listen on, as smtpd took it: 127.0.0.1:8025, "
                           "[::1]:8025 or :8025 (instead of --host and --port)")
        # None, not the default, so that a clash with HOST:PORT or --unix shows.
        p.add_argument("--host", type=_host, help="address to listen on "
                       "(default: %s; use ::1 for IPv6)" % DEFAULT_HOST)
        p.add_argument("--port", type=_port,
                       help="port (default: 0, a free port, printed first)")
        if name in ("tcp", "udp", "syslog"):
            p.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
        if name in ("smtp", "http", "tcp"):
            p.add_argument("--tls", action="store_true",
                           help="implicit TLS with the bundled test certificate")
    smtp = sub.choices["smtp"]
    starttls = smtp.add_mutually_exclusive_group()
    starttls.add_argument("--starttls", action="store_true", help="offer STARTTLS")
    starttls.add_argument("--require-starttls", action="store_true",
                          help="offer STARTTLS and refuse mail before it (530)")
    smtp.add_argument("--auth", type=_user, action="append", default=[],
                      metavar="USER:PASSWORD",
                      help="accept AUTH (CRAM-MD5, PLAIN, LOGIN) for this user (repeatable)")
    smtp.add_argument("--require-auth", action="store_true",
                      help="refuse mail before AUTH (530); needs --auth")
    http = sub.choices["http"]
    http.add_argument("--status", type=_status, default=200,
                      help="status code, 200-599 (default: 200)")
    http.add_argument("--body", default="",
                      help="response body, sent as UTF-8 (default: empty)")
    http.add_argument("--header", type=_header, action="append", default=[],
                      metavar="NAME:VALUE", help="response header (repeatable)")
    syslog = sub.choices["syslog"]
    syslog.add_argument("--tcp", action="store_true",
                        help="a stream socket, octet counting or LF/NUL framing "
                        "(default: datagrams)")
    return parser


def _check(args, parser):
    """Refuse the combinations of options that cannot work; set args.address."""
    given = [option for option, value in (("--host", args.host), ("--port", args.port))
             if value is not None]
    if getattr(args, "unix", None) is not None:
        if given:
            parser.error("--unix and %s exclude each other: a Unix socket has no "
                         "host or port" % " and ".join(given))
        if not args.unix:
            parser.error("argument --unix: expected a path, got ''")
        args.address = args.unix
    elif getattr(args, "address", None) is not None:
        if given:
            parser.error("HOST:PORT and %s exclude each other; give one"
                         % " and ".join(given))
    else:
        args.address = (args.host or DEFAULT_HOST, args.port or 0)
    if args.command == "smtp":
        if args.tls and (args.starttls or args.require_starttls):
            parser.error("--tls and --%s exclude each other: implicit TLS or "
                         "STARTTLS, choose one"
                         % ("starttls" if args.starttls else "require-starttls"))
        if args.require_auth and not args.auth:
            parser.error("--require-auth needs --auth USER:PASSWORD: with no user "
                         "to log in as, every mail would be refused")
        users = [user for user, _ in args.auth]
        for user in users:
            if users.count(user) > 1:
                parser.error("argument --auth: user %r is given twice" % user)
    if args.command == "http" and args.status in _NO_CONTENT and args.body:
        parser.error("--status %d answers with no body (RFC 9110 %s); leave out --body"
                     % (args.status, "15.3.5" if args.status == 204 else "15.4.5"))


# -- running a sink -----------------------------------------------------------------

def _ignore(signum, frame):
    """Do nothing: the C-level handler has already written to the wakeup fd."""


class _Wakeup:
    """Wake the main thread for SIGINT, SIGTERM or the end of the reader.

    A signal handler runs in the main thread between any two bytecodes,
    maybe while that thread holds a lock (an Event's, the output's), so it
    must take none and raise nothing.  Python's C-level handler writes
    the signal number to the fd given to :func:`signal.set_wakeup_fd`;
    the main thread blocks on the other end of that socket pair in a
    selector, and the Python-level handler does nothing.  Other threads
    write to the same socket to end the sink.
    """

    def __init__(self):
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._reader, selectors.EVENT_READ)
        self._previous = {}
        self._previous_fd = None

    def install(self):
        """Route SIGINT and SIGTERM here; only the main thread can."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(),
                                                 warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:     # as under nohup: stay ignored
                self._previous[signum] = signal.signal(signum, _ignore)

    def wake(self):
        """End :meth:`wait`; safe from any thread, any number of times."""
        try:
            self._writer.send(b"\0")
        except OSError:
            pass        # the buffer is full (it is awake) or the sink has ended

    def wait(self):
        """Block until a signal arrives or :meth:`wake` is called."""
        while not self._selector.select():
            pass

    def close(self):
        """Restore the signal handlers and the wakeup fd; close the sockets."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
        self._selector.close()
        self._reader.close()
        self._writer.close()


def _describe(address):
    return address if isinstance(address, str) else "%s port %s" % address


def _serve(args, parser):
    _check(args, parser)
    wakeup = _Wakeup()
    try:
        wakeup.install()
        out = Out(sys.stdout, wakeup.wake)
        try:
            server = args.func(args, out)
        except OSError as exc:
            parser.error("cannot listen on %s: %s" % (_describe(args.address),
                                                      exc.strerror or exc))
        except (TypeError, ValueError) as exc:  # the server refused an option
            parser.error(str(exc))
        try:
            server.start()
            where = server.server_address if server.port is None else "%s port %d" % (
                server.server_address[0], server.port)
            out("%s %s: listening on %s" % (PROG, args.command, where))
            wakeup.wait()
        finally:
            errors = _stop(server)
    finally:
        wakeup.close()
    if out.broken:
        # As the docs of signal advise: no flush at exit into the broken pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for exc in errors:      # a sink's own failures
        sys.stderr.write("%s: error in the %s sink: %r\n" % (PROG, args.command, exc))
    return 1 if errors else 0


def _stop(server):
    """Stop *server*; return every error it met, the one stop() raised first."""
    try:
        server.stop()
        raised = None
    except Exception as exc:        # a TimeoutError, or the first handler error
        raised = exc
    errors = server.take_errors()
    if raised is not None and not any(exc is raised for exc in errors):
        errors.insert(0, raised)
    return errors


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo
        return run_demo(sys.stdout)
    return _serve(args, args.parser)
