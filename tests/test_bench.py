"""Every benchmark runs in --quick mode and prints its figure (nothing about speed is asserted)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

CASES = [
    ("rtp_packet.py", "Figure 1", 60),
    ("rtp_jpeg.py", "Figure 2", 60),
    ("capacity.py", "Figure 3", 120),
    ("streamer_cpu.py", "Figure 3c", 60),
    ("rtsp_latency.py", "Figure 4", 120),
    ("client_display.py", "Figure 5", 120),
    ("memory.py", "Figure 6", 120),
    ("convert.py", "Figure 7a", 180),
    ("inspector_cpu.py", "Figure 8", 120),
    ("live_mcast_cpu.py", "Figure 9", 120),
    ("player_cpu.py", "Figure 10", 120),
]


@pytest.mark.parametrize("script,title,timeout", CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_quick(script, title, timeout):
    if script == "player_cpu.py":
        import shutil
        if not (shutil.which("Xvfb") and shutil.which("xdotool")):
            pytest.skip("no Xvfb or xdotool for the player CPU benchmark")
    if script in ("client_display.py", "inspector_cpu.py") and not os.environ.get("DISPLAY"):
        import shutil
        if not shutil.which("Xvfb"):
            pytest.skip("no $DISPLAY and no Xvfb for the Tk client benchmark")
    # env=os.environ, not the process's C environment: Tk writes DISPLAY there when a GUI test opens
    # a window on its own Xvfb (tk.Tk(screenName=...)), and that Xvfb is gone by now.
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCH.parent, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert f"# {title}" in out, out[-2000:]
    assert "# machine:" in out
    header = next(line for line in out.splitlines() if not line.startswith("#") and not line.startswith("{"))
    assert header.split()  # a table header follows the title
