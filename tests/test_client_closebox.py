"""The close box, clicked the way a person does it: under a real window manager (openbox), the
window manager's close request (wmctrl -c, as the title bar's x button sends it) reaches the
player, which pauses and asks (the lab's 'Close window'); 'No' keeps watching, 'Yes' quits with
TEARDOWN. The player runs as its own process on its own Xvfb + openbox display, so the
session-wide display of the other GUI tests never has a window manager."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from x11_tools import find_window, press, wait_title

FPS = 50
TOOLS = ("Xvfb", "openbox", "wmctrl", "xdotool")


@pytest.fixture
def wm_display():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"SKIP reason: {', '.join(missing)} missing (tools/test.sh installs them)")
        pytest.skip(f"{', '.join(missing)} missing")
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    env = dict(os.environ, DISPLAY=f":{number}")
    wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["wmctrl", "-m"], env=env, capture_output=True, timeout=10).returncode != 0:
        assert time.monotonic() < deadline and wm.poll() is None, "openbox did not start"
        time.sleep(0.05)
    yield env
    for proc in (wm, xvfb):
        proc.terminate()
        proc.wait(timeout=10)




def answer_dialog(env, proc, key: str) -> None:
    dialog = find_window(env, proc, "Quit the player")
    press(env, dialog, key, activate=True)


def test_close_box_pauses_asks_no_keeps_watching_yes_quits_with_teardown(wm_display, start_server, caplog):
    caplog.set_level(logging.INFO, logger="ServerWorker")
    env = wm_display
    srv = start_server(fps=FPS)
    proc = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url()], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(env, proc)
        wait_title(env, win, proc, r" - INIT 00:00\.0 / 00:\d\d\.\d$")      # DESCRIBE done
        press(env, win, "space", activate=True)
        wait_title(env, win, proc, r" - PLAYING 00:0(0\.[5-9]|[1-7]\.\d)")  # 0.5 s in, well before the end

        # the close box: the window manager asks the window to close; it pauses and asks
        subprocess.run(["wmctrl", "-c", "RTP player"], env=env, check=True, timeout=10)
        paused = wait_title(env, win, proc, r" - READY \d\d:\d\d\.\d")
        answer_dialog(env, proc, "alt+n")                                   # No = keep watching
        position = re.search(r"READY (\d\d):(\d\d\.\d)", paused)
        at = int(position.group(1)) * 60 + float(position.group(2))
        resumed = wait_title(env, win, proc, r" - PLAYING \d\d:\d\d\.\d")
        later = re.search(r"PLAYING (\d\d):(\d\d\.\d)", resumed)
        assert int(later.group(1)) * 60 + float(later.group(2)) >= at     # resumed where it paused
        assert not any("TEARDOWN" in r.getMessage() for r in caplog.records)

        subprocess.run(["wmctrl", "-c", "RTP player"], env=env, check=True, timeout=10)
        wait_title(env, win, proc, r" - READY ")
        answer_dialog(env, proc, "Return")                                  # Yes (the default) = quit
        answered = time.monotonic()
        _, err = proc.communicate(timeout=10)
        quit_after = time.monotonic() - answered
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    assert quit_after < 2.0, quit_after
    assert any("TEARDOWN" in r.getMessage() for r in caplog.records), "the player quit without TEARDOWN"
