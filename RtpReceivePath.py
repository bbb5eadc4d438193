"""The player's RTP receive path (RFC 3550, RFC 2435): sockets, the UDP reader, frames, RTCP reports.

:class:`RtpReceivePath` binds the RTP/RTCP port pair (RFC 3550 §11) or joins a multicast group,
reads RTP over UDP (or takes it from the RTSP connection, §10.12 of RFC 2326, fed by its owner),
validates and reorders it (:mod:`RtpStats`), reassembles RFC 2435 frames
(:class:`RtpJpeg.JpegDepacketizer`), says why packets make no frames (:class:`RtpStats.PacketDiagnosis`),
detects the end of the stream, schedules and sends our receiver reports (§6.2-6.4, built by
:class:`RtcpSession.RtcpReceiver`) and keeps the statistics.

It is the base of :class:`ReceiveEngine.ReceiveEngine`, which owns the RTSP connection and the
session and sets the attributes declared below (``__init__`` is the engine's). The direction is one
way: this module never imports ReceiveEngine; what it needs from the RTSP side is the sans-IO
:class:`RtspClient.RtspClientProtocol` (``proto``: session id, transport, keepalive time) and the
hook :meth:`RtpReceivePath._drop_session`, which the engine overrides.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Any, Callable

from GroupSocket import join_group
from Impair import Impairer, ImpairSpec
from RtcpPacket import ReportBlock, unix_from_ntp
from RtcpSession import RtcpReceiver
from ReceiveEvents import ClientError, Event, EventKind, EventQueue, Frame, SentReport
from RtpJpeg import JpegDepacketizer
from RtpPacket import JPEG_CLOCK_RATE, RtpPacket, seq_diff, ts_diff
from RtpStats import PacketDiagnosis, PlaybackStats, RtpReceiver, StatsSnapshot, Unusable
from RtspClient import ClientState, Dialect, RtspClientProtocol, SdpInfo
from RtspMessage import InterleavedFrame
from SocketBuffers import request_buffer

log = logging.getLogger(__name__)

RCVBUF_BYTES = 4 * 1024 * 1024       # the default ~208 KB loses part of a burst of fragments
BYE_GRACE = 0.25                     # seconds of RTP silence after a BYE before the stream ends
DEFAULT_SESSION_BW = 125_000.0       # octets/s (1 Mbit/s) assumed until the rate is measured (§6.2)
LAB_FPS = 20.0                       # the hand-out server sends a frame every 50 ms
PT_JPEG = 26                         # RFC 3551: JPEG's static payload type
TIMER_SLACK = 0.001                  # s a reader sleeps past a timer, so the timer is surely due
TIMER_CAP = 1.0                      # s a reader sleeps at most: a timer setting changed by another
                                     # thread (the session timeout) counts within it; ~0.01% of a core


def sys_linux() -> bool:
    import sys
    return sys.platform.startswith("linux")


class RtpReceivePath:
    """The RTP/RTCP side of the player (no RTSP here); call its methods with ``_lock`` held
    unless they say otherwise. Its state is set by the owner's ``__init__`` (ReceiveEngine)."""

    # -- set by the owner (ReceiveEngine.__init__) -------------------------------------------
    proto: RtspClientProtocol | None          # the RTSP session (None: an SDP stream)
    sdp: SdpInfo | None                       # the SDP file given (no RTSP)
    transport: str                            # "udp", "tcp" or "multicast"
    events: EventQueue
    rtsp_sock: socket.socket | None           # RTCP goes there over TCP (interleaved)
    rtp_sock: socket.socket | None
    rtcp_sock: socket.socket | None
    rtp_port: int
    rcvbuf: int
    server_addr: tuple[str, int] | None
    reply_timeout: float
    idle_timeout: float
    fps_hint: float | None
    _lock: threading.RLock
    _send_lock: threading.Lock
    _stop: threading.Event
    _threads: list[threading.Thread]
    _wake_r: socket.socket | None
    _wake_w: socket.socket | None
    _reorder_window: float
    rx: RtpReceiver[RtpPacket]
    depack: JpegDepacketizer
    pstats: PlaybackStats
    ssrc: int | None
    bad_packets: int
    foreign_packets: int
    foreign_source_packets: int
    wrong_pt_packets: int
    diag: PacketDiagnosis
    frames_displayable: int
    last_frame: Frame | None
    last_packet_time: float | None
    play_started: float | None
    ended: str | None
    failure: str | None
    connection_lost: bool
    _protocol_error: str | None
    _lost_at: float | None
    _keepalive_sent: float | None
    _pos_base: tuple[int, float] | None
    _pending_pos: float
    _position: float
    frame_queue_max: int
    queue_dropped: int
    _skip_before: int | None
    _hold: list | None
    generation: int
    _bye: tuple[str, float] | None
    _sr_map: tuple[int, int] | None
    delay_ms: float | None
    _our_ssrc: int
    rtcp: RtcpReceiver
    _next_rtcp: float | None
    reports_sent: list[SentReport]
    rr_sent: int
    sender_clock: float | None
    impairer: Impairer | None
    _impair_record: bool
    interleaved: tuple[int, int]
    group: tuple[str, int, int] | None
    tap: Callable[[float, bool, bytes, bool], None] | None

    def _drop_session(self) -> None:
        """Hook: the server is gone and the stream ended with a failure (lock held); the owner
        drops its RTSP session (ReceiveEngine overrides this). Without RTSP: nothing to drop."""


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

    def diagnosis(self, now: float | None = None, settled: bool = False) -> str | None:
        """One line when packets arrive but none (or few) make frames: count, source, first reason
        (``settled``: the stream is over, say it even if packets came for less than 2 s)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            incomplete = self.depack.last_drop_reason or self.depack.last_bad_reason
            return self.diag.line(self.frames_displayable, now, incomplete, settled=settled)

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
        local = self.rtsp_sock.getsockname()[0] if self.rtsp_sock is not None else "0.0.0.0"
        if not v6 and ":" in local:
            local = local[7:] if local.startswith("::ffff:") else "0.0.0.0"
        socks = []
        try:
            for port in ports:
                # shared with other viewers on this host; IPv6 joins on interface 0
                sock, _ = join_group(group, port, v6_index=0) if v6 else \
                    join_group(group, port, socket.inet_aton(local))
                socks.append(sock)
                sock.setblocking(False)  # the reader drains both sockets in turn
                if v6:
                    if ttl is not None:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
                else:
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
                self.depack.new_timeline()   # a half-built frame from before the seek is not a drop
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
                self._pos_base = (ts, self._pending_pos)
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
        if self.events.frames_waiting >= self.frame_queue_max:
            # Nobody takes frames (a window whose event loop is blocked: a modal dialog, a drag on
            # Windows): memory stays bounded; the window shows last_frame when it is back.
            self.queue_dropped += 1
            if self.queue_dropped == 1:
                log.warning("the window took no frames for a while: frames beyond %d waiting are "
                            "not queued (not shown, not saved)", self.frame_queue_max)
            return
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
