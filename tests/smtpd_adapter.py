"""smtpd and asyncore, as CPython's test_smtplib uses them, on TestSMTPServer.

test_smtplib builds its servers on the private ``smtpd`` copy: plain
``smtpd.SMTPServer`` and ``DebuggingServer``, and simulated servers whose
channel classes override ``smtp_EHLO``, ``smtp_VRFY``, ``smtp_AUTH`` and
the like.  This module stands in for ``smtpd`` (and for ``asyncore``, whose
loop the tests run on a thread of their own): every server is a real
:class:`testservers.TestSMTPServer`, and what each simulated channel does
is written below in TestSMTPServer's options (EHLO keywords, extensions
switched off, VRFY and EXPN tables, AUTH mechanisms, hooks, scripted
replies), read from the test module's own data (``sim_users``,
``sim_lists``, ``sim_auth``).  A channel class it does not know raises,
so that a new test of that kind is noticed.

:func:`main` runs the test file of the interpreter with this module in
place of ``smtpd`` and ``asyncore``, skips the tests named on its command
line, and prints a JSON summary on its last line.
"""

import json
import smtplib
import sys
import threading
import types
import unittest

import testservers

DATA_SIZE_DEFAULT = 33554432
# smtpd's HELP text and the extensions it never offered.
SMTPD_HELP = "Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"
SMTPD_WITHOUT = ("ENHANCEDSTATUSCODES", "PIPELINING")


class _Devnull:
    def write(self, msg):
        pass

    def flush(self):
        pass


DEBUGSTREAM = _Devnull()


class SMTPChannel:
    """The base of test_smtplib's simulated channels; never instantiated:
    :data:`CHANNELS` says what each of them does."""


# -- what test_smtplib's simulated channels do, as TestSMTPServer options --

def _buggy(initial):
    while True:         # SimSMTPChannel._auth_buggy: a challenge forever
        yield b"BuGgYbUgGy"


def _unimplemented(initial):
    return None


def _sim_channel(server, module):
    """SimSMTPChannel: its EHLO reply, VRFY and EXPN tables, and AUTH."""
    keywords, mechanisms, enabled = ["EXPN", "STARTTLS", "DELIVERBY"], [], set()
    for feature in server._extra_features:
        keyword, _, params = feature.partition(" ")
        if keyword.upper() == "AUTH":
            mechanisms += params.upper().split()
        elif keyword.upper() in ("SMTPUTF8", "8BITMIME"):
            enabled.add(keyword.upper())     # smtpd's own, when it has them
        else:
            keywords.append(feature)
    users, lists = module.sim_users, module.sim_lists

    def expn(name):
        members = lists.get(name.lower())
        if members is None:
            return "550 No access for you!"
        return ["%s %s" % (users[m], smtplib.quoteaddr(m)) for m in members]
    return dict(
        hostname="testhost", size_limit=20000000, ehlo_keywords=keywords + ["HELP"],
        disable_extensions=set(SMTPD_WITHOUT + ("SMTPUTF8", "8BITMIME")) - enabled,
        vrfy={a: "%s %s" % (name, smtplib.quoteaddr(a)) for a, name in users.items()},
        expn=expn, auth=dict([module.sim_auth]) if mechanisms else None,
        auth_mechanisms=[m if m in ("PLAIN", "LOGIN", "CRAM-MD5") else
                         (m, _buggy if m == "BUGGY" else _unimplemented)
                         for m in mechanisms] or None,
        on_auth=lambda peer, user, mechanism: "235 Authentication Succeeded")


def _initial_response_channel(server, module):
    """SimSMTPAUTHInitialResponseChannel: its smtp_AUTH, in any state,
    accepts only PLAIN with the expected initial response (issue #15014)."""
    def auth(arg):
        args = arg.split()
        if len(args) == 2 and args[0].lower() == "plain" and \
                args[1] == module.EXPECTED_RESPONSE:
            return "235 Ok"
        return "571 Bad authentication"
    server._answers.append(("AUTH", auth))
    return _sim_channel(server, module)


