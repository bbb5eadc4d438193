"""RtpPacket: RFC 3550 5.1 header tables, run both ways, and malformed input."""

import pytest
from hypothesis import given, strategies as st

from RtpPacket import RtpPacket, seq_delta, seq_diff, seq_lt, ts_diff

# (name, wire bytes, expected fields)
CASES = [
    (
        "plain JPEG packet, marker",
        bytes.fromhex("80 9a 5b a1 08 0f 46 5f 3a 48 b2 d1") + b"\x00\x00\x00\x00\x01\xff\x30\x1e",
        dict(payload_type=26, marker=True, sequence_number=0x5BA1, rtp_timestamp=0x080F465F,
             ssrc=0x3A48B2D1, csrc=(), extension=None, padding=0,
             payload=b"\x00\x00\x00\x00\x01\xff\x30\x1e"),
    ),
    (
        "two CSRCs",
        bytes.fromhex("82 1a ff ff ff ff ff ff 00 00 00 01 00 00 00 02 00 00 00 03") + b"ab",
        dict(payload_type=26, marker=False, sequence_number=0xFFFF, rtp_timestamp=0xFFFFFFFF,
             ssrc=1, csrc=(2, 3), extension=None, padding=0, payload=b"ab"),
    ),
    (
        "header extension of one word (RFC 8285 one-byte form id)",
        bytes.fromhex("90 60 00 07 00 00 0e 10 de ad be ef be de 00 01 10 ff 00 00") + b"xyz",
        dict(payload_type=96, marker=False, sequence_number=7, rtp_timestamp=3600, ssrc=0xDEADBEEF,
             csrc=(), extension=(0xBEDE, bytes.fromhex("10ff0000")), padding=0, payload=b"xyz"),
    ),
    (
        "padding of 4 octets",
        bytes.fromhex("a0 1a 00 01 00 00 00 00 00 00 00 2a") + b"data" + b"\x00\x00\x00\x04",
        dict(payload_type=26, marker=False, sequence_number=1, rtp_timestamp=0, ssrc=42, csrc=(),
             extension=None, padding=4, payload=b"data"),
    ),
    (
        "everything: CC=1, X, P, M",
        bytes.fromhex("b1 9a 12 34 00 01 5f 90 00 00 00 09 00 00 00 0a 00 01 00 00") + b"p" + b"\x00\x02",
        dict(payload_type=26, marker=True, sequence_number=0x1234, rtp_timestamp=90000, ssrc=9,
             csrc=(10,), extension=(1, b""), padding=2, payload=b"p"),
    ),
]


@pytest.mark.parametrize("name,wire,fields", CASES, ids=[c[0] for c in CASES])
def test_parse_table(name, wire, fields):
    packet = RtpPacket.parse(wire)
    for key, value in fields.items():
        assert getattr(packet, key) == value, key


@pytest.mark.parametrize("name,wire,fields", CASES, ids=[c[0] for c in CASES])
def test_serialize_table(name, wire, fields):
    assert RtpPacket(**fields).serialize() == wire
    assert RtpPacket.parse(wire).serialize() == wire


@pytest.mark.parametrize("name,wire,fields", CASES, ids=[c[0] for c in CASES])
def test_every_truncated_header_prefix_raises(name, wire, fields):
    packet = RtpPacket.parse(wire)
    header_len = len(wire) - len(packet.payload) - packet.padding
    for cut in range(header_len):
        with pytest.raises(ValueError):
            RtpPacket.parse(wire[:cut])


@pytest.mark.parametrize(
    "wire,message",
    [
        (b"\x80\x1a\x00", "shorter than the 12-byte header"),
        (bytes.fromhex("40 1a 00 01 00 00 00 00 00 00 00 01"), "version 1"),
        (bytes.fromhex("83 1a 00 01 00 00 00 00 00 00 00 01 00 00 00 01"), "CSRC count 3"),
        (bytes.fromhex("a0 1a 00 01 00 00 00 00 00 00 00 01 00"), "padding count is 0"),
        (bytes.fromhex("a0 1a 00 01 00 00 00 00 00 00 00 01 41 09"), "padding count 9"),
        (bytes.fromhex("90 1a 00 01 00 00 00 00 00 00 00 01 be de"), "extension header is truncated"),
        (bytes.fromhex("90 1a 00 01 00 00 00 00 00 00 00 01 be de 00 02 00 00 00 00"), "runs past the end"),
    ],
)
def test_malformed_messages(wire, message):
    with pytest.raises(ValueError, match=message):
        RtpPacket.parse(wire)


def test_lab_aliases():
    packet = RtpPacket()
    packet.encode(2, 0, 0, 0, 17, 0, 26, 1234, b"\xff\xd8jpeg")
    wire = packet.getPacket()
    assert wire[:4] == bytes.fromhex("801a0011")
    other = RtpPacket()
    other.decode(wire)
    assert other.seqNum() == 17
    assert other.payloadType() == 26
    assert other.version() == 2
    assert other.getPayload() == b"\xff\xd8jpeg"
    assert other.timestamp() == 0


@given(
    pt=st.integers(0, 127), seq=st.integers(0, 65535), ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1), marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15),
    ext=st.none() | st.tuples(st.integers(0, 65535), st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])),
    pad=st.integers(0, 255), payload=st.binary(max_size=64),
)
def test_round_trip_property(pt, seq, ts, ssrc, marker, csrc, ext, pad, payload):
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, csrc, ext, pad)
    wire = packet.serialize()
    assert RtpPacket.parse(wire) == packet
    assert RtpPacket.parse(wire).serialize() == wire


@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_value_error(data):
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert packet.serialize() == data


@pytest.mark.parametrize(
    "a,b,diff",
    [(5, 3, 2), (3, 5, -2), (0, 65535, 1), (65535, 0, -1), (32767, 0, 32767), (0, 32767, -32767)],
)
def test_sequence_arithmetic_wraps(a, b, diff):
    assert seq_diff(a, b) == diff
    assert seq_lt(b, a) == (diff > 0)


def test_timestamp_arithmetic_wraps():
    assert ts_diff(100, 2**32 - 3500) == 3600
    assert ts_diff(2**32 - 3500, 100) == -3600


@pytest.mark.parametrize("a,b,forward", [(5, 3, 2), (3, 5, 65534), (0, 65535, 1), (7, 7, 0)])
def test_sequence_forward_distance_wraps(a, b, forward):
    assert seq_delta(a, b) == forward
