"""The player: one receive engine (sockets + threads) shared by the Tk window and the headless mode.

:class:`ReceiveEngine` speaks RTSP (RFC 2326) through the sans-IO :class:`RtspClient.RtspClientProtocol`,
receives RTP (RFC 3550) over UDP or interleaved on the RTSP connection (§10.12), validates and
reorders it (:mod:`RtpStats`), reassembles RFC 2435 frames (:class:`RtpJpeg.JpegDepacketizer`) and
hands complete frames, log lines and the end of the stream to its consumer over a ``queue.Queue``.
Only the consumer's thread touches widgets: :class:`Client` drains the queue with ``after()``.
"""

from __future__ import annotations

import enum
import io
import math
import os
import logging
import queue
import random
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from Impair import Impairer, ImpairSpec
from RtcpPacket import (RTCP_MIN_TIME, Bye, ExtendedReport, ReceiverReport, ReportBlock, SenderReport,
                        SourceDescription, XrBlock, XrBlockType, dlsr_from_seconds, ntp_from_unix,
                        ntp_middle32, parse_compound, rtcp_interval, rtt_seconds, serialize_compound,
                        unix_from_ntp, update_avg_rtcp_size)
from RtpJpeg import JpegDepacketizer
from RtpPacket import RtpPacket, seq_diff, ts_diff
from RtpStats import IntervalReport, PlaybackStats, RtpReceiver, StatsSnapshot
from RtspClient import (ClientState, Reply, RtspClientProtocol, SdpInfo,
                        describe_failure, parse_rtsp_url, parse_sdp_info)
from RtspMessage import InterleavedFrame, Method

logger = logging.getLogger(__name__)

RCVBUF_BYTES = 4 * 1024 * 1024       # the default ~208 KB loses part of a burst of fragments
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
BYE_GRACE = 0.25                     # seconds of RTP silence after a BYE before the stream ends
CNAME_TOOL = "RtpLabPlayer/1.0"
DEFAULT_SESSION_BW = 125_000.0       # octets/s (1 Mbit/s) assumed until the rate is measured (§6.2)
MAX_AUTH_ROUNDS = 3                  # the request, the answer to a 401, one retry for a stale nonce
RRTR_MEMORY = 16                     # our last RRTR times kept to match the sender's DLRR answers


class ClientError(Exception):
    """A failure the user can act on; ``str()`` is one line."""


class EventKind(enum.Enum):
    FRAME = "frame"
    LOG = "log"          # RTSP request/reply text, for the log view
    STATE = "state"      # ClientState changed
    END = "end"          # the stream ended (reason text)
    ERROR = "error"      # a request failed (one line)


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


