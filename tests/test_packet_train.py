"""PacketTrain.py: a frame laid out once, stamped per session; Streamer.interleave frames it for TCP."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from PacketTrain import PacketTrain
from RtpPacket import RtpPacket
from Streamer import interleave


# -- PacketTrain: one frame laid out once, stamped per session -------------------------------
def test_packet_train_wire_bytes():
    """Two payloads stamped at seq 0xFFFF: the sequence wraps, the marker is on the last only."""
    train = PacketTrain([b"abcd", b"ef"], 26)
    buf = train.stamp(0xFFFF, 0x01020304, 0xA0B0C0D0)
    assert bytes(buf) == (bytes.fromhex("80 1a ff ff 01 02 03 04 a0 b0 c0 d0") + b"abcd"
                          + bytes.fromhex("80 9a 00 00 01 02 03 04 a0 b0 c0 d0") + b"ef")
    assert [bytes(p) for p in train.packets(buf)] == [bytes(buf[:16]), bytes(buf[16:])]
    assert (train.count, train.segment, train.uniform, train.payload_octets) == (2, 16, True, 6)


def test_interleave_wire_bytes():
    """RFC 2326 10.12: the sender puts each packet inside '$', channel, 16-bit length."""
    train = PacketTrain([b"xy", b"z"], 26)
    buf = train.stamp(7, 90000, 1)
    assert interleave(train, buf, 2) == (
        bytes.fromhex("24 02 00 0e 80 1a 00 07 00 01 5f 90 00 00 00 01") + b"xy"
        + bytes.fromhex("24 02 00 0d 80 9a 00 08 00 01 5f 90 00 00 00 01") + b"z")
    assert interleave(train, train.stamp(7, 90000, 1, 1), 2, 1) == (
        bytes.fromhex("24 02 00 0d 80 9a 00 08 00 01 5f 90 00 00 00 01") + b"z")


@pytest.mark.parametrize("payload, channel, message", [
    (bytes(65524), 0, "exceeds 65535"),
    (b"x", 256, "outside 0..255"),
])
def test_interleave_refuses(payload, channel, message):
    train = PacketTrain([payload])
    with pytest.raises(ValueError, match=message):
        interleave(train, train.stamp(0, 0, 0), channel)


def test_packet_train_stamps_do_not_touch_the_template():
    train = PacketTrain([b"a" * 10, b"b" * 10, b"c" * 3])
    first = train.stamp(1, 2, 3)
    second = train.stamp(100, 200, 300)
    assert first != second
    assert [RtpPacket.parse(bytes(p)).sequence_number for p in train.packets(first)] == [1, 2, 3]
    assert [RtpPacket.parse(bytes(p)).ssrc for p in train.packets(second)] == [300] * 3
    tail = train.stamp(100, 200, 300, 1)  # a slice: packets 1.. with their own sequence numbers
    assert [RtpPacket.parse(bytes(p)).sequence_number for p in train.packets(tail, 1)] == [101, 102]
    assert bytes(tail) == bytes(second[train.offsets[1]:])


def test_packet_train_uneven_payloads_are_not_uniform():
    assert not PacketTrain([b"a", b"bb"]).uniform  # last longer than the segment
    assert not PacketTrain([b"aa", b"b", b"cc"]).uniform
    assert PacketTrain([b"aa", b"bb", b"c"]).uniform


@pytest.mark.parametrize("payloads, kwargs, message", [
    ([], {}, "at least one payload"),
    ([b"x"], {"payload_type": 128}, "outside 0..127"),
])
def test_packet_train_refuses(payloads, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PacketTrain(payloads, **kwargs)


@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=8),
       seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
       pt=st.integers(0, 127), channel=st.integers(0, 255))
def test_packet_train_equals_one_packet_at_a_time(payloads, seq, ts, ssrc, pt, channel):
    """A stamped train is byte for byte the packets RtpPacket.serialize() makes one by one, and
    interleaved, those packets in '$' frames."""
    train = PacketTrain(payloads, pt)
    expected = framed = b""
    for i, payload in enumerate(payloads):
        packet = RtpPacket(pt, (seq + i) & 0xFFFF, ts, ssrc, payload, i == len(payloads) - 1).serialize()
        framed += b"$" + bytes([channel]) + len(packet).to_bytes(2, "big") + packet
        expected += packet
    whole = train.stamp(seq, ts, ssrc)
    assert bytes(whole) == expected
    assert interleave(train, whole, channel) == framed
    # any run of packets stamped on its own equals that run of the whole, and cuts the same
    packets = [bytes(p) for p in train.packets(whole)]
    for start in range(len(payloads)):
        for end in range(start + 1, len(payloads) + 1):
            part = train.stamp(seq, ts, ssrc, start, end)
            assert [bytes(p) for p in train.packets(part, start)] == packets[start:end]


@pytest.mark.parametrize("start, end", [(0, 0), (2, 1), (-1, 2), (0, 4), (3, 4)])
def test_packet_train_stamp_range_checked(start, end):
    with pytest.raises(ValueError, match="outside the train"):
        PacketTrain([b"a", b"b", b"c"]).stamp(0, 0, 0, start, end)
