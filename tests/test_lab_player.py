"""Our player against servers written the way the course hand-out has them (tests/lab_servers.py),
headless and windowed: every frame sent is received, byte-equal; the dialect is found (a fallback
after OPTIONS goes unanswered, is answered in the lab form, or the connection closes) or forced
with --lab, and the status line and RTSP log say which. Senders whose packets make no frames get
the one-line diagnosis (RTP version 0, payload type 96, no marker bit), never "no RTP arrived"."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from x11_tools import find_window, press, wait_title

import ClientLauncher
from lab_servers import VARIANTS, LabServer
from ReceiveEngine import LAB_FPS, ReceiveEngine
from RtpJpeg import packetize
from RtpPacket import RtpPacket
from RtspClient import ClientState, Dialect
from VideoStream import VideoStream, write_mjpeg

ROOT = Path(__file__).resolve().parent.parent


FRAMES = 24          # 1.2 s at the hand-out's 50 ms per frame


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A folder with the first FRAMES frames of movie.Mjpeg, as the hand-out's VideoStream reads it."""
    folder = tmp_path_factory.mktemp("labmedia")
    source = VideoStream(ROOT / "movie.Mjpeg")
    frames = [source.frame(i) for i in range(FRAMES)]
    write_mjpeg(folder / "movie.Mjpeg", frames)
    return folder, frames


@pytest.fixture
def lab_server(media):
    servers = []

    def start(**kw):
        srv = LabServer(media[0], **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


LAB_REQUEST = re.compile(r"^(SETUP|PLAY|PAUSE|TEARDOWN) movie\.Mjpeg RTSP/1\.0\nCSeq: \d+\n"
                         r"(Transport: RTP/UDP; client_port= \d+|Session: \d+)$")


def lab_requests(srv: LabServer) -> list[str]:
    """The requests after the dialect was settled: all in the lab form (checked)."""
    tail = [r for r in srv.requests if not r.startswith(("OPTIONS", "DESCRIBE"))]
    for r in tail:
        assert LAB_REQUEST.match(r), f"not the lab form: {r!r}"
    return [r.split(" ")[0] for r in tail]


def run_headless(args, capsys):
    rc = ClientLauncher.main(args)
    return rc, capsys.readouterr().err


# -- headless --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_headless_plays_every_lab_server_variant(variant, lab_server, media, tmp_path, capsys):
    srv = lab_server(variant=variant)
    save, stats = tmp_path / "got.Mjpeg", tmp_path / "s.json"
    rc, err = run_headless(["127.0.0.1", str(srv.port), "0", "movie.Mjpeg", "--headless", "--idle-timeout", "1",
                            "--save", str(save), "--stats-json", str(stats)], capsys)
    assert rc == 0, err
    got = VideoStream(save)
    assert srv.sent == FRAMES and got.frame_count == srv.sent          # frames received = frames sent
    assert [got.frame(i) for i in range(got.frame_count)] == srv.sent_frames == media[1]
    reason = {"always200": "OPTIONS got no reply within 1 s",   # its 200 to a CRLF OPTIONS has mixed line ends
              "always200_lf": "the server answered OPTIONS in the lab form",
              "crlf200": "the server answered DESCRIBE without an SDP",
              "close_on_unknown": "OPTIONS got no reply: the server closed the connection"}.get(
        variant, "OPTIONS got no reply within 1 s")
    assert f"speaking the lab dialect ({reason})" in err
    assert srv.connections == 2                                         # the probe, then the lab form
    assert lab_requests(srv) == ["SETUP", "PLAY", "TEARDOWN"]
    st = json.loads(stats.read_text())
    assert (st["dialect"], st["frames_completed"], st["packets_lost"], st["diagnosis"]) == ("lab", FRAMES, 0, None)
    assert st["frame_index"] == FRAMES - 1                              # numbered by the sequence number


def test_headless_lab_forced_sends_nothing_else(lab_server, media, tmp_path, capsys):
    srv = lab_server(variant="handout")
    save = tmp_path / "got.Mjpeg"
    t0 = time.monotonic()
    rc, err = run_headless(["127.0.0.1", str(srv.port), "0", "movie.Mjpeg", "--lab", "--headless",
                            "--idle-timeout", "1", "--save", str(save)], capsys)
    assert rc == 0, err
    assert "speaking the lab dialect (--lab)" in err
    assert srv.connections == 1 and srv.requests[0].startswith("SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\n")
    assert lab_requests(srv) == ["SETUP", "PLAY", "TEARDOWN"] and len(srv.requests) == 3
    assert VideoStream(save).frame_count == srv.sent == FRAMES
    assert time.monotonic() - t0 < FRAMES / LAB_FPS + 1 + 3            # no 1 s probe, nothing waited for


def test_our_server_still_speaks_rtsp(start_server, capsys):
    """The fallback never triggers for a real RTSP server (ours answers OPTIONS at once)."""
    srv = start_server(fps=100)
    rc, err = run_headless([srv.url(), "--headless", "--duration", "1"], capsys)
    assert rc == 0, err
    assert "lab dialect" not in err


class SlowFirstReply:
    """A TCP relay to a real RTSP server that holds the server's first reply back for ``delay`` s
    (an RTSP server slow to answer OPTIONS, e.g. one that starts a camera first)."""

    def __init__(self, port: int, delay: float) -> None:
        self.target, self.delay = port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, first_delay: float) -> None:
        try:
            while data := src.recv(65536):
                if first_delay:
                    time.sleep(first_delay)   # a slow server, not a wait on a condition
                    first_delay = 0.0
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_rtsp_flag_waits_for_a_slow_rtsp_server_instead_of_the_lab_fallback(start_server, tmp_path, capsys):
    """--rtsp: no 1 s probe, so an RTSP server that takes 1.5 s to answer OPTIONS is still
    played as one (without the flag the probe takes it for a lab server, README)."""
    srv = start_server(fps=100)
    relay = SlowFirstReply(srv.port, delay=1.5)
    stats = tmp_path / "s.json"
    try:
        rc, err = run_headless([f"rtsp://127.0.0.1:{relay.port}/movie.Mjpeg", "--rtsp", "--headless",
                                "--duration", "1", "--stats-json", str(stats)], capsys)
    finally:
        relay.close()
    assert rc == 0, err
    assert "lab dialect" not in err
    st = json.loads(stats.read_text())
    assert st["dialect"] != "lab" and st["frames_completed"] > 50, st


