"""Load for the protocol servers: 64 concurrent clients, each on one
connection, every request and message answered and recorded exactly once,
in each connection's order.

TCP and UDP load are in test_long_runs.py; this module reuses its bounds
(CLIENTS, PER_CLIENT, DEADLINE) and its client runner.  Every loop is
bounded in count, every socket operation by TIMEOUT, every join by
DEADLINE.
"""

import smtplib

import testservers
from conftest import TIMEOUT
from test_long_runs import CLIENTS, DEADLINE, PER_CLIENT, _run_clients


def _by_connection(records, key):
    """Group the ids that *key* gives each record by its connection, in order."""
    groups = {}
    for record in records:
        conn, ident = key(record)
        groups.setdefault(conn, []).append(ident)
    return groups


def _check(groups):
    """Each connection carried one client's ids 0..PER_CLIENT-1 in order, and
    every client appears once: nothing lost, nothing duplicated."""
    assert len(groups) == CLIENTS, "%d connections for %d clients" % (len(groups), CLIENTS)
    clients = set()
    for ids in groups.values():
        (client,) = {i for i, _ in ids}
        assert [j for _, j in ids] == list(range(PER_CLIENT)), (client, ids[:10])
        clients.add(client)
    assert clients == set(range(CLIENTS))


def test_http_load_keep_alive_nothing_lost_order_kept():
    def handler(request):
        reply = b"%s %s %s" % (request.command.encode(), request.headers["X-Id"].encode(),
                               request.body())
        request.send_response(200)
        request.send_header("Content-Length", str(len(reply)))
        request.end_headers()
        request.wfile.write(reply)

    with testservers.TestHTTPServer(None, handler) as server:
        def client(i):
            conn = server.http_connection(TIMEOUT)
            try:
                for j in range(PER_CLIENT):
                    ident = "%d.%d" % (i, j)
                    method, body = ("POST", ident.encode()) if j % 2 else ("GET", None)
                    conn.request(method, "/load/%s" % ident, body=body, headers={"X-Id": ident})
                    response = conn.getresponse()
                    expected = b"%s %s %s" % (method.encode(), ident.encode(), body or b"")
                    assert (response.status, response.read()) == (200, expected)
            finally:
                conn.close()
        _run_clients(client)
        requests = server.wait_requests(CLIENTS * PER_CLIENT, DEADLINE)
        connections = server.connections
    assert len(requests) == CLIENTS * PER_CLIENT
    assert all(r.status == 200 and r.rejected is None for r in requests)
    assert len(connections) == CLIENTS          # keep-alive held: one connection each

    def key(r):
        i, j = r.path.rsplit("/", 1)[1].split(".")
        assert r.headers["X-Id"] == "%s.%s" % (i, j)
        return r.connection.id, (int(i), int(j))
    _check(_by_connection(requests, key))


def test_smtp_load_one_session_per_client_nothing_lost_order_kept():
    with testservers.TestSMTPServer() as server:
        def client(i):
            with smtplib.SMTP("127.0.0.1", server.port, local_hostname="localhost",
                              timeout=TIMEOUT) as smtp:
                for j in range(PER_CLIENT):
                    refused = smtp.sendmail(
                        "c%d@example.org" % i, ["r%d@example.org" % j],
                        b"Subject: %d.%d\r\n\r\nmessage %d of client %d\r\n" % (i, j, j, i))
                    assert refused == {}
        _run_clients(client)
        messages = server.wait_messages(CLIENTS * PER_CLIENT, DEADLINE)
    assert len(messages) == CLIENTS * PER_CLIENT

    def key(m):
        i, j = (int(n) for n in m.message["Subject"].split("."))
        assert (m.mailfrom, m.rcpttos) == ("c%d@example.org" % i, ["r%d@example.org" % j])
        assert m.data.endswith(b"message %d of client %d\r\n" % (j, i))
        return m.connection_id, (i, j)
    _check(_by_connection(messages, key))
