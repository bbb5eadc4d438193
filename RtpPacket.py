"""RTP data packets (RFC 3550 section 5.1) and sequence/timestamp arithmetic.

`RtpPacket.parse(data)` turns a datagram into an object and `serialize()` turns it
back into exactly the same bytes.  The names the course lab uses (`encode`,
`decode`, `getPayload`, `seqNum`, `timestamp`, ...) are kept as thin aliases so lab
material still reads against this class.
"""

from __future__ import annotations

import struct
from typing import Sequence

RTP_VERSION = 2
PT_JPEG = 26  # RFC 3551 table 5: JPEG, 90 kHz
JPEG_CLOCK_RATE = 90000

# V(2) P(1) X(1) CC(4) | M(1) PT(7) | sequence(16) | timestamp(32) | SSRC(32)
RTP_HEADER = struct.Struct("!BBHII")
HEADER_SIZE = RTP_HEADER.size
_pack_header = RTP_HEADER.pack
_unpack_header = RTP_HEADER.unpack_from
_EXT_HEADER = struct.Struct("!HH")  # profile-defined id, length in 32-bit words
_CSRC_CACHE = {n: struct.Struct("!%dI" % n) for n in range(16)}

# The one home of RTP wrap-around arithmetic (RFC 3550 §5.1: 16-bit sequence numbers,
# 32-bit timestamps); RtpStats, the receive engine and the tests all use these.
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_delta(a: int, b: int) -> int:
    """Forward distance from sequence number b to a, in [0, 65535] (RFC 3550 A.1 udelta)."""
    return (a - b) & 0xFFFF


def seq_lt(a: int, b: int) -> bool:
    """True when sequence number a comes before b (modulo 2**16)."""
    return seq_diff(a, b) < 0


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


_new = object.__new__


