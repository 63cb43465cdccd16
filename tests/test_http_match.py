"""What an expectation matches: the body (bytes, text, JSON, forms, a
predicate), the query in the path, query dicts with non-str values, header
patterns and absent headers, and the unmatched-request report."""

import email.mime.application
import email.mime.multipart
import email.mime.text
import email.policy
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

import testservers
from conftest import TIMEOUT, http_call as call


def multipart(fields, files=(), boundary="XyZ-boundary"):
    """Build a multipart/form-data body by hand (RFC 7578)."""
    out = b""
    for name, value in fields:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary.encode(), name.encode(), value.encode("utf-8")))
    for name, filename, ctype, data in files:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                b"Content-Type: %s\r\n\r\n%s\r\n"
                % (boundary.encode(), name.encode(), filename.encode(), ctype.encode(), data))
    out += b"--%s--\r\n" % boundary.encode()
    return out, {"Content-Type": "multipart/form-data; boundary=%s" % boundary}


# -- issue 10: the query in the path, and query dicts -------------------------------

def test_query_in_the_path_is_split(server):
    server.expect("GET", "/x?a=1", body="split")
    assert call(server, "GET", "/x?a=1") == (200, b"split")
    status, body = call(server, "GET", "/x?a=2")
    assert status == 404 and b"query is 'a=2', not 'a=1'" in body
    assert call(server, "GET", "/x")[0] == 404
    assert len(server.take_errors()) == 2
    (exp,) = server.expectations
    assert (exp.path, exp.query) == ("/x", "a=1")


def test_empty_query_in_the_path_means_no_query(server):
    server.expect("GET", "/bare?", body="bare")
    assert call(server, "GET", "/bare") == (200, b"bare")
    assert call(server, "GET", "/bare?x=1")[0] == 404
    server.take_errors()


def test_query_in_path_and_query_argument_refused(server):
    with pytest.raises(ValueError, match="not both"):
        server.expect("GET", "/x?a=1", query={"a": "1"})
    with pytest.raises(ValueError, match="fragment"):
        server.expect("GET", "/x#top")


def test_query_dict_values_compared_as_strings(server):
    server.expect("GET", "/page", query={"n": 1, "ids": [3, 4], "f": 0.5, "q": "s"},
                  body="ints")
    assert call(server, "GET", "/page?n=1&ids=3&ids=4&f=0.5&q=s") == (200, b"ints")
    assert call(server, "GET", "/page?n=1&ids=4&ids=3&f=0.5&q=s")[0] == 404
    server.take_errors()


@pytest.mark.parametrize("query, error", [
    ({"a": True}, TypeError), ({"a": None}, TypeError), ({1: "a"}, TypeError),
    ({"a": []}, ValueError), ({"a": [b"x"]}, TypeError),
])
def test_query_validated(server, query, error):
    with pytest.raises(error, match="query"):
        server.expect("GET", "/", query=query)


# -- headers ------------------------------------------------------------------------

def test_header_patterns_ints_and_absent(server):
    server.expect("GET", "/h", match_headers={"Authorization": re.compile(r"Bearer \w+"),
                                              "X-Version": 2, "Cookie": None}, body="ok")
    assert call(server, "GET", "/h", headers={"Authorization": "Bearer abc",
                                              "X-Version": "2"}) == (200, b"ok")
    status, body = call(server, "GET", "/h", headers={"Authorization": "Basic x",
                                                      "X-Version": "2", "Cookie": "a=1"})
    assert status == 404
    assert b"header Authorization 'Basic x' does not match 'Bearer \\\\w+'" in body
    assert b"header Cookie is sent ('a=1'); expected none" in body
    assert b"no header X-Version" in call(server, "GET", "/h")[1]
    assert len(server.take_errors()) == 2


# -- the body -----------------------------------------------------------------------

def test_match_body_bytes_and_text(server):
    server.expect("POST", "/raw", match_body=b"\x00\xff", body="bytes")
    server.expect("POST", "/text", match_body="caf\xe9", body="text")
    assert call(server, "POST", "/raw", b"\x00\xff") == (200, b"bytes")
    assert call(server, "POST", "/text", "caf\xe9".encode("latin-1"),
                {"Content-Type": "text/plain; charset=latin-1"}) == (200, b"text")
    assert call(server, "POST", "/text", "caf\xe9".encode("utf-8")) == (200, b"text")
    status, body = call(server, "POST", "/raw", b"\x00")
    assert status == 404 and b"body is b'\\x00', not b'\\x00\\xff'" in body
    server.take_errors()