def _set_rcvbuf(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer; force it past rmem_max when allowed. Returns actual."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if actual < size:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            logger.warning("UDP receive buffer is %d bytes (wanted %d); raise net.core.rmem_max "
                           "to avoid losing bursts", actual, size)
    return actual


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
                 username: str | None = None, password: str | None = None) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        self.rtp_port = rtp_port
        self.transport = transport
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.fps_hint = fps_hint
        self.events: queue.Queue[Event] = queue.Queue()
        self.frame_queue_max = frame_queue
        self.proto: RtspClientProtocol | None = \
            RtspClientProtocol(url, username=username, password=password) if url else None
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
        self._reorder_window = reorder_window
        self._new_receiver()
        self.pstats = PlaybackStats()
        self.ssrc: int | None = None
        self.bad_packets = 0
        self.foreign_packets = 0
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
        self._sr: tuple[int, int, float] | None = None    # (ntp64, rtp ts, monotonic arrival)
        self.delay_ms: float | None = None
        self._our_ssrc = int.from_bytes(os.urandom(4), "big")
        # RTCP (RFC 3550 §6): our RR schedule (§6.3) and what the sender's reports said
        self.rtcp_min_time = rtcp_min_time
        self._rtcp_rng = rtcp_rng or random.Random()
        self.cname = cname or f"player-{self._our_ssrc:08x}@{socket.gethostname()}"
        self._next_rtcp: float | None = None
        self._rtcp_initial = True
        self._avg_rtcp_size = 0.0
        self._rrtr_sent: dict[int, float] = {}           # LRR (NTP middle 32) -> monotonic send time
        self.reports_sent: list[SentReport] = []        # the last 1000
        self.rr_sent = 0
        self.sr_received = 0
        self.rtcp_errors = 0
        self.rtt_ms: float | None = None
        self.sender_packets: int | None = None
        self.sender_octets: int | None = None
        self.sender_clock: float | None = None           # sender's wall clock of the last frame
        # Network impairment applied to incoming RTP before the receive path (Impair.py)
        self.impairer: Impairer | None = None
        self._impair_record = impair_record
        if impair is not None:
            self.set_impairment(impair)
        self.interleaved = (0, 1)
        self.log_frames = log_frames
        self.final_snapshot: StatsSnapshot | None = None

    def _new_receiver(self) -> None:
        self.rx: RtpReceiver[RtpPacket] = RtpReceiver(90000, self._reorder_window)
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
                logger.info("impairment %s", parsed)
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
    def fps(self) -> float:
        sdp = self.current_sdp
        if sdp is not None and sdp.framerate:
            return sdp.framerate
        return self.fps_hint or 25.0

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
        host, port, _ = parse_rtsp_url(self.proto.url)
        try:
            self.rtsp_sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ClientError(f"cannot resolve server {host!r}: {exc.strerror}") from None
        except ConnectionRefusedError:
            raise ClientError(f"server unreachable: connection to {host}:{port} refused "
                              "(is the server running on that port?)") from None
        except (socket.timeout, OSError) as exc:
            raise ClientError(f"server unreachable: {host}:{port}: {exc}") from None
        self.rtsp_sock.settimeout(None)
        self.rtsp_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rtsp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        self.server_addr = self.rtsp_sock.getpeername()[:2]
        if self.transport == "udp":
            family = self.rtsp_sock.family
            self._bind_udp(self.rtp_port, "::" if family == socket.AF_INET6 else "0.0.0.0")
        self._start_threads()

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
            rtcp: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp.bind((bind_host, actual + 1))
            except OSError:
                rtcp.close()
                rtcp = None
                if port == 0:
                    rtp.close()
                    continue
                logger.warning("RTCP port %d busy: no receiver reports", actual + 1)
            self.rtp_sock, self.rtcp_sock, self.rtp_port = rtp, rtcp, actual
            self.rcvbuf = _set_rcvbuf(rtp, RCVBUF_BYTES)
            logger.info("RTP on UDP port %d (receive buffer %d bytes)", actual, self.rcvbuf)
            return
        raise ClientError("could not bind a free even/odd UDP port pair for RTP/RTCP")

    def _start_threads(self) -> None:
        if self.rtsp_sock is not None:
            t = threading.Thread(target=self._rtsp_loop, name="rtsp-reader", daemon=True)
            self._threads.append(t)
            t.start()
        if self.rtp_sock is not None:
            t = threading.Thread(target=self._udp_loop, name="rtp-reader", daemon=True)
            self._threads.append(t)
            t.start()

    # -- RTSP requests (blocking; call from any thread but the reader threads) -----------------
    def _send(self, cseq: int, data: bytes) -> Reply:
        assert self.rtsp_sock is not None and self.proto is not None
        pending = self.proto.pending.get(cseq)
        with self._lock:
            self._awaiting.add(cseq)
        try:
            return self._send_and_wait(cseq, data, pending)
        finally:
            with self._lock:
                self._awaiting.discard(cseq)
                self._replies.pop(cseq, None)

    def _send_and_wait(self, cseq: int, data: bytes, pending: Any) -> Reply:
        assert self.rtsp_sock is not None and self.proto is not None
        self.events.put(Event(EventKind.LOG, ("C->S", data.decode("utf-8", "replace").replace("\r\n", "\n"))))
        logger.debug("C->S\n%s", data.decode("utf-8", "replace"))
        try:
            with self._send_lock:
                self.rtsp_sock.sendall(data)
        except OSError as exc:
            raise ClientError(f"lost the RTSP connection to the server: {exc}") from None
        deadline = time.monotonic() + self.reply_timeout
        with self._reply_cond:
            while cseq not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.connection_lost:
                    self.proto.pending.pop(cseq, None)
                    method = pending.method if pending else "request"
                    why = "the server closed the connection" if self.connection_lost else \
                        f"no reply within {self.reply_timeout:.0f} s"
                    raise ClientError(f"{method} failed: {why}")
                self._reply_cond.wait(min(left, 0.25))
            reply = self._replies.pop(cseq)
        if reply.ok:
            self.events.put(Event(EventKind.STATE, self.proto.state))
        return reply

    def _request(self, build: Callable[..., tuple[int, bytes]], *args: Any) -> Reply:
        """Send a request and wait for its reply; a 401 the protocol can answer (first
        challenge, or a stale nonce) is sent again with a new CSeq and Authorization."""
        if self.proto is None:
            raise ClientError("no RTSP session: playing from an SDP file")
        for _ in range(MAX_AUTH_ROUNDS):
            with self._lock:
                cseq, data = build(*args, now=time.monotonic())
            reply = self._send(cseq, data)
            if not reply.retry:
                break
            logger.info("%s: 401, answering the server's challenge as %r", reply.request.method,
                        self.proto.username)
        if reply.error is not None:
            raise ClientError(reply.error)
        if not reply.ok:
            raise ClientError(describe_failure(reply.request.method, reply.response.status,
                                               reply.response.phrase, reply.request.uri,
                                               self.proto.username))
        return reply

    def options(self) -> Reply:
        assert self.proto is not None
        return self._request(self.proto.options)

    def describe(self) -> Reply:
        assert self.proto is not None
        return self._request(self.proto.describe)

    def setup(self) -> Reply:
        """SETUP the track: UDP client_port=a-(a+1) or TCP interleaved=0-1 (RFC 2326 §10.4, §12.39)."""
        assert self.proto is not None
        if self.transport == "udp":
            spec = f"RTP/AVP;unicast;client_port={self.rtp_port}-{self.rtp_port + 1}"
        else:
            spec = "RTP/AVP/TCP;unicast;interleaved=0-1"
        reply = self._request(self.proto.setup, spec)
        tr = self.proto.transport
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
        with self._lock:
            self._play_pending = start
            self._hold = []
        try:
            return self._request(self.proto.play, start)
        finally:
            with self._lock:
                if self._hold is not None:           # no reply (error): let the packets go
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
        self._pending_pos = pos
        self.pstats.start(now)
        if self.play_started is None:
            self.play_started = now
        self.last_packet_time = None
        self.ended = None
        self._bye = None
        held, self._hold = self._hold or [], None
        self._deliver(held, now)

    def pause(self) -> Reply:
        assert self.proto is not None
        reply = self._request(self.proto.pause)
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
            logger.warning("keepalive failed: %s", exc)

    # -- reader threads --------------------------------------------------------------------------
    def _rtsp_loop(self) -> None:
        assert self.rtsp_sock is not None and self.proto is not None
        sock = self.rtsp_sock
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], self._wait(0.02))
                data = sock.recv(262144) if ready else None
            except OSError:
                data = b""
            now = time.monotonic()
            if data == b"":
                with self._reply_cond:
                    self.connection_lost = True
                    if not self._stop.is_set():
                        logger.info("the server closed the RTSP connection")
                        self._on_connection_lost(now)
                    self._reply_cond.notify_all()
                return
            if data:
                with self._reply_cond:
                    events = self.proto.feed(data)
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
                        text = reply.response.serialize().decode("utf-8", "replace").replace("\r\n", "\n")
                        self.events.put(Event(EventKind.LOG, ("S->C", text)))
                        logger.debug("S->C\n%s", text)
                        if reply.request.cseq not in self._awaiting:
                            # a keepalive reply: nobody waits for it
                            self._replies.pop(reply.request.cseq, None)
                        self._keepalive_sent = None          # the server is there
                    for err in events.errors:
                        logger.warning("%s", err)
                    if events.replies:
                        self._reply_cond.notify_all()
                for sreq in events.server_requests:
                    with self._send_lock:
                        sock.sendall(sreq.reply)
            with self._lock:
                self._pump(time.monotonic())
                self._tick(now)
                due = self.proto.keepalive_due(now)
            if due:
                self.keepalive()

    def _udp_loop(self) -> None:
        socks = [s for s in (self.rtp_sock, self.rtcp_sock) if s is not None]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], self._wait(0.01))
            except (OSError, ValueError):
                return
            now = time.monotonic()
            for s in ready:
                # Drain everything queued: a frame arrives as a burst of fragments.
                for _ in range(256):
                    try:
                        data, addr = s.recvfrom(65536, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    with self._lock:
                        if s is self.rtp_sock:
                            self._rtp_in(data, now)
                        else:
                            self._on_rtcp(data, now, addr)
            with self._lock:
                self._pump(time.monotonic())
                self._tick(now)

    # -- data path (called with the lock held) ----------------------------------------------------
    def _wait(self, longest: float) -> float:
        """select() timeout: ``longest``, or less when the impairer delivers a packet sooner."""
        imp = self.impairer
        due = imp.next_due() if imp is not None else None
        if due is None:
            return longest
        return min(longest, max(0.0, due - time.monotonic()))

    def _rtp_in(self, data: bytes, now: float) -> None:
        """An RTP packet off the wire: through the impairer (if any), then the receive path."""
        if self.impairer is None:
            self._on_rtp(data, now)
        else:
            self.impairer.push(data, now)
            self._pump(now)

    def _pump(self, now: float) -> None:
        """Packets the impaired network delivers by ``now`` go to the receive path."""
        if self.impairer is not None:
            for data in self.impairer.pop_due(now):
                self._on_rtp(data, now)

    def _on_rtp(self, data: bytes, now: float) -> None:
        try:
            pkt = RtpPacket.parse(data)
        except ValueError as exc:
            self.bad_packets += 1
            logger.debug("dropped a malformed RTP packet: %s", exc)
            return
        if self.ssrc is None:
            self.ssrc = pkt.ssrc
        elif pkt.ssrc != self.ssrc:
            self.foreign_packets += 1
            return
        self.last_packet_time = now
        self.pstats.on_packet(now, len(data))
        self._deliver(self.rx.push(pkt.sequence_number, pkt.rtp_timestamp, now, pkt, len(pkt.payload)), now)

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
            jpeg = self.depack.push(pkt.payload, pkt.rtp_timestamp, pkt.marker, r.missing_before)
            if jpeg is not None:
                self._on_frame(jpeg, pkt.rtp_timestamp, now)

    def _on_frame(self, jpeg: bytes, ts: int, now: float) -> None:
        if self._pos_base is None:
            self._pos_base = (ts, getattr(self, "_pending_pos", 0.0))
        base_ts, base_pos = self._pos_base
        position = base_pos + ts_diff(ts, base_ts) / 90000.0
        self._position = position
        index = int(round(position * self.fps))
        self.pstats.on_frame(now)
        if self._sr is not None:
            # The SR maps RTP time to the sender's wall clock (RFC 3550 §6.4.1): when this
            # frame was sampled there. The delay is meaningful only with synchronised clocks.
            ntp, sr_ts, _ = self._sr
            sent = unix_from_ntp(ntp) + ts_diff(ts, sr_ts) / 90000.0
            self.sender_clock = sent
            self.delay_ms = (time.time() - sent) * 1000.0
        frame = Frame(jpeg, ts, index, position, now, self.generation)
        self.last_frame = frame
        self.frames_displayable += 1
        self.events.put(Event(EventKind.FRAME, frame))

    def _on_rtcp(self, data: bytes, now: float, addr: Any = None) -> None:
        """A compound RTCP datagram from the sender: SR clock mapping and counts, the XR DLRR
        answer to our RRTR (RTT), BYE. Malformed ones are counted and dropped (RFC 3550 A.2)."""
        arrival = ntp_middle32(ntp_from_unix(time.time()))
        try:
            packets = parse_compound(data, strict=False)
        except ValueError as exc:
            self.rtcp_errors += 1
            logger.debug("malformed RTCP dropped: %s", exc)
            return
        self._avg_rtcp_size = update_avg_rtcp_size(self._avg_rtcp_size or len(data) + 28.0, len(data))
        for p in packets:
            if isinstance(p, SenderReport):
                if self.ssrc is not None and p.ssrc != self.ssrc:
                    continue
                self._sr = (p.ntp_timestamp, p.rtp_timestamp, now)
                self.sender_packets, self.sender_octets = p.packet_count, p.octet_count
                self.sr_received += 1
            elif isinstance(p, ExtendedReport):
                for block in p.blocks:
                    if block.block_type != XrBlockType.DLRR:
                        continue
                    try:
                        items = block.dlrr_items
                    except ValueError as exc:
                        self.rtcp_errors += 1
                        logger.debug("bad XR DLRR block: %s", exc)
                        continue
                    for ssrc, lrr, dlrr in items:
                        if ssrc == self._our_ssrc and lrr in self._rrtr_sent:
                            # RFC 3611 §4.5: RTT = A - LRR - DLRR
                            rtt = rtt_seconds(arrival, lrr, dlrr)
                            if rtt is not None:
                                self.rtt_ms = rtt * 1000.0
            elif isinstance(p, Bye) and (self.ssrc is None or self.ssrc in p.ssrcs):
                # RTP sent before the BYE may still be queued on the other socket: finish a
                # little later (in _tick), once it has been read.
                self._bye = (f"the server said BYE ({p.reason_text or 'end of stream'})", now)

    def _finish(self, reason: str, now: float, failed: bool = False) -> None:
        """The stream ended (``failed``: abnormally -- the server vanished); one END event."""
        if self.ended is None:
            self._deliver(self.rx.flush(), now)
            self.ended = reason
            if failed:
                self.failure = reason
                logger.warning("%s", reason)
            self.pstats.stop(now)
            self.events.put(Event(EventKind.END, reason))

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
            if self.rtcp_sock is not None and self.transport == "udp":
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
            elif self.last_packet_time is not None and now - self.last_packet_time > self.idle_timeout:
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
        if not self._avg_rtcp_size:
            self._avg_rtcp_size = len(self._report_datagram(time.monotonic(), probe=True)[0]) + 28.0
        interval = rtcp_interval(members=2, senders=1, rtcp_bw=0.05 * session_bw, we_sent=False,
                                 avg_rtcp_size=self._avg_rtcp_size, initial=self._rtcp_initial,
                                 rng=self._rtcp_rng, min_time=self.rtcp_min_time)
        self._rtcp_initial = False
        return interval

    def _rtcp_dest_known(self) -> bool:
        if self.proto is None:
            return False
        if self.transport == "tcp":
            return self.rtsp_sock is not None
        tr = self.proto.transport
        return self.rtcp_sock is not None and self.server_addr is not None and tr is not None \
            and tr.server_port is not None

    def _report_datagram(self, now: float, bye: str | None = None,
                         probe: bool = False) -> tuple[bytes, SentReport]:
        """RR (+ report block) + SDES CNAME + XR RRTR [+ BYE] (RFC 3550 §6.1, RFC 3611 §4.4).

        ``probe`` builds a same-sized datagram without starting a new A.3 interval."""
        tr = self.rx.tracker
        block = interval = None
        if self.ssrc is not None and tr.validated:
            lsr = dlsr = 0
            if self._sr is not None:
                lsr = ntp_middle32(self._sr[0])
                dlsr = dlsr_from_seconds(now - self._sr[2])
            if probe:
                block = ReportBlock(self.ssrc)
            else:
                block, interval = tr.report_block(self.ssrc, lsr, dlsr)
        ntp = ntp_from_unix(time.time())
        packets: list[Any] = [ReceiverReport(self._our_ssrc, [block] if block else []),
                              SourceDescription.cname(self._our_ssrc, self.cname, tool=CNAME_TOOL),
                              ExtendedReport(self._our_ssrc, [XrBlock.rrtr(ntp)])]
        if bye is not None:
            packets.append(Bye([self._our_ssrc], bye))
        if not probe:
            lrr = ntp_middle32(ntp)
            self._rrtr_sent[lrr] = now
            while len(self._rrtr_sent) > RRTR_MEMORY:
                del self._rrtr_sent[next(iter(self._rrtr_sent))]
        delivered = self.impairer.delivered if self.impairer is not None else None
        return serialize_compound(packets), SentReport(now, block, interval, delivered)

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
            else:
                assert self.rtcp_sock is not None and self.server_addr is not None
                tr = self.proto.transport
                assert tr is not None and tr.server_port is not None
                self.rtcp_sock.sendto(data, (self.server_addr[0], tr.server_port[1]))
        except OSError as exc:
            logger.debug("RTCP send failed: %s", exc)
            return
        self.rr_sent += 1
        self.reports_sent.append(record)
        del self.reports_sent[:-1000]
        self._avg_rtcp_size = update_avg_rtcp_size(self._avg_rtcp_size, len(data))
        b = record.block
        logger.info("RTCP RR sent: %s", "no report block yet" if b is None else
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
                                     frame_dropped_total=self.depack.frames_dropped, rtt_ms=self.rtt_ms)
            s.payload_octets = tr.received_octets
            s.sender_packets, s.sender_octets = self.sender_packets, self.sender_octets
            s.sender_clock = self.sender_clock
            s.sr_received, s.rr_sent, s.rtcp_errors = self.sr_received, self.rr_sent, self.rtcp_errors
            if self.impairer is not None:
                s.impairment = {"spec": str(self.impairer.spec), **self.impairer.counters()}
            s.frame_total = self.frame_total
            s.duration = self.duration
            if self.delay_ms is not None:
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
                logger.info("TEARDOWN on quit: %s", exc)
        self.close()

    def close(self) -> None:
        """Stop the threads and close every socket (idempotent); keeps the last statistics."""
        if not self._stop.is_set():
            self.final_snapshot = self.snapshot()
        self._stop.set()
        with self._reply_cond:
            self._reply_cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        self._threads = []
        for s in (self.rtsp_sock, self.rtp_sock, self.rtcp_sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.rtsp_sock = self.rtp_sock = self.rtcp_sock = None


# ====================================================================================== the window
import tkinter as tk                      # noqa: E402  (the engine above works without Tk)
from tkinter import messagebox, ttk       # noqa: E402

from PIL import Image, ImageTk            # noqa: E402

GUI_TICK_MS = 15          # queue drain period
STATS_TICK_MS = 250       # statistics panel and plot: 4 updates per second
PLOT_SPAN = 30.0          # seconds shown in the plot
VIEW_DEFAULT = (1280, 720)  # the default view shows 640x480 and 1280x720 streams 1:1 (screen permitting)
FIT_SLACK = 8             # px a frame may exceed the view by and still be shown 1:1 (edges clipped):
                          # resampling a whole frame to gain a few pixels costs more than decoding it
SCREEN_MARGIN = (32, 96)  # px of the screen left to window decorations and desktop panels
RESIZE_FILTER = Image.BOX  # area average: antialiased for the < 2x reductions left after draft(), and
                           # ~1/3 cheaper than BILINEAR (1280x720 -> 704x396: 2.9 vs 4.4 ms here)


def fit_size(frame: tuple[int, int], view: tuple[int, int], slack: int = FIT_SLACK) -> tuple[int, int]:
    """The size a frame is shown at in a view: its own when it fits (or overflows by at most ``slack``
    px, clipped evenly at the edges), else scaled down to fit, aspect ratio kept. Never scaled up.
    A view not laid out yet (1x1) shows frames 1:1."""
    fw, fh = frame
    vw, vh = view
    if vw <= 1 or vh <= 1 or (fw <= vw + slack and fh <= vh + slack):
        return frame
    scale = min(vw / fw, vh / fh)
    return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))