class RtpPacket:
    """One RTP packet: the fixed header, CSRC list, header extension, payload, padding."""

    __slots__ = (
        "payload_type", "sequence_number", "rtp_timestamp", "ssrc", "payload",
        "marker", "csrc", "extension", "padding",
    )

    def __init__(
        self,
        payload_type: int = PT_JPEG,
        sequence_number: int = 0,
        rtp_timestamp: int = 0,
        ssrc: int = 0,
        payload: bytes = b"",
        marker: bool = False,
        csrc: Sequence[int] = (),
        extension: tuple[int, bytes] | None = None,
        padding: int = 0,
    ) -> None:
        self.payload_type = payload_type
        self.sequence_number = sequence_number
        self.rtp_timestamp = rtp_timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrc = csrc if type(csrc) is tuple else tuple(csrc)
        self.extension = extension
        self.padding = padding  # count of padding octets, the count octet included

    # -- wire format -------------------------------------------------------
    def serialize(self) -> bytes:
        """The packet as sent on the wire (RFC 3550 5.1)."""
        pt = self.payload_type
        if not (self.csrc or self.padding or pt & -128) and self.extension is None:  # the common case
            try:  # fields already in range need no masking; out of range, the path below masks them
                return _pack_header(0x80, (0x80 | pt) if self.marker else pt, self.sequence_number,
                                    self.rtp_timestamp, self.ssrc) + self.payload
            except struct.error:
                pass
        csrc = self.csrc
        ext = self.extension
        pad = self.padding
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} outside 0..127")
        if len(csrc) > 15:
            raise ValueError(f"{len(csrc)} CSRCs: at most 15 fit the CC field")
        first = 0x80 | len(csrc)
        if pad:
            if not 1 <= pad <= 255:
                raise ValueError(f"padding of {pad} octets outside 1..255")
            first |= 0x20
        if ext is not None:
            first |= 0x10
        header = RTP_HEADER.pack(
            first,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number & 0xFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.ssrc & 0xFFFFFFFF,
        )
        if not (csrc or ext is not None or pad):
            return header + self.payload
        parts = [header]
        if csrc:
            parts.append(_CSRC_CACHE[len(csrc)].pack(*csrc))
        if ext is not None:
            profile, data = ext
            if len(data) % 4:
                raise ValueError(f"header extension of {len(data)} octets is not whole 32-bit words")
            parts.append(_EXT_HEADER.pack(profile, len(data) // 4))
            parts.append(bytes(data))
        parts.append(self.payload)
        if pad:
            parts.append(bytes(pad - 1) + bytes((pad,)))
        return b"".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        """Parse one datagram; malformed input raises ValueError saying what is wrong."""
        try:
            first, second, seq, ts, ssrc = _unpack_header(data)
        except struct.error:
            raise ValueError(f"RTP packet of {len(data)} bytes is shorter than the 12-byte header") from None
        if first == 0x80:  # version 2 with no padding, extension or CSRC: the common case
            packet = _new(cls)
            packet.payload_type = second & 0x7F
            packet.marker = second > 0x7F
            packet.sequence_number = seq
            packet.rtp_timestamp = ts
            packet.ssrc = ssrc
            packet.csrc = ()
            packet.extension = None
            packet.padding = 0
            packet.payload = data[12:] if type(data) is bytes else bytes(data[12:])
            return packet
        size = len(data)
        if first >> 6 != RTP_VERSION:
            raise ValueError(f"RTP version {first >> 6}, expected 2")
        pos = HEADER_SIZE
        cc = first & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            end = pos + 4 * cc
            if end > size:
                raise ValueError(f"CSRC count {cc} runs past the end of a {size}-byte packet")
            csrc = _CSRC_CACHE[cc].unpack_from(data, pos)
            pos = end
        extension = None
        if first & 0x10:
            if pos + 4 > size:
                raise ValueError("header extension flag set but the extension header is truncated")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > size:
                raise ValueError(f"header extension of {words} words runs past the end of the packet")
            extension = (profile, bytes(data[pos + 4:end]))
            pos = end
        end = size
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0:
                raise ValueError("padding flag set but the padding count is 0")
            if padding > size - pos:
                raise ValueError(f"padding count {padding} is larger than the {size - pos} bytes after the header")
            end -= padding
        packet = cls.__new__(cls)
        packet.payload_type = second & 0x7F
        packet.marker = bool(second & 0x80)
        packet.sequence_number = seq
        packet.rtp_timestamp = ts
        packet.ssrc = ssrc
        packet.csrc = csrc
        packet.extension = extension
        packet.padding = padding
        packet.payload = bytes(data[pos:end])
        return packet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return (
            f"RtpPacket(pt={self.payload_type}, seq={self.sequence_number}, ts={self.rtp_timestamp}, "
            f"ssrc={self.ssrc:#010x}, marker={self.marker}, payload={len(self.payload)} bytes)"
        )

    # -- the course lab's names (thin aliases) ------------------------------
    def encode(self, version, padding, extension, cc, seqnum, marker, pt, ssrc, payload) -> None:
        """The lab's encode(): fill the header fields; CSRC/extension contents are empty."""
        if version != RTP_VERSION:
            raise ValueError(f"RTP version {version}, expected 2")
        self.payload_type = pt
        self.sequence_number = seqnum
        self.ssrc = ssrc
        self.marker = bool(marker)
        self.csrc = (0,) * cc
        self.extension = (0, b"") if extension else None
        self.padding = 0
        self.payload = payload
        # The lab stamps packets with wall-clock seconds; media time is set by the caller.

    def decode(self, byteStream: bytes) -> None:
        """The lab's decode(): parse into this object."""
        parsed = self.parse(byteStream)
        for name in self.__slots__:
            setattr(self, name, getattr(parsed, name))

    def version(self) -> int:
        return RTP_VERSION

    def seqNum(self) -> int:
        return self.sequence_number

    def timestamp(self) -> int:
        return self.rtp_timestamp

    def payloadType(self) -> int:
        return self.payload_type

    def getPayload(self) -> bytes:
        return self.payload

    def getPacket(self) -> bytes:
        return self.serialize()
