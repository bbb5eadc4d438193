"""A live MJPEG source for the tests: frames of a .Mjpeg file as concatenated JPEG on stdout.

    python3 tests/live_feeder.py movie.Mjpeg --fps 20 [--frames N] [--count N] [--garbage]

Frames 0..N-1 of the file are written in a loop (--frames, default all) at --fps; with
--count the program exits after that many frames (a source that dies); --garbage writes
text that is not JPEG instead (a broken command).  Each write is one whole frame.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from VideoStream import VideoStream  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("movie")
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--frames", type=int, default=0)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--garbage", action="store_true")
    args = p.parse_args()
    out = sys.stdout.buffer
    if args.garbage:
        line = b"this is not a JPEG, just a program printing text\n" * 20
        while True:
            out.write(line)
            out.flush()
            time.sleep(1.0 / args.fps)
    stream = VideoStream(args.movie)
    frames = [stream.frame(i) for i in range(args.frames or stream.frame_count)]
    start = time.monotonic()
    sent = 0
    try:
        while not args.count or sent < args.count:
            out.write(frames[sent % len(frames)])
            out.flush()
            sent += 1
            delay = start + sent / args.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except BrokenPipeError:
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
