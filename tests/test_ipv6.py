"""The IPv6 names of the Repy V2 API (seed 003; spec sections 2, 3 and 7; D12-D14, D21-D26).

Every exception of every IPv6 call is produced on ``::1`` and checked in the
spec's precedence; the IPv4/IPv6 mixes; name resolution and the no-route
case of getmyip run only inside a private network namespace (``unshare -n``)
with a private hosts file, so no name ever reaches a DNS server.  Tests that
need the IPv6 loopback carry the conftest ``needs_ipv6`` mark, which skips
them on a host without it.  The scenarios both families share run on ::1
through the ``family`` fixture in tests/test_v2_api.py; this file keeps what
only IPv6 (or a mix of the two families) has.

Ports: this file uses 63150-63199 (the default restrictions allow
63100-63199; tests/test_v2_api.py uses 63100-63149).  Every object a test
opens is closed, or the autouse leak check in conftest.py fails the test.
"""

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import repynet
from repynet import _repynet, errors

V6 = "::1"
V4 = "127.0.0.1"
NOT_OURS_V6 = "2001:db8::1"  # documentation prefix: never an address of this host
NOT_OURS_V4 = "203.0.113.9"  # TEST-NET-3: never an address of this host
FORBIDDEN_PORT = 12345  # outside the default 63100-63199

def P(n):
    """Port n of this file's 63150-63199."""
    assert 0 <= n < 50
    return 63150 + n


def _poll(call, what, tries=500):
    for _ in range(tries):
        try:
            return call()
        except errors.SocketWouldBlockError:
            time.sleep(0.01)
    raise AssertionError(f"{what} never arrived")


def _accept(server):
    return _poll(server.getconnection, "the connection")


def _message(udp):
    return _poll(udp.getmessage, "the datagram")


def _connect(server_port, local_port, closing, ip=V6, server=None, ipv6_names=True):
    """(listener, client, accepted) on ip, all closed after the test.

    Made by the _ipv6 names, or by the V4 names with ipv6_names=False.
    """
    listen, connect = ((repynet.listenforconnection_ipv6, repynet.openconnection_ipv6)
                       if ipv6_names else
                       (repynet.listenforconnection, repynet.openconnection))
    if server is None:
        server = listen(ip, server_port)
        closing(server)
    client = connect(ip, server_port, ip, local_port, 5)
    closing(client)
    remote_ip, remote_port, accepted = _accept(server)
    closing(accepted)
    assert (remote_ip, remote_port) == (ip, local_port)
    return server, client, accepted


def _usage():
    return repynet.getresources()[1]


# --- the names ---------------------------------------------------------------

IPV6_CALLS = ("getAddripv6", "getmyip_ipv6", "sendmessage_ipv6", "listenformessage_ipv6",
              "openconnection_ipv6", "listenforconnection_ipv6")


def test_the_ipv6_names_are_the_v2_methods():
    # D21: the _ipv6 names that move data are the V2 C methods themselves.
    for name in ("sendmessage", "listenformessage", "openconnection", "listenforconnection"):
        assert getattr(repynet, name + "_ipv6") == getattr(repynet, name)
        assert type(getattr(repynet, name + "_ipv6")).__name__ == "builtin_function_or_method"
    names = repynet.api_namespace(text=True)
    assert set(IPV6_CALLS) <= set(names) and len(names) == 12
    assert names["sendmessage_ipv6"] == names["sendmessage"]
    assert names["getAddripv6"].__self__ is names["sendmessage"].__self__


# --- ResourceForbiddenError (spec 2.3-2.6, 6.2) ------------------------------


def test_forbidden_port_wins_over_the_family_mismatch():
    # D26; nothing is bound, so this needs no IPv6 loopback.  (Over
    # AddressBindingError and ConnectionRefusedError: tests/test_v2_api.py.)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.openconnection_ipv6(V4, P(48), V6, FORBIDDEN_PORT, 1)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage_ipv6(V4, P(48), b"x", V6, FORBIDDEN_PORT)


# --- ports and tuples held by dual-stack sockets of other programs -------------


def _dual_stack(kind, address, port):
    """A socket of another program that leaves IPV6_V6ONLY off (the Linux default)."""
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((address, port))
    return sock


