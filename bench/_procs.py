"""Start and stop the benchmark's server and load processes (every wait bounded)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time


BENCH = os.path.dirname(os.path.abspath(__file__))
GST_PYTHON = "/usr/bin/python3"


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    """One stdout line of proc within timeout seconds (None on timeout or EOF)."""
    assert proc.stdout is not None, "started with stdout=PIPE"
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        line = proc.stdout.readline()
        return line or None
    finally:
        sel.close()


def wait_for(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    """Read stdout lines until one starts with prefix; raise after timeout."""
    name = list(proc.args)[:3] if isinstance(proc.args, (list, tuple)) else proc.args
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {prefix!r} line from {name!r} in {timeout} s")
        line = _readline(proc, left)
        if line is None:
            if proc.poll() is not None:
                raise RuntimeError(f"{name!r} exited with {proc.returncode} before {prefix!r}")
            continue
        if line.startswith(prefix):
            return line.strip()


class Server:
    """Our server (bench/_server_proc.py) or gst-rtsp-server (bench/_gst_server.py) as a child."""

    def __init__(self, kind: str, media_dir: str, fps: float = 20.0, cprofile: int = 0,
                 log_sends: bool = False) -> None:
        self.kind = kind
        if kind == "ours":
            cmd = [sys.executable, os.path.join(BENCH, "_server_proc.py"), "--media-dir", media_dir,
                   "--fps", str(fps), "--loop"]
            if cprofile:
                cmd += ["--cprofile", str(cprofile)]
            if log_sends:
                cmd += ["--log-sends"]
            self.path = "bench.Mjpeg"
        else:
            cmd = [GST_PYTHON, os.path.join(BENCH, "_gst_server.py"), "--frames-dir",
                   os.path.join(media_dir, "frames"), "--fps", str(int(fps))]
            self.path = "bench"
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        line = wait_for(self.proc, "PORT", 30)
        fields = line.split()
        self.port = int(fields[1])
        self.pid = self.proc.pid
        self.url = f"rtsp://127.0.0.1:{self.port}/{self.path}"

    def _command(self, word: str) -> None:
        """One line to our server's stdin (bench/_server_proc.py reads commands there)."""
        assert self.proc.stdin is not None, "started with stdin=PIPE"
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def stats(self) -> dict | None:
        if self.kind != "ours":
            return None
        self._command("stats")
        return json.loads(wait_for(self.proc, "{", 10))

    def sends(self) -> list:
        """[(ssrc, rtp timestamp, send wall time)] since the last call (needs log_sends)."""
        self._command("sends")
        return json.loads(wait_for(self.proc, "[", 10))

    def stop(self) -> list[str]:
        """Stop the server; returns any profile lines it printed."""
        lines: list[str] = []
        try:
            if self.kind == "ours":
                self._command("quit")
                deadline = time.monotonic() + 15
                inside = False
                while time.monotonic() < deadline:
                    line = _readline(self.proc, deadline - time.monotonic())
                    if line is None:
                        break
                    if line.startswith("PROFILE-BEGIN"):
                        inside = True
                    elif line.startswith("PROFILE-END"):
                        break
                    elif inside:
                        lines.append(line.rstrip("\n"))
            else:
                self.proc.terminate()
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.proc.kill()
            self.proc.wait(timeout=5)
        return lines


def run_load(url: str, sessions: int, frames: int, server_pid: int = 0, fps: float = 20.0,
             timeout: float = 0.0) -> dict:
    """Run bench/_load.py to completion and return its JSON result."""
    cmd = [sys.executable, os.path.join(BENCH, "_load.py"), "--url", url, "--sessions", str(sessions),
           "--frames", str(frames), "--fps", str(fps)]
    if server_pid:
        cmd += ["--server-pid", str(server_pid)]
    timeout = timeout or (60 + sessions * 0.2 + frames / fps + 20)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        return {"error": f"load timed out after {timeout} s"}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"no result from load (rc {proc.returncode}): {err.strip()[-300:]}"}
