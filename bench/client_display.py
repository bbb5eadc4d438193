#!/usr/bin/env python3
"""Figure 5: the real Client's decode + display time per frame, and send -> on-screen latency.

Runs the Tk player (Client.Client) under the current $DISPLAY, or under an Xvfb it starts.

  decode+display: Client.show_frame(Frame) -- Pillow decode from memory, shown 1:1 when the frame
      fits the view (draft() + a box filter only when it must shrink), PhotoImage.paste -- then
      root.update_idletasks() so Tk redraws and the pixels are handed to the X server.  Generated
      frames (quality 80) at 640x480 and 1280x720, in the player's default window (a 1280x720 view
      when the screen allows: the Xvfb started here is 1920x1200) and in a window larger than the
      frame; Pillow's decode alone is shown beside.  Two figures per case: the client's own
      display_times (decode+paste) and the wall time including the redraw.
  end-to-end: our server (bench/_server_proc.py --log-sends, another process) streams the
      640x480 ~20 KB movie to a ReceiveEngine + Client in this process; the server notes
      time.time() as each frame's first packet goes out, the client when show_frame +
      update_idletasks of that frame returned (same host, same clock).  The engine wakes Tk
      when a frame completes (no drain tick since issue 15).

    python3 bench/client_display.py            # ~25 s
    python3 bench/client_display.py --quick    # ~5 s
"""

from __future__ import annotations

import gc
import io
import os
import shutil
import subprocess
import time

import _common
import _procs
import make_movie
from PIL import Image


def ensure_display():
    """$DISPLAY if set, else an Xvfb we start (returned so the caller stops it)."""
    if os.environ.get("DISPLAY"):
        return None
    exe = shutil.which("Xvfb")
    if not exe:
        raise SystemExit("no $DISPLAY and no Xvfb: cannot measure the Tk client")
    for n in range(91, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                os.environ["DISPLAY"] = f":{n}"
                return proc
    raise SystemExit("could not start Xvfb")


def decode_display(quick: bool) -> list:
    import tkinter as tk
    from Client import Client
    from ReceiveEngine import Frame, ReceiveEngine
    rows = []
    count = 10 if quick else 60
    for width, height in ((640, 480), (1280, 720)):
        frames = make_movie.make_frames(size=(width, height), frames=count, quality=80)
        decode_only = []
        for jpeg in frames:
            t0 = time.perf_counter()
            Image.open(io.BytesIO(jpeg)).convert("RGB")
            decode_only.append(time.perf_counter() - t0)
        for window in ("default", "large"):
            root = tk.Tk()
            engine = ReceiveEngine(None)
            app = Client(root, engine)
            if window == "large":
                root.geometry(f"{width + 500}x{height + 250}")
            root.update()
            walls = []
            for i, jpeg in enumerate(frames + frames[:3]):
                t0 = time.perf_counter()
                app.show_frame(Frame(jpeg, i * 4500, i, i / 20, time.monotonic()))
                root.update_idletasks()
                walls.append(time.perf_counter() - t0)
                root.update()
            own = app.display_times[3:]
            walls = walls[3:]
            view = (app.view.winfo_width(), app.view.winfo_height())
            shown = app.photo_size
            app.close() if hasattr(app, "close") else None
            try:
                root.destroy()
            except tk.TclError:
                pass
            engine.close()
            del app, engine, root
            gc.collect()  # Tk variables must die here, in the main thread, not in a later engine thread
            rows.append({"frame": f"{width}x{height}", "window": window, "view": f"{view[0]}x{view[1]}",
                         "shown_as": f"{shown[0]}x{shown[1]}" if shown else "-",
                         "frames": len(walls),
                         "decode_paste_ms_p50": round(1000 * _common.percentile(own, 50), 3),
                         "with_redraw_ms_p50": round(1000 * _common.percentile(walls, 50), 3),
                         "with_redraw_ms_p99": round(1000 * _common.percentile(walls, 99), 3),
                         "frame_bytes": sum(map(len, frames)) // len(frames),
                         "pillow_decode_only_ms_p50": round(1000 * _common.percentile(decode_only, 50), 3)})
    return rows


def end_to_end(seconds: float) -> dict:
    import tkinter as tk
    from Client import Client
    from ReceiveEngine import ReceiveEngine
    media = _common.movie_dir(640, 480, 200, 75, jpeg_dir=False)
    server = _procs.Server("ours", media, log_sends=True)
    shown: dict[int, float] = {}
    try:
        root = tk.Tk()
        engine = ReceiveEngine(server.url)
        engine.open()
        app = Client(root, engine)
        original = app.show_frame

        def timed_show(frame):
            original(frame)
            root.update_idletasks()
            shown.setdefault(frame.rtp_timestamp, time.time())
        setattr(app, "show_frame", timed_show)
        engine.describe()
        engine.setup()
        engine.play()
        root.after(int(seconds * 1000), root.quit)
        root.mainloop()
        try:
            engine.teardown()
        except Exception as exc:  # noqa: BLE001  the figure does not depend on a clean TEARDOWN
            print(f"# teardown: {exc}")
        sends = server.sends()
        if hasattr(app, "close"):
            try:
                app.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            root.destroy()
        except tk.TclError:
            pass
        engine.close()
        del app, engine, root
        gc.collect()
    finally:
        server.stop()
    sent = {ts: wall for _, ts, wall in sends}
    lat = [shown[ts] - sent[ts] for ts in shown if ts in sent]
    return {"frames_sent": len(sent), "frames_shown": len(shown), "matched": len(lat),
            "e2e_p50_ms": round(1000 * _common.percentile(lat, 50), 2) if lat else None,
            "e2e_p99_ms": round(1000 * _common.percentile(lat, 99), 2) if lat else None,
            "e2e_max_ms": round(1000 * max(lat), 2) if lat else None}


def main() -> None:
    args = _common.parser(__doc__.split("\n")[0]).parse_args()
    xvfb = ensure_display()
    try:
        rows = decode_display(args.quick)
        e2e = end_to_end(3.0 if args.quick else 15.0)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            try:
                xvfb.wait(timeout=5)
            except subprocess.TimeoutExpired:
                xvfb.kill()
    _common.emit("Figure 5a: Client decode + display per frame (Client.show_frame under X)", rows,
                 ["frame", "window", "view", "shown_as", "frames", "frame_bytes", "pillow_decode_only_ms_p50",
                  "decode_paste_ms_p50",
                  "with_redraw_ms_p50", "with_redraw_ms_p99"], args.json,
                 {"display": os.environ.get("DISPLAY", "") + (" (Xvfb started by the bench)" if xvfb else ""),
                  "target": "<= 3 ms at 640x480, <= 7 ms at 1280x720"})
    _common.emit("Figure 5b: end-to-end latency, server send -> shown by the Tk client, loopback", [e2e],
                 ["frames_sent", "frames_shown", "matched", "e2e_p50_ms", "e2e_p99_ms", "e2e_max_ms"], args.json,
                 {"target": "p99 < 30 ms (seed: <= 0.5 s)"})


if __name__ == "__main__":
    main()
