"""Multicast.MulticastPool: group/port assignment and the destinations a client may ask for."""

import pytest

from Multicast import MulticastPool


def test_each_stream_gets_its_own_group_and_port_pair_every_time():
    pool = MulticastPool("239.255.42.0/24", ttl=3)
    a, b = pool.assign("movie.Mjpeg"), pool.assign("cam")
    assert (a.group, a.port, a.ttl) == ("239.255.42.1", (50000, 50001), 3)
    assert (b.group, b.port) == ("239.255.42.2", (50002, 50003))
    assert pool.assign("movie.Mjpeg") == a


def test_ipv6_range():
    pool = MulticastPool("ff15::/16")
    assert pool.family_v6 and pool.assign("cam").group == "ff15::1"


@pytest.mark.parametrize("destination, reason", [
    (None, None),
    ("239.255.42.77", None),
    ("239.1.2.3", "outside the server's multicast range 239.255.42.0/24"),
    ("10.1.2.3", "not a multicast address"),
    ("127.0.0.1", "not a multicast address"),
    ("ff15::1", "outside the server's multicast range"),
    ("host.example", "not an IP address"),
])
def test_refused_destinations(destination, reason):
    why = MulticastPool("239.255.42.0/24").refuse_destination(destination)
    assert (why is None) if reason is None else (reason in why), why


@pytest.mark.parametrize("network, ttl, message", [
    ("10.0.0.0/8", 1, "not a multicast range"),
    ("224.0.0.0/24", 1, "link-local control block"),
    ("banana", 1, "not an address range"),
    ("239.255.42.0/24", 256, "outside 0-255"),
])
def test_bad_options(network, ttl, message):
    with pytest.raises(ValueError, match=message):
        MulticastPool(network, ttl=ttl)


@pytest.mark.parametrize("argv, message", [
    (["--multicast", "10.0.0.0/8"], "--multicast 10.0.0.0/8 is not a multicast range"),
    (["--multicast", "239.255.42.0/24", "--multicast-ttl", "300"], "--multicast-ttl 300 is outside 0-255"),
    (["--live", "cam"], "expected NAME=COMMAND, NAME=- or NAME=http://"),
    (["--live", "a=-", "--live", "b=-"], "only one --live source can read standard input"),
])
def test_server_options_are_one_line_errors(argv, message, capsys):
    import Server

    assert Server.main(["0", "--host", "127.0.0.1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
