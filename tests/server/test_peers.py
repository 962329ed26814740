"""Who a request comes from: the peer, or behind a trusted proxy the address it forwarded."""

from __future__ import annotations

import argparse
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from server.cli import address_list
from server.peers import Peers, client_address


def request(peer: str, forwarded: str | list[str] | None = None):
    from multidict import CIMultiDict

    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 5555) if name == "peername" else default
    lines = [] if forwarded is None else [forwarded] if isinstance(forwarded, str) else forwarded
    headers = CIMultiDict([("X-Forwarded-For", line) for line in lines])
    return make_mocked_request("GET", "/ws", headers=headers, transport=transport)


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "client"), [
    ("192.0.2.1", None, (), "192.0.2.1"),
    ("192.0.2.1", "203.0.113.7", (), "192.0.2.1"),  # nobody trusted: the header is ignored
    ("192.0.2.1", "203.0.113.7", ("127.0.0.1",), "192.0.2.1"),  # a client that is not the proxy cannot spoof
    ("127.0.0.1", "203.0.113.7", ("127.0.0.1",), "203.0.113.7"),  # the proxy forwards a client
    ("127.0.0.1", "6.6.6.6, 203.0.113.7", ("127.0.0.1",), "203.0.113.7"),  # what the client wrote is never reached
    ("127.0.0.1", "203.0.113.7, 10.0.0.2", ("127.0.0.1", "10.0.0.2"), "203.0.113.7"),  # two proxies
    ("127.0.0.1", None, ("127.0.0.1",), "127.0.0.1"),  # the proxy sent no header: the proxy itself
    ("10.1.1.1", "6.6.6.6, 203.0.113.7", ("*",), "203.0.113.7"),  # any peer a proxy: its own entry only
    ("::1", "2001:db8::0001", ("::1",), "2001:db8::/64"),  # canonical forms; IPv6: the /64 network
    ("127.0.0.1", " , ,", ("127.0.0.1",), "127.0.0.1"),
    # a proxy that adds a header line of its own after the client's: every line is read, in order
    ("127.0.0.1", ["6.6.6.1", "203.0.113.7"], ("127.0.0.1",), "203.0.113.7"),
    # a dual-stack socket reports IPv4 peers mapped into IPv6: the proxy is still recognised
    ("::ffff:127.0.0.1", "203.0.113.7", ("127.0.0.1",), "203.0.113.7"),
    ("::ffff:192.0.2.1", None, (), "192.0.2.1"),
    # a proxy that writes ports: the address without it, so that each connection is not a new client
    ("127.0.0.1", "203.0.113.7:5555", ("127.0.0.1",), "203.0.113.7"),
    ("127.0.0.1", "[2001:db8::1]:443", ("127.0.0.1",), "2001:db8::/64"),
    # a host given a /64 may send from any address in it: one client; the next /64 is another
    ("2001:db8:0:1:aaaa::1", None, (), "2001:db8:0:1::/64"),
    ("2001:db8:0:1:ffff:1:2:3", None, (), "2001:db8:0:1::/64"),
    ("2001:db8:0:2::1", None, (), "2001:db8:0:2::/64"),
    ("127.0.0.1", "2001:db8:0:1:1234::9", ("127.0.0.1",), "2001:db8:0:1::/64"),
    # the local addresses of one LAN are its devices, told apart as IPv4 private addresses are
    ("fd00:1:2:3::a", None, (), "fd00:1:2:3::a"),
    ("fe80::1%eth0", None, (), "fe80::1%eth0"),
    ("::1", None, (), "::1"),
    # what cannot be read as an address stops the reading: the proxy itself is the client
    ("127.0.0.1", "203.0.113.7, unknown", ("127.0.0.1",), "127.0.0.1"),
])
def test_the_client_is_the_peer_or_what_a_trusted_proxy_forwarded(peer, forwarded, trusted, client):
    assert client_address(request(peer, forwarded), trusted) == client


def test_counts_are_kept_per_client_and_forgotten_at_zero():
    peers = Peers()
    peers.change("a", sockets=+1)
    peers.change("a", streams=+1)
    peers.change("b", sockets=+1)
    assert (peers.of("a").sockets, peers.of("a").streams, len(peers)) == (1, 1, 2)
    peers.change("a", streams=-1)
    peers.change("a", sockets=-1)
    assert len(peers) == 1 and peers.of("a").sockets == 0


def test_forwarded_allow_ips_takes_addresses_or_a_star_and_refuses_names():
    assert address_list("127.0.0.1, ::1") == ("127.0.0.1", "::1")
    assert address_list("*") == ("*",)
    for bad in ("localhost", "10.0.0.0/8", ",", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            address_list(bad)


def test_serve_refuses_a_proxy_given_by_name_with_the_reason(tmp_path, capsys):
    from hidenet_core.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--forwarded-allow-ips", "localhost", "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "'localhost' is not an IP address" in capsys.readouterr().err


def test_serve_builds_the_per_client_caps_from_its_flags(tmp_path):
    from hidenet_core.cli import build_parser
    from server.cli import build_config

    args = build_parser().parse_args(["serve", "--max-client-streams", "3", "--max-client-sockets", "5",
                                      "--max-client-uploads", "4", "--max-region-decodes", "3",
                                      "--max-client-region-decodes", "2",
                                      "--forwarded-allow-ips", "127.0.0.1,::1", "--data-dir", str(tmp_path)])
    config = build_config(args)
    assert (config.max_client_streams, config.max_client_sockets, config.max_client_uploads) == (3, 5, 4)
    assert (config.max_region_decodes, config.max_client_region_decodes) == (3, 2)
    assert config.forwarded_allow_ips == ("127.0.0.1", "::1")


@pytest.mark.parametrize("setting", ["max_region_decodes", "max_client_region_decodes"])
def test_the_config_refuses_a_region_decode_cap_below_one(tmp_path, setting):
    from server.config import ServerConfig

    with pytest.raises(ValueError, match=f"invalid server setting {setting}=0"):
        ServerConfig(data_dir=tmp_path, **{setting: 0})


def test_the_config_takes_proxies_as_addresses_in_canonical_form(tmp_path):
    from server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path, forwarded_allow_ips=("::0001", "*"))
    assert config.forwarded_allow_ips == ("::1", "*")
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        ServerConfig(data_dir=tmp_path, forwarded_allow_ips=("localhost",))
