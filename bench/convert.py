#!/usr/bin/env python3
"""Figure 7: movies RFC 2435 cannot carry: conversion cost, first-PLAY delay, pacing, memory.

Four measurements, side by side with a movie that needs no conversion:

* cost: JpegConvert.to_rfc2435 per frame for each kind of source (384x288 and larger 4:4:4),
  and fit_size (a lab session's 1280x720 frame to <= 20,000 bytes), median of N frames;
* first PLAY: a fresh in-process server, a 500-frame 384x288 4:4:4 movie never opened before;
  DESCRIBE -> SETUP -> PLAY over RTSP/UDP, then the time from sending PLAY (and from sending
  DESCRIBE, which opens the movie) to the first RTP packet of frame 0; five fresh servers;
* pacing: the Streamer in-process with N UDP sessions of the 4:4:4 movie (frames converted
  by the movie's converter thread while they play) against the same N of the 4:2:0 movie:
  per-session max lateness, the frames the Streamer had to convert itself (inline) and the
  time sessions waited for the converter (waited_ms, all sessions together);
* memory: the server process's RSS after opening and playing 200 frames of a large 4:4:4
  movie (default 256 MB; --big-mb) against its size, in a separate process.

    python3 bench/convert.py                 # everything (~1 min)
    python3 bench/convert.py --quick         # small counts, 64 MB movie
    python3 bench/convert.py --big-mb 1024   # the 1 GB case
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
import statistics
import subprocess
import sys
import time

import _common
from JpegConvert import fit_size, to_rfc2435
from media import UNCARRIABLE, pillow_jpeg, uncarriable_frames
from RtpPacket import RtpPacket

MOVIE_FRAMES = 500


def media_folder(kind: str, frames: int = MOVIE_FRAMES, size=(384, 288)) -> str:
    folder = os.path.join(_common.MEDIA_CACHE, f"convert-{kind}-{size[0]}x{size[1]}-{frames}")
    path = os.path.join(folder, "bench.Mjpeg")
    if not os.path.exists(path):
        from VideoStream import write_mjpeg
        os.makedirs(folder, exist_ok=True)
        if kind == "420":
            import make_movie
            data = make_movie.make_frames(size=size, frames=frames)
        else:
            data = uncarriable_frames(kind, frames, size)
        write_mjpeg(path + ".tmp", data)
        os.replace(path + ".tmp", path)
    return folder


def cost_rows(count: int) -> list:
    import make_movie
    rows = []
    cases = [(kind, (384, 288)) for kind in UNCARRIABLE] + [("444", (640, 480)), ("444", (1280, 720))]
    for kind, size in cases:
        frames = uncarriable_frames(kind, count, size)
        times = []
        for frame in frames:
            t0 = time.perf_counter()
            out = to_rfc2435(frame)
            times.append(time.perf_counter() - t0)
        rows.append({"what": "to_rfc2435", "source": f"{kind} {size[0]}x{size[1]}",
                     "bytes_in": int(statistics.median(map(len, frames))), "bytes_out": len(out),
                     "ms_per_frame": round(statistics.median(times) * 1000, 2)})
    background = make_movie._background((1280, 720))
    frames = [pillow_jpeg(make_movie.render_frame(i, (1280, 720), count, background), quality=95)
              for i in range(count)]
    times = []
    for frame in frames:
        t0 = time.perf_counter()
        out = fit_size(frame, 20000)
        times.append(time.perf_counter() - t0)
    rows.append({"what": "fit_size 20000", "source": "420 q95 1280x720",
                 "bytes_in": int(statistics.median(map(len, frames))), "bytes_out": len(out),
                 "ms_per_frame": round(statistics.median(times) * 1000, 2)})
    return rows


def first_play(kind: str) -> dict:
    """One fresh server: ms from PLAY (and from DESCRIBE) to the first RTP packet."""
    from conftest import RunningServer
    from rtsp_tools import RtspConn
    folder = media_folder(kind)
    srv = RunningServer(folder)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(5)
    port = rtp.getsockname()[1]
    try:
        conn = RtspConn(srv.port)
        url = srv.url("bench.Mjpeg")
        t_describe = time.perf_counter()
        assert conn.request("DESCRIBE", url).status == 200
        reply = conn.request("SETUP", url + "/trackID=0",
                             {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
        session = reply.headers["Session"].split(";")[0]
        t_play = time.perf_counter()
        assert conn.request("PLAY", url, {"Session": session}).status == 200
        RtpPacket.parse(rtp.recv(65536))
        t_first = time.perf_counter()
        conn.close()
    finally:
        rtp.close()
        srv.stop()
    return {"play_ms": (t_first - t_play) * 1000, "describe_ms": (t_first - t_describe) * 1000}


def first_play_rows(repeat: int) -> list:
    rows = []
    for kind in ("420", "444"):
        media_folder(kind)  # made before timing
        runs = [first_play(kind) for _ in range(repeat)]
        rows.append({"movie": f"{kind} 384x288 x{MOVIE_FRAMES}", "runs": repeat,
                     "play_to_rtp_ms_median": round(statistics.median(r["play_ms"] for r in runs), 2),
                     "play_to_rtp_ms_max": round(max(r["play_ms"] for r in runs), 2),
                     "describe_to_rtp_ms_median": round(statistics.median(r["describe_ms"] for r in runs), 2),
                     "describe_to_rtp_ms_max": round(max(r["describe_ms"] for r in runs), 2)})
    return rows


def pacing_rows(sessions: int, seconds: float) -> list:
    from MediaLibrary import MediaLibrary
    from RtspSession import State
    from Streamer import StreamSession, Streamer
    rows = []
    for kind in ("420", "444"):
        media = MediaLibrary(Path(media_folder(kind)), fps=20.0)
        movie = media.lookup("bench.Mjpeg")
        assert movie is not None, "media_folder() wrote bench.Mjpeg"
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtcp.bind(("127.0.0.1", 0))
        streamer = Streamer(rtp, rtcp, loop=True, rng=random.Random(1))
        streamer.start()
        rng = random.Random(2)
        playing = []
        for i in range(sessions):  # PLAYs one after another, each at a different frame of the movie
            s = StreamSession(f"{i:016x}", movie, rng)
            s.udp_dest = sink.getsockname()
            s.state = State.PLAYING
            s.position = (i * 97) % movie.frame_count
            streamer.add(s)
            movie.prepare(s.position, False, s.id)
            streamer.play(s)
            playing.append(s)
            time.sleep(0.05 / sessions)
        time.sleep(seconds)
        streamer.stop()
        streamer.join(2.0)
        for sock in (rtp, rtcp, sink):
            sock.close()
        lateness = sorted(s.max_lateness for s in playing)
        rows.append({"movie": f"{kind} 384x288", "sessions": sessions,
                     "frames": sum(s.frames_sent for s in playing),
                     "skipped": sum(s.frames_skipped for s in playing),
                     "converted": movie.converted_frames, "inline": movie.inline_conversions,
                     "waited_ms": round(sum(s.frames_waited for s in playing) * 5),
                     "max_lateness_ms_median": round(lateness[len(lateness) // 2] * 1000, 2),
                     "max_lateness_ms": round(lateness[-1] * 1000, 2)})
        media.close()
    return rows


MEMORY_CHILD = r"""
import os, sys, time
sys.path[:0] = sys.argv[3].split(os.pathsep)
from MediaLibrary import MediaLibrary
def rss():  # heap (anonymous) and file-backed (the mapped movie: page cache the kernel can drop)
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["RssAnon"].split()[0]), int(fields["RssFile"].split()[0])
before = rss()
media = MediaLibrary(sys.argv[1], fps=20.0)
movie = media.lookup(sys.argv[2])
opened = rss()
for i in range(0, movie.frame_count, max(1, movie.frame_count // 200)):  # 200 frames spread over it
    movie.train(i, False, "r")
played = rss()
print(*before, *opened, *played, movie.frame_count, movie.converted_frames, flush=True)
media.close()
"""


def memory_row(megabytes: int) -> dict:
    folder = os.path.join(_common.MEDIA_CACHE, f"convert-big-{megabytes}MB")
    path = os.path.join(folder, "big.Mjpeg")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        frames = uncarriable_frames("444", 50, (640, 480))
        with open(path + ".tmp", "wb") as f:
            written = 0
            while written < megabytes << 20:
                for frame in frames:
                    f.write(b"%05d" % len(frame) + frame)
                    written += 5 + len(frame)
        os.replace(path + ".tmp", path)
    paths = os.pathsep.join([_common.REPO, os.path.join(_common.REPO, "tests"), os.path.join(_common.REPO, "tools")])
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, folder, "big.Mjpeg", paths], capture_output=True,
                         text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    values = list(map(int, out.stdout.split()))
    (anon0, file0, anon1, file1, anon2, file2, frames, converted) = values
    return {"file_MiB": round(os.path.getsize(path) / 2**20), "frames": frames,
            "heap_before_MiB": round(anon0 / 1024, 1), "heap_opened_MiB": round(anon1 / 1024, 1),
            "heap_after_200_MiB": round(anon2 / 1024, 1), "mapped_after_200_MiB": round(file2 / 1024, 1),
            "converted": converted, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=20, help="sessions in the pacing run (default 20)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the pacing run (default 10 s)")
    p.add_argument("--big-mb", type=int, default=256, help="size of the large movie (default 256 MB)")
    args = p.parse_args()
    quick = args.quick
    _common.emit("Figure 7a: conversion cost per frame (JpegConvert)", cost_rows(3 if quick else 20),
                 ["what", "source", "bytes_in", "bytes_out", "ms_per_frame"], args.json)
    _common.emit("Figure 7b: first PLAY of a movie never opened, to the first RTP packet",
                 first_play_rows(1 if quick else 5),
                 ["movie", "runs", "play_to_rtp_ms_median", "play_to_rtp_ms_max", "describe_to_rtp_ms_median",
                  "describe_to_rtp_ms_max"], args.json)
    _common.emit("Figure 7c: Streamer pacing while the converter works (in-process, UDP, 20 fps)",
                 pacing_rows(5 if quick else args.sessions, 2.0 if quick else args.seconds),
                 ["movie", "sessions", "frames", "skipped", "converted", "inline", "waited_ms", "max_lateness_ms_median",
                  "max_lateness_ms"], args.json)
    _common.emit("Figure 7d: server RSS with a large 4:4:4 movie (file mapped, converted ahead)",
                 [memory_row(64 if quick else args.big_mb)],
                 ["file_MiB", "frames", "heap_before_MiB", "heap_opened_MiB", "heap_after_200_MiB",
                  "mapped_after_200_MiB", "converted", "seconds"],
                 args.json)


if __name__ == "__main__":
    main()
