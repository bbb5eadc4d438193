"""The engine's receive path over real UDP sockets, driven by a scripted sender (--sdp mode):
loss, duplicates, reordering and sequence wrap counted exactly; only complete frames shown,
pixel-equal to the source; the lab dialect (a whole JPEG per packet) plays too."""

from __future__ import annotations

import queue
import socket
import time
from pathlib import Path

import pytest

from media import pixels
from ReceiveEngine import EventKind, ReceiveEngine
from RtpJpeg import packetize
from RtpPacket import RtpPacket
from VideoStream import VideoStream

ROOT = Path(__file__).resolve().parent.parent


SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=t\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n" \
      "a=rtpmap:26 JPEG/90000\r\na=framerate:25\r\n"


@pytest.fixture(scope="module")
def frames():
    vs = VideoStream(ROOT / "movie.Mjpeg")
    return [vs.frame(i) for i in range(20)]


def packets_for(frames, seq0: int, ts0: int, ssrc: int = 0x1234, lab: bool = False):
    """[(frame index, RtpPacket)] for the frames, RFC 2435 (max 1000-byte payloads) or lab style."""
    out = []
    seq = seq0
    for i, f in enumerate(frames):
        payloads = [f] if lab else packetize(f, 1000)
        for k, pl in enumerate(payloads):
            out.append((i, RtpPacket(26, seq % 65536, (ts0 + 3600 * i) % (1 << 32), ssrc, pl,
                                     marker=k == len(payloads) - 1)))
            seq += 1
    return out


def run(send_list, expect_frames: int | None = None, timeout: float = 5.0):
    eng = ReceiveEngine(None, sdp_text=SDP, idle_timeout=0.5)
    eng.open()
    got = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for pkt in send_list:
                tx.sendto(pkt.serialize(), ("127.0.0.1", eng.rtp_port))
                time.sleep(0.0002)
            deadline = time.monotonic() + timeout
            while eng.ended is None:
                assert time.monotonic() < deadline, "stream did not end"
                try:
                    ev = eng.events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if ev.kind is EventKind.FRAME:
                    got.append(ev.payload)
            while True:
                try:
                    ev = eng.events.get_nowait()
                except queue.Empty:
                    break
                if ev.kind is EventKind.FRAME:
                    got.append(ev.payload)
        return eng, got, eng.snapshot()
    finally:
        eng.close()


def test_clean_stream_across_sequence_wrap(frames):
    pk = packets_for(frames, seq0=65530, ts0=(1 << 32) - 3600 * 5)     # seq and timestamp both wrap
    eng, got, s = run([p for _, p in pk])
    assert [f.index for f in got] == list(range(len(frames)))
    assert [pixels(f.data) for f in got] == [pixels(f) for f in frames]
    assert (s.packets_received, s.packets_expected, s.packets_lost) == (len(pk), len(pk), 0)
    assert eng.rx.tracker.cycles == 65536


def test_loss_duplicates_reorder_counted_exactly(frames):
    pk = packets_for(frames, seq0=65500, ts0=1000)
    by_frame: dict[int, list[int]] = {}
    for n, (i, _) in enumerate(pk):
        by_frame.setdefault(i, []).append(n)
    lost_frames = {3, 11}
    drop = {by_frame[3][1], by_frame[11][0]}          # a middle packet, and a first packet
    order = [n for n in range(len(pk)) if n not in drop]
    # reorder: swap two packets inside frame 6 and the last of frame 8 with the first of frame 9
    a, b = order.index(by_frame[6][0]), order.index(by_frame[6][1])
    order[a], order[b] = order[b], order[a]
    c, d = order.index(by_frame[8][-1]), order.index(by_frame[9][0])
    order[c], order[d] = order[d], order[c]
    # duplicates: one packet of frame 1 twice more, one of frame 15 once more
    dup1, dup2 = by_frame[1][1], by_frame[15][0]
    order.insert(order.index(dup1) + 1, dup1)
    order.insert(order.index(dup1) + 3, dup1)
    order.insert(order.index(dup2) + 2, dup2)
    eng, got, s = run([pk[n][1] for n in order])
    assert s.packets_lost == 2 and s.packets_expected == len(pk)
    assert s.packets_received == len(pk) - 2
    assert s.duplicates == 3
    assert s.out_of_order == 2
    assert s.frames_dropped == len(lost_frames)
    shown = [f.index for f in got]
    assert shown == [i for i in range(len(frames)) if i not in lost_frames]   # in order, none corrupt
    for f in got:
        assert pixels(f.data) == pixels(frames[f.index])


def test_lab_dialect_whole_jpeg_per_packet(frames):
    pk = packets_for(frames, seq0=100, ts0=0, lab=True)
    eng, got, s = run([p for _, p in pk])
    assert [f.data for f in got] == frames            # byte-equal: the payload is the JPEG
    assert s.packets_lost == 0 and s.frames_completed == len(frames)


def test_foreign_ssrc_ignored(frames):
    pk = [p for _, p in packets_for(frames[:5], seq0=0, ts0=0)]
    intruder = RtpPacket(26, 40000, 0, 0xBAD, b"\xff\xd8\xff" + b"x" * 10, marker=True)
    eng, got, s = run(pk[:3] + [intruder] + pk[3:])
    assert len(got) == 5 and eng.foreign_packets == 1 and s.packets_lost == 0


def test_frames_nobody_takes_are_bounded_and_counted(start_server):
    """A window whose event loop is blocked takes no frames: at most frame_queue FRAME events
    wait (memory stays bounded), the rest are counted in queue_dropped, and frames flow again
    once the queue is drained."""
    from rtsp_tools import wait_for, wait_settled

    srv = start_server(fps=100)
    eng = ReceiveEngine(srv.url(), frame_queue=10)
    eng.open()
    try:
        eng.setup()
        eng.play()
        wait_for(lambda: eng.frames_displayable >= 40, 10, "40 frames")
        eng.pause()
        received = wait_settled(lambda: eng.frames_displayable, 0.2, 5, "frames in flight at PAUSE")

        def drain() -> int:
            count = 0
            while True:
                try:
                    ev = eng.events.get_nowait()
                except queue.Empty:
                    return count
                count += ev.kind is EventKind.FRAME
        assert drain() == 10 and eng.events.frames_waiting == 0
        assert eng.queue_dropped == received - 10
        eng.play()
        wait_for(lambda: eng.frames_displayable >= received + 5, 10, "5 more frames")
        eng.pause()
        now = wait_settled(lambda: eng.frames_displayable, 0.2, 5, "frames in flight at PAUSE")
        assert drain() == min(10, now - received)
    finally:
        eng.close()
