"""The I/O of one stream connection: counting sockets and the pump.

Every accepted stream socket becomes a :class:`_CountingSocket` (or, under
TLS, a :class:`_CountingSSLSocket`): a real socket, so handlers keep what
they expect (``isinstance`` holds, ``makefile`` works), that counts and
records every byte through it and applies the send-side faults (delay,
drip, drop).  The protocol adapters (``_smtp``, and the HTTP connection)
drive a sans-IO core through a :class:`_Pump`: it receives with the
connection's timeouts, upgrades to TLS, and drains a client before an
error close.
"""

import os
import select
import socket
import struct
import time

try:
    import ssl
except ImportError:         # a Python built without OpenSSL
    ssl = None

from ._base import _log

__all__ = []

_LINGER_ZERO = struct.pack("ii", 1, 0)     # struct linger: on, 0 s: close() resets

_MSG_PEEK = int(socket.MSG_PEEK)    # a plain int: IntFlag.__and__ is slow per call
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_SSL_ERROR = ssl.SSLError if ssl is not None else ()
# write() on a socket's descriptor (not on Windows, where it is no file).
_WRITE = os.write if os.name == "posix" else None
_SOCKET_RECV = socket.socket.recv
_poll = getattr(select, "poll", None)       # not on Windows
_POLLIN = getattr(select, "POLLIN", 1)
try:                # POSIX: how many received bytes wait unread, in one call
    import fcntl
    import termios
    _FIONREAD = termios.FIONREAD
except (ImportError, AttributeError):
    _FIONREAD = None
_NO_INT = bytes(struct.calcsize("i"))

RECV_SIZE = 65536       # bytes asked of each recv()
_KEEP = object()        # recv(): leave the timeout as it is

#: How long a client is read from, at most, after an error reply, before
#: the server closes: closing with unread bytes sends a reset, which can
#: destroy the reply before the client reads it.
LINGER_TIMEOUT = 2.0


class _Counting:
    """Count (and maybe record) the bytes a socket carries.

    Mixed into a :class:`socket.socket` or :class:`ssl.SSLSocket` subclass,
    so handlers keep a real socket (``isinstance`` holds, ``makefile``
    works) while every byte through ``recv``/``send`` lands on the
    connection's :class:`Connection` record.
    """

    _record = None
    _server = None          # whose faults apply (delay, drip, drop)
    _owes_delay = True      # a reply is due: delay(reply=...) applies
    _dropped = False        # drop(reset=True) hit this connection

    def _got(self, n, buffer):
        """Count *n* bytes received into *buffer*; keep them if recording."""
        record = self._record
        self._owes_delay = True
        if record is not None:
            if n:
                record.bytes_received += n
                kept = record._data
                if kept is not None:        # copied only when recording
                    room = self._server.max_data - len(kept)
                    if n <= room:
                        kept += memoryview(buffer)[:n]
                    else:
                        self._server._data_overflow(
                            record, kept, memoryview(buffer)[:max(room, 0)])
            elif record.closed_by is None:
                record.closed_by = "client"     # EOF: the peer ended first

    def recv(self, bufsize, flags=0):
        data = self._checked(super().recv, bufsize, flags)
        if not flags & _MSG_PEEK and bufsize:
            self._got(len(data), data)
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        n = self._checked(super().recv_into, buffer, nbytes, flags)
        if not flags & _MSG_PEEK and (nbytes or len(buffer)):
            self._got(n, buffer)
        return n

    def send(self, data, flags=0):
        chunk = self._before_send()
        if chunk:
            data = memoryview(data)[:chunk]
        n = self._checked(super().send, data, flags)
        if self._record is not None:
            self._record.bytes_sent += n
        return n

    def _before_send(self):
        """Apply the send-side faults; return the drip chunk size, if any."""
        if self._dropped:
            exc = ConnectionAbortedError("testservers: connection dropped by a fault")
            exc._testservers_io = True
            raise exc
        server = self._server
        if server is None:
            return None
        faults = server._faults
        if self._owes_delay:
            self._owes_delay = False
            if faults.reply_delay > 0:      # as _fault_wait() checks, without the call
                server._fault_wait(faults.reply_delay)
        if faults.drip is not None:
            chunk, interval = faults.drip
            server._fault_wait(interval)
            if server._halt.is_set():
                exc = ConnectionAbortedError("testservers: the server stopped")
                exc._testservers_io = True
                raise exc
            return chunk
        return None

    def _checked(self, method, *args):
        try:
            return method(*args)
        except OSError as exc:      # socket.timeout and ssl.SSLError included
            self._io_error(exc)
            raise

    def _io_error(self, exc):
        # Tagged: only an error of the connection's own I/O may pass for
        # the peer going away (see _loop._Connections._run).
        exc._testservers_io = True
        if isinstance(exc, ConnectionResetError) and self._record is not None \
                and self._record.closed_by is None:
            self._record.closed_by = "client"
            self._record.reset = True


