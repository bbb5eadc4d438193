"""The server side of RTSP without sockets: the twin of RtspClient.RtspClientProtocol (h11's shape).

:class:`RtspServerProtocol` owns one connection's parser, its sessions and the header rules of
RFC 2326 (sections 10-12): ``feed(bytes)`` frames requests, ``handle(event)`` answers one with an
:class:`Output` -- the reply's bytes and the explicit :class:`Action` list the connection carries
out once those bytes are written (start sending a PLAYed stream, end a TEARDOWN session) --, and
``close`` when the peer sent more junk than the parser skips. Every failure takes one path: an
RtspError raised anywhere becomes ``Response.from_error`` in :meth:`_error`. The Session header is
set in one place (:meth:`_respond`), the lab's line order by the message writer
(``Response.serialize(lf_only=True)``).

The connection's addresses come in at construction (no ``getsockname``); the Streamer and the
multicast groups are in-process collaborators it calls (add/remove/pause a session's route). It
never touches a socket: tests/test_rtsp_server_protocol.py drives it with bytes alone.
ServerWorker is the I/O edge: it reads, writes and carries out the actions.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Callable
from urllib.parse import quote

from MediaLibrary import MediaLibrary, Movie
from Multicast import MulticastGroups, MulticastPool
from RtspAuth import Authenticator
from RtspHeaders import (NptRange, RtpInfo, Transport, format_public, format_range, format_rtp_info,
                         format_session, parse_range, parse_session)
from RtspMessage import (
    Headers, InterleavedFrame, Message, MessageError, Method, Request, Response, RtspError, Status,
)
from RtspParser import RtspParser
from RtspSession import SESSIONLESS, SUPPORTED, State, new_session_id, next_state
from Sdp import lab_sdp, movie_sdp
from Streamer import SERVER_NAME, StreamSession, Streamer, unmapped

log = logging.getLogger("ServerWorker")  # the server's request log keeps its name

TRACK_CONTROL = "trackID=0"
PUBLIC = format_public(SUPPORTED)
LAB_REPLY_LIMIT = 255  # lab clients read each reply with one recv(256)
LIVE_DESCRIBE_WAIT = 5.0  # a DESCRIBE of a live source that has no picture yet waits this long


@dataclass
class ServerConfig:
    """Fixed settings shared by every connection (nothing per connection lives here)."""

    media: MediaLibrary
    session_timeout: float = 60.0
    max_sessions: int = 1000
    loop: bool = False
    connection_timeout: float = 300.0
    request_timeout: float = 10.0  # a started message must be complete within this (slowloris)
    max_request_rate: float = 0.0  # requests/s per connection, burst of one second; 0 = unlimited
    auth: Authenticator | None = None  # RFC 2617 Digest/Basic on every method but OPTIONS
    rng: random.Random = field(default_factory=random.SystemRandom)
    multicast: MulticastPool | None = None  # --multicast RANGE: SETUP may ask for multicast
    multicast_interface: str | None = None  # --multicast-interface


class SessionRegistry:
    """Every live session of the server (ids unique, count for --max-sessions)."""

    def __init__(self) -> None:
        self._sessions: dict[str, StreamSession] = {}
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            while True:
                session_id = new_session_id()
                if session_id not in self._sessions:
                    return session_id

    def add(self, session: StreamSession) -> None:
        with self._lock:
            self._sessions[session.id] = session

    def remove(self, session: StreamSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)


# --------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class StartSending:
    """After the PLAY reply: the Streamer starts this session's stream (RTP after the 200)."""

    session: StreamSession


@dataclass(frozen=True)
class EndSession:
    """After the TEARDOWN reply: end the session (BYE, out of the tables)."""

    session: StreamSession
    why: str


Action = StartSending | EndSession


@dataclass
class Output:
    """What one event asks of the connection: write ``data``, then carry out ``actions`` in
    order, then close the connection when ``close``."""

    data: bytes = b""
    actions: list[Action] = field(default_factory=list)
    close: bool = False


@dataclass
class Answer:
    """A method handler's result: the reply, the session it concerns (SETUP: the one it made),
    and what must follow the reply."""

    response: Response
    session: StreamSession | None = None
    actions: list[Action] = field(default_factory=list)


