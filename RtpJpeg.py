"""RTP payload format for JPEG-compressed video (RFC 2435), and the JPEG parsing it needs.

Pure module: bytes in, objects out. No sockets, no threads.

* :func:`parse_jpeg` checks that a baseline JFIF frame can be carried by RFC 2435 and
  locates its quantization tables and entropy-coded scan.
* :func:`packetize` cuts a frame into RTP payloads (RFC 2435 §3.1), the caller adds the
  RTP header and sets the marker bit on the last payload.
* :class:`JpegDepacketizer` reassembles payloads into a complete JFIF frame that any
  JPEG decoder accepts (RFC 2435 §3.1, Appendix A and B), or drops the frame.

RFC 2435 carries only the entropy-coded data: the receiver rebuilds every header from
the 8-byte main header, so the sender must restrict itself to what the receiver can
rebuild: 8-bit baseline, 3 components YCbCr, 4:2:2 (type 0) or 4:2:0 (type 1), the
standard Huffman tables of ITU-T T.81 Annex K.3, and at most 2040x2040 pixels.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mmap

log = logging.getLogger(__name__)

__all__ = [
    "JpegError", "JpegInfo", "JpegType", "Marker", "parse_jpeg", "find_jpeg_end", "packetize",
    "JpegDepacketizer", "JpegPayload", "parse_payload", "build_jfif", "make_qtables",
    "MAX_DIMENSION", "RTP_JPEG_HEADER_SIZE",
]


class Marker(IntEnum):
    """JPEG marker codes (ITU-T T.81 Table B.1) that this module looks at."""

    SOF0 = 0xC0     # baseline DCT
    SOF1 = 0xC1     # extended sequential DCT, Huffman
    SOF2 = 0xC2     # progressive DCT, Huffman
    SOF3 = 0xC3     # lossless
    DHT = 0xC4
    SOF5 = 0xC5
    SOF6 = 0xC6
    SOF7 = 0xC7
    JPG = 0xC8
    SOF9 = 0xC9     # arithmetic coding
    SOF10 = 0xCA
    SOF11 = 0xCB
    DAC = 0xCC
    SOF13 = 0xCD
    SOF14 = 0xCE
    SOF15 = 0xCF
    RST0 = 0xD0
    RST7 = 0xD7
    SOI = 0xD8
    EOI = 0xD9
    SOS = 0xDA
    DQT = 0xDB
    DNL = 0xDC
    DRI = 0xDD
    APP0 = 0xE0
    COM = 0xFE


class JpegType(IntEnum):
    """RFC 2435 §4.1 types; +64 (§3.1.7) when restart markers are present."""

    YUV422 = 0      # luma sampled 2x1, chroma 1x1
    YUV420 = 1      # luma sampled 2x2, chroma 1x1


RESTART_TYPE_FLAG = 64          # RFC 2435 §3.1.7: types 64..127 carry a restart marker header
Q_INBAND = 255                  # RFC 2435 §3.1.4: Q 128..255 means tables in-band; 255 = dynamic
MAX_DIMENSION = 2040            # width/height travel as an 8-bit count of 8-pixel blocks
RTP_JPEG_HEADER_SIZE = 8

_MAIN_HEADER = struct.Struct("!IBBBB")   # type-specific(8)+fragment offset(24), type, Q, width/8, height/8
_RESTART_HEADER = struct.Struct("!HH")   # restart interval, F(1) L(1) restart count(14)
_QTABLE_HEADER = struct.Struct("!BBH")   # MBZ, precision, length
_RESTART_UNALIGNED = 0xFFFF              # F=1, L=1, count=0x3FFF: packets not aligned on intervals
_MAX_FRAME_BYTES = 1 << 24               # the fragment offset is 24 bits

# SOF markers other than SOF0/SOF1, and what they mean, for specific error messages.
_UNSUPPORTED_SOF = {
    Marker.SOF2: "progressive JPEG", Marker.SOF3: "lossless JPEG",
    Marker.SOF5: "hierarchical JPEG", Marker.SOF6: "hierarchical progressive JPEG",
    Marker.SOF7: "hierarchical lossless JPEG", Marker.SOF9: "arithmetic-coded JPEG",
    Marker.SOF10: "arithmetic-coded progressive JPEG", Marker.SOF11: "arithmetic-coded lossless JPEG",
    Marker.SOF13: "arithmetic-coded hierarchical JPEG",
    Marker.SOF14: "arithmetic-coded hierarchical progressive JPEG",
    Marker.SOF15: "arithmetic-coded hierarchical lossless JPEG",
}

# ITU-T T.81 Annex K.3 "typical" Huffman tables: (BITS[1..16], HUFFVAL). RFC 2435 receivers
# always rebuild the frame with exactly these (RFC 2435 Appendix B), so a sender must use them.
_DC_VALUES = bytes(range(12))
_STD_DC_LUMA = (bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]), _DC_VALUES)
_STD_DC_CHROMA = (bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]), _DC_VALUES)
_STD_AC_LUMA = (
    bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
    bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
        "535455565758595a636465666768696a737475767778797a838485868788898a"
        "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
        "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"),
)
_STD_AC_CHROMA = (
    bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
    bytes.fromhex(
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"),
)
# Keyed by (table class, destination id) as written in a DHT segment (class 0 = DC, 1 = AC).
_STD_HUFFMAN = {(0, 0): _STD_DC_LUMA, (1, 0): _STD_AC_LUMA, (0, 1): _STD_DC_CHROMA, (1, 1): _STD_AC_CHROMA}

# RFC 2435 Appendix A quantizers, in zigzag order (the order a DQT segment uses).
_RFC_LUMA_Q = bytes([
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40,
    26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
    56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
    95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99])
_RFC_CHROMA_Q = bytes([17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99] + [99] * 49)

# The first marker in entropy-coded data that is neither a stuffed 0xFF00 nor RST0..RST7
# (T.81 §B.1.1.5); 0xFF fill bytes before a marker are skipped by matching the last 0xFF.
_SCAN_END_RE = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class JpegError(ValueError):
    """A JPEG frame or an RFC 2435 payload that cannot be handled; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class JpegInfo:
    """What RFC 2435 needs from a frame (see :func:`parse_jpeg`)."""

    width: int
    height: int
    jpeg_type: int                      # JpegType: 0 = 4:2:2, 1 = 4:2:0
    qtables: list[bytes]                # [luma, chroma], 64 bytes each, zigzag order, 8-bit
    restart_interval: int = 0           # MCUs per restart interval, 0 = no restart markers
    scan_offset: int = 0                # entropy-coded data is frame[scan_offset:scan_end]
    scan_end: int = 0                   # (EOI excluded)


