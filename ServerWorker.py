"""Server I/O: one ServerWorker per RTSP connection (the Streamer paces every session).

ServerWorker follows socketserver's setup -> handle -> finish: it reads bytes, lets
RtspParser frame them, answers each request (RtspError anywhere becomes the reply in
one place, `_reply_error`), and owns the sessions created on its connection.  The
sessions' RTP/RTCP is sent by Streamer.py's single pacing loop, which reaches the
connection only through the callables a session carries (`send_interleaved`, `expire`).
"""

from __future__ import annotations

import logging
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Callable, Dict, List, Optional, Tuple

from MediaLibrary import MediaLibrary, Movie
from RtspAuth import Authenticator
from RtspHeaders import NptRange, RtpInfo, Transport, format_range, format_public, format_rtp_info, format_session, parse_range, parse_session
from RtspMessage import (
    Headers, InterleavedFrame, Method, MessageError, Request, Response, RtspError, RtspParser, Status,
)
from RtspSession import SESSIONLESS, SUPPORTED, State, new_session_id, next_state
from Sdp import movie_sdp
from Streamer import SERVER_NAME, StreamSession, Streamer, unmapped

log = logging.getLogger(__name__)

TRACK_CONTROL = "trackID=0"
PUBLIC = format_public(SUPPORTED)
SOCKET_BUFFER = 4 << 20
WORKER_POLL = 1.0  # a worker wakes this often for its timeouts; shutdown() wakes it at once
WRITE_TIMEOUT = 10.0  # a reply write gives up on a client that stopped reading after this long
LAB_GRACE = 0.03  # wait this long for the rest of an unterminated LF-only request


@dataclass
class ServerConfig:
    """Fixed settings shared by every worker (nothing per connection lives here)."""

    media: MediaLibrary
    session_timeout: float = 60.0
    max_sessions: int = 1000
    loop: bool = False
    connection_timeout: float = 300.0
    request_timeout: float = 10.0  # a started message must be complete within this (slowloris)
    max_request_rate: float = 0.0  # requests/s per connection, burst of one second; 0 = unlimited
    auth: Optional[Authenticator] = None  # RFC 2617 Digest/Basic on every method but OPTIONS
    rng: random.Random = field(default_factory=random.SystemRandom)


