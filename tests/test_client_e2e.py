"""Headless player against our own server: every frame, pixel-equal; UDP and TCP; PAUSE/PLAY/seek; errors."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ClientLauncher
from media import pixels
from ReceiveEngine import ClientError, EventKind, ReceiveEngine
from RtspClient import ClientState
from VideoStream import VideoStream

ROOT = Path(__file__).resolve().parent.parent


FPS = 100     # the server paces faster than the movie's 20 fps so the suite stays quick


@pytest.fixture(scope="module")
def source():
    vs = VideoStream(ROOT / "movie.Mjpeg")
    return [pixels(vs.frame(i)) for i in range(len(vs))]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_headless_whole_movie_pixel_equal(start_server, source, tmp_path, transport, capsys):
    srv = start_server(fps=FPS)
    save, stats = tmp_path / "copy.Mjpeg", tmp_path / "stats.json"
    rc = ClientLauncher.main([srv.url(), "--headless", "--transport", transport, "--save", str(save),
                              "--stats-json", str(stats), "--duration", "30"])
    assert rc == 0
    st = json.loads(stats.read_text())
    assert st["end_reason"] == "end of stream", st
    assert st["frames_completed"] == len(source) == 500, st
    assert (st["frames_dropped"], st["packets_lost"], st["duplicates"]) == (0, 0, 0), st
    assert st["packets_received"] == st["packets_expected"] > 500
    if transport == "udp":
        assert st["rcvbuf"] >= 4 * 1024 * 1024
    got = VideoStream(save)
    assert len(got) == len(source)
    for i in range(len(source)):
        assert pixels(got.frame(i)) == source[i], f"frame {i} differs"
    err = capsys.readouterr().err
    assert "frame 499/500" in err and "stopped: end of stream" in err     # the last frame, counting from 0


def collect(engine: ReceiveEngine, until, timeout: float = 10.0):
    """Frames from the engine's queue until ``until(frames)`` is true (bounded)."""
    frames: list = []
    deadline = time.monotonic() + timeout
    while not until(frames):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out with {len(frames)} frames"
        try:
            ev = engine.events.get(timeout=min(left, 0.1))
        except queue.Empty:
            continue
        if ev.kind is EventKind.FRAME:
            frames.append(ev.payload)
    return frames


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pause_resume_and_seek(start_server, source, transport):
    srv = start_server(fps=FPS)
    eng = ReceiveEngine(srv.url(), transport=transport)
    eng.open()
    try:
        eng.options()
        eng.describe()
        assert eng.duration == pytest.approx(len(source) / FPS)
        eng.setup()
        assert eng.state is ClientState.READY
        eng.play()
        first = collect(eng, lambda f: len(f) >= 30)
        eng.pause()
        assert eng.state is ClientState.READY
        # What was in flight arrives within a moment; then nothing while paused.
        tail = collect(eng, lambda f: True, timeout=1)
        time.sleep(0.3)
        tail += collect(eng, lambda f: True, timeout=1)
        before = eng.frames_displayable
        time.sleep(0.3)
        assert eng.frames_displayable == before, "frames kept coming while paused"
        played = first + tail
        assert [f.index for f in played] == list(range(len(played)))
        eng.play()            # resume where it paused
        resumed = collect(eng, lambda f: len(f) >= 10)
        assert resumed[0].index == played[-1].index + 1
        for f in resumed:
            assert pixels(f.data) == source[f.index]
        received_before_seek = eng.snapshot().packets_received
        eng.play(3.0)         # seek while playing: PLAY Range: npt=3-
        seek_frames = [f for f in collect(eng, lambda f: sum(x.generation == eng.generation for x in f) >= 10)
                       if f.generation == eng.generation]     # frames completed before the seek are older
        start = int(3.0 * FPS)
        assert seek_frames[0].index == start
        assert [f.index for f in seek_frames] == list(range(start, start + len(seek_frames)))
        for f in seek_frames:
            assert pixels(f.data) == source[f.index], f"frame {f.index} after seek differs"
        snap = eng.snapshot()     # statistics run on across the seek (same SSRC, sequence goes on)
        assert snap.packets_received > received_before_seek
        assert (snap.packets_lost, snap.frames_dropped, snap.duplicates) == (0, 0, 0)
        eng.teardown()
        assert eng.state is ClientState.INIT
    finally:
        eng.close()


