#!/usr/bin/env python3
"""Figure 3c: the Streamer's own CPU per frame sent, in-process, without RTSP or receivers' noise.

The server's pacing thread (Streamer.Streamer) is started with N UDP sessions of the 640x480
~20 KB movie (the capacity benchmark's), all PLAYing at 20 fps from spread start times and sending
to one loopback sink socket that another process drains.  The figure is the Streamer thread's CPU
time (its pthread CPU clock: Python plus the kernel work of its sendmsg calls) divided by the
frames it sent in a fixed window, and the share of one core it used.  Run against two checkouts
(e.g. a `git worktree` of the previous commit) to compare the send path; both print the same
columns.

    python3 bench/streamer_cpu.py                  # N = 100 and 400, 6 s each (~20 s)
    python3 bench/streamer_cpu.py --quick          # N = 20, 1 s
    python3 bench/streamer_cpu.py --sessions 100 --seconds 10
    python3 bench/streamer_cpu.py --sessions 100 --profile     # + cProfile of the Streamer thread
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import socket
import subprocess
import sys
import time

import _common
from MediaLibrary import MediaLibrary
from RtspSession import State
from Streamer import StreamSession, Streamer

DRAIN = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
buf = bytearray(65536)
n = 0
s.settimeout(2.0)
try:
    while True:
        s.recv_into(buf)
        n += 1
except socket.timeout:
    pass
print(n, flush=True)
"""


def profiled(streamer: Streamer, top: int, out: list) -> None:
    """Run the Streamer's loop under cProfile (it profiles only the thread it runs in)."""
    run = streamer.run

    def run_profiled() -> None:
        profile = cProfile.Profile()
        profile.runcall(run)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
        out.append(text.getvalue())
    setattr(streamer, "run", run_profiled)


def measure(media: MediaLibrary, sessions: int, seconds: float, profile: list | None = None,
            together: bool = False) -> dict:
    drain = subprocess.Popen([sys.executable, "-c", DRAIN], stdout=subprocess.PIPE, text=True)
    try:
        assert drain.stdout is not None
        port = int(drain.stdout.readline())
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        rtp.bind(("127.0.0.1", 0))
        rtcp.bind(("127.0.0.1", 0))
        streamer = Streamer(rtp, rtcp, loop=True, rng=random.Random(1))
        if profile is not None:
            profiled(streamer, 14, profile)
        streamer.start()
        movie = media.lookup("bench.Mjpeg")
        assert movie is not None, "_common.movie_dir() wrote bench.Mjpeg"
        rng = random.Random(2)
        interval = 1.0 / movie.fps
        all_sessions = []
        for i in range(sessions):
            s = StreamSession(f"{i:016x}", movie, rng)
            s.udp_dest = ("127.0.0.1", port)
            s.state = State.PLAYING
            streamer.add(s)
            all_sessions.append(s)
        for s in all_sessions:  # PLAYs one after another within one frame interval, or all at once
            streamer.play(s)
            if not together:
                time.sleep(interval / sessions)
        time.sleep(1.0)  # steady state
        if sys.platform != "linux" or streamer.ident is None:
            raise SystemExit("this benchmark reads a thread's CPU clock: Linux only")
        clock = time.pthread_getcpuclockid(streamer.ident)
        frames0 = sum(s.frames_sent for s in all_sessions)
        skipped0 = sum(s.frames_skipped for s in all_sessions)
        cpu0, wall0 = time.clock_gettime(clock), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = time.clock_gettime(clock), time.monotonic()
        frames = sum(s.frames_sent for s in all_sessions) - frames0
        skipped = sum(s.frames_skipped for s in all_sessions) - skipped0
        lateness = sorted(s.max_lateness for s in all_sessions)
        streamer.stop()
        streamer.join(2.0)
        rtp.close()
        rtcp.close()
    finally:
        drain.wait(10)
    cpu = cpu1 - cpu0
    return {"sessions": sessions, "frames": frames, "skipped": skipped,
            "us_per_frame": round(cpu / max(frames, 1) * 1e6, 1),
            "core_share": round(cpu / (wall1 - wall0), 3),
            "max_lateness_ms_median": round(lateness[len(lateness) // 2] * 1000, 2),
            "max_lateness_ms": round(lateness[-1] * 1000, 2)}


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, nargs="*")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--together", action="store_true", help="all N PLAYs at the same instant (else spread "
                   "over one frame interval)")
    p.add_argument("--profile", action="store_true", help="print the Streamer thread's cProfile top lines "
                   "(the profiler's own cost inflates the CPU figures of that run)")
    args = p.parse_args()
    counts = args.sessions or ([20] if args.quick else [100, 400])
    seconds = 1.0 if args.quick else args.seconds
    media = MediaLibrary(_common.movie_dir(640, 480, 200, 75), fps=20.0)
    profiles: list | None = [] if args.profile else None
    rows = [measure(media, n, seconds, profiles, args.together) for n in counts]
    _common.emit("Figure 3c: Streamer CPU per frame (in-process, UDP, 640x480 ~20 KB frames, 20 fps)", rows,
                 ["sessions", "frames", "skipped", "us_per_frame", "core_share", "max_lateness_ms_median",
                  "max_lateness_ms"], args.json,
                 {"window": f"{seconds:.0f} s after 1 s of steady state; CPU = the Streamer thread's pthread clock"})
    for n, text in zip(counts, profiles or []):
        print(f"# cProfile of the Streamer thread, {n} sessions (tottime order):")
        for line in text.strip().splitlines():
            if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced")):
                print("#   " + line.strip())


if __name__ == "__main__":
    main()