# --------------------------------------------------------------------------- worker
class ServerWorker:
    """Serves one RTSP connection: setup -> handle -> finish (socketserver's shape)."""

    def __init__(self, conn: socket.socket, addr, config: ServerConfig, streamer: Streamer,
                 server_ports: Tuple[int, int], registry: "SessionRegistry") -> None:
        self.conn = conn
        self.peer = unmapped(addr[0])
        self.config = config
        self.streamer = streamer
        self.server_ports = server_ports
        self.registry = registry
        self.parser = RtspParser(role="server")
        self.sessions: Dict[str, StreamSession] = {}
        self.lab = False
        self._write_lock = threading.Lock()
        self._pending = b""
        self._closing = False
        self._tokens = config.max_request_rate
        self._tokens_at = time.monotonic()
        self.closed = threading.Event()

    # -- socketserver shape --------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            self.handle()
        except OSError as exc:
            log.info("%s: connection error: %s", self.peer, exc)
        finally:
            self.finish()

    def setup(self) -> None:
        # A reply write may block at most this long on a client that stopped reading. A socket
        # timeout (not SO_SNDTIMEO, whose value is a timeval on Unix but a DWORD of ms on Windows)
        # also makes the socket non-blocking underneath, which send_interleaved relies on.
        self.conn.settimeout(WRITE_TIMEOUT)
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("%s: connected", self.peer)

    def handle(self) -> None:
        last_data = time.monotonic()
        partial_since: Optional[float] = None  # bytes came in since then but no message completed
        while not self._closing:
            ready, _, _ = select.select([self.conn], [], [], WORKER_POLL)
            if partial_since is not None and time.monotonic() - partial_since > self.config.request_timeout:
                log.info("%s: no complete request within %.0f s, connection closed", self.peer,
                         self.config.request_timeout)
                return
            if not ready:
                if self.parser.has_unterminated_lf():
                    partial_since = None
                    self._dispatch([self.parser.finish_unterminated()])
                if not self.sessions and time.monotonic() - last_data > self.config.connection_timeout:
                    log.info("%s: idle connection closed", self.peer)
                    return
                continue
            data = self.conn.recv(65536)
            if not data:
                log.info("%s: disconnected", self.peer)
                return
            last_data = time.monotonic()
            events = self.parser.feed(data)
            if self.parser.has_unterminated_lf():
                # The lab's client sends 'PLAY ... \nCSeq: 3\nSession: 12' with no
                # terminator: if nothing more follows promptly, that was the request.
                more, _, _ = select.select([self.conn], [], [], LAB_GRACE)
                if not more:
                    events.append(self.parser.finish_unterminated())
            if events:
                partial_since = None  # a message completed: the clock restarts with the next bytes
            elif partial_since is None:
                partial_since = last_data
            self._dispatch(events)

    def finish(self) -> None:
        for session in list(self.sessions.values()):
            self._end_session(session, "connection closed")
        try:
            self.conn.close()
        finally:
            self.closed.set()
            log.info("%s: closed", self.peer)

    def shutdown(self) -> None:
        """Ask the worker to stop (from another thread)."""
        self._closing = True
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- messages ------------------------------------------------------------
    def _dispatch(self, events) -> None:
        for event in events:
            if event is None:
                continue
            if isinstance(event, Request):
                self._handle_request(event)
            elif isinstance(event, MessageError):
                self._reply_error(event.error, event.cseq,
                                  Request("", "", Headers(), lf_only=getattr(event, "lf_only", False)))
                if getattr(event, "fatal", False):
                    self._closing = True
            elif isinstance(event, InterleavedFrame):
                self._interleaved_in(event)
            # a Response from a client is not expected; ignore it

    def _handle_request(self, request: Request) -> None:
        if request.lf_only:
            self.lab = True
        log.info("%s: %s %s CSeq %s", self.peer, request.method, request.uri, request.cseq)
        if self.config.max_request_rate and not self._take_token():
            self._reply_error(RtspError(Status.SERVICE_UNAVAILABLE, "request rate limit exceeded",
                                        {"Retry-After": "1"}), request.cseq, request)
            return
        try:
            if request.cseq is None:
                raise RtspError(Status.BAD_REQUEST, "missing CSeq")
            response, after = self._respond(request)
        except RtspError as error:
            self._reply_error(error, request.cseq, request)
            return
        except Exception:  # one place turns a bug into a 500 and keeps serving
            log.exception("%s: internal error on %s", self.peer, request.method)
            self._reply_error(RtspError(Status.INTERNAL_SERVER_ERROR, "internal error"), request.cseq, request)
            return
        self._send_response(response, request)
        if after:
            after()

    def _take_token(self) -> bool:
        """Token bucket: max_request_rate per second, bursts of one second's worth."""
        rate = self.config.max_request_rate
        now = time.monotonic()
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _reply_error(self, error: RtspError, cseq: Optional[int], request: Request) -> None:
        log.info("%s: %d %s", self.peer, int(error.status), error.message)
        headers = Headers()
        for name, value in (error.headers or {}).items():
            headers.set(name, value)
        for value in getattr(error, "challenges", [])[1:]:
            headers.add("WWW-Authenticate", value)  # Basic after Digest, one field each
        if error.status in (Status.NOT_IMPLEMENTED, Status.METHOD_NOT_ALLOWED):
            headers.set("Public", PUBLIC)
        response = Response(int(error.status), headers)
        if cseq is not None:
            response.headers.set("CSeq", str(cseq))
        self._send_response(response, request)

    def _send_response(self, response: Response, request: Request) -> None:
        """Add the common headers and write; lab replies put CSeq, Session in lines 2 and 3."""
        lab = self.lab or request.lf_only
        headers = response.headers
        ordered = Headers()
        cseq = headers.get("CSeq")
        if cseq is None and request.cseq is not None:
            cseq = str(request.cseq)
        if cseq is not None:
            ordered.set("CSeq", cseq)
        session_id = headers.get("Session")
        if session_id is None and lab and request.headers.get("Session"):
            # lab clients read the Session from line 3 even in an error reply: echo theirs
            try:
                session_id = parse_session(request.headers["Session"])[0]
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
        self._write(response.serialize(lf_only=lab))

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            if self._pending:
                self.conn.sendall(self._pending)
                self._pending = b""
            self.conn.sendall(data)

    def send_interleaved(self, data: bytes) -> bool:
        """Queue RTP/RTCP '$' frames on the RTSP connection without blocking the Streamer.

        False means the frame was not sent (the client is not reading fast enough)."""
        with self._write_lock:
            if self._closing:
                return False
            if self._pending:
                try:
                    sent = self._send_now(self._pending)
                except OSError:
                    return False
                self._pending = self._pending[sent:]
                if self._pending:
                    return False
            try:
                sent = self._send_now(data)
            except OSError:
                return False
            if sent < len(data):
                self._pending = bytes(data[sent:])  # whole frames only: finish this one first
            return True

    def _send_now(self, data: bytes) -> int:
        """Send what the socket buffer takes right now, 0 when it is full; never waits.

        select() with no timeout, then one send() on the (timeout-mode, so non-blocking) socket:
        the portable form of send(MSG_DONTWAIT), which Windows lacks. Called with the write lock
        held, so no other writer fills the buffer in between."""
        _, writable, _ = select.select([], [self.conn], [], 0)
        if not writable:
            return 0
        try:
            return self.conn.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def _interleaved_in(self, frame: InterleavedFrame) -> None:
        for session in list(self.sessions.values()):  # the Streamer may expire one meanwhile
            if session.channel is not None and frame.channel == session.channel + 1:
                session.touch()
                session.receive_rtcp(frame.data)

    # -- methods ---------------------------------------------------------------
    def _respond(self, request: Request) -> Tuple[Response, Optional[Callable[[], None]]]:
        try:
            method = Method(request.method)
        except ValueError:
            raise RtspError(Status.NOT_IMPLEMENTED, f"method {request.method!r} not implemented") from None
        if method not in SUPPORTED:
            raise RtspError(Status.NOT_IMPLEMENTED, f"{method.value} is not supported by this server")
        if self.config.auth is not None and method is not Method.OPTIONS:
            self.config.auth.require(request.headers, request.method, request.uri)  # 401 + challenge
        session = self._find_session(request)
        if session is not None:
            session.touch()
        if method in SESSIONLESS:
            return getattr(self, "do_" + method.value)(request, session), None
        state = session.state if session is not None else State.INIT
        new_state = next_state(state, method)  # 455 when the table says no
        response, after = getattr(self, "do_" + method.value)(request, session)
        if method is not Method.SETUP or session is not None:
            target = session
        else:
            target = self.sessions[response.headers.get("Session")]
        target.state = new_state
        return response, after

    def _find_session(self, request: Request) -> Optional[StreamSession]:
        value = request.headers.get("Session")
        if value is None:
            return None
        session_id, _ = parse_session(value)
        session = self.sessions.get(session_id)
        if session is None:
            # Unknown, expired, or another connection's: RFC 2326 12.37 -> 454.
            raise RtspError(Status.SESSION_NOT_FOUND, f"session {session_id} not found")
        return session

    def _movie(self, request: Request) -> Tuple[Movie, str]:
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
            host, port = self.conn.getsockname()[:2]
            host = unmapped(host)
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"{scheme}://{netloc}/{movie.name}/"

    def do_OPTIONS(self, request: Request, session: Optional[StreamSession]) -> Response:
        response = Response(200, Headers())
        response.headers.set("Public", PUBLIC)
        if session is not None:
            response.headers.set("Session", session.id)
        return response

    def do_GET_PARAMETER(self, request: Request, session: Optional[StreamSession]) -> Response:
        response = Response(200, Headers())  # keepalive (RFC 2326 10.8); no parameters served
        if session is not None:
            response.headers.set("Session", session.id)
        return response

    do_SET_PARAMETER = do_GET_PARAMETER

    def do_DESCRIBE(self, request: Request, session: Optional[StreamSession]) -> Response:
        movie, _ = self._movie(request)
        self._check_carriable(movie)
        local = unmapped(self.conn.getsockname()[0])
        sdp = movie_sdp(
            name=movie.name, duration=movie.duration, fps=movie.fps, server_addr=local,
            session_id=int(movie.mtime), version=1, track_control=TRACK_CONTROL,
            width=movie.stream.width, height=movie.stream.height,
        )
        response = Response(200, Headers(), body=sdp.encode())
        response.headers.set("Content-Base", self._base_url(request, movie))
        response.headers.set("Content-Type", "application/sdp")
        return response

    def _check_carriable(self, movie: Movie) -> None:
        if movie.problems and not self.lab:
            index, reason = movie.problems[0]
            raise RtspError(Status.UNSUPPORTED_MEDIA_TYPE,
                            f"{movie.name} frame {index} cannot be sent as RTP/JPEG (RFC 2435): {reason}")

    def do_SETUP(self, request: Request, session: Optional[StreamSession]):
        movie, _ = self._movie(request)
        value = request.headers.get("Transport")
        if value is None:
            raise RtspError(Status.UNSUPPORTED_TRANSPORT, "SETUP without a Transport header")
        choice = self._choose_transport(Transport.parse_list(value))
        if choice.lab or request.lf_only:
            self.lab = True
        else:
            self._check_carriable(movie)
        if session is None:
            if self.registry.count() >= self.config.max_sessions:
                raise RtspError(Status.SERVICE_UNAVAILABLE, f"limit of {self.config.max_sessions} sessions reached")
            session = StreamSession(self.registry.new_id(), movie, self.config.rng,
                                    send_interleaved=self.send_interleaved, expire=self.expire)
            session.lab = self.lab
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
        reply = Transport(protocol="RTP", profile="AVP", lower=choice.lower, unicast=True, ssrc=session.ssrc)
        if choice.lower == "TCP":
            channels = choice.interleaved or self._free_channels()
            session.channel, session.udp_dest, session.rtcp_dest = channels[0], None, None
            reply.interleaved = channels
        else:
            rtp_port, rtcp_port = choice.client_port
            session.udp_dest = (self.peer_for_udp(), rtp_port)
            session.rtcp_dest = (self.peer, rtcp_port)
            session.channel = None
            reply.client_port = choice.client_port
            reply.server_port = self.server_ports
        session.transport = reply
        self.streamer.add(session)
        response = Response(200, Headers())
        response.headers.set("Session", session.id)
        if not self.lab:
            response.headers.set("Transport", reply.format())
        return response, None

    def peer_for_udp(self) -> str:
        """RTP goes only to the address the RTSP connection came from (no reflection)."""
        family = self.streamer.rtp_sock.family
        if family == socket.AF_INET6 and ":" not in self.peer:
            return "::ffff:" + self.peer
        return self.peer

    def _free_channels(self) -> Tuple[int, int]:
        used = {s.channel for s in list(self.sessions.values()) if s.channel is not None}
        channel = 0
        while channel in used:
            channel += 2
        return channel, channel + 1

    def _choose_transport(self, offers: List[Transport]) -> Transport:
        """The first offer we can serve: unicast RTP/AVP over UDP or interleaved TCP, or the lab's RTP/UDP."""
        reasons = []
        for offer in offers:
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
        raise RtspError(Status.UNSUPPORTED_TRANSPORT, "; ".join(reasons) or "no transport offered")

    def do_PLAY(self, request: Request, session: StreamSession):
        value = request.headers.get("Range")
        npt = parse_range(value) if value is not None else None
        with session.lock:
            self.streamer.pause(session)
            return self._play_locked(request, session, npt)

    def _play_locked(self, request: Request, session: StreamSession, npt: Optional[NptRange]):
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
        response.headers.set("Session", session.id)
        if not self.lab:
            response.headers.set("Range", format_range(NptRange(start, end)))
            url = self._base_url(request, movie) + TRACK_CONTROL
            response.headers.set("RTP-Info", format_rtp_info(
                [RtpInfo(url, session.seq, session.rtptime(session.position))]))
        return response, (lambda: self.streamer.play(session))

    def do_PAUSE(self, request: Request, session: StreamSession):
        with session.lock:
            self.streamer.pause(session)  # session.position already names the next frame
        response = Response(200, Headers())
        response.headers.set("Session", session.id)
        return response, None

    def do_TEARDOWN(self, request: Request, session: StreamSession):
        response = Response(200, Headers())
        response.headers.set("Session", session.id)

        def after() -> None:
            self._end_session(session, "TEARDOWN")
        return response, after

    # -- session lifetime ------------------------------------------------------
    def _end_session(self, session: StreamSession, why: str) -> None:
        self.streamer.remove(session, bye=why)
        self.registry.remove(session)
        self.sessions.pop(session.id, None)
        log.info("session %s ended (%s): %d frames, %d packets, %d skipped, max lateness %.1f ms",
                 session.id, why, session.frames_sent, session.packets_sent, session.frames_skipped,
                 session.max_lateness * 1000)

    def expire(self, session: StreamSession) -> None:
        """Called by the Streamer when a session timed out."""
        self._end_session(session, "timeout")


class SessionRegistry:
    """Every live session of the server (ids unique, count for --max-sessions)."""

    def __init__(self) -> None:
        self._sessions: Dict[str, StreamSession] = {}
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
