"""The player's receive engine (sockets + threads, no Tk), shared by the Tk window and the headless mode.

:class:`ReceiveEngine` speaks RTSP (RFC 2326) through the sans-IO :class:`RtspClient.RtspClientProtocol`,
receives RTP (RFC 3550) over UDP or interleaved on the RTSP connection (§10.12), validates and
reorders it (:mod:`RtpStats`), reassembles RFC 2435 frames (:class:`RtpJpeg.JpegDepacketizer`) and
hands complete frames, log lines and the end of the stream to its consumer over a ``queue.Queue``.
Only the consumer's thread touches widgets: :class:`Client.Client` drains the queue with ``after()``.
"""

from __future__ import annotations

import enum
import os
import logging
import queue
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from Impair import Impairer, ImpairSpec
from RtcpPacket import RTCP_MIN_TIME, ReportBlock, unix_from_ntp
from RtcpSession import RtcpReceiver
from RtpJpeg import JpegDepacketizer
from RtpPacket import JPEG_CLOCK_RATE, RtpPacket, seq_diff, ts_diff
from RtpStats import IntervalReport, PacketDiagnosis, PlaybackStats, RtpReceiver, StatsSnapshot, Unusable
from RtspClient import (ClientState, Dialect, Reply, RtspClientProtocol, SdpInfo,
                        describe_failure, parse_rtsp_url, parse_sdp_info)
from RtspMessage import InterleavedFrame, Method
from SocketBuffers import request_buffer

log = logging.getLogger(__name__)

RCVBUF_BYTES = 4 * 1024 * 1024       # the default ~208 KB loses part of a burst of fragments
BYE_GRACE = 0.25                     # seconds of RTP silence after a BYE before the stream ends
CNAME_TOOL = "RtpLabPlayer/1.0"
DEFAULT_SESSION_BW = 125_000.0       # octets/s (1 Mbit/s) assumed until the rate is measured (§6.2)
MAX_AUTH_ROUNDS = 3                  # the request, the answer to a 401, one retry for a stale nonce
PROBE_TIMEOUT = 1.0                  # OPTIONS/DESCRIBE unanswered this long: try the lab dialect
LAB_QUIET = 0.03                     # a reply without an end is complete after this much silence
LAB_FPS = 20.0                       # the hand-out server sends a frame every 50 ms
PT_JPEG = 26                         # RFC 3551: JPEG's static payload type
TIMER_SLACK = 0.001                  # s a reader sleeps past a timer, so the timer is surely due
TIMER_CAP = 1.0                      # s a reader sleeps at most: a timer setting changed by another
                                     # thread (the session timeout) counts within it; ~0.01% of a core


class ClientError(Exception):
    """A failure the user can act on; ``str()`` is one line."""


class NoReply(ClientError):
    """A request got no reply: none within the timeout, or ``closed``: the server closed the connection."""

    def __init__(self, message: str, closed: bool = False) -> None:
        super().__init__(message)
        self.closed = closed


