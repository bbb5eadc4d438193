"""Reading the player's window the way a person does, through the X server (xdotool): find the
window, read its title (the player writes state and position there), wait for a title."""

from __future__ import annotations

import re
import subprocess
import time


def find_window(env: dict[str, str], proc: subprocess.Popen, name: str = "RTP player",
                timeout: float = 10.0) -> str:
    """The id of the first window whose name contains ``name``; fails if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(["xdotool", "search", "--name", name], env=env, capture_output=True, text=True,
                               timeout=10).stdout.split()
        if found:
            return found[0]
        assert time.monotonic() < deadline and proc.poll() is None, f"no window named {name!r} appeared"
        time.sleep(0.05)


def window_title(env: dict[str, str], win: str) -> str:
    return subprocess.run(["xdotool", "getwindowname", win], env=env, capture_output=True, text=True,
                          timeout=10).stdout.strip()


def wait_title(env: dict[str, str], win: str, proc: subprocess.Popen, pattern: str, timeout: float = 10.0) -> str:
    """Poll the window's title until it matches ``pattern``; the title. Fails if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    title = ""
    while time.monotonic() < deadline and proc.poll() is None:
        title = window_title(env, win)
        if re.search(pattern, title):
            return title
        time.sleep(0.05)
    raise AssertionError(f"window title never matched {pattern!r}; last: {title!r}"
                         + ("" if proc.poll() is None else f" (the player exited with {proc.returncode})"))


def press(env: dict[str, str], win: str | None, key: str, activate: bool = False) -> None:
    """Press ``key`` (xdotool's names: space, q, ctrl+q, alt+n, Return) in window ``win``: focus
    it first (``activate``: raise and activate it through the window manager), then the key.
    ``win`` None presses into whatever has the focus (it was given just before)."""
    if win is not None:
        subprocess.run(["xdotool", "windowactivate" if activate else "windowfocus", "--sync", win], env=env,
                       timeout=10)
    subprocess.run(["xdotool", "key", key], env=env, check=True, timeout=10)
