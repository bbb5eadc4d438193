"""Session descriptions (RFC 4566 subset) with the RTSP attributes of RFC 2326 Appendix C.

Parsing is tolerant (CRLF or LF, blank lines, unknown line types and attributes kept);
serializing is canonical (CRLF, the RFC 4566 section 5 line order).  :func:`movie_sdp`
writes the description our server publishes for one RTP/JPEG (RFC 2435) video track.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from RtspHeaders import NptRange, format_range, parse_range
from RtpPacket import JPEG_CLOCK_RATE, PT_JPEG
from RtspMessage import RtspError

log = logging.getLogger(__name__)

__all__ = ["SdpError", "MediaDescription", "SessionDescription", "parse_sdp", "movie_sdp",
           "STATIC_PAYLOAD_TYPES"]


class SdpError(ValueError):
    """A session description we cannot read."""


# RFC 3551 section 6: static payload types a description may use without a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 5: ("DVI4", 8000),
    6: ("DVI4", 16000), 7: ("LPC", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000),
    10: ("L16", 44100), 11: ("L16", 44100), 12: ("QCELP", 8000), 13: ("CN", 8000),
    14: ("MPA", 90000), 15: ("G728", 8000), 16: ("DVI4", 11025), 17: ("DVI4", 22050),
    18: ("G729", 8000), 25: ("CelB", 90000), 26: ("JPEG", 90000), 28: ("nv", 90000),
    31: ("H261", 90000), 32: ("MPV", 90000), 33: ("MP2T", 90000), 34: ("H263", 90000),
}

_LINE_RE = re.compile(r"^([a-z])=(.*)$")
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "icbka"


class _Attributes:
    """Shared a= helpers for session and media level."""

    attributes: list[tuple[str, str | None]]

    def attribute(self, name: str) -> str | None:
        """The value of the first a=name[:value] ('' for a flag attribute), or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def attribute_values(self, name: str) -> list[str]:
        return ["" if v is None else v for k, v in self.attributes if k == name]

    @property
    def control(self) -> str | None:
        """a=control (RFC 2326 C.1.1), or None."""
        return self.attribute("control")

    @property
    def range(self) -> NptRange | None:
        """a=range as an NptRange (RFC 2326 C.1.5), or None if absent or not npt."""
        value = self.attribute("range")
        if value is None:
            return None
        try:
            return parse_range(value)
        except RtspError:
            log.debug("ignoring unusable a=range:%s", value)
            return None


def _connection_address(connection: str | None) -> str | None:
    """'IN IP4 224.2.1.1/127' -> '224.2.1.1'."""
    if not connection:
        return None
    parts = connection.split()
    if len(parts) < 3:
        return None
    return parts[2].split("/")[0]


