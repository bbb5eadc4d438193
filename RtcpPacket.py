"""RTCP packets (RFC 3550 §6): pure bytes <-> objects, NTP clock helpers and the §6.3 interval.

One class per packet kind with ``parse(body)`` / ``serialize()``; ``parse_compound(datagram)``
applies the validity checks of RFC 3550 Appendix A.2 and ``serialize_compound(packets)`` is its
inverse: ``serialize_compound(parse_compound(x)) == x`` for every datagram that parses.
Malformed input raises :class:`RtcpError` (a ``ValueError``) with a specific message, never
``IndexError`` or ``struct.error``. No sockets, no clocks except ``ntp_now()``.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable, Protocol, Sequence

log = logging.getLogger(__name__)

RTCP_VERSION = 2

#: Common header (RFC 3550 §6.4.1): V/P/count, packet type, length in 32-bit words minus one.
RTCP_HEADER = struct.Struct("!BBH")
#: SR sender info after the header: SSRC, NTP msw, NTP lsw, RTP timestamp, packet and octet count.
SENDER_INFO = struct.Struct("!IIIIII")
#: One SSRC word (RR sender, SDES chunk, BYE list, APP).
SSRC_WORD = struct.Struct("!I")
#: Report block (RFC 3550 §6.4.1): SSRC, fraction lost + 24-bit cumulative lost, extended
#: highest sequence, interarrival jitter, LSR, DLSR.
REPORT_BLOCK = struct.Struct("!IIIIII")
#: APP header after the common header: SSRC and 4-byte ASCII name (RFC 3550 §6.7).
APP_HEADER = struct.Struct("!I4s")

MAX_COUNT = 31               # 5-bit RC / SC field
MAX_LENGTH_WORDS = 0xFFFF    # 16-bit length field
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 868)

# RFC 3550 §6.3 / A.7 constants.
RTCP_MIN_TIME = 5.0
RTCP_SENDER_BW_FRACTION = 0.25
RTCP_RCVR_BW_FRACTION = 1.0 - RTCP_SENDER_BW_FRACTION
RTCP_BANDWIDTH_FRACTION = 0.05   # RTCP gets 5% of the session bandwidth (§6.2)
COMPENSATION = math.e - 1.5      # 1.21828: compensates timer reconsideration (§6.3.1)
UDP_IPV4_OVERHEAD = 28           # IPv4 (20) + UDP (8) header octets counted in avg_rtcp_size
UDP_IPV6_OVERHEAD = 48


class RtcpError(ValueError):
    """A malformed RTCP packet or an RTCP field out of range."""


class PacketType(IntEnum):
    """RTCP packet types (RFC 3550 §12.1, RFC 4585, RFC 3611)."""
    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204
    RTPFB = 205
    PSFB = 206
    XR = 207


class SdesType(IntEnum):
    """SDES item types (RFC 3550 §6.5, §12.2)."""
    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise RtcpError(f"{what} {value} does not fit in 32 bits")


def _pad_words(length: int) -> int:
    """Null octets needed after ``length`` octets to reach the next 32-bit boundary."""
    return -length % 4


# ---------------------------------------------------------------------------------------------
# Packet classes. Every packet carries ``padding``: the number of padding octets including the
# final count octet (RFC 3550 §6.4.1 P bit), 0 for none; only the last packet of a compound
# may have it. ``padding_fill`` keeps non-zero filler octets of a parsed packet so that
# serialize() reproduces the datagram exactly; new packets pad with zeros.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Base:
    padding: int = field(default=0, kw_only=True)
    padding_fill: bytes = field(default=b"", kw_only=True, repr=False)

    packet_type: int = field(init=False, repr=False, default=0)

    def _count(self) -> int:
        raise NotImplementedError

    def _body(self) -> bytes:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Header + body + padding, with the count and length fields computed (RFC 3550 §6.4)."""
        count = self._count()
        if not 0 <= count <= MAX_COUNT:
            raise RtcpError(f"{self.__class__.__name__} has {count} items, at most {MAX_COUNT} fit")
        body = self._body()
        padding = b""
        if self.padding:
            if not 1 <= self.padding <= 255:
                raise RtcpError(f"padding {self.padding} is not in 1..255")
            fill = self.padding_fill if len(self.padding_fill) == self.padding - 1 \
                else bytes(self.padding - 1)
            padding = fill + bytes((self.padding,))
        total = 4 + len(body) + len(padding)
        if total % 4:
            raise RtcpError(f"{self.__class__.__name__} is {total} octets, not a multiple of 4")
        words = total // 4 - 1
        if words > MAX_LENGTH_WORDS:
            raise RtcpError(f"{self.__class__.__name__} is {total} octets, too long for RTCP")
        first = (RTCP_VERSION << 6) | (0x20 if self.padding else 0) | count
        return RTCP_HEADER.pack(first, self.packet_type, words) + body + padding


