"""The server's RTCP (RFC 3550 section 6): SR + SDES, BYE, receiver reports, XR RRTR/DLRR."""

import select
import time

from RtcpPacket import (
    Bye, ExtendedReport, ReceiverReport, ReportBlock, SenderReport, SourceDescription, XrBlock, XrBlockType,
    ntp_from_unix, ntp_middle32, parse_compound, serialize_compound, unix_from_ntp,
)
from RtpPacket import ts_diff
from RtspHeaders import Transport
from rtsp_tools import RtpReceiver, RtspConn
from test_server import setup_udp


def rtcp_packets(receiver, until, timeout):
    """Compound RTCP datagrams on the receiver's odd port until until(list) or the timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got) and time.monotonic() < deadline:
        ready, _, _ = select.select([receiver.rtcp], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            data, addr = receiver.rtcp.recvfrom(65536)
            got.append((parse_compound(data), addr, time.time()))
    return got


def the_session(srv):
    sessions = list(srv.server.registry._sessions.values())
    assert len(sessions) == 1
    return sessions[0]


def test_sender_reports_map_ntp_to_rtp_time(server):
    receiver = RtpReceiver()
    conn = RtspConn(server.port)
    reply, sid = setup_udp(conn, server.url(), receiver)
    transport = Transport.parse_list(reply.headers["Transport"])[0]
    assert conn.request("PLAY", server.url(), {"Session": sid}).status == 200
    reports = rtcp_packets(receiver, lambda got: len(got) >= 3, timeout=12)
    # the first SR comes right after the PLAY (it maps the new timeline); then the scheduled ones
    at_play, reports = reports[0], reports[1:]
    assert at_play[0][0].packet_count == 0
    assert len(reports) >= 2, "two SRs within the RFC 3550 interval (first <= 3.1 s, then <= 6.2 s)"
    rtp = receiver.drain(quiet=0.2, timeout=2)
    for packets, addr, arrived in reports:
        sr, sdes = packets[0], packets[1]
        assert isinstance(sr, SenderReport) and sr.ssrc == transport.ssrc
        assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname
        assert addr[1] == transport.server_port[1]  # from the odd server port
        assert abs(unix_from_ntp(sr.ntp_timestamp) - arrived) < 0.5
    # the SR's RTP time runs with the 90 kHz media clock: 20 fps -> 4500 per frame
    (first, _, _), (second, _, _) = reports[0], reports[1]
    elapsed = unix_from_ntp(second[0].ntp_timestamp) - unix_from_ntp(first[0].ntp_timestamp)
    assert abs(ts_diff(second[0].rtp_timestamp, first[0].rtp_timestamp) / 90000 - elapsed) < 0.1
    assert second[0].packet_count > first[0].packet_count > 0
    assert second[0].octet_count > first[0].octet_count
    assert rtp and rtp[0].ssrc == transport.ssrc
    conn.close()
    receiver.close()


def test_receiver_reports_are_read_and_xr_rrtr_answered(server):
    receiver = RtpReceiver()
    conn = RtspConn(server.port)
    reply, sid = setup_udp(conn, server.url(), receiver)
    transport = Transport.parse_list(reply.headers["Transport"])[0]
    assert conn.request("PLAY", server.url(), {"Session": sid}).status == 200
    rrtr_time = ntp_from_unix(time.time())
    report = serialize_compound([
        ReceiverReport(0x5EED, [ReportBlock(transport.ssrc, fraction_lost=64, packets_lost=10,
                                            highest_sequence=1000, jitter=900)]),
        SourceDescription.cname(0x5EED, "test@127.0.0.1"),
        ExtendedReport(0x5EED, [XrBlock.rrtr(rrtr_time)]),
    ])
    receiver.rtcp.sendto(report, ("127.0.0.1", transport.server_port[1]))
    replies = rtcp_packets(receiver, lambda got: any(isinstance(p, ExtendedReport) for g in got for p in g[0]),
                           timeout=8)
    xr = [p for packets, _, _ in replies for p in packets if isinstance(p, ExtendedReport)]
    assert xr, "the next SR carries an XR DLRR block"
    (block,) = [b for b in xr[0].blocks if b.block_type == XrBlockType.DLRR]
    ssrc, lrr, dlrr = block.dlrr_items[0]
    assert ssrc == 0x5EED and lrr == ntp_middle32(rrtr_time) and dlrr > 0
    session = the_session(server)
    assert session.rtcp.rr_count == 1
    assert session.rtcp.rr_fraction_lost == 0.25
    assert session.rtcp.rr_cumulative_lost == 10
    assert abs(session.rtcp.rr_jitter_ms - 10.0) < 1e-9  # 900 / 90 kHz
    conn.close()
    receiver.close()


def test_bye_at_end_of_stream_and_at_teardown(start_server):
    srv = start_server(fps=200)  # the whole movie in 2.5 s
    receiver = RtpReceiver()
    conn = RtspConn(srv.port)
    _, sid = setup_udp(conn, srv.url(), receiver)
    assert conn.request("PLAY", srv.url(), {"Session": sid}).status == 200
    got = rtcp_packets(receiver, lambda got: any(isinstance(p, Bye) for g in got for p in g[0]), timeout=10)
    byes = [p for packets, _, _ in got for p in packets if isinstance(p, Bye)]
    assert byes and byes[0].reason_text == "end of stream"
    assert conn.request("PLAY", srv.url(), {"Session": sid, "Range": "npt=1-"}).status == 200
    assert conn.request("TEARDOWN", srv.url(), {"Session": sid}).status == 200
    got = rtcp_packets(receiver, lambda got: any(isinstance(p, Bye) for g in got for p in g[0]), timeout=5)
    byes = [p for packets, _, _ in got for p in packets if isinstance(p, Bye)]
    assert byes and byes[0].reason_text == "TEARDOWN"
    conn.close()
    receiver.close()


def test_rtcp_from_the_client_keeps_the_session_alive(start_server):
    srv = start_server(session_timeout=1.0)
    receiver = RtpReceiver()
    conn = RtspConn(srv.port)
    reply, sid = setup_udp(conn, srv.url(), receiver)
    port = Transport.parse_list(reply.headers["Transport"])[0].server_port[1]
    rr = serialize_compound([ReceiverReport(7), SourceDescription.cname(7, "x@y")])
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # 2.5 s of RTCP only, no RTSP request
        receiver.rtcp.sendto(rr, ("127.0.0.1", port))
        time.sleep(0.3)
    assert srv.server.registry.count() == 1
    assert conn.request("PLAY", srv.url(), {"Session": sid}).status == 200
    conn.close()
    receiver.close()


def test_an_sr_follows_each_play_and_maps_its_timeline(server):
    """Right after each PLAY (a seek too) an SR maps the RTP-Info rtptime to the wall clock of the
    PLAY, so a receiver can tell the new timeline's delay at once (issue 17)."""
    receiver = RtpReceiver()
    conn = RtspConn(server.port)
    reply, sid = setup_udp(conn, server.url(), receiver)
    from RtspHeaders import parse_rtp_info
    for start in (None, 12.0, 3.0):
        headers = {"Session": sid}
        if start is not None:
            assert conn.request("PAUSE", server.url(), {"Session": sid}).status == 200
            rtcp_packets(receiver, lambda got: False, timeout=0.3)         # whatever was on its way
            headers["Range"] = f"npt={start}-"
        sent = time.time()
        play = conn.request("PLAY", server.url(), headers)
        assert play.status == 200
        rtptime = parse_rtp_info(play.headers["RTP-Info"])[0].rtptime
        got = rtcp_packets(receiver, lambda got: len(got) >= 1, timeout=0.5)
        assert got, f"no SR within 0.5 s of PLAY (start {start})"
        sr = got[0][0][0]
        assert isinstance(sr, SenderReport)
        wall = unix_from_ntp(sr.ntp_timestamp)
        assert sent - 0.05 < wall < got[0][2] + 0.05
        # at the SR's instant the stream is at (or within a frame of) the PLAY's rtptime
        assert abs(ts_diff(sr.rtp_timestamp, rtptime)) <= 90000 // 20 + 900
    conn.close()
    receiver.close()
