"""The packet inspector's decode: a datagram -> its fields with bit ranges (no Tk, no sockets).

`decode(data, rtcp)` names every field of an RTP packet (RFC 3550 §5.1: V, P, X, CC, M, PT,
sequence number, timestamp, SSRC, CSRCs, header extension, padding) with its RFC 2435 JPEG
header (type-specific, fragment offset, type, Q, width, height; the restart marker header
and the quantization table header and tables when present), or of each packet of an RTCP
compound (RFC 3550 §6.4-6.7: SR, RR, report blocks, SDES chunks and items, BYE, APP).
Each :class:`Field` knows its bit offset and length in the datagram, so a view can draw the
RFC's bit diagram (`diagram()`) and highlight the bytes of a field.  The values come from
the project's parsers (RtpPacket, RtpJpeg, RtcpPacket); only the positions are worked out
here.  `summarize()` reads just the few header bytes a list row needs, and `PacketRing`
keeps the last N datagrams for the inspector window and the `--dump` printer.
"""

from __future__ import annotations

import itertools
import logging
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, TextIO

from RtcpPacket import PacketType, RtcpError, SdesType, parse_compound
from RtpJpeg import RESTART_TYPE_FLAG, JpegError, parse_payload
from RtpPacket import PT_JPEG, RtpPacket

log = logging.getLogger(__name__)

RING_SIZE = 2000
WORD = 32


@dataclass(frozen=True)
class Field:
    """One field: `start`/`length` in bits from the first octet of the datagram."""

    name: str
    start: int
    length: int
    value: int | bytes
    text: str                   # the value as a student reads it ("26 (JPEG)", "0x1a2b3c4d")
    layer: str                  # "RTP", "RFC 2435", "RTCP SR", ...
    label: str = ""             # short name for the diagram ("V", "PT"); the name when empty

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def byte_range(self) -> tuple[int, int]:
        """[first, last+1) octets holding any bit of the field."""
        return self.start // 8, (self.end + 7) // 8

    @property
    def short(self) -> str:
        return self.label or self.name


@dataclass
class Decoded:
    kind: str                               # "RTP", "RTCP SR+SDES", "bad RTP", ...
    fields: list[Field] = field(default_factory=list)
    error: str = ""                         # what is malformed (the fields are what could be read)
    size: int = 0

    def field_at(self, octet: int) -> Field | None:
        """The field holding most of octet `octet`'s bits (octet 1 of RTP: PT, not M)."""
        best, most = None, 0
        lo, hi = octet * 8, octet * 8 + 8
        for f in self.fields:
            bits = min(hi, f.end) - max(lo, f.start)
            if bits > most:
                best, most = f, bits
        return best

    def get(self, name: str, layer: str | None = None) -> Field | None:
        for f in self.fields:
            if f.name == name and (layer is None or f.layer == layer):
                return f
        return None


@dataclass(frozen=True)
class Summary:
    """One list row: no more than the header says."""

    kind: str
    seq: int | None
    timestamp: int | None
    marker: bool | None
    size: int
    ssrc: int | None = None


_RTCP_NAMES = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB", 206: "PSFB", 207: "XR"}
_PT_NAMES = {0: "PCMU", 8: "PCMA", 26: "JPEG", 31: "H261", 32: "MPV", 33: "MP2T", 34: "H263"}
_SDES_NAMES = {t.value: t.name for t in SdesType}
_HEAD = struct.Struct("!BBH")


def is_rtcp(data: bytes) -> bool:
    """RTCP by its packet type octet (RFC 5761 §4: 200..207 never start RTP from PT 72..79)."""
    return len(data) >= 2 and 200 <= data[1] <= 207


def summarize(data: bytes, rtcp: bool | None = None) -> Summary:
    """The list row for one datagram; reads only its header words."""
    n = len(data)
    if rtcp is None:
        rtcp = is_rtcp(data)
    if rtcp:
        kinds: list[str] = []
        pos = 0
        ssrc = int.from_bytes(data[4:8], "big") if n >= 8 else None
        while pos + 4 <= n and len(kinds) < 8:
            _, pt, words = _HEAD.unpack_from(data, pos)
            kinds.append(_RTCP_NAMES.get(pt, str(pt)))
            pos += 4 * (words + 1)
        return Summary("RTCP " + "+".join(kinds) if kinds else "bad RTCP", None, None, None, n, ssrc)
    if n < 12 or data[0] >> 6 != 2:
        return Summary("bad RTP", None, None, None, n)
    second = data[1]
    return Summary("RTP", int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big"),
                   bool(second & 0x80), n, int.from_bytes(data[8:12], "big"))


