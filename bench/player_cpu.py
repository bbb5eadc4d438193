#!/usr/bin/env python3
"""Figure 10: the player's CPU -- idle, paused and playing -- beside ffplay and GStreamer.

One run, one Xvfb (started here), our server (bench/_server_proc.py, --loop) serving generated
movies of 384x288, 640x480 and 1280x720 at 20 fps (quality 75).  One player at a time:

  ours window    python3 ClientLauncher.py URL, driven like a person with xdotool: the window
                 opens (DESCRIBE done: "idle INIT" is measured here), space plays ("playing"),
                 space pauses ("paused"), q quits.  The title tells the bench the state.
  ours --simple  the same window with --simple (three buttons), playing.
  ours headless  python3 ClientLauncher.py URL --headless --duration T.
  ffplay         ffplay -an -sn URL (SDL window on the Xvfb).
  gst            gst-launch-1.0 rtspsrc location=URL ! rtpjpegdepay ! jpegdec ! videoconvert !
                 ximagesink  (Debian: gstreamer1.0-x; videoconvert because ximagesink takes RGB
                 and jpegdec gives I420 -- our player's libjpeg converts to RGB as well).

Each figure is the CPU seconds (utime + stime from /proc/PID/stat, all threads) of the player's
whole process over a window of --seconds of steady state (start-up excluded), the share of one
core, CPU ms per frame (20 fps x window), the X server's CPU in the same window (Xvfb does the
pixel copies of XPutImage for every player), and the ratio to GStreamer's figure of the same size
and repetition.  Every configuration runs --repeat times (default 2): the cores are shared.

The floor: in this process, a Tk window with our Client shows the same frames (Client.show_frame
+ update_idletasks: Pillow decode from memory, PhotoImage paste, Tk redraw) and the CPU per frame
of decode alone and of the whole show is measured (time.process_time) -- what any Pillow + Tk
player pays per frame.  --profile then records our window player while it plays 640x480 with
py-spy (pip install py-spy; active samples only, per thread, self time by function).

    python3 bench/player_cpu.py                    # ~8 min
    python3 bench/player_cpu.py --seconds 6 --repeat 1 --sizes 640x480
    python3 bench/player_cpu.py --profile          # also the py-spy profile of our player
    python3 bench/player_cpu.py --quick            # ~20 s: 384x288, ours only, short windows
"""

from __future__ import annotations

import gc
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any, Dict, List, Optional, Tuple

import _common
import _procs

FPS = 20.0
QUALITY = 75
SIZES = {"384x288": (384, 288), "640x480": (640, 480), "1280x720": (1280, 720)}


# -- X: our own Xvfb, windows by title --------------------------------------------------------------
def start_xvfb() -> Tuple[subprocess.Popen, str]:
    exe = shutil.which("Xvfb")
    if not exe:
        raise SystemExit("no Xvfb: install xvfb (bash tools/test.sh does)")
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()      # written once the server accepts clients
    if not number.isdigit():
        proc.kill()
        raise SystemExit("Xvfb did not start")
    return proc, f":{number}"


def xdo(env: dict, *args: str) -> str:
    r = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


def windows(env: dict) -> List[str]:
    return xdo(env, "search", "--onlyvisible", "--name", "").split()


