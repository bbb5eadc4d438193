"""The player against real peers: a GStreamer RTSP server and an ffmpeg RTP sender (--sdp).

Frames received must equal frames sent, and decode to the same pixels as the same encoder's
output written to a file (the RFC 2435 reassembly rebuilds the identical JPEG scan).
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media import pixels
from VideoStream import VideoStream

ROOT = Path(__file__).resolve().parent.parent


SYSTEM_PYTHON = "/usr/bin/python3"


def have_gst_rtsp_server() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} missing"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer','1.0'); "
                        "from gi.repository import GstRtspServer"], capture_output=True, timeout=30)
    return None if r.returncode == 0 else "python3-gi with GstRtspServer not importable"


def play(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, dict]:
    stats = Path(args[args.index("--stats-json") + 1])
    r = subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), *args], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r, json.loads(stats.read_text())


class GstServer:
    """tests/gst_rtsp_server.py under the system python, stopped by its own pid."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "gst_rtsp_server.py"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()      # bounded: the script prints PORT or exits
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"GStreamer server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def gst_server():
    reason = have_gst_rtsp_server()
    if reason:
        print(f"SKIP reason: {reason}")
        pytest.skip(reason)
    servers = []

    def start(*args: str) -> GstServer:
        s = GstServer(*args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def gst_reference(tmp_path: Path, n: int, w: int, h: int, pattern: str, quality: int) -> VideoStream:
    out = tmp_path / "ref.mjpeg"
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={n}", f"pattern={pattern}", "!",
                    f"video/x-raw,format=I420,width={w},height={h},framerate=25/1", "!",
                    "jpegenc", f"quality={quality}", "!", "filesink", f"location={out}"],
                   check=True, capture_output=True, timeout=60)
    return VideoStream(out)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_gstreamer_rtsp_server_320x240(gst_server, tmp_path, transport):
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 missing")
    n = 60
    srv = gst_server("--frames", str(n), "--width", "320", "--height", "240")
    save, stats = tmp_path / "got.Mjpeg", tmp_path / "s.json"
    r, st = play(f"rtsp://127.0.0.1:{srv.port}/test", "--headless", "--transport", transport,
                 "--save", str(save), "--stats-json", str(stats), "--idle-timeout", "2")
    assert st["frames_completed"] == n, r.stderr
    assert (st["frames_dropped"], st["packets_lost"]) == (0, 0)
    got = VideoStream(save)
    ref = gst_reference(tmp_path, n, 320, 240, "smpte", 85)
    assert len(got) == len(ref) == n
    for i in range(n):
        assert pixels(got.frame(i)) == pixels(ref.frame(i)), f"frame {i} differs from jpegenc's"


def test_gstreamer_rtsp_server_720p_frames_over_64k(gst_server, tmp_path):
    n = 25
    srv = gst_server("--frames", str(n), "--width", "1280", "--height", "720", "--pattern", "snow",
                     "--quality", "95")
    save, stats = tmp_path / "got.Mjpeg", tmp_path / "s.json"
    r, st = play(f"rtsp://127.0.0.1:{srv.port}/test", "--headless", "--save", str(save),
                 "--stats-json", str(stats), "--idle-timeout", "2")
    assert st["frames_completed"] == n, r.stderr
    assert (st["frames_dropped"], st["packets_lost"]) == (0, 0)
    got = VideoStream(save)
    assert len(got) == n
    sizes = [len(got.frame(i)) for i in range(n)]
    assert min(sizes) > 64 * 1024
    for i in range(n):
        _, size, data = pixels(got.frame(i))
        assert size == (1280, 720)
        assert len(set(data[:30000])) > 100          # snow: noisy pixels, not a blank frame


def free_even_udp_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
        if p % 2 == 0 and p < 65534:
            return p
    raise RuntimeError("no free even UDP port")


