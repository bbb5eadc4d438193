"""Portability (issue 11): the server and the headless player with Windows' socket/signal surface
simulated and with tkinter absent (tests/platform_sim.py), every non-GUI test module importable
without Tk, the stated minimum Python refused below it, media names with spaces and non-ASCII."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

import PythonVersion
from conftest import ROOT
from VideoStream import VideoStream

SIM = str(ROOT / "tests" / "platform_sim.py")
FPS = 100
CTRL_BREAK = 21  # tests/platform_sim.py's stand-in number for Windows' SIGBREAK
ENV = {**os.environ, "PYTHONUTF8": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _sigint_default() -> None:
    """In the child before exec: Ctrl-C back to its default, so that Python makes it KeyboardInterrupt
    (a background job of a script, e.g. tools/test.sh's other-Pythons run, starts with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pixels(jpeg: bytes) -> bytes:
    return Image.open(io.BytesIO(jpeg)).convert("RGB").tobytes()


@pytest.fixture(scope="module")
def source():
    vs = VideoStream(ROOT / "movie.Mjpeg")
    return [pixels(vs.frame(i)) for i in range(len(vs))]


class ServerProcess:
    """Server.py in a child process (through the simulator when ``sim`` is given), its log in a file."""

    def __init__(self, *args: str, sim: tuple[str, ...] = (), cwd: Path = ROOT) -> None:
        cmd = [sys.executable] + ([SIM, *sim] if sim else []) + [str(ROOT / "Server.py"), "0",
                                                                  "--host", "127.0.0.1", *args]
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=self.err,
                                     preexec_fn=_sigint_default if os.name == "posix" else None)
        self.wait_for(r"on RTSP port (\d+)", "the server to listen")
        m = re.search(r"on RTSP port (\d+)", self.text())
        assert m
        self.port = int(m.group(1))

    def text(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def wait_for(self, pattern: str, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            assert self.proc.poll() is None, f"server exited waiting for {what}: {self.text()[-2000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.text()[-2000:]}"
            time.sleep(0.05)

    def stop(self, signum: int = CTRL_BREAK) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise


def play(url_or_args: list[str], tmp_path: Path, *extra: str, sim: tuple[str, ...] = (),
         save_name: str = "copy.Mjpeg") -> tuple[subprocess.CompletedProcess, dict, Path]:
    save, stats = tmp_path / save_name, tmp_path / "stats.json"
    cmd = [sys.executable] + ([SIM, *sim] if sim else []) + [
        str(ROOT / "ClientLauncher.py"), *url_or_args, "--headless", "--save", str(save),
        "--stats-json", str(stats), "--duration", "30", *extra]
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, timeout=60)
    st = json.loads(stats.read_text()) if stats.exists() else {}
    return done, st, save


def assert_every_frame(done, st: dict, save: Path, source) -> None:
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert st["end_reason"] == "end of stream", st
    assert st["frames_completed"] == len(source) == 500, st
    assert (st["frames_dropped"], st["packets_lost"]) == (0, 0), st
    got = VideoStream(save)
    assert len(got) == len(source)
    for i in range(len(source)):
        assert pixels(got.frame(i)) == source[i], f"frame {i} differs"


# --------------------------------------------------------------------------- the simulator itself
PROBE = """
import select, signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a, b = socket.socketpair()
missing = [n for n in ("MSG_DONTWAIT", "SO_REUSEPORT", "AF_UNIX", "UDP_SEGMENT") if hasattr(socket, n)]
missing += [n for n in ("sendmsg", "recvmsg") if hasattr(s, n) or hasattr(socket.socket, n)]
missing += [n for n in ("poll", "epoll") if hasattr(select, n)]
missing += [n for n in ("SIGTERM", "SIGHUP", "SIGKILL", "SIGPIPE") if hasattr(signal, n)]
try:
    import tkinter
    missing.append("tkinter")
except ImportError as exc:
    print("no tk:", exc)
print("still there:", missing, "SIGBREAK", signal.SIGBREAK, "pair", a.family.name)
"""


def test_simulator_takes_away_what_windows_lacks(tmp_path):
    """The stand-in is honest: what it claims to remove is gone in the child, and nothing else
    changed here (the parent still has MSG_DONTWAIT and sendmsg on Linux)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    out = subprocess.run([sys.executable, SIM, "--windows", "--no-tk", str(probe)], capture_output=True,
                         text=True, timeout=30, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "still there: [] SIGBREAK 21 pair AF_INET" in out.stdout, out.stdout
    assert "no tk: No module named 'tkinter' (simulated Python without Tk)" in out.stdout, out.stdout
    if sys.platform.startswith("linux"):
        import socket
        assert hasattr(socket, "MSG_DONTWAIT") and hasattr(socket.socket, "sendmsg")


# --------------------------------------------------------------------------- simulated Windows
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_simulated_windows_plays_every_frame_and_ctrl_break_stops(source, tmp_path, transport):
    """Server and headless player both with Windows' socket/signal surface and no Tk: the whole
    movie, pixel-equal, over UDP and over TCP; Ctrl-Break stops the server as Ctrl-C does."""
    sim = ("--windows", "--no-tk")
    srv = ServerProcess("--fps", str(FPS), sim=sim)
    try:
        done, st, save = play([f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg", "--transport", transport],
                              tmp_path, sim=sim)
        assert_every_frame(done, st, save, source)
    finally:
        t0 = time.monotonic()
        srv.stop(CTRL_BREAK)
    text = srv.text()
    assert srv.proc.returncode == 0 and time.monotonic() - t0 < 2.0, text[-2000:]
    assert "Ctrl-Break: stopped" in text and "Traceback" not in text, text[-2000:]


def test_simulated_windows_ctrl_c_sends_bye(tmp_path):
    """Ctrl-C (SIGINT, which Windows has) stops a simulated-Windows server within a second and a
    playing player ends on the server's BYE."""
    sim = ("--windows", "--no-tk")
    srv = ServerProcess("--fps", "20", sim=sim)
    cmd = [sys.executable, SIM, *sim, str(ROOT / "ClientLauncher.py"),
           f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg", "--headless"]
    player = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              preexec_fn=_sigint_default)
    try:
        srv.wait_for(" PLAY ", "the player's PLAY")
        srv.wait_for("RR fraction lost", "the player's first receiver report (so RTP flows)")
        t0 = time.monotonic()
        srv.stop(2)  # SIGINT
        took = time.monotonic() - t0
        _, err = player.communicate(timeout=10)
    finally:
        if player.poll() is None:
            player.kill()
    assert srv.proc.returncode == 0 and took <= 1.5, srv.text()[-2000:]
    assert "Ctrl-C: stopped" in srv.text()
    assert player.returncode == 0, err
    assert err.decode().strip().splitlines()[-1] == "stopped: the server said BYE (server shutting down)"


# --------------------------------------------------------------------------- no Tk
def test_no_tk_window_is_one_line_pointing_at_headless(tmp_path):
    srv = ServerProcess("--fps", str(FPS))
    try:
        out = subprocess.run([sys.executable, SIM, "--no-tk", str(ROOT / "ClientLauncher.py"),
                              f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg"], capture_output=True, text=True,
                             timeout=30, env=ENV)
    finally:
        srv.stop(2)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("error: this Python has no Tkinter") and "--headless" in lines[0]
    assert "apt install python3-tk" in lines[0] and "brew install python-tk" in lines[0]


GUI_ONLY = {"tests/test_client_gui.py", "tests/test_client_ux.py"}  # every test in them needs the window


def test_no_tk_every_test_module_collects_and_gui_tests_skip_with_reason(tmp_path):
    """Without tkinter, pytest collects every test module (no import error: the non-GUI ones do
    not import Tk or PIL.ImageTk), and the GUI tests skip saying why."""
    collect = subprocess.run([sys.executable, SIM, "--no-tk", "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, env=ENV)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-2000:]
    assert "error" not in collect.stdout.splitlines()[-1].lower(), collect.stdout[-3000:]
    modules = {line.split("::")[0] for line in collect.stdout.splitlines() if "::" in line}
    every = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")}
    assert every - modules == GUI_ONLY, (
        f"without Tk these test modules skip whole: {sorted(every - modules - GUI_ONLY)} (a module-level "
        "importorskip('tkinter') also skips their headless tests: mark only the window tests)")
    gui = subprocess.run([sys.executable, SIM, "--no-tk", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_client_gui.py", "tests/test_client_faults.py", "-k",
                          "gui or window"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert gui.returncode == 0, gui.stdout[-3000:]
    assert re.search(r"SKIPPED \[\d+\] tests/test_client_gui.py.*tkinter", gui.stdout), gui.stdout[-3000:]
    assert re.search(r"SKIPPED \[\d+\] tests/test_client_faults.py.*tkinter", gui.stdout), gui.stdout[-3000:]


# --------------------------------------------------------------------------- paths
def test_media_folder_and_movie_names_with_spaces_and_non_ascii(source, tmp_path):
    """A media folder and movie names with spaces and non-ASCII letters: served, listed, played by
    URL (percent-encoded) and by the lab's arguments (raw name), saved to such a path too."""
    folder = tmp_path / "ma médiathèque Ünï"
    folder.mkdir()
    names = ["le film numéro 1.Mjpeg", "映画 2.Mjpeg"]
    for name in names:
        shutil.copyfile(ROOT / "movie.Mjpeg", folder / name)
    srv = ServerProcess("--fps", str(FPS), "--media-dir", str(folder), sim=("--windows",), cwd=tmp_path)
    try:
        for name in names:
            assert f"/{quote(name)}" in srv.text(), srv.text()  # the log's URLs are ready to copy
        out = tmp_path / "sortie à côté"
        out.mkdir()
        done, st, save = play([f"rtsp://127.0.0.1:{srv.port}/{quote(names[0])}"], out, sim=("--windows",),
                              save_name="copie é 1.Mjpeg")
        assert_every_frame(done, st, save, source)
        done, st, save = play(["127.0.0.1", str(srv.port), "0", names[1]], out, sim=("--windows",),
                              save_name="コピー 2.Mjpeg")
        assert_every_frame(done, st, save, source)
    finally:
        srv.stop(2)
    assert "Traceback" not in srv.text()


# --------------------------------------------------------------------------- minimum Python
def _requires_python() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^requires-python\s*=\s*">=(\d+\.\d+)"', text, re.M)
    assert m, "pyproject.toml has no requires-python"
    return m.group(1)


def test_one_stated_minimum_python():
    """pyproject.toml, the runtime check, mypy's target, requirements.txt and the README agree."""
    minimum = "%d.%d" % PythonVersion.MIN_PYTHON
    assert _requires_python() == minimum
    assert re.search(rf'^python_version = "{re.escape(minimum)}"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert f"Python {minimum} or newer" in (ROOT / "requirements.txt").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"Python {minimum} or newer" in readme
    stated = set(re.findall(r"Python (3\.\d+)\+", readme)) | set(re.findall(r"Python (3\.\d+) or newer", readme))
    assert stated == {minimum}, f"the README states other minimums: {stated}"
    assert sys.version_info[:2] >= PythonVersion.MIN_PYTHON


def _older_python() -> str | None:
    """An installed CPython just below the minimum (pyenv's), if any."""
    major, minor = PythonVersion.MIN_PYTHON
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("pyenv") else os.path.expanduser("~/.pyenv")
    for path in sorted(Path(root, "versions").glob(f"{major}.{minor - 1}.*/bin/python")) + \
            [Path(p) for p in [shutil.which(f"python{major}.{minor - 1}")] if p]:
        if path.exists():
            return str(path)
    return None


@pytest.mark.parametrize("program", ["Server.py", "ClientLauncher.py"])
def test_older_python_gets_one_line(program):
    old = _older_python()
    if old is None:
        print("SKIP reason: no Python %d.%d installed to try" % (PythonVersion.MIN_PYTHON[0],
                                                                 PythonVersion.MIN_PYTHON[1] - 1))
        pytest.skip("no Python just below the minimum is installed")
    out = subprocess.run([old, str(ROOT / program), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"{program}: error: needs Python 3.10 or newer (this is Python 3.9: {old})"], out.stderr


def test_require_refuses_older_versions(capsys):
    with pytest.raises(SystemExit) as stop:
        PythonVersion.require("X.py", (3, 9))
    assert stop.value.code == 2
    assert "X.py: error: needs Python 3.10 or newer (this is Python 3.9" in capsys.readouterr().err
    PythonVersion.require("X.py", (3, 13))  # no exit


# --------------------------------------------------------------------------- checkouts
@pytest.mark.parametrize("path, binary", [("movie.Mjpeg", True), ("x/other.mjpeg", True),
                                          ("tests/fixtures/ffmpeg-rtp.bin", True), ("Server.py", False)])
def test_gitattributes_keep_movies_binary(path, binary):
    """A Windows checkout with core.autocrlf must not rewrite the bytes of a movie."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        print("SKIP reason: not a git checkout")
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-attr", "text", "diff", "--", path], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    attrs = dict(line.split(": ")[1:] for line in out.stdout.strip().splitlines())
    if binary:
        assert attrs == {"text": "unset", "diff": "unset"}, out.stdout
    else:
        assert attrs["text"] == "set", out.stdout