def _bits(name: str, start: int, length: int, value: int, layer: str, text: str | None = None,
          label: str = "") -> Field:
    return Field(name, start, length, value, str(value) if text is None else text, layer, label)


def _blob(name: str, start_octet: int, data: bytes, layer: str, text: str | None = None) -> Field:
    if text is None:
        head = data[:8].hex(" ")
        text = f"{len(data)} bytes: {head}{' ...' if len(data) > 8 else ''}"
    return Field(name, start_octet * 8, len(data) * 8, bytes(data), text, layer)


def _uint(data: bytes, octet: int, size: int) -> int:
    return int.from_bytes(data[octet:octet + size], "big")


# --------------------------------------------------------------------------- RTP


def decode(data: bytes, rtcp: bool | None = None) -> Decoded:
    """Every field of one datagram; a malformed one gives the fields read and `error`."""
    data = bytes(data)
    if rtcp is None:
        rtcp = is_rtcp(data)
    return _decode_rtcp(data) if rtcp else _decode_rtp(data)


def _decode_rtp(data: bytes) -> Decoded:
    out = Decoded("RTP", size=len(data))
    f = out.fields
    L = "RTP"
    if len(data) < 12:
        out.kind, out.error = "bad RTP", f"{len(data)} bytes: shorter than the 12-byte RTP header"
        if data:
            f.append(_blob("bytes", 0, data, L))
        return out
    b0, b1 = data[0], data[1]
    version, padding, extension, cc = b0 >> 6, b0 >> 5 & 1, b0 >> 4 & 1, b0 & 0x0F
    marker, pt = b1 >> 7, b1 & 0x7F
    f += [
        _bits("version", 0, 2, version, L, label="V"),
        _bits("padding", 2, 1, padding, L, label="P"),
        _bits("extension", 3, 1, extension, L, label="X"),
        _bits("CSRC count", 4, 4, cc, L, label="CC"),
        _bits("marker", 8, 1, marker, L, label="M"),
        _bits("payload type", 9, 7, pt, L, f"{pt} ({_PT_NAMES.get(pt, 'dynamic' if pt >= 96 else '?')})",
              label="PT"),
        _bits("sequence number", 16, 16, _uint(data, 2, 2), L),
        _bits("timestamp", 32, 32, _uint(data, 4, 4), L),
        _bits("SSRC", 64, 32, _uint(data, 8, 4), L, f"0x{_uint(data, 8, 4):08x}",
              label="synchronization source (SSRC) identifier"),
    ]
    try:
        packet = RtpPacket.parse(data)   # the project's parser says whether it is well formed
    except ValueError as exc:
        out.kind, out.error = "bad RTP", str(exc)
        if len(data) > 12:
            f.append(_blob("rest", 12, data[12:], L))
        return out
    pos = 12
    for i, csrc in enumerate(packet.csrc):
        f.append(_bits(f"CSRC {i}", pos * 8, 32, csrc, L, f"0x{csrc:08x}",
                       label="contributing source (CSRC) identifier"))
        pos += 4
    if packet.extension is not None:
        profile, ext = packet.extension
        f.append(_bits("extension profile", pos * 8, 16, profile, L, f"0x{profile:04x}",
                       label="defined by profile"))
        f.append(_bits("extension length", pos * 8 + 16, 16, len(ext) // 4, L, f"{len(ext) // 4} words",
                       label="length"))
        pos += 4
        if ext:
            f.append(_blob("header extension", pos, ext, L))
            pos += len(ext)
    end = len(data) - packet.padding
    payload = data[pos:end]
    if packet.payload_type == PT_JPEG or (payload[:3] != b"\xff\xd8\xff" and packet.payload_type >= 96):
        _decode_jpeg(payload, pos, f, out)
    elif payload:
        f.append(_blob("payload", pos, payload, L))
    if packet.padding:
        if packet.padding > 1:
            f.append(_blob("padding", end, data[end:-1], L))
        f.append(_bits("padding count", (len(data) - 1) * 8, 8, packet.padding, L, f"{packet.padding} octets"))
    return out


