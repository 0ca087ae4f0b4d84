"""The package as users meet it: exports, version, signatures, audit events.

Audit hooks cannot be removed, and a Python hook would put Python frames on
paths other tests check have none, so every audit test runs its calls in a
child process with its own hook.  Traffic: 127.0.0.1 only.  HANG_GUARD only
stops a child that hangs.
"""

import importlib.metadata
import inspect
import json
import socket
import subprocess
import sys
import textwrap

import pytest

import repynet
from repynet import errors, restrictions
from repynet.ipv6 import IPV6_NAMES

LO = "127.0.0.1"
HANG_GUARD = 300

AUDITED_CHILD = """\
import json, sys, time
import repynet
from repynet import errors

PORT, PORT2 = {ports}
repynet.set_restrictions(repynet.Restrictions.default().replace(
    connport={{PORT, PORT2}}, messport={{PORT, PORT2}}))
events = []
sys.addaudithook(lambda event, args: events.append([event, list(args)])
                 if event.startswith("repynet.") else None)

def when_ready(call):
    while True:
        try:
            return call()
        except errors.SocketWouldBlockError:
            time.sleep(0.001)

{body}
print(json.dumps(events))
"""


def audited(body):
    """The repynet.* audit events a child process raised running ``body``.

    ``body`` sees PORT and PORT2 (free now, and allowed), ``repynet``,
    ``errors``, ``events`` (the list so far) and ``when_ready(call)``.
    """
    # Ports the kernel hands out for bind(0) are in no state at all, not even
    # TIME_WAIT, which repynet would report as CleanupInProgressError.
    with socket.socket() as first, socket.socket() as second:
        first.bind((LO, 0))
        second.bind((LO, 0))
        ports = (first.getsockname()[1], second.getsockname()[1])
    source = AUDITED_CHILD.format(ports=ports, body=textwrap.dedent(body))
    result = subprocess.run([sys.executable, "-c", source], capture_output=True,
                            text=True, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    return ports, [tuple((event, tuple(args))) for event, args in
                  json.loads(result.stdout.splitlines()[-1])]


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

def test_listeners_and_connections_raise_audit_events():
    (port, port2), events = audited("""\
        with repynet.listenforconnection("127.0.0.1", PORT), \\
                repynet.listenformessage("127.0.0.1", PORT):
            with repynet.openconnection("127.0.0.1", PORT, "127.0.0.1", PORT2, 5.0):
                pass
        """)
    assert events == [
        ("repynet.listenforconnection", (LO, port)),
        ("repynet.listenformessage", (LO, port)),
        ("repynet.openconnection", (LO, port, LO, port2, 5.0)),
    ]


def test_lookups_raise_audit_events():
    # Literal addresses: nothing is looked up off the machine.
    _, events = audited("""\
        assert repynet.gethostbyname("127.0.0.1") == "127.0.0.1"
        repynet.getAddripv6("::1")
        """)
    assert events == [("repynet.gethostbyname", ("127.0.0.1",)),
                      ("repynet.getAddripv6", ("::1",))]


def test_getmyip_raises_audit_events():
    _, events = audited("""\
        for call in (repynet.getmyip, repynet.getmyip_ipv6):
            try:
                call()
            except errors.InternetConnectivityError:
                pass  # no route out here: the event came first anyway
        """)
    assert events == [("repynet.getmyip", ()), ("repynet.getmyip_ipv6", ())]


def test_per_call_paths_raise_no_audit_event():
    _, events = audited("""\
        with repynet.listenforconnection("127.0.0.1", PORT) as server, \\
                repynet.openconnection("127.0.0.1", PORT, "127.0.0.1", PORT2, 5.0) as client, \\
                repynet.listenformessage("127.0.0.1", PORT) as udp:
            del events[:]
            client.send(b"x")
            _, _, accepted = when_ready(server.getconnection)
            with accepted:
                assert when_ready(lambda: accepted.recv(1)) == b"x"
            repynet.sendmessage("127.0.0.1", PORT, b"y", "127.0.0.1", PORT2)
            assert when_ready(udp.getmessage)[2] == b"y"
        """)
    assert events == []


def test_a_call_with_the_wrong_arguments_raises_no_audit_event():
    _, events = audited("""\
        try:
            repynet.openconnection("127.0.0.1", 1)
        except errors.RepyArgumentError:
            pass
        else:
            raise AssertionError("no RepyArgumentError")
        """)
    assert events == []


def test_a_hook_that_raises_stops_the_call():
    (port, _), events = audited("""\
        class Refused(Exception):
            pass

        def refuse(event, args):
            if event == "repynet.listenforconnection":
                raise Refused(event)

        sys.addaudithook(refuse)
        try:
            repynet.listenforconnection("127.0.0.1", PORT)
        except Refused:
            assert repynet._repynet._usage()["insockets"] == 0
        else:
            raise AssertionError("the hook did not stop the call")
        """)
    assert events == [("repynet.listenforconnection", (LO, port))]
