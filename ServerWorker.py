"""Server I/O: one ServerWorker per RTSP connection, one Streamer pacing every session.

ServerWorker follows socketserver's setup -> handle -> finish: it reads bytes, lets
RtspParser frame them, answers each request (RtspError anywhere becomes the reply in
one place, `_reply_error`), and owns the sessions created on its connection.

Streamer is the single pacing loop for all sessions (a thread per session drifts and
does not scale): a heap of deadlines, frame k of a PLAY due at t0 + k/fps on the
monotonic clock.  A frame that is already later than `late_skip` is skipped and
counted instead of being burst out to catch up.  Each frame is packetized and laid
out with its RTP headers once (MediaLibrary.Movie.train -> RtpPacket.PacketTrain) and
shared; per session a copy is stamped with its sequence numbers, timestamp and SSRC and
sent with one sendmsg per slice (UDP GSO).  Sessions that PLAY at the same moment take
different start slots of the frame interval, so their frames are not sent in one burst.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import random
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Callable, Dict, List, Optional, Tuple

from MediaLibrary import MediaLibrary, Movie
from RtcpPacket import (
    Bye, ExtendedReport, ReceiverReport, RtcpError, SenderReport, SourceDescription, XrBlock, XrBlockType,
    dlsr_from_seconds, ntp_from_unix, ntp_middle32, parse_compound, rtcp_interval, rtt_seconds,
    serialize_compound, update_avg_rtcp_size,
)
from RtpPacket import JPEG_CLOCK_RATE, PacketTrain
from RtspAuth import Authenticator
from RtspHeaders import NptRange, RtpInfo, Transport, format_range, format_rtp_info, format_session, parse_range, parse_session
from RtspMessage import (
    Headers, InterleavedFrame, Method, MessageError, Request, Response, RtspError, RtspParser, Status,
)
from RtspSession import SESSIONLESS, SUPPORTED, State, new_session_id, next_state
from Sdp import movie_sdp

log = logging.getLogger(__name__)

SERVER_NAME = "PyRtspLab/1.0"
CNAME = f"server@{socket.gethostname()}"
TRACK_CONTROL = "trackID=0"
PUBLIC = ", ".join(m.value for m in SUPPORTED)
SOCKET_BUFFER = 4 << 20
FRAME, RTCP, SLICE = 0, 1, 2  # kinds of Streamer deadlines
UDP_BURST = 24  # packets sent back to back (about 33 KB)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux >= 4.18 UDP GSO (include/uapi/linux/udp.h)
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
_SEGMENT_SIZE = struct.Struct("=H")  # the UDP_SEGMENT control message's value
SEND_EARLY = 0.001  # deadlines this close are served in the same wake-up (frames up to 1 ms early)
START_PHASES = 16  # start slots per frame interval: PLAYs arriving together are spread over them
SLICE_SPREAD = 0.5  # a large frame's slices go out within this share of the frame interval
POLL_INTERVAL = 0.25  # how often idle loops look at shutdown / timeouts
WORKER_POLL = 1.0  # a worker wakes this often for its timeouts; shutdown() wakes it at once
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


def _unmapped(host: str) -> str:
    """'::ffff:127.0.0.1' -> '127.0.0.1' (dual-stack sockets report IPv4 peers mapped)."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