@pytest.mark.needs_ipv6
@pytest.mark.parametrize("holder", ["::", "::ffff:127.0.0.1"])
def test_a_dual_stack_listener_of_another_program_holds_the_ipv4_port(holder,
                                                                      closing):
    # Such a socket is listed in /proc/net/{tcp6,udp6} only, as "::" or as a
    # v4-mapped address, yet it holds the IPv4 port: a listener, not cleanup.
    listener = _dual_stack(socket.SOCK_STREAM, holder, P(28))
    closing(listener)
    listener.listen(1)
    with pytest.raises(errors.AlreadyListeningError):
        repynet.listenforconnection(V4, P(28))
    with pytest.raises(errors.AlreadyListeningError):
        repynet.openconnection(V4, P(29), V4, P(28), 1)
    udp = _dual_stack(socket.SOCK_DGRAM, holder, P(28))
    closing(udp)
    with pytest.raises(errors.AlreadyListeningError):
        repynet.listenformessage(V4, P(28))


@pytest.mark.needs_ipv6
def test_a_dual_stack_connection_of_another_program_holds_the_ipv4_tuple(closing):
    server = repynet.listenforconnection(V4, P(30))
    closing(server)
    other = _dual_stack(socket.SOCK_STREAM, "::ffff:127.0.0.1", P(31))
    closing(other)
    other.connect(("::ffff:127.0.0.1", P(30)))
    with pytest.raises(errors.DuplicateTupleError):
        repynet.openconnection(V4, P(30), V4, P(31), 1)


# --- IPv4 and IPv6 together (D21, D26, D13) ------------------------------------


@pytest.mark.needs_ipv6
def test_every_call_takes_both_families(closing):
    # D21: the V4 names take IPv6 literals and the _ipv6 names IPv4 ones.
    _connect(P(26), P(27), closing, ip=V4)
    _connect(P(26), P(27), closing, ip=V6, ipv6_names=False)
    udp4 = repynet.listenformessage_ipv6(V4, P(26))
    closing(udp4)
    udp6 = repynet.listenformessage(V6, P(26))
    closing(udp6)
    repynet.sendmessage_ipv6(V4, P(26), b"four", V4, P(27))
    repynet.sendmessage(V6, P(26), b"six", V6, P(27))
    assert _message(udp4) == (V4, P(27), b"four")
    assert _message(udp6) == (V6, P(27), b"six")


@pytest.mark.needs_ipv6
@pytest.mark.parametrize("local,dest", [(V6, V4), (V4, V6), ("0::1", V4)])
def test_family_mismatch_is_an_argument_error(closing, local, dest):
    # Listeners on the destination, so that nothing else could fail.
    closing(repynet.listenforconnection(dest, P(24)))
    closing(repynet.listenformessage(dest, P(24)))
    with pytest.raises(errors.RepyArgumentError):
        repynet.openconnection_ipv6(dest, P(24), local, P(25), 1)
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage_ipv6(dest, P(24), b"x", local, P(25))
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage(dest, P(24), b"x", local, P(25))
    # The mismatch left nothing bound behind: the local pair is free.
    closing(repynet.listenforconnection(local, P(25)))
    closing(repynet.listenformessage(local, P(25)))


@pytest.mark.needs_ipv6
def test_family_mismatch_from_a_listener_pair(closing):
    closing(repynet.listenformessage_ipv6(V6, P(25)))
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage_ipv6(V4, P(24), b"x", V6, P(25))


@pytest.mark.needs_ipv6
@pytest.mark.parametrize("local,dest", [(NOT_OURS_V6, V4), (NOT_OURS_V4, V6)])
def test_a_local_ip_not_ours_wins_over_the_family_mismatch(local, dest):
    # D21/D26: AddressBindingError, then the mismatch; the fork's
    # openconnection_ipv6 test with an IPv4 localip expects exactly this.
    with pytest.raises(errors.AddressBindingError):
        repynet.openconnection_ipv6(dest, P(24), local, P(25), 1)
    with pytest.raises(errors.AddressBindingError):
        repynet.sendmessage_ipv6(dest, P(24), b"x", local, P(25))


@pytest.mark.needs_ipv6
def test_bind_errors_come_before_the_family_mismatch(closing):
    # The mismatch is raised at the bind step: a listener on the local pair
    # is found first.
    closing(repynet.listenforconnection_ipv6(V6, P(25)))
    with pytest.raises(errors.AlreadyListeningError):
        repynet.openconnection_ipv6(V4, P(24), V6, P(25), 1)


