#!/usr/bin/env python3
"""Figure 4: RTSP reply latency (SETUP, PLAY) p50/p99 with N clients connected and streaming.

A server process (ours: bench/_server_proc.py; and gst-rtsp-server: bench/_gst_server.py) streams
the 640x480 ~20 KB movie to N sessions held by bench/_load.py (another process, draining every
RTP socket).  This process then opens --probes fresh connections one after another and times
SETUP and PLAY from the request's send to the complete reply (TEARDOWN follows, untimed).  The
same probes with no other client give the idle baseline, in the same run.

    python3 bench/rtsp_latency.py              # N=100, 200 probes, ours and GStreamer (~1 min)
    python3 bench/rtsp_latency.py --quick      # N=5, 20 probes, ours only (~5 s)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import _common
import _procs
from _rtsp import Conn, control_url, udp_pair


def probe(url: str, count: int, budget: float) -> dict:
    parts = urlsplit(url)
    first = Conn(parts.hostname, parts.port)
    status, hdrs, body, _ = first.request("DESCRIBE", url, {"Accept": "application/sdp"})
    first.close()
    setup_url = control_url(url, body, hdrs.get("content-base"))
    setups, plays = [], []
    deadline = time.monotonic() + budget
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        conn = Conn(parts.hostname, parts.port)
        rtp, rtcp = udp_pair("127.0.0.1", 0)
        try:
            port = rtp.getsockname()[1]
            st, _, _, t_setup = conn.request("SETUP", setup_url,
                                             {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
            st2, _, _, t_play = conn.request("PLAY", url, {"Range": "npt=0.000-"})
            conn.request("TEARDOWN", url)
            if st == 200 and st2 == 200:
                setups.append(t_setup)
                plays.append(t_play)
        finally:
            conn.close()
            rtp.close()
            rtcp.close()
    ms = lambda v, q: round(1000 * _common.percentile(v, q), 3) if v else None  # noqa: E731
    return {"probes": len(setups), "setup_p50_ms": ms(setups, 50), "setup_p99_ms": ms(setups, 99),
            "play_p50_ms": ms(plays, 50), "play_p99_ms": ms(plays, 99),
            "setup_max_ms": ms(setups, 100), "play_max_ms": ms(plays, 100)}


def measure(kind: str, media: str, sessions: int, probes: int) -> list:
    rows = []
    server = _procs.Server(kind, media)
    try:
        idle = probe(server.url, probes, 60)
        rows.append({"server": kind, "streaming_clients": 0, **idle})
        load = subprocess.Popen([sys.executable, os.path.join(_procs.BENCH, "_load.py"), "--url", server.url,
                                 "--sessions", str(sessions), "--hold", "120"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            _procs.wait_for(load, "READY", 60 + sessions * 0.2)
            time.sleep(1.0)  # every session past its first frames (fixed, bounded)
            busy = probe(server.url, probes, 90)
            if load.stdin is not None:
                load.stdin.close()
            result = _procs.wait_for(load, "{", 30)
        finally:
            if load.poll() is None:
                try:
                    if load.stdin is not None:
                        load.stdin.close()
                except OSError:
                    pass
                try:
                    load.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    load.kill()
                    load.wait(timeout=5)
        import json
        held = json.loads(result)
        packets = held.get("packets")
        if not packets:
            # Not a measurement under load: say so rather than print a quiet row.
            print(f"# WARNING: the {sessions} clients received no RTP from {kind} "
                  f"({held.get('error', 'no error reported')})", file=sys.stderr)
        rate = round(packets / held["elapsed"]) if packets and held.get("elapsed") else None
        rows.append({"server": kind, "streaming_clients": sessions, **busy, "load_packets": packets,
                     "load_packets_per_s": rate})
    finally:
        server.stop()
    return rows


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--no-gst", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.sessions, args.probes, args.no_gst = 5, 20, True
    media = _common.movie_dir(640, 480, 200, 75, jpeg_dir=True)
    rows = measure("ours", media, args.sessions, args.probes)
    if not args.no_gst and os.path.exists(_procs.GST_PYTHON):
        rows += measure("gst", media, args.sessions, args.probes)
    _common.emit(f"Figure 4: RTSP reply latency with {args.sessions} clients streaming", rows,
                 ["server", "streaming_clients", "probes", "setup_p50_ms", "setup_p99_ms", "setup_max_ms",
                  "play_p50_ms", "play_p99_ms", "play_max_ms", "load_packets", "load_packets_per_s"],
                 args.json,
                 {"target": "p99 < 2 ms (seed: < 50 ms)"})


if __name__ == "__main__":
    main()
