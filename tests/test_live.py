"""Live sources end to end: a command, stdin and an HTTP MJPEG camera, each played by ffmpeg,
GStreamer and our player at once; a source that dies; a viewer that stops reading; bad input.

Every source sends known frames (the first LOOP frames of movie.Mjpeg, in a loop), so each
frame a client decodes is identified by its pixels: the test checks it is a source frame and
that the frames a client got are consecutive (a shared live stream joins at the next frame
and then misses nothing on loopback).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import MOVIE, ROOT
from LiveReader import LiveFeed
from LiveSource import parse_live_spec
from MediaLibrary import MediaLibrary
from RtpJpeg import JpegDepacketizer
from RtpPacket import RtpPacket
from media import split_jpegs
from rtsp_tools import RtpReceiver, RtspConn, communicate, gst_exit_ok
from Server import RtspServer
import RtspServerProtocol
import ServerWorker
from ServerWorker import ServerConfig
from VideoStream import VideoStream

FFMPEG = shutil.which("ffmpeg")
GST = shutil.which("gst-launch-1.0")
FEEDER = str(Path(__file__).resolve().parent / "live_feeder.py")
LOOP = 100  # the sources loop over this many frames of movie.Mjpeg
FPS = 20
WANT = 30  # frames each client takes (1.5 s of stream)


def digest(jpeg: bytes) -> str:
    return hashlib.sha1(Image.open(io.BytesIO(jpeg)).convert("RGB").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def source_frames():
    stream = VideoStream(MOVIE)
    frames = [stream.frame(i) for i in range(LOOP)]
    return frames, {digest(f): i for i, f in enumerate(frames)}


def check_consecutive(received, index_of, what, want=WANT):
    """Every received frame is a source frame, and they follow each other (mod LOOP)."""
    assert len(received) >= want, f"{what}: {len(received)} frames, wanted {want}"
    indexes = []
    for n, jpeg in enumerate(received):
        key = digest(jpeg)
        assert key in index_of, f"{what}: frame {n} is not a source frame"
        indexes.append(index_of[key])
    gaps = [(a, b) for a, b in zip(indexes, indexes[1:]) if b != (a + 1) % LOOP]
    assert not gaps, f"{what}: frames not consecutive at {gaps[:5]} (of {len(indexes)})"
    return indexes




# ------------------------------------------------------------------ an HTTP MJPEG camera
class Camera(http.server.ThreadingHTTPServer):
    """multipart/x-mixed-replace at FPS on 127.0.0.1, as IP cameras serve it.  Paths:
    /video (good), /badboundary (announces one boundary, sends another),
    /huge (a 10 MB part after the fifth frame, then good frames)."""

    daemon_threads = True

    def __init__(self, frames):
        self.frames = frames
        super().__init__(("127.0.0.1", 0), CameraHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/video"):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def stop(self):
        self.shutdown()
        self.server_close()


class CameraHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        announced = sent = "camboundary"
        if self.path == "/badboundary":
            sent = "otherboundary"
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={announced}")
        self.end_headers()
        frames = self.server.frames
        start = time.monotonic()
        n = 0
        try:
            while True:
                if self.path == "/huge" and n == 5:
                    body = b"\xff\xd8" + bytes(10 << 20)
                else:
                    body = frames[n % len(frames)]
                self.wfile.write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                 % (sent.encode(), len(body)) + body + b"\r\n")
                n += 1
                delay = start + n / FPS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


@pytest.fixture(scope="module")
def camera(source_frames):
    cam = Camera(source_frames[0])
    yield cam
    cam.stop()


def feeder_cmd(*extra):
    return " ".join([sys.executable, FEEDER, str(MOVIE), "--fps", str(FPS), "--frames", str(LOOP), *extra])


# ------------------------------------------------------------------ server as a program
@pytest.fixture(scope="module")
def live_server(camera, tmp_path_factory):
    """Server.py with all three kinds of source: cmd (a command), pipe (its stdin), cam (HTTP)."""
    folder = tmp_path_factory.mktemp("live")
    feeder = subprocess.Popen([sys.executable, FEEDER, str(MOVIE), "--fps", str(FPS), "--frames", str(LOOP)],
                              stdout=subprocess.PIPE)
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "Server.py"), "0", "--host", "127.0.0.1", "--media-dir", str(folder),
         "--live", f"cmd={feeder_cmd()}", "--live", "pipe=-", "--live", f"cam={camera.url()}"],
        stdin=feeder.stdout, stderr=log, cwd=str(ROOT))
    feeder.stdout.close()
    port = None
    deadline = time.monotonic() + 15
    while port is None and time.monotonic() < deadline:
        for line in (folder / "server.log").read_text().splitlines():
            if "on RTSP port" in line:
                port = int(line.split("on RTSP port ")[1].split()[0])
        time.sleep(0.05)
    assert port, (folder / "server.log").read_text()
    # every source has its first picture before the clients start (a loaded machine may take
    # longer than a DESCRIBE's 5 s wait to start the feeder processes)
    for name in ("cmd", "pipe", "cam"):
        while True:
            conn = RtspConn(port, timeout=10)
            status = conn.request("DESCRIBE", f"rtsp://127.0.0.1:{port}/{name}").status
            conn.close()
            if status == 200:
                break
            assert time.monotonic() < deadline + 30, f"{name}: DESCRIBE {status}: " + \
                (folder / "server.log").read_text()[-2000:]
    yield port, folder
    server.terminate()
    server.wait(timeout=10)
    feeder.kill()
    feeder.wait()
    log.close()


def run(cmd, timeout=40):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)


@pytest.mark.skipif(FFMPEG is None or GST is None, reason="ffmpeg/GStreamer missing (tools/test.sh installs them)")
@pytest.mark.parametrize("name", ["cmd", "pipe", "cam"])
def test_live_source_plays_in_ffmpeg_gstreamer_and_our_player(live_server, source_frames, tmp_path, name):
    port, _ = live_server
    _, index_of = source_frames
    url = f"rtsp://127.0.0.1:{port}/{name}"
    out = tmp_path / "ffmpeg.mjpeg"
    jobs = {
        "ffmpeg": [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                   "-map", "0", "-c", "copy", "-frames:v", str(WANT), "-f", "mjpeg", "-y", str(out)],
        "gst": [GST, "-q", "rtspsrc", f"location={url}", "protocols=udp", "!", "rtpjpegdepay", "!",
                "identity", f"eos-after={WANT + 1}", "!", "multifilesink", f"location={tmp_path}/g%05d.jpg"],
        "player": [sys.executable, str(ROOT / "ClientLauncher.py"), url, "--headless", "--duration", "2.5",
                   "--save", str(tmp_path / "player.Mjpeg"), "--stats-json", str(tmp_path / "stats.json")],
    }
    procs = {k: subprocess.Popen(v, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
             for k, v in jobs.items()}  # all three at once: one shared source
    results = {}
    for k, proc in procs.items():
        _, err = communicate(proc, 40)
        results[k] = (proc.returncode, err)
    for k, (code, err) in results.items():
        assert (gst_exit_ok(code, err) if k == "gst" else code == 0), f"{k}: exit {code}: {err[-2000:]}"
    got = {
        "ffmpeg": split_jpegs(out.read_bytes()),
        "gst": [f.read_bytes() for f in sorted(tmp_path.glob("g*.jpg"))],
        "player": [VideoStream(tmp_path / "player.Mjpeg").frame(i)
                   for i in range(VideoStream(tmp_path / "player.Mjpeg").frame_count)],
    }
    for k, frames in got.items():
        check_consecutive(frames, index_of, f"{name} in {k}")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["duration"] is None  # the player saw a live stream: no duration
    print(f"{name}: frames decoded ffmpeg {len(got['ffmpeg'])}, gst {len(got['gst'])}, "
          f"player {len(got['player'])} (lost {stats['packets_lost']})")


# ------------------------------------------------------------------ server in this process
class LiveServer:
    def __init__(self, *specs, **feed_options):
        self.media = MediaLibrary(ROOT)
        self.feeds = {}
        for text in specs:
            feed = LiveFeed(parse_live_spec(text), **feed_options)
            self.media.add_live(feed)
            self.feeds[feed.name] = feed
        self.server = RtspServer("127.0.0.1", 0, ServerConfig(media=self.media))
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def sessions(self):
        with self.server.streamer._lock:
            return list(self.server.streamer._sessions.values())

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def live(request):
    servers = []

    def start(*specs, **options):
        server = LiveServer(*specs, **options)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


SOURCE_START = 30.0  # a source command's first frame may take this long on a loaded, cold machine


def interleaved_viewer(srv, name, rcvbuf=None):
    # The server gives a source with no picture yet 5 s, then 503 (tested on its own); these
    # tests are about what viewers get once it has one, so they wait for that first.
    feed = srv.feeds[name]
    assert feed.wait_first_frame(SOURCE_START), f"{name}: no frame in {SOURCE_START:.0f} s: {feed.describe_status()}"
    conn = RtspConn(srv.port)
    if rcvbuf:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    reply = conn.request("SETUP", srv.url(name) + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
    assert reply.status == 200, reply
    session = reply.headers["Session"].split(";")[0]
    reply = conn.request("PLAY", srv.url(name), {"Session": session, "Range": "npt=5-"})
    assert reply.status == 200
    assert reply.headers["Range"] == "npt=now-"  # the seek is ignored: live has no timeline
    return conn, session


def frames_of(frames, channel=0):
    depack = JpegDepacketizer()
    out = []
    for frame in frames:
        if frame.channel != channel:
            continue
        packet = RtpPacket.parse(frame.data)
        jpeg = depack.push(packet.payload, packet.rtp_timestamp, packet.marker)
        if jpeg is not None:
            out.append((packet.rtp_timestamp, jpeg))
    return out


def test_describe_live_has_no_range_and_timestamps_follow_arrival(live, source_frames):
    srv = live(f"cmd={feeder_cmd()}")
    conn = RtspConn(srv.port)
    reply = conn.request("DESCRIBE", srv.url("cmd"), {"Accept": "application/sdp"})
    assert reply.status == 200
    sdp = reply.body.decode()
    assert "a=range:npt=now-" in sdp and "a=x-dimensions:384,288" in sdp
    conn.close()
    conn, _ = interleaved_viewer(srv, "cmd")
    conn.read_interleaved(200, timeout=3)
    got = frames_of(conn.frames)
    check_consecutive([j for _, j in got], source_frames[1], "interleaved viewer", want=20)
    steps = [(b - a) & 0xFFFFFFFF for (a, _), (b, _) in zip(got, got[1:])]
    # the feeder sends at 20 fps: 4500 ticks of 90 kHz apart, within the arrival jitter
    assert 4000 < sum(steps) / len(steps) < 5000, steps
    conn.close()


def test_dying_source_is_restarted_and_viewers_resume(live, source_frames, caplog):
    caplog.set_level(logging.INFO, logger="LiveReader")
    srv = live(f"cmd={feeder_cmd('--count', '12')}")  # exits after 0.6 s of frames
    conn, _ = interleaved_viewer(srv, "cmd")
    deadline = time.monotonic() + 8
    while srv.feeds["cmd"].restarts < 2 and time.monotonic() < deadline:
        conn.read_interleaved(len(conn.frames) + 1, timeout=0.2)
    conn.read_interleaved(len(conn.frames) + 20, timeout=2)
    feed = srv.feeds["cmd"]
    assert feed.restarts >= 2, feed.describe_status()
    got = [j for _, j in frames_of(conn.frames)]
    # frames from three runs of the command reached the one viewer, and each is a source frame
    assert len(got) > 24, f"{len(got)} frames"
    assert all(digest(j) in source_frames[1] for j in got)
    assert any("command exited with status 0 after 12 frames; restarting in 0.5 s" in r.getMessage()
               for r in caplog.records)
    conn.close()


def test_viewer_that_stops_reading_does_not_slow_the_others(live, tmp_path, monkeypatch):
    from media import scene_jpeg
    from VideoStream import write_mjpeg

    big = tmp_path / "big.Mjpeg"  # 640x480 frames: a stalled TCP viewer's buffers fill in about a second
    write_mjpeg(big, [scene_jpeg(640, 480, index=i, quality=90) for i in range(20)])
    # the server's 4 MB socket buffer would take 7 s of this stream to fill; 64 KB fills at once
    monkeypatch.setattr(ServerWorker, "SOCKET_BUFFER", 65536)
    srv = live(f"cam={sys.executable} {FEEDER} {big} --fps {FPS}")
    assert srv.feeds["cam"].wait_first_frame(10)
    stalled, stalled_id = interleaved_viewer(srv, "cam", rcvbuf=4096)  # never read again
    good = RtpReceiver()
    conn = RtspConn(srv.port)
    reply = conn.request("SETUP", srv.url("cam"), {"Transport": f"RTP/AVP;unicast;client_port={good.port}-{good.port + 1}"})
    session = reply.headers["Session"].split(";")[0]
    conn.request("PLAY", srv.url("cam"), {"Session": session})
    first = srv.feeds["cam"].frames
    t0 = time.monotonic()
    arrivals = []
    depack = JpegDepacketizer()
    while time.monotonic() - t0 < 4.0:
        for packet in good.receive(lambda p: len(p) >= 1, timeout=0.5):
            if depack.push(packet.payload, packet.rtp_timestamp, packet.marker) is not None:
                arrivals.append(time.monotonic())
    produced = srv.feeds["cam"].frames - first
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    slow = next(s for s in srv.sessions() if s.id == stalled_id)
    print(f"source produced {produced} frames in 4 s; reading viewer got {len(arrivals)}, "
          f"max gap {max(gaps) * 1000:.0f} ms; stalled viewer skipped {slow.frames_skipped}, "
          f"sent {slow.frames_sent}")
    assert len(arrivals) >= produced - 2  # nothing lost to the stalled viewer
    assert max(gaps) < 0.25
    assert produced >= 0.85 * 4.0 * FPS  # the source never waited either
    assert slow.frames_skipped > 0.5 * produced  # the stalled viewer skips frames instead
    stalled.close()
    conn.close()
    good.close()


def test_garbage_command_is_refused_with_a_reason(live, monkeypatch):
    monkeypatch.setattr(RtspServerProtocol, "LIVE_DESCRIBE_WAIT", 1.0)
    srv = live(f"junk={feeder_cmd('--garbage')}")
    conn = RtspConn(srv.port)
    reply = conn.request("DESCRIBE", srv.url("junk"))
    assert reply.status == 503
    assert b"live source junk has no picture yet" in reply.body and b"bytes of non-JPEG data skipped" in reply.body
    assert conn.request("DESCRIBE", srv.url("movie.Mjpeg")).status == 200  # everything else still served
    assert srv.feeds["junk"].garbage_bytes > 1000
    conn.close()


def test_bad_multipart_boundary_is_refused_with_a_reason(live, camera, monkeypatch):
    monkeypatch.setattr(RtspServerProtocol, "LIVE_DESCRIBE_WAIT", 1.0)
    srv = live(f"cam={camera.url('/badboundary')}", max_frame=200_000)
    deadline = time.monotonic() + 10
    while "wrong boundary" not in srv.feeds["cam"].last_error and time.monotonic() < deadline:
        time.sleep(0.05)
    conn = RtspConn(srv.port)
    reply = conn.request("DESCRIBE", srv.url("cam"))
    assert reply.status == 503
    assert b"no multipart delimiter '--camboundary'" in reply.body and b"wrong boundary" in reply.body
    assert conn.request("DESCRIBE", srv.url("movie.Mjpeg")).status == 200
    conn.close()


def test_10mb_part_is_counted_and_the_stream_goes_on(live, camera, source_frames):
    srv = live(f"cam={camera.url('/huge')}")
    conn, _ = interleaved_viewer(srv, "cam")
    conn.read_interleaved(200, timeout=3)
    got = [j for _, j in frames_of(conn.frames)]
    assert srv.feeds["cam"].oversized == 1, srv.feeds["cam"].describe_status()
    assert len(got) >= 20 and all(digest(j) in source_frames[1] for j in got)
    conn.close()


@pytest.mark.parametrize("transport, reason", [
    ("RTP/AVP;unicast;destination=10.1.2.3;client_port=5000-5001", b"not the requesting host"),
    ("RTP/AVP;multicast", b"multicast is not enabled on this server"),
])
def test_setup_for_another_destination_is_refused(live, transport, reason):
    srv = live(f"cmd={feeder_cmd()}")
    conn = RtspConn(srv.port)
    reply = conn.request("SETUP", srv.url("cmd"), {"Transport": transport})
    assert reply.status == 461 and reason in reply.body, (reply, reply.body)
    conn.close()


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg missing (tools/test.sh installs it)")
def test_frames_rfc2435_cannot_carry_are_converted(live):
    """ffmpeg's default MJPEG (4:4:4, optimized Huffman tables) goes through JpegConvert, as files do."""
    srv = live(f"cam={FFMPEG} -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=20 -f mjpeg -")
    feed = srv.feeds["cam"]
    assert feed.converter is not None  # JpegConvert.to_rfc2435
    conn, _ = interleaved_viewer(srv, "cam")
    conn.read_interleaved(120, timeout=5)
    got = [j for _, j in frames_of(conn.frames)]
    assert len(got) >= 10 and feed.rejected == 0 and feed.converted >= len(got), feed.describe_status()
    assert Image.open(io.BytesIO(got[-1])).size == (320, 240)
    conn.close()