def test_match_json_as_data(server):
    exp = server.expect("POST", "/j", match_json={"a": [1, 2.5, None], "b": True, "c": "x"},
                        status=201)
    sent = b'{ "c": "x", "b": true,\n "a": [1.0, 2.5, null] }'     # order, spacing, 1.0
    assert call(server, "POST", "/j", sent)[0] == 201
    for body, why in [
            (b'{"a": [1, 2.5, null], "b": 1, "c": "x"}', "at $.b: 1, expected True"),
            (b'{"a": [1, 2.5], "b": true, "c": "x"}', "at $.a: 2 items, expected 3"),
            (b'{"a": [1, 2.5, null], "b": true}', "at $: no key 'c'"),
            (b'{"a": [1, 2.5, null], "b": true, "c": "x", "d": 0}', "unexpected key 'd'"),
            (b'[1]', "at $: [1], expected an object"),
            (b'{"a": ', "not JSON")]:
        status, text = call(server, "POST", "/j", body)
        assert status == 404 and why in text.decode(), text
    assert exp.count == 1 and len(server.take_errors()) == 6


def test_match_json_from_urllib(server):
    server.expect("PUT", "/items/1", match_json=({"tags": ("a", "b")}), json={"saved": 1})
    request = urllib.request.Request(server.url("/items/1"), method="PUT",
                                     data=json.dumps({"tags": ["a", "b"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert json.load(response) == {"saved": 1}


def test_match_form_urlencoded(server):
    server.expect("POST", "/login", match_form={"user": "ada", "n": 1}, body="in")
    data = urllib.parse.urlencode({"user": "ada", "n": "1", "extra": "ignored"}).encode()
    with urllib.request.urlopen(server.url("/login"), data=data, timeout=TIMEOUT) as response:
        assert response.read() == b"in"
    status, body = call(server, "POST", "/login", b"user=bob&n=1",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 404 and b"form field 'user' is ['bob'], not ['ada']" in body
    status, body = call(server, "POST", "/login", b"user=ada")
    assert status == 404 and b"no form field 'n'" in body
    assert len(server.take_errors()) == 2


def test_match_form_multipart_fields_and_files(server):
    exp = server.expect("POST", "/upload", match_form={
        "title": "caf\xe9", "tag": ["a", "b"], "doc": b"%PDF-1.7\r\n\x00\xff"}, status=201)
    body, headers = multipart([("title", "caf\xe9"), ("tag", "a"), ("tag", "b")],
                              [("doc", "r.pdf", "application/pdf", b"%PDF-1.7\r\n\x00\xff")])
    assert call(server, "POST", "/upload", body, headers)[0] == 201
    (request,) = exp.requests
    assert request.form() == {"title": ["caf\xe9"], "tag": ["a", "b"]}
    (doc,) = request.files()["doc"]
    assert (doc.filename, doc.content_type, doc.data) == (
        "r.pdf", "application/pdf", b"%PDF-1.7\r\n\x00\xff")
    body, headers = multipart([("title", "cafe"), ("tag", "a"), ("tag", "b")],
                              [("doc", "r.pdf", "application/pdf", b"other")])
    status, text = call(server, "POST", "/upload", body, headers)
    assert status == 404
    assert "form field 'title' is ['cafe'], not ['caf\xe9']" in text.decode()
    assert "form field 'doc' is [b'other'], not [b'%PDF-1.7" in text.decode()
    server.take_errors()


def test_multipart_built_by_the_email_package(server):
    # A client that builds its body with email.mime: preamble, quoting, an
    # RFC 2231 file name, a text part with its own charset.
    message = email.mime.multipart.MIMEMultipart("form-data")
    text = email.mime.text.MIMEText("gr\xfc\xdf", "plain", "iso-8859-1")
    text.add_header("Content-Disposition", "form-data", name="greeting")
    message.attach(text)
    upload = email.mime.application.MIMEApplication(b"\x89PNG\r\n", "octet-stream")
    del upload["Content-Transfer-Encoding"]
    upload.set_payload(b"\x89PNG\r\n")
    upload.add_header("Content-Disposition", "form-data", name="file",
                      filename=("utf-8", "", "b\xe4r.png"))
    message.attach(upload)
    raw = message.as_bytes(policy=email.policy.HTTP)
    head, _, body = raw.partition(b"\r\n\r\n")
    ctype = message["Content-Type"]
    exp = server.expect("POST", "/m", match_form={"greeting": "gr\xfc\xdf",
                                                 "file": b"\x89PNG\r\n"})
    assert call(server, "POST", "/m", body, {"Content-Type": ctype})[0] == 200
    (request,) = exp.requests
    assert request.files()["file"][0].filename == "b\xe4r.png"


@pytest.mark.parametrize("body, why", [
    (b"no boundary here", "no boundary"),
    (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", "ends inside part 1"),
    (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", "no Content-Disposition name"),
    (b"--XyZ junk\r\n\r\nv\r\n--XyZ--", "malformed boundary line"),
])
def test_malformed_multipart_is_a_mismatch_and_a_value_error(server, body, why):
    server.expect("POST", "/m", match_form={"a": "value"})
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    status, text = call(server, "POST", "/m", body, headers)
    assert status == 404 and why in text.decode()
    (error,) = server.take_errors()
    with pytest.raises(ValueError, match=why):
        server.requests[0].form()


def test_match_predicate(server):
    server.expect("POST", "/orders", match=lambda r: r.json()["qty"] > 10, body="bulk")
    server.expect("POST", "/orders", body="retail")
    assert call(server, "POST", "/orders", b'{"qty": 50}') == (200, b"bulk")
    assert call(server, "POST", "/orders", b'{"qty": 5}') == (200, b"retail")


def test_predicate_that_raises_is_an_error_and_no_match(server):
    def needs_json(request):
        return request.json()["kind"] == "a"

    server.expect("POST", "/p", match=needs_json, body="a")
    status, body = call(server, "POST", "/p", b"not json")
    assert status == 404 and b"match needs_json raised" in body
    errors = server.take_errors()
    assert {type(e) for e in errors} == {json.JSONDecodeError, testservers.UnexpectedRequest}


def test_predicate_not_called_when_the_rest_differs(server):
    calls = []
    server.expect("POST", "/p", match=lambda r: calls.append(r) or True)
    assert call(server, "GET", "/p")[0] == 404
    assert call(server, "POST", "/other")[0] == 404
    assert calls == []
    server.take_errors()


# -- the unmatched-request report ---------------------------------------------------

def test_report_lists_every_expectation_and_why():
    server = testservers.TestHTTPServer().start()
    server.expect("GET", "/items", body="list")
    server.expect("POST", "/items", query={"dry": "1"}, match_json={"n": 1})
    server.expect("POST", "/items", match_headers={"X-Key": "k"})
    server.expect("POST", re.compile(r"/orders/\d+"))
    once = server.expect("POST", "/items", times=1)
    server.expect("POST", "/items", ordered=True)
    server.expect("POST", "/items", ordered=True, match_form={"a": "1"})
    assert call(server, "POST", "/items", b"x")[0] == 200       # once
    assert call(server, "POST", "/items", b"x")[0] == 200       # the first ordered
    assert once.remaining == 0
    status, body = call(server, "POST", "/items?dry=0", b'{"n": 2}')
    assert status == 404
    with pytest.raises(testservers.UnexpectedRequest) as info:
        server.stop()
    message = str(info.value)
    assert body.decode() in "404 Not Found: " + message.split(": the client got 404: ", 1)[1] + "\n"
    for why in ["no expectation matches POST /items?dry=0; the 7 expectations:",
                "GET /items -> 200, 4 bytes, always: method is POST, not GET",
                "query is {'dry': ['0']}, not {'dry': ['1']}",
                "no header X-Key",
                "path '/items' does not match '/orders/\\\\d+'",
                "-> 200, 0 bytes, 1 times: used up (answered 1 of 1)",
                "-> 200, 0 bytes, ordered: used up (answered 1 of 1)",
                "POST /items with form a -> 200, 0 bytes, ordered: no form field 'a'",
                "the next ordered one is POST /items with form a"]:
        assert why in message, (why, message)
    # The JSON of the second one is not looked at: its query differs already.
    assert "JSON body" not in message


def test_report_is_capped(server):
    for i in range(25):
        server.expect("GET", "/e%d" % i)
    status, body = call(server, "GET", "/none")
    assert status == 404 and b"/e19 ->" in body and b"/e20 ->" not in body
    assert b"and 5 more" in body
    server.take_errors()


def test_report_with_no_expectations(server):
    status, body = call(server, "GET", "/")
    assert status == 404 and b"there are no expectations" in body
    server.take_errors()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(method="GE T"), ValueError, "method must be a token"),
    (dict(match_headers={"X": 1.5}), TypeError, "a compiled re pattern or None"),
    (dict(match_headers="X: 1"), TypeError, "a mapping or a list of"),
    (dict(match_body=1), TypeError, "match_body must be bytes or str"),
    (dict(match_json=object()), TypeError, "not JSON serializable"),
    (dict(match_json={(1, 2): 3}), TypeError, "keys must be"),
    (dict(match_form=["a"]), TypeError, "match_form must be a dict"),
    (dict(match_form={"a": None}), TypeError, "match_form value of 'a'"),
    (dict(match_form={"a": []}), ValueError, "an empty list matches nothing"),
    (dict(match_form={1: "a"}), TypeError, "match_form keys must be str"),
    (dict(match="yes"), TypeError, "match must be a callable"),
    (dict(match=lambda: True), TypeError, "must accept one positional argument"),
    (dict(match=lambda a, b: True), TypeError, "must accept one positional argument"),
])
def test_match_arguments_validated(server, kwargs, error, message):
    kwargs = dict(dict(method="GET", path="/"), **kwargs)
    with pytest.raises(error, match=message):
        server.expect(**kwargs)
    assert server.expectations == []
