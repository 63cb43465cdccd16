"""Listen addresses: what a constructor's *listen_addr* means, and binding.

A ``str``, ``bytes`` or path-like address is a Unix socket path; an IPv6
literal is AF_INET6, an IPv4 literal AF_INET, and a host name takes the
class's ``address_family`` (as in :mod:`socketserver`).  ``None`` means
``127.0.0.1`` and a free port, or, for the Unix-only classes, a fresh
path in a private temporary directory.
"""

import os
import re
import socket
import stat
import tempfile

__all__ = []

#: The host a server binds when it is given only a port, or nothing.
DEFAULT_HOST = "127.0.0.1"

_PATH_TYPES = (str, bytes, os.PathLike)

# A string that reads as a host name (RFC 1123 labels) or an IP literal:
# given alone where (host, port) was meant, it must not become a file name.
_HOST_LIKE = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?"
                        r"|[0-9A-Fa-f:.%]*:[0-9A-Fa-f:.%]*|\[.*\]")

# Where a client on this machine reaches a server bound to every interface.
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def _is_ip_literal(host, family):
    try:
        socket.inet_pton(family, host.split("%", 1)[0])
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    return True


def refuse_host_string(cls, addr):
    """Refuse a host string alone where *cls* takes ``(host, port)``.

    ``TestTCPServer("127.0.0.1", 0)``, a forgotten tuple, must not make a
    Unix socket file named 127.0.0.1 in the current directory.
    """
    if isinstance(addr, str) and not cls.unix_only and "/" not in addr \
            and _HOST_LIKE.fullmatch(addr):
        raise TypeError("%s takes listen_addr as a (host, port) tuple, not the "
                        "string %r (for a Unix socket file in the current "
                        "directory, write './%s')" % (cls.__name__, addr, addr))


def parse_address(cls, addr):
    """Return ``(family, bind_addr, tmpdir)`` for *addr* given to *cls*.

    *tmpdir* is the private directory made for a default Unix path (the
    caller removes it), or None.
    """
    if cls.unix_only and addr is None:
        tmpdir = tempfile.mkdtemp(prefix="testservers-")
        return socket.AF_UNIX, os.path.join(tmpdir, "socket"), tmpdir
    if isinstance(addr, _PATH_TYPES):
        if not hasattr(socket, "AF_UNIX"):
            raise ValueError("Unix sockets are not available on this platform")
        return socket.AF_UNIX, os.fspath(addr), None
    if cls.unix_only:
        raise TypeError("%s needs a filesystem path (or None), not %r"
                        % (cls.__name__, addr))
    if addr is None:
        addr = (DEFAULT_HOST, 0)
    elif isinstance(addr, int) and not isinstance(addr, bool):
        addr = (DEFAULT_HOST, addr)
    if not isinstance(addr, (tuple, list)) or len(addr) not in (2, 4):
        raise TypeError("listen_addr must be (host, port), a port, a path "
                        "or None, not %r" % (addr,))
    host, port = addr[0], addr[1]
    if not isinstance(host, str):
        raise TypeError("the host of listen_addr must be a str, not %r" % (host,))
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError("the port of listen_addr must be an int, not %r" % (port,))
    if not 0 <= port <= 65535:
        raise ValueError("the port of listen_addr must be 0 to 65535, not %r" % (port,))
    if _is_ip_literal(host, socket.AF_INET6):
        family = socket.AF_INET6
    elif _is_ip_literal(host, socket.AF_INET):
        family = socket.AF_INET
    else:
        # A host name: the class attribute decides, as in socketserver
        # (test_logging sets it to AF_INET6 for its IPv6 tests).
        family = cls.address_family
        if family not in (socket.AF_INET, socket.AF_INET6):
            family = socket.AF_INET
    return family, tuple(addr), None


class _Listener(socket.socket):
    """A server's socket, whose ``family`` and ``type`` are read once.

    :class:`socket.socket` makes an enum of each on every read, and its
    :meth:`~socket.socket.accept` reads both for each connection.
    """

    __slots__ = ("_family", "_type")

    def __init__(self, family, socket_type):
        super().__init__(family, socket_type)
        self._family, self._type = super().family, super().type

    @property
    def family(self):
        return self._family

    @property
    def type(self):
        return self._type


def open_listener(family, socket_type, bind_addr, reuse, configure, backlog):
    """Return a new non-blocking socket bound to *bind_addr* (and listening,
    for a stream), after ``configure(sock)`` set its options."""
    sock = _Listener(family, socket_type)
    try:
        # Only a restart re-binds with SO_REUSEADDR, and only on POSIX,
        # where it cannot steal a live port: connections the server closed
        # first sit in TIME_WAIT on the port, and Linux refuses a plain
        # re-bind until they expire.  (Accepted sockets set it as well;
        # the kernel checks both sides.)
        if reuse and os.name == "posix" and family != getattr(socket, "AF_UNIX", None):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        configure(sock)
        sock.bind(bind_addr)
        if socket_type == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def path_identity(path):
    """Return what identifies the socket file at *path* (None for an
    abstract-namespace name), so that only that file is removed later."""
    if path and path[:1] not in ("\0", b"\0"):
        st = os.stat(path)
        return st.st_dev, st.st_ino
    return None


def unlink_own_path(path, identity):
    """Remove the socket file at *path* if it is still the one *identity* names."""
    try:
        st = os.stat(path)
        # Remove only our own socket, not a file someone put there since.
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def addr_text(family, bind_addr, port):
    """The address for messages and thread names: ``host:port`` or a path."""
    if family == getattr(socket, "AF_UNIX", None):
        return repr(bind_addr)
    host = bind_addr[0]
    if ":" in host:
        host = "[%s]" % host
    return "%s:%s" % (host, port)


def client_host(server_address):
    """The host a client on this machine connects to: the bound one, or the
    loopback address of its family for a server bound to every interface."""
    host = server_address[0]
    return _LOOPBACK_FOR.get(host, host)