def wait_new_window(env: dict, before: List[str], proc: subprocess.Popen, timeout: float,
                    name: Optional[str] = None) -> str:
    """The first visible window that was not there before (and whose title matches ``name``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited ({proc.returncode}) before its window appeared")
        new = [w for w in windows(env) if w not in before]
        for w in new:
            if name is None or re.search(name, xdo(env, "getwindowname", w)):
                return w
        time.sleep(0.1)
    raise TimeoutError(f"no window from {proc.args!r} within {timeout} s")


def wait_title(env: dict, win: str, proc: subprocess.Popen, pattern: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    title = ""
    while time.monotonic() < deadline and proc.poll() is None:
        title = xdo(env, "getwindowname", win)
        if re.search(pattern, title):
            return title
        time.sleep(0.05)
    raise TimeoutError(f"title never matched {pattern!r} (last {title!r}, rc {proc.poll()})")


def key(env: dict, win: str, name: str) -> None:
    xdo(env, "windowfocus", "--sync", win)
    xdo(env, "key", name)


# -- measuring ------------------------------------------------------------------------------------
class Window:
    """CPU seconds of the player and of the X server over one measuring window."""

    def __init__(self, pid: int, xvfb_pid: int) -> None:
        self.pid, self.xvfb_pid = pid, xvfb_pid

    def measure(self, seconds: float) -> Dict[str, float]:
        c0, x0, t0 = _common.cpu_seconds(self.pid), _common.cpu_seconds(self.xvfb_pid), time.monotonic()
        time.sleep(seconds)
        c1, x1, t1 = _common.cpu_seconds(self.pid), _common.cpu_seconds(self.xvfb_pid), time.monotonic()
        wall = t1 - t0
        return {"seconds": round(wall, 2), "cpu_s": round(c1 - c0, 3), "core_pct": round(100 * (c1 - c0) / wall, 2),
                "xvfb_cpu_s": round(x1 - x0, 3)}


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def client_cmd(url: str, *extra: str) -> List[str]:
    return [sys.executable, os.path.join(_common.REPO, "ClientLauncher.py"), url, *extra]


def run_ours_window(env: dict, xvfb_pid: int, url: str, warm: float, seconds: float, idle: bool,
                    simple: bool = False, profile: Optional[str] = None) -> List[Dict]:
    """Our window: [idle INIT], playing, [paused]; rows without the player/size columns."""
    rows = []
    before = windows(env)
    proc = subprocess.Popen(client_cmd(url, *(["--simple"] if simple else [])), env=env, cwd=_common.REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        win = wait_new_window(env, before, proc, 30, name="RTP player")
        wait_title(env, win, proc, r" - INIT 00:00\.0 / \d\d:\d\d\.\d$")      # DESCRIBE done
        w = Window(proc.pid, xvfb_pid)
        if idle:
            time.sleep(warm / 2)
            rows.append({"state": "idle INIT", **w.measure(seconds)})
        key(env, win, "space")
        wait_title(env, win, proc, r" - PLAYING 00:0[0-9]\.[1-9]")
        time.sleep(warm)
        if profile:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--duration", str(int(seconds)),
                                    "--rate", "250", "--format", "raw", "--threads", "--nonblocking",
                                    "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        rows.append({"state": "playing", **w.measure(seconds)})
        if profile:
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                print(f"# py-spy failed: {err.strip()[-300:]}")
        if idle:
            key(env, win, "space")
            wait_title(env, win, proc, r" - READY ")
            time.sleep(warm / 2)
            rows.append({"state": "paused", **w.measure(seconds)})
        key(env, win, "q")
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    finally:
        stop(proc)
    return rows


def run_other(env: dict, xvfb_pid: int, cmd: List[str], warm: float, seconds: float,
              window: bool = True) -> Dict:
    """ffplay, gst-launch or our headless player: wait for its window (or ``warm``), then measure."""
    before = windows(env) if window else []
    proc = subprocess.Popen(cmd, env=env, cwd=_common.REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        if window:
            wait_new_window(env, before, proc, 30)
        time.sleep(warm)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} while warming up")
        row = {"state": "playing", **Window(proc.pid, xvfb_pid).measure(seconds)}
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} while measured")
        return row
    finally:
        stop(proc, signal.SIGINT if cmd[0].endswith("gst-launch-1.0") else signal.SIGTERM)


# -- the floor: decode, and decode + paste + redraw, in this process --------------------------------
def floor(display: str, media: str, count: int) -> Dict[str, Any]:
    os.environ["DISPLAY"] = display
    import tkinter as tk
    from PIL import Image
    from Client import Client
    from ReceiveEngine import Frame, ReceiveEngine
    from VideoStream import VideoStream
    stream = VideoStream(os.path.join(media, "bench.Mjpeg"))
    frames = []
    for _ in range(count):
        data = stream.nextFrame()
        if not data:
            break
        frames.append(bytes(data))
    decode = 0.0
    for jpeg in frames:
        t0 = time.process_time()
        Image.open(io.BytesIO(jpeg)).load()
        decode += time.process_time() - t0
        time.sleep(1.0 / FPS)
    decode /= len(frames)
    root = tk.Tk()
    engine = ReceiveEngine(None)
    app = Client(root, engine)
    root.update()
    for jpeg in frames[:3]:                 # the PhotoImage is made once, then pasted into
        app.show_frame(Frame(jpeg, 0, 0, 0.0, time.monotonic()))
        root.update()
    # Paced like the stream (a frame every 1/FPS s, Tk idle in between): a tight loop keeps
    # caches warm and costs a third less per frame than a player showing 20 frames a second.
    show = 0.0
    next_at = time.monotonic()
    for i, jpeg in enumerate(frames):
        next_at += 1.0 / FPS
        t0 = time.process_time()
        app.show_frame(Frame(jpeg, i * 4500, i, i / FPS, time.monotonic()))
        root.update_idletasks()
        show += time.process_time() - t0
        time.sleep(max(0.0, next_at - time.monotonic()))
    show /= len(frames)
    shown = app.photo_size
    app.close()
    try:
        root.destroy()
    except tk.TclError:
        pass
    engine.close()
    del app, engine, root
    gc.collect()
    return {"decode_ms": round(1000 * decode, 3), "show_ms": round(1000 * show, 3),
            "shown_as": f"{shown[0]}x{shown[1]}" if shown else "-",
            "floor_core_pct": round(100 * show * FPS, 2)}


# -- the profile ------------------------------------------------------------------------------------
def summarize_profile(path: str, top: int = 25) -> List[str]:
    """py-spy raw output ('thread (..);frame;frame N' lines): samples per thread, self time by function."""
    per_thread: Counter = Counter()
    leaf: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, samples = line.rpartition(" ")
            count = int(samples)
            frames = stack.split(";")
            thread = frames[0]
            total += count
            per_thread[re.sub(r"\(0x[0-9a-f]+\)", "", thread).strip()] += count
            funcs = [re.sub(r" \((.*/)?([^/]+):\d+\)$", r" (\2)", fr) for fr in frames[1:]]
            if funcs:
                leaf[funcs[-1]] += count
                for fn in set(funcs):
                    inclusive[fn] += count
    out = [f"py-spy active samples: {total}"]
    for thread, n in per_thread.most_common():
        out.append(f"  {100 * n / max(1, total):5.1f}%  {thread}")
    out.append("self time:")
    for fn, n in leaf.most_common(top):
        out.append(f"  {100 * n / max(1, total):5.1f}%  {fn}")
    out.append("inclusive (top):")
    for fn, n in inclusive.most_common(top):
        out.append(f"  {100 * n / max(1, total):5.1f}%  {fn}")
    return out


def main() -> None:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each measuring window")
    p.add_argument("--warm", type=float, default=2.0, help="seconds of playing before measuring")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--players", nargs="+", default=["window", "headless", "ffplay", "gst"],
                   choices=["window", "headless", "ffplay", "gst"])
    p.add_argument("--no-idle", action="store_true", help="skip idle INIT / paused / --simple")
    p.add_argument("--profile", action="store_true", help="py-spy profile of our window playing 640x480")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.warm, args.repeat, args.sizes = 2.0, 1.0, 1, ["384x288"]
        args.players = [pl for pl in args.players if pl in ("window", "headless")]
    if shutil.which("xdotool") is None:
        raise SystemExit("xdotool missing (bash tools/test.sh installs it)")
    have_gst = shutil.which("gst-launch-1.0") is not None and subprocess.run(
        ["gst-inspect-1.0", "ximagesink"], capture_output=True).returncode == 0
    have_ffplay = shutil.which("ffplay") is not None
    notes = {}
    if "gst" in args.players and not have_gst:
        args.players.remove("gst")
        notes["gst"] = "skipped: gst-launch-1.0 or ximagesink missing (Debian: gstreamer1.0-x)"
    if "ffplay" in args.players and not have_ffplay:
        args.players.remove("ffplay")
        notes["ffplay"] = "skipped: ffplay missing (Debian: ffmpeg)"
    xvfb, display = start_xvfb()
    env = dict(os.environ, DISPLAY=display)
    rows: List[Dict] = []
    floors: List[Dict] = []
    profile_lines: List[str] = []
    frames_needed = int(FPS * (args.warm * 2 + args.seconds * 2 + 10))
    try:
        for size in args.sizes:
            w, h = SIZES[size]
            media = _common.movie_dir(w, h, max(200, frames_needed), QUALITY)
            server = _procs.Server("ours", media, fps=FPS)
            try:
                for rep in range(1, args.repeat + 1):
                    for player in args.players:
                        idle = not args.no_idle and size == ("640x480" if "640x480" in args.sizes else args.sizes[0])
                        if player == "window":
                            got = run_ours_window(env, xvfb.pid, server.url, args.warm, args.seconds, idle)
                            if idle:
                                got += [dict(r, state="--simple " + r["state"]) for r in run_ours_window(
                                    env, xvfb.pid, server.url, args.warm, args.seconds, False, simple=True)]
                        elif player == "headless":
                            got = [run_other(env, xvfb.pid, client_cmd(
                                server.url, "--headless", "--duration", str(args.warm + args.seconds + 5)),
                                args.warm + 0.5, args.seconds, window=False)]
                        elif player == "ffplay":
                            got = [run_other(env, xvfb.pid, ["ffplay", "-hide_banner", "-loglevel", "error",
                                                             "-an", "-sn", server.url], args.warm, args.seconds)]
                        else:
                            got = [run_other(env, xvfb.pid, [
                                "gst-launch-1.0", "-q", "rtspsrc", f"location={server.url}", "!", "rtpjpegdepay",
                                "!", "jpegdec", "!", "videoconvert", "!", "ximagesink"], args.warm, args.seconds)]
                        for r in got:
                            frames = FPS * r["seconds"] if "playing" in r["state"] else 0
                            rows.append({"size": size, "player": "ours" if player == "window" else
                                         ("ours headless" if player == "headless" else player),
                                         "run": rep, **r,
                                         "ms_per_frame": round(1000 * r["cpu_s"] / frames, 2) if frames else None})
                            print("#", rows[-1], flush=True)
                if args.profile and size == "640x480":
                    path = f"/tmp/player_cpu_profile_{os.getpid()}.txt"
                    run_ours_window(env, xvfb.pid, server.url, args.warm, args.seconds, False, profile=path)
                    if os.path.exists(path):
                        profile_lines = summarize_profile(path)
            finally:
                server.stop()
            floors.append({"size": size, **floor(display, media, 20 if args.quick else 100)})
    finally:
        stop(xvfb)
    for r in rows:
        gst = [g for g in rows if g["player"] == "gst" and g["size"] == r["size"] and g["run"] == r["run"]]
        r["vs_gst"] = round(r["cpu_s"] / gst[0]["cpu_s"], 2) if gst and gst[0]["cpu_s"] > 0 \
            and "playing" in r["state"] else None
    _common.emit("Figure 10: player CPU (whole process, /proc utime+stime) under Xvfb, 20 fps", rows,
                 ["size", "player", "state", "run", "seconds", "cpu_s", "core_pct", "ms_per_frame", "xvfb_cpu_s",
                  "vs_gst"], args.json,
                 {"targets": "idle/paused <= 0.5% core; playing <= 1.5x gst (640x480, 1280x720) and <= ffplay; "
                             "headless <= 0.5x window", **notes})
    _common.emit("Figure 10b: the floor, our Client.show_frame in this process (CPU per frame)", floors,
                 ["size", "shown_as", "decode_ms", "show_ms", "floor_core_pct"], args.json,
                 {"show_ms": "Pillow decode + PhotoImage paste + Tk redraw (update_idletasks), X server excluded"})
    if profile_lines:
        print("# Figure 10c: py-spy profile of our window playing 640x480")
        for line in profile_lines:
            print("#", line)


if __name__ == "__main__":
    main()