@dataclass
class ReportBlock:
    """Reception report block (RFC 3550 §6.4.1).

    ``packets_lost`` is the signed 24-bit cumulative number lost (negative with duplicates),
    ``highest_sequence`` the extended highest sequence number received (cycles << 16 | seq),
    ``jitter`` in timestamp units, ``lsr`` the middle 32 bits of the last SR's NTP timestamp
    and ``dlsr`` the delay since then in 1/65536 s (both 0 when no SR has been received).
    """
    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> "ReportBlock":
        if len(data) - offset < REPORT_BLOCK.size:
            raise RtcpError(f"report block truncated: {len(data) - offset} of 24 octets")
        ssrc, lost_word, highest, jitter, lsr, dlsr = REPORT_BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"fraction lost {self.fraction_lost} is not in 0..255")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise RtcpError(f"cumulative lost {self.packets_lost} does not fit in signed 24 bits")
        for name in ("ssrc", "highest_sequence", "jitter", "lsr", "dlsr"):
            _check_u32(getattr(self, name), name)
        lost_word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return REPORT_BLOCK.pack(self.ssrc, lost_word, self.highest_sequence, self.jitter,
                                 self.lsr, self.dlsr)

    @property
    def fraction_lost_ratio(self) -> float:
        """Fraction lost as a number in [0, 1) (the field is a fixed point number / 256)."""
        return self.fraction_lost / 256.0


def clamp_packets_lost(lost: int) -> int:
    """Clamp a cumulative lost count to the signed 24-bit field (RFC 3550 A.3)."""
    return max(-0x800000, min(0x7FFFFF, lost))


def _parse_blocks(body: bytes, offset: int, count: int, kind: str) -> list[ReportBlock]:
    need = offset + count * REPORT_BLOCK.size
    if len(body) < need:
        raise RtcpError(f"{kind} with {count} report blocks needs {need + 4} octets, "
                        f"has {len(body) + 4}")
    return [ReportBlock.parse(body, offset + i * REPORT_BLOCK.size) for i in range(count)]