def _decode_jpeg(payload: bytes, pos: int, f: list[Field], out: Decoded) -> None:
    """RFC 2435 §3.1 headers of an RTP/JPEG payload starting at octet `pos`."""
    L = "RFC 2435"
    if payload[:3] == b"\xff\xd8\xff":
        f.append(_blob("JPEG (whole frame, lab dialect)", pos, payload, L,
                       f"{len(payload)} bytes, starts FF D8 (SOI): the lab's one whole JPEG per packet"))
        return
    try:
        jp = parse_payload(payload)
    except JpegError as exc:
        out.error = f"RFC 2435: {exc.reason}"
        if payload:
            f.append(_blob("payload", pos, payload, "RTP"))
        return
    b = pos * 8
    jtype = payload[4]
    f += [
        _bits("type-specific", b, 8, jp.type_specific, L),
        _bits("fragment offset", b + 8, 24, jp.fragment_offset, L),
        _bits("type", b + 32, 8, jtype, L, f"{jtype} ({'4:2:0' if jtype & 1 else '4:2:2'}"
              f"{', restart markers' if jtype & RESTART_TYPE_FLAG else ''})"),
        _bits("Q", b + 40, 8, jp.q, L, f"{jp.q} ({'tables in-band' if jp.q >= 128 else 'RFC 2435 tables'})"),
        _bits("width", b + 48, 8, payload[6], L, f"{payload[6]} (x8 = {jp.width} px)"),
        _bits("height", b + 56, 8, payload[7], L, f"{payload[7]} (x8 = {jp.height} px)"),
    ]
    at = pos + 8
    if jtype & RESTART_TYPE_FLAG:
        word = _uint(payload, 10, 2)
        f += [
            _bits("restart interval", at * 8, 16, jp.restart_interval, L, f"{jp.restart_interval} MCUs"),
            _bits("F", at * 8 + 16, 1, word >> 15, L),
            _bits("L", at * 8 + 17, 1, word >> 14 & 1, L),
            _bits("restart count", at * 8 + 18, 14, word & 0x3FFF, L,
                  f"0x{word & 0x3FFF:04x}" + (" (not aligned)" if word == 0xFFFF else "")),
        ]
        at += 4
    if jp.fragment_offset == 0 and jp.q >= 128:
        qoff = at - pos
        length = _uint(payload, qoff + 2, 2)
        f += [
            _bits("MBZ", at * 8, 8, payload[qoff], L),
            _bits("precision", at * 8 + 8, 8, jp.qtable_precision, L, f"0x{jp.qtable_precision:02x}"),
            _bits("length", at * 8 + 16, 16, length, L, f"{length} bytes"),
        ]
        at += 4
        for i, table in enumerate(jp.qtables or []):
            f.append(_blob(f"quantization table {i}", at, table, L,
                           f"{len(table)} bytes ({'luma' if i == 0 else 'chroma'}): {bytes(table[:6]).hex(' ')} ..."))
            at += len(table)
    data = payload[at - pos:]
    if data:
        f.append(_blob("JPEG data", at, data, L, f"{len(data)} bytes of entropy-coded scan"
                       + (" (ends FF D9, EOI)" if data[-2:] == b"\xff\xd9" else "")))


# --------------------------------------------------------------------------- RTCP


