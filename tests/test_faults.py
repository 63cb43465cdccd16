"""Named faults against real clients: refuse, drop, reset, delay, drip,
garbage, hang-up, dropped datagrams and restart."""

import logging
import logging.handlers
import pickle
import select
import socket
import threading
import time

import pytest

import testservers
from conftest import TIMEOUT
from test_logging_handlers import read_pickles

HAS_UNIX = hasattr(socket, "AF_UNIX")


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), TIMEOUT)


def echo_lines(request):
    for line in request.rfile:
        request.wfile.write(line)


def test_refuse_then_accept_again_on_same_port():
    with testservers.TestTCPServer(None, echo_lines) as server:
        port = server.port
        with connect(server) as kept:
            with server.refuse() as fault:
                assert fault.name == "refuse"
                with pytest.raises(ConnectionRefusedError):
                    connect(server)
                kept.sendall(b"still here\n")       # open connections carry on
                assert kept.recv(100) == b"still here\n"
        with connect(server) as c:
            c.sendall(b"back\n")
            assert c.recv(100) == b"back\n"
        assert server.port == port


@pytest.mark.skipif(not HAS_UNIX, reason="needs Unix sockets")
def test_refuse_on_unix_path_gives_econnrefused(tmp_path):
    path = str(tmp_path / "s")
    with testservers.TestUnixStreamServer(path) as server:
        fault = server.refuse()
        with socket.socket(socket.AF_UNIX) as c:
            with pytest.raises(ConnectionRefusedError):
                c.connect(path)
        fault.undo()
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)
    assert not (tmp_path / "s").exists()


def test_refuse_before_start_and_clear_faults():
    server = testservers.TestTCPServer()
    server.refuse()
    with pytest.raises(ConnectionRefusedError):
        connect(server)
    server.start()
    with pytest.raises(ConnectionRefusedError):
        connect(server)
    server.clear_faults()
    connect(server).close()
    server.stop()


@pytest.mark.parametrize("reset", [False, True])
def test_drop_open_connections(reset):
    with testservers.TestTCPServer(None, echo_lines) as server:
        c = connect(server)
        c.sendall(b"hi\n")
        assert c.recv(10) == b"hi\n"
        server.drop(reset=reset)
        if reset:
            with pytest.raises(ConnectionResetError):
                c.recv(10)
        else:
            assert c.recv(10) == b""
        c.close()
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.fault == ("reset" if reset else "drop")
        assert conn.closed_by == "server"
    assert server.errors == []


def test_socket_handler_reconnects_after_refuse_and_drop(logger):
    out, handled = [], threading.Semaphore(0)
    with testservers.TestTCPServer(None, lambda r: read_pickles(r, out, handled)) as server:
        handler = logging.handlers.SocketHandler("127.0.0.1", server.port)
        handler.retryStart = 0.0        # retry at once instead of backing off
        logger.addHandler(handler)
        logger.error("one")
        assert handled.acquire(timeout=TIMEOUT)
        with server.refuse():
            server.drop()
            # The drop reaches the handler's socket as a FIN; its next write
            # draws an RST, and the write after that fails.  Wait for the RST
            # (POLLHUP) between writes: on a loaded machine the kernel may
            # deliver it after any number of writes.
            poll = select.poll()
            poll.register(handler.sock, 0)     # only POLLHUP and POLLERR
            for i in range(10):         # writes to the dead socket are lost...
                logger.error("lost %d" % i)
                if handler.sock is None:
                    break
                poll.poll(TIMEOUT * 1000)
            logger.error("refused")     # ...and reconnecting is refused
            assert handler.sock is None
        logger.error("two")             # accepted again: the stream resumes
        assert handled.acquire(timeout=TIMEOUT)
        assert out == ["one", "two"]
        assert len(server.connections) == 2
        assert server.connections[0].fault == "drop"


def test_delay_reply_and_accept():
    with testservers.TestTCPServer(None, echo_lines) as server:
        with server.delay(accept=0.1, reply=0.2):
            with connect(server) as c:
                started = time.monotonic()
                c.sendall(b"slow\n")
                assert c.recv(10) == b"slow\n"
                assert time.monotonic() - started >= 0.2
        with connect(server) as c:
            c.sendall(b"fast\n")
            assert c.recv(10) == b"fast\n"
        with pytest.raises(ValueError):
            server.delay(reply=-1)


def test_stop_cuts_a_delay_short():
    entered = threading.Event()

    def handler(request):
        entered.set()
        request.wfile.write(b"never in time")

    server = testservers.TestTCPServer(None, handler).start()
    server.delay(reply=60)
    c = connect(server)
    assert entered.wait(TIMEOUT)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < TIMEOUT     # not the 60 s of the delay
    c.close()


