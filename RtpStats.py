"""Receiver-side RTP statistics and reordering, pure (no I/O; time is passed in).

* :class:`SequenceTracker` -- RFC 3550 Appendix A.1 source validation (probation, MAX_DROPOUT,
  MAX_MISORDER, resynchronisation after a large jump), the extended highest sequence number
  with a cycle count, A.3 expected / lost / fraction lost per reporting interval, A.8
  interarrival jitter, plus duplicate and out-of-order counts.
* :class:`ReorderBuffer` -- releases packets in extended-sequence order, holding a gap open for
  at most ``window`` seconds (RFC 3550 §2 expects reordering; a bounded wait keeps latency low).
* :class:`RtpReceiver` -- the two together: packets in, in-order packets out, each flagged when
  packets are missing before it (what an RFC 2435 depacketizer needs to drop a broken frame).
* :class:`RateMeter`, :class:`PlaybackStats` -- frame/byte rates and the snapshot the player shows.
"""

from __future__ import annotations

import collections
import enum
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Iterable, TypeVar

from RtcpPacket import ReportBlock, clamp_packets_lost
from RtpPacket import JPEG_CLOCK_RATE, SEQ_MOD, seq_delta, seq_diff, ts_diff

log = logging.getLogger(__name__)

MAX_DROPOUT = 3000           # RFC 3550 A.1 suggested values
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
MAX_PROBATION_HELD = 32      # packets kept while the source is on probation
DUPLICATE_HISTORY = 4096     # extended sequence numbers remembered for duplicate detection

T = TypeVar("T")


class Verdict(enum.Enum):
    """What :meth:`SequenceTracker.update` decided about one packet."""

    PROBATION = "probation"        # source not yet validated (A.1); caller may hold the packet
    VALIDATED = "validated"        # this packet completed probation: held packets are valid too
    IN_ORDER = "in-order"          # newer than every packet so far (possibly after a gap)
    OUT_OF_ORDER = "out-of-order"  # older than the highest so far, first copy
    DUPLICATE = "duplicate"        # already received
    INVALID = "invalid"            # large jump, not (yet) believed (A.1 bad_seq)
    RESTARTED = "restarted"        # two packets confirmed a large jump: sender restarted (A.1)

    @property
    def accepted(self) -> bool:
        """True when the packet counts as received and should go on to the depacketizer."""
        return self in (Verdict.VALIDATED, Verdict.IN_ORDER, Verdict.OUT_OF_ORDER, Verdict.RESTARTED)


@dataclass(frozen=True)
class IntervalReport:
    """RFC 3550 A.3 numbers for one reporting interval."""

    expected: int
    received: int
    lost: int
    fraction_lost: int   # 8-bit fixed point, lost/expected * 256, 0 when nothing was lost