def _decode_rtcp(data: bytes) -> Decoded:
    out = Decoded("RTCP", size=len(data))
    try:
        parse_compound(data, strict=False)     # the project's checks (RFC 3550 A.2)
    except RtcpError as exc:
        out.error = str(exc)
    kinds = []
    pos = 0
    while pos + 4 <= len(data):
        b0, pt, words = _HEAD.unpack_from(data, pos)
        name = _RTCP_NAMES.get(pt, str(pt))
        kinds.append(name)
        L = f"RTCP {name}"
        end = min(len(data), pos + 4 * (words + 1))
        count = b0 & 0x1F
        count_name = {200: "reception report count", 201: "reception report count",
                      202: "source count", 203: "source count", 204: "subtype"}.get(pt, "count")
        count_label = {200: "RC", 201: "RC", 202: "SC", 203: "SC", 204: "subtype"}.get(pt, "count")
        b = pos * 8
        out.fields += [
            _bits("version", b, 2, b0 >> 6, L, label="V"),
            _bits("padding", b + 2, 1, b0 >> 5 & 1, L, label="P"),
            _bits(count_name, b + 3, 5, count, L, label=count_label),
            _bits("packet type", b + 8, 8, pt, L, f"{pt} ({name})", label="PT"),
            _bits("length", b + 16, 16, words, L, f"{words} ({4 * (words + 1)} bytes)"),
        ]
        body = pos + 4
        if pt in (200, 201):
            _rtcp_report(data, body, end, pt, count, L, out.fields)
        elif pt == 202:
            _rtcp_sdes(data, body, end, count, L, out.fields)
        elif pt == 203:
            at = body
            for i in range(count):
                if at + 4 > end:
                    break
                out.fields.append(_bits(f"SSRC/CSRC {i}", at * 8, 32, _uint(data, at, 4), L,
                                        f"0x{_uint(data, at, 4):08x}", label="SSRC/CSRC"))
                at += 4
            if at < end:
                n = data[at]
                out.fields.append(_bits("reason length", at * 8, 8, n, L, label="length"))
                reason = data[at + 1:at + 1 + n]
                if reason:
                    out.fields.append(_blob("reason for leaving", at + 1, reason, L,
                                            repr(reason.decode("utf-8", "replace"))))
        elif pt == 204 and body + 8 <= end:
            out.fields.append(_bits("SSRC/CSRC", body * 8, 32, _uint(data, body, 4), L, f"0x{_uint(data, body, 4):08x}"))
            out.fields.append(_blob("name", body + 4, data[body + 4:body + 8], L,
                                    repr(data[body + 4:body + 8].decode("ascii", "replace"))))
            if body + 8 < end:
                out.fields.append(_blob("application-dependent data", body + 8, data[body + 8:end], L))
        elif body < end:
            out.fields.append(_blob("body", body, data[body:end], L))
        pos += 4 * (words + 1)
    out.kind = "RTCP " + "+".join(kinds) if kinds else "bad RTCP"
    if not kinds:
        out.error = out.error or f"{len(data)} bytes: shorter than the 4-byte RTCP header"
    return out


def _rtcp_report(data: bytes, at: int, end: int, pt: int, count: int, L: str, fields: list[Field]) -> None:
    if at + 4 > end:
        return
    fields.append(_bits("SSRC of sender", at * 8, 32, _uint(data, at, 4), L, f"0x{_uint(data, at, 4):08x}"))
    at += 4
    if pt == 200 and at + 20 <= end:
        msw, lsw = _uint(data, at, 4), _uint(data, at + 4, 4)
        fields += [
            _bits("NTP timestamp, most significant word", at * 8, 32, msw, L, f"{msw} s since 1900",
                  label="NTP timestamp, msw"),
            _bits("NTP timestamp, least significant word", at * 8 + 32, 32, lsw, L, f"{lsw / 2**32:.6f} s",
                  label="NTP timestamp, lsw"),
            _bits("RTP timestamp", at * 8 + 64, 32, _uint(data, at + 8, 4), L),
            _bits("sender's packet count", at * 8 + 96, 32, _uint(data, at + 12, 4), L),
            _bits("sender's octet count", at * 8 + 128, 32, _uint(data, at + 16, 4), L),
        ]
        at += 20
    for i in range(count):
        if at + 24 > end:
            break
        b = at * 8
        lost = _uint(data, at + 5, 3)
        lost = lost - (1 << 24) if lost & 0x800000 else lost
        jitter = _uint(data, at + 12, 4)
        dlsr = _uint(data, at + 20, 4)
        fields += [
            _bits(f"SSRC_{i + 1} (source {i + 1})", b, 32, _uint(data, at, 4), L, f"0x{_uint(data, at, 4):08x}",
                  label=f"SSRC_{i + 1} (SSRC of source {i + 1})"),
            _bits("fraction lost", b + 32, 8, data[at + 4], L, f"{data[at + 4]}/256 = {data[at + 4] / 256:.1%}"),
            _bits("cumulative number of packets lost", b + 40, 24, lost, L),
            _bits("extended highest sequence number received", b + 64, 32, _uint(data, at + 8, 4), L),
            _bits("interarrival jitter", b + 96, 32, jitter, L, f"{jitter} (timestamp units)"),
            _bits("last SR (LSR)", b + 128, 32, _uint(data, at + 16, 4), L, f"0x{_uint(data, at + 16, 4):08x}"),
            _bits("delay since last SR (DLSR)", b + 160, 32, dlsr, L, f"{dlsr} ({dlsr / 65536 * 1000:.1f} ms)"),
        ]
        at += 24
    if at < end:
        fields.append(_blob("profile-specific extensions", at, data[at:end], L))