def test_drip_sends_a_few_bytes_at_a_time():
    # What the client receives at a time depends on when it reads (a client
    # late by one interval gets two chunks in one recv), so the chunks are
    # checked where they are made: send() passes on one chunk; sendall()
    # sends the rest chunk by chunk, each after its interval: three waits in
    # all, which shows in the time the reply takes (two would mean sendall
    # sent the rest at once).  A lower bound: load only lengthens it.
    sent, interval = [], 0.05

    def handler(request):
        sent.append(request.connection.send(b"abcdef"))
        request.wfile.write(b"abcdef"[sent[0]:])

    with testservers.TestTCPServer(None, handler) as server:
        server.drip(chunk=2, interval=interval)
        started = time.monotonic()
        with connect(server) as c:
            data = b""
            while True:
                piece = c.recv(100)
                if not piece:
                    break
                data += piece
        assert time.monotonic() - started > 2.5 * interval
        assert data == b"abcdef" and sent == [2]
        with pytest.raises(ValueError):
            server.drip(chunk=0)


def test_garbage_then_close():
    with testservers.TestTCPServer(None, echo_lines) as server:
        with server.garbage(b"\x00junk"):
            with connect(server) as c:
                assert c.recv(100) == b"\x00junk"
                assert c.recv(100) == b""
        (conn,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert conn.fault == "garbage"


def test_hang_up_closes_with_no_reply():
    with testservers.TestTCPServer(None, echo_lines) as server:
        server.hang_up()
        with connect(server) as c:
            assert c.recv(100) == b""
        server.clear_faults()
        with connect(server) as c:
            c.sendall(b"ok\n")
            assert c.recv(10) == b"ok\n"


def test_drop_datagrams_counted():
    with testservers.TestUDPServer() as server:
        server.drop_datagrams(2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for i in range(5):
                c.sendto(b"%d" % i, server.server_address)
        got = server.wait_datagrams(3, TIMEOUT)
        assert [d.data for d in got] == [b"2", b"3", b"4"]
        assert [d.data for d in server.dropped_datagrams] == [b"0", b"1"]
        with pytest.raises(ValueError):
            server.drop_datagrams(-1)


def test_datagram_handler_loses_records_while_refused(logger):
    with testservers.TestUDPServer() as server:
        handler = logging.handlers.DatagramHandler("127.0.0.1", server.port)
        logger.addHandler(handler)
        with server.refuse():
            logger.error("into the void")
        logger.error("heard")
        (d,) = server.wait_datagrams(1, TIMEOUT)
        assert pickle.loads(d.data[4:])["msg"] == "heard"


# -- the faults as HTTP and SMTP clients see them ----------------------------------

def http_server():
    server = testservers.TestHTTPServer()
    server.expect("GET", "/", body=b"fine")
    return server.start()


def test_http_client_sees_garbage_as_bad_status_line():
    import http.client
    with http_server() as server:
        with server.garbage():
            conn = server.http_connection()
            conn.request("GET", "/")
            with pytest.raises(http.client.BadStatusLine):
                conn.getresponse()
            conn.close()
        (record,) = server.wait_connections(1, TIMEOUT, closed=True)
        assert record.fault == "garbage" and record.bytes_received > 0


def test_http_client_sees_hang_up_as_remote_disconnected():
    import http.client
    with http_server() as server:
        server.hang_up()
        conn = server.http_connection()
        conn.request("GET", "/")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
        conn.close()


@pytest.mark.parametrize("reset", [False, True])
def test_http_client_sees_drop_of_keep_alive_connection(reset):
    import http.client
    with http_server() as server:
        conn = server.http_connection()
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"fine"
        server.wait_connections(1, TIMEOUT)      # open: the drop will hit it
        server.drop(reset=reset)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                            BrokenPipeError)):
            conn.request("GET", "/")
            conn.getresponse()
        conn.close()
        assert server.connections[0].fault == ("reset" if reset else "drop")


def test_http_client_times_out_on_delayed_reply():
    with http_server() as server:
        with server.delay(reply=60):     # far past the client's timeout, loaded or not
            conn = server.http_connection(timeout=0.2)
            conn.request("GET", "/")
            with pytest.raises(socket.timeout):
                conn.getresponse()
            conn.close()
        conn = server.http_connection()
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"fine"
        conn.close()


def test_http_client_refused_then_served_after_restart():
    with http_server() as server:
        with server.refuse():
            with pytest.raises(ConnectionRefusedError):
                server.http_connection().connect()
        server.restart()
        conn = server.http_connection()
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()


def test_smtplib_sees_reset_and_reconnects_after_restart():
    import smtplib
    with testservers.TestSMTPServer() as server:
        client = server.smtp_client()
        client.noop()
        server.drop(reset=True)
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
            client.noop()
        client.close()
        server.restart()
        with server.smtp_client() as client:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: again\r\n\r\n")
        assert server.wait_messages(1, TIMEOUT)[0].message["Subject"] == "again"
