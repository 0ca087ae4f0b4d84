"""User code that must type-check under mypy --strict (tests/typing/check.sh).

A small echo over loopback written the way the README shows, so the stub and
the package's exports are checked the way users use them.  Never run by CI:
only type-checked.
"""

import repynet
from repynet import SocketWouldBlockError, TCPSocket


def echo_once(port: int) -> bytes:
    with repynet.listenforconnection("127.0.0.1", port) as server:
        client: TCPSocket = repynet.openconnection("127.0.0.1", port, "127.0.0.1", port + 1, 5.0)
        with client:
            sent: int = client.send(b"hello")
            ip, peer_port, accepted = server.getconnection()
            assert isinstance(ip, str) and peer_port > 0 and sent == 5
            with accepted:
                try:
                    data: bytes = accepted.recv(1024)
                except SocketWouldBlockError:
                    data = b""
    limits, usage, _ = repynet.getresources()
    assert usage["outsockets"] <= limits["outsockets"]
    return data


print(repynet.__version__, repynet.getmyip_ipv6 is not None, echo_once(63150))
