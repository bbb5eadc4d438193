"""Shared fixtures: an in-process server on a free loopback port, stopped by its own handle;
an Xvfb display for the window tests."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# The one place the test path is set: the modules under test, these helpers (media.py,
# rtsp_tools.py, ...), and after them the tools and benchmarks some tests drive.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
for _extra in (ROOT / "tools", ROOT / "bench"):
    if str(_extra) not in sys.path:
        sys.path.append(str(_extra))

from MediaLibrary import MediaLibrary  # noqa: E402
from Server import RtspServer  # noqa: E402
from ServerWorker import ServerConfig  # noqa: E402

MOVIE = ROOT / "movie.Mjpeg"


class RunningServer:
    """An RtspServer on 127.0.0.1:<free port> in a thread of this process."""

    def __init__(self, media_dir, host="127.0.0.1", **config):
        media = MediaLibrary(media_dir, fps=config.pop("fps", None), payload_size=config.pop("payload_size", 1400),
                             **{k: config.pop(k) for k in ("lab_max_frame",) if k in config})
        self.config = ServerConfig(media=media, **config)
        self.server = RtspServer(host, 0, self.config)
        self.port = self.server.port
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-server", daemon=True)
        self.thread.start()

    def url(self, name="movie.Mjpeg"):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtsp://{host}:{self.port}/{name}"

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "server did not stop within 5 s"


@pytest.fixture
def start_server():
    servers = []

    def start(media_dir=ROOT, **config):
        server = RunningServer(media_dir, **config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture(scope="session")
def display():
    """One Xvfb for the whole run: Xlib exits the process when a display Tk used goes away."""
    if shutil.which("Xvfb") is None:
        print("SKIP reason: Xvfb missing")
        pytest.skip("Xvfb missing")
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()      # Xvfb writes the display number once it accepts clients
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)