@pytest.mark.needs_ipv6
def test_the_two_families_listen_on_the_same_port(closing):
    # IPV6_V6ONLY: a ::1 socket never holds the IPv4 port, and back.
    tcp4 = repynet.listenforconnection(V4, P(20))
    closing(tcp4)
    tcp6 = repynet.listenforconnection_ipv6(V6, P(20))
    closing(tcp6)
    udp6 = repynet.listenformessage_ipv6(V6, P(20))
    closing(udp6)
    udp4 = repynet.listenformessage(V4, P(20))
    closing(udp4)
    closing(repynet.openconnection(V4, P(20), V4, P(21), 1))
    closing(repynet.openconnection_ipv6(V6, P(20), V6, P(21), 1))
    ip4, port4, conn4 = _accept(tcp4)
    closing(conn4)
    ip6, port6, conn6 = _accept(tcp6)
    closing(conn6)
    assert (ip4, port4, ip6, port6) == (V4, P(21), V6, P(21))
    repynet.sendmessage(V4, P(20), b"v4", V4, P(21))
    repynet.sendmessage_ipv6(V6, P(20), b"v6", V6, P(21))
    assert _message(udp4) == (V4, P(21), b"v4")
    assert _message(udp6) == (V6, P(21), b"v6")
    with pytest.raises(errors.SocketWouldBlockError):
        udp4.getmessage()


def _socket_fds():
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:
            pass
    return fds


def _v6only(fd):
    with socket.socket(fileno=os.dup(fd)) as sock:
        assert sock.family == socket.AF_INET6
        return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)


@pytest.mark.needs_ipv6
def test_every_ipv6_socket_is_v6only(closing):
    made = []

    def track(call):
        before = _socket_fds()
        result = call()
        made.extend(_socket_fds() - before)
        return result

    server = track(lambda: repynet.listenforconnection_ipv6(V6, P(34)))
    closing(server)
    closing(track(lambda: repynet.listenformessage_ipv6(V6, P(34))))
    closing(track(lambda: repynet.openconnection_ipv6(V6, P(34), V6, P(35), 1)))
    closing(track(lambda: _accept(server)[2]))
    assert len(made) == 4
    assert [_v6only(fd) for fd in made] == [1, 1, 1, 1]


# --- resources (spec 6.3) -------------------------------------------------------


def test_getaddripv6_charges_the_network_rates_up_front():
    repynet.getAddripv6(V6)
    usage = _usage()
    assert usage["netsend"] >= 1024 and usage["netrecv"] >= 4096
    with pytest.raises(errors.NetworkAddressError):
        repynet.getAddripv6("::")
    usage = _usage()
    assert usage["netsend"] >= 1024 and usage["netrecv"] >= 4096


# --- names and literals (D12, D17, D21, D25) -----------------------------------


def test_gethostbyname_of_an_ipv6_literal_is_the_literal():
    # D21: the V4 names take IPv6 literals; an address literal comes back
    # unchanged (as an IPv4 literal does), without a query.
    assert repynet.gethostbyname("::1") == "::1"
    assert repynet.gethostbyname("0::1") == "0::1"


def test_getaddripv6_of_a_literal_is_the_literal():
    # D12: [literal]; D21: an IPv4 literal is accepted alike (a Repy program
    # can pass what it resolved to any call).
    assert repynet.getAddripv6("::1") == ["::1"]
    assert repynet.getAddripv6("0::1") == ["0::1"]
    assert repynet.getAddripv6("fe80::1%lo") == ["fe80::1%lo"]
    assert repynet.getAddripv6("127.0.0.1") == ["127.0.0.1"]


@pytest.mark.parametrize("text", ["::", "ff02::1", "::ffff:127.0.0.1", "fe80::1", "::1%lo",
                                  "224.0.0.1", "0.1.2.3", "127.0.0.010", "1.2.3", "", "1.2.3.4.5"])
def test_getaddripv6_of_a_refused_literal_is_an_address_error(text):
    # Text made of hex digits, colons and dots never reaches the resolver.
    with pytest.raises(errors.NetworkAddressError):
        repynet.getAddripv6(text)


