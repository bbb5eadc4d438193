#!/usr/bin/env python3
"""Figure 2: RFC 2435 packetize and depacketize throughput (MB/s of JPEG) at three sizes.

Frames are the sample scene of tools/make_movie.py (baseline, 4:2:0, quality 80), 20 different
frames per size, 1400-byte payloads.  packetize = RtpJpeg.packetize(frame) (parses the JPEG
headers each time, as the server does once per frame); depacketize = JpegDepacketizer.push() of
every payload in order until the frame comes out (JFIF header rebuilt, as a player does).

    python3 bench/rtp_jpeg.py            # ~10 s
    python3 bench/rtp_jpeg.py --quick    # ~2 s
"""

from __future__ import annotations

import _common
import make_movie
from RtpJpeg import JpegDepacketizer, packetize

SIZES = [(384, 288), (640, 480), (1280, 720)]


def main() -> None:
    args = _common.parser(__doc__.split("\n")[0]).parse_args()
    frames_per_size = 5 if args.quick else 20
    repeat = 3 if args.quick else 7
    rows = []
    for width, height in SIZES:
        frames = make_movie.make_frames(size=(width, height), frames=frames_per_size, quality=80)
        total = sum(map(len, frames))
        packets = [packetize(f, 1400) for f in frames]
        number = max(1, (200 if args.quick else 2000) * 20000 // (total // len(frames)) // len(frames))

        def pack(n: int) -> None:
            for _ in range(n):
                for f in frames:
                    packetize(f, 1400)

        def unpack(n: int) -> None:
            ts = 0
            for _ in range(n):
                d = JpegDepacketizer()
                for plist in packets:
                    ts += 4500
                    last = len(plist) - 1
                    out = None
                    for i, p in enumerate(plist):
                        out = d.push(p, ts, i == last)
                    assert out is not None

        out_check = JpegDepacketizer()
        for i, p in enumerate(packets[0]):
            got = out_check.push(p, 0, i == len(packets[0]) - 1)
        assert got is not None and got.startswith(b"\xff\xd8")
        t_pack = _common.best_of(pack, number, repeat)
        t_unpack = _common.best_of(unpack, number, repeat)
        rows.append({
            "size": f"{width}x{height}", "frame_bytes": total // len(frames),
            "packets_per_frame": round(sum(map(len, packets)) / len(packets), 1),
            "packetize_MBps": round(total / t_pack / 1e6, 1),
            "packetize_us_per_frame": round(t_pack / len(frames) * 1e6, 1),
            "depacketize_MBps": round(total / t_unpack / 1e6, 1),
            "depacketize_us_per_frame": round(t_unpack / len(frames) * 1e6, 1),
        })
    _common.emit("Figure 2: RFC 2435 packetize / depacketize throughput", rows,
                 ["size", "frame_bytes", "packets_per_frame", "packetize_MBps", "packetize_us_per_frame",
                  "depacketize_MBps", "depacketize_us_per_frame"], args.json,
                 {"method": f"best of {repeat}, {frames_per_size} frames per size, quality 80, 1400-byte payloads"})


if __name__ == "__main__":
    main()