def test_lab_and_rtsp_flags_are_refused_together(capsys):
    rc, err = run_headless(["127.0.0.1", "1", "0", "movie.Mjpeg", "--lab", "--rtsp", "--headless"], capsys)
    assert rc == 2 and "error: --lab and --rtsp contradict each other" in err


def test_our_server_in_the_lab_dialect(start_server, tmp_path, capsys):
    """--lab against our own server: it recognises the form and answers in kind (README)."""
    srv = start_server(fps=100)
    save = tmp_path / "got.Mjpeg"
    rc, err = run_headless(["127.0.0.1", str(srv.port), "0", "movie.Mjpeg", "--lab", "--headless",
                            "--duration", "1.5", "--save", str(save)], capsys)
    assert rc == 0, err
    source = VideoStream(ROOT / "movie.Mjpeg")
    got = VideoStream(save)
    assert got.frame_count > 50
    assert [got.frame(i) for i in range(got.frame_count)] == [source.frame(i) for i in range(got.frame_count)]


def test_lab_and_tcp_are_refused(capsys):
    rc, err = run_headless(["127.0.0.1", "1", "0", "movie.Mjpeg", "--lab", "--transport", "tcp", "--headless"],
                           capsys)
    assert rc == 2 and "error: the lab dialect sends RTP over UDP only" in err


def test_missing_file_on_a_lab_server(lab_server, capsys):
    """The hand-out server says nothing when it cannot open the file: the error says what that means."""
    srv = lab_server(variant="handout")
    eng = ReceiveEngine(f"rtsp://127.0.0.1:{srv.port}/nothere.Mjpeg", lab=True, reply_timeout=1.0)
    eng.open()
    try:
        with pytest.raises(Exception, match=r"SETUP failed: no reply within 1 s \(a lab server says nothing "
                                            r"when it cannot open the file: is 'nothere.Mjpeg' in its folder\?\)"):
            eng.setup()
    finally:
        eng.close()