@pytest.mark.needs_ipv6
def test_getmyip_ipv6_is_a_routable_address_of_this_host_or_no_connectivity():
    # D19/D27: a UDP connect toward the probe addresses; no packet is sent.
    try:
        ip = repynet.getmyip_ipv6()
    except errors.InternetConnectivityError:
        ip = None
    usage = _usage()  # charged either way, to the network rates
    assert usage["netsend"] >= 256 and usage["netrecv"] >= 128
    if ip is None:
        return
    family, canonical = _repynet._parse_address(ip)
    assert family == socket.AF_INET6 and canonical not in ("::1",)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind((ip, 0))  # an address of this host


@pytest.mark.needs_ipv6
def test_getmyip_ipv6_returns_the_configured_address(ip_preferences):
    ip_preferences([("ip", V6)], False)
    assert repynet.getmyip_ipv6() == V6


# --- inside a private network namespace: names, no route ----------------------

NETNS_PRELUDE = '''
import ctypes, fcntl, json, socket, struct, sys

import repynet
from repynet import errors

MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def bind_file(source, target):
    if _libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --bind " + target)


def lo_up():
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def outcome(call, *args):
    try:
        return ["ok", call(*args)]
    except Exception as exc:
        return ["raise", type(exc).__name__]


# Private resolver files: /etc/hosts from the test and "hosts: files", so
# no lookup can turn into a DNS query (there is no route out either).
if len(sys.argv) > 2:
    bind_file(sys.argv[1], "/etc/hosts")
    bind_file(sys.argv[2], "/etc/nsswitch.conf")
'''