@dataclass
class SenderReport(_Base):
    """SR (RFC 3550 §6.4.1): sender info plus up to 31 report blocks.

    ``ntp_timestamp`` is the full 64-bit NTP time; ``extension`` is the profile-specific
    extension after the report blocks, kept as raw bytes.
    """
    ssrc: int = 0
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def __post_init__(self) -> None:
        self.packet_type = PacketType.SR

    @classmethod
    def parse(cls, count: int, body: bytes) -> "SenderReport":
        if len(body) < SENDER_INFO.size:
            raise RtcpError(f"SR needs at least 28 octets, has {len(body) + 4}")
        ssrc, msw, lsw, rtp_ts, packets, octets = SENDER_INFO.unpack_from(body)
        reports = _parse_blocks(body, SENDER_INFO.size, count, "SR")
        ext = body[SENDER_INFO.size + count * REPORT_BLOCK.size:]
        return cls(ssrc, (msw << 32) | lsw, rtp_ts, packets, octets, reports, ext)

    def _count(self) -> int:
        return len(self.reports)

    def _body(self) -> bytes:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(getattr(self, name), name)
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise RtcpError(f"NTP timestamp {self.ntp_timestamp} does not fit in 64 bits")
        head = SENDER_INFO.pack(self.ssrc, self.ntp_timestamp >> 32,
                                self.ntp_timestamp & 0xFFFFFFFF, self.rtp_timestamp,
                                self.packet_count, self.octet_count)
        return head + b"".join(r.serialize() for r in self.reports) + bytes(self.extension)

    @property
    def lsr(self) -> int:
        """The value a receiver puts in LSR for this SR: middle 32 bits of the NTP time."""
        return ntp_middle32(self.ntp_timestamp)


@dataclass
class ReceiverReport(_Base):
    """RR (RFC 3550 §6.4.2): reporter's SSRC plus up to 31 report blocks."""
    ssrc: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def __post_init__(self) -> None:
        self.packet_type = PacketType.RR

    @classmethod
    def parse(cls, count: int, body: bytes) -> "ReceiverReport":
        if len(body) < SSRC_WORD.size:
            raise RtcpError(f"RR needs at least 8 octets, has {len(body) + 4}")
        (ssrc,) = SSRC_WORD.unpack_from(body)
        reports = _parse_blocks(body, SSRC_WORD.size, count, "RR")
        ext = body[SSRC_WORD.size + count * REPORT_BLOCK.size:]
        return cls(ssrc, reports, ext)

    def _count(self) -> int:
        return len(self.reports)

    def _body(self) -> bytes:
        _check_u32(self.ssrc, "ssrc")
        return (SSRC_WORD.pack(self.ssrc) + b"".join(r.serialize() for r in self.reports)
                + bytes(self.extension))


SdesItem = tuple[int, bytes]