@dataclass
class MediaDescription(_Attributes):
    """One m= section (RFC 4566 5.14) and its i/c/b/k/a lines."""

    media: str = "video"
    port: int = 0
    proto: str = "RTP/AVP"
    formats: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    connection: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    information: str | None = None
    key: str | None = None
    port_count: int | None = None
    other: list[tuple[str, str]] = field(default_factory=list)  # unknown line types, kept

    @property
    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type -> (encoding, clock rate) from a=rtpmap, plus static RFC 3551 types."""
        result: dict[int, tuple[str, int]] = {}
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) in STATIC_PAYLOAD_TYPES:
                result[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        for value in self.attribute_values("rtpmap"):
            m = re.match(r"^\s*(\d+)\s+([^/\s]+)/(\d+)", value)
            if m:
                result[int(m.group(1))] = (m.group(2), int(m.group(3)))
            else:
                log.debug("ignoring malformed a=rtpmap:%s", value)
        return result

    @property
    def fmtp(self) -> dict[int, str]:
        result = {}
        for value in self.attribute_values("fmtp"):
            pt, _, params = value.strip().partition(" ")
            if pt.isdigit():
                result[int(pt)] = params.strip()
        return result

    @property
    def framerate(self) -> float | None:
        """a=framerate (RFC 4566 6) as a float, or None."""
        value = self.attribute("framerate")
        if value is None:
            return None
        try:
            rate = float(value.strip().replace(",", "."))
        except ValueError:
            return None
        return rate if 0 < rate < 10000 else None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """a=x-dimensions:W,H (a RealNetworks/live555 convention), or None."""
        value = self.attribute("x-dimensions")
        m = re.match(r"^\s*(\d+)\s*,\s*(\d+)\s*$", value or "")
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def connection_address(self) -> str | None:
        return _connection_address(self.connection)

    def _lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"{t}={v}" for t, v in self.other]
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return lines


@dataclass
class SessionDescription(_Attributes):
    """A whole description (RFC 4566 5): session-level lines, then media sections."""

    version: int = 0
    origin: str = "- 0 0 IN IP4 127.0.0.1"
    name: str = " "
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])  # t= and r=
    zone: str | None = None
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)  # unknown line types, kept

    @property
    def connection_address(self) -> str | None:
        """Session-level c= address (no TTL/count suffix)."""
        return _connection_address(self.connection)

    def media_address(self, media: MediaDescription) -> str | None:
        """Where ``media`` is sent: its own c= line, else the session's (RFC 4566 5.7)."""
        return media.connection_address or self.connection_address

    @property
    def video(self) -> MediaDescription | None:
        """The first m=video section, or None."""
        return next((m for m in self.media if m.media == "video"), None)

    def serialize(self) -> str:
        """Canonical text: CRLF line ends, lines in the order RFC 4566 section 5 gives."""
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.name}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [f"e={e}" for e in self.emails]
        lines += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"{t}={v}" for t, v in self.times]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"{t}={v}" for t, v in self.other]
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for media in self.media:
            lines += media._lines()
        for line in lines:
            if "\r" in line or "\n" in line:
                raise SdpError(f"line break inside SDP line {line[:60]!r}")
        return "\r\n".join(lines) + "\r\n"

    def __str__(self) -> str:
        return self.serialize()


def _attribute(value: str) -> tuple[str, str | None]:
    name, sep, rest = value.partition(":")
    return (name, rest if sep else None)


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse a description (RFC 4566 5).  Raises :class:`SdpError` when it is not SDP."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    lines = [ln.rstrip(" \t\r") for ln in text.replace("\r\n", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise SdpError("empty session description")
    if not lines[0].startswith("v="):
        raise SdpError(f"session description must start with v=, not {lines[0][:40]!r}")
    sdp = SessionDescription(times=[])
    media: MediaDescription | None = None
    for number, line in enumerate(lines, 1):
        m = _LINE_RE.match(line)
        if not m:
            raise SdpError(f"line {number} is not type=value: {line[:60]!r}")
        kind, value = m.groups()
        if kind == "m":
            media = _parse_media(value, number)
            sdp.media.append(media)
        elif media is not None:
            if kind == "a":
                media.attributes.append(_attribute(value))
            elif kind == "c":
                media.connection = value
            elif kind == "b":
                media.bandwidths.append(value)
            elif kind == "i":
                media.information = value
            elif kind == "k":
                media.key = value
            else:
                media.other.append((kind, value))
        elif kind == "v":
            if value.strip() != "0":
                raise SdpError(f"unsupported SDP version v={value[:20]}")
            sdp.version = 0
        elif kind == "o":
            sdp.origin = value
        elif kind == "s":
            sdp.name = value
        elif kind == "i":
            sdp.information = value
        elif kind == "u":
            sdp.uri = value
        elif kind == "e":
            sdp.emails.append(value)
        elif kind == "p":
            sdp.phones.append(value)
        elif kind == "c":
            sdp.connection = value
        elif kind == "b":
            sdp.bandwidths.append(value)
        elif kind in "tr":
            sdp.times.append((kind, value))
        elif kind == "z":
            sdp.zone = value
        elif kind == "k":
            sdp.key = value
        elif kind == "a":
            sdp.attributes.append(_attribute(value))
        else:
            sdp.other.append((kind, value))
    return sdp


def _parse_media(value: str, number: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"line {number}: m= needs media, port and proto: {value[:60]!r}")
    port_text, _, count_text = parts[1].partition("/")
    if not port_text.isdigit() or int(port_text) > 65535 or (
            count_text and not count_text.isdigit()):
        raise SdpError(f"line {number}: bad m= port {parts[1]!r}")
    return MediaDescription(media=parts[0], port=int(port_text), proto=parts[2],
                            formats=parts[3:],
                            port_count=int(count_text) if count_text else None)


