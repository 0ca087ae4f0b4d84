"""The IPv6 names of the Repy V2 API (seed 003), over the same C paths.

Every V2 call accepts IPv4 and IPv6 literals alike (spec D21), so the
``_ipv6`` names that move data are the very same C methods under the names
IPv6 Repy programs use; ``getAddripv6`` and ``getmyip_ipv6`` are C methods
of their own.  No check, table or hot path exists twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._repynet import NetworkAPI

# name in IPv6 programs -> the NetworkAPI method that implements it
IPV6_NAMES = {
    "getAddripv6": "getAddripv6",
    "getmyip_ipv6": "getmyip_ipv6",
    "sendmessage_ipv6": "sendmessage",
    "listenformessage_ipv6": "listenformessage",
    "openconnection_ipv6": "openconnection",
    "listenforconnection_ipv6": "listenforconnection",
}


def ipv6_names(api: NetworkAPI) -> dict[str, Callable[..., Any]]:
    """The six IPv6 names bound to a NetworkAPI object."""
    return {name: getattr(api, method) for name, method in IPV6_NAMES.items()}