class SequenceTracker:
    """Per-source receive statistics (RFC 3550 A.1, A.3, A.8).

    ``update(seq, rtp_timestamp, arrival)`` takes the 16-bit sequence number, the 32-bit RTP
    timestamp and the arrival time in seconds (any monotonic clock). It returns
    ``(verdict, extended_seq)``; ``extended_seq`` is None for INVALID packets.

    Unlike the A.1 sample code, the packets seen during probation are counted as received once
    the source is validated (the RFC allows buffering them), so the first frame is not lost, and
    duplicates are *not* counted as received, so ``lost`` never goes negative.
    """

    def __init__(self, clock_rate: int = JPEG_CLOCK_RATE, *, min_sequential: int = MIN_SEQUENTIAL,
                 max_dropout: int = MAX_DROPOUT, max_misorder: int = MAX_MISORDER) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        self.min_sequential = min_sequential
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        self.max_seq = 0            # highest 16-bit sequence number seen
        self.cycles = 0             # count of wraps, shifted (multiple of 65536)
        self.base_seq = 0           # extended sequence number of the first valid packet
        self.bad_seq = SEQ_MOD + 1   # last 'bad' seq + 1 (A.1); impossible value to start
        self.probation = min_sequential
        self.validated = False
        self.received = 0           # unique valid packets
        self.received_octets = 0    # their payload octets (``size`` given to update), cf. SR octet count
        self.duplicates = 0
        self.out_of_order = 0
        self.invalid = 0
        self.restarts = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0           # A.8, in timestamp units
        self._transit: float | None = None
        self._min_transit: float | None = None
        self.delay_above_min = 0.0  # seconds: last transit minus the smallest transit seen
        self._probation_held: list[tuple[int, int, float, int]] = []   # (seq, timestamp, arrival, size)
        self._run_first: int | None = None   # first sequence number of the current probation run
        self.probation_exts: dict[int, int] = {}   # at validation: sequence -> extended, kept packets
        self._last_ts = 0
        self._last_arrival_units = 0.0
        self._jitter_hold = False    # a PLAY is outstanding: its new timeline is not known yet
        self._timeline_ext: int | None = None   # first packet of the current timeline (extended)
        self._seen: set[int] = set()
        self._seen_order: collections.deque[int] = collections.deque()

    # -- A.1 -----------------------------------------------------------------------------
    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (A.3: cycles + max_seq)."""
        return self.cycles + self.max_seq

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = SEQ_MOD + 1
        self.received = 0
        self.received_octets = 0
        self.expected_prior = 0
        self.received_prior = 0
        self._seen.clear()
        self._seen_order.clear()
        self._transit = None

    def _remember(self, ext: int) -> None:
        self._seen.add(ext)
        self._seen_order.append(ext)
        if len(self._seen_order) > DUPLICATE_HISTORY:
            self._seen.discard(self._seen_order.popleft())

    def update(self, seq: int, rtp_timestamp: int, arrival: float,
               size: int = 0) -> tuple[Verdict, int | None]:
        """Account for one arriving packet (RFC 3550 A.1 update_seq + A.8 jitter); ``size`` is its
        payload length, summed over unique packets in ``received_octets``."""
        if not 0 <= seq < SEQ_MOD:
            raise ValueError(f"sequence number {seq} out of 16-bit range")
        if not self.validated:
            return self._update_probation(seq, rtp_timestamp, arrival, size)
        udelta = seq_delta(seq, self.max_seq)
        if udelta == 0:
            self.duplicates += 1
            return Verdict.DUPLICATE, self.extended_max
        if udelta < self.max_dropout:
            if seq < self.max_seq:       # wrapped: one more cycle
                self.cycles += SEQ_MOD
            self.max_seq = seq
            ext = self.extended_max
            verdict = Verdict.IN_ORDER
        elif udelta <= SEQ_MOD - self.max_misorder:
            # A very large jump: believe it only when the next packet follows it (A.1).
            if seq == self.bad_seq:
                log.info("RTP sequence jumped to %d: sender restarted, resynchronising", seq)
                self._init_seq(seq)
                self.restarts += 1
                self._count(seq, rtp_timestamp, arrival, size)
                return Verdict.RESTARTED, seq
            self.bad_seq = (seq + 1) % SEQ_MOD
            self.invalid += 1
            return Verdict.INVALID, None
        else:
            # Behind the highest: a late (reordered) packet or a duplicate.
            ext = self.extended_max - (SEQ_MOD - udelta)
            if ext in self._seen or ext < 0:
                self.duplicates += 1
                return Verdict.DUPLICATE, ext
            if ext < self.base_seq:
                self.base_seq = ext   # older than the first packet: widen 'expected' to include it
            self.out_of_order += 1
            verdict = Verdict.OUT_OF_ORDER
        if ext in self._seen:
            self.duplicates += 1
            return Verdict.DUPLICATE, ext
        self._count(ext, rtp_timestamp, arrival, size)
        return verdict, ext

    def _update_probation(self, seq: int, rtp_timestamp: int, arrival: float,
                          size: int) -> tuple[Verdict, int | None]:
        """A.1 probation: ``min_sequential`` packets in a row validate the source.

        Every packet seen meanwhile is kept (at most MAX_PROBATION_HELD). At validation the ones
        within MAX_MISORDER before / MAX_DROPOUT after the validating run are replayed in arrival
        order, as if the source had been valid from the first: a packet reordered or duplicated
        among the very first ones is then counted like anywhere else in the stream.
        """
        self._probation_held.append((seq, rtp_timestamp, arrival, size))
        del self._probation_held[:-MAX_PROBATION_HELD]
        if self._run_first is not None and seq == (self.max_seq + 1) % SEQ_MOD:
            self.probation -= 1
        else:
            # First packet, or not sequential: the run starts over with this one.
            self.probation = self.min_sequential - 1
            self._run_first = seq
        self.max_seq = seq
        if self.probation > 0:
            return Verdict.PROBATION, seq
        # Validated. Extended numbers relative to the run's first packet (one cycle up if a
        # kept packet precedes sequence 0).
        first = self._run_first
        kept = []
        for k_seq, ts, at, sz in self._probation_held:
            d = seq_diff(k_seq, first)
            if -self.max_misorder <= d < self.max_dropout:
                kept.append((d, k_seq, ts, at, sz))
        origin = first if first + min(k[0] for k in kept) >= 0 else first + SEQ_MOD
        self._init_seq(first)
        self._probation_held = []
        self._run_first = None
        self.validated = True
        self.probation_exts = {}
        highest = lowest = origin
        for i, (d, k_seq, ts, at, sz) in enumerate(kept):
            ext = origin + d
            self.probation_exts[k_seq] = ext
            if ext in self._seen:
                self.duplicates += 1
                continue
            if i == 0:
                highest = lowest = ext
            else:
                if ext < highest:
                    self.out_of_order += 1
                highest, lowest = max(highest, ext), min(lowest, ext)
            self._count(ext, ts, at, sz)
        self.base_seq = lowest
        self.max_seq = highest % SEQ_MOD
        self.cycles = highest - self.max_seq
        return Verdict.VALIDATED, self.probation_exts[seq]

    def _count(self, ext: int, rtp_timestamp: int, arrival: float, size: int = 0) -> None:
        self.received += 1
        self.received_octets += size
        self._remember(ext)
        if self._jitter_hold or (self._timeline_ext is not None and ext < self._timeline_ext):
            return                   # not (yet) known to belong to the current timeline
        self._jitter(rtp_timestamp, arrival)

    # -- timelines (PLAY, seek) --------------------------------------------------------------
    def hold_jitter(self, hold: bool = True) -> None:
        """A PLAY is on its way (RTSP): until its reply says where the new timeline starts, packets
        are counted but left out of the jitter and delay estimates (``hold=False``: the PLAY failed,
        the old timeline goes on)."""
        self._jitter_hold = hold

    def new_timeline(self, first_seq: int | None = None) -> None:
        """A PLAY reply: the stream continues on a new timeline (a seek jumps the RTP timestamps, a
        resume after PAUSE the arrival times), so the A.8 transit baseline and the smallest transit
        start over from the first packet of the new timeline; the smoothed jitter value carries on.
        ``first_seq`` (RTP-Info seq, RFC 2326 §12.33) is that packet: older ones (still in flight
        from before) do not touch the estimate. The jitter would otherwise take the timestamp jump
        as one huge transit difference (|D| of seconds), and report it for ~16 x 4 packets."""
        self._jitter_hold = False
        self._transit = None
        self._min_transit = None
        self.delay_above_min = 0.0
        self._timeline_ext = None
        if first_seq is not None and self.validated:
            # the extended number of first_seq nearest to the highest so far
            ext = self.cycles + first_seq
            top = self.extended_max
            if ext - top > SEQ_MOD // 2:
                ext -= SEQ_MOD
            elif top - ext > SEQ_MOD // 2:
                ext += SEQ_MOD
            self._timeline_ext = ext

    # -- A.8 -----------------------------------------------------------------------------
    def _jitter(self, rtp_timestamp: int, arrival: float) -> None:
        arrival_units = arrival * self.clock_rate
        if self._transit is None:
            transit = arrival_units - rtp_timestamp
        else:
            # Keep transit continuous across the 32-bit timestamp wrap.
            prev_ts = self._last_ts
            transit = self._transit + (arrival_units - self._last_arrival_units) - ts_diff(rtp_timestamp, prev_ts)
            d = transit - self._transit
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._transit = transit
        self._last_ts = rtp_timestamp
        self._last_arrival_units = arrival_units
        if self._min_transit is None or transit < self._min_transit:
            self._min_transit = transit
        self.delay_above_min = (transit - self._min_transit) / self.clock_rate

    @property
    def jitter_seconds(self) -> float:
        """Interarrival jitter (A.8) in seconds."""
        return self.jitter / self.clock_rate

    # -- A.3 -----------------------------------------------------------------------------
    @property
    def expected(self) -> int:
        """Packets expected: extended highest - base + 1 (A.3); 0 before validation."""
        if not self.validated:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), never negative since duplicates are not counted."""
        return max(0, self.expected - self.received)

    @property
    def loss_fraction(self) -> float:
        """Cumulative lost / expected, 0.0 .. 1.0."""
        expected = self.expected
        return self.lost / expected if expected > 0 else 0.0

    def interval_report(self) -> IntervalReport:
        """Expected/lost/fraction lost since the previous call (A.3), and start a new interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        return IntervalReport(expected_interval, received_interval, lost_interval, min(fraction, 255))

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> tuple[ReportBlock, IntervalReport]:
        """The reception report block about ``ssrc`` (RFC 3550 §6.4.1, A.3, A.8); starts a new interval.

        Fraction lost is for the interval since the previous call, cumulative lost is clamped
        to the signed 24-bit field, the extended highest sequence number is taken modulo 2^32
        and the jitter is the A.8 estimate truncated to whole timestamp units.
        """
        interval = self.interval_report()
        block = ReportBlock(ssrc, interval.fraction_lost, clamp_packets_lost(self.expected - self.received),
                            self.extended_max & 0xFFFFFFFF, min(int(self.jitter), 0xFFFFFFFF),
                            lsr & 0xFFFFFFFF, dlsr & 0xFFFFFFFF)
        return block, interval


@dataclass
class Released(Generic[T]):
    """A packet leaving the reorder buffer in sequence order."""

    ext_seq: int
    item: T
    missing_before: bool   # packets before this one were given up as lost


class ReorderBuffer(Generic[T]):
    """Put packets back in extended-sequence order, waiting at most ``window`` s for a gap.

    ``push(ext_seq, item, now)`` and ``poll(now)`` return the packets that can leave now.
    A packet older than the next expected one (it arrived after its gap was given up) is
    counted in ``late`` and dropped.
    """

    def __init__(self, window: float = 0.05, capacity: int = 4096) -> None:
        self.window = window
        self.capacity = capacity
        self.next_seq: int | None = None
        self.late = 0
        self.gaps = 0                  # number of times a gap was skipped
        self.skipped = 0               # packets given up as lost
        self._held: dict[int, tuple[T, float]] = {}
        self._missing = False

    def __len__(self) -> int:
        return len(self._held)

    def push(self, ext_seq: int, item: T, now: float) -> list[Released[T]]:
        """Add one packet; return what is now in order (plus anything whose wait expired)."""
        if self.next_seq is None:
            self.next_seq = ext_seq
        if ext_seq < self.next_seq or ext_seq in self._held:
            self.late += 1
            return []
        self._held[ext_seq] = (item, now)
        out = self._drain()
        out.extend(self.poll(now))
        return out

    def poll(self, now: float) -> list[Released[T]]:
        """Give up on gaps that have been open for ``window`` seconds or overflow capacity."""
        out: list[Released[T]] = []
        while self._held:
            oldest_arrival = min(t for _, t in self._held.values())
            if now - oldest_arrival < self.window and len(self._held) <= self.capacity:
                break
            self._skip_to(min(self._held))
            out.extend(self._drain())
        return out

    def flush(self) -> list[Released[T]]:
        """Release everything held, in order (end of stream, seek, restart)."""
        out: list[Released[T]] = []
        while self._held:
            self._skip_to(min(self._held))
            out.extend(self._drain())
        return out

    def reset(self) -> None:
        """Forget the expected sequence number (after a sender restart); held packets are dropped."""
        self._held.clear()
        self.next_seq = None
        self._missing = False

    def next_deadline(self) -> float | None:
        """Time at which :meth:`poll` would release something, None when nothing is held."""
        if not self._held:
            return None
        return min(t for _, t in self._held.values()) + self.window

    def _skip_to(self, ext_seq: int) -> None:
        assert self.next_seq is not None
        if ext_seq > self.next_seq:
            self.gaps += 1
            self.skipped += ext_seq - self.next_seq
            self._missing = True
        self.next_seq = ext_seq

    def _drain(self) -> list[Released[T]]:
        out: list[Released[T]] = []
        while self.next_seq in self._held:
            item, _ = self._held.pop(self.next_seq)
            out.append(Released(self.next_seq, item, self._missing))
            self._missing = False
            self.next_seq += 1
        return out


class RtpReceiver(Generic[T]):
    """One RTP source: statistics (:class:`SequenceTracker`) then reordering (:class:`ReorderBuffer`).

    ``push(seq, rtp_timestamp, arrival, item)`` returns the packets that leave in order. Packets
    held during probation are released once the source is validated; duplicates and
    not-yet-believed jumps are dropped.
    """

    def __init__(self, clock_rate: int = JPEG_CLOCK_RATE, reorder_window: float = 0.05) -> None:
        self.tracker = SequenceTracker(clock_rate)
        self.reorder: ReorderBuffer[T] = ReorderBuffer(reorder_window)
        self._probation: list[tuple[int, T]] = []   # (sequence number, item) while on probation

    def push(self, seq: int, rtp_timestamp: int, arrival: float, item: T,
             size: int = 0) -> list[Released[T]]:
        verdict, ext = self.tracker.update(seq, rtp_timestamp, arrival, size)
        if verdict is Verdict.PROBATION:
            self._probation.append((seq, item))
            del self._probation[:-MAX_PROBATION_HELD]
            return []
        if verdict is Verdict.VALIDATED:
            # The tracker kept the probation packets near the validating run: release those
            # (each sequence once, in order), drop the rest.
            held, self._probation = self._probation + [(seq, item)], []
            chosen: dict[int, T] = {}
            for s, it in held:
                e = self.tracker.probation_exts.get(s)
                if e is not None and e not in chosen:
                    chosen[e] = it
            out: list[Released[T]] = []
            for e in sorted(chosen):
                out.extend(self.reorder.push(e, chosen[e], arrival))
            return out
        if verdict is Verdict.RESTARTED:
            assert ext is not None
            out = self.reorder.flush()
            self.reorder.reset()
            out.extend(self.reorder.push(ext, item, arrival))
            return out
        if verdict.accepted:
            assert ext is not None
            return self.reorder.push(ext, item, arrival)
        return []

    def poll(self, now: float) -> list[Released[T]]:
        return self.reorder.poll(now)

    def flush(self) -> list[Released[T]]:
        return self.reorder.flush()


class RateMeter:
    """Sum of amounts added over the last ``window`` seconds (for instantaneous rates)."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._events: collections.deque[tuple[float, float]] = collections.deque()
        self._sum = 0.0

    def add(self, now: float, amount: float = 1.0) -> None:
        self._events.append((now, amount))
        self._sum += amount
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._sum -= self._events.popleft()[1]

    def rate(self, now: float) -> float:
        """Amount per second over the last window."""
        self._expire(now)
        return max(0.0, self._sum) / self.window