@dataclass
class SdesChunk:
    """One SDES chunk (RFC 3550 §6.5): an SSRC/CSRC and its (type, value) items.

    Values may be given as str (encoded UTF-8) and are stored as bytes.
    """
    ssrc: int
    items: list[SdesItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        items = []
        for item_type, value in self.items:
            item_type = SdesType(item_type) if item_type in SdesType._value2member_map_ \
                else int(item_type)
            items.append((item_type, _as_bytes(value, "SDES item value")))
        self.items = items

    def get(self, item_type: int) -> str | None:
        """The first item of this type decoded as UTF-8 (errors replaced), or None."""
        for t, value in self.items:
            if t == item_type:
                return value.decode("utf-8", "replace")
        return None

    @property
    def cname(self) -> str | None:
        return self.get(SdesType.CNAME)

    @classmethod
    def parse(cls, body: bytes, offset: int) -> tuple["SdesChunk", int]:
        """Parse a chunk at ``offset`` (32-bit aligned); return it and the next chunk's offset."""
        if len(body) - offset < 4:
            raise RtcpError(f"SDES chunk truncated: {len(body) - offset} octets left for its SSRC")
        (ssrc,) = SSRC_WORD.unpack_from(body, offset)
        pos = offset + 4
        items: list[SdesItem] = []
        while True:
            if pos >= len(body):
                raise RtcpError(f"SDES chunk for SSRC {ssrc:08X} has no terminating null item")
            item_type = body[pos]
            if item_type == SdesType.END:
                end = pos + 1 + _pad_words(pos + 1)
                if end > len(body):
                    raise RtcpError(f"SDES chunk for SSRC {ssrc:08X} lacks padding to 32 bits")
                if any(body[pos + 1:end]):
                    raise RtcpError(f"SDES chunk for SSRC {ssrc:08X} has non-null padding")
                return cls(ssrc, items), end
            if pos + 2 > len(body):
                raise RtcpError(f"SDES item type {item_type} has no length octet")
            length = body[pos + 1]
            if pos + 2 + length > len(body):
                raise RtcpError(f"SDES item type {item_type} of {length} octets overruns its packet")
            items.append((item_type, body[pos + 2:pos + 2 + length]))
            pos += 2 + length

    def serialize(self) -> bytes:
        _check_u32(self.ssrc, "ssrc")
        out = bytearray(SSRC_WORD.pack(self.ssrc))
        for item_type, value in self.items:
            if not 1 <= item_type <= 255:
                raise RtcpError(f"SDES item type {item_type} is not in 1..255")
            if len(value) > 255:
                raise RtcpError(f"SDES item type {item_type} is {len(value)} octets, at most 255")
            out += bytes((item_type, len(value))) + value
        out += b"\x00"
        out += bytes(_pad_words(len(out)))
        return bytes(out)


@dataclass
class SourceDescription(_Base):
    """SDES (RFC 3550 §6.5): up to 31 chunks."""
    chunks: list[SdesChunk] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.packet_type = PacketType.SDES

    @classmethod
    def cname(cls, ssrc: int, cname: str, **items: str) -> "SourceDescription":
        """One chunk with CNAME first, then e.g. ``name=``/``tool=`` items (§6.5.1)."""
        chunk_items: list[SdesItem] = [(SdesType.CNAME, cname)]  # type: ignore[list-item]
        for key, value in items.items():
            try:
                chunk_items.append((SdesType[key.upper()], value))  # type: ignore[arg-type]
            except KeyError:
                raise RtcpError(f"unknown SDES item {key!r}") from None
        return cls([SdesChunk(ssrc, chunk_items)])

    @classmethod
    def parse(cls, count: int, body: bytes) -> "SourceDescription":
        chunks = []
        pos = 0
        for _ in range(count):
            chunk, pos = SdesChunk.parse(body, pos)
            chunks.append(chunk)
        if pos != len(body):
            raise RtcpError(f"SDES has {len(body) - pos} octets after its {count} chunks")
        return cls(chunks)

    def _count(self) -> int:
        return len(self.chunks)

    def _body(self) -> bytes:
        return b"".join(c.serialize() for c in self.chunks)


@dataclass
class Bye(_Base):
    """BYE (RFC 3550 §6.6): the SSRCs leaving and an optional reason (None = no reason field)."""
    ssrcs: list[int] = field(default_factory=list)
    reason: bytes | None = None

    def __post_init__(self) -> None:
        self.packet_type = PacketType.BYE
        if self.reason is not None:
            self.reason = _as_bytes(self.reason, "BYE reason")

    @property
    def reason_text(self) -> str | None:
        return None if self.reason is None else self.reason.decode("utf-8", "replace")

    @classmethod
    def parse(cls, count: int, body: bytes) -> "Bye":
        if len(body) < 4 * count:
            raise RtcpError(f"BYE with {count} SSRCs needs {4 * count + 4} octets, "
                            f"has {len(body) + 4}")
        ssrcs = [SSRC_WORD.unpack_from(body, 4 * i)[0] for i in range(count)]
        pos = 4 * count
        reason = None
        if pos < len(body):
            length = body[pos]
            end = pos + 1 + length
            if end > len(body):
                raise RtcpError(f"BYE reason of {length} octets overruns its packet")
            reason = body[pos + 1:end]
            if len(body) != end + _pad_words(end):
                raise RtcpError(f"BYE has {len(body) - end} octets after its reason, "
                                f"expected {_pad_words(end)} of padding")
            if any(body[end:]):
                raise RtcpError("BYE reason padding is not null")
        return cls(ssrcs, reason)

    def _count(self) -> int:
        return len(self.ssrcs)

    def _body(self) -> bytes:
        for ssrc in self.ssrcs:
            _check_u32(ssrc, "ssrc")
        out = b"".join(SSRC_WORD.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise RtcpError(f"BYE reason is {len(self.reason)} octets, at most 255")
            out += bytes((len(self.reason),)) + self.reason
            out += bytes(_pad_words(len(out)))
        return out


@dataclass
class App(_Base):
    """APP (RFC 3550 §6.7): passed through; ``subtype`` is the 5-bit count field."""
    subtype: int = 0
    ssrc: int = 0
    name: bytes = b"    "
    data: bytes = b""

    def __post_init__(self) -> None:
        self.packet_type = PacketType.APP
        self.name = _as_bytes(self.name, "APP name")

    @classmethod
    def parse(cls, count: int, body: bytes) -> "App":
        if len(body) < APP_HEADER.size:
            raise RtcpError(f"APP needs at least 12 octets, has {len(body) + 4}")
        ssrc, name = APP_HEADER.unpack_from(body)
        return cls(count, ssrc, name, body[APP_HEADER.size:])

    def _count(self) -> int:
        return self.subtype

    def _body(self) -> bytes:
        if len(self.name) != 4:
            raise RtcpError(f"APP name must be 4 octets, got {len(self.name)}")
        _check_u32(self.ssrc, "ssrc")
        return APP_HEADER.pack(self.ssrc, self.name) + bytes(self.data)


XR_BLOCK_HEADER = struct.Struct("!BBH")
XR_RRTR = struct.Struct("!II")
XR_DLRR_SUB = struct.Struct("!III")


class XrBlockType(IntEnum):
    """RFC 3611 section 4 report block types used here (others are kept raw)."""

    RRTR = 4  # Receiver Reference Time (4.4)
    DLRR = 5  # Delay since Last Receiver Report (4.5)


@dataclass
class XrBlock:
    """One XR report block: type, type-specific byte and contents (whole 32-bit words)."""
    block_type: int
    type_specific: int = 0
    data: bytes = b""

    @classmethod
    def rrtr(cls, ntp_timestamp: int) -> "XrBlock":
        """A receiver's reference time (RFC 3611 4.4): lets a receive-only party get an RTT."""
        return cls(XrBlockType.RRTR, 0, XR_RRTR.pack(ntp_timestamp >> 32, ntp_timestamp & 0xFFFFFFFF))

    @classmethod
    def dlrr(cls, items: Sequence[tuple[int, int, int]]) -> "XrBlock":
        """DLRR sub-blocks (ssrc, lrr, dlrr) answering RRTRs (RFC 3611 4.5)."""
        return cls(XrBlockType.DLRR, 0, b"".join(XR_DLRR_SUB.pack(*item) for item in items))

    @property
    def ntp_timestamp(self) -> int:
        """The NTP time of an RRTR block."""
        if self.block_type != XrBlockType.RRTR or len(self.data) != XR_RRTR.size:
            raise RtcpError("not an RRTR block")
        msw, lsw = XR_RRTR.unpack(self.data)
        return (msw << 32) | lsw

    @property
    def dlrr_items(self) -> list[tuple[int, int, int]]:
        """(ssrc, lrr, dlrr) of a DLRR block."""
        if self.block_type != XrBlockType.DLRR or len(self.data) % XR_DLRR_SUB.size:
            raise RtcpError("not a DLRR block")
        return [XR_DLRR_SUB.unpack_from(self.data, i) for i in range(0, len(self.data), XR_DLRR_SUB.size)]


@dataclass
class ExtendedReport(_Base):
    """XR (RFC 3611 section 2): the sender's SSRC and report blocks."""
    ssrc: int = 0
    blocks: list[XrBlock] = field(default_factory=list)
    reserved: int = 0  # the 5 bits where other packets have a count

    def __post_init__(self) -> None:
        self.packet_type = PacketType.XR

    @classmethod
    def parse(cls, count: int, body: bytes) -> "ExtendedReport":
        if len(body) < 4:
            raise RtcpError(f"XR needs an SSRC, has {len(body)} octets")
        (ssrc,) = struct.unpack_from("!I", body)
        blocks = []
        pos = 4
        while pos < len(body):
            if len(body) - pos < XR_BLOCK_HEADER.size:
                raise RtcpError(f"XR block header truncated at offset {pos}")
            block_type, specific, words = XR_BLOCK_HEADER.unpack_from(body, pos)
            end = pos + 4 + 4 * words
            if end > len(body):
                raise RtcpError(f"XR block type {block_type} of {words} words overruns the packet")
            data = body[pos + 4:end]
            if block_type == XrBlockType.RRTR and len(data) != XR_RRTR.size:
                raise RtcpError(f"XR RRTR block has {len(data)} octets, expected 8")
            if block_type == XrBlockType.DLRR and len(data) % XR_DLRR_SUB.size:
                raise RtcpError(f"XR DLRR block has {len(data)} octets, not a multiple of 12")
            blocks.append(XrBlock(block_type, specific, data))
            pos = end
        return cls(ssrc, blocks, count)

    def _count(self) -> int:
        return self.reserved

    def _body(self) -> bytes:
        _check_u32(self.ssrc, "ssrc")
        parts = [struct.pack("!I", self.ssrc)]
        for block in self.blocks:
            if len(block.data) % 4:
                raise RtcpError(f"XR block of {len(block.data)} octets is not whole words")
            parts.append(XR_BLOCK_HEADER.pack(block.block_type, block.type_specific, len(block.data) // 4))
            parts.append(bytes(block.data))
        return b"".join(parts)


@dataclass
class UnknownPacket(_Base):
    """Any other packet type (RTPFB, PSFB, XR, ...), kept raw: count field and body."""
    kind: int = 0
    count: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        self.packet_type = self.kind

    @classmethod
    def parse(cls, packet_type: int, count: int, body: bytes) -> "UnknownPacket":
        return cls(packet_type, count, body)

    def _count(self) -> int:
        return self.count

    def _body(self) -> bytes:
        if not 0 <= self.kind <= 255:
            raise RtcpError(f"packet type {self.kind} is not in 0..255")
        return bytes(self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | App | ExtendedReport | UnknownPacket

_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    PacketType.SR: SenderReport.parse,
    PacketType.RR: ReceiverReport.parse,
    PacketType.SDES: SourceDescription.parse,
    PacketType.BYE: Bye.parse,
    PacketType.APP: App.parse,
    PacketType.XR: ExtendedReport.parse,
}


def parse_compound(data: bytes, strict: bool = True) -> list[RtcpPacket]:
    """Parse one RTCP datagram (RFC 3550 §6.1) with the validity checks of Appendix A.2.

    Every packet must be version 2 and the lengths must add up exactly to the datagram; only
    the last packet may be padded. With ``strict`` (the default) the first packet must be an
    SR or RR; ``strict=False`` accepts reduced-size RTCP (RFC 5506) such as a lone BYE.
    """
    data = bytes(data)
    if not data:
        raise RtcpError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    pos = 0
    index = 0
    while pos < len(data):
        if len(data) - pos < RTCP_HEADER.size:
            raise RtcpError(f"RTCP packet {index} truncated: {len(data) - pos} octets, "
                            f"header needs 4")
        first, packet_type, words = RTCP_HEADER.unpack_from(data, pos)
        version = first >> 6
        if version != RTCP_VERSION:
            raise RtcpError(f"RTCP packet {index} has version {version}, expected 2")
        if index == 0 and strict and packet_type not in (PacketType.SR, PacketType.RR):
            raise RtcpError(f"compound RTCP starts with packet type {packet_type}, "
                            f"expected SR (200) or RR (201)")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise RtcpError(f"RTCP packet {index} length {4 * (words + 1)} overruns the "
                            f"{len(data)}-octet datagram at offset {pos}")
        has_padding = bool(first & 0x20)
        padding = 0
        fill = b""
        body_end = end
        if has_padding:
            if end != len(data):
                raise RtcpError(f"RTCP packet {index} is padded but is not the last packet")
            padding = data[end - 1]
            if padding == 0:
                raise RtcpError(f"RTCP packet {index} has the P bit with a zero padding count")
            if padding > end - pos - 4:
                raise RtcpError(f"RTCP packet {index} padding count {padding} exceeds its "
                                f"{end - pos - 4}-octet body")
            body_end = end - padding
            fill = data[body_end:end - 1]
        count = first & 0x1F
        body = data[pos + 4:body_end]
        parser = _PARSERS.get(packet_type)
        try:
            packet = parser(count, body) if parser else UnknownPacket.parse(packet_type, count, body)
        except RtcpError as exc:
            raise RtcpError(f"RTCP packet {index} ({_type_name(packet_type)}): {exc}") from None
        packet.padding = padding
        packet.padding_fill = fill if any(fill) else b""
        packets.append(packet)
        pos = end
        index += 1
    return packets


def serialize_compound(packets: Sequence[RtcpPacket]) -> bytes:
    """Concatenate packets into one datagram (RFC 3550 §6.1); only the last may be padded."""
    if not packets:
        raise RtcpError("a compound RTCP packet needs at least one packet")
    for i, packet in enumerate(packets[:-1]):
        if packet.padding:
            raise RtcpError(f"RTCP packet {i} is padded but is not the last packet")
    return b"".join(p.serialize() for p in packets)


def _type_name(packet_type: int) -> str:
    try:
        return PacketType(packet_type).name
    except ValueError:
        return f"type {packet_type}"


# ---------------------------------------------------------------------------------------------
# NTP time (RFC 3550 §4): 64-bit fixed point seconds since 1900, middle 32 bits for LSR/DLSR.
# ---------------------------------------------------------------------------------------------


def ntp_from_unix(t: float) -> int:
    """Unix time (s) -> 64-bit NTP timestamp (32.32 fixed point, wraps in 2036 as NTP does)."""
    seconds = math.floor(t)
    fraction = min(int((t - seconds) * 4294967296.0), 0xFFFFFFFF)
    return (((seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | fraction


def unix_from_ntp(ntp64: int) -> float:
    """64-bit NTP timestamp -> Unix time (s). Seconds with the top bit clear are taken as
    era 1 (after 2036-02-07), as RFC 4330 §3 suggests."""
    seconds = (ntp64 >> 32) & 0xFFFFFFFF
    if seconds < 0x80000000:
        seconds += 1 << 32
    return seconds - NTP_UNIX_OFFSET + (ntp64 & 0xFFFFFFFF) / 4294967296.0


def ntp_now(clock: Callable[[], float] = time.time) -> int:
    """The current wall clock as a 64-bit NTP timestamp."""
    return ntp_from_unix(clock())


def ntp_middle32(ntp64: int) -> int:
    """Middle 32 bits of a 64-bit NTP timestamp (16.16 fixed point): the LSR field (§6.4.1)."""
    return (ntp64 >> 16) & 0xFFFFFFFF


def dlsr_from_seconds(seconds: float) -> int:
    """Delay since last SR in 1/65536 s units for the DLSR field (0 .. 2^32-1)."""
    return max(0, min(0xFFFFFFFF, int(seconds * 65536.0)))


def rtt_seconds(arrival_ntp_middle32: int, lsr: int, dlsr: int) -> float | None:
    """Round-trip time A - LSR - DLSR (RFC 3550 §6.4.1, Fig. 2) in seconds.

    All three are 16.16 fixed point values; the subtraction wraps at 32 bits. Returns None
    when LSR is 0 (the reporter has not received an SR yet). A result that is negative after
    the wrap (rounding of DLSR or clocks stepping) is reported as 0.0.
    """
    if lsr == 0:
        return None
    units = (arrival_ntp_middle32 - lsr - dlsr) & 0xFFFFFFFF
    if units >= 0x80000000:
        return 0.0
    return units / 65536.0


# ---------------------------------------------------------------------------------------------
# Transmission interval (RFC 3550 §6.3, Appendix A.7).
# ---------------------------------------------------------------------------------------------


class RandomSource(Protocol):
    def random(self) -> float: ...


def rtcp_deterministic_interval(members: int, senders: int, rtcp_bw: float, we_sent: bool,
                                avg_rtcp_size: float, initial: bool,
                                min_time: float = RTCP_MIN_TIME) -> float:
    """Td of RFC 3550 §6.3.1 (before randomization), in seconds.

    ``rtcp_bw`` is the RTCP bandwidth in octets per second (5% of the session bandwidth),
    ``avg_rtcp_size`` the average compound size in octets including UDP/IP headers. When
    senders are at most a quarter of the members, senders share 25% of the RTCP bandwidth
    and receivers 75%. The minimum is ``min_time`` (5 s), halved for the first report.
    """
    if rtcp_bw <= 0:
        raise ValueError(f"RTCP bandwidth must be positive, got {rtcp_bw}")
    rtcp_min_time = min_time / 2 if initial else min_time
    n = max(members, 1)
    if senders <= members * RTCP_SENDER_BW_FRACTION:
        if we_sent:
            rtcp_bw *= RTCP_SENDER_BW_FRACTION
            n = max(senders, 1)
        else:
            rtcp_bw *= RTCP_RCVR_BW_FRACTION
            n = max(members - senders, 1)
    return max(avg_rtcp_size * n / rtcp_bw, rtcp_min_time)


def rtcp_interval(members: int, senders: int, rtcp_bw: float, we_sent: bool,
                  avg_rtcp_size: float, initial: bool, rng: RandomSource,
                  min_time: float = RTCP_MIN_TIME) -> float:
    """Randomized RTCP transmission interval T of RFC 3550 §6.3.1 / A.7, in seconds:
    Td * uniform[0.5, 1.5] / (e - 3/2). ``rng`` is e.g. ``random.Random(seed)``."""
    td = rtcp_deterministic_interval(members, senders, rtcp_bw, we_sent, avg_rtcp_size,
                                     initial, min_time)
    return td * (rng.random() + 0.5) / COMPENSATION


def update_avg_rtcp_size(avg_rtcp_size: float, packet_size: int,
                         overhead: int = UDP_IPV4_OVERHEAD) -> float:
    """avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size (RFC 3550 §6.3.3), where
    packet_size is the compound RTCP datagram plus the UDP/IP header ``overhead``."""
    return (packet_size + overhead) / 16.0 + avg_rtcp_size * 15.0 / 16.0


def rtcp_bandwidth(session_bandwidth: float) -> float:
    """RTCP bandwidth (octets/s) for a session bandwidth in octets/s: 5% (§6.2)."""
    return session_bandwidth * RTCP_BANDWIDTH_FRACTION


__all__ = [
    "RtcpError", "PacketType", "SdesType", "ReportBlock", "SenderReport", "ReceiverReport",
    "SdesChunk", "SourceDescription", "Bye", "App", "UnknownPacket", "RtcpPacket",
    "XrBlockType", "XrBlock", "ExtendedReport",
    "parse_compound", "serialize_compound", "clamp_packets_lost",
    "ntp_from_unix", "unix_from_ntp", "ntp_now", "ntp_middle32", "dlsr_from_seconds",
    "rtt_seconds", "rtcp_interval", "rtcp_deterministic_interval", "update_avg_rtcp_size",
    "rtcp_bandwidth", "RTCP_HEADER", "SENDER_INFO", "REPORT_BLOCK", "COMPENSATION",
    "RTCP_MIN_TIME", "UDP_IPV4_OVERHEAD", "UDP_IPV6_OVERHEAD",
]
