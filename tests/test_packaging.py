"""What a user gets outside this checkout: a vendored copy under another
name, the files the sdist and wheel carry, and the version in CHANGES.rst."""

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import testservers
from conftest import TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "testservers")

# Runs pytest with any import of the installed name refused, so the vendored
# copy passes only if it never imports ``testservers`` by name.
_RUN_PYTEST = textwrap.dedent('''
    import sys

    class RefuseInstalledName:
        def find_spec(self, name, path=None, target=None):
            if name == "testservers" or name.startswith("testservers."):
                raise ImportError("the vendored copy imported %r by name" % name)

    sys.meta_path.insert(0, RefuseInstalledName())
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
''')

_VENDORED_TEST = textwrap.dedent('''
    import smtplib
    import socket
    import sys
    import urllib.request

    from ._servers import TestTCPServer, client_ssl_context


    def test_fixtures(tcp_server, udp_server, unix_stream_server,
                      unix_datagram_server, smtp_server, http_server, https_server):
        assert type(tcp_server).__module__.startswith("tests._servers.")
        with socket.create_connection(("127.0.0.1", tcp_server.port)) as c:
            c.sendall(b"hello")
        assert tcp_server.wait_connections(1, closed=True)[0].data == b"hello"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"ping", udp_server.server_address)
        assert udp_server.wait_datagrams(1)[0].data == b"ping"
        assert unix_stream_server.port is None and unix_datagram_server.ready.is_set()
        with smtplib.SMTP("127.0.0.1", smtp_server.port, "localhost", timeout=10) as c:
            c.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        assert smtp_server.wait_messages(1)[0].rcpttos == ["b@example.org"]
        https_server.expect("GET", "/", body="secure")
        with urllib.request.urlopen(https_server.url("/"), timeout=10,
                                    context=client_ssl_context()) as r:
            assert r.read() == b"secure"
        assert http_server.port != https_server.port
        assert "testservers" not in sys.modules


    def test_factory_and_process_mode(make_server):
        server = make_server(TestTCPServer)
        assert server.ready.is_set()
        child = TestTCPServer.in_process()     # the child imports tests._servers
        with child:
            with socket.create_connection(("127.0.0.1", child.port)) as c:
                c.sendall(b"from afar")
            assert child.wait_connections(1, closed=True)[0].data == b"from afar"


    def test_handler_error_fails_the_test(make_server):
        def handler(request):
            raise ValueError("seen by the vendored plugin")
        server = make_server(TestTCPServer, handler=handler)
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
        server.wait_connections(1, closed=True)
''')


def _vendored_project(where):
    """Lay out a project with the package copied into tests/_servers/."""
    tests = where / "tests"
    tests.mkdir()
    (tests / "__init__.py").write_text("")
    shutil.copytree(PACKAGE, str(tests / "_servers"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tests / "test_vendored.py").write_text(_VENDORED_TEST)
    return where


def _run_pytest(cwd, *args):
    env = dict(os.environ)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"    # no installed testservers plugin
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _RUN_PYTEST,
         "-p", "no:cacheprovider", "-W", "error", "-q", "-p", "no:randomly"] + list(args),
        cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=20 * TIMEOUT)
    return proc.returncode, proc.stdout


def _assert_outcome(returncode, output):
    assert returncode == 1, output
    assert re.search(r"\b1 failed, 2 passed\b", output), output
    assert "ValueError: seen by the vendored plugin" in output, output
    assert "imported 'testservers' by name" not in output, output


def test_vendored_plugin_through_dash_p(tmp_path):
    project = _vendored_project(tmp_path)
    _assert_outcome(*_run_pytest(project, "-p", "tests._servers.pytest_plugin", "tests"))


def test_vendored_plugin_through_pytest_plugins(tmp_path):
    project = _vendored_project(tmp_path)
    (project / "tests" / "conftest.py").write_text(
        'pytest_plugins = ["tests._servers.pytest_plugin"]\n')
    _assert_outcome(*_run_pytest(project))


def test_no_module_imports_the_package_by_name():
    offenders = []
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith((".py", ".pyi")):
            continue
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            offenders += ["%s:%d %s" % (name, node.lineno, n) for n in names
                          if n == "testservers" or n.startswith("testservers.")]
    assert not offenders, offenders


# -- the version -----------------------------------------------------------

def _released_versions():
    with open(os.path.join(ROOT, "CHANGES.rst"), encoding="utf-8") as f:
        text = f.read()
    # A version heading: "0.1.0 (2024-05-01)" underlined; "Unreleased" is not one.
    return re.findall(r"^(\d+\.\d+\.\d+\S*) \(\d{4}-\d\d-\d\d\)\n-+$", text, re.M)


def test_version_is_the_newest_release_in_changes():
    versions = _released_versions()
    assert versions, "CHANGES.rst names no released version"
    assert versions[0] == testservers.__version__, (
        "testservers.__version__ is %s but the newest release in CHANGES.rst is %s"
        % (testservers.__version__, versions[0]))


# -- what the sdist carries ------------------------------------------------

