"""The pacing loop: one Streamer thread sends every session's RTP and RTCP.

A thread per session drifts and does not scale, so one loop keeps a heap of deadlines:
frame k of a PLAY is due at t0 + k/fps on the monotonic clock.  A frame that is already
later than ``late_skip`` is skipped and counted instead of being burst out to catch up.
Each frame is packetized and laid out with its RTP headers once (MediaLibrary.Movie.train
-> PacketTrain) and shared; per session a copy is stamped with its sequence numbers,
timestamp and SSRC and sent with one sendmsg per slice (UDP GSO where the platform has
it).  Sessions that PLAY at the same moment take different start slots of the frame
interval, so their frames are not sent in one burst.

The Streamer knows nothing of RTSP connections: a :class:`StreamSession` carries the
callables its connection gave it (send interleaved '$' frames; expire the session).

Live sources (LiveReader.LiveFeed) are not paced by the heap: their reader thread hands
each frame over (`live_frame`), and the loop sends it at once to every session playing
that source, stamped with the source's arrival clock.  A multicast group is one session
whose destination is the group (Multicast.py keeps its members): one send for all.  The
members' receiver reports go to the group too (RFC 3550 6.2); while a group sends, the loop
also reads the socket that joined the group's RTCP port (:meth:`Streamer.watch_rtcp`).
"""

from __future__ import annotations

import collections
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
from typing import Any, Callable, Protocol

from MediaLibrary import FrameUnavailable, Movie
from PacketTrain import PacketTrain
from RtcpSession import Origin, RtcpSender
from RtpPacket import JPEG_CLOCK_RATE
from RtspHeaders import Transport
from RtspMessage import InterleavedFrame
from RtspSession import State

log = logging.getLogger(__name__)

SERVER_NAME = "PyRtspLab/1.0"
CNAME = f"server@{socket.gethostname()}"
FRAME, RTCP, SLICE = 0, 1, 2  # kinds of Streamer deadlines
UDP_BURST = 24  # packets sent back to back (about 33 KB)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux >= 4.18 UDP GSO (include/uapi/linux/udp.h)
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
_SEGMENT_SIZE = struct.Struct("=H")  # the UDP_SEGMENT control message's value
SEND_EARLY = 0.001  # deadlines this close are served in the same wake-up (frames up to 1 ms early)
START_PHASES = 16  # start slots per frame interval: PLAYs arriving together are spread over them
SLICE_SPREAD = 0.5  # a large frame's slices go out within this share of the frame interval
POLL_INTERVAL = 0.25  # how often the idle loop looks at shutdown / timeouts
CONVERT_WAIT_STEP = 0.005  # a session whose next frame is still being converted waits this long...
CONVERT_WAIT_STEPS = 400  # ... at most this many times (2 s) before converting it itself
ENDED_ROUTE_TTL = 2.0  # seconds a removed session's RTCP is still recognised (and logged)


class GroupSocket(Protocol):
    """A socket that joined a multicast group's RTCP port (Server.GroupRtcpSocket): its close()
    also leaves the group."""

    def fileno(self) -> int: ...

    def recvfrom(self, size: int) -> tuple[bytes, Any]: ...

    def close(self) -> None: ...


