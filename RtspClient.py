"""RTSP 1.0 client protocol logic, sans I/O (RFC 2326 §6, §7, §10, §12, Appendix C).

Two dialects (:class:`Dialect`): RTSP 1.0 as RFC 2326 has it, and the course hand-out's lab form
for servers written from it (``SETUP movie.Mjpeg RTSP/1.0``, bare-LF lines, CSeq on line 2,
``Transport: RTP/UDP; client_port= N`` or ``Session`` on line 3, no terminating blank line;
replies such as ``RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456`` read by :class:`LabReplyParser`).

:class:`RtspClientProtocol` builds requests (CSeq, Session, User-Agent, URL from Content-Base +
a=control), matches replies to requests by CSeq, and remembers what the replies said (session id
and timeout, server ports, SSRC, RTP-Info, the SDP). It never touches a socket: the caller writes
the bytes it returns and feeds it the bytes it reads. Time is passed in for the keepalive timer.

:func:`parse_sdp_info` extracts what a player needs from an SDP (RFC 4566), read by
:func:`Sdp.parse_sdp` (session/media a=control, m=, c=, rtpmap, framerate, range).
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from RtspHeaders import (NptRange, RtpInfo, Transport, format_range, join_url, parse_public, parse_range,
                         parse_rtp_info, parse_session, split_url)
from RtspMessage import (
    Headers, InterleavedFrame, MessageError, Method, Request, Response, RtspError, Status, reason_phrase,
)
from RtspParser import RtspParser
from RtspAuth import AuthError, answer_challenge, parse_challenges, split_credentials
from RtpPacket import JPEG_CLOCK_RATE, PT_JPEG
from RtspSession import State, client_allowed, client_next_state
from Sdp import MediaDescription, SdpError, parse_sdp

log = logging.getLogger(__name__)

USER_AGENT = "RtpLabPlayer/1.0"
DEFAULT_SESSION_TIMEOUT = 60       # RFC 2326 §12.37 default
DEFAULT_RTSP_PORT = 554


class Dialect(enum.Enum):
    """Which form the requests take: RFC 2326, or the lab hand-out's (for lab servers)."""

    RTSP = "RTSP 1.0"
    LAB = "lab"


# RFC 2326 A.1 client states: the server's enum; the client's table is RtspSession's too.
ClientState = State


@dataclass
class SdpInfo:
    """The parts of an SDP (RFC 4566) a JPEG player uses."""

    text: str = ""
    session_control: str | None = None
    media_control: str | None = None
    media_port: int = 0
    connection: str | None = None
    payload_type: int = PT_JPEG
    encoding: str = "JPEG"
    clock_rate: int = JPEG_CLOCK_RATE
    framerate: float | None = None
    range_start: float | None = None
    range_end: float | None = None      # None: live / open ended ("npt=now-" or "npt=0-")
    width: int | None = None
    height: int | None = None
    bandwidth_kbps: float | None = None  # b=AS (RFC 4566 §5.8), media level else session level


def parse_sdp_info(sdp: str | bytes) -> SdpInfo:
    """What the player uses from an SDP (RFC 4566, RFC 2326 Appendix C), read by :func:`Sdp.parse_sdp`.

    The first m=video section (else the first m=) gives the port, payload type, rtpmap (static
    types such as 26 included), a=control, a=framerate and a=x-dimensions; session-level
    a=control and a=range (media-level when the session has none); the media's c= address, else
    the session's. Raises ValueError (SdpError) for text that is not SDP or has no m= line.
    """
    desc = parse_sdp(sdp)
    media = desc.video or (desc.media[0] if desc.media else None)
    if media is None:
        raise SdpError("SDP has no m= line")
    info = SdpInfo(text=sdp.decode("utf-8", "replace") if isinstance(sdp, bytes) else sdp)
    info.session_control = desc.control
    info.media_control = media.control
    info.media_port = media.port
    info.connection = desc.media_address(media)
    if media.formats and media.formats[0].isdigit():
        info.payload_type = int(media.formats[0])
    else:
        raise SdpError(f"SDP m= line has no RTP payload type: {' '.join(media.formats)!r}")
    encoding = media.rtpmap.get(info.payload_type)
    if encoding is not None:
        info.encoding, info.clock_rate = encoding
    info.framerate = media.framerate
    if info.framerate is None and desc.attribute("framerate") is not None:
        # a=framerate is a media attribute, but some writers put it at session level
        info.framerate = MediaDescription(attributes=[("framerate", desc.attribute("framerate"))]).framerate
    rng = desc.range or media.range
    if rng is not None:
        info.range_start, info.range_end = rng.start, rng.end
    if media.dimensions is not None:
        info.width, info.height = media.dimensions
    for line in media.bandwidths + desc.bandwidths:
        kind, _, value = line.partition(":")
        if kind.strip().upper() == "AS" and value.strip().isdigit():
            info.bandwidth_kbps = float(value.strip())
            break
    return info