def test_lab_command_line_and_keepalive(start_server, monkeypatch):
    """The lab form 'host port rtp_port file' with a fixed RTP port; GET_PARAMETER keepalive."""
    srv = start_server(fps=FPS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:   # find a free even pair
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1] & ~1
    args = ClientLauncher.build_parser().parse_args(["127.0.0.1", str(srv.port), str(port), "movie.Mjpeg"])
    url, rtp_port = ClientLauncher.resolve_target(args, ClientLauncher.build_parser())
    assert url == f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg" and rtp_port == port
    eng = ReceiveEngine(url, rtp_port=rtp_port)
    try:
        eng.open()
    except ClientError:
        pytest.skip(f"port {port} was taken meanwhile")
    try:
        eng.describe()
        eng.setup()
        assert eng.proto.pending == {}
        assert f"client_port={port}-{port + 1}" in eng.proto.transport.format()
        eng.proto.session_timeout = 0.4     # force the keepalive timer to fire quickly
        logs = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(d == "C->S" and t.startswith("GET_PARAMETER")
                                                      for d, t in logs):
            try:
                ev = eng.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev.kind is EventKind.LOG:
                logs.append(ev.payload)
        sent = [t for d, t in logs if d == "C->S" and t.startswith("GET_PARAMETER")]
        assert sent, "no keepalive sent"
        assert "Session: " in sent[0]
        eng.proto.session_timeout = 60
        deadline = time.monotonic() + 3        # its reply is matched (by CSeq) and not left pending
        while eng.proto.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert eng.proto.pending == {}
        eng.teardown()
    finally:
        eng.close()


def run_cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_error_server_unreachable():
    r = run_cli("127.0.0.1", str(free_tcp_port()), "0", "movie.Mjpeg", "--headless")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "server unreachable" in lines[0]


def test_error_movie_not_found(start_server):
    srv = start_server()
    r = run_cli(srv.url("nope.Mjpeg"), "--headless")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not found" in lines[0] and "404" in lines[0]


def test_error_rtp_port_busy(start_server):
    srv = start_server()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        port = busy.getsockname()[1]
        r = run_cli("127.0.0.1", str(srv.port), str(port), "movie.Mjpeg", "--headless")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"RTP port {port} is busy" in lines[0]


def test_error_no_display_suggests_headless(start_server):
    srv = start_server()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = run_cli(srv.url(), env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--headless" in lines[0] and "no display" in lines[0]


class Refuses461:
    """A scripted RTSP server that answers SETUP with 461 (like GStreamer to a transport it lacks)."""

    SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n"
           b"m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:stream=0\r\n")

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    text = head.decode()
                    self.requests.append(text)
                    cseq = [l.split(":", 1)[1].strip() for l in text.split("\r\n") if l.lower().startswith("cseq")][0]
                    method = text.split()[0]
                    if method == "SETUP":
                        conn.sendall(f"RTSP/1.0 461 Unsupported transport\r\nCSeq: {cseq}\r\n\r\n".encode())
                    elif method == "DESCRIBE":
                        conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1:{self.port}/m/\r\n"
                                     f"Content-Type: application/sdp\r\nContent-Length: {len(self.SDP)}\r\n\r\n".encode()
                                     + self.SDP)
                    else:
                        conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP\r\n\r\n".encode())


def test_error_461_suggests_tcp_and_uses_control_url():
    fake = Refuses461()
    r = run_cli(f"rtsp://127.0.0.1:{fake.port}/m", "--headless")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "461" in lines[0] and "--transport tcp" in lines[0]
    setup = [q for q in fake.requests if q.startswith("SETUP")][0]
    # Content-Base + a=control (RFC 2326 C.1.1), and the standard unicast transport
    assert setup.startswith(f"SETUP rtsp://127.0.0.1:{fake.port}/m/stream=0 RTSP/1.0")
    assert "Transport: RTP/AVP;unicast;client_port=" in setup


@pytest.mark.parametrize("spec,message", [("loss=200%", "must be between 0% and 100%"),
                                          ("bogus=1", "unknown impairment 'bogus'"),
                                          ("loss=5%,burst=0.5", "burst")])
def test_bad_impair_spec_is_a_usage_error(spec, message, capsys):
    assert ClientLauncher.main(["rtsp://127.0.0.1:1/x", "--headless", "--impair", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
