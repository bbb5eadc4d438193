#!/usr/bin/env python3
"""Receiver load: N RTSP/UDP sessions in one process, every RTP socket on one selector.

    python3 bench/_load.py --url rtsp://127.0.0.1:PORT/bench.Mjpeg --sessions 100 --frames 200 \
        [--server-pid PID] [--hold SECONDS]

Sets up and PLAYs N sessions (one TCP connection each), prints "READY" once all play, then
counts, per session, the packets of its first --frames frames: packets lost (RTP sequence gaps),
frames missing (timestamp gaps = frames the server skipped), and for each frame the arrival time
of its first packet.  Lateness of frame k = arrival_k - (t_ref + k/fps), t_ref = min over the
session's frames read after the first second (the backlog queued while the other sessions
were set up is not timed), so the earliest frame is 0 late; drift = median offset of the last 20 frames
minus that of the first 20.  With --server-pid, the server's CPU seconds (/proc/PID/stat) and
RSS are sampled over a window in which every session is streaming.  Prints one JSON line.
--hold keeps the sessions streaming (and drained) that many seconds instead of counting frames
(for the RTSP latency benchmark), ending early if stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import struct
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from _rtsp import Conn, control_url, udp_pair  # noqa: E402

HDR = struct.Struct("!BBHII")
SETTLE = 1.0  # seconds after READY before arrival times count (backlog from the setup phase)


def udp_errors():
    """(RcvbufErrors, SndbufErrors, InErrors) of /proc/net/snmp: kernel-level UDP drops."""
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    names, values = lines[0], lines[1]
    d = dict(zip(names[1:], map(int, values[1:])))
    return d.get("RcvbufErrors", 0), d.get("SndbufErrors", 0), d.get("InErrors", 0)


class Session:
    __slots__ = ("rtp", "rtcp", "conn", "frames", "ts0", "last_ts", "arrivals", "received", "seq0",
                 "last_seq", "ext", "done", "ts_gaps", "window_frames")

    def __init__(self, rtp, rtcp, conn):
        self.rtp, self.rtcp, self.conn = rtp, rtcp, conn
        self.frames = 0
        self.ts0 = None
        self.last_ts = None
        self.arrivals = []   # (k, arrival) per frame
        self.received = 0
        self.seq0 = None
        self.last_seq = 0    # extended
        self.ext = 0
        self.done = False
        self.ts_gaps = 0
        self.window_frames = 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--rcvbuf", type=int, default=4 << 20)
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--setup-timeout", type=float, default=60.0)
    args = p.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname, parts.port or 554
    t_setup0 = time.monotonic()
    first = Conn(host, port)
    status, hdrs, body, _ = first.request("DESCRIBE", args.url, {"Accept": "application/sdp"})
    if status != 200:
        print(json.dumps({"error": f"DESCRIBE {status}"}))
        return 1
    setup_url = control_url(args.url, body, hdrs.get("content-base"))
    first.close()
    sel = selectors.DefaultSelector()
    sessions = []
    try:
        for i in range(args.sessions):
            if time.monotonic() - t_setup0 > args.setup_timeout:
                raise TimeoutError(f"only {i} sessions set up in {args.setup_timeout} s")
            conn = Conn(host, port)
            rtp, rtcp = udp_pair(host, args.rcvbuf)
            rtp.setblocking(False)
            rport = rtp.getsockname()[1]
            st, _, _, _ = conn.request("SETUP", setup_url,
                                       {"Transport": f"RTP/AVP;unicast;client_port={rport}-{rport + 1}"})
            if st != 200:
                raise RuntimeError(f"SETUP {i}: {st}")
            s = Session(rtp, rtcp, conn)
            sessions.append(s)
            sel.register(rtp, selectors.EVENT_READ, s)
            st, _, _, _ = conn.request("PLAY", args.url, {"Range": "npt=0.000-"})
            if st != 200:
                raise RuntimeError(f"PLAY {i}: {st}")
        setup_seconds = time.monotonic() - t_setup0
        print("READY", flush=True)
        result = receive(sel, sessions, args)
        result["setup_seconds"] = round(setup_seconds, 2)
    except Exception as exc:  # report what happened instead of a traceback mid-run
        result = {"error": f"{type(exc).__name__}: {exc}", "sessions_set_up": len(sessions)}
    finally:
        for s in sessions:
            try:
                s.conn.send_only("TEARDOWN", args.url)
            except OSError:
                pass
        for s in sessions:
            s.conn.close()
            s.rtp.close()
            s.rtcp.close()
        sel.close()
    print(json.dumps(result), flush=True)
    return 0


def receive(sel, sessions, args) -> dict:
    fps = args.fps
    tick = round(90000 / fps)
    hold = args.hold
    buf = bytearray(65536)
    view = memoryview(buf)
    unpack_from = HDR.unpack_from
    clock = time.monotonic
    errors0 = udp_errors()
    start = clock()
    deadline = start + (hold if hold else args.frames / fps + SETTLE + 10.0)
    remaining = len(sessions)
    # CPU window: from 1 s after READY until the first session completes its frames
    win_t0 = start + SETTLE
    cpu0 = cpu1 = None
    win_frames = 0
    pid = args.server_pid
    rss_max = 0
    stdin_open = hold > 0
    if stdin_open:
        sel.register(sys.stdin, selectors.EVENT_READ, None)
    while remaining and clock() < deadline:
        now = clock()
        if pid and cpu0 is None and now >= win_t0:
            cpu0, t_cpu0 = _common.cpu_seconds(pid), now
            sys0 = _common.cpu_seconds(pid, system_only=True)
            frames_at_0 = sum(s.frames for s in sessions)
        for key, _ in sel.select(0.2):
            s = key.data
            if s is None:
                if not sys.stdin.readline():
                    deadline = 0
                    sel.unregister(sys.stdin)
                continue
            sock = key.fileobj
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                if hold:
                    s.received += 1
                    continue
                arrival = clock()
                if s.done or n < 12:
                    continue
                _, second, seq, ts, _ = unpack_from(buf)
                if s.seq0 is None:
                    s.seq0 = s.last_seq = seq
                    s.ts0 = s.last_ts = ts
                    s.arrivals.append((0, arrival))
                    s.frames = 1
                else:
                    if ts != s.last_ts:
                        k = (((ts - s.ts0) & 0xFFFFFFFF) + tick // 2) // tick
                        prev_k = s.arrivals[-1][0]
                        if k > prev_k + 1:
                            s.ts_gaps += k - prev_k - 1
                        if k >= args.frames:
                            s.done = True
                            remaining -= 1
                            if pid and cpu1 is None and cpu0 is not None:
                                cpu1, t_cpu1 = _common.cpu_seconds(pid), clock()
                                sys1 = _common.cpu_seconds(pid, system_only=True)
                                frames_at_1 = sum(x.frames for x in sessions)
                                rss_max = _common.rss_kib(pid)
                            continue
                        s.last_ts = ts
                        s.arrivals.append((k, arrival))
                        s.frames += 1
                    d = ((seq - s.last_seq + 0x8000) & 0xFFFF) - 0x8000
                    if d > 0:
                        s.last_seq += d
                s.received += 1
    elapsed = clock() - start
    errors1 = udp_errors()
    out = {"sessions": len(sessions), "elapsed": round(elapsed, 2),
           "udp_rcvbuf_errors": errors1[0] - errors0[0], "udp_sndbuf_errors": errors1[1] - errors0[1],
           "udp_in_errors": errors1[2] - errors0[2]}
    if pid:
        try:
            out["server_rss_kib"] = rss_max or _common.rss_kib(pid)
        except OSError:
            pass
    if hold:
        out["packets"] = sum(s.received for s in sessions)
        return out
    if pid and cpu0 is not None:
        if cpu1 is None:
            cpu1, t_cpu1 = _common.cpu_seconds(pid), clock()
            sys1 = _common.cpu_seconds(pid, system_only=True)
            frames_at_1 = sum(x.frames for x in sessions)
        frames = frames_at_1 - frames_at_0
        out.update(cpu_seconds=round(cpu1 - cpu0, 3), cpu_window=round(t_cpu1 - t_cpu0, 2),
                   window_frames=frames,
                   cpu_ms_per_frame=round(1000 * (cpu1 - cpu0) / frames, 4) if frames else None,
                   cpu_share=round((cpu1 - cpu0) / (t_cpu1 - t_cpu0), 3),
                   cpu_kernel_fraction=round((sys1 - sys0) / (cpu1 - cpu0), 3) if cpu1 > cpu0 else None)
    settle = start + SETTLE
    lost = []
    lateness: list[float] = []
    drifts = []
    incomplete = 0
    gaps = 0
    for s in sessions:
        if s.seq0 is None:
            incomplete += 1
            lost.append(0)
            continue
        if not s.done:
            incomplete += 1
        expected = s.last_seq - s.seq0 + 1
        lost.append(max(0, expected - s.received))
        gaps += s.ts_gaps
        # frames read in the first second were queued while the other sessions were set up:
        # their arrival time is when this process got to them, not when they came
        offsets = [a - k / fps for k, a in s.arrivals if a >= settle]
        if not offsets:
            continue
        ref = min(offsets)
        lateness.extend(o - ref for o in offsets)
        if len(offsets) >= 40:
            drifts.append(statistics.median(offsets[-20:]) - statistics.median(offsets[:20]))
    out.update(
        frames_target=args.frames,
        sessions_incomplete=incomplete,
        packets_received=sum(s.received for s in sessions),
        packets_lost_total=sum(lost), packets_lost_max=max(lost) if lost else 0,
        sessions_with_loss=sum(1 for x in lost if x),
        frames_missing=gaps,
        lateness_p50_ms=round(1000 * _common.percentile(lateness, 50), 3) if lateness else None,
        lateness_p99_ms=round(1000 * _common.percentile(lateness, 99), 3) if lateness else None,
        lateness_max_ms=round(1000 * max(lateness), 3) if lateness else None,
        drift_max_ms=round(1000 * max(map(abs, drifts)), 3) if drifts else None,
        drift_median_ms=round(1000 * statistics.median(drifts), 3) if drifts else None,
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
