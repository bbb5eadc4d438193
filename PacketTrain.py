"""A frame's RTP packets laid out once and stamped per session (the server's send path).

The packets themselves are RtpPacket's (RFC 3550 section 5.1); this module only lays a
frame's packets out back to back so that each session's copy costs one buffer copy and
one ``pack_into`` per packet, and so that UDP segmentation offload can send them.
"""

from __future__ import annotations

import struct
from typing import Sequence

from RtpPacket import PT_JPEG, RtpPacket

# sequence(16) | timestamp(32) | SSRC(32): the per-session part of a header, at offset 2
_STAMP = struct.Struct("!HII")


class PacketTrain:
    """One frame's RTP packets laid out once, back to back, for every session to send.

    The template holds each packet's header (version, marker on the last, payload type)
    and payload at a fixed stride; a session's copy differs only in sequence number,
    timestamp and SSRC, which `stamp()` writes into a fresh copy with one pack_into per
    packet.  The train is plain RTP: a sender that interleaves packets on the RTSP
    connection frames them itself (Streamer.interleave).

    Packets are `segment` octets apart; all but the last are exactly that long when the
    payloads are (RFC 2435 packetize() cuts them so), which is what UDP segmentation
    offload needs: the kernel cuts one buffer into datagrams of `segment` octets.
    """

    __slots__ = ("template", "view", "count", "offsets", "sizes", "segment", "uniform", "payload_octets")

    def __init__(self, payloads: Sequence[bytes], payload_type: int = PT_JPEG) -> None:
        if not payloads:
            raise ValueError("a packet train needs at least one payload")
        last = len(payloads) - 1
        parts: list[bytes] = []
        offsets: list[int] = []
        sizes: list[int] = []
        position = 0
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type, 0, 0, 0, payload, i == last).serialize()
            parts.append(packet)
            offsets.append(position)
            sizes.append(len(packet))
            position += len(packet)
        self.template = b"".join(parts)
        self.view = memoryview(self.template)
        self.count = len(payloads)
        self.offsets = offsets
        self.sizes = sizes
        self.segment = sizes[0]
        self.uniform = all(size == sizes[0] for size in sizes[:-1]) and sizes[-1] <= sizes[0]
        self.payload_octets = sum(map(len, payloads))

    def stamp(self, seq: int, timestamp: int, ssrc: int, start: int = 0, end: int | None = None) -> bytearray:
        """Packets start..end-1 (all by default) as one buffer: a copy of that part of the
        template with their sequence numbers (packet i gets seq + i, mod 2**16), the RTP
        timestamp and the SSRC written in.  A large frame is stamped slice by slice, so no
        session holds a copy of a whole frame between its slices."""
        offsets = self.offsets
        if end is None:
            end = self.count
        if not 0 <= start < end <= self.count:
            raise ValueError(f"packets {start}..{end} outside the train's 0..{self.count}")
        base = offsets[start]
        buf = bytearray(self.view[base:offsets[end - 1] + self.sizes[end - 1]])
        pack_into = _STAMP.pack_into
        at = 2 - base
        timestamp &= 0xFFFFFFFF
        ssrc &= 0xFFFFFFFF
        seq += start
        for offset in offsets[start:end]:
            pack_into(buf, offset + at, seq & 0xFFFF, timestamp, ssrc)
            seq += 1
        return buf

    def packets(self, buf: bytes | bytearray, start: int = 0) -> list[memoryview]:
        """A buffer from stamp(..., start, ...) cut into its packets."""
        view = memoryview(buf)
        base = self.offsets[start]
        out = []
        for offset, size in zip(self.offsets[start:], self.sizes[start:]):
            if offset - base >= len(view):
                break
            out.append(view[offset - base:offset - base + size])
        return out
