"""The Tk player under Xvfb (started and stopped here): buttons, pixels in the view, live statistics,
slider seek, close-window dialog, TEARDOWN; a screenshot for docs/; decode+display time per frame."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

tk = pytest.importorskip("tkinter")

from Client import Client, ReceiveEngine  # noqa: E402
from RtspClient import ClientState  # noqa: E402
from VideoStream import VideoStream  # noqa: E402

FPS = 50


def pump(root, cond, timeout: float = 10.0, what: str = "condition") -> None:
    """Run the Tk loop until cond() (bounded)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        root.update()
        time.sleep(0.005)


def enabled(app: Client) -> set[str]:
    return {n for n, b in app.buttons.items() if not b.instate(["disabled"])}


def view_pixels(app: Client, points) -> list[tuple[int, int, int]]:
    photo = app.photo._PhotoImage__photo          # the Tk image behind ImageTk.PhotoImage
    return [tuple(int(c) for c in photo.get(x, y)) for x, y in points]


class FastSr(random.Random):
    """Server RNG whose random() = 0: the shortest randomized SR interval (about 1 s, then 2 s)."""

    def random(self) -> float:
        return 0.0


def start_app(display, url, engine_kw=None, **kw):
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(url, **(engine_kw or {}))
    eng.open()
    app = Client(root, eng, **kw)
    app.ask_quit = lambda: True
    return root, eng, app


