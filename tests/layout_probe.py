"""Run by test_client_ux on its own Xvfb screen (e.g. 1024x600): open the player against an
in-process server, play a little, resize the window to the whole screen, and print what a person
would see as JSON: each button's and check box's size against the size it needs, whether it lies
inside the window, the picture's size, whether the side panel can be scrolled to its last panel.
With a path argument it also saves a screenshot there."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent))
sys.path.insert(0, str(TESTS))

import tkinter as tk  # noqa: E402

from conftest import RunningServer  # noqa: E402
from Client import Client  # noqa: E402
from ReceiveEngine import ReceiveEngine  # noqa: E402


def pump(root, cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        root.update()
        time.sleep(0.005)


def text_width(widget) -> int:
    """Pixels the widget's text needs in its font (0 for widgets without text)."""
    from tkinter import font as tkfont
    try:
        text = str(widget.cget("text"))
    except tk.TclError:
        return 0
    if not text:
        return 0
    name = ""
    try:
        name = str(widget.cget("font"))
    except tk.TclError:
        pass
    return tkfont.Font(font=name or "TkDefaultFont").measure(text)


def box(widget, root) -> dict:
    x, y = widget.winfo_rootx() - root.winfo_rootx(), widget.winfo_rooty() - root.winfo_rooty()
    return {"x": x, "y": y, "w": widget.winfo_width(), "h": widget.winfo_height(), "text_w": text_width(widget),
            "req_w": widget.winfo_reqwidth(), "req_h": widget.winfo_reqheight(),
            "mapped": bool(widget.winfo_ismapped()),
            "inside": x >= 0 and y >= 0 and x + widget.winfo_width() <= root.winfo_width()
            and y + widget.winfo_height() <= root.winfo_height()}


def main() -> None:
    shot = sys.argv[1] if len(sys.argv) > 1 else None
    srv = RunningServer(TESTS.parent, fps=50)
    root = tk.Tk()
    eng = ReceiveEngine(srv.url())
    eng.open()
    app = Client(root, eng)
    pump(root, lambda: root.winfo_viewable())
    app.play()
    pump(root, lambda: app.frames_shown >= 10)
    result: dict[str, object] = {"screen": [root.winfo_screenwidth(), root.winfo_screenheight()]}
    for label, geometry in (("default", None), ("full", f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")):
        if geometry:
            root.geometry(geometry)
        t0 = time.monotonic()
        pump(root, lambda: time.monotonic() - t0 > 0.5)
        c = app.side_canvas
        c.yview_moveto(1.0)
        root.update()
        entry_y = app.impair_entry.winfo_rooty() - c.winfo_rooty()
        c.yview_moveto(0.0)
        root.update()
        result[label] = {
            "window": [root.winfo_width(), root.winfo_height()],
            "view": [app.view.winfo_width(), app.view.winfo_height()],
            "widgets": {name: box(w, root) for name, w in
                        [*app.buttons.items(), *app.checks.items(), ("status", app.status_label),
                         ("seek", app.slider), ("side", app.side_outer), ("panes", app.notebook)]},
            "impairment_reachable": 0 <= entry_y < c.winfo_height(),
        }
    if shot:
        subprocess.run(["import", "-window", "root", "-crop",
                        f"{root.winfo_width()}x{root.winfo_height()}+0+0", shot], check=True, timeout=30)
    print(json.dumps(result))
    app.close()
    eng.close()
    srv.stop()


if __name__ == "__main__":
    main()
