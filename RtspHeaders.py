"""RTSP header values: parse/format pairs, tolerant in, canonical out (RFC 2326 section 12).

Transport (12.39), Session (12.37), Range with NPT (12.29, 3.6), RTP-Info (12.33),
Public (12.28), and control-URL resolution (Appendix C.1.1).  Malformed values raise
:class:`RtspMessage.RtspError` carrying the status code a server should answer with.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from RtspMessage import BadRequest, InvalidRange, RtspError, Status, UnsupportedTransport

log = logging.getLogger(__name__)

__all__ = [
    "Transport", "parse_transport", "format_transport",
    "parse_session", "format_session",
    "NptRange", "parse_range", "format_range",
    "RtpInfo", "parse_rtp_info", "format_rtp_info",
    "parse_public", "format_public", "join_url", "split_url",
    "split_quoted", "split_param", "quote_string", "unquote_string",
]

# --------------------------------------------------------------------------- Transport

_PORT_RE = re.compile(r"^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$")


# --------------------------------------------------------------------------- key=value tokens
# The one tokenizer every header shares (Transport, Session, and RtspAuth's auth-params).


def split_quoted(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside quoted-strings ("...", with backslash escapes:
    RFC 2616 §2.2, which RFC 2326 §15 borrows). Empty pieces are kept."""
    parts: list[str] = []
    start, quoted, i, n = 0, False, 0, len(text)
    while i < n:
        ch = text[i]
        if quoted and ch == "\\":
            i += 2  # a quoted-pair: the next character is literal
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def unquote_string(value: str) -> str:
    """'"a \\"b\\""' -> 'a "b"': the content of a quoted-string; anything else unchanged."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def quote_string(value: str) -> str:
    """The quoted-string for ``value`` (the inverse of :func:`unquote_string`)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_param(item: str) -> tuple[str, str | None]:
    """'Name = "v"' -> ('name', 'v'); a bare 'unicast' -> ('unicast', None)."""
    key, sep, value = item.partition("=")
    return key.strip().lower(), unquote_string(value.strip()).strip() if sep else None


def _port_pair(name: str, value: str | None, low: int = 1, high: int = 65535
               ) -> tuple[int, int]:
    """'a-b' -> (a, b); a single 'a' -> (a, a+1) (RTCP on the next port, RFC 3550 11)."""
    m = _PORT_RE.match(value or "")
    if not m:
        raise BadRequest(f"Transport {name}={value!r} is not a port or port range")
    first = int(m.group(1))
    second = int(m.group(2)) if m.group(2) is not None else first + 1
    if not (low <= first <= high and low <= second <= high) or second < first:
        raise BadRequest(f"Transport {name}={value!r} is out of range")
    return first, second


