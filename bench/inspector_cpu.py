#!/usr/bin/env python3
"""The player's CPU with the packet inspector open vs closed (384x288 movie.Mjpeg at 20 fps).

Our server runs in its own process (bench/_server_proc.py --loop); each round starts a fresh
player process (this file with --child): the real Tk window (Client.Client) under $DISPLAY or
an Xvfb started here, SETUP + PLAY, and -- in the "open" runs -- the inspector window opened
once 20 frames have been shown, following the stream with one packet selected (its fields,
diagram and hex drawn).  After 1 s of warm-up the child measures its own CPU time
(time.process_time: every thread, user + system) over --seconds of wall time while Tk's main
loop runs.  Closed and open runs alternate, so machine load falls on both alike.

    python3 bench/inspector_cpu.py             # 8 rounds of 5 s each way, ~2 min
    python3 bench/inspector_cpu.py --quick     # 1 round of 3 s each way
    python3 bench/inspector_cpu.py --modes closed,tap,open   # also the ring alone, no window
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (puts the repo on sys.path)
import _procs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(url: str, mode: str, seconds: float) -> None:
    import tkinter as tk
    from Client import Client
    from ReceiveEngine import ReceiveEngine

    root = tk.Tk()
    engine = ReceiveEngine(url)
    engine.open()
    app = Client(root, engine)
    app.ask_quit = lambda: True
    app.setup()
    result: dict = {}
    state: dict[str, Any] = {"phase": "wait-ready", "t0": 0.0, "cpu0": 0.0, "shown0": 0}

    def tick() -> None:
        now = time.monotonic()
        if state["phase"] == "wait-ready" and not app.busy and engine.state.name == "READY":
            app.play()
            state["phase"] = "wait-frames"
        elif state["phase"] == "wait-frames" and app.frames_shown >= 20:
            if mode == "open":
                app.open_inspector()
            elif mode == "tap":                      # the ring filling, no window
                from PacketInspector import PacketRing
                app.packet_ring = PacketRing()
                engine.tap = app.packet_ring.add
            state.update(phase="warm", t0=now)
        elif state["phase"] == "warm" and now - state["t0"] >= 1.0:
            if mode == "open" and app.inspector.rows:
                app.inspector.show(int(max(app.inspector.rows, key=int)))  # fields, diagram, hex drawn
            state.update(phase="measure", t0=now, cpu0=time.process_time(), shown0=app.frames_shown)
        elif state["phase"] == "measure" and now - state["t0"] >= seconds:
            wall = now - state["t0"]
            result.update(cpu_s=time.process_time() - state["cpu0"], wall_s=wall,
                          frames=app.frames_shown - state["shown0"],
                          listed=len(app.inspector.rows) if mode == "open" else 0)
            app.close()
            return
        root.after(20, tick)

    root.after(20, tick)
    root.mainloop()
    engine.close()
    print("RESULT " + json.dumps(result), flush=True)


def run_child(url: str, mode: str, seconds: float) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", url, "--seconds", str(seconds),
                           "--mode", mode], capture_output=True, text=True,
                          timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"player child failed: {proc.stderr[-800:]}")
    return json.loads(line[7:])


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="closed", help=argparse.SUPPRESS)
    p.add_argument("--modes", default="closed,open",
                   help="what to compare: closed, tap (the ring fills, no window), open (default closed,open)")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 5, quick 3)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of one run per mode (default 8, quick 1)")
    args = p.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    if args.child:
        child(args.child, args.mode, seconds)
        return 0
    rounds = args.rounds or (1 if args.quick else 8)
    from client_display import ensure_display
    xvfb = ensure_display()
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "_server_proc.py"), "--media-dir", ROOT, "--loop"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(_procs.wait_for(server, "PORT", 20).split()[1])
        url = f"rtsp://127.0.0.1:{port}/movie.Mjpeg"
        modes = [m.strip() for m in args.modes.split(",")]
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(rounds):
            for name in modes:
                runs[name].append(run_child(url, name, seconds))
        rows = []
        for name, results in runs.items():
            pct = sorted(100.0 * r["cpu_s"] / r["wall_s"] for r in results)
            rows.append({"inspector": name, "runs": len(results), "cpu_pct_median": pct[len(pct) // 2],
                         "cpu_pct_min": pct[0], "cpu_pct_max": pct[-1],
                         "fps_shown": sum(r["frames"] for r in results) / sum(r["wall_s"] for r in results),
                         "packets_listed": max(r["listed"] for r in results)})
        base = rows[0]["cpu_pct_median"]
        extra = {}
        for name in modes[1:]:
            # paired by round (the runs of a round follow each other): load changes slowly
            diffs = sorted(100.0 * (b["cpu_s"] / b["wall_s"] - a["cpu_s"] / a["wall_s"])
                           for a, b in zip(runs[modes[0]], runs[name]))
            d = diffs[len(diffs) // 2]
            extra[f"{name}_vs_{modes[0]}"] = (f"median of {len(diffs)} paired differences {d:+.2f} points of one "
                                              f"core = {100 * d / base:+.1f}% of the {modes[0]} median "
                                              f"(differences {diffs[0]:+.2f} .. {diffs[-1]:+.2f})")
        extra["command"] = " ".join(["python3", "bench/inspector_cpu.py"] + sys.argv[1:])
        _common.emit("Figure 8: player CPU, 384x288 20 fps, packet inspector closed vs open", rows,
                     ["inspector", "runs", "cpu_pct_median", "cpu_pct_min", "cpu_pct_max", "fps_shown",
                      "packets_listed"], args.json, extra)
    finally:
        try:
            assert server.stdin is not None
            server.stdin.write("quit\n")
            server.stdin.flush()
        except OSError:
            pass
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
