"""Runs inside a test's network namespace (ip netns exec): scripted RTSP + a group listener.

    python3 tests/mcast_probe.py teardown URL      # join, TEARDOWN, is the group silent 1 s later?
    python3 tests/mcast_probe.py refuse URL        # multicast PAUSE / seek / bad destinations
    python3 tests/mcast_probe.py liveness URL S    # only RRs to the group for S s, then silence
Prints one JSON object.
"""

import json
import select
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from RtcpPacket import Bye, ReceiverReport, ReportBlock, parse_compound, serialize_compound  # noqa: E402
from RtspHeaders import Transport  # noqa: E402
from rtsp_tools import RtspConn  # noqa: E402


def connect(url):
    host_port = url.split("/")[2]
    return RtspConn(int(host_port.rsplit(":", 1)[1]), host_port.rsplit(":", 1)[0])


def join(group, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((group, port))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1")))
    return sock


def setup_multicast(conn, url):
    reply = conn.request("SETUP", url + "/trackID=0", {"Transport": "RTP/AVP;multicast"})
    assert reply.status == 200, reply
    tr = Transport.parse(reply.headers["Transport"])
    return reply.headers["Session"].split(";")[0], tr


def teardown(url):
    conn = connect(url)
    session, tr = setup_multicast(conn, url)
    rtp, rtcp = join(tr.destination, tr.port[0]), join(tr.destination, tr.port[1])
    conn.request("PLAY", url, {"Session": session})
    before = 0
    deadline = time.monotonic() + 10
    while before < 20 and time.monotonic() < deadline:
        if select.select([rtp], [], [], 0.5)[0]:
            rtp.recv(65536)
            before += 1
    reply = conn.request("TEARDOWN", url, {"Session": session})
    t_down = time.monotonic()
    last = None
    byes = 0
    end = t_down + 1.5
    while time.monotonic() < end:
        ready, _, _ = select.select([rtp, rtcp], [], [], max(0.0, end - time.monotonic()))
        for sock in ready:
            data = sock.recv(65536)
            if sock is rtp:
                last = time.monotonic() - t_down
            else:
                try:
                    byes += any(isinstance(p, Bye) for p in parse_compound(data))
                except ValueError:
                    pass
    return {"transport": tr.format(), "teardown_status": reply.status, "packets_before": before,
            "last_packet_after_teardown_s": last, "bye_seen": byes}


def refuse(url):
    out = {}
    conn = connect(url)
    for label, spec in [("unicast_elsewhere", "RTP/AVP;unicast;destination=10.9.8.7;client_port=5000-5001"),
                        ("outside_range", "RTP/AVP;multicast;destination=239.1.2.3"),
                        ("not_multicast", "RTP/AVP;multicast;destination=10.9.8.7")]:
        reply = conn.request("SETUP", url + "/trackID=0", {"Transport": spec})
        out[label] = [reply.status, reply.body.decode(errors="replace").strip()]
    session, tr = setup_multicast(conn, url)
    conn.request("PLAY", url, {"Session": session})
    for label, method, headers in [("pause", "PAUSE", {}), ("seek", "PLAY", {"Range": "npt=3-"})]:
        reply = conn.request(method, url, {"Session": session, **headers})
        out[label] = [reply.status, reply.body.decode(errors="replace").strip()]
    conn.request("TEARDOWN", url, {"Session": session})
    return out


def liveness(url, seconds):
    """PLAY, then no RTSP request: only an RR to the group's RTCP port every 0.4 s for `seconds`
    (RFC 2326 12.37: RTCP is liveness), then one GET_PARAMETER; then silence for `seconds`
    and another GET_PARAMETER (the session should have timed out by then)."""
    conn = connect(url)
    session, tr = setup_multicast(conn, url)
    conn.request("PLAY", url, {"Session": session})
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        report = ReceiverReport(0x5EED0001, [ReportBlock(tr.ssrc or 0, jitter=90)])
        out.sendto(serialize_compound([report]), (tr.destination, tr.port[1]))
        sent += 1
        time.sleep(0.4)
    alive = conn.request("GET_PARAMETER", url, {"Session": session}).status
    time.sleep(seconds)
    try:
        after = conn.request("GET_PARAMETER", url, {"Session": session}).status
    except (OSError, AssertionError, TimeoutError) as exc:
        after = f"no reply: {exc}"
    return {"reports_sent": sent, "status_while_reporting": alive, "status_after_silence": after}


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "liveness":
        print(json.dumps(liveness(url, float(sys.argv[3]))))
    else:
        print(json.dumps({"teardown": teardown, "refuse": refuse}[mode](url)))
