"""Datagram servers: one reader, in arrival order, with a deep buffer.

Datagrams are handled one at a time on the service thread.  A thread per
datagram (socketserver's ThreadingUDPServer) falls behind a burst and the
kernel drops what no longer fits; a single reader that drains the socket
each time it is readable, behind a receive buffer raised towards
``net.core.rmem_max``, keeps up with a burst of 10,000 and keeps order.
"""

import errno
import os
import socket
import socketserver

from ._base import _BaseServer, _log
from ._faults import Fault, _check_int
from ._records import Datagram, _awaitable

__all__ = ["TestUDPServer", "TestUnixDatagramServer"]

#: The receive buffer a datagram server asks for; Linux caps it at
#: ``net.core.rmem_max`` (4 MiB on the machines measured).
RCVBUF_SIZE = 4 * 1024 * 1024

#: The largest datagram read whole: UDP's 65,507-byte payload limit
#: (RFC 768 and IPv4's 16-bit total length), and more for Unix sockets.
MAX_UDP_PAYLOAD = 65535
MAX_UNIX_DATAGRAM = 262144

_ICMP_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                errno.EHOSTDOWN, errno.ECONNRESET}


class _DelegatingDatagramHandler(socketserver.DatagramRequestHandler):
    """Call ``server._handler(self)``; send back only what it wrote."""

    def handle(self):
        self.server._handler(self)

    def finish(self):
        data = self.wfile.getvalue()
        if data and self.client_address:
            try:
                self.socket.sendto(data, self.client_address)
            except OSError as exc:
                # The sender may be gone (ICMP unreachable, a closed Unix
                # socket, a full queue): a reply nobody reads is no error.
                _log.debug("%r: reply to %r failed: %r",
                           self.server, self.client_address, exc)


class TestUDPServer(_BaseServer):
    """A UDP server that hands each datagram to a handler, in order.

    ``TestUDPServer(listen_addr=None, handler=None, poll_interval=0.5)``

    *handler* is called on the service thread with a
    :class:`socketserver.DatagramRequestHandler` whose ``packet`` is the
    datagram; what it writes to ``wfile`` is sent back to the sender.  It
    may also be a :class:`socketserver.BaseRequestHandler` subclass.  Every
    datagram is recorded as a :class:`Datagram`, with or without a handler.

    Methods: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`wait_datagrams`, :meth:`wait_for`, :meth:`take_errors`,
    :meth:`clear_records`.  Attributes: ``port``, ``server_address``,
    ``ready``, ``datagrams``, ``dropped_datagrams``, ``kernel_drops``,
    ``errors``.
    """

    socket_type = socket.SOCK_DGRAM
    max_packet_size = MAX_UDP_PAYLOAD

    def __init__(self, listen_addr=None, handler=None, poll_interval=0.5):
        self.dropped_datagrams = []
        super().__init__(listen_addr, handler, poll_interval)
        # One byte more than the limit: a datagram that fills it was cut.
        self._buffer = bytearray(self.max_packet_size + 1)

    @property
    def datagrams(self):
        """A list of the :class:`Datagram` records, oldest first."""
        return self._snapshot("datagrams")

    def wait_datagrams(self, count=1, timeout=None):
        """Wait until *count* datagrams arrived; return them all."""
        return self._wait_count("datagrams", count, timeout)

    async_wait_datagrams = _awaitable(wait_datagrams)

    def drop_datagrams(self, count):
        """Discard the next *count* datagrams; they go to ``dropped_datagrams``.

        Returns a :class:`Fault`; its undo cancels the drops still due.
        Several such faults count down one after another, oldest first.
        """
        _check_int("count", count)
        faults = self._faults
        token = faults.add_drops(count)
        return Fault(self, "drop_datagrams", lambda: faults.pop(token))

    def _configure_socket(self, sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_SIZE)
        except OSError:
            pass

    def _on_readable(self, sock):
        view = memoryview(self._buffer)
        # A handler that restarts the server gets a new socket: stop reading
        # this one, which stop() closed, as soon as the handler returns.
        while not self._stopping and sock is self.socket:
            try:
                n, sender = sock.recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ICMP_ERRNOS:
                    # An ICMP error about an earlier reply: the sender is gone.
                    _log.debug("%r: recvfrom() failed: %r", self, exc)
                    continue
                raise
            if n > self.max_packet_size:
                # A Unix datagram can exceed 256 KiB when the sender raises
                # SO_SNDBUF; recvfrom() would cut it without a word.
                self._record_error(OverflowError(
                    "%r: a datagram from %r was longer than max_packet_size (%d "
                    "bytes); it was cut, and not recorded" % (self, sender,
                                                              self.max_packet_size)))
                continue
            data = bytes(view[:n])
            if self._faults.take_drop():
                with self._cond:
                    self.dropped_datagrams.append(Datagram(data, sender))
                    self._cond.notify_all()
                continue
            self._append_record("datagrams", Datagram(data, sender))
            if self._handler is not None:
                self._handle(data, sock, sender)

    @property
    def kernel_drops(self):
        """How many datagrams the kernel dropped for a full receive buffer.

        Read from Linux's ``/proc/net/udp`` (and ``udp6``) for this socket;
        ``None`` where that is not available, or once the socket is closed.
        A burst faster than the handler drops datagrams before the server
        can see them; a failed ``wait_datagrams`` names this count.
        """
        sock = self.socket
        if sock is None or self.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        try:
            inode = str(os.fstat(sock.fileno()).st_ino)
            for name in ("/proc/net/udp", "/proc/net/udp6"):
                with open(name) as table:
                    for line in table:
                        fields = line.split()
                        if len(fields) > 12 and fields[9] == inode:
                            return int(fields[-1])
        except (OSError, ValueError):
            pass
        return None

    def _summary(self):
        drops = self.kernel_drops
        text = super()._summary()
        if drops:
            text += "; the kernel dropped %d datagrams (receive buffer full)" % drops
        return text

    def _handle(self, data, sock, sender):
        try:
            self._handler_class(_DelegatingDatagramHandler)((data, sock), sender, self)
        except BaseException as exc:
            self._record_error(exc)


class TestUnixDatagramServer(TestUDPServer):
    """:class:`TestUDPServer` on a Unix datagram socket.

    *listen_addr* is a filesystem path; with ``None`` the server makes one
    in a private temporary directory.  :meth:`stop` removes the socket
    file (and that directory).  Senders that did not bind their socket
    have no address, so nothing can be sent back to them.
    """

    address_family = getattr(socket, "AF_UNIX", None)
    unix_only = True
    max_packet_size = MAX_UNIX_DATAGRAM