def test_pause_stops_that_viewer_only(live):
    srv = live(f"cmd={feeder_cmd()}")
    paused, paused_id = interleaved_viewer(srv, "cmd")
    other, _ = interleaved_viewer(srv, "cmd")
    reply = paused.request("PAUSE", srv.url("cmd"), {"Session": paused_id})
    assert reply.status == 200
    paused.read_interleaved(10 ** 6, timeout=0.3)  # what was on its way before the PAUSE
    before_other, before_paused = len(other.read_interleaved(0, timeout=0)), len(paused.frames)
    other.read_interleaved(before_other + 100, timeout=3)
    paused.read_interleaved(before_paused + 1, timeout=0.5)
    assert len(frames_of(other.frames[before_other:])) >= 8  # the other viewer goes on
    # the paused one gets no more RTP (channel 0); an RTCP sender report (channel 1) may still come
    assert [f for f in paused.frames[before_paused:] if f.channel == 0] == []
    reply = paused.request("PLAY", srv.url("cmd"), {"Session": paused_id})
    assert reply.status == 200 and reply.headers["Range"] == "npt=now-"
    paused.read_interleaved(before_paused + 20, timeout=3)
    assert len(frames_of(paused.frames[before_paused:])) >= 2  # and resumes at the next frames
    paused.close()
    other.close()