def decode_for_view(data: bytes, view: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one JPEG from memory at the size :func:`fit_size` gives for ``view``; also returns the
    frame's own size. Reductions of 2x or more happen in the decoder (``draft``: DCT scaling to 1/2,
    1/4 or 1/8, never below the target), the rest with :data:`RESIZE_FILTER`. The decoder's mode is
    kept (a Tk photo takes RGB and L as they are). Raises OSError or ValueError for a bad frame."""
    img = Image.open(io.BytesIO(data), formats=("JPEG",))     # RFC 2435 carries JPEG only
    native = img.size
    size = fit_size(native, view)
    if size != native:
        img.draft(None, size)
    img.load()
    if img.size != size:
        img = img.resize(size, RESIZE_FILTER)
    return img, native


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


class Client:
    """The Tk player window. Network work runs on worker threads; widgets change only here.

    ``ask_quit`` decides what closing the window does once the stream is paused (True = quit);
    tests replace it instead of clicking a dialog.
    """

    STAT_ROWS = [
        ("frame", "Frame"), ("fps", "fps inst / avg"), ("bytes", "Bytes received"),
        ("rate", "kbit/s inst / avg"), ("packets", "RTP packets"), ("lost", "Lost (A.3)"),
        ("loss", "Loss rate"), ("dups", "Duplicates"), ("ooo", "Out of order"),
        ("frames", "Frames done / dropped"), ("jitter", "Jitter (A.8)"), ("delay", "Delay"),
        ("rtt", "RTT (RTCP XR)"), ("sender", "Packets ours / sender"), ("octets", "Octets ours / sender"),
        ("clock", "Sender clock (SR)"), ("rtcp", "RTCP SR in / RR out"), ("state", "RTSP state"),
    ]
    PLOT_SERIES = [(1, "#1f77b4", "kbit/s"), (2, "#2ca02c", "fps"), (3, "#d62728", "loss %"),
                   (4, "#9467bd", "jitter ms"), (5, "#ff7f0e", "RTT ms")]

    def __init__(self, master: tk.Tk, engine: ReceiveEngine, *, simple: bool = False,
                 start: float | None = None) -> None:
        self.master = master
        self.engine = engine
        self.simple = simple
        self.start_pos = start
        self.photo: ImageTk.PhotoImage | None = None
        self.photo_size: tuple[int, int] | None = None
        self.photo_mode: str | None = None
        self.frame_size: tuple[int, int] | None = None   # the shown frame's own size
        self.display_times: list[float] = []     # seconds per decode+display
        self.frames_shown = 0
        self.shown_frame: Frame | None = None    # the frame the view holds now
        self.busy = False                        # a request is in flight
        self.closed = False
        self.dragging = False
        self.ask_quit: Callable[[], bool] = lambda: messagebox.askyesno(
            "Quit the player?", "The stream is paused.\n\nQuit the player?\n"
            "(No = keep watching)", parent=self.master)
        self.last_snapshot: StatsSnapshot | None = None
        self.title = ""  # the window title as last set: "RTP player - URL - STATE position / duration"
        self._build()
        master.protocol("WM_DELETE_WINDOW", self.on_close)
        master.bind("<space>", lambda e: self.toggle_play())
        master.bind("<Escape>", lambda e: self.teardown())
        master.bind("q", lambda e: self.teardown())
        self._refresh_buttons()
        self._after_ids: dict[str, str] = {}
        self._after("drain", GUI_TICK_MS, self._drain)
        self._after("stats", STATS_TICK_MS, self._stats_tick)

    def _after(self, key: str, ms: int, fn: Callable[[], None]) -> None:
        """Schedule a periodic callback, remembering its id so close() can cancel it."""
        if not self.closed:
            self._after_ids[key] = self.master.after(ms, fn)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        m = self.master
        self._set_title(f"RTP player - {self.engine.url or 'SDP stream'}")
        m.minsize(640, 480)
        m.columnconfigure(0, weight=1)
        m.rowconfigure(0, weight=1)
        main = ttk.Frame(m, padding=4)
        main.grid(row=0, column=0, sticky="nsew")
        main.columnconfigure(0, weight=1)
        main.rowconfigure(0, weight=1)
        # A canvas, not a Label: a new frame redraws only the picture's area, not the whole view
        # (0.4 ms less per 640x480 frame in a 1280x720 view). No border: all of it is picture.
        self.view = tk.Canvas(main, background="black", borderwidth=0, highlightthickness=0,
                              width=VIEW_DEFAULT[0], height=VIEW_DEFAULT[1])
        self.view.grid(row=0, column=0, sticky="nsew")
        self.view_image = self.view.create_image(0, 0, anchor="center")
        self.view_text = self.view.create_text(0, 0, text="no video yet", fill="gray", anchor="center")
        self.view.bind("<Configure>", self._on_view_configure)
        side = ttk.Frame(main, padding=(8, 0))
        side.grid(row=0, column=1, rowspan=4, sticky="ns")
        stats = ttk.LabelFrame(side, text="Statistics", padding=6)
        stats.grid(row=0, column=0, sticky="new")
        self.stat_vars: dict[str, tk.StringVar] = {}
        for i, (key, label) in enumerate(self.STAT_ROWS):
            ttk.Label(stats, text=label + ":").grid(row=i, column=0, sticky="w")
            var = tk.StringVar(value="-")
            ttk.Label(stats, textvariable=var, width=22, anchor="e", font="TkFixedFont").grid(
                row=i, column=1, sticky="e")
            self.stat_vars[key] = var
        plot_frame = ttk.LabelFrame(side, text=f"Last {PLOT_SPAN:.0f} s", padding=4)
        plot_frame.grid(row=1, column=0, sticky="new", pady=(6, 0))
        self.plot = tk.Canvas(plot_frame, width=330, height=150, background="white",
                              highlightthickness=0)
        self.plot.grid(row=0, column=0)
        self._build_impairment(side)
        # position slider + time
        pos = ttk.Frame(main)
        pos.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        pos.columnconfigure(0, weight=1)
        self.pos_var = tk.DoubleVar(value=0.0)
        self.slider = ttk.Scale(pos, from_=0.0, to=max(1.0, self.engine.duration or 1.0),
                                variable=self.pos_var, orient="horizontal")
        self.slider.grid(row=0, column=0, sticky="ew")
        self.slider.bind("<ButtonPress-1>", lambda e: setattr(self, "dragging", True))
        self.slider.bind("<ButtonRelease-1>", lambda e: self.seek(self.pos_var.get()))
        self.time_var = tk.StringVar(value="--:-- / --:--")
        ttk.Label(pos, textvariable=self.time_var, font="TkFixedFont").grid(row=0, column=1, padx=6)
        # buttons
        bar = ttk.Frame(main)
        bar.grid(row=2, column=0, sticky="ew", pady=4)
        names = ["PLAY", "PAUSE", "TEARDOWN"] if self.simple else \
            ["SETUP", "PLAY", "PAUSE", "TEARDOWN", "DESCRIBE"]
        actions = {"SETUP": self.setup, "PLAY": self.play, "PAUSE": self.pause,
                   "TEARDOWN": self.teardown, "DESCRIBE": self.describe}
        self.buttons: dict[str, ttk.Button] = {}
        for i, name in enumerate(names):
            b = ttk.Button(bar, text=name.title() if self.simple else name, command=actions[name])
            b.grid(row=0, column=i, padx=2)
            self.buttons[name] = b
        self.status_var = tk.StringVar(value="")
        ttk.Label(bar, textvariable=self.status_var, foreground="#a00").grid(
            row=0, column=len(names), padx=8, sticky="w")
        # log + SDP
        nb = ttk.Notebook(main, height=150)
        nb.grid(row=3, column=0, sticky="nsew")
        self.notebook = nb
        self.log_text = tk.Text(nb, height=9, wrap="none", font="TkFixedFont")
        self.sdp_text = tk.Text(nb, height=9, wrap="none", font="TkFixedFont")
        nb.add(self.log_text, text="RTSP log")
        nb.add(self.sdp_text, text="SDP")
        self.log_text.tag_configure("c2s", foreground="#0645ad")
        self.log_text.tag_configure("s2c", foreground="#116611")
        self._size_window()

    def _size_window(self) -> None:
        """Open with a view of VIEW_DEFAULT (the rest of the layout as it asks), within the screen.

        The requested size is measured while the window is withdrawn, so it maps once, at its
        final size; then the view asks for nothing and takes what the window gives it."""
        m = self.master
        was_withdrawn = m.state() == "withdrawn"
        m.withdraw()
        m.update_idletasks()
        width = min(m.winfo_reqwidth(), m.winfo_screenwidth() - SCREEN_MARGIN[0])
        height = min(m.winfo_reqheight(), m.winfo_screenheight() - SCREEN_MARGIN[1])
        self.view.configure(width=1, height=1)
        m.geometry(f"{width}x{height}")
        if not was_withdrawn:
            m.deiconify()

    def _build_impairment(self, side: ttk.Frame) -> None:
        """The network-impairment panel: a spec (as --impair) applied to incoming RTP while playing."""
        box = ttk.LabelFrame(side, text="Network impairment (incoming RTP)", padding=4)
        box.grid(row=2, column=0, sticky="new", pady=(6, 0))
        box.columnconfigure(0, weight=1)
        imp = self.engine.impairer
        self.impair_var = tk.StringVar(value=str(imp.spec) if imp is not None else "loss=5%,seed=1")
        self.impair_entry = ttk.Entry(box, textvariable=self.impair_var, width=30, font="TkFixedFont")
        self.impair_entry.grid(row=0, column=0, sticky="ew")
        self.impair_entry.bind("<Return>", lambda e: self.apply_impairment())
        self.impair_apply = ttk.Button(box, text="Apply", width=6, command=self.apply_impairment)
        self.impair_apply.grid(row=0, column=1, padx=(4, 0))
        ttk.Button(box, text="Off", width=4, command=lambda: self.apply_impairment("off")).grid(
            row=0, column=2, padx=(2, 0))
        self.impair_status = tk.StringVar(value="off" if imp is None else "applied")
        ttk.Label(box, textvariable=self.impair_status, font=("TkDefaultFont", 8)).grid(
            row=1, column=0, columnspan=3, sticky="w")

    def apply_impairment(self, text: str | None = None) -> None:
        """Apply (or switch off) the impairment typed in the panel; a bad spec shows its error."""
        if text is not None:
            self.impair_var.set(text)
        try:
            spec = self.engine.set_impairment(self.impair_var.get())
        except ValueError as exc:
            self.impair_status.set(f"error: {exc}")
            return
        self.impair_var.set(str(spec) if spec.active else "off")
        self.impair_status.set("applied" if spec.active else "off")

    # -- buttons (run requests off the Tk thread) ---------------------------------------------
    def _run(self, name: str, work: Callable[[], Any], done: Callable[[], None] | None = None) -> None:
        if self.busy:
            return
        self.busy = True
        self.status_var.set(f"{name}...")
        self._refresh_buttons()

        def worker() -> None:
            err = None
            try:
                work()
            except ClientError as exc:
                err = str(exc)
            except OSError as exc:
                err = f"{name}: {exc}"
            self.engine.events.put(Event(EventKind.STATE, ("done", name, err, done)))

        threading.Thread(target=worker, name=f"rtsp-{name}", daemon=True).start()

    def _ensure_described(self) -> None:
        if self.engine.proto is not None and self.engine.proto.sdp is None:
            try:
                self.engine.describe()
            except ClientError as exc:
                logger.info("DESCRIBE failed (%s); SETUP on the request URL", exc)

    def setup(self) -> None:
        def work() -> None:
            self._ensure_described()
            self.engine.setup()
        self._run("SETUP", work)

    def play(self, start: float | None = None) -> None:
        if self.engine.proto is None:
            return
        def work() -> None:
            if self.engine.state == ClientState.INIT:
                # --simple's PLAY (and the space key) set the session up first.
                self._ensure_described()
                self.engine.setup()
            s = start if start is not None else self.start_pos
            self.start_pos = None
            self.engine.play(s)
        self._run("PLAY", work)

    def pause(self) -> None:
        if self.engine.proto is None or self.engine.state != ClientState.PLAYING:
            return
        self._run("PAUSE", self.engine.pause)

    def toggle_play(self) -> None:
        if self.engine.state == ClientState.PLAYING:
            self.pause()
        else:
            self.play()

    def teardown(self) -> None:
        """TEARDOWN ends the session and closes the player (seed 002 'Click Teardown')."""
        if self.closed:
            return
        if self.engine.proto is None or self.engine.state == ClientState.INIT:
            self.close()
            return
        self.busy = False
        self._run("TEARDOWN", self.engine.teardown, done=self.close)

    def describe(self) -> None:
        self._run("DESCRIBE", self.engine.describe, done=self._show_sdp)

    def seek(self, position: float) -> None:
        """Dragging the slider: PLAY with Range: npt=T- (pausing first if playing, RFC 2326 §10.5)."""
        self.dragging = False
        if self.engine.proto is None or self.engine.state == ClientState.INIT:
            return
        def work() -> None:
            if self.engine.state == ClientState.PLAYING:
                self.engine.pause()
            self.engine.play(position)
        self._run("SEEK", work)

    def on_close(self) -> None:
        """Window closed: pause, then ask quit or keep watching (seed 002 'Click Close window')."""
        was_playing = self.engine.state == ClientState.PLAYING and self.engine.proto is not None
        if was_playing:
            try:
                self.engine.pause()
            except ClientError as exc:
                logger.info("PAUSE on close: %s", exc)
        if self.ask_quit():
            self.teardown()
        elif was_playing:
            self.play()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.close()
        try:
            for after_id in self._after_ids.values():
                self.master.after_cancel(after_id)
            self.master.destroy()
        except tk.TclError:
            pass

    # -- periodic work on the Tk thread ---------------------------------------------------------
    def _refresh_buttons(self) -> None:
        proto = self.engine.proto
        for name, b in self.buttons.items():
            if proto is None:
                ok = name == "TEARDOWN"
            elif self.busy:
                ok = False
            elif self.simple and name == "PLAY":
                ok = proto.state != ClientState.PLAYING
            elif self.simple and name == "TEARDOWN":
                ok = True                    # the simple player's way out, in any state
            else:
                ok = proto.valid(name) and not (name == "PLAY" and proto.state == ClientState.PLAYING) \
                    and not (name == "SETUP" and proto.state != ClientState.INIT)
            b.state(["!disabled"] if ok else ["disabled"])

    def _drain(self) -> None:
        if self.closed:
            return
        latest: Frame | None = None
        try:
            for _ in range(1000):
                ev = self.engine.events.get_nowait()
                if ev.kind is EventKind.FRAME:
                    if ev.payload.generation == self.engine.generation:   # not from before a seek
                        latest = ev.payload
                elif ev.kind is EventKind.LOG:
                    self._log(*ev.payload)
                elif ev.kind is EventKind.END:
                    self.status_var.set(str(ev.payload))
                elif ev.kind is EventKind.STATE and isinstance(ev.payload, tuple):
                    _, name, err, done = ev.payload
                    self.busy = False
                    self.status_var.set(err or "")
                    if err:
                        logger.warning("%s", err)
                    if done is not None and not err:
                        done()
                        if self.closed:
                            return
                    elif done is self.close:
                        done()
                        return
        except queue.Empty:
            pass
        if latest is not None:
            self.show_frame(latest)
        self._refresh_buttons()
        self._after("drain", GUI_TICK_MS, self._drain)

    def show_frame(self, frame: Frame) -> None:
        """Decode in memory and show the frame centred in the view: 1:1 when it fits, else scaled
        down (see :func:`decode_for_view`); one PhotoImage is pasted into while size and mode hold."""
        t0 = time.perf_counter()
        if not self._render(frame):
            return
        self.frames_shown += 1
        self.shown_frame = frame
        self.display_times.append(time.perf_counter() - t0)
        if len(self.display_times) > 2000:
            del self.display_times[:1000]

    def _render(self, frame: Frame) -> bool:
        try:
            img, self.frame_size = decode_for_view(frame.data, self._view_size())
        except (OSError, ValueError) as exc:
            logger.debug("frame %d does not decode: %s", frame.index, exc)
            return False
        if self.photo is None or self.photo_size != img.size or self.photo_mode != img.mode:
            self.photo = ImageTk.PhotoImage(img)
            self.photo_size = img.size
            self.photo_mode = img.mode
            self.view.itemconfigure(self.view_image, image=self.photo)
            self.view.itemconfigure(self.view_text, state="hidden")
        else:
            self.photo.paste(img)
        return True

    def _view_size(self) -> tuple[int, int]:
        return self.view.winfo_width(), self.view.winfo_height()

    def _on_view_configure(self, event: Any) -> None:
        """The view changed size (window resized): keep the picture centred and re-fit it once the
        drag settles, so a paused picture follows the window too."""
        for item in (self.view_image, self.view_text):
            self.view.coords(item, event.width // 2, event.height // 2)
        if self.shown_frame is not None and not self.closed and "refit" not in self._after_ids:
            self._after_ids["refit"] = self.master.after(50, self._refit)

    def _refit(self) -> None:
        self._after_ids.pop("refit", None)
        frame = self.shown_frame
        if frame is None or self.closed or self.frame_size is None:
            return
        if fit_size(self.frame_size, self._view_size()) != self.photo_size:
            self._render(frame)

    def _log(self, direction: str, text: str) -> None:
        self.log_text.insert("end", f"--- {direction} ---\n", "c2s" if direction == "C->S" else "s2c")
        self.log_text.insert("end", text.rstrip() + "\n\n")
        self.log_text.see("end")

    def _show_sdp(self) -> None:
        sdp = self.engine.current_sdp
        self.sdp_text.delete("1.0", "end")
        self.sdp_text.insert("end", sdp.text.replace("\r\n", "\n") if sdp is not None else "(no SDP)")
        self.notebook.select(self.sdp_text)
        if self.engine.duration:
            self.slider.configure(to=self.engine.duration)

    def _stats_tick(self) -> None:
        if self.closed:
            return
        s = self.engine.snapshot()
        self.last_snapshot = s
        v = self.stat_vars
        total = f"{s.frame_total}" if s.frame_total else "?"
        v["frame"].set(f"{s.frame_index + 1 if s.frames_completed else 0} / {total}")
        v["fps"].set(f"{s.fps_inst:5.1f} / {s.fps_avg:5.1f}")
        v["bytes"].set(f"{s.bytes_received:,}")
        v["rate"].set(f"{s.kbps_inst:6.0f} / {s.kbps_avg:6.0f}")
        v["packets"].set(f"{s.packets_received:,}")
        v["lost"].set(f"{s.packets_lost:,}")
        v["loss"].set(f"{s.loss_percent:.2f} %")
        v["dups"].set(f"{s.duplicates}")
        v["ooo"].set(f"{s.out_of_order}")
        v["frames"].set(f"{s.frames_completed} / {s.frames_dropped}")
        v["jitter"].set(f"{s.jitter_ms:.2f} ms")
        v["delay"].set(f"{s.delay_ms:.1f} ms" if s.delay_ms else "-")
        v["rtt"].set(f"{s.rtt_ms:.2f} ms" if s.rtt_ms is not None else "-")
        v["sender"].set(f"{s.packets_received:,} / {s.sender_packets:,}" if s.sender_packets is not None
                        else f"{s.packets_received:,} / -")
        v["octets"].set(f"{_fmt_bytes(s.payload_octets)} / {_fmt_bytes(s.sender_octets)}")
        v["clock"].set(time.strftime("%H:%M:%S", time.localtime(s.sender_clock))
                       + f".{int(s.sender_clock * 1000) % 1000:03d}" if s.sender_clock is not None else "-")
        v["rtcp"].set(f"{s.sr_received} / {s.rr_sent}" + (f" ({s.rtcp_errors} bad)" if s.rtcp_errors else ""))
        if s.impairment is not None and not self.impair_status.get().startswith("error"):
            i = s.impairment
            self.impair_status.set(f"truth: dropped {i['dropped']}  dup {i['duplicated']}  "
                                   f"reordered {i['reordered']}  of {i['sent']}")
        v["state"].set(self.engine.state.value if self.engine.proto else "RTP (SDP)")
        if s.duration and float(self.slider.cget("to")) != s.duration:
            self.slider.configure(to=s.duration)
        if not self.dragging and s.frames_completed:
            self.pos_var.set(s.position)
        self.time_var.set(f"{_fmt_time(s.position if s.frames_completed else 0)} / {_fmt_time(s.duration)}")
        # the state and position in the title too: seen in a task bar, and by scripts (xdotool)
        self._set_title(f"RTP player - {self.engine.url or 'SDP stream'} - {v['state'].get()} {self.time_var.get()}")
        self._draw_plot(s)
        self._after("stats", STATS_TICK_MS, self._stats_tick)

    def _set_title(self, title: str) -> None:
        if title != self.title:
            self.master.title(title)
            self.title = title

    def _draw_plot(self, s: StatsSnapshot) -> None:
        c = self.plot
        c.delete("all")
        w, h = int(c.cget("width")), int(c.cget("height"))
        top, bottom, left = 14, h - 4, 4
        c.create_line(left, bottom, w, bottom, fill="#ccc")
        hist = s.history
        top = 26                                    # two rows of labels: each series' own scale
        for n, (i, color, name) in enumerate(self.PLOT_SERIES):
            vals = [p[i] for p in hist if len(p) > i and not math.isnan(p[i])]
            peak = max(vals + [1e-9])
            fmt = ".0f" if i in (1, 2) else ".1f" if i == 3 else ".2f"
            label = f"{name} (max {peak:{fmt}})" if vals else f"{name} (-)"
            c.create_text(4 + (n % 3) * 110, 1 + (n // 3) * 11, text=label, anchor="nw", fill=color,
                          font=("TkDefaultFont", 7))
            scale = peak * 1.1 if peak > 1e-6 else 1.0
            pts: list[float] = []
            for p in hist:
                if len(p) <= i or math.isnan(p[i]):
                    continue
                px = left + (w - left) * (1 - (s.time - p[0]) / PLOT_SPAN)
                py = bottom - (bottom - top) * (p[i] / scale)
                pts += [px, py]
            if len(pts) >= 4:
                c.create_line(*pts, fill=color, width=1.5)


def run_gui(engine: ReceiveEngine, args: Any) -> int:
    """Open the window (one-line error when there is no display), connect, and run Tk."""
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise ClientError(f"no display ({exc}); use --headless to play without a window") from None
    try:
        engine.open()
    except ClientError:
        root.destroy()
        raise
    app = Client(root, engine, simple=getattr(args, "simple", False), start=getattr(args, "start", None))
    if engine.proto is not None:
        def initial() -> None:
            try:
                engine.options()
            except ClientError as exc:
                logger.info("OPTIONS: %s", exc)
            engine.describe()
        app._run("DESCRIBE", initial, done=app._show_sdp)
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # Tk callbacks swallow KeyboardInterrupt, so Ctrl-C is turned into a quit on the Tk thread.
        if interrupted.is_set():
            raise KeyboardInterrupt          # a second Ctrl-C: leave without waiting
        interrupted.set()
        root.after(0, lambda: (engine.quit(), app.close()))

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        root.mainloop()
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    if interrupted.is_set():
        raise KeyboardInterrupt
    return 0
