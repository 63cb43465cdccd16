"""Request bodies: held in memory when small, spooled to a file when large.

:class:`_Spool` collects the decoded body as the core hands it over; past
a threshold it moves to a temporary file in the server's spool directory,
so that memory stays bounded whatever a client uploads.  What it leaves
is ``bytes`` or a :class:`SpooledBody`, which reads the file on demand.
:func:`body_stream` is the ``rfile`` a handler reads a body from: the
body as a Content-Length framed request sent it, or, for a chunked
request, in chunked coding again (the size lines, the data, the last
chunk and the trailers), so that a handler written for
:mod:`http.server`, which decodes chunked framing itself, works.
"""

import io
import os

__all__ = []

SPOOL_THRESHOLD = 1024 * 1024   # bytes of body held in memory before spooling
_PIECE = 65536                  # bytes per read from a spool file


class SpooledBody:
    """A request body in a temporary file: ``path`` and ``size``.

    The file belongs to the server and goes at its ``stop()``.
    """

    __slots__ = ("path", "size")

    def __init__(self, path, size):
        self.path, self.size = path, size

    def open(self):
        """Return a new binary file object on the body, at its start."""
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise RuntimeError(
                "this request body (%d bytes) was spooled to a temporary file, which the "
                "server's stop() removed; read it before stop(), or raise spool_threshold"
                % self.size) from None

    def read(self):
        """Return the whole body as bytes (read from the file every time)."""
        with self.open() as f:
            return f.read()


class _Spool:
    """Collect body bytes: in memory up to *threshold*, then in a file.

    *make_file* returns a new writable binary file with a ``name`` in the
    server's spool directory.  ``value()`` gives ``bytes`` or a
    :class:`SpooledBody`.
    """

    def __init__(self, threshold, make_file):
        self._threshold = threshold
        self._make_file = make_file
        self._mem = bytearray()
        self._file = None
        self.size = 0

    def write(self, data):
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
        elif self.size > self._threshold:
            self._file = self._make_file()
            self._file.write(self._mem)
            self._file.write(data)
            self._mem = None
        else:
            self._mem += data

    def value(self):
        """End the writing; return the body as bytes or a SpooledBody."""
        if self._file is None:
            return bytes(self._mem)
        self._file.close()
        return SpooledBody(self._file.name, self.size)

    def discard(self):
        """Drop what was collected (the request was refused)."""
        if self._file is not None:
            self._file.close()
            try:
                os.unlink(self._file.name)
            except OSError:
                pass
        self._mem = bytearray()


def open_body(body):
    """Return a binary file object reading *body* (bytes or SpooledBody)."""
    if isinstance(body, SpooledBody):
        return body.open()
    return io.BytesIO(body)


class _Chunked(io.RawIOBase):
    """A decoded body in chunked coding again (RFC 9112 7.1)."""

    def __init__(self, source, trailers):
        super().__init__()
        self._source = source
        self._trailers = trailers
        self._out = b""
        self._done = False

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._out and not self._done:
            piece = self._source.read(_PIECE)
            if piece:
                self._out = b"%x\r\n%s\r\n" % (len(piece), piece)
            else:
                self._done = True
                self._out = b"0\r\n" + b"".join(
                    b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in self._trailers) + b"\r\n"
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self):
        self._source.close()
        super().close()


def body_stream(body, chunked, trailers=()):
    """Return the ``rfile`` of a request: its body, framed as it was sent."""
    source = open_body(body)
    if not chunked:
        return source
    return io.BufferedReader(_Chunked(source, trailers))