def _rtcp_sdes(data: bytes, at: int, end: int, count: int, L: str, fields: list[Field]) -> None:
    for c in range(count):
        if at + 4 > end:
            return
        fields.append(_bits(f"SSRC/CSRC_{c + 1}", at * 8, 32, _uint(data, at, 4), L,
                            f"0x{_uint(data, at, 4):08x}", label=f"SSRC/CSRC_{c + 1}"))
        at += 4
        while at < end:
            kind = data[at]
            if kind == 0:
                pad_end = (at + 4) & ~3   # END plus null octets to the next 32-bit boundary
                fields.append(Field("END + padding to a word", at * 8, (min(pad_end, end) - at) * 8,
                                    bytes(data[at:min(pad_end, end)]), "0 (END)", L, "END"))
                at = pad_end
                break
            if at + 2 > end:
                return
            n = data[at + 1]
            item = _SDES_NAMES.get(kind, str(kind))
            fields.append(_bits(f"{item} type", at * 8, 8, kind, L, f"{kind} ({item})", label=item))
            fields.append(_bits(f"{item} length", at * 8 + 8, 8, n, L, label="length"))
            text = data[at + 2:at + 2 + n]
            if text:
                fields.append(_blob(f"{item} text", at + 2, text, L, repr(text.decode("utf-8", "replace"))))
            at += 2 + n


# --------------------------------------------------------------------------- the RFC diagram


RULER = [" 0                   1                   2                   3",
         " 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1"]
BORDER = "+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+"


@dataclass(frozen=True)
class Span:
    """Where a field is drawn: line, [col, end) columns, index into the fields list."""

    line: int
    col: int
    end: int
    field: int


def bit_string(data: bytes, start: int, nbits: int) -> str:
    """Bits [start, start+nbits) of `data` as '0'/'1' characters ('?' past the end)."""
    first, last = start // 8, (start + nbits + 7) // 8
    chunk = data[first:last]
    if len(chunk) < last - first:
        return "?" * nbits
    shift = (last - first) * 8 - (start - first * 8) - nbits
    return format(int.from_bytes(chunk, "big") >> shift & ((1 << nbits) - 1), f"0{nbits}b")


def _fit(text: str, width: int) -> str:
    return text[:width].center(width)


