"""repynet: the Repy V2 network API for Python 3, with a C core.

``import repynet`` gives the network calls and the Repy exception classes;
see the documentation in ``docs/`` for the API reference.
"""

from __future__ import annotations

from typing import Any, Callable

from . import _repynet, errors
from ._repynet import NetworkAPI, TCPServerSocket, TCPSocket, UDPServerSocket
from .errors import (  # the 27 documented Repy names, listed once in errors.__all__
    AddressBindingError,
    AlreadyListeningError,
    CleanupInProgressError,
    CodeUnsafeError,
    ConnectionRefusedError,
    ContextUnsafeError,
    DuplicateTupleError,
    FileClosedError,
    FileError,
    FileInUseError,
    FileNotFoundError,
    InternalRepyError,
    InternetConnectivityError,
    LocalIPChanged,
    LockDoubleReleaseError,
    NetworkAddressError,
    NetworkError,
    RepyArgumentError,
    RepyException,
    ResourceExhaustedError,
    ResourceForbiddenError,
    ResourceUsageError,
    SeekPastEndOfFileError,
    SocketClosedLocal,
    SocketClosedRemote,
    SocketWouldBlockError,
    TCPServerSocketInvalidError,
    TimeoutError,
)
from .ipv6 import ipv6_names

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

_repynet._register_exceptions(errors)

from . import restrictions  # needs the exceptions registered
from .restrictions import (
    Restrictions,
    RestrictionsError,
    current_restrictions,
    getresources,
    load_restrictions,
    set_restrictions,
)

restrictions.apply_default()  # Seattle's restrictions.default is in force from import on

V2_NAMES = (
    "gethostbyname",
    "getmyip",
    "sendmessage",
    "listenformessage",
    "openconnection",
    "listenforconnection",
)


def api_namespace(text: bool = False) -> dict[str, Callable[..., Any]]:
    """The twelve V2 network names bound to a new NetworkAPI(text) object.

    Text mode (``text=True``) is what Repy programs use: payloads are
    ``str``, one character a byte; sockets remember the mode they were made
    in, so a bytes-mode and a text-mode user can share a process.
    """
    api = NetworkAPI(text=text)
    names = {name: getattr(api, name) for name in V2_NAMES}
    names.update(ipv6_names(api))
    return names


# The library API: bytes in, bytes out, no Python frame between the caller
# and C (these are bound methods of a C object).
_bytes_api = NetworkAPI(text=False)
gethostbyname = _bytes_api.gethostbyname
getmyip = _bytes_api.getmyip
sendmessage = _bytes_api.sendmessage
listenformessage = _bytes_api.listenformessage
openconnection = _bytes_api.openconnection
listenforconnection = _bytes_api.listenforconnection
getAddripv6 = _bytes_api.getAddripv6
getmyip_ipv6 = _bytes_api.getmyip_ipv6
sendmessage_ipv6 = _bytes_api.sendmessage
listenformessage_ipv6 = _bytes_api.listenformessage
openconnection_ipv6 = _bytes_api.openconnection
listenforconnection_ipv6 = _bytes_api.listenforconnection

# Written out, not built from errors.__all__ and restrictions.__all__: type
# checkers read only a literal list as the explicit exports (PEP 484), and
# tests/test_package.py checks this list against those modules'.
__all__ = [
    # the Repy exceptions (errors.__all__), and InternalRepyError (D9)
    "RepyException",
    "RepyArgumentError",
    "TimeoutError",
    "CodeUnsafeError",
    "ContextUnsafeError",
    "ResourceUsageError",
    "ResourceExhaustedError",
    "ResourceForbiddenError",
    "FileError",
    "FileNotFoundError",
    "FileInUseError",
    "SeekPastEndOfFileError",
    "FileClosedError",
    "LockDoubleReleaseError",
    "NetworkError",
    "NetworkAddressError",
    "AlreadyListeningError",
    "DuplicateTupleError",
    "CleanupInProgressError",
    "InternetConnectivityError",
    "AddressBindingError",
    "ConnectionRefusedError",
    "LocalIPChanged",
    "SocketClosedLocal",
    "SocketClosedRemote",
    "SocketWouldBlockError",
    "TCPServerSocketInvalidError",
    "InternalRepyError",
    # the V2 calls (V2_NAMES) and their IPv6 names (ipv6.IPV6_NAMES)
    "gethostbyname",
    "getmyip",
    "sendmessage",
    "listenformessage",
    "openconnection",
    "listenforconnection",
    "getAddripv6",
    "getmyip_ipv6",
    "sendmessage_ipv6",
    "listenformessage_ipv6",
    "openconnection_ipv6",
    "listenforconnection_ipv6",
    "NetworkAPI",
    "TCPSocket",
    "TCPServerSocket",
    "UDPServerSocket",
    "api_namespace",
    # restrictions.__all__
    "Restrictions",
    "RestrictionsError",
    "load_restrictions",
    "set_restrictions",
    "current_restrictions",
    "getresources",
]
