"""The package as users meet it: exports, version, signatures, audit events.

Audit hooks cannot be removed, so this module installs one recorder, once,
that records only while a test asks it to.  Traffic: 127.0.0.1 only.
"""

import importlib.metadata
import inspect
import socket
import sys
import time

import pytest

import repynet
from repynet import _repynet, errors, restrictions
from repynet.ipv6 import IPV6_NAMES

LO = "127.0.0.1"


class _AuditRecorder:
    def __init__(self):
        self.events = None

    def __call__(self, event, args):
        if self.events is not None and event.startswith("repynet."):
            self.events.append((event, args))


_recorder = _AuditRecorder()
sys.addaudithook(_recorder)


@pytest.fixture
def audit_events():
    """The repynet.* audit events raised while the test runs."""
    _recorder.events = []
    yield _recorder.events
    _recorder.events = None


@pytest.fixture
def free_tcp_port(restrict):
    """A TCP port nobody holds now, allowed by the restrictions in force."""
    with socket.socket() as probe:
        probe.bind((LO, 0))
        port = probe.getsockname()[1]
    restrict(connport={port, port + 1}, messport={port, port + 1})
    return port


# --- exports and version ------------------------------------------------------------

def test_all_lists_every_public_name_of_the_submodules():
    expected = {*errors.__all__, "InternalRepyError", *repynet.V2_NAMES, *IPV6_NAMES,
                "NetworkAPI", "TCPSocket", "TCPServerSocket", "UDPServerSocket",
                "api_namespace", *restrictions.__all__}
    assert set(repynet.__all__) == expected
    assert len(repynet.__all__) == len(expected)
    assert all(hasattr(repynet, name) for name in repynet.__all__)


def test_the_installed_version_is_the_package_version():
    assert importlib.metadata.version("repynet") == repynet.__version__


def test_the_distribution_declares_the_license_and_typing():
    metadata = importlib.metadata.metadata("repynet")
    assert metadata["License"] == "MIT"
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    for minor in range(9, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_the_console_script_is_declared():
    scripts = importlib.metadata.distribution("repynet").entry_points
    assert any(entry.name == "repynet" and entry.value == "repynet.cli:console_main"
               for entry in scripts)


# --- signatures -------------------------------------------------------------------------

SIGNATURES = {
    "gethostbyname": "(name, /)",
    "getAddripv6": "(name, /)",
    "getmyip": "()",
    "getmyip_ipv6": "()",
    "sendmessage": "(destip, destport, message, localip, localport, /)",
    "listenformessage": "(localip, localport, /)",
    "openconnection": "(destip, destport, localip, localport, timeout, /)",
    "listenforconnection": "(localip, localport, /)",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_inspect_signature_reads_the_c_functions(name):
    assert str(inspect.signature(getattr(repynet, name))) == SIGNATURES[name]
    assert str(inspect.signature(getattr(repynet.NetworkAPI, name))) == \
        SIGNATURES[name].replace("(", "(self, ", 1).replace("(self, )", "(self, /)")


def test_docstrings_keep_a_summary_after_the_signature():
    assert repynet.openconnection.__doc__.startswith("Open a TCP connection")


# --- audit events -----------------------------------------------------------------------

def test_listeners_and_connections_raise_audit_events(audit_events, free_tcp_port):
    port = free_tcp_port
    with repynet.listenforconnection(LO, port), repynet.listenformessage(LO, port):
        with repynet.openconnection(LO, port, LO, port + 1, 5.0):
            pass
    assert audit_events == [
        ("repynet.listenforconnection", (LO, port)),
        ("repynet.listenformessage", (LO, port)),
        ("repynet.openconnection", (LO, port, LO, port + 1, 5.0)),
    ]


def test_lookups_raise_audit_events(audit_events):
    # Literal addresses: nothing is looked up off the machine.
    assert repynet.gethostbyname("127.0.0.1") == "127.0.0.1"
    repynet.getAddripv6("::1")
    assert audit_events == [("repynet.gethostbyname", ("127.0.0.1",)),
                            ("repynet.getAddripv6", ("::1",))]


def test_getmyip_raises_audit_events(audit_events):
    for call in (repynet.getmyip, repynet.getmyip_ipv6):
        try:
            call()
        except errors.InternetConnectivityError:
            pass  # no route out on this machine: the event came first anyway
    assert audit_events == [("repynet.getmyip", ()), ("repynet.getmyip_ipv6", ())]


def test_per_call_paths_raise_no_audit_event(audit_events, free_tcp_port):
    port = free_tcp_port
    with repynet.listenforconnection(LO, port) as server, \
            repynet.openconnection(LO, port, LO, port + 1, 5.0) as client, \
            repynet.listenformessage(LO, port) as udp:
        del audit_events[:]
        client.send(b"x")
        _, _, accepted = _when_ready(server.getconnection)
        with accepted:
            assert _when_ready(lambda: accepted.recv(1)) == b"x"
        repynet.sendmessage(LO, port, b"y", LO, port + 1)
        assert _when_ready(udp.getmessage)[2] == b"y"
    assert audit_events == []


def _when_ready(call):
    while True:
        try:
            return call()
        except errors.SocketWouldBlockError:
            time.sleep(0.001)


def test_a_call_with_the_wrong_arguments_raises_no_audit_event(audit_events):
    with pytest.raises(errors.RepyArgumentError):
        repynet.openconnection(LO, 1)
    assert audit_events == []


def test_a_hook_that_raises_stops_the_call(free_tcp_port):
    class Refused(Exception):
        pass

    def refuse(event, args):
        if event == "repynet.listenforconnection" and args == (LO, free_tcp_port):
            raise Refused(event)

    sys.addaudithook(refuse)  # for this port only: every later call is unaffected
    with pytest.raises(Refused):
        repynet.listenforconnection(LO, free_tcp_port)
    assert _repynet._usage()["insockets"] == 0