def diagram(data: bytes, fields: list[Field], bits: bool = True, long_rows: int = 2) -> tuple[list[str], list[Span]]:
    """The RFC 3550 §5.1 style drawing of `fields`: 32 bits per row, 2 columns per bit.

    Each row shows the fields' names (with their values where they fit) and, when `bits`,
    the bits themselves under them.  A field longer than `long_rows` rows (tables, JPEG data,
    SDES text) is drawn as one row saying how long it is.  Returns the lines and the spans
    of every field segment, for a view that highlights a field.
    """
    lines = list(RULER) + [BORDER]
    spans: list[Span] = []
    rows: list[list[tuple[int, int, int, bool]]] = []  # per row: (field index, start bit, nbits, collapsed)
    row_of: dict[int, int] = {}

    def add(index: int, start: int, nbits: int, collapsed: bool = False) -> None:
        r = start // WORD
        if collapsed:
            rows.append([(index, start, nbits, True)])
            return
        if r not in row_of:
            row_of[r] = len(rows)
            rows.append([])
        rows[row_of[r]].append((index, start, nbits, False))

    for index, f in enumerate(fields):
        start, end = f.start, f.end
        if f.length > long_rows * WORD:
            head_end = min(end, -(-start // WORD) * WORD)
            if head_end > start:
                add(index, start, head_end - start)
            tail_start = max(head_end, end // WORD * WORD)
            if tail_start > head_end:
                add(index, head_end, tail_start - head_end, collapsed=True)
            if end > tail_start:
                add(index, tail_start, end - tail_start)
            continue
        while start < end:
            stop = min(end, (start // WORD + 1) * WORD)
            add(index, start, stop - start)
            start = stop
    for row in rows:
        label, under = "|", "|"
        for index, start, nbits, collapsed in row:
            f = fields[index]
            col = len(label)
            if collapsed:
                width = 2 * WORD - 1
                text = f"{f.short}: {f.length // 8} bytes" if f.length >= WORD * long_rows else f.short
                label += _fit(text, width) + "|"
                under += _fit(": " + (data[start // 8:start // 8 + 8].hex(" ") + " ..."), width) + "|"
            else:
                width = 2 * nbits - 1
                full = f"{f.short}={f.text}" if not isinstance(f.value, bytes) else f.short
                short_value = f"{f.short}={f.value}" if not isinstance(f.value, bytes) else f.short
                text = next((t for t in (full, short_value, f.short) if len(t) <= width), f.short)
                label += _fit(text, width) + "|"
                under += " ".join(bit_string(data, start, nbits)) + "|"
            line = len(lines)
            spans.append(Span(line, col, col + width, index))
            if bits:
                spans.append(Span(line + 1, col, col + width, index))
        lines.append(label)
        if bits:
            lines.append(under)
        lines.append(BORDER[:len(label)])
    return lines, spans


# --------------------------------------------------------------------------- text for --dump


def format_packet(number: int, t: float, data: bytes, rtcp: bool, sent: bool = False, bits: bool = False) -> str:
    """One packet as text: a summary line, every field, and optionally the diagram."""
    d = decode(data, rtcp)
    s = summarize(data, rtcp)
    head = f"#{number} {t:.6f} {'out' if sent else 'in '} {d.kind} {len(data)} bytes"
    if s.seq is not None:
        head += f" seq={s.seq} ts={s.timestamp} M={int(bool(s.marker))}"
    out = [head]
    if d.error:
        out.append(f"  error: {d.error}")
    for f in d.fields:
        out.append(f"  {f.layer:<10} {f.name:<40} bits {f.start:>5}+{f.length:<5} {f.text}")
    if bits:
        out.extend("  " + line for line in diagram(data, d.fields)[0])
    return "\n".join(out)


# --------------------------------------------------------------------------- the ring


class PacketRing:
    """The last `size` datagrams (number, arrival, rtcp, bytes, sent); `add` is the engine's tap.

    Nothing is decoded here: adding costs a tuple and a deque append under a lock.
    """

    def __init__(self, size: int = RING_SIZE) -> None:
        self.size = size
        self._ring: deque[tuple[int, float, bool, bytes, bool]] = deque(maxlen=size)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.total = 0
        self.first_time: float | None = None    # arrival of packet 1 (the list's time 0)

    def add(self, t: float, rtcp: bool, data: bytes, sent: bool = False) -> None:
        with self._lock:
            self.total = next(self._numbers)
            if self.total == 1:
                self.first_time = t
            self._ring.append((self.total, t, rtcp, bytes(data), sent))

    def since(self, number: int) -> list[tuple[int, float, bool, bytes, bool]]:
        """Entries numbered after `number` still in the ring, oldest first."""
        with self._lock:
            if not self._ring or self._ring[-1][0] <= number:
                return []
            newer = self.total - number
            if newer >= len(self._ring):
                return list(self._ring)
            return list(itertools.islice(self._ring, len(self._ring) - newer, None))

    def __len__(self) -> int:
        return len(self._ring)


class DumpPrinter:
    """Prints every packet of a ring to `out` from its own thread (the `--dump` option)."""

    def __init__(self, ring: PacketRing, out: TextIO, bits: bool = False, interval: float = 0.05) -> None:
        self.ring, self.out, self.bits, self.interval = ring, out, bits, interval
        self.printed = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="packet-dump", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        entries = self.ring.since(self.printed)
        if entries and entries[0][0] != self.printed + 1:
            self.skipped += entries[0][0] - self.printed - 1
            self.out.write(f"# {entries[0][0] - self.printed - 1} packets left the ring before they were printed\n")
        for number, t, rtcp, data, sent in entries:
            self.out.write(format_packet(number, t, data, rtcp, sent, self.bits) + "\n")
            self.printed = number
        if entries:
            self.out.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._drain()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._drain()


def decode_all(entries: Iterable[bytes], rtcp: bool | None = None) -> list[Decoded]:
    return [decode(e, rtcp) for e in entries]