def udp_port_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def test_ffmpeg_rtp_sender_via_sdp(tmp_path):
    if shutil.which("ffmpeg") is None:
        print("SKIP reason: ffmpeg missing")
        pytest.skip("ffmpeg missing")
    n = 50
    port = free_even_udp_port()
    sdp = tmp_path / "x.sdp"
    enc = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-frames:v", str(n), "-pix_fmt", "yuvj420p",
           "-c:v", "mjpeg", "-huffman", "default"]
    # The SDP first (ffmpeg writes it as it starts sending), so the player is listening before the stream.
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25", "-frames:v", "1", "-pix_fmt", "yuvj420p", "-c:v", "mjpeg",
                    "-huffman", "default", "-f", "rtp", f"rtp://127.0.0.1:{port}", "-sdp_file", str(sdp)],
                   check=True, capture_output=True, timeout=60)
    assert f"m=video {port} RTP/AVP 26" in sdp.read_text()
    save, stats = tmp_path / "got.Mjpeg", tmp_path / "s.json"
    player = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), "--sdp", str(sdp), "--headless",
                               "--idle-timeout", "1.5", "--save", str(save), "--stats-json", str(stats)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 10
        while not udp_port_bound(port):
            assert time.monotonic() < deadline and player.poll() is None, "player did not bind the SDP port"
            time.sleep(0.05)
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", *enc, "-f", "rtp",
                        f"rtp://127.0.0.1:{port}"], check=True, capture_output=True, timeout=60)
        _, err = player.communicate(timeout=30)
    finally:
        if player.poll() is None:
            player.kill()
            player.wait(timeout=5)
    assert player.returncode == 0, err
    st = json.loads(stats.read_text())
    assert st["frames_completed"] == n, err
    assert (st["frames_dropped"], st["packets_lost"]) == (0, 0)
    ref_path = tmp_path / "ref.mjpeg"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *enc, "-f", "mjpeg", str(ref_path)],
                   check=True, capture_output=True, timeout=60)
    ref, got = VideoStream(ref_path), VideoStream(save)
    assert len(ref) == len(got) == n
    for i in range(n):
        assert pixels(got.frame(i)) == pixels(ref.frame(i)), f"frame {i} differs from ffmpeg's own JPEG"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_gstreamer_rtsp_server_receives_our_receiver_reports(gst_server, tmp_path, transport):
    """Our RR + SDES + XR compounds reach gst-rtsp-server's rtpbin: it reports a block from our
    SSRC (no loss, our extended highest sequence), logs nothing, and the session stays alive."""
    srv = gst_server("--frames", "250", "--report-rtcp")
    stats = tmp_path / "s.json"
    r, st = play(f"rtsp://127.0.0.1:{srv.port}/test", "--headless", "--transport", transport,
                 "--duration", "5", "--rtcp-min", "1", "--stats-json", str(stats))
    assert st["end_reason"] == "--duration 5 s reached", r.stderr       # not "connection closed"
    assert st["frames_completed"] >= 100 and st["packets_lost"] == 0
    assert st["sr_received"] >= 1 and st["rtcp_errors"] == 0 and st["sender_packets"] > 0
    srv.stop()
    out, err = srv.proc.stdout.read(), srv.proc.stderr.read()
    rrs = [dict(kv.split("=") for kv in line.split()[1:]) for line in out.splitlines()
           if line.startswith("RTCP-RR ")]
    print(f"\nGStreamer received {len(rrs)} RRs ({st['rr_sent']} sent); last: {rrs[-1] if rrs else None}")
    assert len(rrs) >= 2, out
    assert {int(rr["ssrc"]) for rr in rrs} == {st["our_ssrc"]}
    assert all(rr["fractionlost"] == "0" and rr["packetslost"] == "0" for rr in rrs)
    assert int(rrs[-1]["exthighestseq"]) > int(rrs[0]["exthighestseq"])
    assert int(rrs[-1]["lsr"]) != 0                     # we echoed its SR (LSR/DLSR)
    bad = [line for line in err.splitlines() if any(w in line for w in ("WARN", "ERROR", "CRITICAL", "rtcp"))]
    assert not bad, err
