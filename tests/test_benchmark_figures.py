"""The docs quote only figures that benchmarks/run_all.py produced.

README.rst and the pages of Doc/ hold their measured figures between
``.. benchmark figures: NAME`` and ``.. end of benchmark figures``; the
text there must be exactly what ``benchmarks/results.json`` (the run the
docs quote) renders to, and no measured figure may stand outside those
blocks.  No benchmark runs here: only the rendering.
"""

import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import _figures  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results.json")


def _pages():
    pages = ["README.rst"]
    for folder, _, files in os.walk(os.path.join(ROOT, "Doc")):
        pages += [os.path.relpath(os.path.join(folder, f), ROOT)
                  for f in files if f.endswith(".rst")]
    return sorted(pages)


def _read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def results():
    return _figures.load(RESULTS)


@pytest.mark.parametrize("page", sorted(_figures.PAGES))
def test_page_holds_its_blocks_as_rendered(page, results):
    found = _figures.blocks(_read(page))
    assert sorted(found) == sorted(_figures.PAGES[page])
    for name, body in found.items():
        assert body == _figures.render(name, results), (
            "%s: the %r figures differ from benchmarks/results.json; run "
            "python3 benchmarks/run_all.py --render-docs benchmarks/results.json"
            % (page, name))


def test_no_other_page_has_blocks():
    for page in _pages():
        if page not in _figures.PAGES:
            assert not _figures.blocks(_read(page)), page


# A measured figure: a rate, a "N times <peer>" comparison, or a time per
# operation of a server.  Limits and defaults ("at least every 50 ms",
# "65,536 bytes") are not measurements and do not match.
MEASURED = re.compile(
    r"\d[\d,.]*\s*(?:keep-alive\s+)?(?:requests|messages|datagrams|connections|req|msgs)"
    r"\s*(?:/\s*s\b|per\s+second|a\s+second)"
    r"|\d[\d.]*\s*times\s+(?:test_logging|aiosmtpd|pytest-|the\s+stdlib|http\.server"
    r"|ThreadingHTTPServer|werkzeug)"
    r"|\d[\d.]*\s*ms\s+per\s+(?:``)?(?:stop|start|cycle|request|message)"
    r"|(?:peak|resident\s+set\s+size|RSS)\D{0,60}\d[\d.]*\s*MiB",
    re.I)


@pytest.mark.parametrize("page", _pages())
def test_no_measured_figure_outside_the_blocks(page):
    text = _figures.outside_blocks(_read(page))
    found = [m.group(0) for m in MEASURED.finditer(text)]
    assert not found, "%s quotes figures benchmarks/run_all.py did not write: %r" % (
        page, found)


def test_the_pattern_catches_what_the_docs_used_to_quote():
    for quoted in ["7,000 keep-alive requests\nper second", "5,164 requests/s",
                   "6,646\nmessages/s", "1.9 times test_logging's", "2.5 to 3.3 times pytest-",
                   "440 ms per ``stop()``",
                   "its peak\nresident set size (``ru_maxrss``) was 27.7 MiB"]:
        assert MEASURED.search(quoted), quoted


def test_results_come_from_one_pinned_run_with_every_peer(results):
    meta = results["meta"]
    assert meta["pinned_cpu"] is not None
    assert meta["trials"] >= 5
    assert "--quick" not in meta["command"] and "--only" not in meta["command"]
    assert meta["command"].startswith("python3 benchmarks/run_all.py")
    for key in ["date", "python", "machine"]:
        assert meta[key]
    # A 512 MiB upload, framed either way, costs the server less than 64 MiB.
    upload = results["upload"]
    assert upload["size_mib"] >= 512 and upload["requests"] == 2
    assert upload["peak_kib"] < 64 * 1024
    assert not results["skipped_peers"], results["skipped_peers"]
    for key in ["http_new", "http_keepalive", "smtp", "tcp_new", "udp_burst_500",
                "udp_burst_10000", "cycle", "stop", "idle", "load_tcp", "load_udp",
                "load_http", "load_smtp"]:
        measure = results["measures"][key]
        for name, row in measure["rows"].items():
            assert row["wall"]["n"] >= 1 and "errors" not in row, (key, name, row.get("errors"))
        assert set(["min", "median", "max"]) <= set(next(iter(measure["rows"].values()))["wall"])


def test_results_name_nothing_outside_the_repository(results):
    text = _read(os.path.relpath(RESULTS, ROOT))
    assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text


def test_render_docs_rewrites_a_stale_block(tmp_path, results):
    for page in _figures.PAGES:
        target = tmp_path / page
        target.parent.mkdir(parents=True, exist_ok=True)
        stale = _figures.BLOCK.sub(lambda m: "%s%s\nstale\n\n%s" % (
            _figures.BEGIN, m.group(1), _figures.END), _read(page))
        target.write_text(stale, encoding="utf-8")
    changed = _figures.update_docs(results, root=str(tmp_path))
    assert sorted(changed) == sorted(_figures.PAGES)
    for page in _figures.PAGES:
        assert _figures.blocks((tmp_path / page).read_text(encoding="utf-8")) == {
            name: _figures.render(name, results) for name in _figures.PAGES[page]}