class ReplyError(ClientError):
    """A request got a reply that failed (non-2xx, or unusable content); ``reply`` is it."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


class EventKind(enum.Enum):
    FRAME = "frame"
    LOG = "log"          # RTSP request/reply text, for the log view
    STATE = "state"      # ClientState changed
    END = "end"          # the stream ended (reason text)
    ERROR = "error"      # a request failed (one line)
    STATS = "stats"      # RTCP in or out: the statistics changed while maybe no frame flows


@dataclass
class Frame:
    """A complete JPEG frame and where it sits in the stream."""

    data: bytes
    rtp_timestamp: int
    index: int            # frame number in the media (from the timestamp and the PLAY position)
    position: float       # media time in seconds
    arrival: float        # time.monotonic() at completion
    generation: int = 0   # ReceiveEngine.generation when completed: older ones predate a seek


@dataclass
class Event:
    kind: EventKind
    payload: Any = None


class EventQueue(queue.Queue):
    """The engine's events (a ``queue.Queue``) that can wake a consumer who does not poll.

    The consumer drains the queue, then calls :meth:`arm`; the next :meth:`put`, from whatever
    thread, calls :attr:`waker` once (with the queue's lock held: it must only signal, e.g. write
    a byte to a socket). The Tk window sleeps that way between frames (Client.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.waker: Callable[[], None] | None = None
        self._armed = False

    def arm(self) -> bool:
        """Have the next put() call the waker; False (not armed) when events are waiting already."""
        with self.mutex:
            if self.queue:
                return False
            self._armed = True
            return True

    def _put(self, item: Event) -> None:
        super()._put(item)
        if self._armed and self.waker is not None:
            self._armed = False
            self.waker()


@dataclass(frozen=True)
class SentReport:
    """One receiver report we sent (RFC 3550 §6.4.2), for tests and diagnostics.

    ``impair_delivered`` is how many packets the impairer had delivered when the report was
    built: the ground truth for the report's interval is computed from exactly those.
    """

    time: float
    block: ReportBlock | None
    interval: IntervalReport | None
    impair_delivered: int | None


def sys_linux() -> bool:
    import sys
    return sys.platform.startswith("linux")


class ReceiveEngine:
    """Owns the RTSP connection, the RTP/RTCP sockets and the threads; frames go to :attr:`events`.

    Use: ``open()``, then ``options()/describe()/setup()/play()/pause()/teardown()`` (each blocks
    until its reply, raising :class:`ClientError` on failure), ``snapshot()`` for statistics at
    any time, ``close()`` at the end. ``url=None`` with ``sdp_text`` plays a raw RTP stream.
    """

    def __init__(self, url: str | None = None, *, rtp_port: int = 0, transport: str = "udp",
                 sdp_text: str | None = None, reorder_window: float = 0.05,
                 reply_timeout: float = 10.0, connect_timeout: float = 5.0,
                 idle_timeout: float = 3.0, frame_queue: int = 512, fps_hint: float | None = None,
                 log_frames: bool = True, impair: ImpairSpec | str | None = None,
                 impair_record: bool = False, rtcp_min_time: float = RTCP_MIN_TIME,
                 rtcp_rng: random.Random | None = None, cname: str | None = None,
                 username: str | None = None, password: str | None = None,
                 lab: bool | None = None, probe_timeout: float = PROBE_TIMEOUT) -> None:
        if transport not in ("udp", "tcp", "multicast"):
            raise ValueError(f"transport must be udp, tcp or multicast, not {transport!r}")
        if lab and transport != "udp":
            raise ValueError("the lab dialect sends RTP over UDP only (no --transport tcp)")
        # lab: True speaks the hand-out's dialect from the start, False never, None (auto) falls back
        # to it when OPTIONS/DESCRIBE go unanswered for probe_timeout, or are answered in its form
        self.lab_mode = lab
        self.probe_timeout = probe_timeout
        self.dialect_reason: str | None = "--lab" if lab else None
        self._rtsp_confirmed = lab is False  # the server answered like an RTSP 1.0 server
        self.rtp_port = rtp_port
        self.transport = transport
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.fps_hint = fps_hint
        self.events = EventQueue()
        self.frame_queue_max = frame_queue
        self.proto: RtspClientProtocol | None = \
            RtspClientProtocol(url, username=username, password=password,
                               dialect=Dialect.LAB if lab else Dialect.RTSP) if url else None
        self.url = self.proto.url if self.proto else url      # without user:password@
        self.sdp: SdpInfo | None = parse_sdp_info(sdp_text) if sdp_text else None
        self.rtsp_sock: socket.socket | None = None
        self.rtp_sock: socket.socket | None = None
        self.rtcp_sock: socket.socket | None = None
        self.rcvbuf = 0
        self.server_addr: tuple[str, int] | None = None
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._reply_cond = threading.Condition(self._lock)
        self._replies: dict[int, Reply] = {}
        self._awaiting: set[int] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wake_r: socket.socket | None = None    # wakes the readers' select() at close()
        self._wake_w: socket.socket | None = None
        self._reorder_window = reorder_window
        self._new_receiver()
        self.pstats = PlaybackStats()
        self.ssrc: int | None = None
        self.bad_packets = 0
        self.foreign_packets = 0
        self.foreign_source_packets = 0     # UDP datagrams from a host other than the server's
        self._protocol_error: str | None = None   # the server sent something unparseable: the reason
        self.wrong_pt_packets = 0
        self.diag = PacketDiagnosis()           # why arriving packets make no frames, if they do not
        self._unterminated_since: float | None = None   # a reply without an end is being held
        self.frames_displayable = 0
        self.queue_dropped = 0
        self.last_frame: Frame | None = None
        self.last_packet_time: float | None = None
        self.play_started: float | None = None
        self.ended: str | None = None
        self.failure: str | None = None     # set with ``ended`` when the server vanished mid-stream
        self.connection_lost = False
        self._lost_at: float | None = None   # when the RTSP connection closed mid-session (UDP)
        self._keepalive_sent: float | None = None   # an unanswered keepalive went out then
        self._pos_base: tuple[int, float] | None = None   # (rtp timestamp, media seconds) anchor
        self._position = 0.0
        self._skip_before: int | None = None              # RTP-Info seq after a seek
        self._hold: list | None = None                     # packets held while a PLAY is outstanding
        self._play_pending: float | None = None            # Range start of the outstanding PLAY
        self.generation = 0                                # +1 per seek; frames carry it
        self._bye: tuple[str, float] | None = None        # (reason, arrival) of an RTCP BYE
        self._sr_map: tuple[int, int] | None = None       # (ntp64, rtp ts) of an SR since the last PLAY
        self.delay_ms: float | None = None
        self._our_ssrc = int.from_bytes(os.urandom(4), "big")
        # RTCP (RFC 3550 §6): our RR schedule (§6.3) and what the sender's reports said
        self.rtcp_min_time = rtcp_min_time
        self.cname = cname or f"player-{self._our_ssrc:08x}@{socket.gethostname()}"
        self.rtcp = RtcpReceiver(self._our_ssrc, self.cname, CNAME_TOOL, rtcp_rng or random.Random(),
                                 rtcp_min_time, logger=log)   # reports built and read, pure
        self._next_rtcp: float | None = None
        self.reports_sent: list[SentReport] = []        # the last 1000
        self.rr_sent = 0
        self.sender_clock: float | None = None           # sender's wall clock of the last frame
        # Network impairment applied to incoming RTP before the receive path (Impair.py)
        self.impairer: Impairer | None = None
        self._impair_record = impair_record
        if impair is not None:
            self.set_impairment(impair)
        self.interleaved = (0, 1)
        self.group: tuple[str, int, int] | None = None    # multicast (group, RTP port, RTCP port)
        self.log_frames = log_frames
        self.final_snapshot: StatsSnapshot | None = None
        # The packet inspector's tap (PacketInspector.PacketRing.add): (arrival, is RTCP, datagram,
        # sent by us), called with the lock held for every datagram as it comes off the wire.
        self.tap: Callable[[float, bool, bytes, bool], None] | None = None

    def _new_receiver(self) -> None:
        self.rx: RtpReceiver[RtpPacket] = RtpReceiver(JPEG_CLOCK_RATE, self._reorder_window)
        self.depack = JpegDepacketizer()

    def set_impairment(self, spec: ImpairSpec | str) -> ImpairSpec:
        """Impair incoming RTP from now on (any thread; the GUI's Apply button).

        The first call creates the :class:`Impair.Impairer`; later ones reconfigure it, so its
        ground-truth counters keep counting. Raises ImpairError (a ValueError) for a bad spec.
        """
        parsed = ImpairSpec.parse(spec) if isinstance(spec, str) else spec
        with self._lock:
            if self.impairer is None:
                self.impairer = Impairer(parsed, record=self._impair_record)
                log.info("impairment %s", parsed)
            else:
                self.impairer.reconfigure(parsed)
        return parsed

    # -- properties used by the UIs ------------------------------------------------------------
    @property
    def our_ssrc(self) -> int:
        """The SSRC of our RTCP reports (RFC 3550 §8: random)."""
        return self._our_ssrc

    @property
    def state(self) -> ClientState:
        return self.proto.state if self.proto else ClientState.PLAYING

    @property
    def dialect(self) -> Dialect | None:
        """The RTSP dialect in use (None: no RTSP, an SDP stream)."""
        return self.proto.dialect if self.proto is not None else None

    @property
    def lab(self) -> bool:
        return self.dialect is Dialect.LAB

    def dialect_note(self) -> str:
        """What the status line says about the dialect: '' for RTSP 1.0."""
        if not self.lab:
            return ""
        why = f" ({self.dialect_reason})" if self.dialect_reason and self.dialect_reason != "--lab" else ""
        return f"lab dialect{why}"

    def diagnosis(self, now: float | None = None, settled: bool = False) -> str | None:
        """One line when packets arrive but none (or few) make frames: count, source, first reason
        (``settled``: the stream is over, say it even if packets came for less than 2 s)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            incomplete = self.depack.last_drop_reason or self.depack.last_bad_reason
            return self.diag.line(self.frames_displayable, now, incomplete, settled=settled)

    def status_note(self) -> str:
        """The status line when no request is running: the diagnosis if any, else the dialect."""
        return self.diagnosis() or self.dialect_note()

    @property
    def expected_pt(self) -> int:
        sdp = self.current_sdp
        return sdp.payload_type if sdp is not None else PT_JPEG

    @property
    def fps(self) -> float:
        sdp = self.current_sdp
        if sdp is not None and sdp.framerate:
            return sdp.framerate
        return self.fps_hint or (LAB_FPS if self.lab else 25.0)

    @property
    def current_sdp(self) -> SdpInfo | None:
        return self.proto.sdp if self.proto and self.proto.sdp else self.sdp

    @property
    def duration(self) -> float | None:
        sdp = self.current_sdp
        if sdp is not None and sdp.range_end is not None:
            return sdp.range_end
        return None

    @property
    def frame_total(self) -> int | None:
        d = self.duration
        return int(round(d * self.fps)) if d is not None else None

    # -- opening -------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect the RTSP control connection (or bind the SDP's port); one-line ClientError on failure."""
        if self.proto is None:
            if self.sdp is None:
                raise ClientError("nothing to play: give an rtsp:// URL or an SDP file")
            port = self.sdp.media_port or self.rtp_port
            self._bind_udp(port, self.sdp.connection or "0.0.0.0")
            self._start_threads()
            self.pstats.start(time.monotonic())
            self.play_started = time.monotonic()
            return
        self._connect()
        if self.transport == "udp":
            assert self.rtsp_sock is not None
            family = self.rtsp_sock.family
            self._bind_udp(self.rtp_port, "::" if family == socket.AF_INET6 else "0.0.0.0")
        self._start_threads()

    def _connect(self) -> None:
        """Open the RTSP connection (one-line ClientError on failure)."""
        assert self.proto is not None
        host, port, _ = parse_rtsp_url(self.proto.url)
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ClientError(f"cannot resolve server {host!r}: {exc.strerror}") from None
        except ConnectionRefusedError:
            raise ClientError(f"server unreachable: connection to {host}:{port} refused "
                              "(is the server running on that port?)") from None
        except (socket.timeout, OSError) as exc:
            raise ClientError(f"server unreachable: {host}:{port}: {exc}") from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request_buffer(sock, socket.SO_RCVBUF, RCVBUF_BYTES, "TCP (RTSP)", logging.DEBUG)
        self.rtsp_sock = sock
        self.server_addr = sock.getpeername()[:2]

    @property
    def session_lost(self) -> bool:
        """The server went away (or the connection did): no session left; the next request reconnects."""
        return self.proto is not None and (self.connection_lost or self.failure is not None) \
            and self.proto.session_id is None

    def _drop_session(self) -> None:
        """The server is gone (called with the lock held): the session is dead, so the client is
        back in INIT (the protocol object keeps the URL, credentials and the last SDP) and
        the connection is shut down, so that the next request connects again (:meth:`_reconnect`)."""
        old = self.proto
        if old is None or (old.session_id is None and old.state == ClientState.INIT):
            return
        old.new_connection()
        self._hold = None
        self._next_rtcp = None
        sock = self.rtsp_sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)    # the reader sees EOF and ends
            except OSError:
                pass
        self.events.put(Event(EventKind.STATE, old.state))

    def _reconnect(self) -> None:
        """Connect again after a lost server (SETUP/DESCRIBE after the loss): a new RTSP
        connection and reader, and the receive side reset for a new session."""
        assert self.proto is not None
        log.info("reconnecting to %s", self.proto.url)
        old_sock = self.rtsp_sock
        with self._lock:
            self._drop_session()
            self.proto.new_connection()          # a parser left mid-message would eat the new replies
            if old_sock is not None:
                try:
                    old_sock.close()
                except OSError:
                    pass
            self.rtsp_sock = None
        self._connect()
        with self._lock:
            self.connection_lost = False
            self._protocol_error = None
            self.failure = self.ended = None
            self._lost_at = self._keepalive_sent = None
            self._bye = None
            self.ssrc = None
            self._new_receiver()
            self.diag = PacketDiagnosis()        # a new session: why-no-frames counts start again
            self.pstats = PlaybackStats()
            self._sr_map = None
            self.delay_ms = None
            self.last_frame = None
            self.last_packet_time = self.play_started = None
            self._pos_base = None
            self._position = 0.0
            self._skip_before = None
            self.generation += 1
            self.sender_clock = None
            self._next_rtcp = None
            self.rtcp.reset()
        self._threads = [t for t in self._threads if t.is_alive()]
        self._start_rtsp_reader()

    def _bind_udp(self, port: int, host: str) -> None:
        """Bind the RTP socket on ``port`` (0: any even port) and RTCP on port + 1 (RFC 3550 §11)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bind_host = host
        try:
            import ipaddress
            addr = ipaddress.ip_address(host)
            if addr.is_multicast:
                bind_host = host
            elif not addr.is_unspecified and not addr.is_loopback:
                bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        except ValueError:
            bind_host = "0.0.0.0"
            family = socket.AF_INET
        for attempt in range(50):
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((bind_host, port))
            except OSError as exc:
                rtp.close()
                if port:
                    raise ClientError(f"RTP port {port} is busy ({exc.strerror}); "
                                      f"choose another port or 0 for any") from None
                continue
            actual = rtp.getsockname()[1]
            if port == 0 and actual % 2:
                rtp.close()
                continue
            rtcp: socket.socket | None = None
            candidate = socket.socket(family, socket.SOCK_DGRAM)
            try:
                candidate.bind((bind_host, actual + 1))
                rtcp = candidate
            except OSError:
                candidate.close()
                if port == 0:
                    rtp.close()
                    continue
                log.warning("RTCP port %d busy: no receiver reports", actual + 1)
            # Non-blocking, read after select(): portable (Windows has no MSG_DONTWAIT).
            rtp.setblocking(False)
            if rtcp is not None:
                rtcp.setblocking(False)
            self.rtp_sock, self.rtcp_sock, self.rtp_port = rtp, rtcp, actual
            self.rcvbuf = request_buffer(rtp, socket.SO_RCVBUF, RCVBUF_BYTES, "UDP (RTP)")
            log.info("RTP on UDP port %d (receive buffer %d bytes)", actual, self.rcvbuf)
            return
        raise ClientError("could not bind a free even/odd UDP port pair for RTP/RTCP")

    def _join_group(self, group: str, ports: tuple[int, int], ttl: int | None) -> None:
        """Receive the group's RTP and RTCP (RFC 3550 6.2: reports go to the group too).

        The group is joined on the interface the RTSP connection leaves by (its local
        address), not whatever the routing table picks; on Linux IP_MULTICAST_ALL is turned
        off so a socket hears only the groups it joined.  IPv6 groups (ff15::/16) join on
        the default interface (index 0)."""
        import ipaddress

        try:
            addr = ipaddress.ip_address(group)
        except ValueError:
            raise ClientError(f"the server gave multicast group {group!r}, not an address") from None
        if not addr.is_multicast:
            raise ClientError(f"the server gave destination {group}, which is not a multicast group")
        v6 = addr.version == 6
        family = socket.AF_INET6 if v6 else socket.AF_INET
        local = self.rtsp_sock.getsockname()[0] if self.rtsp_sock is not None else "0.0.0.0"
        if not v6 and ":" in local:
            local = local[7:] if local.startswith("::ffff:") else "0.0.0.0"
        socks = []
        try:
            for port in ports:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # other viewers here
                    except OSError:
                        pass
                # Binding to the group itself filters other traffic to the port (Linux, macOS);
                # Windows only binds local addresses.
                bind_host = group if os.name != "nt" else ("::" if v6 else "0.0.0.0")
                sock.bind((bind_host, port))
                sock.setblocking(False)  # the reader drains both sockets in turn
                if v6:
                    mreq = addr.packed + struct.pack("@I", 0)  # struct ipv6_mreq, interface 0
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                    if ttl is not None:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
                else:
                    mreq = addr.packed + socket.inet_aton(local)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
                    if ttl is not None:
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                    all_opt = getattr(socket, "IP_MULTICAST_ALL", 49 if sys_linux() else None)
                    if all_opt is not None:
                        sock.setsockopt(socket.IPPROTO_IP, all_opt, 0)
        except OSError as exc:
            for sock in socks:
                sock.close()
            raise ClientError(f"cannot join multicast group {group} port {ports[0]}: {exc.strerror or exc}") from None
        self.rtp_sock, self.rtcp_sock = socks
        self.rtp_port = ports[0]
        self.group = (group, ports[0], ports[1])
        self.rcvbuf = request_buffer(self.rtp_sock, socket.SO_RCVBUF, RCVBUF_BYTES, "UDP (RTP, multicast)")
        log.info("joined multicast group %s ports %d-%d on %s", group, ports[0], ports[1], local)
        self._make_wake()
        t = threading.Thread(target=self._udp_loop, name="rtp-reader", daemon=True)
        self._threads.append(t)
        t.start()

    def _make_wake(self) -> None:
        """The readers sleep in select() until data arrives or their next timer is due (see
        _next_timer); close() wakes them through this pair. Sockets, not a pipe: Windows'
        select() takes nothing else. Nobody reads it: once written, it stays readable."""
        if self._wake_r is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)

    def _start_threads(self) -> None:
        self._make_wake()
        if self.rtsp_sock is not None:
            self._start_rtsp_reader()
        if self.rtp_sock is not None:
            t = threading.Thread(target=self._udp_loop, name="rtp-reader", daemon=True)
            self._threads.append(t)
            t.start()

    # -- RTSP requests (blocking; call from any thread but the reader threads) -----------------
    def _send(self, cseq: int, data: bytes, timeout: float | None = None) -> Reply:
        assert self.proto is not None
        if self.rtsp_sock is None:
            raise ClientError("lost the RTSP connection to the server")
        pending = self.proto.pending.get(cseq)
        with self._lock:
            self._awaiting.add(cseq)
        try:
            return self._send_and_wait(cseq, data, pending, timeout)
        finally:
            with self._lock:
                self._awaiting.discard(cseq)
                self._replies.pop(cseq, None)

    def _send_and_wait(self, cseq: int, data: bytes, pending: Any, timeout: float | None = None) -> Reply:
        assert self.rtsp_sock is not None and self.proto is not None
        self.events.put(Event(EventKind.LOG, ("C->S", data.decode("utf-8", "replace").replace("\r\n", "\n"))))
        log.debug("C->S\n%s", data.decode("utf-8", "replace"))
        try:
            with self._send_lock:
                self.rtsp_sock.sendall(data)
        except OSError as exc:
            raise ClientError(f"lost the RTSP connection to the server: {exc}") from None
        wait = self.reply_timeout if timeout is None else min(timeout, self.reply_timeout)
        deadline = time.monotonic() + wait
        with self._reply_cond:
            while cseq not in self._replies:
                if self._protocol_error is not None:
                    self.proto.pending.pop(cseq, None)
                    raise ClientError(self._protocol_error)
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.connection_lost:
                    self.proto.pending.pop(cseq, None)
                    method = pending.method if pending else "request"
                    why = "the server closed the connection" if self.connection_lost else \
                        f"no reply within {wait:g} s"
                    if self.lab and method == Method.SETUP and not self.connection_lost:
                        why += (" (a lab server says nothing when it cannot open the file: "
                                f"is {self.proto.lab_filename!r} in its folder?)")
                    raise NoReply(f"{method} failed: {why}", closed=self.connection_lost)
                self._reply_cond.wait(min(left, 0.25))
            reply = self._replies.pop(cseq)
        if reply.ok:
            self.events.put(Event(EventKind.STATE, self.proto.state))
        return reply

    def _request(self, build: Callable[..., tuple[int, bytes]], *args: Any,
                 timeout: float | None = None) -> Reply:
        """Send a request and wait for its reply; a 401 the protocol can answer (first
        challenge, or a stale nonce) is sent again with a new CSeq and Authorization."""
        if self.proto is None:
            raise ClientError("no RTSP session: playing from an SDP file")
        if self._stop.is_set():
            raise ClientError("the player is closing")
        if self.connection_lost or self.failure is not None or self.rtsp_sock is None \
                or self._protocol_error is not None:
            self._reconnect()             # the server went away earlier: connect again
        for _ in range(MAX_AUTH_ROUNDS):
            with self._lock:
                cseq, data = build(*args, now=time.monotonic())
            reply = self._send(cseq, data, timeout)
            if not reply.retry:
                break
            log.info("%s: 401, answering the server's challenge as %r", reply.request.method,
                        self.proto.username)
        if reply.error is not None:
            raise ReplyError(reply.error, reply)
        if not reply.ok:
            raise ReplyError(describe_failure(reply.request.method, reply.response.status,
                                              reply.response.phrase, reply.request.uri,
                                              self.proto.username), reply)
        return reply

    def options(self) -> Reply | None:
        """OPTIONS; None when the server turned out to speak only the lab dialect (then the
        player has reconnected and speaks that, see :meth:`_probe`)."""
        assert self.proto is not None
        if self.lab:
            return None                      # lab servers know only SETUP, PLAY, PAUSE, TEARDOWN
        if self._probing():
            return self._probe(self.proto.options)
        return self._request(self.proto.options)

    def describe(self) -> Reply | None:
        """DESCRIBE; None in the lab dialect (lab servers have no DESCRIBE)."""
        assert self.proto is not None
        if self.lab:
            self.events.put(Event(EventKind.LOG, ("--", "lab dialect: the server has no DESCRIBE")))
            return None
        if self._probing():
            return self._probe(self.proto.describe)
        return self._request(self.proto.describe)

    # -- the lab dialect fallback ---------------------------------------------------------------
    def _probing(self) -> bool:
        """True while it is not known whether the server speaks RTSP 1.0 (auto mode)."""
        return self.lab_mode is None and not self._rtsp_confirmed and not self.lab

    def _probe(self, build: Callable[..., tuple[int, bytes]]) -> Reply | None:
        """Send OPTIONS or DESCRIBE with a short wait; fall back to the lab dialect (reconnecting)
        when there is no reply within ``probe_timeout``, when the server closes the connection,
        when the reply comes in the lab form (no blank line after it), or when DESCRIBE is
        answered 2xx without an SDP. A real RTSP reply (any status) settles it: RTSP 1.0."""
        assert self.proto is not None
        saved = self.reply_timeout
        self.reply_timeout = min(saved, self.probe_timeout)
        method = "OPTIONS" if build == self.proto.options else "DESCRIBE"
        try:
            reply = self._request(build)
        except NoReply as exc:
            self._switch_to_lab(f"{method} got no reply: the server closed the connection" if exc.closed
                                else f"{method} got no reply within {self.probe_timeout:g} s")
            return None
        except ReplyError as exc:
            if self.proto.lab_form_replies:
                self._switch_to_lab(f"the server answered {method} in the lab form")
                return None
            status = exc.reply.response.status
            if method == "DESCRIBE" and 200 <= status < 300 and not exc.reply.response.body:
                self._switch_to_lab("the server answered DESCRIBE without an SDP")
                return None
            self._confirm(exc.reply)
            raise
        finally:
            self.reply_timeout = saved
        if self.proto.lab_form_replies:
            self._switch_to_lab(f"the server answered {method} in the lab form")
            return None
        self._confirm(reply)
        return reply

    def _confirm(self, reply: Reply) -> None:
        """The server answered like RTSP 1.0: after DESCRIBE, or an OPTIONS listing DESCRIBE, stop
        probing (a real server may then take longer than the probe timeout)."""
        assert self.proto is not None
        if reply.request.method == Method.DESCRIBE or "DESCRIBE" in self.proto.public:
            self._rtsp_confirmed = True

    def _switch_to_lab(self, reason: str) -> None:
        """Close the connection, connect again and speak the lab dialect from now on."""
        assert self.proto is not None
        if self.transport != "udp":
            raise ClientError(f"the server does not speak RTSP 1.0 ({reason}) and its lab dialect "
                              "has no TCP transport: use --transport udp")
        if not self.proto.lab_filename:
            raise ClientError(f"the server does not speak RTSP 1.0 ({reason}); the lab dialect needs a "
                              f"file name in the URL: {self.proto.url}")
        log.info("the server does not speak RTSP 1.0 (%s): reconnecting in the lab dialect", reason)
        old, old_threads = self.rtsp_sock, [t for t in self._threads if t.name == "rtsp-reader"]
        with self._reply_cond:
            self.rtsp_sock = None               # its reader sees this and leaves quietly
            self.proto.use_lab()
            self.dialect_reason = reason
            self.connection_lost = False
            self._unterminated_since = None
            self._replies.clear()
            self._reply_cond.notify_all()
        if old is not None:
            try:
                old.shutdown(socket.SHUT_RDWR)  # a single-threaded server then moves on to accept
            except OSError:
                pass
            old.close()
        for t in old_threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
            self._threads.remove(t)
        self._connect()
        self._start_rtsp_reader()
        self.events.put(Event(EventKind.LOG, ("--", f"lab dialect: {reason}; reconnected, speaking "
                                                    "the hand-out's form (SETUP/PLAY/PAUSE/TEARDOWN)")))
        self.events.put(Event(EventKind.STATE, self.proto.state))

    def setup(self) -> Reply:
        """SETUP the track: UDP client_port=a-(a+1) or TCP interleaved=0-1 (RFC 2326 §10.4, §12.39)."""
        assert self.proto is not None
        if self.lab:
            spec = f"RTP/UDP; client_port= {self.rtp_port}"       # the hand-out's form
        elif self.transport == "udp":
            spec = f"RTP/AVP;unicast;client_port={self.rtp_port}-{self.rtp_port + 1}"
        elif self.transport == "multicast":
            spec = "RTP/AVP;multicast"
        else:
            spec = "RTP/AVP/TCP;unicast;interleaved=0-1"
        reply = self._request(self.proto.setup, spec)
        tr = self.proto.transport
        if self.transport == "multicast":
            if tr is None or tr.unicast or not tr.destination or tr.port is None:
                raise ClientError(f"the server answered SETUP for multicast with "
                                  f"'{tr.format() if tr else 'no Transport'}' (no group and port)")
            self._join_group(tr.destination, tr.port, tr.ttl)
        if tr is not None:
            if tr.ssrc is not None:
                self.ssrc = tr.ssrc
            if tr.interleaved is not None:
                self.interleaved = tr.interleaved
            if self.transport == "tcp" and tr.lower != "TCP" and tr.interleaved is None:
                raise ClientError("the server answered SETUP for TCP with a UDP transport")
        return reply

    def play(self, start: float | None = None) -> Reply:
        """PLAY (``start`` seconds: seek with Range: npt=start-).

        Until the reply is in, completed packets are held back: the reply's RTP-Info seq tells
        which of them still belong to the old position (RFC 2326 §12.33), whichever of the RTSP
        and RTP sockets is read first.
        """
        assert self.proto is not None
        if self.lab and start is not None:
            log.warning("the lab dialect cannot seek: playing on from where the server is")
            start = None
        with self._lock:
            self._play_pending = start
            self._hold = []
            # The old SR maps the old timeline (a seek jumps the timestamps, a pause the clock):
            # no delay until an SR of the new one (our server sends one right after each PLAY).
            self._sr_map = None
            self.delay_ms = None
            self.sender_clock = None
            self.rx.tracker.hold_jitter()
        try:
            return self._request(self.proto.play, start)
        finally:
            with self._lock:
                if self._hold is not None:           # no reply (error): let the packets go
                    self.rx.tracker.hold_jitter(False)
                    held, self._hold = self._hold, None
                    self._deliver(held, time.monotonic())

    def _on_play_reply(self, start: float | None, now: float) -> None:
        """Called by the RTSP reader with the lock held, as soon as a 2xx PLAY reply is parsed."""
        assert self.proto is not None
        info = self.proto.rtp_info[0] if self.proto.rtp_info else None
        rng = self.proto.play_range
        pos = rng.start if rng is not None and rng.start is not None else \
            (start if start is not None else self._position)
        if start is not None:
            # A seek: packets still in flight belong to the old position. They still count in
            # the statistics, but frames before the RTP-Info seq are not shown.
            self.generation += 1
            self._skip_before = info.seq if info is not None and info.seq is not None else None
            self.last_frame = None
        self._pos_base = (info.rtptime, pos) if info is not None and info.rtptime is not None else None
        self.rx.tracker.new_timeline(info.seq if info is not None else None)
        self._pending_pos = pos
        self.pstats.start(now)
        if self.play_started is None:
            self.play_started = now
        self.last_packet_time = None
        self.ended = None
        self._bye = None
        held, self._hold = self._hold or [], None
        self._deliver(held, now)

    def pause(self, timeout: float | None = None) -> Reply:
        """PAUSE; ``timeout`` (s) shortens the wait for the reply (closing the window)."""
        assert self.proto is not None
        reply = self._request(self.proto.pause, timeout=timeout)
        with self._lock:
            self.pstats.stop(time.monotonic())
        return reply

    def teardown(self) -> Reply | None:
        """RTCP BYE (RFC 3550 §6.6), then TEARDOWN (§10.7); tolerant of a server that already went away."""
        if self.proto is None or self.proto.session_id is None:
            return None
        with self._lock:
            self._send_report(time.monotonic(), bye="teardown")
            self._next_rtcp = None
        try:
            return self._request(self.proto.teardown)
        finally:
            with self._lock:
                self.pstats.stop(time.monotonic())

    def keepalive(self) -> None:
        """Send a keepalive without waiting (the reply is matched and logged by the reader)."""
        if self.proto is None or self.rtsp_sock is None:
            return
        with self._lock:
            now = time.monotonic()
            cseq, data = self.proto.keepalive(now=now)
            if self._keepalive_sent is None:
                self._keepalive_sent = now
        self.events.put(Event(EventKind.LOG, ("C->S", data.decode("utf-8", "replace").replace("\r\n", "\n"))))
        try:
            with self._send_lock:
                self.rtsp_sock.sendall(data)
        except OSError as exc:
            log.warning("keepalive failed: %s", exc)

    # -- reader threads --------------------------------------------------------------------------
    def _rtsp_loop(self, sock: socket.socket) -> None:
        """Read the RTSP connection ``sock`` until it closes, or is replaced (lab fallback)."""
        assert self.proto is not None
        watched = [sock] + ([self._wake_r] if self._wake_r is not None else [])
        wait = 0.0
        while not self._stop.is_set() and sock is self.rtsp_sock:
            since = self._unterminated_since
            if since is not None:
                wait = min(wait, max(0.0, since + LAB_QUIET - time.monotonic()))
            try:
                ready, _, _ = select.select(watched, [], [], wait)
                data = sock.recv(262144) if sock in ready else None
            except (OSError, ValueError):
                data = b""
            now = time.monotonic()
            if sock is not self.rtsp_sock:
                return                       # replaced: a reconnect or the lab fallback
            if data == b"":
                with self._reply_cond:
                    if self.proto.unterminated:
                        # a lab server's last reply has no end: the close ends it
                        self._on_rtsp_events(self.proto.finish_unterminated(), now, sock)
                    self.connection_lost = True
                    if not self._stop.is_set():
                        log.info("the server closed the RTSP connection")
                        if not (self._probing() and self.proto.session_id is None):
                            self._on_connection_lost(now)   # (while probing, the probe decides)
                    self._reply_cond.notify_all()
                return
            if data:
                with self._reply_cond:
                    self._on_rtsp_events(self.proto.feed(data), now, sock)
                    self._unterminated_since = now if self.proto.unterminated else None
            elif since is not None and now - since >= LAB_QUIET:
                # a reply without a blank line (the lab form) and nothing more: it is complete
                with self._reply_cond:
                    self._unterminated_since = None
                    if self.proto.unterminated:
                        self._on_rtsp_events(self.proto.finish_unterminated(), now, sock)
            with self._lock:
                self._pump(time.monotonic())
                self._tick(now)
                due = self.proto.keepalive_due(now)
            if due:
                self.keepalive()
            with self._lock:
                wait = self._timeout(keepalive=True)

    def _on_rtsp_events(self, events: Any, now: float, sock: socket.socket) -> None:
        """Replies, interleaved RTP/RTCP and server requests parsed from the RTSP connection
        (called with the lock held)."""
        assert self.proto is not None
        for frame in events.interleaved:
            if frame.channel == self.interleaved[0]:
                self._rtp_in(frame.data, now)
            elif frame.channel == self.interleaved[1]:
                self._on_rtcp(frame.data, now)
        for reply in events.replies:
            if reply.request.method == Method.PLAY:
                if reply.ok:
                    self._on_play_reply(self._play_pending, now)
                else:
                    held, self._hold = self._hold or [], None
                    self._deliver(held, now)
            self._replies[reply.request.cseq] = reply
            lf = self.proto.dialect is Dialect.LAB
            text = reply.response.serialize(lf_only=lf).decode("utf-8", "replace").replace("\r\n", "\n")
            if lf:
                text = text.rstrip("\n")                 # as it came: the lab form has no blank line
            self.events.put(Event(EventKind.LOG, ("S->C", text)))
            log.debug("S->C\n%s", text)
            if reply.request.cseq not in self._awaiting:
                # a keepalive reply: nobody waits for it
                self._replies.pop(reply.request.cseq, None)
            self._keepalive_sent = None          # the server is there
        for err in events.errors:
            log.warning("%s", err)
            if err.startswith("malformed message from server") and self.proto.dialect is not Dialect.LAB:
                # A reply too large, an endless header line, junk: the framing of the connection is
                # lost, so the requests waiting fail now (not after the timeout) and it is closed;
                # the next request connects again.
                self._protocol_error = (f"the server's reply is unusable ({err.split(': ', 1)[-1]}); "
                                        "the RTSP connection was closed")
                self._reply_cond.notify_all()
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if events.replies:
            self._reply_cond.notify_all()
        for sreq in events.server_requests:
            with self._send_lock:
                sock.sendall(sreq.reply)

    def _start_rtsp_reader(self) -> None:
        self._make_wake()
        t = threading.Thread(target=self._rtsp_loop, args=(self.rtsp_sock,), name="rtsp-reader", daemon=True)
        self._threads.append(t)
        t.start()

    def _udp_loop(self) -> None:
        rtp, rtcp = self.rtp_sock, self.rtcp_sock
        assert rtp is not None
        watched = [s for s in (rtp, rtcp, self._wake_r) if s is not None]
        wait = 0.0
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(watched, [], [], wait)
            except (OSError, ValueError):
                return
            if self._stop.is_set():
                return
            now = time.monotonic()
            # Read everything queued first (a frame arrives as a burst of fragments), then take
            # the lock once for the whole burst.
            packets: list[tuple[bytes, Any]] = []
            reports: list[tuple[bytes, Any]] = []
            for sock, out, most in ((rtp, packets, 256), (rtcp, reports, 16)):
                if sock is None or sock not in ready:
                    continue
                recvfrom = sock.recvfrom
                for _ in range(most):
                    try:
                        out.append(recvfrom(65536))
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:          # e.g. Windows' WSAECONNRESET after an ICMP error
                        break
            with self._lock:
                for data, addr in packets:
                    if self._from_server(addr):
                        self._rtp_in(data, now, addr)
                for data, addr in reports:
                    if self._from_server(addr):
                        self._on_rtcp(data, now, addr)
                self._pump(time.monotonic())
                self._tick(now)
                wait = self._timeout(keepalive=False)

    # -- timers (called with the lock held) -------------------------------------------------------
    def _next_timer(self, keepalive: bool) -> float | None:
        """The earliest monotonic time at which _tick (or, with ``keepalive``, a keepalive) has
        something to do; None when nothing is timed: the next event is a packet or a reply.

        Every deadline here is one that _tick acts on and then moves (or clears), so a reader
        sleeping until it does not wake to nothing again and again: nothing polls."""
        times: list[float] = []
        held = self.rx.reorder.next_deadline()
        if held is not None:
            times.append(held)
        if self.ended is None:
            if self._bye is not None:
                at = self._bye[1]
                times.append(max(at, self.last_packet_time or at) + BYE_GRACE)
            elif self._lost_at is not None:
                times.append(self._lost_at + BYE_GRACE)
            elif self._keepalive_sent is not None:
                times.append(self._keepalive_sent + self.reply_timeout)
            if self.last_packet_time is not None and self.play_started is not None \
                    and self.state == ClientState.PLAYING:
                last = max(self.last_packet_time, self.diag.last_arrival or 0.0)
                times.append(last + self.idle_timeout)
        if self._next_rtcp is not None:
            times.append(self._next_rtcp)
        if keepalive and self.proto is not None:
            due = self.proto.keepalive_at()
            if due is not None:
                times.append(due)
        return min(times) if times else None

    def _timeout(self, keepalive: bool) -> float:
        """select() timeout: until :meth:`_next_timer` plus TIMER_SLACK (its tests are strict
        inequalities), or exactly until the impairer's next delivery (its packets' arrival times
        are the statistics' truth), at most TIMER_CAP; sockets and close() wake the thread sooner."""
        now = time.monotonic()
        at = self._next_timer(keepalive)
        wait = TIMER_CAP if at is None else max(0.0, at - now) + TIMER_SLACK
        if self.impairer is not None:
            due = self.impairer.next_due()
            if due is not None and due - now < wait:
                wait = max(0.0, due - now)
        return min(TIMER_CAP, wait)

    def _from_server(self, addr: Any) -> bool:
        """Unicast UDP: only the RTSP server's host may send us RTP/RTCP (as ffmpeg filters by
        source); anything else is counted in :attr:`foreign_source_packets` and dropped."""
        if self.transport != "udp" or self.proto is None or self.server_addr is None or not addr:
            return True
        def host(h: str) -> str:
            h = h.split("%", 1)[0].lower()
            return h[7:] if h.startswith("::ffff:") and "." in h else h
        if host(str(addr[0])) == host(str(self.server_addr[0])):
            return True
        self.foreign_source_packets += 1
        if self.foreign_source_packets == 1 or self.foreign_source_packets % 1000 == 0:
            log.warning("dropped %d RTP/RTCP datagram(s) not from the server %s (the last from %s)",
                        self.foreign_source_packets, self.server_addr[0], addr[0])
        return False

    # -- data path (called with the lock held) ----------------------------------------------------
    def _rtp_in(self, data: bytes, now: float, addr: Any = None) -> None:
        """An RTP packet off the wire: through the impairer (if any), then the receive path."""
        if self.tap is not None:
            self.tap(now, False, data, False)
        self.diag.arrival(addr or "the RTSP connection (interleaved)", now)
        if self.impairer is None:
            self._on_rtp(data, now)
        else:
            self.impairer.push(data, now)
            self._pump(now)

    def _pump(self, now: float) -> None:
        """Packets the impaired network delivers by ``now`` go to the receive path."""
        if self.impairer is not None:
            # a packet arrives when the impaired network delivers it, not when this thread got
            # round to it: a loaded CPU must not show up as network jitter
            for arrival, data in self.impairer.pop_due_timed(now):
                self._on_rtp(data, arrival)

    def _on_rtp(self, data: bytes, now: float) -> None:
        """One RTP packet: parsed, checked (version, payload type, SSRC), then reordered and
        depacketized. Every packet not used is counted with its reason (:attr:`diag`)."""
        try:
            pkt = RtpPacket.parse(data)
        except ValueError as exc:
            self.bad_packets += 1
            log.debug("dropped a malformed RTP packet: %s", exc)
            if len(data) < 12:
                self.diag.drop(Unusable.SHORT, f"packets of {len(data)} bytes, shorter than the "
                                               "12-byte RTP header")
            elif data[0] >> 6 != 2:
                self.diag.drop(Unusable.VERSION, f"RTP version {data[0] >> 6}, not 2 (the top two bits "
                                                 f"of the first byte, here 0x{data[0]:02x})")
            else:
                self.diag.drop(Unusable.MALFORMED, f"malformed RTP header: {exc}")
            return
        expected = self.expected_pt
        if pkt.payload_type != expected:
            self.wrong_pt_packets += 1
            self.diag.drop(Unusable.PAYLOAD_TYPE, f"payload type {pkt.payload_type}, not {expected} (JPEG"
                                                  + (", as the SDP says)" if expected != PT_JPEG else ")"))
            return
        self.diag.header(pkt.sequence_number, pkt.rtp_timestamp, pkt.marker, pkt.ssrc,
                         pkt.payload[:3] == b"\xff\xd8\xff")
        if self.ssrc is None:
            self.ssrc = pkt.ssrc
        elif pkt.ssrc != self.ssrc:
            self.foreign_packets += 1
            self.diag.drop(Unusable.SSRC, f"packets from SSRC {pkt.ssrc:08x} while the stream's is "
                                          f"{self.ssrc:08x}")
            return
        self.last_packet_time = now
        self.pstats.on_packet(now, len(data))
        ts = pkt.rtp_timestamp
        if self.lab:
            # The hand-out stamps packets with int(time()) (seconds, not a 90 kHz clock): jitter
            # and delay are measured against the frame's place in the 50 ms schedule instead.
            ts = round(pkt.sequence_number * JPEG_CLOCK_RATE / self.fps) & 0xFFFFFFFF
        self._deliver(self.rx.push(pkt.sequence_number, ts, now, pkt, len(pkt.payload)), now)

    def _deliver(self, released: list, now: float) -> None:
        if self._hold is not None:
            self._hold.extend(released)
            return
        for r in released:
            pkt: RtpPacket = r.item
            if self._skip_before is not None:
                if seq_diff(pkt.sequence_number, self._skip_before) < 0:
                    continue                      # from before the seek
                self._skip_before = None
                # A half-built frame from before the seek is discarded, not counted as dropped.
                old, self.depack = self.depack, JpegDepacketizer()
                for name in ("frames_completed", "frames_dropped", "bad_packets", "duplicates"):
                    setattr(self.depack, name, getattr(old, name))
            bad = self.depack.bad_packets
            jpeg = self.depack.push(pkt.payload, pkt.rtp_timestamp, pkt.marker, r.missing_before)
            if self.depack.bad_packets != bad:
                self.diag.drop(Unusable.NO_JPEG, "no JPEG in the payload: neither a whole JPEG (FF D8 FF ...) "
                                                 f"nor RFC 2435 ({self.depack.last_bad_reason}); it starts "
                                                 f"{pkt.payload[:8].hex(' ').upper() or '(empty)'}")
            if jpeg is not None:
                self._on_frame(jpeg, pkt.rtp_timestamp, now, r.ext_seq)

    def _on_frame(self, jpeg: bytes, ts: int, now: float, ext_seq: int = 0) -> None:
        if self.lab:
            # The hand-out numbers frames by the sequence number from 1 (its timestamps are
            # int(time()) seconds): frame index and position come from that.
            index = max(0, ext_seq - 1)
            position = index / self.fps
        else:
            if self._pos_base is None:
                self._pos_base = (ts, getattr(self, "_pending_pos", 0.0))
            base_ts, base_pos = self._pos_base
            position = base_pos + ts_diff(ts, base_ts) / JPEG_CLOCK_RATE
            index = int(round(position * self.fps))
        self._position = position
        self.pstats.on_frame(now)
        if self._sr_map is not None:
            # The SR maps RTP time to the sender's wall clock (RFC 3550 §6.4.1): when this
            # frame was sampled there. The delay is meaningful only with synchronised clocks.
            ntp, sr_ts = self._sr_map
            sent = unix_from_ntp(ntp) + ts_diff(ts, sr_ts) / JPEG_CLOCK_RATE
            self.sender_clock = sent
            self.delay_ms = (time.time() - sent) * 1000.0
        frame = Frame(jpeg, ts, index, position, now, self.generation)
        self.last_frame = frame
        self.frames_displayable += 1
        self.events.put(Event(EventKind.FRAME, frame))

    def _on_rtcp(self, data: bytes, now: float, addr: Any = None) -> None:
        """A compound RTCP datagram from the sender (RtcpSession.RtcpReceiver reads it): the SR's
        clock mapping for the delay, and BYE. Malformed ones are counted and dropped."""
        if self.tap is not None:
            self.tap(now, True, data, False)
        got = self.rtcp.receive(data, time.time(), now, self.ssrc, group=self.group is not None)
        if got is None:
            return
        if got.sender_report is not None:
            self._sr_map = (got.sender_report.ntp_timestamp, got.sender_report.rtp_timestamp)
        if got.bye is not None:
            # RTP sent before the BYE may still be queued on the other socket: finish a
            # little later (in _tick), once it has been read.
            self._bye = (f"the server said BYE ({got.bye})", now)
        self.events.put(Event(EventKind.STATS))

    def _finish(self, reason: str, now: float, failed: bool = False) -> None:
        """The stream ended (``failed``: abnormally -- the server vanished); one END event."""
        if self.ended is None:
            if self._protocol_error is not None:
                reason = self._protocol_error          # why the connection closed
            self._deliver(self.rx.flush(), now)
            self.ended = reason
            if failed:
                self.failure = reason
                log.warning("%s", reason)
            self.pstats.stop(now)
            self.events.put(Event(EventKind.END, reason))
            if failed or self.connection_lost:
                self._drop_session()

    def _stopped_short(self) -> str | None:
        """Where the stream stopped, when that is more than a second before its known end."""
        total = self.frame_total
        if not total or self.last_frame is None or self._bye is not None:
            return None
        if self.last_frame.index >= total - 1 - max(1, round(self.fps)):
            return None
        return f"at frame {self.last_frame.index + 1} of {total}"

    def _on_connection_lost(self, now: float) -> None:
        """The server closed the RTSP connection: a failure while a session is open (RFC 2326
        sessions outlive connections, but no server of ours or GStreamer's keeps one then)."""
        if self.proto is not None and self.proto.session_id is not None and self._bye is None:
            if self.rtcp_sock is not None and self.transport in ("udp", "multicast"):
                self._lost_at = now          # a BYE on the RTCP port may still be on its way
            else:
                self._lost_server(now)
        else:
            self._finish(self._bye[0] if self._bye is not None else "the server closed the RTSP connection",
                         now)

    def _lost_server(self, now: float) -> None:
        assert self.proto is not None
        where = self._stopped_short() or f"in state {self.proto.state.value}"
        self._finish(f"lost the server: it closed the RTSP connection {where}", now, failed=True)

    def _tick(self, now: float) -> None:
        """Release packets whose reorder wait expired; detect the end; send RTCP RR."""
        self._deliver(self.rx.poll(now), now)
        if self._bye is not None and self.ended is None:
            reason, at = self._bye
            if now - max(at, self.last_packet_time or at) >= BYE_GRACE:
                self._finish(reason, now)
        elif self._lost_at is not None and self.ended is None and now - self._lost_at >= BYE_GRACE:
            self._lost_server(now)
        elif self._keepalive_sent is not None and self.ended is None \
                and now - self._keepalive_sent > self.reply_timeout:
            # paused (no RTP to miss), the server frozen or the path down: the keepalive tells
            self._finish(f"lost the server: no reply to a keepalive within {self.reply_timeout:g} s",
                         now, failed=True)
        if self.ended is None and self.state == ClientState.PLAYING and self.play_started is not None:
            total = self.frame_total
            if total and self.last_frame is not None and self.last_frame.index >= total - 1 \
                    and len(self.rx.reorder) == 0:
                self._finish("end of stream", now)
            elif self.last_packet_time is not None and now - max(self.last_packet_time, self.diag.last_arrival
                                                                 or 0.0) > self.idle_timeout:
                short = self._stopped_short()
                if short is not None:
                    self._finish(f"lost the server: no RTP for {self.idle_timeout:g} s {short}", now,
                                 failed=True)
                else:
                    self._finish(f"no RTP for {self.idle_timeout:g} s: end of stream", now)
        if self._next_rtcp is None:
            if self.ended is None and self.state == ClientState.PLAYING and self._rtcp_dest_known():
                self._next_rtcp = now + self._rtcp_interval()
        elif self.proto is None or self.proto.session_id is None:
            self._next_rtcp = None          # the session is gone (TEARDOWN): no more reports
        elif now >= self._next_rtcp:
            # Reports continue while paused: they keep the session alive (RFC 2326 §12.37).
            self._send_report(now)
            self._next_rtcp = now + self._rtcp_interval()

    # -- RTCP (RFC 3550 §6) --------------------------------------------------------------------
    def _rtcp_interval(self) -> float:
        """Our next report interval (RFC 3550 §6.3, A.7): a receiver among 2 members, 1 sender,
        sharing 75% of 5% of the session bandwidth (measured), at least ``rtcp_min_time``
        (halved for the first report), randomized [0.5, 1.5] / (e - 3/2)."""
        elapsed = self.pstats.elapsed(time.monotonic())
        sdp = self.current_sdp
        if sdp is not None and sdp.bandwidth_kbps:
            session_bw = sdp.bandwidth_kbps * 125.0                  # b=AS kbit/s -> octets/s
        elif elapsed >= 1.0:
            session_bw = max(self.pstats.bytes / elapsed, 1000.0)    # measured
        else:
            session_bw = DEFAULT_SESSION_BW
        # in a multicast group every member's reports share the bandwidth (6.2, 6.3.2)
        return self.rtcp.interval(session_bw, time.time(), time.monotonic(),
                                  with_block=self.ssrc is not None and self.rx.tracker.validated,
                                  group=self.group is not None)

    def _rtcp_dest_known(self) -> bool:
        if self.proto is None:
            return False
        if self.transport == "tcp":
            return self.rtsp_sock is not None
        if self.transport == "multicast":
            return self.group is not None and self.rtcp_sock is not None
        tr = self.proto.transport
        return self.rtcp_sock is not None and self.server_addr is not None and tr is not None \
            and tr.server_port is not None

    def _report_datagram(self, now: float, bye: str | None = None,
                         probe: bool = False) -> tuple[bytes, SentReport]:
        """Our compound report (RtcpReceiver builds it) with the report block of the A.3 interval
        that ends now (RtpStats: RFC 3550 §6.4.1, A.3, A.8).

        ``probe`` builds a same-sized datagram without starting a new A.3 interval."""
        tr = self.rx.tracker
        block = interval = None
        if self.ssrc is not None and tr.validated:
            if probe:
                block = ReportBlock(self.ssrc)
            else:
                block, interval = tr.report_block(self.ssrc, *self.rtcp.lsr_dlsr(now))
        data = self.rtcp.report(time.time(), now, block, bye, probe)
        delivered = self.impairer.delivered if self.impairer is not None else None
        return data, SentReport(now, block, interval, delivered)

    def _send_report(self, now: float, bye: str | None = None) -> None:
        """Send our compound report to the sender's RTCP port (or interleaved channel)."""
        if not self._rtcp_dest_known():
            return
        assert self.proto is not None
        data, record = self._report_datagram(now, bye)
        try:
            if self.transport == "tcp":
                assert self.rtsp_sock is not None
                with self._send_lock:
                    self.rtsp_sock.sendall(InterleavedFrame(self.interleaved[1], data).serialize())
            elif self.group is not None:
                assert self.rtcp_sock is not None
                self.rtcp_sock.sendto(data, (self.group[0], self.group[2]))  # to the group (6.2)
            else:
                assert self.rtcp_sock is not None and self.server_addr is not None
                tr = self.proto.transport
                assert tr is not None and tr.server_port is not None
                self.rtcp_sock.sendto(data, (self.server_addr[0], tr.server_port[1]))
        except OSError as exc:
            log.debug("RTCP send failed: %s", exc)
            return
        self.rr_sent += 1
        if self.tap is not None:
            self.tap(now, True, data, True)
        self.reports_sent.append(record)
        self.events.put(Event(EventKind.STATS))
        del self.reports_sent[:-1000]
        self.rtcp.sent(len(data))
        b = record.block
        log.info("RTCP RR sent: %s", "no report block yet" if b is None else
                    f"fraction lost {b.fraction_lost}/256, cumulative lost {b.packets_lost}, "
                    f"highest seq {b.highest_sequence}, jitter {b.jitter}, LSR {b.lsr:08x}, "
                    f"DLSR {b.dlsr}" + (f", BYE ({bye})" if bye else ""))

    # -- statistics ---------------------------------------------------------------------------
    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            tr = self.rx.tracker
            s = self.pstats.snapshot(now, tr if tr.validated else None,
                                     late=self.rx.reorder.late,
                                     frame_dropped_total=self.depack.frames_dropped, rtt_ms=self.rtcp.rtt_ms)
            s.payload_octets = tr.received_octets
            s.sender_packets, s.sender_octets = self.rtcp.sender_packets, self.rtcp.sender_octets
            s.sender_clock = self.sender_clock
            s.sr_received, s.rr_sent, s.rtcp_errors = self.rtcp.sr_received, self.rr_sent, self.rtcp.errors
            if self.impairer is not None:
                s.impairment = {"spec": str(self.impairer.spec), **self.impairer.counters()}
            s.frame_total = self.frame_total
            s.duration = self.duration
            s.delay_ms = self.delay_ms
            if self.last_frame is not None:
                s.frame_index = self.last_frame.index
                s.position = self.last_frame.position
        return s

    # -- shutdown --------------------------------------------------------------------------------
    def quit(self, grace: float = 0.5) -> None:
        """Leave now (Ctrl-C): TEARDOWN if the server is there, waiting at most ``grace`` s, then close."""
        if self.proto is not None and self.proto.session_id is not None and not self.connection_lost \
                and self.failure is None and not self._stop.is_set():
            self.reply_timeout = grace
            try:
                self.teardown()
            except ClientError as exc:
                log.info("TEARDOWN on quit: %s", exc)
        self.close()

    def close(self) -> None:
        """Stop the threads and close every socket (idempotent); keeps the last statistics."""
        if not self._stop.is_set():
            self.final_snapshot = self.snapshot()
        self._stop.set()
        wake = self._wake_w
        if wake is not None:
            try:
                wake.send(b"x")              # the readers' select() returns
            except OSError:
                pass
        with self._reply_cond:
            self._reply_cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        self._threads = []
        for w in (self._wake_r, self._wake_w):
            if w is not None:
                w.close()
        self._wake_r = self._wake_w = None
        for s in (self.rtsp_sock, self.rtp_sock, self.rtcp_sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.rtsp_sock = self.rtp_sock = self.rtcp_sock = None
