#!/usr/bin/env python3
"""Capture real RTP/JPEG packets from ffmpeg and GStreamer into test fixtures.

Each sender is started with its RTP output aimed at a UDP socket bound here on 127.0.0.1
(port 0, so the kernel picks a free one); every datagram is stored as received. At the same
time the sender writes the very JPEG frames it packetized, which the tests use as the
reference decode.

Fixture format (``*.rtp``): a sequence of records, each a 4-byte big-endian length followed
by one whole RTP packet (RFC 3550 header + RFC 2435 payload), in arrival order.
Reference frames (``*.mjpeg``): the sender's JPEG frames concatenated (VideoStream reads it).

    python3 tools/capture_rtp.py            # (re)writes tests/fixtures/{ffmpeg,gstreamer}-*.{rtp,mjpeg}
    python3 tools/capture_rtp.py dri        # only tests/fixtures/restart-dri-160x120.jpg
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
_RECORD = struct.Struct("!I")


def write_records(path: str, packets: list[bytes]) -> None:
    """Store packets as 4-byte big-endian length + bytes records."""
    with open(path, "wb") as f:
        for packet in packets:
            f.write(_RECORD.pack(len(packet)) + packet)


def read_records(path: str) -> list[bytes]:
    """Read a file written by write_records(); raises ValueError if it is truncated."""
    with open(path, "rb") as f:
        data = f.read()
    packets, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError(f"{path}: truncated record header at {pos}")
        (length,) = _RECORD.unpack_from(data, pos)
        if pos + 4 + length > len(data):
            raise ValueError(f"{path}: truncated record at {pos}")
        packets.append(data[pos + 4:pos + 4 + length])
        pos += 4 + length
    return packets


def capture(command: list[str], timeout: float = 30.0, quiet: float = 1.0) -> list[bytes]:
    """Run ``command`` (``{port}`` replaced by a free local UDP port) and collect its datagrams.

    Stops once the sender has exited and no datagram came for ``quiet`` seconds, or after
    ``timeout`` seconds in all.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    argv = [a.replace("{port}", str(port)) for a in command]
    packets: list[bytes] = []
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        last = time.monotonic()
        while time.monotonic() < deadline:
            sock.settimeout(0.1)
            try:
                packets.append(sock.recv(65536))
                last = time.monotonic()
            except socket.timeout:
                if proc.poll() is not None and time.monotonic() - last > quiet:
                    break
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
        if proc.returncode:
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    return packets


def capture_ffmpeg(out_dir: str, frames: int = 5) -> str:
    """ffmpeg's RTP JPEG sender (rtpenc_jpeg.c); the tee muxer writes the same packets' frames."""
    name = os.path.join(out_dir, "ffmpeg-testsrc-320x240")
    reference = name + ".mjpeg"
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", str(frames),
        "-pix_fmt", "yuvj420p", "-c:v", "mjpeg", "-huffman", "default", "-q:v", "4",
        "-map", "0:v", "-f", "tee", f"[f=rtp]rtp://127.0.0.1:{{port}}|[f=mjpeg]{reference}",
    ]
    write_records(name + ".rtp", capture(command))
    return name


def capture_gstreamer(out_dir: str, frames: int = 5) -> str:
    """GStreamer's rtpjpegpay; a tee before it saves jpegenc's frames one file each."""
    name = os.path.join(out_dir, "gstreamer-videotestsrc-320x240")
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={frames}", "pattern=ball", "!",
            "video/x-raw,format=I420,width=320,height=240,framerate=10/1", "!",
            "jpegenc", "quality=85", "!", "tee", "name=t",
            "t.", "!", "queue", "!", "rtpjpegpay", "!", "udpsink", "host=127.0.0.1", "port={port}",
            "t.", "!", "queue", "!", "multifilesink", f"location={tmp}/frame%05d.jpg",
        ]
        write_records(name + ".rtp", capture(command))
        with open(name + ".mjpeg", "wb") as out:
            for path in sorted(glob.glob(os.path.join(tmp, "frame*.jpg"))):
                with open(path, "rb") as f:
                    out.write(f.read())
    return name


def make_dri_fixture(out_dir: str) -> str:
    """A JPEG with a DRI segment and restart markers, from ffmpeg's slice-threaded MJPEG encoder."""
    path = os.path.join(out_dir, "restart-dri-160x120.jpg")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=160x120", "-frames:v", "1",
                    "-pix_fmt", "yuvj420p", "-c:v", "mjpeg", "-huffman", "default", "-q:v", "3",
                    "-threads", "4", "-slices", "4", "-thread_type", "slice", "-f", "mjpeg", path],
                   check=True, timeout=60)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capture RTP/JPEG fixtures from ffmpeg and GStreamer")
    parser.add_argument("--out", default=FIXTURES)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("senders", nargs="*", default=["ffmpeg", "gstreamer", "dri"])
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for sender in args.senders:
        if sender == "dri":
            print(make_dri_fixture(args.out))
            continue
        program = {"ffmpeg": "ffmpeg", "gstreamer": "gst-launch-1.0"}[sender]
        if shutil.which(program) is None:
            print(f"{sender}: {program} not installed, skipped", file=sys.stderr)
            continue
        func = capture_ffmpeg if sender == "ffmpeg" else capture_gstreamer
        name = func(args.out, args.frames)
        packets = read_records(name + ".rtp")
        print(f"{name}.rtp: {len(packets)} packets, {sum(map(len, packets))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
