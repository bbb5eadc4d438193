"""The README's demo command, headless (no DISPLAY): it plays, prints progress, and leaves no server behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_plays_headless_and_stops_its_server():
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    r = subprocess.run(["bash", "tools/demo.sh", "--duration", "2"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    assert "no display: playing headless" in out
    assert "stopped: --duration 2 s reached" in out
    frames = [int(n) for n in re.findall(r"\] frame (\d+)/500 ", out)]        # the frame shown, from 0
    assert frames and frames[-1] >= 20, out[-1000:]          # 2 s at 20 fps
    port = int(re.search(r"server: rtsp://127\.0\.0\.1:(\d+)/movie\.Mjpeg", out).group(1))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        still_running = True
    except OSError:
        still_running = False
    assert not still_running, "the demo's server outlived the demo"