def unmapped(host: str) -> str:
    """'::ffff:127.0.0.1' -> '127.0.0.1' (dual-stack sockets report IPv4 peers mapped)."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def interleave(train: PacketTrain, buf: bytes | bytearray, channel: int, start: int = 0) -> bytes:
    """A stamped run of a train's packets, each in its RFC 2326 10.12 '$' frame on ``channel``.
    Raises ValueError for a packet over 65535 octets or a channel outside 0..255."""
    return b"".join(InterleavedFrame(channel, bytes(p)).serialize() for p in train.packets(buf, start))


class StreamSession:
    """One RTSP session: its state, transport and the RTP stream position."""

    def __init__(self, session_id: str, movie: Movie, rng: random.Random, *,
                 send_interleaved: Callable[[bytes], bool] | None = None,
                 expire: Callable[["StreamSession"], None] | None = None) -> None:
        self.id = session_id
        self.movie = movie
        # how the connection that owns the session sends '$' frames (False: not sent now), and
        # how it ends the session when the Streamer finds it idle for too long
        self.send_interleaved = send_interleaved
        self.expire = expire
        self.state = State.INIT
        self.lab = False
        self.live = getattr(movie, "live", False)  # a LiveFeed: frames come when they arrive
        self.group: StreamSession | None = None  # a multicast member: the group that sends
        self.peer: str | None = None  # the RTSP client's host (a member's reports come from it)
        self.members: set | None = None  # a multicast group: its member sessions
        self.address: Any = None  # a multicast group: its Multicast.GroupAddress
        self.rtp_sock: socket.socket | None = None  # None: the Streamer's unicast sockets
        self.rtcp_sock: socket.socket | None = None
        self.transport: Transport | None = None
        self.udp_dest: tuple[str, int] | None = None
        self.rtcp_dest: tuple[str, int] | None = None
        self.channel: int | None = None  # interleaved RTP channel (TCP)
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.ts0 = rng.getrandbits(32)
        self.position = 0  # next frame (timeline position; may exceed frame_count when looping)
        self.stop_position: int | None = None
        self.generation = 0  # bumped on PLAY/PAUSE/TEARDOWN; stale heap entries are ignored
        self.play_t0 = 0.0
        self.play_k0 = 0
        self.phase: int | None = None  # the Streamer's start slot while playing
        self.ended = False
        self.last_activity = time.monotonic()
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        self.skip_warned = False  # a frame skipped for a reason (not lateness) is logged once
        self.waited = 0  # steps the current frame has waited for the converter
        self.frames_waited = 0  # all such steps (5 ms each) of the session
        self.max_lateness = 0.0
        # RTCP (RFC 3550 6): our SR schedule and what the receiver's RRs said, pure (RtcpSession)
        self.rtcp = RtcpSender(self.ssrc, CNAME, SERVER_NAME, JPEG_CLOCK_RATE, label=f"session {session_id}",
                               logger=log)
        self.out_train: PacketTrain | None = None  # the frame being sent in slices (UDP)
        self.out_seq = 0  # ... the sequence number of its first packet
        self.out_ts = 0  # ... its RTP timestamp
        self.out_next = 0  # ... the index of its next packet
        self.slice_gap = 0.0
        self.rtcp_epoch = 0  # bumped when the stream is removed: stale SR deadlines are ignored
        self.lock = threading.Lock()  # the Streamer holds it while sending; PLAY/PAUSE while moving position

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def skip(self, what: str, reason: str) -> None:
        """Count a frame (`what`: "frame 12 of movie.Mjpeg") as skipped for `reason`; the first
        such frame of the session is logged at WARNING, later ones are counted."""
        self.frames_skipped += 1
        if not self.skip_warned:
            self.skip_warned = True
            log.warning("session %s: %s skipped: %s (further skips are counted, not logged)",
                        self.id, what, reason)
        else:
            log.debug("session %s: %s skipped: %s", self.id, what, reason)

    def rtptime(self, position: float) -> int:
        """90 kHz timestamp of timeline position `position` (RFC 2435: one per frame)."""
        return (self.ts0 + round(position * JPEG_CLOCK_RATE / self.movie.fps)) & 0xFFFFFFFF

    def live_rtptime(self, arrival: float) -> int:
        """90 kHz timestamp of a live frame that arrived at monotonic `arrival` (the source's clock)."""
        return (self.ts0 + round((arrival - getattr(self.movie, "t0", 0.0)) * JPEG_CLOCK_RATE)) & 0xFFFFFFFF

    def rtptime_now(self, now: float) -> int:
        """The RTP time that corresponds to monotonic `now` (an SR's RTP timestamp)."""
        if self.live:
            return self.live_rtptime(now)
        return self.rtptime(self.media_position(now))

    def media_position(self, now: float) -> float:
        """Where the stream is at monotonic time `now`, in frames (for the SR's RTP time)."""
        if self.ended or self.state is not State.PLAYING:
            return float(self.position)
        return self.play_k0 + (now - self.play_t0) * self.movie.fps

    # -- RTCP: RtcpSender builds and reads, this session supplies its clock and counts ---------
    def sender_report(self) -> bytes:
        """SR + SDES (+ XR DLRR) giving the NTP <-> RTP time of now (RFC 3550 6.4.1)."""
        now = time.monotonic()
        return self.rtcp.sender_report(time.time(), now, self.rtptime_now(now), self.packets_sent,
                                       self.octets_sent)

    def bye(self, reason: str) -> bytes:
        """The report plus BYE: the stream ends (RFC 3550 6.6); ffmpeg/GStreamer end on it."""
        now = time.monotonic()
        return self.rtcp.bye(reason, time.time(), now, self.rtptime_now(now), self.packets_sent,
                             self.octets_sent)

    def rtcp_interval(self, rng: random.Random) -> float:
        """Next SR interval (RFC 3550 6.3/A.7) for this stream's bandwidth and audience."""
        members = 2 if self.members is None else len(self.members) + 1
        return self.rtcp.interval(max(self.movie.byte_rate, 1000.0), members, rng, time.monotonic())

    def receive_rtcp(self, data: bytes) -> Origin:
        """The receiver's RTCP: loss, jitter, RTT, RRTR (RFC 3550 6.4, RFC 3611); on a group, each
        member's, and our own reports looped back (Origin.OWN)."""
        return self.rtcp.receive(data, time.time(), time.monotonic())


class Streamer(threading.Thread):
    """The single pacing loop: sends every session's frames on a deadline schedule."""

    def __init__(self, rtp_sock: socket.socket, rtcp_sock: socket.socket, *, loop: bool = False,
                 session_timeout: float = 60.0, rng: random.Random | None = None) -> None:
        super().__init__(name="streamer", daemon=True)
        self.rtp_sock = rtp_sock
        self.rtcp_sock = rtcp_sock
        self.loop = loop
        self.session_timeout = session_timeout
        self.rng = rng if rng is not None else random.SystemRandom()
        # UDP GSO is Linux's (a speed-up only: elsewhere, one send per packet); cleared at the
        # first refusal
        self.gso = sys.platform.startswith("linux") and hasattr(rtp_sock, "sendmsg")
        # (due, tie-breaker, generation, session, kind): kind FRAME or RTCP
        self._heap: list[tuple[float, int, int, StreamSession, int]] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full pipe already means "wake up": never block a worker
        self._stopping = False
        self._sessions: dict[str, StreamSession] = {}
        self._rtcp_routes: dict[tuple[str, int], StreamSession] = {}
        # routes of sessions just removed, kept ENDED_ROUTE_TTL s: the receiver's BYE (sent just
        # before its TEARDOWN, on another socket) may be read after the TEARDOWN was handled
        self._ended_routes: dict[tuple[str, int], tuple[StreamSession, float]] = {}
        self._phase_load = [0] * START_PHASES  # playing sessions per start slot
        self._live: dict[object, list[StreamSession]] = {}  # live source -> its playing sessions
        self._live_queue: "collections.deque" = collections.deque()  # (source, frame) to send
        self._group_rtcp: dict[GroupSocket, StreamSession] = {}  # joined RTCP port -> its group
        self._closing: list[GroupSocket] = []  # unwatched: the loop closes them (never mid-select)
        self.send_errors = 0
        self._send_errnos: set = set()

    # -- called from worker threads --------------------------------------
    def add(self, session: StreamSession) -> None:
        with self._lock:
            fresh = session.id not in self._sessions
            self._sessions[session.id] = session
            if session.rtcp_dest:
                self._rtcp_routes[session.rtcp_dest] = session
            if fresh and not session.lab and session.group is None:
                due = time.monotonic() + session.rtcp_interval(self.rng)
                heapq.heappush(self._heap, (due, next(self._counter), session.rtcp_epoch, session, RTCP))
        self._wake()

    def watch_rtcp(self, group: StreamSession, sock: GroupSocket) -> None:
        """Read the members' RTCP that arrives on `sock` (it joined `group`'s RTCP port) while the
        group sends (RFC 3550 6.2: receivers report to the group)."""
        with self._lock:
            self._group_rtcp[sock] = group
        self._wake()

    def unwatch_rtcp(self, sock: GroupSocket) -> None:
        """Stop reading `sock`; the loop closes it (leaving the group) before its next select."""
        with self._lock:
            if self._group_rtcp.pop(sock, None) is not None:
                self._closing.append(sock)
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
            if session.live:
                viewers = self._live.setdefault(session.movie, [])
                if session not in viewers:
                    viewers.append(session)  # joins at the source's next frame
                return
            self._release_phase(session)
            session.play_t0 = self._start_time(session, time.monotonic())
            session.play_k0 = session.position
            heapq.heappush(self._heap, (session.play_t0, next(self._counter), session.generation, session, FRAME))
        if not session.lab:
            # An SR right away maps the new timeline (RFC 3550 6.4.1): after a seek or a pause the
            # receiver's old mapping is wrong, and the next scheduled SR may be seconds away.
            self._send_rtcp(session, session.sender_report())
        self._wake()

    def pause(self, session: StreamSession) -> None:
        with self._lock:
            session.generation += 1
            self._release_phase(session)
            if session.live:
                self._drop_viewer(session)

    def _drop_viewer(self, session: StreamSession) -> None:
        viewers = self._live.get(session.movie)
        if viewers and session in viewers:
            viewers.remove(session)

    def live_frame(self, source: object, frame) -> None:
        """A live source's reader thread hands over a frame (LiveReader.LiveFrame): sent at once
        by the loop to every session playing the source.  Never blocks the reader."""
        self._live_queue.append((source, frame))
        self._wake()

    def live_viewers(self, source: object) -> int:
        with self._lock:
            return len(self._live.get(source, ()))

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

    def remove(self, session: StreamSession, bye: str | None = None) -> None:
        """Stop a session's stream; with `bye`, tell the receiver in an RTCP BYE first."""
        if bye and not session.lab and session.id in self._sessions:
            self._send_rtcp(session, session.bye(bye))
        with self._lock:
            session.generation += 1
            session.rtcp_epoch += 1
            self._release_phase(session)
            if session.live:
                self._drop_viewer(session)
            self._sessions.pop(session.id, None)
            if session.rtcp_dest and self._rtcp_routes.get(session.rtcp_dest) is session:
                del self._rtcp_routes[session.rtcp_dest]
                self._ended_routes[session.rtcp_dest] = (session, time.monotonic() + ENDED_ROUTE_TTL)

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
                closing, self._closing = self._closing, []
                groups = dict(self._group_rtcp)
            for sock in closing:
                sock.close()
            timeout = max(0.0, min(timeout, POLL_INTERVAL, next_reap - now))
            ready, _, _ = select.select([self._wake_r, self.rtcp_sock, *groups], [], [], timeout)
            if self._wake_r in ready:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            if self.rtcp_sock in ready:
                self._receive_rtcp()
            for sock, group in groups.items():
                if sock in ready:
                    self._receive_group_rtcp(sock, group)
            if self._live_queue:
                self._send_live()
            self._send_due()
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + 1.0
                self._reap_idle()
        with self._lock:
            closing = self._closing + list(self._group_rtcp)
            self._closing, self._group_rtcp = [], {}
        for sock in closing:
            sock.close()
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
                    heapq.heappush(heap, (now + session.rtcp_interval(self.rng),
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
                session.rtcp.sent(len(report))
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
        if position >= stop and not (self.loop and session.stop_position is None):
            session.ended = True
            if not session.lab:
                self._send_rtcp(session, session.bye("end of stream"))
            log.info("session %s: end of %s after %d frames (%d skipped)", session.id, movie.name,
                     session.frames_sent, session.frames_skipped)
            return False
        if session.waited < CONVERT_WAIT_STEPS and not movie.ready(position % count, session.lab, session.id):
            # The movie's converter has not made this frame yet: this session's timeline slips
            # by a step (the RTP timestamps follow the frames, so receivers just see a pause)
            # while every other session keeps its schedule; after CONVERT_WAIT_STEPS the frame
            # is converted here after all.
            session.waited += 1
            session.frames_waited += 1
            session.play_t0 += CONVERT_WAIT_STEP
            return True
        session.waited = 0
        session.position = position + 1
        late_skip = max(0.2, 2.0 / movie.fps)
        if lateness > late_skip:
            session.frames_skipped += 1
            log.debug("session %s: frame %d skipped, %.0f ms late", session.id, position % count, lateness * 1000)
            return True
        if lateness > session.max_lateness:
            session.max_lateness = lateness
        try:
            train = movie.train(position % count, session.lab, session.id)
        except FrameUnavailable as exc:  # e.g. a lab frame over one datagram, a 12-bit frame
            session.skip(f"frame {position % count} of {movie.name}", exc.reason)
            return True
        self._send_train(session, train, session.rtptime(position))
        return True

    def _send_live(self) -> None:
        """Send the live frames handed over since the last wake-up to every viewer of their
        source.  A viewer that cannot take a frame now (TCP not read, a UDP frame still in
        slices) skips it; the source and the other viewers never wait for it."""
        queue = self._live_queue
        while queue:
            source, frame = queue.popleft()
            with self._lock:
                viewers = list(self._live.get(source, ()))
            for session in viewers:
                with session.lock:
                    if session.out_train is not None:
                        session.frames_skipped += 1
                        continue
                    self._send_train(session, frame.train_for(session.lab), session.live_rtptime(frame.arrival))
                    session.position += 1

    def _send_train(self, session: StreamSession, train: PacketTrain, ts: int) -> None:
        """Send one frame's packets to a session (called with session.lock held)."""
        movie = session.movie
        seq = session.seq
        if session.channel is not None:
            try:
                data = interleave(train, train.stamp(seq, ts, session.ssrc), session.channel)
            except ValueError as exc:  # e.g. a whole-JPEG lab packet too large for a '$' frame
                session.skip(f"frame {session.position} of {movie.name}", str(exc))
                return
            session.seq = (seq + train.count) & 0xFFFF
            if session.send_interleaved is None or not session.send_interleaved(data):
                session.frames_skipped += 1
                return
        else:
            session.seq = (seq + train.count) & 0xFFFF
            session.out_train, session.out_seq, session.out_ts, session.out_next = train, seq, ts, 0
            if not self._send_slice(session):
                session.skip(f"frame {session.position} of {movie.name}",
                             "the datagram was refused as too large (EMSGSIZE)")
                return
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

    def _send_slice(self, session: StreamSession) -> bool:
        """Stamp and send the next UDP_BURST packets of the frame in progress; False when the
        kernel refused a packet as too large for a datagram (the frame is lost)."""
        train, dest = session.out_train, session.udp_dest
        if train is None or dest is None:
            return True
        start = session.out_next
        end = min(start + UDP_BURST, train.count)
        sock = session.rtp_sock or self.rtp_sock
        buf = train.stamp(session.out_seq, session.out_ts, session.ssrc, start, end)
        fitted = True
        if not (self.gso and end - start > 1 and train.uniform
                and self._send_segmented(buf, train.segment, dest, sock)):
            sendto = sock.sendto
            for packet in train.packets(buf, start):
                try:
                    sendto(packet, dest)
                except OSError as exc:
                    if exc.errno == errno.EMSGSIZE:
                        fitted = False
                    self._send_failed(exc, dest)
        if end >= train.count:
            session.out_train = None
        session.out_next = end
        return fitted

    def _send_segmented(self, buf: bytearray, segment: int, dest, sock: socket.socket) -> bool:
        """Send a stamped run of equal-size packets (the last may be shorter) with one sendmsg
        per GSO_MAX_SEGMENTS via UDP GSO (Linux UDP_SEGMENT): the kernel cuts the buffer into
        datagrams of `segment` octets, one system call per slice instead of one per packet,
        which is most of what streaming costs.  False: not applicable here."""
        if not sys.platform.startswith("linux"):  # (and mypy --platform win32 knows sendmsg is absent)
            return False
        step = segment * max(1, min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // segment))
        control = [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(segment))]
        view = memoryview(buf)
        for first in range(0, len(buf), step):
            try:
                sock.sendmsg([view[first:first + step]], control, 0, dest)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EIO) and first == 0:
                    log.info("UDP segmentation offload unavailable (%s): one send per packet", exc)
                    self.gso = False
                    return False
                self._send_failed(exc, dest)
        return True

    def _send_failed(self, exc: OSError, dest) -> None:
        """Count a failed RTP send; say so once per kind of error (the send path must stay quiet)."""
        self.send_errors += 1
        if exc.errno not in self._send_errnos:
            self._send_errnos.add(exc.errno)
            log.warning("RTP send to %s failed: %s (counted; said once per kind of error)", dest, exc)

    def _send_rtcp(self, session: StreamSession, data: bytes) -> None:
        if session.channel is not None:
            if session.send_interleaved is not None:
                session.send_interleaved(InterleavedFrame(session.channel + 1, data).serialize())
        elif session.rtcp_dest is not None and session.udp_dest is not None:
            host, port = session.udp_dest[0], session.rtcp_dest[1]
            try:
                (session.rtcp_sock or self.rtcp_sock).sendto(data, (host, port))
            except OSError as exc:
                log.debug("session %s: RTCP send failed: %s", session.id, exc)

    def _receive_rtcp(self) -> None:
        try:
            data, addr = self.rtcp_sock.recvfrom(65536)
        except OSError:
            return
        key = (unmapped(addr[0]), addr[1])
        with self._lock:
            session = self._rtcp_routes.get(key)
            ended = self._ended_routes.get(key) if session is None else None
        if ended is not None:
            ended[0].receive_rtcp(data)  # logged (e.g. its BYE), but it revives nothing
            return
        if session is None:
            log.debug("RTCP from unknown %s:%d dropped", *key)
            return
        session.touch()  # RFC 2326 12.37: RTCP counts as liveness
        session.receive_rtcp(data)

    def _receive_group_rtcp(self, sock: GroupSocket, group: StreamSession) -> None:
        """A datagram on a group's RTCP port: a member's report (logged per reporter SSRC by the
        group's RtcpSender, and liveness, RFC 2326 12.37, for the member sessions whose RTSP
        client is on the reporting host), or our own report looped back (ignored)."""
        try:
            data, addr = sock.recvfrom(65536)
        except OSError:
            return
        if group.receive_rtcp(data) is not Origin.PEER:
            return
        host = unmapped(addr[0])
        members = [m for m in tuple(group.members or ()) if m.peer == host]  # (a copy: joins go on)
        for member in members:
            member.touch()
        if not members:
            log.debug("session %s: RTCP from %s, which has no member session", group.id, host)

    def _reap_idle(self) -> None:
        limit = self.session_timeout
        now = time.monotonic()
        with self._lock:
            idle = [s for s in self._sessions.values() if not s.lab and s.members is None and now - s.last_activity > limit]
            for key in [k for k, (_, until) in self._ended_routes.items() if until < now]:
                del self._ended_routes[key]
        for session in idle:
            log.info("session %s: no request or RTCP for %.0f s, torn down", session.id, limit)
            if session.expire is not None:
                session.expire(session)
            else:
                self.remove(session)