@dataclass
class StatsSnapshot:
    """Everything the statistics panel and ``--stats-json`` show, at one instant."""

    time: float = 0.0
    elapsed: float = 0.0            # seconds of playing (wall clock, pauses excluded)
    frame_index: int = 0            # frame number in the stream (from the RTP timestamp) or count
    frame_total: int | None = None
    position: float = 0.0           # media position in seconds
    duration: float | None = None
    frames_completed: int = 0
    frames_dropped: int = 0
    fps_inst: float = 0.0
    fps_avg: float = 0.0
    bytes_received: int = 0         # RTP payload + header bytes
    kbps_inst: float = 0.0
    kbps_avg: float = 0.0
    packets_received: int = 0
    packets_expected: int = 0
    packets_lost: int = 0
    loss_percent: float = 0.0
    duplicates: int = 0
    out_of_order: int = 0
    late_dropped: int = 0
    jitter_ms: float = 0.0
    delay_ms: float | None = None   # one-way delay: arrival minus the sender's clock at the frame (via SR);
                                    # None until an SR maps the current PLAY's timeline
    queue_delay_ms: float = 0.0     # transit time above the smallest seen since the PLAY (queueing)
    # RTCP (RFC 3550 §6.4): what the sender's reports said and what we sent
    rtt_ms: float | None = None     # round trip from the XR DLRR answer to our RRTR (RFC 3611 §4.5)
    sender_packets: int | None = None   # the last SR's sender packet count
    sender_octets: int | None = None    # ... and octet count (payload octets only, §6.4.1)
    sender_clock: float | None = None   # the sender's wall clock (Unix s) of the current frame, via SR
    payload_octets: int = 0         # our count comparable with sender_octets (RTP payload only)
    sr_received: int = 0
    rr_sent: int = 0
    rtcp_errors: int = 0            # RTCP datagrams dropped as malformed
    impairment: dict[str, Any] | None = None   # --impair spec and its ground-truth counters
    history: list[tuple[float, ...]] = field(default_factory=list)  # (t, kbps, fps, loss%, jitter ms, rtt ms)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("history")
        return d


