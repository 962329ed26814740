"""Who a request comes from, and what each client holds: the per-client caps.

The caps per process (``max_sockets``, ``max_streams``, ``max_encodes``) keep the server
alive; they do not keep it fair. One client opening 48 websockets and starting a stream
on each took every stream slot, and every other visitor was answered "busy". So each
client may also hold at most ``max_client_sockets`` open websockets and run at most
``max_client_streams`` streams at once (per process).

A client is its peer's address, or, when the peer is a proxy the operator trusts
(``forwarded_allow_ips``, e.g. the nginx of the README's deployment on 127.0.0.1), the
address the proxies forwarded: the ``X-Forwarded-For`` list read from the right, past
every trusted proxy. A client that is not a trusted proxy cannot choose its identity by
sending that header: it is ignored. An IPv6 client is its /64 network (``client_of``): a
host is routinely given a whole /64 and may send from any address in it, so per address
one machine had 2^64 sets of caps.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

__all__ = ["client_address", "client_of", "peer_address", "normalized", "Holdings", "Peers", "ANY_PROXY"]

#: ``forwarded_allow_ips`` entry that trusts every peer (only behind a proxy nobody can bypass)
ANY_PROXY = "*"

#: the most characters of an address taken from a header (an address is at most 45)
_MAX_ADDRESS = 64


def normalized(text: str) -> str | None:
    """An IP address in its canonical form ("::1", "127.0.0.1"; an IPv4 address mapped into IPv6,
    as a dual-stack socket reports IPv4 peers, as the IPv4 address), or None if ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


#: IPv6 addresses that are one machine each: loopback, link-local and unique local (a LAN's own
#: addresses, where the devices of one network are told apart as IPv4 private addresses are)
_LOCAL_IPV6 = (ipaddress.ip_network("::1/128"), ipaddress.ip_network("fe80::/10"), ipaddress.ip_network("fc00::/7"))


def client_of(address: str) -> str:
    """The client a canonical address counts for: an IPv4 address itself, a public IPv6 address
    its /64 network ("2001:db8:1:2::/64"), the smallest block a host or a household is handed (as
    visitors behind one IPv4 NAT, the machines of one IPv6 network share its caps); a local IPv6
    address (``_LOCAL_IPV6``) and anything else as it is."""
    try:
        address_ = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if address_.version == 4 or any(address_ in net for net in _LOCAL_IPV6):
        return address
    return str(ipaddress.ip_network((address_, 64), strict=False))


def _hop(text: str) -> str | None:
    """A forwarded address as a proxy wrote it ("203.0.113.7", "203.0.113.7:5555", "[2001:db8::1]:80"),
    canonical; None if it is none of these."""
    text = text.strip()[:_MAX_ADDRESS]
    address = normalized(text)
    if address is None and text.startswith("[") and "]" in text:
        address = normalized(text[1 : text.index("]")])
    elif address is None and text.count(":") == 1:
        address = normalized(text.split(":")[0])
    return address


def client_address(request: web.Request, trusted: tuple[str, ...]) -> str:
    """The client a request comes from (``client_of``): its peer, or when the peer is a trusted
    proxy (``trusted``: canonical addresses; ``ANY_PROXY`` makes any peer one) the nearest address
    forwarded that is not itself a listed proxy. Only the proxies' own entries are believed:
    what a client wrote into the header before them is never reached."""
    return client_of(_address(request, trusted))


def peer_address(request: web.Request) -> str:
    """The address the connection comes from, canonical ("unknown" where the transport has none)."""
    peer = request.remote or "unknown"
    return normalized(peer) or peer


def _address(request: web.Request, trusted: tuple[str, ...]) -> str:
    """The address ``client_address`` takes the client of."""
    peer = peer_address(request)
    if not trusted or (ANY_PROXY not in trusted and peer not in trusted):
        return peer
    # every header line, in order: a proxy may add a line of its own after the client's
    lines = ",".join(request.headers.getall("X-Forwarded-For", ()))
    hops = [h for h in lines.split(",") if h.strip()]
    for text in reversed(hops):  # the nearest proxy appended the last one
        hop = _hop(text)
        if hop is None:  # not an address: the proxies' list cannot be read past it
            return peer
        if hop not in trusted:
            return hop
    return (_hop(hops[0]) or peer) if hops else peer


@dataclass
class Holdings:
    """What one client holds now."""

    sockets: int = 0
    streams: int = 0
    uploads: int = 0  # upload requests being received and decoded
    regions: int = 0  # 1:1 regions being answered by decoding the stream


class Peers:
    """Open websockets and running streams per client address (this process's)."""

    def __init__(self) -> None:
        self._held: dict[str, Holdings] = {}

    def __len__(self) -> int:
        """Clients holding a socket, a stream or an upload now."""
        return len(self._held)

    def of(self, client: str) -> Holdings:
        """What ``client`` holds (a fresh, empty record if nothing)."""
        return self._held.get(client) or Holdings()

    def change(self, client: str, sockets: int = 0, streams: int = 0, uploads: int = 0, regions: int = 0) -> None:
        """Count a socket, stream, upload or region decode begun (+1) or ended (-1); a client holding
        nothing is forgotten."""
        held = self._held.setdefault(client, Holdings())
        held.sockets += sockets
        held.streams += streams
        held.uploads += uploads
        held.regions += regions
        if held.sockets <= 0 and held.streams <= 0 and held.uploads <= 0 and held.regions <= 0:
            del self._held[client]
