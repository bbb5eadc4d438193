#!/usr/bin/env python3
"""Capture real RTCP from ffmpeg and GStreamer into tests/fixtures/rtcp_*.bin.

One run per sender (ffmpeg ``-f rtp`` and a GStreamer rtpbin with rtpjpegpay). The sender
streams RTP/JPEG to a relay made of Python UDP sockets; the relay keeps the sender's RTCP
(SR + SDES, and SR + SDES + BYE at the end) and forwards RTP and RTCP to two receivers:
ffmpeg as an RTSP client of a minimal RTSP server in this script whose server_port is the
relay (ffmpeg sends RRs only as an RTSP client, and only every ~280 kB received, hence the
high-rate 640x480 stream), and a GStreamer rtpbin whose ``send_rtcp_src`` goes to a capture socket. Each datagram is
written as-is, one file per datagram:

    rtcp_<peer>_<sr|rr>_<n>.bin     (n = 0, 1, ... in arrival order; "last" for the final one
                                     when it differs from those)

Usage: python3 tools/capture_rtcp.py [--seconds 12] [--out tests/fixtures]
Loopback only; needs ffmpeg and gst-launch-1.0 on PATH.
"""

from __future__ import annotations

import argparse
import logging
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

log = logging.getLogger("capture_rtcp")

HOST = "127.0.0.1"
JPEG_CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26"
KEEP_FIRST = 3  # datagrams kept per stream besides the last one