def _fps_text(fps: float) -> str:
    text = f"{fps:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def movie_sdp(name: str, duration: float | None, fps: float, server_addr: str,
              session_id: int | str, version: int = 1, track_control: str = "trackID=0",
              width: int | None = None, height: int | None = None,
              bitrate_kbps: int | None = None, tool: str = "RtspServer (RFC 2326/2435)",
              live: bool = False) -> str:
    """The description of one stored movie as RTP/JPEG (RFC 2326 C, RFC 2435, RFC 4566).

    Session-level a=control:* makes the aggregate URL the Content-Base; the track is
    ``track_control`` below it.  a=range gives the duration (npt, 3 decimals), a=framerate
    the frame rate (GStreamer uses it), a=x-dimensions the size (some players use it).
    ``server_addr`` may be IPv4 or IPv6 (o= and c= then say IP6).  A ``live`` stream has no
    duration: a=range:npt=now- (RFC 2326 C.1.5), which players take as "no seeking".
    """
    addr = server_addr.strip("[]").split("%")[0]
    ip6 = ":" in addr
    family = "IP6" if ip6 else "IP4"
    if not str(session_id).isdigit():
        raise SdpError(f"session id must be digits, not {session_id!r}")
    for text in (name, tool, track_control, addr):
        if not text or "\r" in text or "\n" in text:
            raise SdpError(f"empty value or line break in SDP field {text!r}")
    if fps <= 0:
        raise SdpError(f"frame rate must be positive, not {fps}")
    rng = NptRange(None, None) if live else NptRange(0.0, duration)
    sdp = SessionDescription(
        origin=f"- {session_id} {int(version)} IN {family} {addr}",
        name=name,
        attributes=[("tool", tool), ("control", "*"),
                    ("range", format_range(rng).replace("npt=0.000-", "npt=0-"))],
    )
    media = MediaDescription(media="video", port=0, proto="RTP/AVP", formats=[str(PT_JPEG)],
                             connection=f"IN {family} {'::' if ip6 else '0.0.0.0'}")
    if bitrate_kbps:
        media.bandwidths.append(f"AS:{int(bitrate_kbps)}")
    media.attributes += [("rtpmap", f"{PT_JPEG} JPEG/{JPEG_CLOCK_RATE}"), ("framerate", _fps_text(fps)),
                         ("control", track_control)]
    if width and height:
        media.attributes.append(("x-dimensions", f"{int(width)},{int(height)}"))
    sdp.media.append(media)
    return sdp.serialize()


def lab_sdp(name: str, duration: float | None, fps: float, server_addr: str, session_id: int | str,
            max_bytes: int = 180) -> str:
    """A minimal description for a lab-dialect client, at most ``max_bytes`` octets.

    The hand-out client reads a reply with one ``recv(256)``, so the SDP must fit beside the
    status line and headers: v=, o=, s=, t=, m= (RFC 4566 5 requires them), then as many
    of a=rtpmap, a=range and a=framerate as fit, LF line ends like the rest of the reply.
    A long movie name is shortened in s= (free text) rather than losing a required line.
    """
    addr = server_addr.strip("[]").split("%")[0]
    family = "IP6" if ":" in addr else "IP4"
    if not str(session_id).isdigit():
        raise SdpError(f"session id must be digits, not {session_id!r}")
    if "\r" in name or "\n" in name:
        raise SdpError(f"line break in the session name {name!r}")
    origin = f"o=- {session_id} 1 IN {family} {addr}"
    required = ["v=0", origin, "", "t=0 0", "m=video 0 RTP/AVP 26"]
    room = max_bytes - sum(len(line) + 1 for line in required) - len("s=") - 1
    if room < 1:
        raise SdpError(f"no SDP fits in {max_bytes} bytes")
    title = name if len(name.encode()) <= room else name.encode()[:max(room - 3, 1)].decode("utf-8", "ignore") + "..."
    required[2] = "s=" + title
    text = "".join(line + "\n" for line in required)
    optional = [f"a=rtpmap:{PT_JPEG} JPEG/{JPEG_CLOCK_RATE}", f"a=framerate:{_fps_text(fps)}"]
    if duration is not None:
        optional.insert(1, "a=range:" + format_range(NptRange(0.0, duration)).replace("npt=0.000-", "npt=0-"))
    for line in optional:
        if len(text.encode()) + len(line) + 1 <= max_bytes:
            text += line + "\n"
    return text
