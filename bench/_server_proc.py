#!/usr/bin/env python3
"""Our RtspServer in a process of its own, for the load benchmarks.

    python3 bench/_server_proc.py --media-dir DIR [--fps 20] [--loop] [--cprofile N]

Prints "PORT <rtsp port> PID <pid>", then reads commands on stdin: "stats" prints one JSON line
with the counters of every session set up since the last "stats" (StreamSession.max_lateness, frames_skipped,
frames_sent, packets_sent) and server_lateness_p99_ms, the p99 of the lateness the Streamer passed to
_send_frame for frames due from 1 s after the last PLAY on (steady state, measured in the server);
"quit" (or end of stdin) stops the server.  --cprofile N profiles the
Streamer thread with cProfile and prints the top N functions (tottime) on quit.  --log-sends
records (ssrc, rtp timestamp, time.time()) as each frame goes out; "sends" prints them as JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402,F401  (puts the repo on sys.path)
from MediaLibrary import MediaLibrary  # noqa: E402
from Server import RtspServer  # noqa: E402
from ServerWorker import ServerConfig  # noqa: E402


def _p99_after(log, since):
    """p99 (ms) of the Streamer's lateness for frames due from `since` on (steady state)."""
    values = sorted(late for t, late in log if t >= since)
    return round(1000 * values[min(len(values) - 1, int(0.99 * len(values)))], 3) if values else None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--media-dir", required=True)
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--loop", action="store_true")
    p.add_argument("--max-sessions", type=int, default=2000)
    p.add_argument("--cprofile", type=int, default=0)
    p.add_argument("--log-sends", action="store_true", help='remember when each frame was sent ("sends")')
    args = p.parse_args()
    media = MediaLibrary(args.media_dir, fps=args.fps, payload_size=1400)
    config = ServerConfig(media=media, max_sessions=args.max_sessions, loop=args.loop, session_timeout=600.0)
    server = RtspServer("127.0.0.1", 0, config)
    profile = None
    if args.cprofile:
        profile = cProfile.Profile()
        streamer = server.streamer
        original = streamer.run
        setattr(streamer, "run", lambda: profile.runcall(original))
    seen: list = []  # every session the Streamer was given (their counters outlive TEARDOWN)
    add = server.streamer.add

    def recording_add(session):
        if session not in seen:
            seen.append(session)
        add(session)
    setattr(server.streamer, "add", recording_add)
    sends: list[tuple[int, int, float]] = []  # (ssrc, rtp timestamp, time.time() when the frame's first packet went out)
    lateness_log: list[tuple[float, float]] = []  # (monotonic time, lateness the Streamer passed to _send_frame)
    last_play = [0.0]
    send_frame = server.streamer._send_frame
    play = server.streamer.play

    def logging_send_frame(session, lateness):
        before = session.frames_sent
        ts = session.rtptime(session.position)
        wall = time.time()
        more = send_frame(session, lateness)
        if len(lateness_log) < 2000000:
            lateness_log.append((time.monotonic(), lateness))
        if args.log_sends and session.frames_sent != before and len(sends) < 100000:
            sends.append((session.ssrc, ts, wall))
        return more

    def logging_play(session):
        last_play[0] = time.monotonic()
        play(session)
    setattr(server.streamer, "_send_frame", logging_send_frame)
    setattr(server.streamer, "play", logging_play)
    thread = threading.Thread(target=server.serve_forever, name="server", daemon=True)
    thread.start()
    print(f"PORT {server.port} PID {os.getpid()}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            sessions = list(seen)
            seen.clear()
            print(json.dumps({
                "sessions": len(sessions),
                "max_lateness_ms": [round(s.max_lateness * 1000, 3) for s in sessions],
                "frames_skipped": sum(s.frames_skipped for s in sessions),
                "frames_sent": sum(s.frames_sent for s in sessions),
                "packets_sent": sum(s.packets_sent for s in sessions),
                "server_lateness_p99_ms": _p99_after(lateness_log, last_play[0] + 1.0),
            }), flush=True)
            lateness_log.clear()
        elif cmd == "sends":
            print(json.dumps(sends), flush=True)
            sends.clear()
        elif cmd == "quit":
            break
    server.shutdown()
    thread.join(timeout=5)
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.cprofile)
        print("PROFILE-BEGIN")
        print(out.getvalue())
        print("PROFILE-END", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