def _manifest_rules():
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as f:
        return [line.split() for line in f if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [
    "tests/conftest.py", "tests/kinds.py", "tests/kinds_smtp.py", "tests/test_core.py",
    "Doc/conf.py", "Doc/index.rst", "Doc/library/testservers.rst",
    "benchmarks/_common.py", "README.rst", "CHANGES.rst", "LICENSE",
    "testservers/py.typed", "testservers/__init__.pyi", "testservers/certs/ca.pem",
])
def test_manifest_ships_what_the_tests_need(path):
    import fnmatch
    assert os.path.exists(os.path.join(ROOT, path)), path
    directory, name = os.path.split(path)
    shipped = False
    for rule in _manifest_rules():
        command, args = rule[0], rule[1:]
        if command == "include":
            shipped |= any(fnmatch.fnmatch(path, a) for a in args)
        elif command == "recursive-include":
            shipped |= ((directory + "/").startswith(args[0].rstrip("/") + "/")
                        and any(fnmatch.fnmatch(name, a) for a in args[1:]))
        elif command == "graft":
            shipped |= (directory + "/").startswith(args[0].rstrip("/") + "/")
        elif command in ("global-exclude", "exclude", "recursive-exclude", "prune"):
            pass
    assert shipped, "MANIFEST.in does not ship %s" % path


def test_typing_files_are_package_data():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    data = cfg["options.package_data"]["testservers"]
    assert "py.typed" in data and "*.pyi" in data, data


# -- the suite's own warning configuration ---------------------------------

_NOISY_PLUGIN = '''
import warnings
import pytest

def pytest_configure(config):
    # What pytest-asyncio does when its loop scope option is unset.
    warnings.warn(pytest.PytestDeprecationWarning("option asyncio_thing is unset"))
'''


def _suite_config_project(where):
    """A project with this suite's pytest configuration and conftest.py."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    section = configparser.ConfigParser()
    section["tool:pytest"] = cfg["tool:pytest"]
    with open(str(where / "setup.cfg"), "w") as f:
        section.write(f)
    tests = where / "tests"
    tests.mkdir()
    shutil.copy(os.path.join(ROOT, "tests", "conftest.py"), str(tests))
    (where / "noisy_plugin.py").write_text(_NOISY_PLUGIN)
    return where


def _run_suite(cwd, *args):
    env = dict(os.environ)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(cwd)
    proc = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-m", "pytest",
                           "-p", "noisy_plugin", "-p", "pytester"] + list(args),
                          cwd=str(cwd), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=10 * TIMEOUT)
    return proc.returncode, proc.stdout


def test_other_plugins_configuration_warning_is_not_fatal(tmp_path):
    project = _suite_config_project(tmp_path)
    (project / "tests" / "test_quiet.py").write_text("def test_quiet():\n    pass\n")
    returncode, output = _run_suite(project)
    assert "INTERNALERROR" not in output, output
    assert returncode == 0 and re.search(r"\b1 passed\b", output), output
    assert "option asyncio_thing is unset" in output, output    # shown, not fatal


def test_the_suite_stays_strict_about_its_own_warnings(tmp_path):
    project = _suite_config_project(tmp_path)
    (project / "tests" / "test_noisy.py").write_text(textwrap.dedent('''
        import socket
        import warnings

        import pytest


        def test_user_warning():
            warnings.warn("from a test")


        def test_resource_warning():
            socket.socket().__del__()        # an unclosed socket's warning


        def test_deprecation_warning():
            warnings.warn("old", DeprecationWarning)


        @pytest.mark.filterwarnings("ignore:expected")
        def test_own_mark_wins():
            warnings.warn("expected")
    '''))
    (project / "tests" / "test_import.py").write_text(
        "import warnings\nwarnings.warn('at import')\n\ndef test_never():\n    pass\n")
    returncode, output = _run_suite(project, "-p", "no:randomly", "-rfE",
                                    "--continue-on-collection-errors")
    assert "INTERNALERROR" not in output, output
    assert re.search(r"\b3 failed, 1 passed, 1 error\b", output), output
    for name in ("test_user_warning", "test_resource_warning", "test_deprecation_warning"):
        assert "FAILED tests/test_noisy.py::%s" % name in output, output
    assert "ERROR tests/test_import.py" in output, output


# -- the plugin and the README ---------------------------------------------

def _plugin_fixtures():
    with open(os.path.join(PACKAGE, "pytest_plugin.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "_fixture"):
            names += [target.id for target in node.targets]
        elif isinstance(node, ast.FunctionDef) and any(
                "fixture" in ast.dump(d) for d in node.decorator_list):
            names.append(node.name)
    return names


def test_readme_names_every_fixture():
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        readme = f.read()
    fixtures = _plugin_fixtures()
    assert "unix_stream_server" in fixtures and "make_server" in fixtures, fixtures
    missing = [name for name in fixtures
               if not re.search(r"``%s(``|\()" % name, readme)]      # ``name`` or ``name(...)``
    assert not missing, "README.rst does not name the fixtures %s" % ", ".join(missing)


def test_entry_point_names_the_plugin():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    entry = cfg["options.entry_points"]["pytest11"].strip()
    assert entry == "testservers = testservers.pytest_plugin", entry
    import testservers.pytest_plugin as plugin
    for name in _plugin_fixtures():
        assert hasattr(plugin, name), name
