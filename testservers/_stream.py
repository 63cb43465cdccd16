"""Stream servers: a thread per connection, optional TLS.

:class:`_StreamServer` accepts on the service thread and runs each
connection on a thread of its own, through a socket that counts (and for
the raw TCP servers, records) what passes.  :class:`TestTCPServer` and
:class:`TestUnixStreamServer` hand each connection to a
:class:`socketserver.StreamRequestHandler`, as CPython's test_logging does.
"""

import errno
import os
import socket
import socketserver
import time

try:
    import ssl
except ImportError:         # a Python built without OpenSSL
    ssl = None

from ._base import _BaseServer, _log
from ._loop import _is_disconnect
from ._faults import GARBAGE, Fault, _check_int, _check_number
from ._pump import _LINGER_ZERO, _CountingSocket
from ._records import Connection, _awaitable
from ._tls import _client_auth_option

if ssl is not None:
    from ._pump import _CountingSSLSocket

__all__ = ["TestTCPServer", "TestUnixStreamServer"]

#: How long a client may take to complete a TLS handshake.
HANDSHAKE_TIMEOUT = 10.0

#: How many received bytes a :class:`Connection` keeps in ``data``.
MAX_DATA = 64 * 1024 * 1024


# accept() errors that mean "try again later", not "the server is broken".
_TRANSIENT_ACCEPT = {errno.ECONNABORTED, errno.EPROTO, errno.EMFILE,
                     errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _tls_option(sslctx, tls):
    """Check the *sslctx* and *tls* options; return the context to serve."""
    if sslctx is not None and (ssl is None or not isinstance(sslctx, ssl.SSLContext)):
        raise TypeError("sslctx must be an ssl.SSLContext or None, not %r" % (sslctx,))
    if not isinstance(tls, (bool, str)):
        raise TypeError("tls must be a bool or a str, not %r" % (tls,))
    if tls is False:
        return sslctx
    if sslctx is not None:
        raise ValueError("give sslctx or tls, not both")
    from ._tls import _context_for_option
    return _context_for_option(tls)


class _StreamServer(_BaseServer):
    """A stream server: subclasses implement ``_serve_connection``."""

    record_data = False     # keep the received bytes on Connection.data
    max_data = MAX_DATA     # ... but at most this many per connection
    client_speaks_first = False     # garbage() and hang_up() read a request first

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5,
                 *, sslctx=None, tls=False, client_auth=False):
        self.sslctx = _client_auth_option(_tls_option(sslctx, tls), tls, client_auth)
        super().__init__(listen_addr, handler, poll_interval)

    # -- records and waits ----------------------------------------------------

    @property
    def connections(self):
        """A list of the :class:`Connection` records, oldest first."""
        return self._snapshot("connections")

    def wait_connections(self, count=1, timeout=None, closed=False):
        """Wait until *count* connections were accepted; return them all.

        With *closed* true, wait until *count* of them have also closed,
        so their ``data`` is complete, and return only the closed ones.
        """
        accept = (lambda c: c.closed is not None) if closed else None
        return self._wait_count("connections", count, timeout, accept)

    async_wait_connections = _awaitable(wait_connections)

    # -- faults (see _faults) -------------------------------------------------

    def drop(self, reset=False):
        """End every open connection now, cleanly or with *reset* (RST).

        A handler blocked in a read sees the end of the stream; its later
        writes fail.  Returns a :class:`Fault` with nothing to undo.
        """
        for sock in self._conns.sockets():
            record = getattr(sock, "_record", None)
            if record is not None:
                record.fault = "reset" if reset else "drop"
                if record.closed_by is None:
                    record.closed_by = "server"
            try:
                if reset:
                    # close() sends the RST (linger 0); until the handler thread
                    # gets there, reads see EOF and writes fail.  Mark it first:
                    # the woken thread must not send a FIN on its way out.
                    sock._dropped = True
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                    socket.socket.shutdown(sock, socket.SHUT_RD)
                else:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        return Fault(self, "reset" if reset else "drop")

    def delay(self, accept=0.0, reply=0.0):
        """Wait *accept* seconds before each accept, *reply* before each reply.

        A reply is what the server sends after it has received something (and
        a greeting, for protocols that start with one).
        """
        _check_number("accept", accept)
        _check_number("reply", reply)
        return self._fault("delay", accept_delay=float(accept), reply_delay=float(reply))

    def drip(self, chunk=1, interval=0.01):
        """Send every reply *chunk* bytes at a time, *interval* s apart."""
        _check_int("chunk", chunk, 1)
        _check_number("interval", interval)
        return self._fault("drip", drip=(chunk, float(interval)))

    def garbage(self, data=GARBAGE):
        """Answer each new connection with *data*, then close it.

        Servers whose clients speak first (HTTP) read the request first.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("garbage data must be bytes, not %r" % (data,))
        return self._fault("garbage", garbage=bytes(data))

    def hang_up(self):
        """Close each new connection with no reply (after the request, for
        servers whose clients speak first)."""
        return self._fault("hang_up", hang_up=True)

    def _fault(self, name, **settings):
        faults = self._faults
        token = faults.push(settings)
        return Fault(self, name, lambda: faults.pop(token))

    # -- serving ------------------------------------------------------------

    def _configure_socket(self, sock):
        super()._configure_socket(sock)
        self._accept_plan = None        # a new listener: learn its accepts anew
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Where accepted sockets inherit the listener's options (Linux,
            # the BSDs), no accept needs a call of its own (_learn_options).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_readable(self, listener):
        # One accept per wake-up: the selector is level-triggered, so more
        # connections pending wake it again at once, and the usual case,
        # one connection, spares the accept() that would find none.
        plan = self._accept_plan
        if plan is None:
            # As socket.accept() makes them, once per listener, not per accept.
            plan = ((int(listener.family), int(listener.type), listener.proto), None)
        shape, options = plan
        try:
            # The public accept(): socket._accept() would spare the throwaway
            # socket object, but it is private (issue 11: none where a public
            # way exists).
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _TRANSIENT_ACCEPT:
                _log.debug("%r: accept() failed: %r", self, exc)
                return
            raise
        sock = _CountingSocket(*shape, fileno=conn.detach())
        if options is None:
            options = self._learn_options(sock)
            self._accept_plan = (shape, options)
        else:
            for level, option in options:
                sock.setsockopt(level, option, 1)
        self._spawn_connection(sock, peer, self._connection, self._new_connection)

    # ((family, type, proto), the options each accepted socket must set),
    # learnt from the listener's first accept.
    _accept_plan = None

    def _learn_options(self, sock):
        """Set the options an accepted TCP socket needs on *sock*, the first
        from its listener; return those it did not inherit from the
        listener, which every later one must set.

        TCP_NODELAY: a head and a body in separate writes must not wait
        ~40 ms for the client's delayed ACK (Nagle).  SO_REUSEADDR (POSIX):
        lets a restart re-bind while this connection is in TIME_WAIT (the
        kernel checks both sides).
        """
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return ()
        wanted = [(socket.IPPROTO_TCP, socket.TCP_NODELAY)]
        if os.name == "posix":
            wanted.append((socket.SOL_SOCKET, socket.SO_REUSEADDR))
        missing = []
        for level, option in wanted:
            if not sock.getsockopt(level, option):
                sock.setsockopt(level, option, 1)
                missing.append((level, option))
        return tuple(missing)

    def _new_connection(self, sock, peer, conn_id):
        # On the service thread, which accepts in order: the records are
        # in accept order whatever thread runs first.
        sock._record = Connection(conn_id, peer, self.record_data)
        sock._server = self
        self._append_record("connections", sock._record)

    def _connection(self, sock, peer, conn_id):
        record = sock._record
        try:
            self._fault_wait(self._faults.accept_delay)
            if self.sslctx is not None:
                tls = self._handshake(sock, conn_id, record)
                if tls is None:
                    return
                sock = tls
            if not self._faulty_reply(sock, record):
                self._serve_connection(sock, peer, record)
        finally:
            if record.closed_by is None:
                record.closed_by = "server"
            if record.tls:
                # The socket in use: a STARTTLS may have swapped it.
                sock = self._conns.current(conn_id, sock)
            if sock.fileno() >= 0 and not self._stopping and not sock._dropped:
                try:
                    sock.shutdown(socket.SHUT_WR)   # a FIN before close
                except OSError:
                    pass
            sock.close()
            # The waits see it once the connection is off the live set
            # (_Connections._finished notifies, right after this).
            record.closed = time.monotonic()

    def _data_overflow(self, record, kept, piece):
        """Keep *piece*, the part of a read that fits; report the first overflow."""
        if piece:
            kept += piece
        if not record._data_full:
            record._data_full = True
            self._record_error(OverflowError(
                "%r: connection %d sent more than max_data (%d bytes); "
                "Connection.data keeps the first %d (raise max_data)"
                % (self, record.id, self.max_data, len(kept))))

    def _handshake(self, sock, conn_id, record, context=None):
        """Wrap *sock* in server-side TLS with *context* (default ``sslctx``).

        Return the TLS socket, which from then on is the connection's (stop()
        shuts it down and the connection closes it), or None if the client
        failed the handshake.  STARTTLS calls it in the middle of a session.
        What the handshake showed goes to ``record.tls_info`` (a TLSInfo).
        """
        from ._tls import TLSInfo, _peek_client_hello
        context = context or self.sslctx
        info = record.tls_info = TLSInfo()
        record.tls = True
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        timeout = sock.gettimeout()
        try:
            # The server name and ALPN protocols the client offers, which ssl
            # shows no server: peeked at in its ClientHello, left unread.
            sock.settimeout(HANDSHAKE_TIMEOUT)
            _peek_client_hello(sock, info)
            sock.settimeout(timeout)
        except OSError as exc:      # no ClientHello in time, or a reset
            _log.debug("%r: no ClientHello from %r: %r", self, record.peer, exc)
            info._handshake_failed(exc)
            return None
        if context.sslsocket_class is ssl.SSLSocket:
            # The documented way (SSLContext.sslsocket_class) to have
            # wrap_socket() make counting sockets.  It is harmless to the
            # context's other uses: a socket with no record counts nothing
            # and applies no fault.  A context with a class of its own
            # keeps it, and its connections are not counted.
            context.sslsocket_class = _CountingSSLSocket
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False,
                                  suppress_ragged_eofs=True)
        tls._record = record
        tls._server = self
        self._conns.swap(conn_id, tls)  # stop() must shut down the socket in use
        if self._stopping:
            # stop() may have taken its snapshot before the swap, and shut
            # down the plain socket that wrap_socket() had already detached.
            self._shutdown_socket(tls)
        try:
            tls.settimeout(max(deadline - time.monotonic(), 0.001))
            tls.do_handshake()
            tls.settimeout(None)
        except (ssl.SSLError, OSError) as exc:
            # The client gave up or spoke plain text: its own error tells the
            # test; it is not a handler error.
            _log.debug("%r: TLS handshake with %r failed: %r", self, record.peer, exc)
            info._handshake_failed(exc)
            tls.close()
            return None
        info._handshake_done(tls)
        return tls

    def _serve_connection(self, sock, peer, record):
        raise NotImplementedError

    def _faulty_reply(self, sock, record):
        """Answer with garbage or hang up, if such a fault is on."""
        faults = self._faults
        garbage = faults.garbage
        if garbage is None and not faults.hang_up:
            return False
        record.fault = "garbage" if garbage is not None else "hang_up"
        if self.client_speaks_first:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.recv(65536)                    # the request, unanswered
        if garbage is not None:
            sock.sendall(garbage)
        record.closed_by = "server"
        return True


class _DelegatingStreamHandler(socketserver.StreamRequestHandler):
    """Call ``server._handler(self)`` from ``handle()``."""

    def handle(self):
        self.server._handler(self)

    def finish(self):
        try:
            super().finish()
        except OSError as exc:
            if not _is_disconnect(exc):
                raise


class TestTCPServer(_StreamServer):
    """A TCP server that hands each connection to a handler on its own thread.

    ``TestTCPServer(listen_addr=None, handler=None, poll_interval=0.5, *,
    sslctx=None, tls=False, client_auth=False)``

    *handler* is called with a :class:`socketserver.StreamRequestHandler`
    (``connection``, ``rfile``, ``wfile``, ``client_address``, ``server``)
    for every connection; it may also be a
    :class:`socketserver.BaseRequestHandler` subclass.  With ``None`` the
    server reads each connection to its end and records the bytes on its
    :class:`Connection`.  *sslctx* wraps connections in TLS; ``tls=True``
    does so with the bundled test certificate, and a name from
    ``TLS_SCENARIOS`` (``"expired"``...) with a certificate a verifying
    client must refuse.  *client_auth* (``True`` or ``"optional"``, with
    *tls*) asks clients for a certificate from the test CA.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`wait_connections`, :meth:`wait_for`, :meth:`take_errors`,
    :meth:`clear_records`, the faults (:meth:`refuse`, :meth:`drop`,
    :meth:`delay`, :meth:`drip`, :meth:`garbage`, :meth:`hang_up`,
    :meth:`clear_faults`), and the awaitable twins
    :meth:`async_wait_connections`, :meth:`async_wait_for`,
    :meth:`async_start`, :meth:`async_stop`.  Attributes: ``port``,
    ``server_address``, ``ready``, ``connections``, ``errors``.
    """

    record_data = True

    def _serve_connection(self, sock, peer, record):
        if self._handler is None:
            while sock.recv(65536):
                pass
        else:
            self._handler_class(_DelegatingStreamHandler)(sock, peer, self)


class TestUnixStreamServer(TestTCPServer):
    """:class:`TestTCPServer` on a Unix stream socket.

    *listen_addr* is a filesystem path; with ``None`` the server makes one
    in a private temporary directory.  :meth:`stop` removes the socket
    file (and that directory).  ``port`` is ``None``; ``server_address``
    is the path.
    """

    address_family = getattr(socket, "AF_UNIX", None)
    unix_only = True
