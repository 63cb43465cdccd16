"""unittest integration: start_for(testcase) registers the stop as a cleanup."""

import socket
import unittest

import testservers


def run_case(case_class):
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case_class).run(result)
    return result


def test_start_for_stops_after_test_and_reports_handler_error():
    servers = []

    class Case(unittest.TestCase):
        def setUp(self):
            self.server = testservers.TestUDPServer(None, self.handle).start_for(self)
            servers.append(self.server)

        def handle(self, request):
            self.assertEqual(request.packet, b"good")

        def test_good(self):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.sendto(b"good", self.server.server_address)
            self.server.wait_datagrams(1)

        def test_bad(self):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.sendto(b"bad", self.server.server_address)
            self.server.wait_datagrams(1)

    result = run_case(Case)
    assert result.testsRun == 2
    assert not result.errors
    (failed, trace), = result.failures          # the handler's assertion fails test_bad
    assert failed.id().endswith("test_bad") and "b'bad' != b'good'" in trace
    assert all(not s.ready.is_set() and s.socket is None for s in servers)


def test_failing_setup_still_cleans_up():
    servers = []

    class Case(unittest.TestCase):
        def setUp(self):
            servers.append(testservers.TestTCPServer().start_for(self))
            raise RuntimeError("setUp fails after the start")

        def test_never_runs(self):
            pass

    result = run_case(Case)
    assert len(result.errors) == 1
    assert servers[0].socket is None and not servers[0].ready.is_set()