def make_qtables(q: int) -> list[bytes]:
    """Luma and chroma tables for Q 1..99, zigzag order (RFC 2435 Appendix A, MakeTables)."""
    if not 1 <= q <= 99:
        raise JpegError(f"Q {q} has no computed tables (RFC 2435 §3.1.4: only 1..99)")
    scale = 5000 // q if q < 50 else 200 - q * 2
    return [bytes(min(max((v * scale + 50) // 100, 1), 255) for v in base)
            for base in (_RFC_LUMA_Q, _RFC_CHROMA_Q)]


def _segments(frame: bytes | bytearray | mmap.mmap, pos: int):
    """Yield (marker, body_start, body_end) for marker segments from ``pos`` up to and incl. SOS.

    Standalone markers (SOI, RSTn, TEM) yield an empty body. Raises JpegError on truncation.
    """
    n = len(frame)
    while True:
        if pos >= n:
            raise JpegError("truncated JPEG: no SOS/EOI marker")
        if frame[pos] != 0xFF:
            raise JpegError(f"expected a marker at offset {pos}, found 0x{frame[pos]:02X}")
        while pos < n and frame[pos] == 0xFF:       # fill bytes (T.81 §B.1.1.2)
            pos += 1
        if pos >= n:
            raise JpegError("truncated JPEG inside a marker")
        marker = frame[pos]
        pos += 1
        if marker == Marker.EOI:
            yield marker, pos, pos
            return
        if marker == Marker.SOI or Marker.RST0 <= marker <= Marker.RST7 or marker == 0x01:
            yield marker, pos, pos
            continue
        if pos + 2 > n:
            raise JpegError(f"truncated JPEG: marker 0x{marker:02X} has no length")
        length = (frame[pos] << 8) | frame[pos + 1]
        if length < 2 or pos + length > n:
            raise JpegError(f"truncated JPEG: marker 0x{marker:02X} segment of {length} bytes "
                            f"runs past the end")
        yield marker, pos + 2, pos + length
        pos += length


def _huffman_tables(body: bytes | memoryview, tables: dict) -> None:
    """Parse a DHT segment body into ``tables[(class, id)] = (bits, values)`` (T.81 §B.2.4.2)."""
    pos, n = 0, len(body)
    while pos < n:
        if pos + 17 > n:
            raise JpegError("truncated DHT segment")
        tc_th = body[pos]
        bits = bytes(body[pos + 1:pos + 17])
        count = sum(bits)
        if pos + 17 + count > n:
            raise JpegError("truncated DHT segment")
        tables[(tc_th >> 4, tc_th & 0x0F)] = (bits, bytes(body[pos + 17:pos + 17 + count]))
        pos += 17 + count


def _quant_tables(body: bytes | memoryview, tables: dict) -> None:
    """Parse a DQT segment body into ``tables[id] = (precision, 64 values zigzag)`` (§B.2.4.1)."""
    pos, n = 0, len(body)
    while pos < n:
        pq_tq = body[pos]
        size = 128 if pq_tq >> 4 else 64
        if pos + 1 + size > n:
            raise JpegError("truncated DQT segment")
        tables[pq_tq & 0x0F] = (pq_tq >> 4, bytes(body[pos + 1:pos + 1 + size]))
        pos += 1 + size


def parse_jpeg(frame: bytes) -> JpegInfo:
    """Check that RFC 2435 can carry ``frame`` and locate its tables and scan (RFC 2435 §3.1, §4.1).

    Raises JpegError with a specific reason: not a JPEG, truncated, progressive/lossless/
    arithmetic, precision other than 8, not 3 components, sampling other than 2x1 or 2x2 luma
    with 1x1 chroma, larger than 2040 pixels, 16-bit quantization tables, Huffman tables other
    than the standard ones, several scans, missing EOI.
    """
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] != Marker.SOI:
        raise JpegError("not a JPEG: no SOI marker")
    qtables: dict[int, tuple[int, bytes]] = {}
    huffman: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    restart_interval = 0
    sof = None
    view = memoryview(frame)
    for marker, start, end in _segments(frame, 2):
        if marker == Marker.DQT:
            _quant_tables(view[start:end], qtables)
        elif marker == Marker.DHT:
            _huffman_tables(view[start:end], huffman)
        elif marker == Marker.DRI:
            if end - start != 2:
                raise JpegError("DRI segment length is not 4")
            restart_interval = (frame[start] << 8) | frame[start + 1]
        elif marker in (Marker.SOF0, Marker.SOF1):
            if sof is not None:
                raise JpegError("more than one SOF marker")
            sof = frame[start:end]
        elif marker in _UNSUPPORTED_SOF:
            raise JpegError(f"{_UNSUPPORTED_SOF[marker]} (SOF{marker - 0xC0}) is not baseline; "
                            f"RFC 2435 carries baseline sequential DCT only")
        elif marker == Marker.DAC:
            raise JpegError("arithmetic coding (DAC) is not supported by RFC 2435")
        elif marker == Marker.EOI:
            raise JpegError("EOI before SOS: no image data")
        elif marker == Marker.SOS:
            sos = frame[start:end]
            scan_offset = end
            break
        elif marker == Marker.SOI:
            raise JpegError("SOI inside the JPEG header")
    if sof is None:
        raise JpegError("no SOF0/SOF1 frame header before SOS")

    # Frame header (T.81 §B.2.2): P, Y, X, Nf, then Nf x (C, HiVi, Tq).
    if len(sof) < 6:
        raise JpegError("truncated SOF segment")
    precision, height, width, ncomp = sof[0], (sof[1] << 8) | sof[2], (sof[3] << 8) | sof[4], sof[5]
    if precision != 8:
        raise JpegError(f"{precision}-bit samples; RFC 2435 carries 8-bit only")
    if ncomp != 3:
        raise JpegError(f"{ncomp} components; RFC 2435 carries 3-component YCbCr only")
    if len(sof) < 6 + 3 * ncomp:
        raise JpegError("truncated SOF segment")
    if width == 0 or height == 0:
        raise JpegError(f"image size {width}x{height} (DNL-defined height is not supported)")
    if width > MAX_DIMENSION or height > MAX_DIMENSION:
        raise JpegError(f"image size {width}x{height} exceeds RFC 2435's {MAX_DIMENSION} pixels")
    comps = [(sof[6 + 3 * i], sof[7 + 3 * i], sof[8 + 3 * i]) for i in range(3)]
    luma_sampling = comps[0][1]
    if luma_sampling == 0x21:
        jpeg_type = JpegType.YUV422
    elif luma_sampling == 0x22:
        jpeg_type = JpegType.YUV420
    else:
        raise JpegError(f"luma sampling {luma_sampling >> 4}x{luma_sampling & 15}; RFC 2435 types "
                        f"0/1 need 2x1 (4:2:2) or 2x2 (4:2:0)")
    if comps[1][1] != 0x11 or comps[2][1] != 0x11:
        raise JpegError("chroma sampling is not 1x1; RFC 2435 types 0/1 need it")

    # Quantization tables: the receiver writes table 0 for Y and table 1 for Cb and Cr.
    try:
        luma_q, cb_q, cr_q = (qtables[c[2]] for c in comps)
    except KeyError as exc:
        raise JpegError(f"quantization table {exc.args[0]} is used but not defined") from None
    if luma_q[0] or cb_q[0]:
        raise JpegError("16-bit quantization tables; RFC 2435 senders here use 8-bit only")
    if cb_q[1] != cr_q[1]:
        raise JpegError("Cb and Cr use different quantization tables; RFC 2435 has one chroma table")

    # Scan header (T.81 §B.2.3): one interleaved scan of Y, Cb, Cr, full spectral range.
    if len(sos) < 1 or sos[0] != 3 or len(sos) != 1 + 2 * 3 + 3:
        raise JpegError("the scan is not a single interleaved scan of 3 components")
    if [sos[1], sos[3], sos[5]] != [c[0] for c in comps]:
        raise JpegError("scan components are not in frame order Y, Cb, Cr")
    if (sos[7], sos[8], sos[9]) != (0, 63, 0):
        raise JpegError("scan is not baseline (Ss=0, Se=63, Ah=Al=0)")
    for index, selector in enumerate((sos[2], sos[4], sos[6])):
        klass = 0 if index == 0 else 1      # receivers use tables 0 for Y, 1 for Cb/Cr
        for table_class, table_id in ((0, selector >> 4), (1, selector & 15)):
            table = huffman.get((table_class, table_id))
            if table is None and table_id <= 1:
                # No DHT at all is the Motion-JPEG convention for "standard tables".
                table = _STD_HUFFMAN[(table_class, table_id)]
            if table != _STD_HUFFMAN[(table_class, klass)]:
                raise JpegError("non-standard Huffman tables (optimized?); RFC 2435 receivers use "
                                "the ITU-T T.81 Annex K tables only")

    match = _SCAN_END_RE.search(frame, scan_offset)
    if match is None:
        raise JpegError("truncated JPEG: no EOI after the scan data")
    scan_end = match.start()
    if frame[scan_end + 1] != Marker.EOI:
        raise JpegError(f"marker 0x{frame[scan_end + 1]:02X} after the scan data: only a single "
                        f"scan followed by EOI is supported")
    return JpegInfo(width, height, int(jpeg_type), [luma_q[1], cb_q[1]], restart_interval,
                    scan_offset, scan_end)


def find_jpeg_end(data: bytes | bytearray | mmap.mmap, start: int = 0) -> int:
    """Return the offset just past the EOI of the JPEG beginning at ``data[start]``.

    Walks marker segments and every scan (progressive frames too), so it can split a stream
    of concatenated JPEGs whatever they contain. Raises JpegError if there is no complete JPEG.
    """
    if data[start:start + 2] != b"\xff\xd8":
        raise JpegError(f"no SOI marker at offset {start}")
    pos = start + 2
    while True:
        for marker, _, end in _segments(data, pos):
            if marker == Marker.EOI:
                return end
            pos = end
            if marker == Marker.SOS:
                break
        match = _SCAN_END_RE.search(data, pos)
        if match is None:
            raise JpegError("truncated JPEG: no EOI after the scan data")
        pos = match.start()


def packetize(frame: bytes, max_payload: int = 1400, info: JpegInfo | None = None) -> list[bytes]:
    """Cut one JPEG frame into RFC 2435 RTP payloads of at most ``max_payload`` bytes.

    Each payload: main header (§3.1), restart marker header when the frame has a DRI (§3.1.7,
    types 64/65, F=L=1 and count 0x3FFF since fragments are not aligned on restart
    intervals), the quantization table header with both tables in the first payload only
    (§3.1.8, Q=255), then entropy-coded data. Pass ``info`` from an earlier parse_jpeg() to skip
    parsing. The caller sets the RTP marker bit on the last payload.
    """
    if info is None:
        info = parse_jpeg(frame)
    jpeg_type = info.jpeg_type
    extra = b""
    if info.restart_interval:
        jpeg_type |= RESTART_TYPE_FLAG
        extra = _RESTART_HEADER.pack(info.restart_interval, _RESTART_UNALIGNED)
    tail = bytes((jpeg_type, Q_INBAND, (info.width + 7) >> 3, (info.height + 7) >> 3)) + extra
    tables = b"".join(info.qtables)
    qheader = _QTABLE_HEADER.pack(0, 0, len(tables)) + tables

    header_size = 4 + len(tail)
    first_room = max_payload - header_size - len(qheader)
    room = max_payload - header_size
    if first_room < 1:
        raise ValueError(f"max_payload {max_payload} leaves no room for data after the "
                         f"{header_size + len(qheader)}-byte RFC 2435 headers")
    # The EOI travels too, as GStreamer's rtpjpegpay sends it: rtpjpegdepay appends an EOI
    # only when the data does not already end in one, and its check misfires when the last
    # scan byte happens to be 0xD9, leaving such frames truncated.
    data = memoryview(frame)[info.scan_offset:info.scan_end + 2]
    size = len(data)
    if size >= _MAX_FRAME_BYTES:
        raise JpegError(f"scan data of {size} bytes exceeds the 24-bit fragment offset")

    join = b"".join
    packets = [join((b"\0\0\0\0", tail, qheader, data[:first_room]))]
    for offset in range(min(first_room, size), size, room):
        packets.append(join((offset.to_bytes(4, "big"), tail, data[offset:offset + room])))
    return packets


@dataclass
class JpegPayload:
    """One parsed RFC 2435 payload (§3.1)."""

    type_specific: int
    fragment_offset: int
    jpeg_type: int                      # with the restart flag (64) removed
    q: int
    width: int                          # pixels (8 x the header's block count)
    height: int
    restart_interval: int = 0
    qtables: list[bytes] | None = None  # in-band tables if present (first fragment, Q >= 128)
    qtable_precision: int = 0
    data: bytes | memoryview = b""


def parse_payload(payload: bytes) -> JpegPayload:
    """Parse the RFC 2435 headers of one RTP payload; raises JpegError if it is malformed."""
    n = len(payload)
    if n < RTP_JPEG_HEADER_SIZE:
        raise JpegError(f"RTP/JPEG payload of {n} bytes is shorter than the 8-byte main header")
    word, jpeg_type, q, w8, h8 = _MAIN_HEADER.unpack_from(payload)
    pos = RTP_JPEG_HEADER_SIZE
    restart_interval = 0
    if jpeg_type & RESTART_TYPE_FLAG:
        if n < pos + 4:
            raise JpegError("RTP/JPEG payload truncated in the restart marker header")
        restart_interval, _ = _RESTART_HEADER.unpack_from(payload, pos)
        pos += 4
    base_type = jpeg_type & ~RESTART_TYPE_FLAG
    if base_type not in (JpegType.YUV422, JpegType.YUV420):
        raise JpegError(f"RTP/JPEG type {jpeg_type} is not supported (only 0, 1, 64, 65)")
    if q == 0 or 100 <= q <= 127:
        raise JpegError(f"reserved Q value {q} (RFC 2435 §3.1.4)")
    if w8 == 0 or h8 == 0:
        raise JpegError(f"RTP/JPEG size {w8 * 8}x{h8 * 8}: zero width or height")
    offset = word & 0xFFFFFF
    qtables = None
    precision = 0
    if offset == 0 and q >= 128:
        if n < pos + 4:
            raise JpegError("RTP/JPEG payload truncated in the quantization table header")
        _mbz, precision, length = _QTABLE_HEADER.unpack_from(payload, pos)
        pos += 4
        if n < pos + length:
            raise JpegError(f"RTP/JPEG quantization tables of {length} bytes run past the payload")
        if length:
            qtables = _split_tables(payload[pos:pos + length], precision)
            if len(qtables) > 2:  # types 0 and 1 have one luma and one chroma table (RFC 2435 3.1.8)
                raise JpegError(f"{len(qtables)} in-band quantization tables; types 0/1 use 1 or 2")
        pos += length
    return JpegPayload(word >> 24, offset, base_type, q, w8 * 8, h8 * 8, restart_interval,
                       qtables, precision, memoryview(payload)[pos:])


def _split_tables(data: bytes, precision: int) -> list[bytes]:
    """Split in-band quantization table data; bit i of precision = table i is 16-bit (§3.1.8)."""
    tables: list[bytes] = []
    pos = 0
    while pos < len(data) and len(tables) < 4:
        size = 128 if precision >> len(tables) & 1 else 64
        if pos + size > len(data):
            break
        tables.append(data[pos:pos + size])
        pos += size
    if pos != len(data) or not tables:
        raise JpegError(f"quantization table length {len(data)} does not match precision "
                        f"0x{precision:02X}")
    return tables


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body


def _dht_body() -> bytes:
    parts = []
    for (table_class, table_id), (bits, values) in (((0, 0), _STD_DC_LUMA), ((1, 0), _STD_AC_LUMA),
                                                     ((0, 1), _STD_DC_CHROMA), ((1, 1), _STD_AC_CHROMA)):
        parts.append(bytes((table_class << 4 | table_id,)) + bits + values)
    return b"".join(parts)


_DHT_SEGMENT = _segment(Marker.DHT, _dht_body())
_APP0_JFIF = _segment(Marker.APP0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")


def build_jfif(jpeg_type: int, width: int, height: int, qtables: list[bytes],
               restart_interval: int, scan_data: bytes) -> bytes:
    """Rebuild a complete JFIF file around RFC 2435 scan data (RFC 2435 Appendix B).

    ``qtables``: one table (used for all components) or two (luma, chroma), 64 bytes for
    8-bit or 128 bytes for 16-bit precision, zigzag order. An EOI is appended unless the
    data already ends with one.
    """
    return _jfif_header(jpeg_type, width, height, tuple(qtables), restart_interval) + \
        _with_eoi(scan_data)


def _with_eoi(scan_data) -> bytes:
    if scan_data[-2:] == b"\xff\xd9":
        return bytes(scan_data)
    return bytes(scan_data) + b"\xff\xd9"


def _jfif_header(jpeg_type: int, width: int, height: int, qtables: tuple,
                 restart_interval: int) -> bytes:
    jpeg_type &= ~RESTART_TYPE_FLAG
    if jpeg_type not in (JpegType.YUV422, JpegType.YUV420):
        raise JpegError(f"RTP/JPEG type {jpeg_type} is not supported")
    if not 1 <= len(qtables) <= 2:
        raise JpegError(f"{len(qtables)} quantization tables; expected 1 or 2")
    dqt = b""
    for table_id, table in enumerate(qtables):
        if len(table) not in (64, 128):
            raise JpegError(f"quantization table of {len(table)} bytes")
        dqt += bytes(((len(table) == 128) << 4 | table_id,)) + bytes(table)
    chroma_q = 1 if len(qtables) == 2 else 0
    sof = struct.pack("!BHHB", 8, height, width, 3) + bytes((
        1, 0x22 if jpeg_type == JpegType.YUV420 else 0x21, 0,
        2, 0x11, chroma_q,
        3, 0x11, chroma_q))
    sos = bytes((3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0))
    parts = [b"\xff\xd8", _APP0_JFIF, _segment(Marker.DQT, dqt)]
    if restart_interval:
        parts.append(_segment(Marker.DRI, restart_interval.to_bytes(2, "big")))
    parts += [_segment(Marker.SOF0, sof), _DHT_SEGMENT, _segment(Marker.SOS, sos)]
    return b"".join(parts)


@dataclass
class _Frame:
    """Fragments collected so far for one RTP timestamp."""

    timestamp: int
    header: tuple | None = None                 # (type, q, width, height, restart_interval)
    qtables: tuple | None = None
    chunks: dict = field(default_factory=dict)  # fragment offset -> data
    end: int | None = None                      # total size, known once the marker arrives
    size: int = 0                               # bytes held in chunks
    damaged: bool = False


class JpegDepacketizer:
    """Reassemble RFC 2435 payloads into complete JFIF frames (RFC 2435 §3.1, Appendix B).

    Push payloads in RTP sequence order. A frame is returned once its marker packet has
    arrived and its fragments cover 0..end contiguously; a frame with a missing fragment is
    dropped and counted in ``frames_dropped``, never returned. Malformed payloads are counted
    in ``bad_packets`` and skipped. Duplicated packets are ignored. The lab dialect (each
    payload a whole JPEG starting FF D8 FF) is returned unchanged.
    """

    def __init__(self) -> None:
        self.frames_completed = 0
        self.frames_dropped = 0
        self.bad_packets = 0
        self.duplicates = 0
        self.last_bad_reason: str | None = None    # why the latest bad payload was bad
        self.last_drop_reason: str | None = None   # why the latest frame was dropped
        self._frame: _Frame | None = None
        self._last_done: int | None = None      # timestamp of the last frame emitted or dropped
        self._last_first = b""                  # first payload of the latest frame (duplicates)
        self._qtable_cache: dict[int, tuple] = {}
        self._header_cache: dict[tuple, bytes] = {}

    def push(self, payload: bytes, rtp_timestamp: int, marker: bool,
             seq_missing_before: bool = False) -> bytes | None:
        """Add one RTP payload; return a complete JFIF frame or None."""
        if payload[:3] == b"\xff\xd8\xff":
            # Lab dialect: one whole JPEG per RTP packet.
            self._abandon()
            self._last_done = rtp_timestamp & 0xFFFFFFFF
            self.frames_completed += 1
            return bytes(payload)
        try:
            part = parse_payload(payload)
        except JpegError as exc:
            self.bad_packets += 1
            self.last_bad_reason = exc.reason
            log.debug("bad RTP/JPEG payload: %s", exc.reason)
            if self._frame is not None and self._frame.timestamp == rtp_timestamp:
                self._frame.damaged = True
            return None
        timestamp = rtp_timestamp & 0xFFFFFFFF
        frame = self._frame
        if frame is not None and frame.timestamp != timestamp:
            self._abandon()
            frame = None
        if frame is None:
            if timestamp == self._last_done and (part.fragment_offset or payload == self._last_first):
                # A late duplicate of a frame already finished. (A different first fragment
                # with the same timestamp is a new frame from a sender that reuses timestamps.)
                self.duplicates += 1
                return None
            frame = self._frame = _Frame(timestamp)
        elif seq_missing_before:
            frame.damaged = True            # a packet of this very frame went missing

        header = (part.jpeg_type, part.q, part.width, part.height, part.restart_interval)
        if frame.header is None:
            frame.header = header
        elif frame.header != header:
            log.debug("RTP/JPEG headers differ within frame ts=%d", timestamp)
            frame.damaged = True
        if part.fragment_offset == 0:
            frame.qtables = self._tables_for(part)
            self._last_first = bytes(payload)
        if part.fragment_offset in frame.chunks:
            self.duplicates += 1
        elif len(part.data) and not frame.damaged:  # an empty fragment adds nothing
            frame.chunks[part.fragment_offset] = part.data
            frame.size += len(part.data)
            if frame.size > _MAX_FRAME_BYTES or part.fragment_offset + len(part.data) > _MAX_FRAME_BYTES:
                log.debug("RTP/JPEG frame ts=%d exceeds %d bytes", timestamp, _MAX_FRAME_BYTES)
                frame.damaged = True        # bound the memory a sender can make us hold
                frame.chunks.clear()
        if marker:
            frame.end = part.fragment_offset + len(part.data)
        if frame.end is not None:
            return self._try_complete(frame)
        return None

    def flush(self) -> None:
        """End of stream: an unfinished frame counts as dropped."""
        self._abandon()

    def new_timeline(self) -> None:
        """A seek: the half-built frame from before it is discarded, not counted as dropped, and
        the duplicate check forgets the last frame (the new timeline may reuse its timestamp);
        the counters go on."""
        self._frame = None
        self._last_done = None
        self._last_first = b""

    def _abandon(self) -> None:
        if self._frame is not None:
            self.frames_dropped += 1
            self._last_done = self._frame.timestamp
            self.last_drop_reason = ("a frame had no packet with the marker bit" if self._frame.end is None
                                     else "a frame had fragments missing")
            log.debug("RTP/JPEG frame ts=%d dropped: incomplete", self._frame.timestamp)
            self._frame = None

    def _tables_for(self, part: JpegPayload) -> tuple | None:
        """Quantization tables for the frame (RFC 2435 §3.1.8, Appendix A); None if unknown."""
        q = part.q
        if q < 128:
            tables = self._qtable_cache.get(q)
            if tables is None:
                tables = self._qtable_cache[q] = tuple(make_qtables(q))
            return tables
        if part.qtables is not None:
            tables = tuple(bytes(t) for t in part.qtables)
            if q != Q_INBAND:               # Q=255 means dynamic: never reuse (§3.1.8)
                self._qtable_cache[q] = tables
            return tables
        tables = self._qtable_cache.get(q) if q != Q_INBAND else None
        if tables is None:
            log.debug("RTP/JPEG Q=%d without tables and none cached", q)
        return tables

    def _try_complete(self, frame: _Frame) -> bytes | None:
        """Emit the frame if fragments cover 0..end; drop it now if it is known to be bad.

        A hole leaves the frame pending: it is dropped when the next timestamp arrives
        (or on flush), which also lets a lenient caller deliver fragments out of order.
        """
        chunks = frame.chunks
        end = frame.end
        assert end is not None, "called once the marker packet has set the frame's end"
        pieces, pos = [], 0
        while pos < end:
            chunk = chunks.get(pos)
            if chunk is None:
                break
            pieces.append(chunk)
            pos += len(chunk)
        complete = pos == end
        if not complete and not frame.damaged:
            return None
        self._frame = None
        self._last_done = frame.timestamp
        if frame.damaged or not complete or frame.qtables is None or frame.header is None:
            self.frames_dropped += 1
            self.last_drop_reason = ("no quantization tables for the frame's Q"
                                     if complete and not frame.damaged
                                     else "a frame had fragments missing or damaged")
            log.debug("RTP/JPEG frame ts=%d dropped: missing fragment or tables", frame.timestamp)
            return None
        jpeg_type, _q, width, height, restart_interval = frame.header
        key = (jpeg_type, width, height, frame.qtables, restart_interval)
        head = self._header_cache.get(key)
        if head is None:
            if len(self._header_cache) > 64:
                self._header_cache.clear()
            head = self._header_cache[key] = _jfif_header(*key[:3], frame.qtables, restart_interval)
        pieces.insert(0, head)
        last = pieces[-1]
        if last[-2:] != b"\xff\xd9":
            pieces.append(b"\xff\xd9")
        self.frames_completed += 1
        return b"".join(pieces)
