"""RtcpSession: both sides of RTCP without a socket, driven by captured packets and fixed clocks.

The captured reports (tests/fixtures/rtcp_*.bin, tools/capture_rtcp.py) are what ffmpeg and
GStreamer sent; the times are chosen so that each expected number (RTT, DLSR, intervals) follows
from RFC 3550 §6.3/§6.4 and RFC 3611 §4.4-4.5 by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from RtcpPacket import (COMPENSATION, RTCP_MIN_TIME, Bye, ExtendedReport, ReceiverReport, ReportBlock,
                        SenderReport, SourceDescription, XrBlockType, ntp_from_unix, ntp_middle32,
                        parse_compound, rtcp_deterministic_interval, serialize_compound, unix_from_ntp)
from RtcpSession import REPORTER_MEMORY, RRTR_MEMORY, Origin, RtcpReceiver, RtcpSender

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WALL = 1_700_000_000.0          # a Unix time; monotonic times are small numbers beside it


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class FixedRng:
    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def wall_at(middle32: int) -> float:
    """The Unix time whose NTP middle 32 bits are ``middle32`` (near WALL's era)."""
    era = ntp_from_unix(WALL) & ~((1 << 48) - 1)
    return unix_from_ntp(era | (middle32 << 16))


def sender(ssrc: int = 0x12345678) -> RtcpSender:
    return RtcpSender(ssrc, "server@test", "PyRtspLab/1.0", label="session 1")


def receiver(ssrc: int = 0xABCD0001) -> RtcpReceiver:
    return RtcpReceiver(ssrc, "player@test", "RtpLabPlayer/1.0", FixedRng())


# ----------------------------------------------------------------------------- sender side

# (capture, SSRC it reports on, fraction lost, cumulative lost, jitter in 90 kHz units)
RECEIVER_REPORTS = [
    ("rtcp_ffmpeg_rr_from_ffmpeg_1.bin", 305419896, 0, 0, 37),
    ("rtcp_ffmpeg_rr_from_ffmpeg_last.bin", 305419896, 0, 0, 19),
    ("rtcp_gst_rr_from_gst_1.bin", 4277613221, 0, -1, 2),
]


@pytest.mark.parametrize("name,ssrc,fraction,cumulative,jitter", RECEIVER_REPORTS)
def test_sender_reads_captured_receiver_reports(name, ssrc, fraction, cumulative, jitter):
    data = fixture(name)
    (block,) = [b for p in parse_compound(data) if isinstance(p, ReceiverReport) for b in p.reports]
    rtt_units = 655                                    # 655/65536 s = 9.99 ms after LSR + DLSR
    side = sender(ssrc)
    assert side.receive(data, wall_at((block.lsr + block.dlsr + rtt_units) & 0xFFFFFFFF), now=3.0)
    assert side.rr_count == 1
    assert (side.rr_fraction_lost, side.rr_cumulative_lost) == (fraction / 256.0, cumulative)
    assert side.rr_jitter_ms == pytest.approx(jitter * 1000.0 / 90000)
    assert side.rtt_ms == pytest.approx(rtt_units / 65536 * 1000.0, abs=0.01)


def test_sender_ignores_blocks_about_other_sources_and_counts_nothing_for_garbage():
    side = sender(0x11111111)
    assert side.receive(fixture("rtcp_ffmpeg_rr_from_ffmpeg_1.bin"), WALL, 1.0)
    assert side.rr_count == 0 and side.rtt_ms is None
    assert not side.receive(b"\x80\xc8\x00\x09garbage", WALL, 1.0)   # logged and dropped
    assert side.rr_count == 0


def test_group_sender_tells_its_own_echo_from_each_members_reports():
    """On a multicast group (RFC 3550 §6.2) the sender hears its own SR back (§8.2: same SSRC,
    only counted) and every member's RR, kept per reporter SSRC."""
    side = sender(0x12345678)
    assert side.receive(side.sender_report(WALL, 1.0, 0, 10, 1000), WALL, 1.0) is Origin.OWN
    assert side.receive(side.bye("end", WALL, 1.0, 0, 10, 1000), WALL, 1.0) is Origin.OWN
    assert side.own_echoes == 2 and side.rr_count == 0
    for member, lost, jitter in ((0xA1, 3, 90), (0xB2, 0, 180), (0xA1, 5, 45)):
        rr = ReceiverReport(member, [ReportBlock(0x12345678, fraction_lost=0, packets_lost=lost, jitter=jitter)])
        assert side.receive(serialize_compound([rr]), WALL, 2.0) is Origin.PEER
    assert side.rr_count == 3 and sorted(side.reporters) == [0xA1, 0xB2]
    assert (side.reporters[0xA1].reports, side.reporters[0xA1].cumulative_lost) == (2, 5)
    assert side.reporters[0xA1].jitter_ms == pytest.approx(0.5)
    assert side.reporters[0xB2].jitter_ms == pytest.approx(2.0)
    for member in range(REPORTER_MEMORY + 10):  # a flood of SSRCs is bounded
        side.receive(serialize_compound([ReceiverReport(0x1000 + member, [ReportBlock(0x12345678)])]), WALL, 3.0)
    assert len(side.reporters) == REPORTER_MEMORY and 0xA1 not in side.reporters


def test_sender_report_maps_wall_clock_to_media_clock():
    side = sender()
    packets = parse_compound(side.sender_report(WALL, 10.0, rtp_timestamp=123456, packets_sent=7,
                                                octets_sent=7000))
    sr, sdes = packets
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (0x12345678, 123456, 7, 7000)
    assert unix_from_ntp(sr.ntp_timestamp) == pytest.approx(WALL, abs=1e-6)
    assert sdes.chunks[0].items[0][1] == b"server@test"


def test_bye_ends_the_report():
    packets = parse_compound(sender().bye("end of stream", WALL, 1.0, 0, 0, 0))
    assert isinstance(packets[-1], Bye) and packets[-1].reason_text == "end of stream"


def test_sender_interval_rfc3550_6_3():
    side = sender()
    size = len(side.sender_report(0.0, 0.0, 0, 0, 0)) + 28.0
    first = side.interval(bandwidth=20_000.0, members=2, rng=FixedRng(0.5))
    td = rtcp_deterministic_interval(2, 1, 0.05 * 20_000.0, True, size, True, RTCP_MIN_TIME)
    assert first == pytest.approx(td / COMPENSATION)             # uniform factor 1.0, halved minimum
    assert side.interval(20_000.0, 2, FixedRng(0.5)) == pytest.approx(
        rtcp_deterministic_interval(2, 1, 1000.0, True, size, False, RTCP_MIN_TIME) / COMPENSATION)
    assert first < side.interval(20_000.0, 2, FixedRng(0.5))     # only the first is halved


# ----------------------------------------------------------------------------- receiver side

# (capture, the BYE it ends with: GStreamer's last report says goodbye)
@pytest.mark.parametrize("name,bye", [("rtcp_gst_sr_0.bin", None), ("rtcp_ffmpeg_sr_0.bin", None),
                                      ("rtcp_gst_sr_last.bin", "end of stream")])
def test_receiver_reads_captured_sender_reports(name, bye):
    data = fixture(name)
    sr = next(p for p in parse_compound(data, strict=False) if isinstance(p, SenderReport))
    side = receiver()
    got = side.receive(data, WALL, now=50.0, sender=sr.ssrc)
    assert got is not None and got.sender_report == sr and got.bye == bye
    assert (side.sr_received, side.sender_packets, side.sender_octets) == (1, sr.packet_count, sr.octet_count)
    # our next report block: LSR = the SR's middle 32 bits, DLSR = 1.5 s later in 1/65536 s
    assert side.lsr_dlsr(51.5) == (ntp_middle32(sr.ntp_timestamp), 98304)
    # an SR of another source (we follow the first one's SSRC) changes nothing
    assert side.receive(data, WALL, 60.0, sender=sr.ssrc ^ 1).sender_report is None
    assert side.sr_received == 1


def test_receiver_report_carries_block_rrtr_and_bye():
    side = receiver()
    block = ReportBlock(0x12345678, fraction_lost=64, packets_lost=10, highest_sequence=70000,
                        jitter=900, lsr=0x1234, dlsr=0x10000)
    packets = parse_compound(side.report(WALL, 5.0, block, bye="teardown"))
    rr, sdes, xr, bye = packets
    assert isinstance(rr, ReceiverReport) and rr.ssrc == 0xABCD0001 and rr.reports == [block]
    assert isinstance(xr, ExtendedReport) and xr.blocks[0].block_type == XrBlockType.RRTR
    assert isinstance(bye, Bye) and bye.reason_text == "teardown"
    assert list(side.rrtr_sent.values()) == [5.0]
    side.report(WALL, 6.0, None, probe=True)                      # a probe remembers nothing
    assert len(side.rrtr_sent) == 1
    for i in range(RRTR_MEMORY + 5):
        side.report(WALL + i + 1, 7.0 + i, None)
    assert len(side.rrtr_sent) == RRTR_MEMORY                     # bounded


def test_round_trip_time_both_ways_without_a_socket():
    """Receiver RR+RRTR -> sender (RTT from LSR/DLSR; RRTR kept) -> SR+DLRR -> receiver (RTT via XR)."""
    rx, tx = receiver(), sender()
    # 1. the sender's SR reaches the receiver at monotonic 10.0
    rx.receive(tx.sender_report(WALL, 0.0, 1000, 5, 5000), WALL + 0.05, now=10.0, sender=tx.ssrc)
    # 2. 0.4 s later the receiver reports (its block's LSR/DLSR say so) with an RRTR
    lsr, dlsr = rx.lsr_dlsr(10.4)
    assert dlsr == round(0.4 * 65536)
    report = rx.report(WALL + 0.45, 10.4, ReportBlock(tx.ssrc, lsr=lsr, dlsr=dlsr))
    # 3. it arrives at the sender 0.05 s later: RTT = A - LSR - DLSR = 0.1 s
    assert tx.receive(report, WALL + 0.5, now=0.5)
    assert tx.rtt_ms == pytest.approx(100.0, abs=0.1)
    assert tx.last_rrtr is not None and tx.last_rrtr[0] == rx.ssrc
    # 4. the sender's next SR, 0.3 s after the RRTR arrived, answers it with DLRR = 0.3 s
    answer = tx.sender_report(WALL + 0.8, 0.8, 2000, 9, 9000)
    xr = next(p for p in parse_compound(answer) if isinstance(p, ExtendedReport))
    ((reporter, lrr, delay),) = xr.blocks[0].dlrr_items
    assert (reporter, lrr) == (rx.ssrc, ntp_middle32(ntp_from_unix(WALL + 0.45)))
    assert delay == pytest.approx(0.3 * 65536, abs=1)
    # 5. the receiver gets it 0.05 s later: RTT = A - LRR - DLRR = (0.85 - 0.45) - 0.3 = 0.1 s
    rx.receive(answer, WALL + 0.85, now=10.85, sender=tx.ssrc)
    assert rx.rtt_ms == pytest.approx(100.0, abs=0.1)
    # and the sender saw the receiver's loss/jitter block
    assert tx.rr_count == 1


def test_receiver_bye_and_garbage():
    rx, tx = receiver(), sender()
    got = rx.receive(tx.bye("end of stream", WALL, 1.0, 0, 0, 0), WALL, 1.0, sender=tx.ssrc)
    assert got is not None and got.bye == "end of stream"
    assert rx.receive(b"\x80\xc8\x00\x09garbage", WALL, 1.0, sender=None) is None
    assert rx.errors == 1
    other = serialize_compound([Bye([0x999])])
    assert rx.receive(other, WALL, 1.0, sender=tx.ssrc).bye is None   # someone else's BYE


def test_receiver_interval_and_group_members():
    rx = receiver()
    session_bw = 125_000.0
    size = len(rx.report(WALL, 0.0, ReportBlock(0), probe=True)) + 28.0
    first = rx.interval(session_bw, WALL, 0.0, with_block=True)
    assert first == pytest.approx(rtcp_deterministic_interval(2, 1, 0.05 * session_bw, False, size, True,
                                                              RTCP_MIN_TIME) / COMPENSATION)
    assert first == pytest.approx(RTCP_MIN_TIME / 2 / COMPENSATION)   # the halved minimum wins here
    # on a multicast group the other receivers' RRs make members (RFC 3550 §6.2)
    for ssrc in range(1, 40):
        rx.receive(serialize_compound([ReceiverReport(ssrc)]), WALL, 1.0, sender=None, group=True)
    assert len(rx.members) == 39
    avg = rx.avg_rtcp_size
    assert rx.interval(200.0, WALL, 2.0, with_block=True, group=True) == pytest.approx(
        rtcp_deterministic_interval(41, 1, 0.05 * 200.0, False, avg, False, RTCP_MIN_TIME) / COMPENSATION)


def test_reset_forgets_the_sender():
    rx = receiver()
    rx.receive(fixture("rtcp_gst_sr_0.bin"), WALL, 1.0, sender=None)
    rx.interval(125_000.0, WALL, 1.0, with_block=False)
    rx.reset()
    assert (rx.sr, rx.sr_received, rx.sender_packets, rx.rtt_ms, rx.initial) == (None, 0, None, None, True)
    assert rx.lsr_dlsr(5.0) == (0, 0)