def _closing_after_data(server, module):
    """test_421_from_data_cmd's channel: "421 closing" after the data."""
    server._answers.append((".", "421 closing"))
    return _sim_channel(server, module)


CHANNELS = {
    "SMTPChannel": lambda server, module: {},
    "SimSMTPChannel": _sim_channel,
    "SimSMTPAUTHInitialResponseChannel": _initial_response_channel,
    "MySimSMTPChannel": _closing_after_data,
}


class _Features(list):
    """SimSMTPServer._extra_features: add_feature() rebuilds the server."""

    def __init__(self, server, items):
        super().__init__(items)
        self._server = server

    def append(self, feature):
        super().append(feature)
        if self._server.__dict__.get("_server") is not None:
            self._server._rebuild()


class _ChannelView:
    """``server._SMTPchannel``: the channel attributes the tests set and read,
    as scripted replies and the transcript of the latest connection."""

    def __init__(self, server):
        object.__setattr__(self, "_server", server)

    def __setattr__(self, name, value):
        self._server._channel_settings[name] = value
        self._server._script()

    def _commands(self, verb):
        return [line[3:] for line in self._server._server.transcript()
                if line.startswith("C: ") and line[3:].upper().startswith(verb)]

    @property
    def rset_count(self):
        return len(self._commands("RSET"))

    @property
    def rcpt_count(self):       # counted only while rcpt_response is set
        responses = self._server._channel_settings.get("rcpt_response")
        return min(len(self._commands("RCPT")), len(responses)) if responses else 0

    @property
    def all_received_lines(self):
        return [[line[3:]] for line in self._server._server.transcript()
                if line.startswith("C: ")]


class SMTPServer:
    """smtpd.SMTPServer: a started TestSMTPServer whose handler is
    ``process_message``, with smtpd's EHLO reply and HELP text."""

    channel_class = SMTPChannel

    def __init__(self, localaddr, remoteaddr, data_size_limit=DATA_SIZE_DEFAULT,
                 map=None, enable_SMTPUTF8=False, decode_data=False):
        self._localaddr = localaddr
        self._decode_data = decode_data
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self.data_size_limit = data_size_limit
        self._channel_settings = {}
        self._scripted = []
        self._recips = {}
        self._answers = []      # what the channel class answers itself
        self._server = None
        if "_extra_features" not in self.__dict__:
            self._extra_features = []
        self._rebuild()
        socket_map[id(self)] = self

    def __setattr__(self, name, value):
        if name == "_extra_features":
            value = _Features(self, value)
        object.__setattr__(self, name, value)
        if name == "channel_class" and self.__dict__.get("_server") is not None:
            self._rebuild()

    @property
    def socket(self):
        return self._server.socket

    @property
    def _SMTPchannel(self):
        return _ChannelView(self)

    def _options(self):
        self._answers = []
        without = set(SMTPD_WITHOUT)
        if self._decode_data:
            without.add("8BITMIME")
        if not self.enable_SMTPUTF8:
            without.add("SMTPUTF8")
        options = dict(decode_data=self._decode_data, size_limit=self.data_size_limit,
                       disable_extensions=without, ehlo_keywords=["HELP"],
                       help_text=SMTPD_HELP, on_mail=self._on_mail, on_rcpt=self._on_rcpt)
        for cls in self.channel_class.__mro__:
            if cls.__name__ in CHANNELS:
                module = sys.modules[self.channel_class.__module__]
                options.update(CHANNELS[cls.__name__](self, module))
                return options
        raise NotImplementedError("smtpd_adapter does not know what %s does"
                                  % self.channel_class.__name__)

    def _rebuild(self):
        """(Re)start the server with the options of the channel class."""
        address = self._localaddr
        if self._server is not None:
            address = (address[0], self._server.port)
            self._server.stop()
        self._server = testservers.TestSMTPServer(
            address, self.process_message, **self._options()).start()
        self._script()

    def _script(self):
        """Turn the channel settings the test made into scripted replies."""
        for fault in self._scripted:
            fault.undo()
        settings, answer = self._channel_settings, self._server.answer
        self._scripted = []
        if settings.get("quit_response"):
            self._scripted.append(answer("QUIT", settings["quit_response"], None, True))
        if settings.get("mail_response"):
            self._scripted.append(answer("MAIL", settings["mail_response"], None,
                                         bool(settings.get("disconnect"))))
        for reply in settings.get("rcpt_response") or ():
            self._scripted.append(answer("RCPT", reply))
        for command, reply in self._answers:
            self._scripted.append(answer(command, reply, None))

    def _on_mail(self, peer, mailfrom, options):
        self._recips[peer] = []
        print("sender:", mailfrom, file=DEBUGSTREAM)

    def _on_rcpt(self, peer, mailfrom, rcptto, options):
        recips = self._recips.setdefault(peer, [])
        recips.append(rcptto)
        print("recips:", recips, file=DEBUGSTREAM)

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        raise NotImplementedError

    def close(self):
        socket_map.pop(id(self), None)
        self._server.stop()


