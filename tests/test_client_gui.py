"""The Tk player under Xvfb (started and stopped here): buttons, pixels in the view, live statistics,
slider seek, close-window dialog, TEARDOWN; a screenshot for docs/; decode+display time per frame."""

from __future__ import annotations

import gc
import io
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from x11_tools import find_window, press, wait_title

tk = pytest.importorskip("tkinter")  # before Client: a Python without Tk skips, saying why

from Client import FIT_SLACK, Client, decode_for_view, fit_size  # noqa: E402
from ReceiveEngine import Frame, ReceiveEngine
from RtspClient import ClientState
from VideoStream import VideoStream

ROOT = Path(__file__).resolve().parent.parent


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


def view_pixels(app: Client, points) -> list[tuple[int, ...]]:
    assert app.photo is not None, "a frame is shown"
    photo = getattr(app.photo, "_PhotoImage__photo")   # the Tk image behind ImageTk.PhotoImage
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
        # The view holds the decoded pixels of the frame last shown, 1:1 (384x288 fits the view).
        shown = app.shown_frame
        expected = Image.open(io.BytesIO(source.frame(shown.index))).convert("RGB")
        assert app.photo_size == expected.size
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
        pump(root, lambda: app.impair_status.get().startswith("the impairer (ground truth) dropped"), what="truth shown")
        app.apply_impairment("loss=5%%,seed=2")
        assert app.impair_status.get().startswith("error: loss=")          # a typo is reported
        app.apply_impairment("loss=5%,seed=2")
        # RTCP: RTT from the server's XR DLRR, the sender's counts beside ours, its wall clock.
        pump(root, lambda: app.stat_vars["rtt"].get().endswith(" ms"), timeout=15, what="RTT shown")
        assert float(app.stat_vars["rtt"].get().split()[0]) < 100
        assert app.stat_vars["sender"].get().replace(",", "").isdigit()
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
        # Space toggles pause (Tk delivers a generated key only to a window that has the focus).
        app.view.focus_force()
        root.update()
        root.event_generate("<space>")
        pump(root, lambda: not app.busy and eng.state is ClientState.READY, what="space = pause")
        root.event_generate("<space>")
        pump(root, lambda: not app.busy and eng.state is ClientState.PLAYING, what="space = play")
        # Close window, keep watching: paused, then playing again.
        asked = []
        app.ask_quit = lambda: asked.append(eng.state) and False    # answer "keep watching"
        app.on_close()                                              # PAUSE on a worker, then ask
        pump(root, lambda: asked, what="quit? asked")
        assert asked == [ClientState.READY]                         # asked while paused
        pump(root, lambda: not app.busy and eng.state is ClientState.PLAYING, what="keep watching")
        assert not app.closed
        # TEARDOWN ends the session and closes the window.
        app.teardown()
        pump(root, lambda: app.closed, what="TEARDOWN closes")
        assert eng.state is ClientState.INIT              # the TEARDOWN reply came back
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
    """ClientLauncher with a window, driven by real key presses (xdotool): space plays, q quits.
    Progress is read where a person sees it: the title shows state and position."""
    if shutil.which("xdotool") is None:
        print("SKIP reason: xdotool missing")
        pytest.skip("xdotool missing")
    srv = start_server(fps=FPS)
    stats = tmp_path / "s.json"
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url(), "--stats-json", str(stats)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(env, proc)
        # DESCRIBE done: the title knows the duration (before it, "--:--")
        wait_title(env, win, proc, r" - INIT 00:00\.0 / 00:\d\d\.\d$")
        press(env, win, "space")
        # playing, at least 0.5 s in (25 frames at 50 fps)
        wait_title(env, win, proc, r" - PLAYING 00:(0[1-9]|00\.[5-9])")
        press(env, None, "q")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    import json
    st = json.loads(stats.read_text())
    assert st["frames_completed"] > 20 and st["packets_lost"] == 0


@pytest.fixture(autouse=True)
def collect_tk_garbage():
    """Tk objects must die in the main thread, right after their test: left to a later automatic
    collection they die in whatever thread runs it, e.g. a later test's RTSP thread, where each Tk
    variable blocks ~1 s ("main thread is not in main loop") and DESCRIBE times out."""
    yield
    gc.collect()