@dataclass
class Transport:
    """One transport specification (RFC 2326 section 12.39).

    ``lab`` marks the course lab's non-standard "RTP/UDP; client_port= N" form (one
    port; its reply is the lab dialect and whole JPEG frames per packet).
    """

    protocol: str = "RTP"
    profile: str = "AVP"
    lower: str = "UDP"
    unicast: bool = True
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str | None = None
    destination: str | None = None
    source: str | None = None
    ttl: int | None = None
    port: tuple[int, int] | None = None  # multicast port pair
    lab: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Transport":
        """Parse one transport-spec; 461 for a transport we cannot carry, 400 for garbage."""
        fields = [f.strip() for f in split_quoted(spec, ";")]
        if spec.count('"') % 2:
            raise BadRequest(f"unbalanced quotes in transport {spec[:60]!r}")
        # The protocol comes first per RFC 2326, but some devices put it later: take the
        # first field that looks like one ("A/B[/C]", no "=").
        index = next((i for i, f in enumerate(fields) if "/" in f and "=" not in f), 0)
        head = fields[index].upper()
        if not head:
            raise BadRequest(f"empty transport specification {spec!r}")
        fields = [fields[index]] + fields[:index] + fields[index + 1:]
        t = cls()
        parts = [p.strip() for p in head.split("/")]
        if parts == ["RTP", "UDP"]:
            t.lab = True  # the lab's "RTP/UDP": not RFC 2326, but we know what it means
        elif len(parts) in (2, 3) and all(parts):
            t.protocol, t.profile = parts[0], parts[1]
            t.lower = parts[2] if len(parts) == 3 else "UDP"
            if t.protocol != "RTP" or t.profile != "AVP" or t.lower not in ("UDP", "TCP"):
                raise UnsupportedTransport(f"transport {fields[0]!r} is not supported")
        else:
            raise UnsupportedTransport(f"transport {fields[0]!r} is not supported")
        for field_ in fields[1:]:
            if not field_:
                continue
            key, value = split_param(field_)
            if key == "unicast":
                t.unicast = True
            elif key == "multicast":
                t.unicast = False
            elif key == "client_port":
                t.client_port = _port_pair(key, value)
            elif key == "server_port":
                t.server_port = _port_pair(key, value)
            elif key == "port":
                t.port = _port_pair(key, value)
            elif key == "interleaved":
                t.interleaved = _port_pair(key, value, 0, 255)
            elif key == "ssrc":
                # RFC says 8 hex digits; be lenient with shorter ones, drop nonsense
                if value and re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
                    t.ssrc = int(value, 16)
                else:
                    log.debug("ignoring malformed ssrc %r", value)
            elif key == "mode":
                t.mode = (value or "").upper() or None
            elif key == "destination":
                t.destination = value or None
            elif key == "source":
                t.source = value or None
            elif key == "ttl":
                if not value or not value.isdigit() or int(value) > 255:
                    raise BadRequest(f"Transport ttl={value!r} is not 0..255")
                t.ttl = int(value)
            # append, layers and unknown parameters are ignored (RFC 2326 12.39)
        return t

    @classmethod
    def parse_list(cls, value: str) -> list["Transport"]:
        """Parse the comma-separated alternatives of a Transport header, in preference order.

        Alternatives we cannot carry are dropped; if none is left, raise 461 when any was
        a well-formed but unsupported transport, 400 when all were malformed.
        """
        result: list[Transport] = []
        errors: list[RtspError] = []
        for spec in split_quoted(value or "", ","):
            if not spec.strip():
                continue
            try:
                result.append(cls.parse(spec))
            except RtspError as exc:
                errors.append(exc)
        if result:
            return result
        if not errors:
            raise BadRequest("empty Transport header")
        for error in errors:
            if error.status == Status.UNSUPPORTED_TRANSPORT:
                raise error
        raise errors[0]

    def format(self) -> str:
        """Canonical form, e.g. 'RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001'."""
        if self.lab:
            # the lab's own spelling; its clients never parse it back anyway
            if self.client_port is None:
                return "RTP/UDP"
            return f"RTP/UDP; client_port= {self.client_port[0]}"
        head = f"{self.protocol}/{self.profile}"
        if self.lower != "UDP":
            head += f"/{self.lower}"
        out = [head, "unicast" if self.unicast else "multicast"]
        if self.destination is not None:
            out.append(f"destination={self.destination}")
        if self.source is not None:
            out.append(f"source={self.source}")
        if self.interleaved is not None:
            out.append("interleaved=%d-%d" % self.interleaved)
        if self.ttl is not None:
            out.append(f"ttl={self.ttl}")
        if self.port is not None:
            out.append("port=%d-%d" % self.port)
        if self.client_port is not None:
            out.append("client_port=%d-%d" % self.client_port)
        if self.server_port is not None:
            out.append("server_port=%d-%d" % self.server_port)
        if self.ssrc is not None:
            out.append(f"ssrc={self.ssrc & 0xFFFFFFFF:08X}")
        if self.mode is not None:
            out.append(f'mode="{self.mode}"')
        return ";".join(out)

    def __str__(self) -> str:
        return self.format()


def parse_transport(value: str) -> list[Transport]:
    """Alias of :meth:`Transport.parse_list`."""
    return Transport.parse_list(value)


def format_transport(transports: Transport | list[Transport]) -> str:
    if isinstance(transports, Transport):
        return transports.format()
    return ",".join(t.format() for t in transports)


# --------------------------------------------------------------------------- Session

_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9$\-_.+:/=~!*'()@]+$")


def parse_session(value: str) -> tuple[str, int | None]:
    """'ID;timeout=60' -> ('ID', 60) (RFC 2326 section 12.37); 400 when there is no id."""
    if value is None:
        raise BadRequest("missing Session header")
    parts = split_quoted(value, ";")
    session_id = parts[0].strip()
    if not session_id or not _SESSION_ID_RE.match(session_id):
        raise BadRequest(f"malformed Session header {value[:60]!r}")
    timeout = None
    for part in parts[1:]:
        key, val = split_param(part)
        if key == "timeout":
            val = val or ""
            if val.isdigit():
                timeout = int(val)
            else:
                log.debug("ignoring malformed session timeout %r", val)
    return session_id, timeout