class DebuggingServer(SMTPServer):
    """smtpd.DebuggingServer: prints each message between two rulers."""

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print("---------- MESSAGE FOLLOWS ----------")
        if kwargs:
            if kwargs.get("mail_options"):
                print("mail options: %s" % kwargs["mail_options"])
            if kwargs.get("rcpt_options"):
                print("rcpt options: %s\n" % kwargs["rcpt_options"])
        in_headers = True
        for line in data.splitlines():
            if in_headers and not line:
                peer_header = "X-Peer: " + peer[0]
                if not isinstance(data, str):
                    peer_header = repr(peer_header.encode("utf-8"))
                print(peer_header)
                in_headers = False
            print(line if isinstance(data, str) else repr(line))
        print("------------ END MESSAGE ------------")


# -- asyncore: the tests' own loop waits; the servers run by themselves --

socket_map = {}
_never = threading.Event()


def _poll(timeout=0.0, map=None):
    _never.wait(timeout)    # as asyncore.poll waits for no event


def _close_all(map=None, ignore_all=False):
    for server in list(socket_map.values()):
        server.close()


asyncore = types.ModuleType("asyncore")
asyncore.socket_map = socket_map
asyncore.poll = asyncore.poll2 = _poll
asyncore.close_all = _close_all


def install():
    """Make ``import smtpd``/``asyncore`` (and test.support's copies) this."""
    import test
    import test.support
    me = sys.modules[__name__]
    for name in ("smtpd", "test.smtpd", "test.support.smtpd"):
        sys.modules[name] = me
    for name in ("asyncore", "test.support.asyncore"):
        sys.modules[name] = asyncore
    test.smtpd = test.support.smtpd = me
    test.support.asyncore = asyncore


def main():
    """Run ``sys.argv[1]`` (test_smtplib.py) with the tests in the JSON
    ``sys.argv[2]`` ({"Class.test": reason}) skipped; print a summary."""
    origin, left_out = sys.argv[1], json.loads(sys.argv[2])
    install()
    with open(origin, encoding="utf-8") as f:
        source = f.read().replace("from . import smtpd", "from test import smtpd")
    module = types.ModuleType("test_smtplib_ts")
    module.__file__ = origin
    sys.modules[module.__name__] = module
    exec(compile(source, origin, "exec"), module.__dict__)
    for name, reason in left_out.items():
        cls_name, _, test_name = name.partition(".")
        cls = getattr(module, cls_name, None)
        if cls is not None and hasattr(cls, test_name):
            setattr(cls, test_name, unittest.skip("left out: " + reason)(
                getattr(cls, test_name)))
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)

    def names(pairs):
        return {test.id().split(".", 1)[1]: str(detail) for test, detail in pairs}
    print(json.dumps({"ran": result.testsRun, "failures": names(result.failures),
                      "errors": names(result.errors), "skipped": names(result.skipped)}))


if __name__ == "__main__":
    main()
