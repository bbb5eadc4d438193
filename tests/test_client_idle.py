"""The player does nothing when nothing can happen: its reader threads sleep in select() until a
packet or a timer, the Tk window has no timer pending while the stream is not playing, and a
signal still reaches an idle window at once (issue 15; the CPU figures are in bench/player_cpu.py)."""

from __future__ import annotations

import collections
import gc
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

import ReceiveEngine as engine_module
import RtpReceivePath as receive_module
from conftest import ROOT
from ReceiveEngine import TIMER_CAP, ReceiveEngine
from RtspClient import ClientState
from x11_tools import find_window, wait_title


def count_selects(monkeypatch) -> collections.Counter:
    """Count the engine's select() calls per thread (each is one wake-up of a reader)."""
    calls: collections.Counter = collections.Counter()

    def counting_select(*args):
        calls[threading.current_thread().name] += 1
        return select.select(*args)
    for module in (engine_module, receive_module):   # the RTSP reader's and the RTP reader's
        monkeypatch.setattr(module, "select", types.SimpleNamespace(select=counting_select))
    return calls


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_readers_sleep_when_nothing_is_timed(start_server, monkeypatch, transport):
    """SETUP done, nothing playing: the readers wake at most once per TIMER_CAP each (the old
    loops woke 100 + 50 times a second); while playing they wake for the frames, not per 10 ms."""
    srv = start_server(fps=20)
    calls = count_selects(monkeypatch)
    eng = ReceiveEngine(srv.url(), transport=transport)
    try:
        eng.open()
        eng.describe()
        eng.setup()
        assert eng.state is ClientState.READY
        readers = 2 if transport == "udp" else 1
        before = sum(calls.values())
        t0 = time.monotonic()
        time.sleep(2.0)                        # the interval measured, not a wait for a condition
        idle = sum(calls.values()) - before
        assert idle <= readers * ((time.monotonic() - t0) / TIMER_CAP + 2), dict(calls)
        eng.play()
        deadline = time.monotonic() + 10
        while eng.frames_displayable < 5:
            assert time.monotonic() < deadline, "no frames"
            time.sleep(0.02)
        before, frames0, t0 = sum(calls.values()), eng.frames_displayable, time.monotonic()
        time.sleep(1.0)
        frames = eng.frames_displayable - frames0
        wakes = sum(calls.values()) - before
        assert frames >= 10
        # A frame is one burst of packets: a few reads each, plus RTCP and the odd timer.
        assert wakes <= 4 * frames + 10, (wakes, frames)
    finally:
        eng.close()
    assert not [t for t in eng._threads if t.is_alive()]


def test_window_sets_no_timer_unless_playing(display, start_server):
    """The window drains its queue when the engine wakes it, not on a tick: with the stream
    paused (or not started) no Tk timer is pending; while playing only the statistics one."""
    tk = pytest.importorskip("tkinter")
    from Client import Client
    srv = start_server(fps=20)
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(srv.url())
    eng.open()
    app = Client(root, eng)
    app.ask_quit = lambda: True

    def pump(cond, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            root.update()
            time.sleep(0.005)

    def timers():
        return root.tk.splitlist(root.tk.call("after", "info"))

    try:
        if not app.wakeup.available:
            pytest.skip("this Tk cannot watch a socket (Windows): the window polls with after()")
        app.describe()
        pump(lambda: not app.busy and eng.proto.sdp is not None, "DESCRIBE")
        pump(lambda: not timers(), "no timer pending in INIT")
        app.play()
        pump(lambda: app.frames_shown >= 10, "frames shown")
        assert len(timers()) == 1 and "stats" in app._after_ids     # the 4 Hz statistics refresh
        shown = app.frames_shown
        app.pause()
        pump(lambda: not app.busy and eng.state is ClientState.READY, "PAUSE")
        pump(lambda: not timers(), "no timer pending when paused")
        assert app.stat_vars["state"].get() == "READY"        # refreshed once, on the change
        assert app.frames_shown - shown < 20
    finally:
        app.close()
        del app, eng, root
        gc.collect()


def test_idle_window_ctrl_c_exits_within_a_second(display, start_server):
    """Ctrl-C reaches a window that has nothing to do (INIT, no timers): the signal wakes Tk."""
    if shutil.which("xdotool") is None:
        print("SKIP reason: xdotool missing")
        pytest.skip("xdotool missing")
    srv = start_server(fps=20)
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url()], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window(env, proc, timeout=15)
        wait_title(env, win, proc, r" INIT 00:00\.0 / ", timeout=15)   # the window is up, DESCRIBE done: idle
        time.sleep(0.5)                                 # idle for a while: nothing would wake Tk
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130 and took <= 1.0, (took, err)
    assert "Traceback" not in err, err


def test_window_without_file_handlers_polls_and_plays(display, start_server, monkeypatch):
    """Where Tk cannot watch a socket (Windows' Tk has no createfilehandler) the window drains
    its queue on after() ticks instead: frames are shown, and a tick stays scheduled."""
    tk = pytest.importorskip("tkinter")
    import Client as client_module
    from Client import Client

    class NoFileHandlers(client_module.TkWakeup):
        def __init__(self, master, callback):
            class Tkapp:                      # what Windows' Tk offers: no file handlers
                pass
            proxy = types.SimpleNamespace(tk=Tkapp())
            super().__init__(proxy, callback)  # type: ignore[arg-type]
            self.master = master
    monkeypatch.setattr(client_module, "TkWakeup", NoFileHandlers)
    srv = start_server(fps=20)
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(srv.url())
    eng.open()
    app = Client(root, eng)
    app.ask_quit = lambda: True
    try:
        assert not app.wakeup.available and eng.events.waker is None
        app.play()
        deadline = time.monotonic() + 15
        while app.frames_shown < 10:
            assert time.monotonic() < deadline, "no frames shown without a wake-up socket"
            root.update()
            time.sleep(0.005)
        assert "drain" in app._after_ids                    # polled: the next tick is scheduled
    finally:
        app.close()
        del app, eng, root
        gc.collect()