# --------------------------------------------------------------------------- sessions
class StreamSession:
    """One RTSP session: its state, transport and the RTP stream position."""

    def __init__(self, session_id: str, worker: "ServerWorker", movie: Movie, rng: random.Random) -> None:
        self.id = session_id
        self.worker = worker
        self.movie = movie
        self.state = State.INIT
        self.lab = False
        self.transport: Optional[Transport] = None
        self.udp_dest: Optional[Tuple[str, int]] = None
        self.rtcp_dest: Optional[Tuple[str, int]] = None
        self.channel: Optional[int] = None  # interleaved RTP channel (TCP)
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.ts0 = rng.getrandbits(32)
        self.position = 0  # next frame (timeline position; may exceed frame_count when looping)
        self.stop_position: Optional[int] = None
        self.generation = 0  # bumped on PLAY/PAUSE/TEARDOWN; stale heap entries are ignored
        self.play_t0 = 0.0
        self.play_k0 = 0
        self.phase: Optional[int] = None  # the Streamer's start slot while playing
        self.ended = False
        self.last_activity = time.monotonic()
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        self.max_lateness = 0.0
        # RTCP (RFC 3550 6.3): our SR schedule and what the receiver's RRs said
        self.rtcp_initial = True
        self.out_train: Optional[PacketTrain] = None  # the frame being sent in slices (UDP)
        self.out_seq = 0  # ... the sequence number of its first packet
        self.out_ts = 0  # ... its RTP timestamp
        self.out_next = 0  # ... the index of its next packet
        self.slice_gap = 0.0
        self.rtcp_epoch = 0  # bumped when the stream is removed: stale SR deadlines are ignored
        self.avg_rtcp_size = 0.0
        self.rr_fraction_lost = 0.0
        self.rr_cumulative_lost = 0
        self.rr_jitter_ms = 0.0
        self.rtt_ms: Optional[float] = None
        self.rr_count = 0
        self.last_rrtr: Optional[Tuple[int, int, float]] = None  # (reporter SSRC, LRR, monotonic arrival)
        self.lock = threading.Lock()  # the Streamer holds it while sending; PLAY/PAUSE while moving position

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def rtptime(self, position: float) -> int:
        """90 kHz timestamp of timeline position `position` (RFC 2435: one per frame)."""
        return (self.ts0 + round(position * JPEG_CLOCK_RATE / self.movie.fps)) & 0xFFFFFFFF

    def media_position(self, now: float) -> float:
        """Where the stream is at monotonic time `now`, in frames (for the SR's RTP time)."""
        if self.ended or self.state is not State.PLAYING:
            return float(self.position)
        return self.play_k0 + (now - self.play_t0) * self.movie.fps

    def _report(self) -> list:
        """SR + SDES CNAME (RFC 3550 6.1, 6.4.1) giving the NTP <-> RTP time of now.

        When the receiver sent an RFC 3611 RRTR, an XR DLRR block answers it so that a
        receive-only client can compute its round-trip time too."""
        wall, now = time.time(), time.monotonic()
        sr = SenderReport(self.ssrc, ntp_from_unix(wall), self.rtptime(self.media_position(now)),
                          self.packets_sent & 0xFFFFFFFF, self.octets_sent & 0xFFFFFFFF)
        packets = [sr, SourceDescription.cname(self.ssrc, CNAME, tool=SERVER_NAME)]
        if self.last_rrtr is not None:
            reporter, lrr, received = self.last_rrtr
            dlrr = XrBlock.dlrr([(reporter, lrr, dlsr_from_seconds(now - received))])
            packets.append(ExtendedReport(self.ssrc, [dlrr]))
        return packets

    def sender_report(self) -> bytes:
        return serialize_compound(self._report())

    def bye(self, reason: str) -> bytes:
        """The report plus BYE: the stream ends (RFC 3550 6.6); ffmpeg/GStreamer end on it."""
        return serialize_compound(self._report() + [Bye([self.ssrc], reason)])

    def rtcp_interval(self, rng: random.Random) -> float:
        """Next SR interval (RFC 3550 6.3/A.7): 5% of the stream's bandwidth, senders' 25%."""
        bandwidth = max(self.movie.byte_rate, 1000.0)  # octets/s of the stream
        if not self.avg_rtcp_size:
            self.avg_rtcp_size = len(self.sender_report()) + 28.0
        interval = rtcp_interval(members=2, senders=1, rtcp_bw=0.05 * bandwidth, we_sent=True,
                                 avg_rtcp_size=self.avg_rtcp_size, initial=self.rtcp_initial, rng=rng)
        self.rtcp_initial = False
        return interval

    def receive_rtcp(self, data: bytes) -> None:
        """Take the receiver's RR blocks about our SSRC: loss, jitter, RTT (RFC 3550 6.4)."""
        arrival = ntp_middle32(ntp_from_unix(time.time()))
        try:
            packets = parse_compound(data)
        except RtcpError as exc:
            log.info("session %s: bad RTCP dropped: %s", self.id, exc)
            return
        for packet in packets:
            if isinstance(packet, (ReceiverReport, SenderReport)):
                for block in packet.reports:
                    if block.ssrc != self.ssrc:
                        continue
                    self.rr_count += 1
                    self.rr_fraction_lost = block.fraction_lost / 256.0
                    self.rr_cumulative_lost = block.packets_lost
                    self.rr_jitter_ms = block.jitter * 1000.0 / JPEG_CLOCK_RATE
                    rtt = rtt_seconds(arrival, block.lsr, block.dlsr)
                    self.rtt_ms = None if rtt is None else rtt * 1000.0
                    log.info("session %s: RR fraction lost %.1f%%, cumulative lost %d, jitter %.2f ms, RTT %s",
                             self.id, 100 * self.rr_fraction_lost, self.rr_cumulative_lost, self.rr_jitter_ms,
                             "-" if self.rtt_ms is None else f"{self.rtt_ms:.2f} ms")
            elif isinstance(packet, ExtendedReport):
                for block in packet.blocks:
                    if block.block_type == XrBlockType.RRTR:
                        self.last_rrtr = (packet.ssrc, ntp_middle32(block.ntp_timestamp), time.monotonic())
            elif isinstance(packet, Bye):
                log.info("session %s: receiver sent BYE (%s)", self.id, packet.reason_text or "no reason")