@functools.cache
def _unshare_prefix():
    """(command prefix, None), or (None, why a namespace cannot be made here)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "the unshare command is not installed"
    why = ""
    for prefix in ([unshare, "-n", "--mount"], [unshare, "-r", "-n", "--mount"]):
        try:
            result = subprocess.run([*prefix, sys.executable, "-c", "pass"],
                                    capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None, "unshare -n did not finish"
        if result.returncode == 0:
            return prefix, None
        why = result.stderr.strip() or f"exit status {result.returncode}"
    return None, f"unshare -n is not permitted here: {why}"


@pytest.fixture
def netns(tmp_path):
    """netns(code, hosts=None) runs code in a new network namespace; its JSON result.

    The code runs after NETNS_PRELUDE and stores what it found in ``result``.
    With ``hosts`` (the text of a hosts file) it resolves with that file only.
    """
    prefix, why = _unshare_prefix()
    if prefix is None:
        pytest.skip(why)

    def run(code, hosts=None):
        script = tmp_path / "child.py"
        script.write_text(NETNS_PRELUDE + textwrap.dedent(code) +
                          "\nprint(json.dumps(result))\n")
        argv = [*prefix, sys.executable, str(script)]
        if hosts is not None:
            (tmp_path / "hosts").write_text(hosts)
            (tmp_path / "nsswitch.conf").write_text("hosts: files\n")
            argv += [str(tmp_path / "hosts"), str(tmp_path / "nsswitch.conf")]
        child = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        return json.loads(child.stdout.strip().splitlines()[-1])

    return run


HOSTS = """\
# one name, both families, a duplicate written two ways (D24)
::1 six.repynet.test
2001:db8::5 six.repynet.test
127.0.0.1 six.repynet.test
0::1 six.repynet.test
# resolver order is the resolver's (RFC 6724), not the file's
2001:db8::5 reordered.repynet.test
::1 reordered.repynet.test
127.0.0.1 four.repynet.test
# the usual pair, which this host's own /etc/hosts lacks
127.0.0.1 localhost
::1 localhost ip6-localhost
"""


def test_getaddripv6_resolves_names_deduplicated_in_resolver_order(netns):
    found = netns("""
        names = ["six.repynet.test", "reordered.repynet.test"]
        result = {}
        for name in names:
            resolver = []
            for info in socket.getaddrinfo(name, None, socket.AF_INET6, socket.SOCK_STREAM):
                if info[4][0] not in resolver:
                    resolver.append(info[4][0])
            result[name] = [repynet.getAddripv6(name), resolver]
        for name in ("four.repynet.test", "unknown.repynet.test"):
            result[name] = outcome(repynet.getAddripv6, name)
        result["localhost"] = [outcome(repynet.getAddripv6, "localhost"),
                               outcome(repynet.gethostbyname, "localhost")]
        result["gethostbyname six"] = outcome(repynet.gethostbyname, "six.repynet.test")
        result["gethostbyname unknown"] = outcome(repynet.gethostbyname, "unknown.repynet.test")
        """, hosts=HOSTS)
    for name in ("six.repynet.test", "reordered.repynet.test"):
        ours, resolver = found[name]
        assert ours == resolver, name  # D12: deduplicated, in resolver order
        assert sorted(ours) == ["2001:db8::5", "::1"], name
    # A name with no IPv6 address, and a name nobody knows.
    assert found["four.repynet.test"] == ["raise", "NetworkAddressError"]
    assert found["unknown.repynet.test"] == ["raise", "NetworkAddressError"]
    assert found["localhost"] == [["ok", ["::1"]], ["ok", "127.0.0.1"]]
    # gethostbyname resolves names to IPv4 only.
    assert found["gethostbyname six"] == ["ok", "127.0.0.1"]
    assert found["gethostbyname unknown"] == ["raise", "NetworkAddressError"]


@pytest.mark.parametrize("loopback_up", [False, True], ids=["lo-down", "lo-up"])
def test_getmyip_without_a_route_is_no_connectivity(netns, loopback_up):
    found = netns(f"""
        if {loopback_up!r}:
            lo_up()
        result = [outcome(repynet.getmyip_ipv6), outcome(repynet.getmyip)]
        """)
    assert found == [["raise", "InternetConnectivityError"]] * 2


@pytest.mark.needs_ipv6
def test_no_route_to_the_destination_is_no_connectivity(netns):
    # Only lo exists in the namespace: nothing can leave it.
    found = netns("""
        lo_up()
        result = [
            outcome(repynet.sendmessage_ipv6, "2001:db8::5", 63198, b"x", "::1", 63199),
            outcome(repynet.openconnection_ipv6, "2001:db8::5", 63198, "::1", 63199, 1.0),
        ]
        """)
    if found[0] == ["raise", "AddressBindingError"]:
        pytest.skip("no IPv6 loopback (::1) inside a new network namespace")
    assert found == [["raise", "InternetConnectivityError"]] * 2


# --- an IPv6 Repy program through the runner -----------------------------------

PROGRAM = '''
"""An IPv6 echo over ::1: TCP, then UDP, then a family mismatch."""

PORT_SERVER = 63196
PORT_CLIENT = 63197


def wait(call):
    while True:
        try:
            return call()
        except SocketWouldBlockError:
            sleep(0.01)


if callfunc == "initialize":
    address = getAddripv6("::1")[0]
    server = listenforconnection_ipv6(address, PORT_SERVER)
    client = openconnection_ipv6(address, PORT_SERVER, "::1", PORT_CLIENT, 5.0)
    ip, port, conn = wait(server.getconnection)
    client.send("hello over ipv6")
    data = ""
    while len(data) < 15:
        data += wait(lambda: conn.recv(15 - len(data)))
    log("tcp " + ip + " " + str(port) + " " + data + "\\n")
    conn.close()
    client.close()
    server.close()

    udp = listenformessage_ipv6("::1", PORT_SERVER)
    sendmessage_ipv6("::1", PORT_SERVER, "datagram", "::1", PORT_CLIENT)
    ip, port, message = wait(udp.getmessage)
    log("udp " + ip + " " + str(port) + " " + message + "\\n")
    udp.close()

    try:
        openconnection_ipv6("127.0.0.1", PORT_SERVER, "::1", PORT_CLIENT, 1.0)
    except RepyArgumentError:
        log("mismatch RepyArgumentError\\n")
    listenforconnection_ipv6("::", PORT_SERVER)
'''


@pytest.mark.needs_ipv6
def test_an_ipv6_program_runs_through_the_runner(tmp_path):
    program = tmp_path / "echo6.repy"
    program.write_text(PROGRAM)
    child = subprocess.run([sys.executable, "-m", "repynet", "run", str(program)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert child.stdout.splitlines() == [
        "tcp ::1 63197 hello over ipv6",
        "udp ::1 63197 datagram",
        "mismatch RepyArgumentError",
    ], child.stderr
    # The last line raises: an uncaught Repy exception ends the program with 1.
    assert child.returncode == 1
    assert "RepyArgumentError" in child.stderr