FIT_CASES = [
    # frame, view, shown: 1:1 whenever the frame fits, give or take FIT_SLACK px; never scaled up
    ((640, 480), (1280, 720), (640, 480)),
    ((1280, 720), (1280, 720), (1280, 720)),
    ((640, 480), (636, 477), (640, 480)),                    # the old default view: no resample now
    ((640, 480), (640 - FIT_SLACK, 480 - FIT_SLACK), (640, 480)),
    ((640, 480), (640 - FIT_SLACK - 1, 480), (631, 473)),    # beyond the slack: scaled, aspect kept
    ((1280, 720), (850, 561), (850, 478)),
    ((1280, 720), (600, 600), (600, 338)),
    ((384, 288), (1920, 1080), (384, 288)),
    ((1280, 720), (1, 1), (1280, 720)),                      # view not laid out yet
]


@pytest.mark.parametrize("frame,view,shown", FIT_CASES)
def test_fit_size(frame, view, shown):
    assert fit_size(frame, view) == shown


def test_decode_for_view_sizes_modes_and_bad_frames():
    from media import scene_jpeg
    jpeg = scene_jpeg(1280, 720)
    img, native = decode_for_view(jpeg, (1280, 720))
    assert (img.size, img.mode, native) == ((1280, 720), "RGB", (1280, 720))
    assert img.tobytes() == Image.open(io.BytesIO(jpeg)).convert("RGB").tobytes()     # 1:1 is the decode
    small, native = decode_for_view(jpeg, (600, 400))          # 2x+: DCT scaling, then the box filter
    assert (small.size, small.mode, native) == ((600, 338), "RGB", (1280, 720))
    full = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((600, 338), Image.BOX)
    diff = ImageStat.Stat(ImageChops.difference(small, full)).mean       # ~1 of 255 per channel here
    assert max(diff) < 4, f"the scaled frame does not look like the frame: {diff}"
    gray = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("L").save(gray, "JPEG")
    assert decode_for_view(gray.getvalue(), (1280, 720))[0].mode == "L"   # no needless conversion
    with pytest.raises((OSError, ValueError)):
        decode_for_view(jpeg[:len(jpeg) // 2], (1280, 720))
    with pytest.raises((OSError, ValueError)):
        decode_for_view(b"not a jpeg", (1280, 720))


def test_view_default_size_one_photo_and_refit(display):
    """The default window is as large as the screen allows; frames that fit are shown 1:1 into one
    PhotoImage; a bigger frame is scaled to the view; a paused picture follows a window resize."""
    from media import scene_jpeg
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(None)
    app = Client(root, eng)
    try:
        pump(root, lambda: root.winfo_viewable() and app.view.winfo_width() > 1, what="window mapped")
        assert root.winfo_width() <= root.winfo_screenwidth() and root.winfo_height() <= root.winfo_screenheight()
        view = (app.view.winfo_width(), app.view.winfo_height())
        assert view[0] >= 640 and view[1] >= 480        # 1280x900 screen: 640x480 fits, 1280x720 does not
        frames = [scene_jpeg(640, 480, index=i) for i in range(3)]
        app.show_frame(Frame(frames[0], 0, 0, 0.0, time.monotonic()))
        photo = app.photo
        for i, jpeg in enumerate(frames[1:], 1):
            app.show_frame(Frame(jpeg, i * 4500, i, i / 20, time.monotonic()))
        assert app.photo is photo and app.photo_size == (640, 480) and app.frames_shown == 3
        expected = Image.open(io.BytesIO(frames[2])).convert("RGB")
        pts = [(x * 640 // 7, y * 480 // 5) for x in range(1, 7) for y in range(1, 5)]
        assert view_pixels(app, pts) == [expected.getpixel(p) for p in pts]
        # A frame larger than the view is scaled down to it, aspect kept.
        app.show_frame(Frame(scene_jpeg(1280, 720), 0, 3, 0.15, time.monotonic()))
        assert app.photo_size == fit_size((1280, 720), view) and app.photo_size[0] == view[0] < 1280
        # The window shrinks with no new frame (paused): the picture is re-fitted to the new view.
        root.geometry(f"{root.winfo_width() - 200}x{root.winfo_height()}")
        pump(root, lambda: app.view.winfo_width() == view[0] - 200, what="view resized")
        pump(root, lambda: app.photo_size == fit_size((1280, 720), (view[0] - 200, app.view.winfo_height())),
             what="picture re-fitted")
        assert app.frames_shown == 4
    finally:
        app.close()
        eng.close()