class PlaybackStats:
    """Frame and byte counters plus a 30 s history, combined with a :class:`SequenceTracker`."""

    def __init__(self, history_span: float = 30.0, sample_every: float = 0.5) -> None:
        self.history_span = history_span
        self.sample_every = sample_every
        self.bytes = 0
        self.frames_completed = 0
        self.frames_dropped = 0
        self.playing_time = 0.0
        self._playing_since: float | None = None
        self._frame_rate = RateMeter(1.0)
        self._byte_rate = RateMeter(1.0)
        self._history: collections.deque[tuple[float, ...]] = collections.deque()
        self._last_sample: float | None = None
        self._last_lost = 0
        self._last_expected = 0

    def start(self, now: float) -> None:
        if self._playing_since is None:
            self._playing_since = now

    def stop(self, now: float) -> None:
        if self._playing_since is not None:
            self.playing_time += now - self._playing_since
            self._playing_since = None

    def elapsed(self, now: float) -> float:
        extra = now - self._playing_since if self._playing_since is not None else 0.0
        return self.playing_time + extra

    def on_packet(self, now: float, size: int) -> None:
        self.bytes += size
        self._byte_rate.add(now, size)

    def on_frame(self, now: float, complete: bool = True) -> None:
        if complete:
            self.frames_completed += 1
            self._frame_rate.add(now)
        else:
            self.frames_dropped += 1

    def snapshot(self, now: float, tracker: SequenceTracker | None, late: int = 0,
                 frame_dropped_total: int | None = None, rtt_ms: float | None = None) -> StatsSnapshot:
        elapsed = self.elapsed(now)
        s = StatsSnapshot(time=now, elapsed=elapsed)
        s.frames_completed = self.frames_completed
        s.frames_dropped = self.frames_dropped if frame_dropped_total is None else frame_dropped_total
        s.fps_inst = self._frame_rate.rate(now)
        s.fps_avg = self.frames_completed / elapsed if elapsed > 0 else 0.0
        s.bytes_received = self.bytes
        s.kbps_inst = self._byte_rate.rate(now) * 8 / 1000
        s.kbps_avg = self.bytes * 8 / 1000 / elapsed if elapsed > 0 else 0.0
        s.late_dropped = late
        s.rtt_ms = rtt_ms
        if tracker is not None:
            s.packets_received = tracker.received
            s.packets_expected = tracker.expected
            s.packets_lost = tracker.lost
            s.loss_percent = 100.0 * tracker.loss_fraction
            s.duplicates = tracker.duplicates
            s.out_of_order = tracker.out_of_order
            s.jitter_ms = tracker.jitter_seconds * 1000
            s.queue_delay_ms = tracker.delay_above_min * 1000
        if self._last_sample is None or now - self._last_sample >= self.sample_every:
            self._last_sample = now
            d_exp = s.packets_expected - self._last_expected
            d_lost = s.packets_lost - self._last_lost
            self._last_expected, self._last_lost = s.packets_expected, s.packets_lost
            loss_pct = 100.0 * d_lost / d_exp if d_exp > 0 and d_lost > 0 else 0.0
            self._history.append((now, s.kbps_inst, s.fps_inst, loss_pct, s.jitter_ms,
                                  rtt_ms if rtt_ms is not None else float("nan")))
            while self._history and self._history[0][0] < now - self.history_span:
                self._history.popleft()
        s.history = list(self._history)
        return s


