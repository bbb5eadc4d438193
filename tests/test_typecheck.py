"""mypy over every module for Linux, Windows and macOS (issue 11), at the minimum Python.

A *platform error* is one mypy reports for some of the three platforms but not for all: code that
type-checks on Linux but uses what Windows or macOS lacks (``socket.MSG_DONTWAIT``,
``socket.sendmsg``, ``os.sysconf`` ...), or the reverse (``signal.SIGBREAK`` unguarded). There
must be none. Guard platform-only code with ``sys.platform`` checks mypy understands
(``if sys.platform == "win32":``, ``sys.platform.startswith("linux")``) or ``getattr``.

The program's own modules (the top-level *.py) must have no mypy error at all (issue 12); the
other errors (tools/, bench/, tests/) are held to a budget that may only go down: MAX_ERRORS
(lower it whenever a change fixes errors, then the test keeps it there).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rtsp_tools import communicate

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("linux", "win32", "darwin")
MAX_ERRORS = 0  # errors on each platform: none anywhere (issue 12); keep it so
ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")

pytest.importorskip("mypy", reason="mypy is not installed (tools/test.sh installs it from requirements.txt)")


def modules() -> list[str]:
    """Every Python file of the project: the programs and modules, tools/, bench/ and tests/."""
    files = sorted(ROOT.glob("*.py")) + sorted(ROOT.glob("tools/*.py")) + sorted(ROOT.glob("bench/*.py")) \
        + sorted(ROOT.glob("tests/*.py"))
    return [str(p.relative_to(ROOT)) for p in files]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, set[tuple[str, str, str]]]:
    """platform -> {(path, line, message)}; settings (python_version = the minimum) from pyproject.toml."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    runs = {}  # the three platforms side by side (each run is mostly one core's parsing and checking)
    for platform in PLATFORMS:
        cache = tmp_path_factory.mktemp(f"mypy-{platform}")
        runs[platform] = subprocess.Popen(
            [sys.executable, "-m", "mypy", "--platform", platform, "--cache-dir", str(cache),
             "--no-error-summary", "--no-pretty", "--show-error-codes", "--no-color-output", *modules()],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for platform, proc in runs.items():
        stdout, stderr = communicate(proc, 300)
        assert proc.returncode in (0, 1), f"mypy itself failed for {platform}:\n{stdout}{stderr}"
        errors = {(m["path"], m["line"], m["message"]) for m in map(ERROR.match, stdout.splitlines()) if m}
        found[platform] = errors
        print(f"mypy --platform {platform}: {len(errors)} errors in {len(modules())} files")
    return found


def test_mypy_sees_every_module(reports):
    assert {"Server.py", "ReceiveEngine.py", "Streamer.py", "Client.py", "tests/test_typecheck.py"} <= set(modules())


def test_no_platform_specific_errors(reports):
    everywhere = set.intersection(*reports.values())
    for platform in PLATFORMS:
        only = sorted(reports[platform] - everywhere, key=lambda e: (e[0], int(e[1])))
        assert not only, f"errors only some platforms have (here: {platform}):\n" + \
            "\n".join(f"{p}:{n}: {m}" for p, n, m in only)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_error_budget(reports, platform):
    errors = sorted(reports[platform], key=lambda e: (e[0], int(e[1])))
    assert len(errors) <= MAX_ERRORS, f"{len(errors)} mypy errors for {platform} (budget {MAX_ERRORS}):\n" + \
        "\n".join(f"{p}:{n}: {m}" for p, n, m in errors)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_program_modules_have_no_errors(reports, platform):
    """Every top-level module (the lab's six files and the library beside them): 0 errors."""
    errors = sorted((e for e in reports[platform] if "/" not in e[0] and "\\" not in e[0]),
                    key=lambda e: (e[0], int(e[1])))
    assert not errors, f"mypy errors in the program's modules for {platform}:\n" + \
        "\n".join(f"{p}:{n}: {m}" for p, n, m in errors)


def test_the_checker_finds_platform_errors(tmp_path):
    """The check can fail: a file using what Windows lacks is a win32-only error."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os, socket\n"
                     "def f(s: socket.socket) -> None:\n"
                     "    s.recv(1, socket.MSG_DONTWAIT)\n"
                     "    s.sendmsg([b'x'])\n"
                     "    os.sysconf('SC_CLK_TCK')\n")
    counts = {}
    for platform in ("linux", "win32"):
        out = subprocess.run([sys.executable, "-m", "mypy", "--platform", platform, "--no-error-summary",
                              "--cache-dir", str(tmp_path / platform), str(probe)],
                             capture_output=True, text=True, timeout=120)
        counts[platform] = len([line for line in out.stdout.splitlines() if ": error:" in line])
    assert counts == {"linux": 0, "win32": 3}, counts
