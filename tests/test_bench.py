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


def _skip_reason(script: str) -> str | None:
    import shutil
    if script == "player_cpu.py" and not (shutil.which("Xvfb") and shutil.which("xdotool")):
        return "no Xvfb or xdotool for the player CPU benchmark"
    if script in ("client_display.py", "inspector_cpu.py") and not os.environ.get("DISPLAY") \
            and not shutil.which("Xvfb"):
        return "no $DISPLAY and no Xvfb for the Tk client benchmark"
    return None


def _run(script: str, timeout: float) -> subprocess.CompletedProcess:
    # env=os.environ, not the process's C environment: Tk writes DISPLAY there when a GUI test opens
    # a window on its own Xvfb (tk.Tk(screenName=...)), and that Xvfb is gone by now.
    try:
        return subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                              timeout=timeout, cwd=BENCH.parent, env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -9, "", f"timed out after {timeout} s")


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """Every runnable benchmark, three at a time: the quick figures are noisy anyway (they are
    printed, never asserted), and most of a quick run is waiting on paced streams."""
    from concurrent.futures import ThreadPoolExecutor
    todo = [(script, timeout) for script, _, timeout in CASES if _skip_reason(script) is None]
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip([s for s, _ in todo], pool.map(lambda job: _run(*job), todo)))
    return done


@pytest.mark.parametrize("script,title,timeout", CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_quick(script, title, timeout, runs):
    why = _skip_reason(script)
    if why is not None:
        pytest.skip(why)
    proc = runs[script]
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert f"# {title}" in out, out[-2000:]
    assert "# machine:" in out
    header = next(line for line in out.splitlines() if not line.startswith("#") and not line.startswith("{"))
    assert header.split()  # a table header follows the title