def format_session(session_id: str | int, timeout: int | None = None) -> str:
    text = str(session_id)
    if not text or not _SESSION_ID_RE.match(text):
        raise ValueError(f"invalid session id {text!r}")
    return text if timeout is None else f"{text};timeout={int(timeout)}"


# --------------------------------------------------------------------------- Range

_NPT_TIME = r"(?:now|\d+:\d{1,2}:\d{1,2}(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)"
_NPT_RANGE_RE = re.compile(rf"^npt\s*=\s*({_NPT_TIME})?\s*-\s*({_NPT_TIME})?$", re.IGNORECASE)


@dataclass
class NptRange:
    """A normal-play-time range in seconds (RFC 2326 3.6); start None = "now", end None = open."""

    start: float | None = 0.0
    end: float | None = None


def _npt_seconds(text: str | None) -> float | None:
    if text is None or text.lower() == "now":
        return None
    if ":" in text:
        hh, mm, ss = text.split(":")
        if int(mm) > 59 or float(ss) >= 60:
            raise InvalidRange(f"npt time {text!r} has minutes or seconds over 59")
        return int(hh) * 3600 + int(mm) * 60 + float(ss)
    return float(text)


def parse_range(value: str) -> NptRange:
    """Parse 'npt=0.000-', 'npt=10-20', 'npt=now-', 'npt=1:02:03.5-' (RFC 2326 12.29).

    smpte and clock ranges, and anything malformed, raise 457 Invalid Range.  A ';time='
    parameter (scheduled start) is ignored.
    """
    if value is None:
        raise InvalidRange("missing Range")
    text = value.split(";", 1)[0].strip()
    lowered = text.lower()
    if lowered.startswith(("smpte", "clock")):
        raise InvalidRange(f"unsupported range unit in {value[:60]!r}; only npt is supported")
    m = _NPT_RANGE_RE.match(text)
    if not m or (m.group(1) is None and m.group(2) is None):
        raise InvalidRange(f"malformed Range {value[:60]!r}")
    start_text, end_text = m.group(1), m.group(2)
    if end_text is not None and end_text.lower() == "now":
        raise InvalidRange(f"Range end cannot be 'now': {value[:60]!r}")
    start = _npt_seconds(start_text) if start_text is not None else 0.0  # "-20" starts at 0
    end = _npt_seconds(end_text)
    if start is not None and end is not None and end < start:
        raise InvalidRange(f"Range ends before it starts: {value[:60]!r}")
    return NptRange(start, end)


def format_range(rng: NptRange) -> str:
    """'npt=1.500-25.000', 'npt=now-', 'npt=0.000-' (canonical, milliseconds)."""
    start = "now" if rng.start is None else f"{rng.start:.3f}"
    end = "" if rng.end is None else f"{rng.end:.3f}"
    return f"npt={start}-{end}"


# --------------------------------------------------------------------------- RTP-Info


@dataclass
class RtpInfo:
    """One stream of an RTP-Info header (RFC 2326 12.33)."""

    url: str
    seq: int | None = None
    rtptime: int | None = None


_RTP_INFO_SPLIT_RE = re.compile(r",\s*(?=url\s*=)", re.IGNORECASE)
_RTP_INFO_PARAM_RE = re.compile(r"^\s*(seq|rtptime|ssrc)\s*=\s*(.*?)\s*$", re.IGNORECASE)


def parse_rtp_info(value: str) -> list[RtpInfo]:
    """'url=...;seq=N;rtptime=T[,url=...]' -> list; URLs may contain ';' or ','."""
    result = []
    for stream in _RTP_INFO_SPLIT_RE.split((value or "").strip()):
        if not stream.strip():
            continue
        parts = stream.split(";")
        key, sep, url = parts[0].partition("=")
        if key.strip().lower() != "url" or not sep or not url.strip():
            raise BadRequest(f"RTP-Info stream without url: {stream[:60]!r}")
        info = RtpInfo(url.strip().strip('"'))
        for part in parts[1:]:
            m = _RTP_INFO_PARAM_RE.match(part)
            if not m:
                if info.seq is None and info.rtptime is None:
                    info.url += ";" + part  # a ';' that belonged to the URL
                continue
            name, val = m.group(1).lower(), m.group(2)
            if name == "ssrc":
                continue
            if not val.isdigit():
                raise BadRequest(f"RTP-Info {name}={val!r} is not a number")
            number = int(val)
            limit = 0xFFFF if name == "seq" else 0xFFFFFFFF
            if number > limit:
                raise BadRequest(f"RTP-Info {name}={val} is out of range")
            setattr(info, name, number)
        result.append(info)
    if not result:
        raise BadRequest("empty RTP-Info")
    return result


