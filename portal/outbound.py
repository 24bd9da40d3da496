"""Whether a host someone typed (a webhook's URL, a DVC repository's git URL) leads
where only the portal can reach: its own loopback, the cluster's private network, the
cloud's metadata server."""

import ipaddress
import socket

_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def _addresses_behind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list:
    """The address and any IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, the
    NAT64 prefix, the deprecated IPv4-compatible form): `64:ff9b::7f00:1` or
    `2002:7f00:1::` count as global to `ipaddress` yet lead to 127.0.0.1."""
    found = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            found.append(address.ipv4_mapped)
        if address.sixtofour:
            found.append(address.sixtofour)
        packed = int(address)
        if address in _NAT64_PREFIX or packed >> 32 == 0:
            found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return found


def private_address_of(host: str) -> str:
    """The first address `host` resolves to that is not a public one (loopback,
    private, link-local, reserved, or one of those carried inside an IPv6 address), as
    text; "" when every address is public or the host does not resolve (connecting to
    it then fails by itself). A name whose answer changes between this check and the
    connection can still slip through: egress rules in the cluster are the stronger
    guard."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError, ValueError):
        return ""
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not all(part.is_global for part in _addresses_behind(address)):
            return str(address)
    return ""
