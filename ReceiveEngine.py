"""The player's receive engine (sockets + threads, no Tk), shared by the Tk window and the headless mode.

:class:`ReceiveEngine` speaks RTSP (RFC 2326) through the sans-IO :class:`RtspClient.RtspClientProtocol`:
the control connection and its reader thread, requests and their replies, authentication retries
(RFC 2617 via RtspClient), the fall-back to the lab hand-out's dialect, reconnecting after a lost server.
The RTP side -- receiving over UDP or interleaved on the RTSP connection (§10.12), reordering,
RFC 2435 frames, RTCP -- is its base :class:`RtpReceivePath.RtpReceivePath`. Complete frames, log
lines and the end of the stream go to its consumer over a ``queue.Queue`` (:mod:`ReceiveEvents`,
re-exported here). Only the consumer's thread touches widgets: :class:`Client.Client` drains the
queue with ``after()``.
"""

from __future__ import annotations

import os
import logging
import random
import select
import socket
import threading
import time
from typing import Any, Callable

from Impair import Impairer, ImpairSpec
from RtcpPacket import RTCP_MIN_TIME
from RtcpSession import RtcpReceiver
from ReceiveEvents import (ClientError, Event, EventKind, EventQueue, Frame, NoReply, ReplyError,
                           SentReport)
from RtpReceivePath import (BYE_GRACE, DEFAULT_SESSION_BW, LAB_FPS, PT_JPEG, RCVBUF_BYTES, TIMER_CAP,
                            TIMER_SLACK, RtpReceivePath)
from RtpStats import PacketDiagnosis, PlaybackStats, StatsSnapshot
from RtspClient import (ClientState, Dialect, Reply, RtspClientProtocol, SdpInfo,
                        describe_failure, parse_rtsp_url, parse_sdp_info)
from RtspMessage import Method
from SocketBuffers import request_buffer

__all__ = ["BYE_GRACE", "DEFAULT_SESSION_BW", "LAB_FPS", "PT_JPEG", "RCVBUF_BYTES", "TIMER_CAP",
           "TIMER_SLACK", "CNAME_TOOL", "MAX_AUTH_ROUNDS", "PROBE_TIMEOUT", "LAB_QUIET",
           "ClientError", "NoReply", "ReplyError", "EventKind", "Frame", "Event", "EventQueue",
           "SentReport", "ClientState", "Dialect", "Reply", "SdpInfo", "StatsSnapshot",
           "ReceiveEngine"]

log = logging.getLogger(__name__)

CNAME_TOOL = "RtpLabPlayer/1.0"
MAX_AUTH_ROUNDS = 3                  # the request, the answer to a 401, one retry for a stale nonce
PROBE_TIMEOUT = 1.0                  # OPTIONS/DESCRIBE unanswered this long: try the lab dialect
LAB_QUIET = 0.03                     # a reply without an end is complete after this much silence


class ReceiveEngine(RtpReceivePath):
    """Owns the RTSP connection, the RTP/RTCP sockets and the threads; frames go to :attr:`events`.

    Use: ``open()``, then ``options()/describe()/setup()/play()/pause()/teardown()`` (each blocks
    until its reply, raising :class:`ClientError` on failure), ``snapshot()`` for statistics at
    any time, ``close()`` at the end. ``url=None`` with ``sdp_text`` plays a raw RTP stream.
    """

    def __init__(self, url: str | None = None, *, rtp_port: int = 0, transport: str = "udp",
                 sdp_text: str | None = None, reorder_window: float = 0.05,
                 reply_timeout: float = 10.0, connect_timeout: float = 5.0,
                 idle_timeout: float = 3.0, frame_queue: int = 512, fps_hint: float | None = None,
                 impair: ImpairSpec | str | None = None,
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
        self.frame_queue_max = frame_queue   # FRAME events waiting at most (memory bound)
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
        self._pending_pos = 0.0        # the position PLAY asked for, until the first frame anchors it
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
        self.final_snapshot: StatsSnapshot | None = None
        # The packet inspector's tap (PacketInspector.PacketRing.add): (arrival, is RTCP, datagram,
        # sent by us), called with the lock held for every datagram as it comes off the wire.
        self.tap: Callable[[float, bool, bytes, bool], None] | None = None

    def dialect_note(self) -> str:
        """What the status line says about the dialect: '' for RTSP 1.0."""
        if not self.lab:
            return ""
        why = f" ({self.dialect_reason})" if self.dialect_reason and self.dialect_reason != "--lab" else ""
        return f"lab dialect{why}"

    def status_note(self) -> str:
        """The status line when no request is running: the diagnosis if any, else the dialect."""
        return self.diagnosis() or self.dialect_note()

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
            with self._reply_cond:
                # Checked under the lock: a reconnect or the lab fallback that replaced this socket
                # meanwhile has reset the connection state, and this socket's EOF is not the new one's.
                if sock is not self.rtsp_sock:
                    return
                if data == b"":
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
                    self._on_rtsp_events(self.proto.feed(data), now, sock)
                    self._unterminated_since = now if self.proto.unterminated else None
                elif since is not None and now - since >= LAB_QUIET:
                    # a reply without a blank line (the lab form) and nothing more: it is complete
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
