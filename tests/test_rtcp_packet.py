"""Tests for RtcpPacket.py: real ffmpeg/GStreamer captures, wire-byte tables, A.2 checks."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings, strategies as st

from RtcpPacket import (
    COMPENSATION, App, Bye, ExtendedReport, PacketType, ReceiverReport, ReportBlock, RtcpError, SdesChunk,
    SdesType, SenderReport, SourceDescription, UnknownPacket, clamp_packets_lost,
    dlsr_from_seconds, ntp_from_unix, ntp_middle32, ntp_now, parse_compound,
    rtcp_deterministic_interval, rtcp_interval, rtt_seconds, serialize_compound,
    unix_from_ntp, update_avg_rtcp_size, XrBlock, XrBlockType,
)

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")
CAPTURES = sorted(FIXTURES.glob("rtcp_*.bin"))
FFMPEG_SSRC = 305419896  # the -ssrc given to ffmpeg in tools/capture_rtcp.py


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def first_of(path: Path, kind: type[T]) -> T:
    """The first packet of a captured compound packet, which must be a ``kind``."""
    packet = parse_compound(path.read_bytes())[0]
    assert isinstance(packet, kind), (path.name, packet)
    return packet


def boundaries(data: bytes) -> set[int]:
    """Offsets where a packet of the compound ends (from the length fields)."""
    ends, pos = set(), 0
    while pos < len(data):
        pos += 4 * (struct.unpack_from("!H", data, pos + 2)[0] + 1)
        ends.add(pos)
    return ends


# --------------------------------------------------------------------------- real captures

def test_captures_present():
    names = {p.name for p in CAPTURES}
    for prefix in ("rtcp_ffmpeg_sr_", "rtcp_gst_sr_", "rtcp_ffmpeg_rr_from_", "rtcp_gst_rr_from_"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_round_trip(path: Path):
    data = path.read_bytes()
    packets = parse_compound(data)
    assert serialize_compound(packets) == data
    assert isinstance(packets[0], SenderReport if "_sr_" in path.name else ReceiverReport)
    if len(data) > 8:  # ffmpeg's 8-octet NAT punch RR is alone; every real report has SDES
        sdes = packets[1]
        assert isinstance(sdes, SourceDescription)
        assert sdes.chunks[0].ssrc == packets[0].ssrc
        assert sdes.chunks[0].cname
    for packet in packets:
        assert packet.padding == 0
    # rebuilding from the parsed fields (not the parsed objects) gives the same bytes
    assert serialize_compound(parse_compound(serialize_compound(packets))) == data


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_every_truncation_raises(path: Path):
    data = path.read_bytes()
    ends = boundaries(data)
    for n in range(len(data)):
        if n in ends:
            assert serialize_compound(parse_compound(data[:n])) == data[:n]
        else:
            with pytest.raises(RtcpError):
                parse_compound(data[:n])


def test_ffmpeg_sender_report_fields():
    first = parse_compound(fixture("rtcp_ffmpeg_sr_0.bin"))
    sr, sdes = first
    assert sr.ssrc == FFMPEG_SSRC
    assert sr.reports == [] and sr.extension == b""
    assert sdes.chunks[0].cname == "ffmpeg-sender@capture"
    assert sdes.chunks[0].items == [(SdesType.CNAME, b"ffmpeg-sender@capture")]
    assert 1.7e9 < unix_from_ntp(sr.ntp_timestamp) < 2.2e9  # a wall clock of this era
    later = parse_compound(fixture("rtcp_ffmpeg_sr_1.bin"))[0]
    # ffmpeg sends an SR every 5 s: NTP and RTP clocks advance together at 90 kHz
    dt = unix_from_ntp(later.ntp_timestamp) - unix_from_ntp(sr.ntp_timestamp)
    assert 4.5 < dt < 6.5
    rtp_dt = ((later.rtp_timestamp - sr.rtp_timestamp) & 0xFFFFFFFF) / 90000
    assert abs(rtp_dt - dt) < 0.2
    assert later.packet_count > sr.packet_count
    assert 500 < later.octet_count / later.packet_count <= 1500  # payload octets per packet
    last = parse_compound(fixture("rtcp_ffmpeg_sr_last.bin"))
    assert [type(p) for p in last] == [SenderReport, SourceDescription, Bye]
    assert last[2].ssrcs == [FFMPEG_SSRC] and last[2].reason is None


def test_gstreamer_sender_report_fields():
    packets = parse_compound(fixture("rtcp_gst_sr_last.bin"))
    sr, sdes, bye = packets
    assert sdes.chunks[0].get(SdesType.TOOL) == "GStreamer"
    assert sdes.chunks[0].cname.startswith("user")
    assert bye.ssrcs == [sr.ssrc]
    assert sr.packet_count == 7500 and sr.octet_count == 10149489


@pytest.mark.parametrize("receiver,sender", [("ffmpeg", "ffmpeg"), ("gst", "ffmpeg"),
                                             ("ffmpeg", "gst"), ("gst", "gst")])
def test_receiver_reports_refer_to_sender(receiver: str, sender: str):
    srs = [first_of(p, SenderReport) for p in FIXTURES.glob(f"rtcp_{sender}_sr_*.bin")]
    sender_ssrc = srs[0].ssrc
    sr_lsrs = {sr.lsr for sr in srs}
    rrs = [first_of(p, ReceiverReport) for p in FIXTURES.glob(f"rtcp_{receiver}_rr_from_{sender}_*.bin")]
    blocks = [b for rr in rrs for b in rr.reports]
    assert blocks, "captured RRs carry report blocks"
    for block in blocks:
        assert block.ssrc == sender_ssrc
        assert block.fraction_lost == 0 and block.packets_lost in (0, -1)  # loopback, no loss
        assert block.jitter < 900  # < 10 ms at 90 kHz on loopback
        if block.lsr:
            # LSR is the middle 32 bits of an SR we captured (the relay forwarded all of them)
            assert block.lsr in sr_lsrs
            assert block.dlsr < 10 * 65536


def test_ffmpeg_punch_packet():
    # ffmpeg's RTSP client sends an empty RR (RC=0, SSRC 0) to open NAT bindings
    assert fixture("rtcp_ffmpeg_rr_from_ffmpeg_0.bin") == bytes.fromhex("80c9000100000000")
    assert parse_compound(fixture("rtcp_ffmpeg_rr_from_ffmpeg_0.bin")) == [ReceiverReport(0)]


# --------------------------------------------------------------------------- wire-byte table

WIRE = [
    ("rr-empty", "80c9000100000001", [ReceiverReport(ssrc=1)]),
    ("rr-one-block-negative-lost",
     "81c90007" "deadbeef" "12345678" "40fffffe" "0001fff0" "00000384" "abcd1234" "00018000",
     [ReceiverReport(0xDEADBEEF, [ReportBlock(0x12345678, 64, -2, 0x1FFF0, 900,
                                              0xABCD1234, 0x18000)])]),
    ("sr-sdes-cname-tool",
     "80c80006" "00000005" "e0000000" "80000000" "00015f90" "0000000a" "00002710"
     "81ca0004" "00000005" "0103612d62" "0603746f6f" "0000",
     [SenderReport(5, 0xE000000080000000, 90000, 10, 10000),
      SourceDescription([SdesChunk(5, [(SdesType.CNAME, b"a-b"), (SdesType.TOOL, b"too")])])]),
    ("rr-sdes-two-chunks-bye-reason-padded",
     "80c90001" "00000007"
     "82ca0005" "00000007" "01026869" "00000000" "00000008" "0100" "0000"
     "a1cb0005" "00000007" "08" "74656172646f776e" "000000" "00000004",
     [ReceiverReport(7),
      SourceDescription([SdesChunk(7, [(SdesType.CNAME, b"hi")]), SdesChunk(8, [(SdesType.CNAME, b"")])]),
      Bye([7], b"teardown", padding=4)]),
    ("rr-app-unknown-xr",
     "80c90001" "00000009"
     "83cc0003" "00000009" "51414d53" "01020304"
     "84cd0002" "00000009" "0000000a",
     [ReceiverReport(9), App(3, 9, b"QAMS", b"\x01\x02\x03\x04"),
      UnknownPacket(PacketType.RTPFB, 4, bytes.fromhex("000000090000000a"))]),
    ("rr-extension-and-bye-no-ssrc",
     "80c90002" "00000003" "cafebabe" "80cb0000",
     [ReceiverReport(3, [], b"\xca\xfe\xba\xbe"), Bye([])]),
]


@pytest.mark.parametrize("name,wire,packets", WIRE, ids=[w[0] for w in WIRE])
def test_wire_table_both_ways(name: str, wire: str, packets: list):
    data = bytes.fromhex(wire)
    assert serialize_compound(packets) == data
    assert parse_compound(data) == packets
    for n in set(range(len(data))) - boundaries(data):
        with pytest.raises(RtcpError):
            parse_compound(data[:n])


def test_helpers_on_packets():
    sdes = SourceDescription.cname(0x11, "me@example", name="Me", tool="t")
    assert sdes.chunks[0].items == [(SdesType.CNAME, b"me@example"), (SdesType.NAME, b"Me"),
                                   (SdesType.TOOL, b"t")]
    assert Bye([1], "bye \u00e9").reason_text == "bye \u00e9"
    sr = SenderReport(1, ntp_timestamp=0x0123456789ABCDEF)
    assert sr.lsr == 0x456789AB
    assert ReportBlock(1, fraction_lost=64).fraction_lost_ratio == 0.25
    assert clamp_packets_lost(10 ** 9) == 0x7FFFFF and clamp_packets_lost(-10 ** 9) == -0x800000


# --------------------------------------------------------------------------- malformed input

MALFORMED = [
    ("", "empty"),
    ("80c900", "truncated"),
    ("40c9000100000001", "version 1"),
    ("c0c9000100000001", "version 3"),
    ("81ca000300000001010161000000", "starts with packet type 202"),
    ("80c8000100000001", "SR needs at least 28"),
    ("81c9000100000001", "1 report blocks needs 32"),
    ("80c9000200000001", "overruns"),
    ("a0c9000100000001" "80ca0000", "padded but is not the last"),
    ("a0c9000200000001" "00000000", "zero padding count"),
    ("a0c9000100000009", "padding count 9 exceeds"),
    ("80c90001000000018" "1ca000100000001", "no terminating null item"),
    ("80c9000100000001" "81ca0002" "00000001" "01056162", "overruns its packet"),
    ("80c9000100000001" "81ca0002" "00000001" "01000065", "non-null padding"),
    ("80c9000100000001" "81ca0003" "00000001" "00000000" "00000000", "octets after its 1 chunks"),
    ("80c9000100000001" "81cb0002" "00000001" "05616200", "reason of 5 octets overruns"),
    ("80c9000100000001" "81cb0002" "00000001" "01610001", "BYE reason padding is not null"),
    ("80c9000100000001" "81cb0003" "00000001" "01610000" "00000000", "expected 2 of padding"),
    ("80c9000100000001" "80cc0001" "00000001", "APP needs at least 12"),
    ("80c9000100000001" "81cb0000", "1 SSRCs needs 8"),
]


@pytest.mark.parametrize("wire,message", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_raises_specific_error(wire: str, message: str):
    with pytest.raises(RtcpError, match=message):
        parse_compound(bytes.fromhex(wire))
    assert issubclass(RtcpError, ValueError)


def test_non_strict_accepts_reduced_size_rtcp():
    bye = bytes.fromhex("81cb000100000001")
    with pytest.raises(RtcpError, match="expected SR"):
        parse_compound(bye)
    assert parse_compound(bye, strict=False) == [Bye([1])]


@pytest.mark.parametrize("packet,message", [
    (ReceiverReport(1, [ReportBlock(2)] * 32), "at most 31"),
    (ReceiverReport(1, [ReportBlock(2, fraction_lost=256)]), "fraction lost"),
    (ReceiverReport(1, [ReportBlock(2, packets_lost=0x800000)]), "signed 24 bits"),
    (ReceiverReport(1 << 32), "32 bits"),
    (SenderReport(1, ntp_timestamp=1 << 64), "64 bits"),
    (SourceDescription([SdesChunk(1, [(SdesType.NOTE, b"x" * 256)])]), "at most 255"),
    (Bye([1], b"x" * 256), "at most 255"),
    (App(0, 1, b"abc"), "4 octets"),
    (ReceiverReport(1, extension=b"ab"), "multiple of 4"),
    (ReceiverReport(1, padding=3), "multiple of 4"),
])
def test_serialize_rejects_out_of_range(packet, message: str):
    with pytest.raises(RtcpError, match=message):
        packet.serialize()


def test_serialize_compound_padding_only_last():
    with pytest.raises(RtcpError, match="not the last"):
        serialize_compound([ReceiverReport(1, padding=4), Bye([1])])
    with pytest.raises(RtcpError, match="at least one"):
        serialize_compound([])


# --------------------------------------------------------------------------- property tests

@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_rtcp_error(data: bytes):
    for strict in (True, False):
        try:
            packets = parse_compound(data, strict=strict)
        except RtcpError:
            continue
        assert serialize_compound(packets) == data


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(CAPTURES), st.data())
def test_mutated_captures_raise_only_rtcp_error(path: Path, data):
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        packets = parse_compound(bytes(raw))
    except RtcpError:
        return
    assert serialize_compound(packets) == bytes(raw)


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF),
                   u32, u32, u32, u32)
words = st.binary(max_size=12).map(lambda b: b[:len(b) // 4 * 4])
items = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=4)
packet_strategy = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32,
              st.lists(blocks, max_size=3), words),
    st.builds(ReceiverReport, u32, st.lists(blocks, max_size=3), words),
    st.builds(SourceDescription, st.lists(st.builds(SdesChunk, u32, items), max_size=3)),
    st.builds(Bye, st.lists(u32, max_size=3), st.one_of(st.none(), st.binary(max_size=30))),
    st.builds(App, st.integers(0, 31), u32, st.binary(min_size=4, max_size=4), words),
    st.builds(UnknownPacket, st.integers(205, 255).filter(lambda k: k != 207), st.integers(0, 31), words),
)


@settings(max_examples=500, deadline=None)
@given(st.builds(ReceiverReport, u32, st.lists(blocks, max_size=2)) | st.builds(
    SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32),
    st.lists(packet_strategy, max_size=4), st.sampled_from([0, 4, 8]))
def test_generated_compounds_round_trip(first, rest, padding: int):
    packets = [first, *rest]
    packets[-1].padding = padding
    data = serialize_compound(packets)
    assert parse_compound(data) == packets
    assert serialize_compound(parse_compound(data)) == data


# --------------------------------------------------------------------------- NTP and RTT

def test_ntp_conversions():
    assert ntp_from_unix(0.0) == 2208988800 << 32
    assert ntp_from_unix(1.5) == ((2208988801 << 32) | 0x80000000)
    t = 1_700_000_000.25
    assert unix_from_ntp(ntp_from_unix(t)) == pytest.approx(t, abs=1e-6)
    # after the 2036 NTP era rollover the seconds wrap but the Unix time survives (RFC 4330)
    t2040 = 2_208_988_800.0 + 4 * 365 * 86400
    assert ntp_from_unix(t2040) >> 32 < 0x80000000
    assert unix_from_ntp(ntp_from_unix(t2040)) == pytest.approx(t2040, abs=1e-6)
    assert ntp_middle32(0x0123456789ABCDEF) == 0x456789AB
    assert abs(unix_from_ntp(ntp_now(lambda: t)) - t) < 1e-6
    assert dlsr_from_seconds(5.25) == 0x00054000
    assert dlsr_from_seconds(-1) == 0 and dlsr_from_seconds(1e6) == 0xFFFFFFFF


def test_rtt_rfc3550_figure2():
    # RFC 3550 §6.4.1: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 -> 6.125 s
    assert rtt_seconds(0xB7108000, 0xB7052000, 0x00054000) == 6.125


def test_rtt_wraps_and_edge_cases():
    assert rtt_seconds(0x00001000, 0xFFFFF000, 0x00001000) == pytest.approx(0x1000 / 65536)
    assert rtt_seconds(0x12345678, 0, 0) is None          # no SR received yet
    assert rtt_seconds(0x00010000, 0x00010001, 0) == 0.0   # rounding below zero -> 0
    # a full exchange: SR sent at t0, RR sent 0.75 s after its arrival, seen 0.1 s + 0.75 s later
    t0 = 1_700_000_000.0
    lsr = ntp_middle32(ntp_from_unix(t0))
    a = ntp_middle32(ntp_from_unix(t0 + 0.85))
    assert rtt_seconds(a, lsr, dlsr_from_seconds(0.75)) == pytest.approx(0.1, abs=1e-4)


# --------------------------------------------------------------------------- §6.3 interval

class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_interval_minimum_and_initial_halving():
    # two members, small packets: Td is the 5 s minimum, 2.5 s for the first report
    assert rtcp_deterministic_interval(2, 1, 1000.0, True, 100.0, False) == 5.0
    assert rtcp_deterministic_interval(2, 1, 1000.0, True, 100.0, True) == 2.5
    assert rtcp_interval(2, 1, 1000.0, True, 100.0, False, FixedRng(0.5)) == 5.0 / COMPENSATION
    assert rtcp_interval(2, 1, 1000.0, True, 100.0, True, FixedRng(0.0)) == \
        pytest.approx(2.5 * 0.5 / 1.21828, rel=1e-5)


def test_interval_bandwidth_shares():
    # 100 members, 1 sender, rtcp_bw 1000 octets/s, avg 200 octets
    # receivers: 75% of bandwidth shared by 99 -> 200 * 99 / 750 = 26.4 s
    assert rtcp_deterministic_interval(100, 1, 1000.0, False, 200.0, False) == \
        pytest.approx(26.4)
    # the sender: 25% shared by 1 -> 200 / 250 = 0.8 s -> 5 s minimum
    assert rtcp_deterministic_interval(100, 1, 1000.0, True, 200.0, False) == 5.0
    # more than 25% senders: everyone shares the whole bandwidth: 200 * 4 / 100 = 8 s
    assert rtcp_deterministic_interval(4, 2, 100.0, True, 200.0, False) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        rtcp_deterministic_interval(2, 1, 0.0, True, 100.0, False)


def test_interval_randomization_range():
    rng = random.Random(7)
    values = [rtcp_interval(2, 1, 1000.0, False, 100.0, False, rng) for _ in range(2000)]
    assert min(values) >= 5.0 * 0.5 / COMPENSATION
    assert max(values) <= 5.0 * 1.5 / COMPENSATION
    assert sum(values) / len(values) == pytest.approx(5.0 / COMPENSATION, rel=0.03)
    assert COMPENSATION == pytest.approx(1.21828, abs=1e-5)


def test_avg_rtcp_size_update():
    assert update_avg_rtcp_size(100.0, 72) == pytest.approx((72 + 28) / 16 + 100 * 15 / 16)
    avg = 200.0
    for _ in range(200):
        avg = update_avg_rtcp_size(avg, 52, overhead=48)
    assert avg == pytest.approx(100.0, abs=0.01)


# --- RFC 3611 XR: RRTR / DLRR, the receive-only client's way to an RTT ----------------------

XR_CASES = [
    (  # RR (empty) + XR with an RRTR block: what our client sends
        bytes.fromhex("80c90001 11223344" "80cf0004 11223344 04000002 e5a1b2c3 80000000"),
        [ReceiverReport(0x11223344), ExtendedReport(0x11223344, [XrBlock(4, 0, bytes.fromhex("e5a1b2c380000000"))])],
    ),
    (  # SR + XR with a DLRR block for two receivers
        bytes.fromhex("80c80006 0a0b0c0d e5a1b2c3 80000000 00001000 00000001 000005dc"
                      "80cf0008 0a0b0c0d 05000006 11223344 b2c38000 00008000 55667788 00000000 00000000"),
        [SenderReport(0x0A0B0C0D, 0xE5A1B2C380000000, 0x1000, 1, 1500),
         ExtendedReport(0x0A0B0C0D, [XrBlock.dlrr([(0x11223344, 0xB2C38000, 0x8000), (0x55667788, 0, 0)])])],
    ),
]


@pytest.mark.parametrize("wire,packets", XR_CASES)
def test_xr_table_both_ways(wire, packets):
    assert parse_compound(wire) == packets
    assert serialize_compound(packets) == wire


def test_xr_rrtr_dlrr_rtt():
    sent = ntp_from_unix(1_700_000_000.0)
    rrtr = XrBlock.rrtr(sent)
    assert rrtr.block_type == XrBlockType.RRTR and rrtr.ntp_timestamp == sent
    # the server holds it 0.25 s, the reply arrives 0.3 s after the RRTR left: RTT 0.05 s
    dlrr = XrBlock.dlrr([(7, ntp_middle32(sent), dlsr_from_seconds(0.25))])
    ssrc, lrr, delay = dlrr.dlrr_items[0]
    arrival = ntp_middle32(ntp_from_unix(1_700_000_000.3))
    assert abs(rtt_seconds(arrival, lrr, delay) - 0.05) < 1e-4


@pytest.mark.parametrize("wire,packets", XR_CASES)
def test_xr_truncated_prefixes_raise(wire, packets):
    for cut in range(1, len(wire)):
        try:
            parse_compound(wire[:cut])
        except RtcpError:
            continue
        assert cut % 4 == 0  # a prefix that ends on a packet boundary is a valid shorter compound


@pytest.mark.parametrize("body,message", [
    ("80cf0000", "XR needs an SSRC"),
    ("80cf0002 00000001 04000001", "overruns"),
    ("80cf0003 00000001 04000001 00000000", "RRTR block has 4 octets"),
    ("80cf0004 00000001 05000002 00000000 00000000", "DLRR block has 8 octets"),
])
def test_xr_malformed(body, message):
    with pytest.raises(RtcpError, match=message):
        parse_compound(bytes.fromhex("80c90001 00000001") + bytes.fromhex(body))