# -- the diagnosis: packets that arrive but make no frames ---------------------------------------

DIAG = "RTP packets arrived from 127.0.0.1:\\d+ but none made a frame: "


@pytest.mark.parametrize("kw,why", [
    (dict(rtp_version=0), r"RTP version 0, not 2 \(the top two bits of the first byte, here 0x00\), in all of them"),
    (dict(payload_type=96), r"payload type 96, not 26 \(JPEG\), in all of them"),
    (dict(ssrc_per_packet=True), r"the SSRC changes from packet to packet \(\d+ different SSRCs; RFC 3550 gives "
                                 r"a source one SSRC\), in \d+ of them"),
    (dict(constant_seq=True), r"the sequence number does not advance \(it stays 1\)"),
], ids=["version0", "pt96", "ssrc", "seq"])
def test_headless_diagnosis_of_a_bad_lab_server(kw, why, lab_server, capsys):
    srv = lab_server(variant="handout", **kw)
    rc, err = run_headless(["127.0.0.1", str(srv.port), "0", "movie.Mjpeg", "--lab", "--headless"], capsys)
    assert rc == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.fullmatch(r"error: \d+ " + DIAG + why, errors[0]), err
    assert "no RTP arrived" not in err
    assert srv.teardowns == 1                                   # it still said goodbye


def _raw_sender(engine_box, packets, stop, loop=True):
    """Send ``packets`` (bytes) every 10 ms to the player's RTP port once it is bound, round and
    round (``loop``) or once."""
    deadline = time.monotonic() + 10
    while engine_box[0] is None or engine_box[0].rtp_sock is None:
        if time.monotonic() > deadline or stop.is_set():
            return
        time.sleep(0.005)
    port = engine_box[0].rtp_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        i = 0
        while not stop.is_set() and (loop or i < len(packets)):
            tx.sendto(packets[i % len(packets)], ("127.0.0.1", port))
            i += 1
            time.sleep(0.01)


SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=t\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n" \
      "a=rtpmap:26 JPEG/90000\r\na=framerate:25\r\n"


def rfc2435_packets(frames, marker: bool = True, version: int = 2, pt: int = 26) -> list[bytes]:
    out, seq = [], 1000
    for i, f in enumerate(frames):
        parts = packetize(f, 1000)
        for k, pl in enumerate(parts):
            data = bytearray(RtpPacket(pt, seq % 65536, 3600 * i, 0x1234, pl,
                                       marker=marker and k == len(parts) - 1).serialize())
            data[0] = (data[0] & 0x3F) | (version << 6)
            out.append(bytes(data))
            seq += 1
    return out


@pytest.mark.parametrize("kw,why", [
    (dict(version=0), r"RTP version 0, not 2 \(the top two bits of the first byte, here 0x00\), in all of them"),
    (dict(pt=96), r"payload type 96, not 26 \(JPEG\), in all of them"),
    (dict(marker=False), r"the marker bit is never set \(RFC 2435 marks each frame's last packet\)"),
], ids=["version0", "pt96", "no-marker"])
def test_headless_diagnosis_of_a_bad_rtp_sender(kw, why, media, tmp_path, capsys):
    """Raw RTP/JPEG senders (as --sdp plays them): version 0, payload type 96, marker never set."""
    sdp = tmp_path / "s.sdp"
    sdp.write_text(SDP)
    packets = rfc2435_packets(media[1][:10], **kw)
    args = ClientLauncher.build_parser().parse_args(["--sdp", str(sdp), "--headless"])
    engine = ReceiveEngine(None, sdp_text=SDP)
    box, stop = [engine], threading.Event()
    sender = threading.Thread(target=_raw_sender, args=(box, packets, stop), daemon=True)
    sender.start()
    try:
        rc = ClientLauncher.run_headless(engine, args)
    finally:
        stop.set()
        sender.join(timeout=5)
    err = capsys.readouterr().err
    assert rc == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.fullmatch(r"error: \d+ " + DIAG + why, errors[0]), err
    assert "no RTP arrived" not in err