class Streamer(threading.Thread):
    """The single pacing loop: sends every session's frames on a deadline schedule."""

    def __init__(self, rtp_sock: socket.socket, rtcp_sock: socket.socket, config: ServerConfig) -> None:
        super().__init__(name="streamer", daemon=True)
        self.rtp_sock = rtp_sock
        self.rtcp_sock = rtcp_sock
        self.config = config
        self.gso = sys.platform.startswith("linux")  # cleared at the first refusal
        # (due, tie-breaker, generation, session, kind): kind FRAME or RTCP
        self._heap: List[Tuple[float, int, int, StreamSession, int]] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full pipe already means "wake up": never block a worker
        self._stopping = False
        self._sessions: Dict[str, StreamSession] = {}
        self._rtcp_routes: Dict[Tuple[str, int], StreamSession] = {}
        self._phase_load = [0] * START_PHASES  # playing sessions per start slot

    # -- called from worker threads --------------------------------------
    def add(self, session: StreamSession) -> None:
        with self._lock:
            fresh = session.id not in self._sessions
            self._sessions[session.id] = session
            if session.rtcp_dest:
                self._rtcp_routes[session.rtcp_dest] = session
            if fresh and not session.lab:
                due = time.monotonic() + session.rtcp_interval(self.config.rng)
                heapq.heappush(self._heap, (due, next(self._counter), session.rtcp_epoch, session, RTCP))
        self._wake()

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def play(self, session: StreamSession) -> None:
        """Start sending from session.position (the PLAY reply has been sent): now, or a few
        ms later in a less used start slot when many sessions share this moment."""
        with self._lock:
            session.generation += 1
            session.ended = False
            self._release_phase(session)
            session.play_t0 = self._start_time(session, time.monotonic())
            session.play_k0 = session.position
            heapq.heappush(self._heap, (session.play_t0, next(self._counter), session.generation, session, FRAME))
        self._wake()

    def pause(self, session: StreamSession) -> None:
        with self._lock:
            session.generation += 1
            self._release_phase(session)

    def _start_time(self, session: StreamSession, now: float) -> float:
        """Spread frame deadlines (called with the lock held).  A session's frames are due at
        start + k * interval, so its start's place in the frame interval (one of START_PHASES
        slots) fixes when it sends for as long as it plays.  Take the least used slot, the
        soonest among equals: alone, a session starts at once; 100 PLAYs at the same moment
        start over one interval instead of sending 100 frames in a burst every interval.
        The RTP timestamps follow the frame position, so the delay changes no timestamp."""
        interval = 1.0 / session.movie.fps
        slot = interval / START_PHASES
        into = now % interval
        current = int(into / slot) % START_PHASES
        load = self._phase_load
        best = 0
        for step in range(1, START_PHASES):
            if load[(current + step) % START_PHASES] < load[(current + best) % START_PHASES]:
                best = step
        session.phase = (current + best) % START_PHASES
        load[session.phase] += 1
        return now if best == 0 else now + (current + best) * slot - into

    def _release_phase(self, session: StreamSession) -> None:
        if session.phase is not None:
            self._phase_load[session.phase] -= 1
            session.phase = None

    def remove(self, session: StreamSession, bye: Optional[str] = None) -> None:
        """Stop a session's stream; with `bye`, tell the receiver in an RTCP BYE first."""
        if bye and not session.lab and session.id in self._sessions:
            self._send_rtcp(session, session.bye(bye))
        with self._lock:
            session.generation += 1
            session.rtcp_epoch += 1
            self._release_phase(session)
            self._sessions.pop(session.id, None)
            if session.rtcp_dest and self._rtcp_routes.get(session.rtcp_dest) is session:
                del self._rtcp_routes[session.rtcp_dest]

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the loop ---------------------------------------------------------
    def run(self) -> None:
        next_reap = time.monotonic() + 1.0
        while not self._stopping:
            now = time.monotonic()
            with self._lock:
                timeout = self._heap[0][0] - now if self._heap else POLL_INTERVAL
            timeout = max(0.0, min(timeout, POLL_INTERVAL, next_reap - now))
            ready, _, _ = select.select([self._wake_r, self.rtcp_sock], [], [], timeout)
            if self._wake_r in ready:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            if self.rtcp_sock in ready:
                self._receive_rtcp()
            self._send_due()
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + 1.0
                self._reap_idle()
        self._wake_r.close()
        self._wake_w.close()

    def _send_due(self) -> None:
        """Send everything due now or within SEND_EARLY: one wake-up serves every session whose
        deadline falls in the same short window instead of one select() per session."""
        now = time.monotonic()
        horizon = now + SEND_EARLY
        batch = []
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= horizon:
                entry = heapq.heappop(heap)
                generation, session, kind = entry[2], entry[3], entry[4]
                if generation != (session.generation if kind == FRAME else session.rtcp_epoch):
                    continue  # a stale deadline: the session was paused, replayed or removed
                if kind == RTCP:
                    heapq.heappush(heap, (now + session.rtcp_interval(self.config.rng),
                                          next(self._counter), generation, session, RTCP))
                batch.append(entry)
        again = []
        ended = []
        for due, _, generation, session, kind in batch:
            if kind == FRAME:
                with session.lock:
                    if generation != session.generation:
                        continue
                    if not self._send_frame(session, time.monotonic() - due):
                        ended.append((session, generation))
                        continue
                    n = session.position - session.play_k0
                again.append((session.play_t0 + n / session.movie.fps, generation, session, FRAME))
            elif kind == SLICE:
                with session.lock:
                    if generation == session.rtcp_epoch and session.out_train is not None:
                        self._send_slice(session)
                        if session.out_train is not None:
                            again.append((time.monotonic() + session.slice_gap, generation, session, SLICE))
            else:
                report = session.sender_report()
                session.avg_rtcp_size = update_avg_rtcp_size(session.avg_rtcp_size, len(report))
                self._send_rtcp(session, report)
        if again or ended:
            with self._lock:
                for session, generation in ended:
                    if generation == session.generation:
                        self._release_phase(session)
                for due, generation, session, kind in again:
                    if generation == (session.generation if kind == FRAME else session.rtcp_epoch):
                        heapq.heappush(self._heap, (due, next(self._counter), generation, session, kind))

    def _send_frame(self, session: StreamSession, lateness: float) -> bool:
        """Send (or skip, if too late) the frame at session.position; False when the stream ended."""
        movie = session.movie
        position = session.position
        count = movie.frame_count
        stop = session.stop_position if session.stop_position is not None else count
        if position >= stop and not (self.config.loop and session.stop_position is None):
            session.ended = True
            if not session.lab:
                self._send_rtcp(session, session.bye("end of stream"))
            log.info("session %s: end of %s after %d frames (%d skipped)", session.id, movie.name,
                     session.frames_sent, session.frames_skipped)
            return False
        session.position = position + 1
        late_skip = max(0.2, 2.0 / movie.fps)
        if lateness > late_skip:
            session.frames_skipped += 1
            return True
        if lateness > session.max_lateness:
            session.max_lateness = lateness
        try:
            train = movie.train(position % count, session.lab, session.channel)
        except ValueError as exc:  # e.g. a whole-JPEG lab packet too large for a '$' frame
            session.frames_skipped += 1
            log.warning("session %s: frame %d of %s not sent: %s", session.id, position % count, movie.name, exc)
            return True
        seq, ts = session.seq, session.rtptime(position)
        session.seq = (seq + train.count) & 0xFFFF
        if session.channel is not None:
            if not session.worker.send_interleaved(train.stamp(seq, ts, session.ssrc)):
                session.frames_skipped += 1
                return True
        else:
            session.out_train, session.out_seq, session.out_ts, session.out_next = train, seq, ts, 0
            self._send_slice(session)
            if session.out_train is not None:
                # A large frame goes out in slices spread over part of the frame interval, so
                # a receiver's socket buffer (Linux default ~200 KB) is not overrun by a burst.
                slices = -(-train.count // UDP_BURST)
                session.slice_gap = SLICE_SPREAD / movie.fps / slices
                with self._lock:
                    heapq.heappush(self._heap, (time.monotonic() + session.slice_gap, next(self._counter),
                                                session.rtcp_epoch, session, SLICE))
        session.frames_sent += 1
        session.packets_sent += train.count
        session.octets_sent += train.payload_octets
        return True

    def _send_slice(self, session: StreamSession) -> None:
        """Stamp and send the next UDP_BURST packets of the frame in progress."""
        train = session.out_train
        start = session.out_next
        end = min(start + UDP_BURST, train.count)
        dest = session.udp_dest
        buf = train.stamp(session.out_seq, session.out_ts, session.ssrc, start, end)
        if not (self.gso and end - start > 1 and train.uniform and self._send_segmented(buf, train.segment, dest)):
            sendto = self.rtp_sock.sendto
            for packet in train.packets(buf, start):
                try:
                    sendto(packet, dest)
                except OSError as exc:
                    log.debug("session %s: RTP send to %s failed: %s", session.id, dest, exc)
        if end >= train.count:
            session.out_train = None
        session.out_next = end

    def _send_segmented(self, buf: bytearray, segment: int, dest) -> bool:
        """Send a stamped run of equal-size packets (the last may be shorter) with one sendmsg
        per GSO_MAX_SEGMENTS via UDP GSO (Linux UDP_SEGMENT): the kernel cuts the buffer into
        datagrams of `segment` octets, one system call per slice instead of one per packet,
        which is most of what streaming costs.  False: not applicable here."""
        step = segment * max(1, min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // segment))
        control = [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(segment))]
        view = memoryview(buf)
        for first in range(0, len(buf), step):
            try:
                self.rtp_sock.sendmsg([view[first:first + step]], control, 0, dest)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EIO) and first == 0:
                    log.info("UDP segmentation offload unavailable (%s): one send per packet", exc)
                    self.gso = False
                    return False
                log.debug("RTP send to %s failed: %s", dest, exc)
        return True

    def _send_rtcp(self, session: StreamSession, data: bytes) -> None:
        if session.channel is not None:
            session.worker.send_interleaved(InterleavedFrame(session.channel + 1, data).serialize())
        elif session.rtcp_dest is not None:
            host, port = session.udp_dest[0], session.rtcp_dest[1]
            try:
                self.rtcp_sock.sendto(data, (host, port))
            except OSError as exc:
                log.debug("session %s: RTCP send failed: %s", session.id, exc)

    def _receive_rtcp(self) -> None:
        try:
            data, addr = self.rtcp_sock.recvfrom(65536)
        except OSError:
            return
        key = (_unmapped(addr[0]), addr[1])
        with self._lock:
            session = self._rtcp_routes.get(key)
        if session is None:
            log.debug("RTCP from unknown %s:%d dropped", *key)
            return
        session.touch()  # RFC 2326 12.37: RTCP counts as liveness
        session.receive_rtcp(data)

    def _reap_idle(self) -> None:
        limit = self.config.session_timeout
        now = time.monotonic()
        with self._lock:
            idle = [s for s in self._sessions.values() if not s.lab and now - s.last_activity > limit]
        for session in idle:
            log.info("session %s: no request or RTCP for %.0f s, torn down", session.id, limit)
            session.worker.expire(session)


# --------------------------------------------------------------------------- worker
class ServerWorker:
    """Serves one RTSP connection: setup -> handle -> finish (socketserver's shape)."""

    def __init__(self, conn: socket.socket, addr, config: ServerConfig, streamer: Streamer,
                 server_ports: Tuple[int, int], registry: "SessionRegistry") -> None:
        self.conn = conn
        self.peer = _unmapped(addr[0])
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
        self.conn.setblocking(True)
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A reply write may block at most this long on a client that stopped reading.
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
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
                    sent = self.conn.send(self._pending, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return False
                except OSError:
                    return False
                self._pending = self._pending[sent:]
                if self._pending:
                    return False
            try:
                sent = self.conn.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False
            if sent < len(data):
                self._pending = bytes(data[sent:])  # whole frames only: finish this one first
            return True

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
            host = _unmapped(host)
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
        local = _unmapped(self.conn.getsockname()[0])
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
            session = StreamSession(self.registry.new_id(), self, movie, self.config.rng)
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
            if offer.destination and _unmapped(offer.destination) != self.peer:
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