class RtspServerProtocol:
    """One RTSP connection's protocol state: parser, sessions, dialect, method handlers."""

    def __init__(self, config: ServerConfig, streamer: Streamer, server_ports: tuple[int, int],
                 registry: SessionRegistry, peer: str, local: tuple[str, int],
                 groups: MulticastGroups | None = None,
                 send_interleaved: Callable[[bytes], bool] | None = None,
                 expire: Callable[[StreamSession], None] | None = None) -> None:
        self.config = config
        self.streamer = streamer
        self.server_ports = server_ports
        self.registry = registry
        self.peer = peer                  # the client's address (RTP goes only there)
        self.local = local                # (host, port) the client connected to (Content-Base)
        self.groups = groups
        self.send_interleaved = send_interleaved   # how sessions send '$' frames on this connection
        self.expire = expire                       # how the Streamer ends an idle session
        self.parser = RtspParser(role="server")
        self.sessions: dict[str, StreamSession] = {}
        self.lab = False                  # this connection speaks the lab hand-out's dialect
        self._tokens = config.max_request_rate
        self._tokens_at = time.monotonic()

    # -- bytes in ------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Message]:
        return self.parser.feed(data)

    def has_unterminated_lf(self) -> bool:
        return self.parser.has_unterminated_lf()

    def finish_unterminated(self) -> Message | None:
        return self.parser.finish_unterminated()

    def handle(self, event: Message, now: float | None = None) -> Output | None:
        """Answer one parsed event; None when nothing is to be written (RTCP, a stray reply)."""
        now = time.monotonic() if now is None else now
        if isinstance(event, Request):
            return self._request(event, now)
        if isinstance(event, MessageError):
            out = self._error(event.error, event.cseq, event.lf_only)
            out.close = event.fatal
            return out
        if isinstance(event, InterleavedFrame):
            self._interleaved(event)
        return None  # a Response from a client is not expected; ignored

    def _request(self, request: Request, now: float) -> Output:
        if request.lf_only:
            self.lab = True
        log.info("%s: %s %s CSeq %s", self.peer, request.method, request.uri, request.cseq)
        client_session = request.headers.get("Session")
        if self.config.max_request_rate and not self._take_token(now):
            return self._error(RtspError(Status.SERVICE_UNAVAILABLE, "request rate limit exceeded",
                                         {"Retry-After": "1"}), request.cseq, request.lf_only, client_session)
        try:
            if request.cseq is None:
                raise RtspError(Status.BAD_REQUEST, "missing CSeq")
            answer = self._respond(request)
        except RtspError as error:
            return self._error(error, request.cseq, request.lf_only, client_session)
        except Exception:  # one place turns a bug into a 500 and keeps serving (handle_error)
            log.exception("%s: internal error on %s", self.peer, request.method)
            return self._error(RtspError(Status.INTERNAL_SERVER_ERROR, "internal error"), request.cseq,
                               request.lf_only, client_session)
        return Output(self._reply(answer.response, request.cseq, request.lf_only, client_session),
                      answer.actions)

    def _take_token(self, now: float) -> bool:
        """Token bucket: max_request_rate per second, bursts of one second's worth."""
        rate = self.config.max_request_rate
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _error(self, error: RtspError, cseq: int | None, lf_only: bool,
               client_session: str | None = None) -> Output:
        """The one failure path (send_error): every RtspError reaches the wire through
        Response.from_error (no explanatory body for lab clients: they read 256 bytes)."""
        log.info("%s: %d %s", self.peer, int(error.status), error.message)
        response = Response.from_error(error, body=not (self.lab or lf_only))
        return Output(self._reply(response, cseq, lf_only, client_session))

    def _reply(self, response: Response, cseq: int | None, lf_only: bool,
               client_session: str | None = None) -> bytes:
        """The reply's bytes: CSeq, the Session (with its timeout, bare for lab clients), Server
        and Date added here; the writer puts CSeq and Session first for lab clients.

        ``lf_only`` is the request's dialect (bare-LF lines); ``client_session`` its Session
        header, echoed to lab clients even in an error reply."""
        lab = self.lab or lf_only
        headers = response.headers
        ordered = Headers()
        cseq_text = headers.get("CSeq")
        if cseq_text is None and cseq is not None:
            cseq_text = str(cseq)
        if cseq_text is not None:
            ordered.set("CSeq", cseq_text)
        session_id = headers.get("Session")
        if session_id is None and lab and client_session:
            # lab clients read the Session from line 3 even in an error reply: echo theirs
            try:
                session_id = parse_session(client_session)[0]
            except RtspError:
                session_id = None  # a malformed one is not echoed (this reply is its 400)
        if session_id is not None:
            session = self.sessions.get(session_id)
            if lab or (session is not None and session.lab):
                ordered.set("Session", session_id)
            else:
                ordered.set("Session", format_session(session_id, int(self.config.session_timeout)))
        if not lab:
            ordered.set("Server", SERVER_NAME)
            ordered.set("Date", formatdate(usegmt=True))
        for name, value in headers.items():
            if name.lower() not in ("cseq", "session"):
                ordered.add(name, value)
        response.headers = ordered
        data = response.serialize(lf_only=lab)
        if lab and len(data) > LAB_REPLY_LIMIT:
            log.warning("%s: %d-byte reply to a lab client, which reads %d at most", self.peer, len(data),
                        LAB_REPLY_LIMIT + 1)
        return data

    def _interleaved(self, frame: InterleavedFrame) -> None:
        """RTCP from a TCP client on the odd channel (RFC 2326 10.12) goes to its session."""
        for session in list(self.sessions.values()):  # the Streamer may expire one meanwhile
            if session.channel is not None and frame.channel == session.channel + 1:
                session.touch()
                session.receive_rtcp(frame.data)

    # -- methods ---------------------------------------------------------------
    def _respond(self, request: Request) -> Answer:
        try:
            method = Method(request.method)
        except ValueError:
            raise RtspError(Status.NOT_IMPLEMENTED, f"method {request.method!r} not implemented",
                            {"Public": PUBLIC}) from None  # what we do implement (RFC 2326 12.28)
        if method not in SUPPORTED:
            raise RtspError(Status.NOT_IMPLEMENTED, f"{method.value} is not supported by this server",
                            {"Public": PUBLIC})
        if self.config.auth is not None and method is not Method.OPTIONS:
            self.config.auth.require(request.headers, request.method, request.uri)  # 401 + challenge
        session = self._find_session(request)
        if session is not None:
            session.touch()
        handler = getattr(self, "do_" + method.value)
        if method in SESSIONLESS:
            answer = handler(request, session)
        else:
            new_state = next_state(session.state if session is not None else State.INIT, method)  # or 455
            answer = handler(request, session)
            assert answer.session is not None, "SETUP returns the session it made"
            answer.session.state = new_state
        if answer.session is not None and method is not Method.DESCRIBE:
            answer.response.headers.set("Session", answer.session.id)   # the one place it is set
        return answer

    def _find_session(self, request: Request) -> StreamSession | None:
        value = request.headers.get("Session")
        if value is None:
            return None
        session_id, _ = parse_session(value)
        session = self.sessions.get(session_id)
        if session is None:
            # Unknown, expired, or another connection's: RFC 2326 12.37 -> 454.
            raise RtspError(Status.SESSION_NOT_FOUND, f"session {session_id} not found")
        return session

    def _movie(self, request: Request) -> tuple[Movie, str]:
        name, track = MediaLibrary.split_uri(request.uri)
        movie = self.config.media.lookup(name)
        if movie is None or track not in ("", TRACK_CONTROL):
            raise RtspError(Status.NOT_FOUND, f"{request.uri} not found")
        return movie, track

    def _base_url(self, request: Request, movie: Movie) -> str:
        uri = request.uri
        if "://" in uri:
            scheme, rest = uri.split("://", 1)
            netloc = rest.split("/", 1)[0]
        else:
            scheme = "rtsp"
            host, port = self.local
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"{scheme}://{netloc}/{quote(movie.name)}/"  # spaces, non-ASCII: %-encoded

    def do_OPTIONS(self, request: Request, session: StreamSession | None) -> Answer:
        return Answer(Response(200, Headers([("Public", PUBLIC)])), session)

    def do_GET_PARAMETER(self, request: Request, session: StreamSession | None) -> Answer:
        return Answer(Response(200, Headers()), session)  # keepalive (RFC 2326 10.8); no parameters served

    do_SET_PARAMETER = do_GET_PARAMETER

    def do_DESCRIBE(self, request: Request, session: StreamSession | None) -> Answer:
        movie, _ = self._movie(request)
        local = self.local[0]
        if self.lab or request.lf_only:
            # A lab client reads the reply with one recv(256): a minimal SDP that fits.
            head = len(f"RTSP/1.0 200 OK\nCSeq: {request.cseq}\nContent-Type: application/sdp\n"
                       f"Content-Length: 999\n\n") + (28 if request.headers.get("Session") else 0)
            body = lab_sdp(movie.name, None if getattr(movie, "live", False) else movie.duration,
                           movie.fps, local, int(movie.mtime), LAB_REPLY_LIMIT - head)
            response = Response(200, Headers(), body=body.encode())
            response.headers.set("Content-Type", "application/sdp")
            return Answer(response)
        if getattr(movie, "live", False):
            self._check_live(movie)
            sdp = movie_sdp(
                name=movie.name, duration=None, fps=round(movie.fps, 3), server_addr=local,
                session_id=int(movie.mtime), version=1, track_control=TRACK_CONTROL,
                width=movie.width, height=movie.height, live=True,
            )
        else:
            self._check_carriable(movie)
            width, height = movie.rtp_size()
            sdp = movie_sdp(
                name=movie.name, duration=movie.duration, fps=movie.fps, server_addr=local,
                session_id=int(movie.mtime), version=1, track_control=TRACK_CONTROL,
                width=width, height=height,
            )
        response = Response(200, Headers(), body=sdp.encode())
        response.headers.set("Content-Base", self._base_url(request, movie))
        response.headers.set("Content-Type", "application/sdp")
        return Answer(response)

    @staticmethod
    def _check_live(feed) -> None:
        """A live source that has produced no picture (yet) is 503 with what it did instead."""
        if not feed.wait_first_frame(LIVE_DESCRIBE_WAIT):
            raise RtspError(Status.SERVICE_UNAVAILABLE,
                            f"live source {feed.name} has no picture yet: {feed.describe_status()}",
                            {"Retry-After": "5"}, explain=True)

    def _check_carriable(self, movie: Movie) -> None:
        """415 for a movie RTSP clients cannot play at all: its first frame is neither RFC 2435
        nor convertible (frames RFC 2435 cannot carry are re-encoded, MediaLibrary.Movie)."""
        if getattr(movie, "live", False):
            return  # a live source converts its frames as they come (LiveReader)
        why = movie.unplayable()
        if why is not None and not self.lab:
            raise RtspError(Status.UNSUPPORTED_MEDIA_TYPE,
                            f"{movie.name} cannot be sent as RTP/JPEG (RFC 2435): {why}")

    def do_SETUP(self, request: Request, session: StreamSession | None) -> Answer:
        movie, _ = self._movie(request)
        value = request.headers.get("Transport")
        if value is None:
            raise RtspError(Status.UNSUPPORTED_TRANSPORT, "SETUP without a Transport header")
        choice = self._choose_transport(Transport.parse_list(value))
        if choice.lab or request.lf_only:
            self.lab = True
        else:
            self._check_carriable(movie)
        if getattr(movie, "live", False):
            self._check_live(movie)
        if session is None:
            if self.registry.count() >= self.config.max_sessions:
                raise RtspError(Status.SERVICE_UNAVAILABLE, f"limit of {self.config.max_sessions} sessions reached")
            session = StreamSession(self.registry.new_id(), movie, self.config.rng,
                                    send_interleaved=self.send_interleaved, expire=self.expire)
            session.lab = self.lab
            session.peer = self.peer  # a multicast member's group RTCP is matched by this host
            if session.lab:
                # Lab clients use the sequence number as the frame number and drop any frame
                # whose number is not above the last one: count from 1, one packet per frame.
                session.seq = 1
            self.sessions[session.id] = session
            self.registry.add(session)
        elif session.movie is not movie:
            raise RtspError(Status.AGGREGATE_OPERATION_NOT_ALLOWED
                            if hasattr(Status, "AGGREGATE_OPERATION_NOT_ALLOWED") else Status.BAD_REQUEST,
                            "this session already plays another movie")
        else:
            self.streamer.remove(session)  # re-SETUP: the new transport replaces the old route
            if session.group is not None and self.groups is not None:
                self.groups.leave(session)
        reply = Transport(protocol="RTP", profile="AVP", lower=choice.lower, unicast=True, ssrc=session.ssrc)
        if choice.unicast is False:
            assert self.groups is not None
            group = self.groups.join(session)
            address = group.address
            session.channel, session.udp_dest, session.rtcp_dest = None, None, None
            reply = Transport(protocol="RTP", profile="AVP", lower="UDP", unicast=False,
                              destination=address.group, port=address.port, ttl=address.ttl, ssrc=group.ssrc)
        elif choice.lower == "TCP":
            channels = choice.interleaved or self._free_channels()
            session.channel, session.udp_dest, session.rtcp_dest = channels[0], None, None
            reply.interleaved = channels
        else:
            assert choice.client_port is not None, "_choose_transport keeps UDP offers with ports"
            rtp_port, rtcp_port = choice.client_port
            session.udp_dest = (self.peer_for_udp(), rtp_port)
            session.rtcp_dest = (self.peer, rtcp_port)
            session.channel = None
            reply.client_port = choice.client_port
            reply.server_port = self.server_ports
        session.transport = reply
        if session.lab and not getattr(movie, "live", False):
            movie.prepare(session.position, True, session.id)  # lab frames over the limit, ahead of PLAY
        self.streamer.add(session)
        response = Response(200, Headers())
        if not self.lab:
            response.headers.set("Transport", reply.format())
        return Answer(response, session)

    def peer_for_udp(self) -> str:
        """RTP goes only to the address the RTSP connection came from (no reflection)."""
        family = self.streamer.rtp_sock.family
        if family == socket.AF_INET6 and ":" not in self.peer:
            return "::ffff:" + self.peer
        return self.peer

    def _free_channels(self) -> tuple[int, int]:
        used = {s.channel for s in list(self.sessions.values()) if s.channel is not None}
        channel = 0
        while channel in used:
            channel += 2
        return channel, channel + 1

    def _choose_transport(self, offers: list[Transport]) -> Transport:
        """The first offer we can serve: unicast RTP/AVP over UDP or interleaved TCP, or the lab's
        RTP/UDP; multicast when the server has a range (--multicast) and the offer's
        destination, if any, is a group inside it (RFC 2326 16: nothing else is a target)."""
        reasons = []
        for offer in offers:
            if offer.unicast is False and not offer.lab and offer.protocol == "RTP" and offer.profile == "AVP":
                if self.groups is None or self.config.multicast is None:
                    reasons.append("multicast is not enabled on this server (--multicast RANGE)")
                    continue
                if offer.lower != "UDP":
                    reasons.append(f"multicast over {offer.lower}")
                    continue
                why = self.config.multicast.refuse_destination(offer.destination)
                if why:
                    log.warning("%s: SETUP refused: %s", self.peer, why)
                    reasons.append(why)
                    continue
                return offer
            if offer.destination and unmapped(offer.destination) != self.peer:
                reasons.append(f"destination={offer.destination} is not the requesting host")
                continue
            if offer.lab:
                if offer.client_port:
                    return offer
                reasons.append("no client_port")
                continue
            if offer.protocol != "RTP" or offer.profile != "AVP" or offer.unicast is False:
                reasons.append(f"{offer.protocol}/{offer.profile} {'unicast' if offer.unicast else 'multicast'}")
                continue
            if offer.lower == "UDP" and offer.client_port:
                return offer
            if offer.lower == "TCP":
                return offer
            reasons.append(f"{offer.lower} without client_port")
        raise RtspError(Status.UNSUPPORTED_TRANSPORT, "; ".join(reasons) or "no transport offered", explain=True)

    def do_PLAY(self, request: Request, session: StreamSession) -> Answer:
        value = request.headers.get("Range")
        npt = parse_range(value) if value is not None else None
        if session.group is not None:
            return self._play_member(request, session, npt)
        if session.live:
            return self._play_live(request, session)
        with session.lock:
            self.streamer.pause(session)
            answer = self._play_locked(request, session, npt)
        # the first frame ready before the reply (re-encoded here if it must be) and the
        # movie's converter working ahead of this session: the Streamer never waits for it
        session.movie.prepare(session.position, session.lab, session.id)
        return answer

    def _play_locked(self, request: Request, session: StreamSession, npt: NptRange | None) -> Answer:
        movie = session.movie
        if npt is not None:
            value = format_range(npt)
            if npt.start is not None:
                if npt.start > movie.duration + 1e-6 or (npt.end is not None and npt.end < npt.start):
                    raise RtspError(Status.INVALID_RANGE, f"{value} is outside 0-{movie.duration:.3f}")
                session.position = min(int(npt.start * movie.fps + 1e-6), movie.frame_count)
            if npt.end is not None:
                session.stop_position = min(movie.frame_count, int(npt.end * movie.fps + 1 - 1e-6))
            else:
                session.stop_position = None
        start = (session.position % movie.frame_count) / movie.fps if movie.frame_count else 0.0
        end = (session.stop_position or movie.frame_count) / movie.fps
        response = Response(200, Headers())
        if not self.lab:
            response.headers.set("Range", format_range(NptRange(start, end)))
            url = self._base_url(request, movie) + TRACK_CONTROL
            response.headers.set("RTP-Info", format_rtp_info(
                [RtpInfo(url, session.seq, session.rtptime(session.position))]))
        return Answer(response, session, [StartSending(session)])  # once the reply is out

    def _play_live(self, request: Request, session: StreamSession) -> Answer:
        """A live stream has no timeline to seek in: a Range is ignored and the reply says
        npt=now- (RFC 2326 C.1.5); the viewer joins at the source's next frame."""
        response = Response(200, Headers())
        if not self.lab:
            response.headers.set("Range", format_range(NptRange(None, None)))
            url = self._base_url(request, session.movie) + TRACK_CONTROL
            with session.lock:
                info = RtpInfo(url, session.seq, session.rtptime_now(time.monotonic()))
            response.headers.set("RTP-Info", format_rtp_info([info]))
        return Answer(response, session, [StartSending(session)])

    def _play_member(self, request: Request, session: StreamSession, npt: NptRange | None) -> Answer:
        """A multicast member joins the group's one timeline: a stored movie's broadcast is
        where it is, so a Range other than the start (npt=0-, which every client sends) or
        now is refused with 457 and a reason."""
        movie = session.movie
        if npt is not None and not session.live and npt.start is not None and npt.start > 1e-3:
            raise RtspError(Status.INVALID_RANGE,
                            f"{movie.name} is a multicast broadcast shared by every viewer: "
                            "it cannot be seeked (PLAY without Range joins it where it is)", explain=True)
        assert self.groups is not None
        seq, rtptime, position = self.groups.play(session)
        response = Response(200, Headers())
        if session.live:
            response.headers.set("Range", format_range(NptRange(None, None)))
        else:
            response.headers.set("Range", format_range(NptRange(position, movie.duration)))
        url = self._base_url(request, movie) + TRACK_CONTROL
        response.headers.set("RTP-Info", format_rtp_info([RtpInfo(url, seq, rtptime)]))
        return Answer(response, session)

    def do_PAUSE(self, request: Request, session: StreamSession) -> Answer:
        if session.group is not None:
            if not session.live and not session.group.ended:  # (GStreamer PAUSEs at the end: fine)
                raise RtspError(Status.METHOD_NOT_VALID_IN_THIS_STATE,
                                f"{session.movie.name} is a multicast broadcast shared by every viewer: "
                                "it cannot be paused (TEARDOWN leaves it)",
                                {"Allow": "PLAY, TEARDOWN, GET_PARAMETER, OPTIONS"}, explain=True)
            assert self.groups is not None
            self.groups.pause(session)  # this viewer stops counting; the group sends while others watch
            return Answer(Response(200, Headers()), session)
        with session.lock:
            self.streamer.pause(session)  # session.position already names the next frame
        return Answer(Response(200, Headers()), session)

    def do_TEARDOWN(self, request: Request, session: StreamSession) -> Answer:
        return Answer(Response(200, Headers()), session, [EndSession(session, "TEARDOWN")])

    # -- session lifetime ------------------------------------------------------
    def end_session(self, session: StreamSession, why: str) -> None:
        """End ``session`` (TEARDOWN, its connection closed, timed out): BYE, out of the tables."""
        if session.group is not None and self.groups is not None:
            self.groups.leave(session)
        self.streamer.remove(session, bye=why)
        self.registry.remove(session)
        self.sessions.pop(session.id, None)
        log.info("session %s ended (%s): %d frames, %d packets, %d skipped, max lateness %.1f ms",
                 session.id, why, session.frames_sent, session.packets_sent, session.frames_skipped,
                 session.max_lateness * 1000)
