#!/usr/bin/env python3
"""Figure 6: server RSS idle, with 1 and with 400 streaming sessions (frames shared, not copied).

Each row starts a fresh server process (ours: bench/_server_proc.py; gst-rtsp-server:
bench/_gst_server.py), reads VmRSS from /proc/PID/status when idle, then runs bench/_load.py
(another process) with N sessions of the 640x480 ~20 KB movie (200 frames, ~4 MB) and reads
VmRSS again while all N stream.  If frames were copied per session, 400 sessions would need
about 400 x the movie; shared, the growth is only the per-session state.

    python3 bench/memory.py            # N = 1 and 400, ours and GStreamer (~1.5 min)
    python3 bench/memory.py --quick    # N = 1 and 20, ours only (~10 s)
"""

from __future__ import annotations

import os
import time

import _common
import _procs


def measure(kind: str, media: str, n: int, frames: int) -> dict:
    server = _procs.Server(kind, media)
    try:
        time.sleep(0.5)  # settle after start (fixed, bounded)
        idle = _common.rss_kib(server.pid)
        r = _procs.run_load(server.url, n, frames, server.pid)
    finally:
        server.stop()
    return {"server": kind, "sessions": n, "rss_idle_MiB": round(idle / 1024, 1),
            "rss_streaming_MiB": round(r.get("server_rss_kib", 0) / 1024, 1),
            "growth_MiB": round((r.get("server_rss_kib", 0) - idle) / 1024, 1),
            "packets_lost": r.get("packets_lost_total"), "error": r.get("error")}


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, nargs="*", default=[1, 400])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--no-gst", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.sessions, args.frames, args.no_gst = [1, 20], 30, True
    media = _common.movie_dir(640, 480, 200, 75, jpeg_dir=True)
    movie_mib = os.path.getsize(os.path.join(media, "bench.Mjpeg")) / 2 ** 20
    kinds = ["ours"] + ([] if args.no_gst or not os.path.exists(_procs.GST_PYTHON) else ["gst"])
    rows = [measure(kind, media, n, args.frames) for kind in kinds for n in args.sessions]
    per = {}
    for kind in kinds:
        mine = [r for r in rows if r["server"] == kind and not r["error"]]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            per[kind] = round((b["rss_streaming_MiB"] - a["rss_streaming_MiB"]) * 1024
                              / max(1, b["sessions"] - a["sessions"]), 1)
    _common.emit("Figure 6: server RSS", rows,
                 ["server", "sessions", "rss_idle_MiB", "rss_streaming_MiB", "growth_MiB", "packets_lost", "error"],
                 args.json, {"movie size": f"{movie_mib:.1f} MiB (200 frames)",
                             "KiB per extra session": per})


if __name__ == "__main__":
    main()
