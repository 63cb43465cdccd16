"""Awaitable waits: an asyncio test awaits the server while its client runs.

A blocking ``wait_...`` inside a coroutine freezes the event loop, so the
client coroutine under test never runs.  Each ``async_wait_...`` twin is
woken by the recording thread through the loop itself.
"""

import asyncio
import socket
import threading
import unittest

import pytest

from testservers import TestHTTPServer, TestSMTPServer, TestTCPServer, TestUDPServer

from conftest import TIMEOUT


class AwaitTest(unittest.IsolatedAsyncioTestCase):

    async def asyncSetUp(self):
        self.server = await TestTCPServer(handler=self.echo).async_start()
        self.addAsyncCleanup(self.server.async_stop)

    @staticmethod
    def echo(request):
        line = request.rfile.readline()
        request.wfile.write(line.upper())

    async def client(self, text):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            writer.write(text + b"\n")
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def test_the_client_runs_while_the_test_awaits(self):
        # The client is a task on the same loop: a blocking wait would
        # starve it, and the wait would time out.
        task = asyncio.ensure_future(self.client(b"hello"))
        (record,) = await self.server.async_wait_connections(1, closed=True, timeout=TIMEOUT)
        self.assertEqual(await task, b"HELLO\n")
        self.assertEqual(record.data, b"hello\n")

    async def test_many_waits_at_once(self):
        tasks = [asyncio.ensure_future(self.client(b"%d" % i)) for i in range(5)]
        waits = [self.server.async_wait_connections(n, timeout=TIMEOUT) for n in range(1, 6)]
        counts = [len(found) for found in await asyncio.gather(*waits)]
        self.assertEqual(counts[-1], 5)
        self.assertEqual(sorted(await asyncio.gather(*tasks)),
                         sorted(b"%d\n" % i for i in range(5)))

    async def test_timeout_says_what_arrived(self):
        with self.assertRaisesRegex(TimeoutError, r"waited 0.05 s for 1 connections; "
                                                  r"received nothing"):
            await self.server.async_wait_connections(1, timeout=0.05)

    async def test_zero_returns_at_once(self):
        self.assertEqual(await self.server.async_wait_connections(0, timeout=0), [])

    async def test_arguments_are_checked_at_the_call(self):
        with self.assertRaises(ValueError):
            self.server.async_wait_connections(-1)

    async def test_wait_for_runs_the_predicate_on_the_loop(self):
        threads = []

        def predicate():
            threads.append(threading.current_thread())
            return len(self.server.connections) >= 1
        task = asyncio.ensure_future(self.client(b"x"))
        self.assertIs(await self.server.async_wait_for(predicate, TIMEOUT), True)
        await task
        self.assertEqual(set(threads), {threading.current_thread()})


class HandlerErrorTest(unittest.IsolatedAsyncioTestCase):

    async def test_handler_error_is_raised_at_once(self):
        def handler(request):
            raise KeyError("from the handler")
        server = TestUDPServer(handler=handler)
        async with server:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", server.port))
            try:
                transport.sendto(b"boom")
                # 2 datagrams never come; the error ends the wait instead.
                with self.assertRaisesRegex(KeyError, "from the handler"):
                    await server.async_wait_datagrams(2, timeout=TIMEOUT)
            finally:
                transport.close()
            self.assertEqual(len(server.take_errors()), 1)

    async def test_async_stop_raises_handler_errors(self):
        server = await TestTCPServer(handler=lambda request: 1 / 0).async_start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        self.assertEqual(await reader.read(), b"")     # the handler failed and closed
        writer.close()
        await writer.wait_closed()
        with self.assertRaises(ZeroDivisionError):
            await server.async_stop()
        await server.async_stop()       # twice, as stop()

    async def test_async_with_stops_on_the_way_out(self):
        async with TestTCPServer() as server:
            self.assertTrue(server.ready.is_set())
        self.assertFalse(server.ready.is_set())
        self.assertIsNone(server.socket)