class _CountingSocket(_Counting, socket.socket):
    def recv(self, bufsize, flags=0):
        # _Counting.recv in one frame: every read of a plain connection.
        try:
            data = _SOCKET_RECV(self, bufsize, flags)
        except OSError as exc:
            self._io_error(exc)
            raise
        if bufsize and not flags & _MSG_PEEK:
            self._got(len(data), data)
        return data

    def sendall(self, data, flags=0):
        # socket.socket.sendall is C code and does not call send().
        view = memoryview(data).cast("B")
        chunk = self._before_send()
        if chunk:
            for start in range(0, len(view), chunk):
                if start:
                    self._before_send()
                piece = view[start:start + chunk]
                self._checked(super().sendall, piece, flags)
                if self._record is not None:
                    self._record.bytes_sent += len(piece)
            return
        if _WRITE is not None and not flags:
            # A write() of what fits spares the poll() that sendall() makes
            # first on a socket with a timeout; the rest, if any, goes the
            # usual way (on a blocking socket, write() sends it all).
            try:
                n = _WRITE(self.fileno(), view)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self._io_error(exc)
                raise
            if self._record is not None:
                self._record.bytes_sent += n
            if n == len(view):
                return
            view = view[n:]
        self._checked(super().sendall, view, flags)
        if self._record is not None:
            self._record.bytes_sent += len(view)


if ssl is not None:
    class _CountingSSLSocket(_Counting, ssl.SSLSocket):
        # SSLSocket.sendall loops over send(), which counts already.
        pass


class _Pump:
    """The connection a protocol core talks through.

    It holds the socket in use (:meth:`upgrade` swaps in the TLS one),
    changes the socket's timeout only when the value changes (each change
    is a system call or two), and turns the ways a connection can end
    into plain values: :meth:`recv` returns ``b""`` at the end of the
    stream (a TLS peer that breaks TLS included) and ``None`` when the
    timeout passed with nothing received.
    """

    def __init__(self, server, sock, record):
        self.server = server
        self.sock = sock
        self.record = record
        self._timeout = sock.gettimeout()

    def set_timeout(self, seconds):
        """Make each blocking read wait at most *seconds* (None: forever)."""
        if seconds != self._timeout:
            self.sock.settimeout(seconds)
            self._timeout = seconds

    def recv(self, size=RECV_SIZE, deadline=None, timeout=_KEEP):
        """Return what arrived: ``b""`` at the end, ``None`` on a timeout.

        *timeout* (if given) becomes the connection's timeout for each
        read, as :meth:`set_timeout` sets it; *deadline*, a
        :func:`time.monotonic` time, bounds this read below it (a
        whole-request deadline).
        """
        if timeout is not _KEEP and timeout != self._timeout:
            self.set_timeout(timeout)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._timeout is None or remaining < self._timeout:
                self.sock.settimeout(remaining)
                self._timeout = remaining
        try:
            return self.sock.recv(size)
        except socket.timeout:
            return None
        except _SSL_ERROR as exc:
            # A TLS client that breaks TLS: an end, not a handler error.
            _log.debug("%r: TLS error from %r: %r", self.server, self.record.peer, exc)
            return b""

    def send(self, data):
        self.sock.sendall(data)

    def fileno(self):
        return self.sock.fileno()

    def upgrade(self, context):
        """Hand the connection over to TLS (STARTTLS); False if that failed.

        The TLS socket is the connection's from then on: stop() shuts it
        down and the connection closes it.
        """
        sock = self.server._handshake(self.sock, self.record.id, self.record, context)
        if sock is None:
            return False
        sock.settimeout(self._timeout)
        self.sock = sock
        return True

    def drain(self, linger):
        """Read what the client still sends, for a while, before closing.

        With *linger* false, only when something is already waiting.
        """
        sock = self.sock
        try:
            if not linger and _FIONREAD is not None:
                # Usually nothing waits (the client's FIN may: it is no
                # byte to read): one ioctl says how many bytes do.
                waiting, = struct.unpack("i", fcntl.ioctl(sock.fileno(), _FIONREAD, _NO_INT))
                if not waiting:
                    return
            elif not linger:
                if _poll is not None:
                    # Usually nothing waits: one poll() says so, where the
                    # switch to non-blocking (an ioctl) and the peek below
                    # take two calls.
                    poller = _poll()
                    poller.register(sock.fileno(), _POLLIN)
                    if not poller.poll(0):
                        return
                sock.settimeout(0)
                self._timeout = 0
                if not socket.socket.recv(sock, 1, _MSG_PEEK | _MSG_DONTWAIT):
                    return
            socket.socket.shutdown(sock, socket.SHUT_WR)
            self.set_timeout(LINGER_TIMEOUT)
            for _ in range(16):
                if not sock.recv(RECV_SIZE):
                    return
        except OSError:
            pass