def test_gui_plays_shows_pixels_stats_seek_close(display, start_server, tmp_path):
    srv = start_server(fps=FPS, rng=FastSr())
    source = VideoStream(ROOT / "movie.Mjpeg")
    root, eng, app = start_app(display, srv.url(), engine_kw={"rtcp_min_time": 1.0})
    try:
        pump(root, lambda: root.winfo_viewable(), what="window mapped")
        assert enabled(app) == {"SETUP", "DESCRIBE"}
        app.describe()
        pump(root, lambda: not app.busy and eng.proto.sdp is not None, what="DESCRIBE")
        assert "m=video 0 RTP/AVP 26" in app.sdp_text.get("1.0", "end")
        app.setup()
        pump(root, lambda: not app.busy and eng.state is ClientState.READY, what="SETUP")
        assert enabled(app) == {"PLAY", "TEARDOWN", "DESCRIBE"}
        app.play()
        pump(root, lambda: app.frames_shown >= 30, what="30 frames shown")
        assert enabled(app) == {"PAUSE", "TEARDOWN", "DESCRIBE"}
        # The view holds decoded pixels of the frame last shown, scaled like the player scales.
        shown = app.shown_frame
        expected = Image.open(io.BytesIO(source.frame(shown.index))).convert("RGB").resize(
            app.photo_size, Image.BILINEAR)
        w, h = app.photo_size
        pts = [(x * w // 7, y * h // 5) for x in range(1, 7) for y in range(1, 5)]
        got = view_pixels(app, pts)
        assert got == [expected.getpixel(p) for p in pts]
        assert len(set(got)) > 3, "view looks blank"
        # Statistics move while playing (>= 2 updates per second).
        before = (app.stat_vars["bytes"].get(), app.stat_vars["frames"].get())
        t0 = time.monotonic()
        pump(root, lambda: time.monotonic() - t0 > 0.6)
        after = (app.stat_vars["bytes"].get(), app.stat_vars["frames"].get())
        assert before[0] != after[0] and before[1] != after[1]
        assert app.stat_vars["lost"].get() == "0" and app.stat_vars["state"].get() == "PLAYING"
        assert float(app.stat_vars["fps"].get().split("/")[0]) > 0
        assert len(app.plot.find_all()) > 4                      # axes, legend and lines drawn
        log = app.log_text.get("1.0", "end")
        for method in ("DESCRIBE", "SETUP", "PLAY"):
            assert f"{method} rtsp://" in log
        assert "Session: " in log and "RTSP/1.0 200 OK" in log
        # The impairment panel: 5% loss applied while playing shows up as loss; the truth beside it.
        app.impair_var.set("loss=5%,seed=2")
        app.impair_apply.invoke()
        pump(root, lambda: app.stat_vars["lost"].get() not in ("0", "-"), what="loss after Apply")
        pump(root, lambda: app.impair_status.get().startswith("truth: dropped"), what="truth shown")
        app.apply_impairment("loss=5%%,seed=2")
        assert app.impair_status.get().startswith("error: loss=")          # a typo is reported
        app.apply_impairment("loss=5%,seed=2")
        # RTCP: RTT from the server's XR DLRR, the sender's counts beside ours, its wall clock.
        pump(root, lambda: app.stat_vars["rtt"].get().endswith(" ms"), timeout=15, what="RTT shown")
        assert float(app.stat_vars["rtt"].get().split()[0]) < 100
        assert app.stat_vars["sender"].get().split(" / ")[1] != "-"
        assert app.stat_vars["clock"].get().count(":") == 2
        # Screenshot of the playing window, once the plot has a few seconds of history.
        app.notebook.select(app.log_text)
        pump(root, lambda: len(app.last_snapshot.history) >= 12, what="6 s of plot history")
        # It goes to tmp; UPDATE_SCREENSHOT=1 also writes docs/player.png (the README's picture).
        if shutil.which("import"):
            geo = f"{root.winfo_width()}x{root.winfo_height()}+{root.winfo_rootx()}+{root.winfo_rooty()}"
            shot = tmp_path / "player.png"
            subprocess.run(["import", "-display", display, "-window", "root", "-crop", geo, str(shot)],
                           check=True, timeout=30)
            img = Image.open(shot).convert("RGB")
            assert img.size == (root.winfo_width(), root.winfo_height())
            assert len(img.getcolors(1 << 16) or range(1 << 16)) > 50    # a real picture, not blank
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                (ROOT / "docs").mkdir(exist_ok=True)
                shutil.copy(shot, ROOT / "docs" / "player.png")
        app.apply_impairment("off")
        assert eng.impairer is not None and not eng.impairer.spec.active
        # PAUSE stops the frames.
        app.pause()
        pump(root, lambda: not app.busy and eng.state is ClientState.READY, what="PAUSE")
        assert enabled(app) == {"PLAY", "TEARDOWN", "DESCRIBE"}
        t0 = time.monotonic()
        pump(root, lambda: time.monotonic() - t0 > 0.3)
        n = eng.frames_displayable
        t0 = time.monotonic()
        pump(root, lambda: time.monotonic() - t0 > 0.3)
        assert eng.frames_displayable == n
        # Slider seek: PLAY with Range: npt=6-.
        app.pos_var.set(6.0)
        app.seek(6.0)
        pump(root, lambda: not app.busy and eng.state is ClientState.PLAYING, what="seek")
        start = round(6.0 * eng.fps)
        pump(root, lambda: app.shown_frame.index >= start, what="frames after seek")
        assert "Range: npt=6.000-" in app.log_text.get("1.0", "end")
        assert start <= app.shown_frame.index < start + eng.fps     # within a second of the target
        # Space toggles pause.
        root.event_generate("<space>")
        pump(root, lambda: not app.busy and eng.state is ClientState.READY, what="space = pause")
        root.event_generate("<space>")
        pump(root, lambda: not app.busy and eng.state is ClientState.PLAYING, what="space = play")
        # Close window, keep watching: paused, then playing again.
        asked = []
        app.ask_quit = lambda: asked.append(eng.state) and False    # answer "keep watching"
        app.on_close()
        assert asked == [ClientState.READY]                         # asked while paused
        pump(root, lambda: not app.busy and eng.state is ClientState.PLAYING, what="keep watching")
        assert not app.closed
        # TEARDOWN ends the session and closes the window.
        app.teardown()
        pump(root, lambda: app.closed, what="TEARDOWN closes")
        assert eng.state is ClientState.INIT
        assert eng.rtsp_sock is None
    finally:
        if not app.closed:
            app.close()


def make_movie(path: Path, size: tuple[int, int], count: int) -> None:
    from media import movie_frames, write_movie
    write_movie(path, movie_frames(count, size=size, quality=80))


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_gui_decode_display_time(display, start_server, tmp_path, size, capsys):
    make_movie(tmp_path / "m.Mjpeg", size, 60)
    srv = start_server(media_dir=tmp_path, fps=25)
    root, eng, app = start_app(display, srv.url("m.Mjpeg"), simple=True)
    try:
        pump(root, lambda: root.winfo_viewable(), what="window mapped")
        assert enabled(app) == {"PLAY", "TEARDOWN"}
        app.play()                                   # --simple: PLAY does DESCRIBE + SETUP first
        pump(root, lambda: app.frames_shown >= 50, timeout=20, what="50 frames shown")
        times = sorted(app.display_times)
        mean_ms = 1000 * sum(times) / len(times)
        p90_ms = 1000 * times[int(0.9 * len(times))]
        with capsys.disabled():
            print(f"\n{size[0]}x{size[1]} in a {app.view.winfo_width()}x{app.view.winfo_height()} view: "
                  f"decode+display {mean_ms:.2f} ms/frame mean, {p90_ms:.2f} ms p90 over {len(times)} frames")
        assert mean_ms < 1000 / 25, "decode+display falls behind 25 fps"
        assert eng.snapshot().frames_dropped == 0
        app.teardown()
        pump(root, lambda: app.closed, what="TEARDOWN closes")
    finally:
        if not app.closed:
            app.close()


def test_cli_window_real_keys(display, start_server, tmp_path):
    """ClientLauncher with a window, driven by real key presses (xdotool): space plays, q quits."""
    if shutil.which("xdotool") is None:
        print("SKIP reason: xdotool missing")
        pytest.skip("xdotool missing")
    srv = start_server(fps=FPS)
    stats = tmp_path / "s.json"
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url(), "--stats-json", str(stats)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        win = ""
        while not win:
            assert time.monotonic() < deadline and proc.poll() is None, "player window did not appear"
            r = subprocess.run(["xdotool", "search", "--name", "RTP player"], env=env, capture_output=True,
                               text=True, timeout=10)
            win = r.stdout.split()[0] if r.stdout.split() else ""
            time.sleep(0.1)
        time.sleep(0.5)                     # let the initial DESCRIBE finish
        subprocess.run(["xdotool", "windowfocus", win], env=env, timeout=10)
        subprocess.run(["xdotool", "key", "space"], env=env, check=True, timeout=10)
        time.sleep(1.5)
        subprocess.run(["xdotool", "key", "q"], env=env, check=True, timeout=10)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    import json
    st = json.loads(stats.read_text())
    assert st["frames_completed"] > 20 and st["packets_lost"] == 0