def bind_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on an even port P and P + 1 (the RTP/RTCP convention, RFC 3550 §11)."""
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
        if port % 2 or port >= 65534:
            probe.close()
            continue
        odd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            odd.bind((HOST, port + 1))
        except OSError:
            probe.close()
            odd.close()
            continue
        return probe, odd
    raise OSError("no free even/odd UDP port pair on loopback")


def free_pair() -> int:
    """An even port whose pair is free right now (released for a child process to bind)."""
    a, b = bind_pair()
    port = a.getsockname()[1]
    a.close()
    b.close()
    return port


def sender_command(kind: str, port: int, seconds: float) -> list[str]:
    if kind == "ffmpeg":
        return ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-re", "-f", "lavfi",
                "-i", f"testsrc=size=640x480:rate=25", "-t", str(seconds),
                "-c:v", "mjpeg", "-q:v", "2", "-huffman", "default", "-force_duplicated_matrix", "1",
                "-pix_fmt", "yuvj420p",
                "-f", "rtp", "-rtpflags", "send_bye", "-ssrc", "305419896",
                "-cname", "ffmpeg-sender@capture", f"rtp://{HOST}:{port}"]
    frames = int(seconds * 25)
    return ["gst-launch-1.0", "-q", "-e", "rtpbin", "name=rb",
            "videotestsrc", "is-live=true", f"num-buffers={frames}", "!",
            "video/x-raw,format=I420,width=640,height=480,framerate=25/1", "!",
            "jpegenc", "quality=95", "!",
            "rtpjpegpay", "!", "rb.send_rtp_sink_0",
            "rb.send_rtp_src_0", "!", "udpsink", f"host={HOST}", f"port={port}",
            "rb.send_rtcp_src_0", "!", "udpsink", f"host={HOST}", f"port={port + 1}",
            "sync=false", "async=false"]


class MiniRtspServer(threading.Thread):
    """Just enough RTSP (RFC 2326) for ffmpeg's client to SETUP and PLAY over UDP.

    ffmpeg sends receiver reports only as an RTSP client (not when it reads an SDP file), and
    it sends them to the server_port + 1 we announce: the relay's RTCP socket.
    """

    def __init__(self, server_ports: tuple[int, int]) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.server_ports = server_ports
        self.client_port: int | None = None
        self.playing = threading.Event()

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/capture"

    def run(self) -> None:
        self.listener.settimeout(30)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        buf = b""
        with conn:
            conn.settimeout(60)
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(self.answer(head.decode("latin-1")))

    def answer(self, head: str) -> bytes:
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        extra = ""
        body = ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
        elif method == "DESCRIBE":
            body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=capture\r\nc=IN IP4 0.0.0.0\r\n"
                    "t=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n"
                    "a=rtpmap:26 JPEG/90000\r\n")
            extra = (f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\n"
                     f"Content-Length: {len(body)}\r\n")
        elif method == "SETUP":
            for part in headers.get("transport", "").split(";"):
                if part.startswith("client_port="):
                    self.client_port = int(part.split("=")[1].split("-")[0])
            rtp, rtcp = self.server_ports
            extra = (f"Transport: RTP/AVP/UDP;unicast;client_port={self.client_port}-"
                     f"{(self.client_port or 0) + 1};server_port={rtp}-{rtcp};ssrc=12345678\r\n"
                     "Session: 4242;timeout=60\r\n")
        elif method in ("PLAY", "TEARDOWN"):
            extra = "Session: 4242\r\n"
            if method == "PLAY":
                self.playing.set()
        return (f"RTSP/1.0 200 OK\r\nCSeq: {headers.get('cseq', '0')}\r\n{extra}\r\n"
                f"{body}").encode()


def ffmpeg_receiver(url: str) -> list[str]:
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-rtsp_transport", "udp", "-i", url, "-f", "null", "-"]


def gst_receiver(port: int, rr_port: int) -> list[str]:
    return ["gst-launch-1.0", "-q", "rtpbin", "name=rb",
            "udpsrc", f"address={HOST}", f"port={port}", f"caps={JPEG_CAPS}", "!",
            "rb.recv_rtp_sink_0", "rb.", "!", "rtpjpegdepay", "!", "fakesink",
            "udpsrc", f"address={HOST}", f"port={port + 1}", "caps=application/x-rtcp", "!",
            "rb.recv_rtcp_sink_0",
            "rb.send_rtcp_src_0", "!", "udpsink", f"host={HOST}", f"port={rr_port}",
            "sync=false", "async=false"]


def run(sender: str, seconds: float) -> dict[str, list[bytes]]:
    """One capture run; returns datagrams per stream name."""
    in_rtp, in_rtcp = bind_pair()        # the sender sends here
    out_rtp, out_rtcp = bind_pair()      # the relay forwards from here; ffmpeg's RRs come back
    gst_rr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gst_rr.bind((HOST, 0))
    rtsp = MiniRtspServer((out_rtp.getsockname()[1], out_rtcp.getsockname()[1]))
    rtsp.start()
    gst_port = free_pair()
    receivers = [
        subprocess.Popen(ffmpeg_receiver(rtsp.url), stdin=subprocess.DEVNULL),
        subprocess.Popen(gst_receiver(gst_port, gst_rr.getsockname()[1])),
    ]
    if not rtsp.playing.wait(15) or rtsp.client_port is None:
        raise RuntimeError("ffmpeg did not SETUP/PLAY")
    dests = [(HOST, rtsp.client_port), (HOST, gst_port)]
    time.sleep(1.0)  # let GStreamer bind its ports before the first packet
    send = subprocess.Popen(sender_command(sender, in_rtp.getsockname()[1], seconds),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    streams: dict[str, list[bytes]] = {f"{sender}_sr": [], "ffmpeg_rr": [], "gst_rr": []}
    sel = selectors.DefaultSelector()
    for sock in (in_rtp, in_rtcp, out_rtp, out_rtcp, gst_rr):
        sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds + 20
    sender_done_at: float | None = None
    try:
        while time.monotonic() < deadline:
            if sender_done_at is None and send.poll() is not None:
                sender_done_at = time.monotonic()
            if sender_done_at is not None and time.monotonic() - sender_done_at > 2.0:
                break
            for key, _ in sel.select(timeout=0.2):
                sock = cast(socket.socket, key.fileobj)   # registered above: sockets only
                data, addr = sock.recvfrom(65536)
                if sock is in_rtp:
                    for d in dests:
                        out_rtp.sendto(data, d)
                elif sock is in_rtcp:
                    streams[f"{sender}_sr"].append(data)
                    for host, port in dests:
                        out_rtcp.sendto(data, (host, port + 1))
                elif sock is out_rtcp:
                    streams["ffmpeg_rr"].append(data)
                elif sock is gst_rr:
                    streams["gst_rr"].append(data)
                # out_rtp only gets ffmpeg's 12-octet NAT punch packet: dropped
    finally:
        for proc in [send, *receivers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in [send, *receivers]:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for sock in (in_rtp, in_rtcp, out_rtp, out_rtcp, gst_rr):
            sock.close()
        rtsp.listener.close()
    return streams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                             / "tests" / "fixtures"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for program in ("ffmpeg", "gst-launch-1.0"):
        if shutil.which(program) is None:
            log.error("%s is not installed", program)
            return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for sender in ("ffmpeg", "gst"):
        streams = run(sender, args.seconds)
        for name, datagrams in streams.items():
            prefix = name if name.endswith("_sr") else f"{name}_from_{sender}"
            log.info("%s: %d datagrams", prefix, len(datagrams))
            if not datagrams:
                continue
            keep = {str(i): d for i, d in enumerate(datagrams[:KEEP_FIRST])}
            if datagrams[-1] not in keep.values():
                keep["last"] = datagrams[-1]
            for tag, data in keep.items():
                (out / f"rtcp_{prefix}_{tag}.bin").write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