def format_rtp_info(infos: list[RtpInfo] | RtpInfo) -> str:
    if isinstance(infos, RtpInfo):
        infos = [infos]
    out = []
    for info in infos:
        text = f"url={info.url}"
        if info.seq is not None:
            text += f";seq={info.seq}"
        if info.rtptime is not None:
            text += f";rtptime={info.rtptime}"
        out.append(text)
    return ",".join(out)


# --------------------------------------------------------------------------- Public, URLs


def parse_public(value: str) -> list[str]:
    """'OPTIONS, describe,SETUP' -> ['OPTIONS', 'DESCRIBE', 'SETUP'] (RFC 2326 12.28).

    Upper-cased: method names are case-sensitive (§6.1) and all upper case, so a server that
    lists them in lower case can only have meant those."""
    return [m.strip().upper() for m in (value or "").split(",") if m.strip()]


def format_public(methods: Iterable[object]) -> str:
    """['OPTIONS', Method.SETUP] -> 'OPTIONS, SETUP' (RFC 2326 12.28)."""
    return ", ".join(str(m) for m in methods)


_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def join_url(base: str, control: str | None) -> str:
    """Resolve an SDP a=control against the base URL (RFC 2326 C.1.1) -- the one place
    control URLs are built, for the session-level (aggregate) and the media-level (SETUP) one.

    The base is, in this order, Content-Base, Content-Location, the request URL (C.1.1).
    Media-level controls resolve against that base too, never against the session-level
    control (C.1.1 and the C.3 example: Content-Base rtsp://example.com/movie/, session "*",
    media trackID=1 -> rtsp://example.com/movie/trackID=1). With base rtsp://h/movie:

    | session a=control   | media a=control | aggregate URL        | SETUP URL            |
    |---------------------|-----------------|----------------------|----------------------|
    | * (or none)         | t1              | rtsp://h/movie       | rtsp://h/movie/t1    |
    | rtsp://h:1/x/       | t1              | rtsp://h:1/x/        | rtsp://h/movie/t1    |
    | stream              | t1              | rtsp://h/movie/stream| rtsp://h/movie/t1    |
    | *                   | rtsp://h2/abs   | rtsp://h/movie       | rtsp://h2/abs        |
    | *                   | /abs/t1         | rtsp://h/movie       | rtsp://h/abs/t1      |

    An absolute control URL is used as is; "*" (or none) is the base itself (C.1.1: "an
    empty embedded URL"); a relative one is appended below the base, adding a '/' when the
    base lacks it -- what ffmpeg, GStreamer and live555 do (strict RFC 1808 resolution would
    drop the base's last path segment, which no server expects); one starting with '/'
    replaces the path. (ffmpeg resolves media controls against an absolute session-level
    control, as MS-RTSP asks; RFC 2326 does not, and neither do we.)
    """
    control = (control or "").strip()
    if not control or control == "*":
        return base
    if _SCHEME_RE.match(control):
        return control
    if control.startswith("/"):
        parts = urlsplit(base)
        return f"{parts.scheme}://{parts.netloc}{control}"
    return base + control if base.endswith("/") else f"{base}/{control}"


def split_url(url: str) -> tuple[str | None, int | None, str]:
    """'rtsp://host:port/a/b' -> ('host', port, 'a/b'); a bare lab name 'movie.Mjpeg' ->
    (None, None, 'movie.Mjpeg').  The path is returned without its leading '/'.  A default
    port is None.  Raises 400 on a malformed URL.
    """
    if _SCHEME_RE.match(url):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BadRequest(f"malformed URL {url[:80]!r}: {exc}") from None
        if parts.scheme.lower() not in ("rtsp", "rtspu", "rtsps"):
            raise BadRequest(f"not an rtsp URL: {url[:80]!r}")
        path = parts.path
        if parts.query:
            path += "?" + parts.query
        return parts.hostname, port, path.lstrip("/")
    if url == "*":
        return None, None, "*"
    return None, None, url.lstrip("/")