# -- windowed ----------------------------------------------------------------------------------

try:
    import tkinter as tk
except ImportError:      # a Python without Tk: the window tests skip, the headless ones above run
    tk = None  # type: ignore[assignment]
needs_tk = pytest.mark.skipif(tk is None, reason="could not import 'tkinter': the window tests need Tk")


def pump(root, cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        root.update()
        time.sleep(0.005)


@pytest.fixture(autouse=True)
def collect_tk_garbage():
    yield
    gc.collect()          # Tk objects die in the main thread, not in a later test's reader thread


def open_window(display, url, **engine_kw):
    from Client import Client, run_gui  # noqa: F401  (Client.py needs Tk)
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(url, idle_timeout=1.0, **engine_kw)
    eng.open()
    app = Client(root, eng)
    app.ask_quit = lambda: True
    return root, eng, app


def start_like_run_gui(app, eng):
    """What run_gui does once the window is up: OPTIONS + DESCRIBE off the Tk thread."""
    def initial():
        try:
            eng.options()
        except Exception:      # noqa: BLE001 -- as run_gui: OPTIONS failing is not fatal
            pass
        eng.describe()
    app._run("DESCRIBE", initial, done=app._show_sdp)


@needs_tk
@pytest.mark.parametrize("variant", VARIANTS)
def test_window_plays_every_lab_server_variant(variant, display, lab_server, media):
    srv = lab_server(variant=variant)
    root, eng, app = open_window(display, f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg")
    try:
        start_like_run_gui(app, eng)
        pump(root, lambda: not app.busy, what="the dialect probe")
        assert eng.dialect is Dialect.LAB
        assert app.status_var.get() == "lab dialect (" + (                          # the status line says so
            "the server answered OPTIONS in the lab form" if variant == "always200_lf" else
            "the server answered DESCRIBE without an SDP" if variant == "crlf200" else
            "OPTIONS got no reply: the server closed the connection" if variant == "close_on_unknown" else
            "OPTIONS got no reply within 1 s") + ")"
        assert "(no SDP: the lab dialect has no DESCRIBE)" in app.sdp_text.get("1.0", "end")
        app.play()                                        # INIT: PLAY sets up first, as --simple's does
        pump(root, lambda: srv.sent == FRAMES and eng.frames_displayable == FRAMES and eng.ended is not None,
             what="every frame")
        pump(root, lambda: app.shown_frame is not None and app.shown_frame.data == media[1][-1],
             what="the last frame shown")
        assert eng.frames_displayable == srv.sent                 # frames received = frames sent
        log = app.log_text.get("1.0", "end")
        assert f"lab dialect: {eng.dialect_reason}; reconnected" in log
        assert "SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= " in log
        assert re.search(r"--- S->C ---\nRTSP/1\.0 200 OK\nCSeq: 2\nSession: \d{6}\n", log)
        app.teardown()
        pump(root, lambda: app.closed, what="TEARDOWN closes the window")
        assert srv.teardowns == 1 and lab_requests(srv) == ["SETUP", "PLAY", "TEARDOWN"]
    finally:
        eng.close()
        if not app.closed:
            app.close()


@needs_tk
def test_window_says_why_packets_make_no_frames(display, lab_server):
    srv = lab_server(variant="handout", rtp_version=0)
    root, eng, app = open_window(display, f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg", lab=True)
    try:
        app.play()
        pump(root, lambda: re.fullmatch(r"\d+ " + DIAG + r"RTP version 0, not 2 .*", app.status_var.get()),
             what="the diagnosis in the status line")
        assert eng.frames_displayable == 0 and eng.diag.arrived > 0
    finally:
        eng.close()
        app.close()



@needs_tk
def test_cli_window_lab_server_real_keys(display, lab_server, tmp_path):
    """ClientLauncher's window against the hand-out server, driven by keys (xdotool): the lab
    arguments, space plays, q tears down; every frame arrives."""
    if shutil.which("xdotool") is None:
        print("SKIP reason: xdotool missing")
        pytest.skip("xdotool missing")
    from Client import _fmt_time
    srv = lab_server(variant="handout")
    stats = tmp_path / "s.json"
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), "127.0.0.1", str(srv.port), "0",
                             "movie.Mjpeg", "--stats-json", str(stats), "--idle-timeout", "1"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(env, proc)
        deadline = time.monotonic() + 10
        while srv.connections < 2:                        # the probe went unanswered: reconnected
            assert time.monotonic() < deadline, "no lab-dialect reconnection"
            time.sleep(0.02)
        press(env, win, "space")
        last = re.escape(_fmt_time((FRAMES - 1) / LAB_FPS))
        # the last frame is on screen (no duration known: "LIVE 00:01.9", or "00:01.9 / --:--")
        wait_title(env, win, proc, rf" - PLAYING (LIVE )?{last}( / --:--)?$", timeout=15.0)
        press(env, None, "q")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    st = json.loads(stats.read_text())
    assert (st["dialect"], st["frames_completed"], st["packets_lost"]) == ("lab", srv.sent, 0)
    assert srv.sent == FRAMES and srv.teardowns == 1


def test_headless_warns_when_most_packets_are_unusable(media, tmp_path, capsys):
    """Frames come, but from fewer than half of the packets: a warning line, exit status 0."""
    sdp = tmp_path / "s.sdp"
    sdp.write_text(SDP)
    good = [RtpPacket(26, 1 + i, 3600 * i, 0x1234, media[1][i % FRAMES]).serialize() for i in range(60)]
    bad = [b"\x00" + p[1:] for p in good]                            # the same with version 0 ...
    packets = [p for pair in zip(bad, bad, good) for p in pair]       # ... twice for each good one
    args = ClientLauncher.build_parser().parse_args(["--sdp", str(sdp), "--headless", "--idle-timeout", "1"])
    engine = ReceiveEngine(None, sdp_text=SDP, idle_timeout=1.0)
    box, stop = [engine], threading.Event()
    sender = threading.Thread(target=_raw_sender, args=(box, packets, stop, False), daemon=True)
    sender.start()
    try:
        rc = ClientLauncher.run_headless(engine, args)
    finally:
        stop.set()
        sender.join(timeout=5)
    err = capsys.readouterr().err
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert re.fullmatch(r"warning: 180 RTP packets arrived from 127\.0\.0\.1:\d+ but only 60 frames came of "
                        r"them: RTP version 0, not 2 \(the top two bits of the first byte, here 0x00\), in 120 "
                        r"of them", warnings[0]), warnings


@pytest.mark.parametrize("variant", ["handout", "single"])
def test_pause_and_play_again_on_a_lab_server(variant, lab_server, media):
    """PAUSE stops the hand-out's sender, PLAY starts a new one where it left off: nothing lost,
    nothing twice, and the session id is echoed on every request."""
    srv = lab_server(variant=variant)
    eng = ReceiveEngine(f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg", lab=True, idle_timeout=1.0)
    eng.open()
    try:
        eng.setup()
        session = eng.proto.session_id
        assert session is not None and session.isdigit() and len(session) == 6
        eng.play()
        assert srv.wait_sent(10, timeout=10)
        eng.pause()
        assert eng.state is ClientState.READY
        sender = srv.clients[-1].sender
        if sender is not None:                                  # the thread-per-client variants
            sender.join(timeout=5)
            assert not sender.is_alive()
        paused_at = srv.sent
        deadline = time.monotonic() + 5
        while eng.frames_displayable < paused_at:
            assert time.monotonic() < deadline, "frames sent before PAUSE did not arrive"
            time.sleep(0.01)
        assert srv.sent == paused_at < FRAMES                     # the sender stopped
        eng.play()
        deadline = time.monotonic() + 15
        while eng.ended is None:
            assert time.monotonic() < deadline, "the stream did not end"
            time.sleep(0.02)
        eng.teardown()
    finally:
        eng.close()
    assert srv.sent == eng.frames_displayable == FRAMES
    assert eng.last_frame is not None and eng.last_frame.index == FRAMES - 1
    assert lab_requests(srv) == ["SETUP", "PLAY", "PAUSE", "PLAY", "TEARDOWN"]
    assert all(r.endswith(f"\nSession: {session}") for r in srv.requests[1:])
