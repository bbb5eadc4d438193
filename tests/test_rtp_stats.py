"""RtpStats: RFC 3550 A.1 validation, A.3 loss, A.8 jitter, duplicates, reordering -- exact counts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from RtpStats import (IntervalReport, PlaybackStats, RateMeter, ReorderBuffer, RtpReceiver,
                      SequenceTracker, Verdict, extend_all)

MOD = 1 << 16


def feed(tracker: SequenceTracker, seqs, ts_step: int = 0, dt: float = 0.0):
    out = []
    for i, s in enumerate(seqs):
        out.append(tracker.update(s % MOD, (i * ts_step) % (1 << 32), i * dt))
    return out


# (name, sequence numbers in arrival order, expected: received, expected, lost, dup, ooo, ext max)
CASES = [
    ("clean", list(range(100, 200)), 100, 100, 0, 0, 0, 199),
    ("three lost", [s for s in range(0, 50) if s not in (5, 17, 18)], 47, 50, 3, 0, 0, 49),
    ("two duplicates", list(range(10)) + [9, 4] + list(range(10, 20)), 20, 20, 0, 2, 0, 19),
    ("swapped pairs", [0, 1, 3, 2, 4, 6, 5, 7], 8, 8, 0, 0, 2, 7),
    ("late duplicate of reordered", [0, 1, 3, 2, 2, 4], 5, 5, 0, 1, 1, 4),
    ("wrap at 65530", list(range(65530, 65536)) + list(range(0, 10)), 16, 16, 0, 0, 0, 65536 + 9),
    ("wrap with loss", [s % MOD for s in range(65530, 65546) if s not in (65535, 65537)], 14, 16, 2, 0, 0,
     65536 + 9),
    ("reorder across wrap", [65533, 65534, 0, 65535, 1, 2], 6, 6, 0, 0, 1, 65536 + 2),
    ("dup during probation", [7, 7, 8, 9], 3, 3, 0, 1, 0, 9),
    # packets reordered/duplicated among the first ones count as anywhere else (kept in probation)
    ("first packet late", [1, 0, 2, 3, 4], 5, 5, 0, 0, 1, 4),
    ("dup and swap at start", [1, 1, 0, 2, 3], 4, 4, 0, 1, 1, 3),
    ("late first packets before wrap", [0, 65535, 1, 2], 4, 4, 0, 0, 1, 65536 + 2),
    ("loss at start not known", [3, 4, 5, 1, 6], 5, 6, 1, 0, 1, 6),
    ("stray packet far away dropped", [10, 30000, 11, 12], 3, 3, 0, 0, 0, 12),
]


@pytest.mark.parametrize("name,seqs,received,expected,lost,dups,ooo,ext_max", CASES, ids=[c[0] for c in CASES])
def test_counts_table(name, seqs, received, expected, lost, dups, ooo, ext_max):
    t = SequenceTracker()
    feed(t, seqs)
    assert (t.received, t.expected, t.lost, t.duplicates, t.out_of_order, t.extended_max) == \
        (received, expected, lost, dups, ooo, ext_max)


def test_probation_holds_first_packet_and_counts_it():
    t = SequenceTracker()
    assert t.update(1000, 0, 0.0) == (Verdict.PROBATION, 1000)
    assert t.expected == 0 and t.received == 0
    assert t.update(1001, 0, 0.0) == (Verdict.VALIDATED, 1001)
    assert (t.received, t.expected, t.base_seq) == (2, 2, 1000)


def test_probation_restarts_on_non_sequential():
    t = SequenceTracker()
    assert t.update(10, 0, 0.0)[0] is Verdict.PROBATION
    assert t.update(500, 0, 0.0)[0] is Verdict.PROBATION      # not sequential: start over
    assert t.update(501, 0, 0.0) == (Verdict.VALIDATED, 501)
    assert (t.base_seq, t.received) == (500, 2)


def test_large_jump_invalid_then_restart():
    t = SequenceTracker()
    feed(t, range(0, 10))
    assert t.update(30000, 0, 1.0) == (Verdict.INVALID, None)
    assert t.invalid == 1 and t.received == 10
    assert t.update(30001, 0, 1.0) == (Verdict.RESTARTED, 30001)   # A.1: bad_seq matched -> resync
    assert (t.restarts, t.base_seq, t.received, t.expected) == (1, 30001, 1, 1)
    assert t.update(30002, 0, 1.0) == (Verdict.IN_ORDER, 30002)


def test_jump_within_dropout_is_loss_not_restart():
    t = SequenceTracker()
    feed(t, [0, 1, 2])
    assert t.update(2002, 0, 0.0) == (Verdict.IN_ORDER, 2002)
    assert t.lost == 1999


def test_interval_report_fraction():
    t = SequenceTracker()
    feed(t, [s for s in range(100) if s % 10 != 5])      # 10 lost of 100 (90..99 includes 95)
    r = t.interval_report()
    assert r == IntervalReport(expected=100, received=90, lost=10, fraction_lost=(10 << 8) // 100)
    feed(t, range(100, 150))
    assert t.interval_report() == IntervalReport(50, 50, 0, 0)


def test_extend_all_wraps_twice():
    seqs = [s % MOD for s in range(65534, 65534 + MOD + 4, 7)]
    exts = extend_all(seqs)
    assert exts == list(range(65534, 65534 + MOD + 4, 7))


def rfc_jitter(arrivals, timestamps, clock):
    """RFC 3550 §6.4.1 from the definition: D(i-1,i) = (Rj - Ri) - (Sj - Si), J += (|D| - J)/16."""
    j = 0.0
    for i in range(1, len(arrivals)):
        d = (arrivals[i] - arrivals[i - 1]) * clock - (timestamps[i] - timestamps[i - 1])
        j += (abs(d) - j) / 16
    return j


def test_jitter_matches_definition_across_timestamp_wrap():
    rng = random.Random(7)
    clock = 90000
    ts0 = (1 << 32) - 3600 * 20          # wraps after 20 frames
    timestamps = [ts0 + 3600 * (i // 3) for i in range(300)]     # 3 packets per frame, 25 fps
    arrivals = [0.04 * (i // 3) + 0.0005 * (i % 3) + rng.uniform(0, 0.004) for i in range(300)]
    t = SequenceTracker(clock)
    for i, (ts, at) in enumerate(zip(timestamps, arrivals)):
        t.update((65000 + i) % MOD, ts % (1 << 32), at)
    expected = rfc_jitter(arrivals, timestamps, clock)
    assert t.jitter == pytest.approx(expected, rel=1e-9)
    assert t.jitter_seconds == pytest.approx(expected / clock, rel=1e-9)
    assert t.jitter > 0


def test_jitter_zero_for_perfect_pacing():
    t = SequenceTracker(90000)
    for i in range(50):
        t.update(i, 3600 * i, 0.04 * i)
    assert t.jitter == pytest.approx(0.0, abs=1e-6)
    assert t.delay_above_min == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MOD - 1), st.integers(20, 400), st.randoms(use_true_random=False))
def test_random_channel_counts_match_independent_model(start, n, rnd):
    """Loss/dup/reorder on a channel; counts equal a model computed from the unwrapped numbers."""
    exts = list(range(start, start + n))
    # The first three arrive clean: A.1 probation restarts on anything else (tested above).
    sent = [e for e in exts[3:] if rnd.random() > 0.1]           # 10 % loss
    arrivals = exts[:3]
    for e in sent:
        arrivals.append(e)
        if rnd.random() < 0.05:
            arrivals.append(e)                                    # duplicate
    for i in range(3, len(arrivals) - 1):                         # local swaps (reordering < MAX_MISORDER)
        if rnd.random() < 0.1:
            arrivals[i], arrivals[i + 1] = arrivals[i + 1], arrivals[i]
    seen: set[int] = set()
    dup = ooo = 0
    highest = -1
    for e in arrivals:
        if e in seen:
            dup += 1
            continue
        if e < highest:
            ooo += 1
        seen.add(e)
        highest = max(highest, e)
    lo, hi = min(seen), max(seen)
    t = SequenceTracker()
    for e in arrivals:
        t.update(e % MOD, 0, 0.0)
    assert t.received == len(seen)
    assert t.duplicates == dup
    assert t.out_of_order == ooo
    assert t.extended_max - start == hi - start        # cycles counted
    assert t.expected == hi - lo + 1
    assert t.lost == (hi - lo + 1) - len(seen)


# -- reorder buffer ------------------------------------------------------------------------
def test_reorder_buffer_puts_swaps_back_in_order():
    rb: ReorderBuffer[str] = ReorderBuffer(window=0.05)
    out = []
    for i, e in enumerate([10, 11, 13, 12, 14, 16, 15]):
        out += rb.push(e, f"p{e}", now=0.001 * i)
    assert [r.ext_seq for r in out] == [10, 11, 12, 13, 14, 15, 16]
    assert not any(r.missing_before for r in out)
    assert rb.late == 0 and len(rb) == 0


def test_reorder_buffer_gives_up_on_gap_after_window():
    rb: ReorderBuffer[int] = ReorderBuffer(window=0.05)
    assert [r.ext_seq for r in rb.push(0, 0, 0.0)] == [0]
    assert rb.push(2, 2, 0.010) == []          # 1 missing: hold
    assert rb.push(3, 3, 0.020) == []
    assert rb.next_deadline() == pytest.approx(0.060)
    assert rb.poll(0.059) == []
    out = rb.poll(0.061)
    assert [(r.ext_seq, r.missing_before) for r in out] == [(2, True), (3, False)]
    assert (rb.gaps, rb.skipped) == (1, 1)
    assert rb.push(1, 1, 0.070) == []          # arrived after it was given up
    assert rb.late == 1


def test_reorder_buffer_late_fill_within_window():
    rb: ReorderBuffer[int] = ReorderBuffer(window=0.05)
    rb.push(0, 0, 0.0)
    rb.push(2, 2, 0.01)
    out = rb.push(1, 1, 0.03)
    assert [(r.ext_seq, r.missing_before) for r in out] == [(1, False), (2, False)]


def test_reorder_buffer_push_expires_old_gap():
    rb: ReorderBuffer[int] = ReorderBuffer(window=0.05)
    rb.push(0, 0, 0.0)
    rb.push(5, 5, 0.0)
    out = rb.push(6, 6, 0.2)         # a later push releases the expired gap too
    assert [(r.ext_seq, r.missing_before) for r in out] == [(5, True), (6, False)]


def test_receiver_end_to_end_wrap_reorder_dup_loss():
    rx: RtpReceiver[int] = RtpReceiver(reorder_window=0.05)
    exts = [65530, 65531, 65532, 65534, 65533, 65533, 65536, 65537, 65538]   # 65535 lost, 65533 dup
    released = []
    for i, e in enumerate(exts):
        released += rx.push(e % MOD, 0, 0.001 * i, e)
    released += rx.poll(1.0)
    assert [r.item for r in released] == [65530, 65531, 65532, 65533, 65534, 65536, 65537, 65538]
    assert [r.missing_before for r in released] == [False] * 5 + [True, False, False]
    tr = rx.tracker
    assert (tr.received, tr.expected, tr.lost, tr.duplicates, tr.out_of_order) == (8, 9, 1, 1, 1)


def test_receiver_releases_probation_packets():
    rx: RtpReceiver[str] = RtpReceiver()
    assert rx.push(100, 0, 0.0, "a") == []
    out = rx.push(101, 0, 0.0, "b")
    assert [r.item for r in out] == ["a", "b"]


def test_receiver_releases_reordered_probation_packets_in_order_once():
    rx: RtpReceiver[int] = RtpReceiver()
    out = []
    for s in [101, 101, 100, 102, 103]:
        out += rx.push(s, 0, 0.0, s)
    assert [r.item for r in out] == [100, 101, 102, 103]
    assert (rx.tracker.duplicates, rx.tracker.out_of_order) == (1, 1)


def test_report_block_from_tracker():
    t = SequenceTracker()
    feed(t, [s % MOD for s in range(65530, 65630) if s % 10 != 3], ts_step=900, dt=0.01)
    block, interval = t.report_block(0x1234, lsr=0xABCD0000, dlsr=65536)
    assert (block.ssrc, block.packets_lost, block.highest_sequence, block.lsr, block.dlsr) == \
        (0x1234, 10, 65536 + 93, 0xABCD0000, 65536)
    assert block.fraction_lost == interval.fraction_lost == (10 << 8) // 100
    assert block.jitter == int(t.jitter)
    block2, interval2 = t.report_block(0x1234)
    assert (block2.fraction_lost, block2.packets_lost, interval2.expected) == (0, 10, 0)


def test_receiver_restart_flushes_and_resyncs():
    rx: RtpReceiver[int] = RtpReceiver()
    for s in range(5):
        rx.push(s, 0, 0.0, s)
    assert rx.push(40000, 0, 0.0, 40000) == []
    out = rx.push(40001, 0, 0.0, 40001)
    assert [r.item for r in out] == [40001]
    assert [r.item for r in rx.push(40002, 0, 0.0, 40002)] == [40002]


# -- rates -----------------------------------------------------------------------------------
def test_rate_meter_window():
    m = RateMeter(1.0)
    for i in range(25):
        m.add(i * 0.04, 1000)
    assert m.rate(0.97) == pytest.approx(25000)
    assert m.rate(1.5) == pytest.approx(12000)     # events at 0.52 .. 0.96 remain
    assert m.rate(3.0) == 0


def test_playback_stats_snapshot():
    ps = PlaybackStats()
    t = SequenceTracker()
    ps.start(0.0)
    for i in range(50):
        now = i * 0.04
        t.update(i, 3600 * i, now)
        ps.on_packet(now, 1000)
        ps.on_frame(now)
    ps.on_frame(2.0, complete=False)
    s = ps.snapshot(2.0, t)
    assert (s.frames_completed, s.frames_dropped, s.bytes_received, s.packets_received) == (50, 1, 50000, 50)
    assert s.fps_avg == pytest.approx(25.0)
    assert s.kbps_avg == pytest.approx(200.0)
    assert s.fps_inst == pytest.approx(24.0)       # frames at 1.04 .. 1.96
    assert s.loss_percent == 0 and len(s.history) == 1
    ps.stop(2.0)
    assert ps.elapsed(10.0) == pytest.approx(2.0)
    assert "history" not in s.as_dict()


# -- PacketDiagnosis: why packets make no frames -------------------------------------------------

def _diagnose(packets, frames=0, drops=(), settled=True):
    """packets: (seq, ts, marker, ssrc, whole_jpeg) headers; drops: (Unusable, detail)."""
    from RtpStats import PacketDiagnosis
    d = PacketDiagnosis()
    for i, (seq, ts, marker, ssrc, whole) in enumerate(packets):
        d.arrival("127.0.0.1:40000", float(i) * 0.05)
        d.header(seq, ts, marker, ssrc, whole)
    for kind, detail in drops:
        d.arrival("127.0.0.1:40000", 0.0)
        d.drop(kind, detail)
    return d.line(frames, 10.0, "a frame had no packet with the marker bit", settled=settled)


def test_diagnosis_lines():
    from RtpStats import Unusable
    good = [(i, i * 3600, True, 7, False) for i in range(30)]
    assert _diagnose(good, frames=30) is None                      # nothing wrong
    assert _diagnose([], drops=[]) is None                          # nothing arrived: not our line
    line = _diagnose([], drops=[(Unusable.VERSION, "RTP version 0, not 2")] * 40)
    assert line == ("40 RTP packets arrived from 127.0.0.1:40000 but none made a frame: "
                    "RTP version 0, not 2, in all of them")
    line = _diagnose([], drops=[(Unusable.PAYLOAD_TYPE, "payload type 96, not 26 (JPEG)")] * 5)
    assert line.endswith("none made a frame: payload type 96, not 26 (JPEG), in all of them")
    no_marker = [(i, (i // 4) * 3600, False, 7, False) for i in range(40)]
    assert _diagnose(no_marker).endswith(
        "none made a frame: the marker bit is never set (RFC 2435 marks each frame's last packet)")
    constant = [(i, 1234, False, 7, False) for i in range(40)]
    assert "the marker bit is never set and the timestamp never changes" in _diagnose(constant)
    same_seq = [(1, i, False, 7, True) for i in range(40)]
    assert _diagnose(same_seq).endswith("the sequence number does not advance (it stays 1)")
    jumpy = [((i * 7919) % 65536, i, True, 7, True) for i in range(40)]
    assert "the sequence numbers do not go up by one per packet (0, 7919, 15838, 23757, ...)" in _diagnose(jumpy)
    ssrcs = [(i, i, False, 1000 + i, True) for i in range(1)]
    line = _diagnose(ssrcs, drops=[(Unusable.SSRC, "x")] * 39)
    assert "the SSRC changes from packet to packet" in line and "in 39 of them" in line
    # few frames: half or more of the packets dropped
    line = _diagnose(good, frames=30, drops=[(Unusable.NO_JPEG, "no JPEG in the payload")] * 40)
    assert line.startswith("70 RTP packets arrived from 127.0.0.1:40000 but only 30 frames came of them: "
                           "no JPEG in the payload, in 40 of them")
    assert _diagnose(good, frames=30, drops=[(Unusable.NO_JPEG, "x")] * 10) is None   # a few bad ones


def test_diagnosis_waits_two_seconds_unless_settled():
    from RtpStats import DIAGNOSE_AFTER, PacketDiagnosis, Unusable
    d = PacketDiagnosis()
    d.arrival("h:1", 100.0)
    d.drop(Unusable.VERSION, "RTP version 1, not 2")
    assert d.line(0, 100.0 + DIAGNOSE_AFTER - 0.1) is None
    assert d.line(0, 100.0 + DIAGNOSE_AFTER) is not None
    assert d.line(0, 100.5, settled=True) is not None


def test_new_timeline_restarts_the_jitter_baseline_not_the_value():
    """A PLAY with Range (RTP-Info seq) or a resume after PAUSE: the transit baseline restarts at the
    timeline's first packet, so neither the timestamp jump nor the pause shows as jitter; packets of
    the old timeline still in flight, and those arriving while the PLAY is outstanding, are counted
    but left out of the estimate (RFC 3550 A.8, issue 17)."""
    def run(reset: bool) -> SequenceTracker:
        t = SequenceTracker(90000)
        seq, ts, now = 1000, 5000, 100.0
        for _ in range(50):                       # 20 fps, 1 ms of alternating transit noise
            t.update(seq, ts, now + (0.001 if seq % 2 else 0.0))
            seq, ts, now = seq + 1, ts + 4500, now + 0.05
        base = t.jitter
        if reset:
            t.hold_jitter()
        t.update(seq, ts, now + 0.2)              # a straggler of the old timeline, late
        if reset:
            t.update(seq + 1, 900_000, now + 1.0)  # new timeline, before the PLAY reply was read
            t.new_timeline(seq + 1)
            t.update(seq, ts, now + 1.01)          # old straggler after the reply: left out too
        for k in range(1, 30):                    # seek: timestamps jump, arrivals after a pause
            t.update(seq + 1 + k, 900_000 + k * 4500, now + 1.0 + k * 0.05 + (0.001 if k % 2 else 0.0))
        t.base_jitter = base                      # type: ignore[attr-defined]
        return t
    plain, reset = run(False), run(True)
    assert plain.jitter_seconds > 0.05            # without the restart: tens of ms of "jitter"
    assert reset.jitter_seconds < 0.002 and abs(reset.jitter - reset.base_jitter) < 90   # ~1 ms as before
    assert reset.received == plain.received + 1   # everything counted (one more packet sent here)
    assert reset.duplicates == 1                  # the straggler repeated after the reply
