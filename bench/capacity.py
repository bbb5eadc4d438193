#!/usr/bin/env python3
"""Figure 3: server capacity (concurrent 20 fps UDP sessions) and CPU per frame vs gst-rtsp-server.

The movie: 640x480, 200 generated frames (tools/make_movie.py, quality 75, ~20 KB each, ~15
RTP packets), looped.  For each N the server is started fresh in its own process
(bench/_server_proc.py) and bench/_load.py, another process, sets up N RTSP/UDP sessions and
receives them on one selector with 4 MB SO_RCVBUF per socket.  A load passes when every
session's first --frames frames arrive with 0 packets lost, 0 frames skipped (receiver timestamp
gaps and the server's StreamSession.frames_skipped), receiver-side send lateness p99 < 5 ms and
drift (last 20 frames vs first 20) <= 1 ms.  N doubles from --start until a load fails.

Then the same load (N = --compare sessions) against gst-rtsp-server (bench/_gst_server.py under
/usr/bin/python3, shared media, appsrc ! jpegparse ! rtpjpegpay of the same JPEG files) and
against ours, back to back: server CPU seconds (/proc/PID/stat utime+stime) per streamed frame
over a window in which all sessions stream; the ratio ours/GStreamer is the figure.

    python3 bench/capacity.py                   # ~3-5 min: N = 50, 100, 200, 400, 800 ...
    python3 bench/capacity.py --quick           # ~10 s: N = 5, 40 frames, compare at 5
    python3 bench/capacity.py --profile         # also a py-spy profile of ours at --compare N
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _common
import _procs

P99_LIMIT_MS = 5.0
DRIFT_LIMIT_MS = 1.0


def run_ours(media: str, n: int, frames: int) -> dict:
    server = _procs.Server("ours", media)
    try:
        result = _procs.run_load(server.url, n, frames, server.pid)
        stats = server.stats() or {}
    finally:
        server.stop()
    result["server_frames_skipped"] = stats.get("frames_skipped")
    lat = stats.get("max_lateness_ms") or []
    result["server_max_lateness_ms"] = max(lat) if lat else None
    result["server_lateness_p99_ms"] = stats.get("server_lateness_p99_ms")
    return result


def verdict(r: dict) -> str:
    if "error" in r:
        return "error: " + r["error"]
    why = []
    if r.get("sessions_incomplete"):
        why.append(f"{r['sessions_incomplete']} sessions incomplete")
    if r.get("packets_lost_total"):
        why.append(f"{r['packets_lost_total']} packets lost")
    if r.get("frames_missing") or r.get("server_frames_skipped"):
        why.append(f"{r.get('frames_missing')} frames missing / {r.get('server_frames_skipped')} skipped")
    if r.get("lateness_p99_ms") is None or r["lateness_p99_ms"] >= P99_LIMIT_MS:
        why.append(f"p99 {r.get('lateness_p99_ms')} ms")
    if r.get("drift_max_ms") is None or r["drift_max_ms"] > DRIFT_LIMIT_MS:
        why.append(f"drift {r.get('drift_max_ms')} ms")
    return "pass" if not why else "FAIL: " + ", ".join(why)


def py_spy_profile(media: str, n: int, seconds: float, top: int = 20) -> list:
    """Self-time top frames of our server under n sessions, sampled by py-spy (if installed)."""
    exe = shutil.which("py-spy") or next((p for p in ("/tmp/bench-venv/bin/py-spy",) if os.path.exists(p)), None)
    if not exe:
        return ["py-spy not installed (pip install py-spy); profile skipped"]
    server = _procs.Server("ours", media)
    out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name
    try:
        load = subprocess.Popen([sys.executable, os.path.join(_procs.BENCH, "_load.py"), "--url", server.url,
                                 "--sessions", str(n), "--hold", str(seconds + 8)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            _procs.wait_for(load, "READY", 60 + n * 0.2)
            time.sleep(1.0)  # let the sessions settle (bounded, fixed)
            subprocess.run([exe, "record", "-p", str(server.pid), "-d", str(int(seconds)), "-r", "200",
                            "-f", "raw", "-o", out, "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 30)
        finally:
            if load.stdin is not None:
                load.stdin.close()
            try:
                load.wait(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait(timeout=5)
    finally:
        server.stop()
    return summarize_raw(out, top)


def summarize_raw(path: str, top: int) -> list:
    """Top functions by self samples (leaf frame) and by inclusive samples, from py-spy's raw output."""
    self_count: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack:
                    continue
                c = int(count)
                frames = stack.split(";")
                total += c
                leaf = frames[-1]
                if any(w in leaf for w in ("select (", "wait (", "accept (", "_readline", "readline")):
                    idle += c
                self_count[leaf] += c
                for fr in set(frames):
                    incl[fr] += c
    except OSError as exc:
        return [f"py-spy produced no output ({exc})"]
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if not total:
        return ["py-spy: no samples (ptrace not permitted?)"]
    lines = [f"py-spy samples: {total} (all threads); self time, top {top}:"]
    for fr, c in self_count.most_common(top):
        lines.append(f"  {100 * c / total:5.1f}%  {fr}")
    lines.append("inclusive, streamer thread functions:")
    for fr, c in incl.most_common(200):
        if any(k in fr for k in ("_send_due", "_send_frame", "_send_slice", "packets", "rtptime", "sender_report",
                                 "_receive_rtcp", "listcomp")):
            lines.append(f"  {100 * c / total:5.1f}%  {fr}")
    return lines


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--start", type=int, default=50, help="first N (doubles until a failure)")
    p.add_argument("--max", type=int, default=1600, help="largest N tried")
    p.add_argument("--sessions", type=int, nargs="*", help="exact list of N to try instead of doubling")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--compare", type=int, default=100, help="N for the CPU comparison with GStreamer")
    p.add_argument("--no-gst", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy profile of ours at --compare sessions")
    args = p.parse_args()
    if args.quick:
        args.sessions, args.frames, args.compare = args.sessions or [5], 40, 5
    media = _common.movie_dir(640, 480, 200, 75, jpeg_dir=True)
    rows = []
    best = 0
    todo = list(args.sessions) if args.sessions else None
    n = args.start
    while True:
        if todo is not None:
            if not todo:
                break
            n = todo.pop(0)
        elif n > args.max:
            break
        r = run_ours(media, n, args.frames)
        v = verdict(r)
        rows.append({"server": "ours", "N": n, **{k: r.get(k) for k in (
            "lateness_p50_ms", "lateness_p99_ms", "drift_max_ms", "packets_lost_total", "frames_missing",
            "server_frames_skipped", "server_max_lateness_ms", "server_lateness_p99_ms", "cpu_ms_per_frame", "cpu_share",
            "server_rss_kib", "udp_rcvbuf_errors")}, "verdict": v})
        print(json.dumps(rows[-1]), flush=True)
        if v == "pass":
            best = max(best, n)
        elif todo is None:
            break
        if todo is None:
            n *= 2
    cmp_rows = []
    ratio = None
    if not args.no_gst and os.path.exists(_procs.GST_PYTHON):
        results = {}
        for kind in ("gst", "ours"):
            if kind == "gst":
                server = _procs.Server("gst", media)
                try:
                    r = _procs.run_load(server.url, args.compare, args.frames, server.pid)
                finally:
                    server.stop()
            else:
                r = run_ours(media, args.compare, args.frames)
            results[kind] = r
            cmp_rows.append({"server": "gst-rtsp-server" if kind == "gst" else "ours", "N": args.compare,
                             **{k: r.get(k) for k in ("cpu_seconds", "cpu_window", "window_frames",
                                                      "cpu_ms_per_frame", "cpu_share", "cpu_kernel_fraction", "lateness_p99_ms",
                                                      "drift_max_ms", "packets_lost_total", "server_rss_kib")},
                             "verdict": verdict(r)})
            print(json.dumps(cmp_rows[-1]), flush=True)
        g, o = results["gst"].get("cpu_ms_per_frame"), results["ours"].get("cpu_ms_per_frame")
        ratio = round(o / g, 2) if g and o else None
    cols = ["server", "N", "lateness_p50_ms", "lateness_p99_ms", "drift_max_ms", "packets_lost_total",
            "frames_missing", "server_frames_skipped", "server_max_lateness_ms", "server_lateness_p99_ms", "cpu_ms_per_frame", "cpu_share",
            "server_rss_kib", "verdict"]
    _common.emit("Figure 3: server capacity, 640x480 ~20 KB frames, 20 fps, UDP", rows, cols, args.json,
                 {"largest N passing": best, "frames per session": args.frames,
                  "targets": f"p99 < {P99_LIMIT_MS} ms, drift <= {DRIFT_LIMIT_MS} ms, 0 lost; N >= 400"})
    if cmp_rows:
        _common.emit(f"Figure 3b: CPU per streamed frame, ours vs gst-rtsp-server, N={args.compare}", cmp_rows,
                     ["server", "N", "cpu_seconds", "cpu_window", "window_frames", "cpu_ms_per_frame", "cpu_share",
                      "cpu_kernel_fraction",
                      "lateness_p99_ms", "drift_max_ms", "packets_lost_total", "server_rss_kib", "verdict"],
                     args.json, {"ratio ours/gst (cpu per frame)": ratio, "target": "<= 1.5"})
    else:
        print("# GStreamer comparison skipped (/usr/bin/python3 with gi missing or --no-gst)")
    if args.profile:
        for line in py_spy_profile(media, args.compare, 10.0):
            print("# " + line)


if __name__ == "__main__":
    main()