@dataclass
class PendingRequest:
    cseq: int
    method: str
    uri: str
    request: Request
    authorized: bool = False     # carried an Authorization header


@dataclass
class Reply:
    """A reply matched to the request it answers."""

    request: PendingRequest
    response: Response
    retry: bool = False          # a 401 the protocol can answer: send the same request again
    error: str | None = None     # a 2xx whose content was unusable (e.g. DESCRIBE without SDP)

    @property
    def ok(self) -> bool:
        return 200 <= self.response.status < 300 and self.error is None


@dataclass
class ServerRequest:
    """A request the server sent us (e.g. ANNOUNCE, GET_PARAMETER); ``reply`` is what to send back."""

    request: Request
    reply: bytes


@dataclass
class ClientEvents:
    replies: list[Reply] = field(default_factory=list)
    interleaved: list[InterleavedFrame] = field(default_factory=list)
    server_requests: list[ServerRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_rtsp_url(url: str) -> tuple[str, int, str]:
    """'rtsp://host:port/path' -> (host, port, path); 554 when the port is absent."""
    host, port, path = split_url(url)
    if host is None:
        raise ValueError(f"not an rtsp:// URL: {url!r}")
    return host, port if port is not None else DEFAULT_RTSP_PORT, path


def make_url(host: str, port: int, path: str) -> str:
    """The request URL for the lab's (host, port, file) arguments."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"rtsp://{h}:{port}/{quote(path.lstrip('/'))}"  # a file name: spaces, non-ASCII %-encoded


def encode_url(url: str) -> str:
    """``url`` with what a request line cannot carry (spaces, non-ASCII, controls) %-encoded as
    UTF-8 (RFC 3986 2.1); escapes already there and the URL's delimiters stay as they are."""
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~")



_SESSION_TOKEN_RE = re.compile(r"^[A-Za-z0-9$\-_.+:/=~!*'()@]+$")
_LAB_STATUS_RE = re.compile(r"^\s*(RTSP/\d+(?:\.\d+)?)\s+(\d{3})\b\s*(.*?)\s*$", re.IGNORECASE)
_LAB_HEADER_RE = re.compile(r"^\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*:\s*(.*?)\s*$")
_LAB_STATUS_START_RE = re.compile(rb"(?:^|\n)\s*RTSP/\d", re.IGNORECASE)
LAB_MAX_REPLY = 65536            # a lab reply is a few lines; more without an end is junk


class LabReplyParser:
    """Tolerant framing of a lab server's replies (what the hand-out server writes, and its variants).

    A reply starts at a line ``RTSP/1.0 200 OK`` (any version, any phrase) and ends at a blank
    line (then a ``Content-Length`` body, if any), at the start of the next reply, or -- the
    hand-out's form, which has no end at all -- when the caller says the server has gone quiet
    (:meth:`finish`). Lines may end in LF or CRLF; header lines are ``Name: value`` with any
    spacing; lines that are neither are skipped. Bytes before a status line are junk.
    Returns :class:`RtspMessage.Response` objects; ``unterminated`` counts replies that had no end.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.unterminated = 0
        self.junk = 0

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished reply are held (the caller may :meth:`finish` it)."""
        return bool(self._buf.strip())

    def feed(self, data: bytes) -> list[Response | MessageError]:
        self._buf += data
        out: list[Response | MessageError] = []
        while True:
            msg = self._next()
            if msg is None:
                break
            out.append(msg)
        if len(self._buf) > LAB_MAX_REPLY:
            self.junk += len(self._buf)
            self._buf.clear()
            out.append(MessageError(RtspError(400, "lab reply too long without an end")))
        return out

    def finish(self) -> list[Response | MessageError]:
        """The server went quiet (or closed): what is held is one whole reply."""
        out: list[Response | MessageError] = []
        if self.pending:
            text, self._buf = bytes(self._buf), bytearray()
            self.unterminated += 1
            out.append(self._parse(text))
        else:
            self._buf.clear()
        return out

    def _next(self) -> Response | MessageError | None:
        buf = self._buf
        start = _LAB_STATUS_START_RE.search(buf)
        if start is None:
            return None
        begin = start.start() + (1 if buf[start.start():start.start() + 1] == b"\n" else 0)
        if begin:
            self.junk += len(buf[:begin].strip())
            del buf[:begin]
        # the end of the header block: a blank line, or the next status line
        blank = re.search(rb"\r?\n[ \t]*\r?\n", buf)
        nxt = _LAB_STATUS_START_RE.search(buf, 1)
        if blank is not None and (nxt is None or blank.start() < nxt.start()):
            head = bytes(buf[:blank.start()])
            reply = self._parse(head)
            length = reply.headers.get("Content-Length") if isinstance(reply, Response) else None
            body_len = int(length) if length is not None and length.strip().isdigit() else 0
            if len(buf) - blank.end() < body_len:
                return None
            body = bytes(buf[blank.end():blank.end() + body_len])
            del buf[:blank.end() + body_len]
            if isinstance(reply, Response):
                reply.body = body
            return reply
        if nxt is not None:
            head = bytes(buf[:nxt.start()])
            del buf[:nxt.start()]
            self.unterminated += 1
            return self._parse(head)
        return None

    @staticmethod
    def _parse(text: bytes) -> Response | MessageError:
        lines = text.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines = [line for line in lines if line.strip()]
        m = _LAB_STATUS_RE.match(lines[0]) if lines else None
        if m is None:
            return MessageError(RtspError(400, f"not an RTSP reply: {text[:60]!r}"))
        headers = Headers()
        for line in lines[1:]:
            h = _LAB_HEADER_RE.match(line)
            if h is None:
                log.debug("lab reply: skipping line %r", line)
                continue
            try:
                headers.add(h.group(1), h.group(2))
            except ValueError:
                log.debug("lab reply: skipping header %r", line)
        return Response(int(m.group(2)), headers, reason=m.group(3) or None, version=m.group(1).upper())

class RtspClientProtocol:
    """Client side of one RTSP connection and (at most) one session (RFC 2326)."""

    def __init__(self, url: str, user_agent: str = USER_AGENT, username: str | None = None,
                 password: str | None = None, dialect: Dialect = Dialect.RTSP) -> None:
        # Credentials in the URL (rtsp://user:pass@host/...) are taken out of it: requests and
        # logs carry the clean URL, the password only ever goes out as a Digest/Basic answer.
        self.url, url_user, url_password = split_credentials(url)
        self.url = encode_url(self.url)
        self.username = username if username is not None else url_user
        self.password = password if password is not None else (url_password or "")
        self._challenges: list[str] | None = None    # WWW-Authenticate values being answered
        self._nonce_count = 0                        # nc for the current Digest nonce (RFC 2617 3.2.2)
        self._cnonce: str | None = None
        self.user_agent = user_agent
        self.cseq = 0
        self.state = ClientState.INIT
        self.session_id: str | None = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self.content_base: str | None = None
        self.sdp: SdpInfo | None = None
        self.transport: Transport | None = None      # what the server's SETUP reply said
        self.rtp_info: list[RtpInfo] = []
        self.play_range: NptRange | None = None
        self.public: list[str] = []
        self.last_request_time: float | None = None
        self.pending: dict[int, PendingRequest] = {}
        self.parser = RtspParser(role="client", max_body=1 << 20)
        self.use_get_parameter = True
        self.dialect = dialect
        self.lab_parser = LabReplyParser()
        self.lab_form_replies = 0     # replies in the lab form (no end): the server is a lab server
        if dialect is Dialect.LAB and not self.lab_filename:
            raise ValueError(f"the lab dialect needs a file name in the URL: {self.url!r}")

    def new_connection(self) -> None:
        """A new RTSP connection (after a lost server): no session, no requests in flight, clean
        parsers (one left mid-message would eat the new replies); URL, credentials, dialect and
        the last SDP stay. In place, so callers holding this object's methods keep working."""
        self.pending.clear()
        self.state = ClientState.INIT
        self.session_id = None
        self.transport = None
        self.rtp_info = []
        self.play_range = None
        self.last_request_time = None
        self.parser = RtspParser(role="client", max_body=1 << 20)
        self.lab_parser = LabReplyParser()

    @property
    def lab_filename(self) -> str:
        """The request-line target of the lab form: the URL's path, 'movie.Mjpeg'."""
        return split_url(self.url)[2]

    # -- URLs (RFC 2326 C.1.1) ---------------------------------------------------------------
    @property
    def aggregate_url(self) -> str:
        """URL for session-wide PLAY/PAUSE/TEARDOWN: Content-Base + session a=control."""
        base = self.content_base or self.url
        if self.sdp is not None and self.sdp.session_control:
            return join_url(base, self.sdp.session_control)
        return base

    @property
    def track_url(self) -> str:
        """URL for SETUP: the media a=control resolved against Content-Base (else the request
        URL), not against the session-level control (RFC 2326 C.1.1; see join_url's table)."""
        base = self.content_base or self.url
        if self.sdp is not None and self.sdp.media_control:
            return join_url(base, self.sdp.media_control)
        return base

    # -- requests ----------------------------------------------------------------------------
    def build(self, method: str, uri: str | None = None, headers: dict[str, str] | None = None,
              body: bytes = b"", now: float | None = None) -> tuple[int, bytes]:
        """Serialize the next request; returns (cseq, bytes). The reply comes back via :meth:`feed`."""
        if self.dialect is Dialect.LAB:
            return self._build_lab(str(method), headers or {}, now)
        self.cseq += 1
        h = Headers()
        h.add("CSeq", self.cseq)
        h.add("User-Agent", self.user_agent)
        if self.session_id is not None and method not in (Method.OPTIONS, Method.DESCRIBE):
            h.add("Session", self.session_id)
        for name, value in (headers or {}).items():
            h.set(name, value)
        if uri is None:
            by_method: dict[str, str] = {Method.SETUP: self.track_url, Method.OPTIONS: self.url,
                                         Method.DESCRIBE: self.url}
            uri = by_method.get(method, self.aggregate_url)
        authorization = self._authorization(str(method), uri)
        if authorization is not None:
            h.set("Authorization", authorization)
        req = Request(str(method), uri, h, body)
        self.pending[self.cseq] = PendingRequest(self.cseq, str(method), uri, req,
                                                 authorized=authorization is not None)
        if now is not None:
            self.last_request_time = now
        return self.cseq, req.serialize()

    def _build_lab(self, method: str, headers: dict[str, str], now: float | None) -> tuple[int, bytes]:
        """The hand-out client's form: three LF lines, no blank line (one send() is the request).

        Line 1 ``METHOD file RTSP/1.0``, line 2 ``CSeq: n``, line 3 the Transport (SETUP) or the
        Session the SETUP reply gave (the hand-out sends 0 before it has one). Lab servers take
        fields by line position, so nothing else is sent: no User-Agent, Range or Authorization.
        """
        if method not in (Method.SETUP, Method.PLAY, Method.PAUSE, Method.TEARDOWN):
            raise ValueError(f"the lab dialect has no {method} (only SETUP, PLAY, PAUSE, TEARDOWN)")
        self.cseq += 1
        h = Headers()
        h.add("CSeq", self.cseq)
        if method == Method.SETUP:
            h.add("Transport", headers.get("Transport", ""))
        else:
            h.add("Session", self.session_id or "0")
        req = Request(method, self.lab_filename, h, lf_only=True)
        data = f"{method} {self.lab_filename} RTSP/1.0\n" + "\n".join(f"{n}: {v}" for n, v in h.items())
        self.pending[self.cseq] = PendingRequest(self.cseq, method, self.lab_filename, req)
        if now is not None:
            self.last_request_time = now
        return self.cseq, data.encode("utf-8", "surrogateescape")

    def use_lab(self) -> None:
        """From now on speak the lab form (a new connection: CSeq starts again at 1, no session)."""
        if not self.lab_filename:
            raise ValueError(f"the lab dialect needs a file name in the URL: {self.url!r}")
        self.dialect = Dialect.LAB
        self.cseq = 0
        self.pending.clear()
        self.state = ClientState.INIT
        self.session_id = None
        self.transport = None
        self.parser = RtspParser(role="client", max_body=1 << 20)
        self.lab_parser = LabReplyParser()

    def options(self, now: float | None = None) -> tuple[int, bytes]:
        return self.build(Method.OPTIONS, now=now)

    # -- authentication (RFC 2617 as RTSP uses it, RFC 2326 §12.5) ---------------------------
    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    def _authorization(self, method: str, uri: str) -> str | None:
        """The Authorization value for the next request, once a challenge has been accepted.

        Digest answers count nc up per request under one nonce (RFC 2617 3.2.2), so the server
        can tell a replay; Basic repeats its token.
        """
        if self._challenges is None or self.username is None:
            return None
        self._nonce_count += 1
        try:
            return answer_challenge(self._challenges, self.username, self.password, method, uri,
                                    nc=self._nonce_count, cnonce=self._cnonce)
        except AuthError as exc:          # cannot happen: the challenge was checked when accepted
            log.warning("cannot answer the authentication challenge: %s", exc)
            return None

    def _accept_challenge(self, pending: PendingRequest, resp: Response) -> bool:
        """A 401 came back: adopt its challenge and say whether to send the request again.

        Again when the request had no Authorization yet (the first challenge), or when it had
        one but the server says the nonce is stale (RFC 2617 3.2.1) -- not when the answer was
        simply wrong, so a bad password fails at once instead of looping.
        """
        values = resp.headers.get_all("WWW-Authenticate")
        if not self.has_credentials or not values:
            return False
        try:
            challenges = parse_challenges(values)
            answer_challenge(values, self.username or "", self.password, pending.method, pending.uri,
                             cnonce="0")
        except AuthError as exc:
            log.warning("the server's authentication challenge is unusable: %s", exc)
            return False
        stale = any(c.params.get("stale", "").lower() == "true" for c in challenges)
        if pending.authorized and not stale:
            return False
        self._challenges = list(values)
        self._nonce_count = 0
        self._cnonce = secrets.token_hex(8)
        return True

    def describe(self, now: float | None = None) -> tuple[int, bytes]:
        return self.build(Method.DESCRIBE, headers={"Accept": "application/sdp"}, now=now)

    def setup(self, transport: str, now: float | None = None) -> tuple[int, bytes]:
        """SETUP with a Transport such as 'RTP/AVP;unicast;client_port=5008-5009' (§10.4)."""
        return self.build(Method.SETUP, headers={"Transport": transport}, now=now)

    def play(self, start: float | None = None, now: float | None = None) -> tuple[int, bytes]:
        """PLAY; ``start`` seconds adds 'Range: npt=T-' (a seek, §10.5); None resumes."""
        headers = {}
        if start is not None:
            headers["Range"] = format_range(NptRange(max(0.0, start), None))
        return self.build(Method.PLAY, headers=headers, now=now)

    def pause(self, now: float | None = None) -> tuple[int, bytes]:
        return self.build(Method.PAUSE, now=now)

    def teardown(self, now: float | None = None) -> tuple[int, bytes]:
        return self.build(Method.TEARDOWN, now=now)

    def keepalive(self, now: float | None = None) -> tuple[int, bytes]:
        """GET_PARAMETER with no body (§10.8) -- or OPTIONS if the server does not list it."""
        method = Method.GET_PARAMETER if self.use_get_parameter else Method.OPTIONS
        uri = self.aggregate_url if method == Method.GET_PARAMETER else self.url
        return self.build(method, uri=uri, now=now)

    def keepalive_at(self) -> float | None:
        """When a keepalive is due: half the session timeout after the last request (§12.37).
        Never in the lab dialect: lab servers do not time sessions out, and know no keepalive."""
        if self.dialect is Dialect.LAB or self.session_id is None or self.last_request_time is None:
            return None
        return self.last_request_time + self.session_timeout / 2

    def keepalive_due(self, now: float) -> bool:
        """True when half the session timeout has passed since the last request (§12.37)."""
        at = self.keepalive_at()
        return at is not None and now >= at

    def valid(self, method: str) -> bool:
        """Whether ``method`` may be sent now (RFC 2326 A.1, RtspSession.CLIENT_TRANSITIONS)."""
        return method in client_allowed(self.state)

    # -- replies -----------------------------------------------------------------------------
    @property
    def unterminated(self) -> bool:
        """True when the bytes read so far end inside a reply that has no end of its own (the lab
        form: ``RTSP/1.0 200 OK\\nCSeq: 1\\nSession: 123``). The caller calls
        :meth:`finish_unterminated` when the server has then said nothing for a moment, or closed."""
        if self.dialect is Dialect.LAB:
            return self.lab_parser.pending
        return self.parser.has_unterminated_lf()

    def finish_unterminated(self) -> ClientEvents:
        """Take the unterminated reply held (see :attr:`unterminated`) as complete."""
        if self.dialect is Dialect.LAB:
            return self._events(self.lab_parser.finish(), lab_form=True)
        msg = self.parser.finish_unterminated()
        return self._events([msg] if msg is not None else [], lab_form=True)

    def feed(self, data: bytes) -> ClientEvents:
        """Bytes from the RTSP connection -> replies matched by CSeq, interleaved frames, requests."""
        if self.dialect is Dialect.LAB:
            before = self.lab_parser.unterminated
            messages = self.lab_parser.feed(data)
            return self._events(messages, lab_form=self.lab_parser.unterminated > before)
        return self._events(self.parser.feed(data))

    def _events(self, messages: list, lab_form: bool = False) -> ClientEvents:
        events = ClientEvents()
        if lab_form and any(isinstance(m, Response) for m in messages):
            self.lab_form_replies += 1
        for msg in messages:
            if isinstance(msg, InterleavedFrame):
                events.interleaved.append(msg)
            elif isinstance(msg, Response):
                cseq = msg.cseq
                pending = self.pending.pop(cseq, None) if cseq is not None else None
                if pending is None and self.dialect is Dialect.LAB and len(self.pending) == 1:
                    # lab servers may echo the CSeq wrongly or not at all; one request is out
                    log.info("lab reply with CSeq %s taken as the reply to CSeq %d", cseq,
                                next(iter(self.pending)))
                    pending = self.pending.pop(next(iter(self.pending)))
                if pending is None:
                    events.errors.append(f"reply with unknown CSeq {cseq}: {msg.status} {msg.phrase}")
                    continue
                retry = msg.status == Status.UNAUTHORIZED and self._accept_challenge(pending, msg)
                error = None
                try:
                    self._apply(pending, msg)
                except SdpError as exc:
                    error = f"{pending.method} {pending.uri}: the server's SDP is unusable: {exc}"
                except RtspError as exc:
                    error = f"{pending.method} {pending.uri}: unusable reply from the server: {exc}"
                events.replies.append(Reply(pending, msg, retry, error))
            elif isinstance(msg, Request):
                events.server_requests.append(ServerRequest(msg, self._answer_server(msg)))
            elif isinstance(msg, MessageError):
                events.errors.append(f"malformed message from server: {msg.error}")
        return events

    def _answer_server(self, req: Request) -> bytes:
        """Servers may send OPTIONS/GET_PARAMETER (§10.1) to the client; say 200 or 501."""
        h = Headers()
        if req.cseq is not None:
            h.add("CSeq", req.cseq)
        status = Status.OK if req.method in (Method.OPTIONS, Method.GET_PARAMETER) else Status.NOT_IMPLEMENTED
        if status == Status.OK and self.session_id is not None:
            h.add("Session", self.session_id)
        return Response(int(status), h).serialize()

    def _apply(self, pending: PendingRequest, resp: Response) -> None:
        """Update the session from a reply (state transitions of RFC 2326 Appendix A.1)."""
        if not 200 <= resp.status < 300:
            return
        method = pending.method
        self.state = client_next_state(self.state, method)   # the A.1 table
        h = resp.headers
        public = h.get("Public")
        if method == Method.OPTIONS and public:
            self.public = parse_public(public)
            if self.public and "GET_PARAMETER" not in self.public:
                self.use_get_parameter = False
        elif method == Method.DESCRIBE:
            base = h.get("Content-Base") or h.get("Content-Location") or pending.uri
            self.content_base = base
            self.sdp = parse_sdp_info(resp.body)
        elif method == Method.SETUP:
            session = h.get("Session")
            if session and self.dialect is Dialect.LAB:
                # echoed as given (the first word: lab servers may add ';timeout=...' or junk)
                self.session_id = session.split(";")[0].split()[0] if session.split(";")[0].split() else None
                if self.session_id is not None and not _SESSION_TOKEN_RE.match(self.session_id):
                    log.warning("lab server's Session %r is not a session id; sending 0", session)
                    self.session_id = None
            elif session:
                self.session_id, timeout = parse_session(session)
                self.session_timeout = timeout or DEFAULT_SESSION_TIMEOUT
            tr = h.get("Transport")
            if tr:
                try:
                    self.transport = Transport.parse_list(tr)[0]
                except RtspError as exc:      # a header we cannot read; the reply is still usable
                    log.warning("could not parse server Transport %r: %s", tr, exc)
        elif method == Method.PLAY:
            info = h.get("RTP-Info")
            if info:
                try:
                    self.rtp_info = parse_rtp_info(info)
                except RtspError as exc:
                    log.warning("could not parse RTP-Info %r: %s", info, exc)
                    self.rtp_info = []
            else:
                self.rtp_info = []
            rng = h.get("Range")
            self.play_range = None
            if rng:
                try:
                    self.play_range = parse_range(rng)
                except RtspError as exc:
                    log.debug("could not parse Range %r: %s", rng, exc)
        elif method == Method.TEARDOWN:
            self.session_id = None
            self.transport = None


def describe_failure(method: str, status: int, phrase: str, url: str,
                     username: str | None = None) -> str:
    """One line for the user, with a hint for the usual mistakes (``username``: who we tried as)."""
    text = f"{method} {url} failed: {status} {phrase or reason_phrase(status)}"
    if status == Status.NOT_FOUND:
        text = f"movie not found on the server: {url} (404 {phrase})"
    elif status == Status.UNSUPPORTED_TRANSPORT:
        text += " -- the server refused the transport; try --transport tcp (or udp)"
    elif status == Status.UNAUTHORIZED and username is not None:
        text = (f"authentication failed: the server refused user {username!r} "
                f"({method} {url}: 401 {phrase or reason_phrase(status)})")
    elif status == Status.UNAUTHORIZED:
        text = (f"the server requires a user name and password: give "
                f"rtsp://USER:PASSWORD@host:port/... or --user USER:PASSWORD ({method} {url}: 401)")
    return text