@pytest.mark.parametrize("cls, twin", [
    (TestTCPServer, "async_wait_connections"), (TestUDPServer, "async_wait_datagrams"),
    (TestSMTPServer, "async_wait_messages"), (TestHTTPServer, "async_wait_requests")])
def test_every_wait_has_its_twin(cls, twin):
    wait = getattr(cls, twin[len("async_"):])
    assert twin in getattr(cls, twin).__qualname__
    assert wait.__name__ in getattr(cls, twin).__doc__


def test_a_wait_inside_a_coroutine_from_another_loop_thread():
    # The twin works on any loop, also one run by asyncio.run().
    async def main():
        async with TestUDPServer() as server:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.sendto(b"x", ("127.0.0.1", server.port))
                return [d.data for d in await server.async_wait_datagrams(1, TIMEOUT)]
            finally:
                sock.close()
    assert asyncio.run(main()) == [b"x"]


class ProtocolTwinsTest(unittest.IsolatedAsyncioTestCase):

    async def test_http_request_and_expectation(self):
        async with TestHTTPServer() as server:
            exp = server.expect("GET", "/ping", body=b"pong")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            (answered,) = await exp.async_wait(timeout=TIMEOUT)
            (request,) = await server.async_wait_requests(1, timeout=TIMEOUT)
            self.assertIs(answered, request)
            self.assertTrue((await reader.read()).endswith(b"\r\n\r\npong"))
            writer.close()
            await writer.wait_closed()

    async def test_smtp_message(self):
        async with TestSMTPServer() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for line in (b"HELO me", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>",
                         b"DATA", b"Subject: hi\r\n\r\nbody\r\n.", b"QUIT"):
                await reader.readline()
                writer.write(line + b"\r\n")
            (message,) = await server.async_wait_messages(1, timeout=TIMEOUT)
            self.assertEqual(message.rcpttos, ["b@example.com"])
            await reader.read()
            writer.close()
            await writer.wait_closed()


class StrictAsyncWithTest(unittest.IsolatedAsyncioTestCase):
    # async with must decide as with does: the block's own exception wins
    # over unused expectations; without one, the expectations fail it.

    async def test_the_blocks_exception_wins(self):
        with self.assertRaises(KeyError):
            async with TestHTTPServer(strict=True) as server:
                server.expect("GET", "/never")
                raise KeyError("from the block")

    async def test_unused_expectations_fail_the_exit(self):
        with self.assertRaisesRegex(AssertionError, "not used as declared"):
            async with TestHTTPServer(strict=True) as server:
                server.expect("GET", "/never")


class ProcessModeTwinsTest(unittest.IsolatedAsyncioTestCase):
    # Process mode: the call goes to the child at once and its answer is
    # awaited on the loop (add_reader on the pipe), so the client runs.

    async def test_the_client_runs_while_the_child_waits(self):
        async with TestTCPServer.in_process() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"hello")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            (conn,) = await server.async_wait_connections(1, closed=True, timeout=TIMEOUT)
            self.assertEqual(conn.data, b"hello")
        # Stopped: the twin runs on the final records, here.
        self.assertEqual(len(await server.async_wait_connections(1, timeout=0)), 1)

    async def test_a_sync_call_while_awaiting_is_refused(self):
        async with TestUDPServer.in_process() as server:
            waiting = asyncio.ensure_future(server.async_wait_datagrams(1, timeout=TIMEOUT))
            await asyncio.sleep(0)      # let it send its call (not a wait for an event)
            with self.assertRaisesRegex(RuntimeError, "awaiting an answer"):
                server.datagrams
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.sendto(b"x", ("127.0.0.1", server.port))
                (datagram,) = await waiting
            finally:
                sock.close()
            self.assertEqual(datagram.data, b"x")

    async def test_timeout_message_comes_from_the_child(self):
        async with TestTCPServer.in_process() as server:
            with self.assertRaisesRegex(TimeoutError, "waited 0.05 s for 1 connections"):
                await server.async_wait_connections(1, timeout=0.05)