def extend_all(seqs: Iterable[int]) -> list[int]:
    """Extended sequence numbers of an in-order-ish run (test/diagnostic helper, A.1 rules)."""
    t = SequenceTracker(min_sequential=1)
    out = []
    for s in seqs:
        _, ext = t.update(s, 0, 0.0)
        out.append(ext if ext is not None else -1)
    return out


class Unusable(enum.Enum):
    """Why an RTP packet that arrived was not used (the reasons :class:`PacketDiagnosis` names)."""

    SHORT = "short"                  # under the 12-byte RTP header
    VERSION = "version"              # RTP version != 2 (RFC 3550 §5.1)
    MALFORMED = "malformed"          # CSRC/extension/padding run past the packet
    PAYLOAD_TYPE = "payload type"    # not the JPEG payload type (26, or the SDP's)
    SSRC = "ssrc"                    # not the stream's SSRC
    SEQUENCE = "sequence"            # held back: the sequence numbers do not advance
    NO_JPEG = "no jpeg"              # payload neither a whole JPEG nor RFC 2435


DIAGNOSE_AFTER = 2.0     # seconds of packets without a frame before the player says why
DIAGNOSE_MIN = 20        # packets before "only a few made frames" is said


class PacketDiagnosis:
    """Why packets arrive but make no frames (or few): counts per :class:`Unusable` reason, the
    first detail of each, the source, and what the headers did (sequence, timestamp, marker,
    SSRC). Pure: the receive path reports arrivals, headers and drops; :meth:`line` says it in
    one line, naming the count, the source and the reason that dropped the most packets."""

    def __init__(self) -> None:
        self.arrived = 0
        self.source: str | None = None
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.counts: dict[Unusable, int] = {}
        self.details: dict[Unusable, str] = {}
        self.headers = 0              # packets whose RTP header parsed with the right version and PT
        self.markers = 0
        self.whole_jpegs = 0          # payloads that are whole JPEGs (the lab form: no marker needed)
        self.seq_same = 0             # sequence number equal to the previous packet's
        self.seq_other = 0            # neither the previous + 1 nor the same
        self.ts_changes = 0
        self.ssrcs: set[int] = set()
        self._last: tuple[int, int] | None = None    # (seq, timestamp) of the previous header
        self._seq_examples: list[int] = []

    def arrival(self, source: Any, now: float) -> None:
        """One datagram arrived (before any check); ``source`` is its (host, port) or a text. Cheap:
        it runs for every packet, the source is only kept (and formatted) for the first."""
        self.arrived += 1
        self.last_arrival = now
        if self.first_arrival is None:
            self.first_arrival = now
            if isinstance(source, tuple):
                host = f"[{source[0]}]" if ":" in str(source[0]) else source[0]
                source = f"{host}:{source[1]}"
            self.source = source

    def header(self, seq: int, timestamp: int, marker: bool, ssrc: int, whole_jpeg: bool) -> None:
        """An RTP header with version 2 and the right payload type."""
        self.headers += 1
        self.markers += bool(marker)
        self.whole_jpegs += bool(whole_jpeg)
        if len(self.ssrcs) < 1000:
            self.ssrcs.add(ssrc)
        if self._last is not None:
            last_seq, last_ts = self._last
            if seq == last_seq:
                self.seq_same += 1
            elif seq != (last_seq + 1) % SEQ_MOD:
                self.seq_other += 1
            self.ts_changes += timestamp != last_ts
        if len(self._seq_examples) < 4:
            self._seq_examples.append(seq)
        self._last = (seq, timestamp)

    def drop(self, reason: Unusable, detail: str) -> None:
        """A packet was not used, for ``reason``; the first ``detail`` of each reason is kept."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.details.setdefault(reason, detail)

    @property
    def dropped(self) -> int:
        return sum(self.counts.values())

    def reason(self, frames: int, incomplete: str | None = None) -> str | None:
        """The main reason packets are not making frames, or None when nothing is wrong with them."""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
        if ranked and self.dropped * 2 >= self.arrived:
            kind, n = ranked[0]
            if kind is Unusable.SSRC and len(self.ssrcs) * 2 >= max(2, self.headers):
                text = (f"the SSRC changes from packet to packet ({len(self.ssrcs)} different SSRCs; "
                        f"RFC 3550 gives a source one SSRC)")
            elif kind is Unusable.SEQUENCE:
                text = self._sequence_text()
            else:
                text = self.details[kind]
            return f"{text}, in {'all' if n == self.arrived else n} of them"
        if frames > 0 or self.headers == 0:
            return None
        if self.seq_same * 2 >= self.headers or self.seq_other * 2 >= self.headers:
            return self._sequence_text()
        if self.markers == 0 and self.whole_jpegs == 0:
            if self.ts_changes == 0 and self.headers > 1:
                return ("the marker bit is never set and the timestamp never changes: the player "
                        "cannot tell where a frame ends (RFC 2435 marks each frame's last packet)")
            return "the marker bit is never set (RFC 2435 marks each frame's last packet)"
        if self.ts_changes == 0 and self.headers > 1 and self.whole_jpegs == 0:
            return "the timestamp never changes (each frame needs its own RTP timestamp)"
        return f"no frame completed ({incomplete or 'fragments missing'})"

    def _sequence_text(self) -> str:
        seqs = ", ".join(str(s) for s in self._seq_examples)
        if self.seq_same >= self.seq_other:
            return f"the sequence number does not advance (it stays {self._seq_examples[0]})" \
                if self._seq_examples else "the sequence number does not advance"
        return f"the sequence numbers do not go up by one per packet ({seqs}, ...)"

    def line(self, frames: int, now: float, incomplete: str | None = None,
             settled: bool = False) -> str | None:
        """One line for the user, or None: when packets have arrived for DIAGNOSE_AFTER seconds
        (or the stream is over: ``settled``) and none made a frame, or when at least half of
        DIAGNOSE_MIN or more packets were dropped."""
        if self.arrived == 0 or self.first_arrival is None:
            return None
        if frames == 0:
            if now - self.first_arrival < DIAGNOSE_AFTER and not settled:
                return None
        elif self.arrived < DIAGNOSE_MIN or self.dropped * 2 < self.arrived:
            return None
        why = self.reason(frames, incomplete)
        if why is None:
            return None
        src = f" from {self.source}" if self.source else ""
        made = "none made a frame" if frames == 0 else f"only {frames} frames came of them"
        return f"{self.arrived} RTP packets arrived{src} but {made}: {why}"

    def as_dict(self) -> dict[str, Any]:
        return {"arrived": self.arrived, "source": self.source,
                "dropped": {k.value: v for k, v in self.counts.items()}}
