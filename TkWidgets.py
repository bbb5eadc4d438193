"""Small Tk pieces of the player window: waking Tk from other threads, tooltips, read-only text panes."""

from __future__ import annotations

import signal
import socket
import tkinter as tk
from tkinter import ttk
from typing import Any, Callable


class TkWakeup:
    """Wakes the Tk thread from any thread without a Tk call there: a byte on a socket pair whose
    reading end Tk watches (``createfilehandler``), which runs ``callback`` on the Tk thread.

    ``available`` is False where Tk cannot watch a file (Windows Tk): the caller polls then.
    :meth:`catch_signals` has a signal wake Tk too, so that its Python handler runs at once."""

    def __init__(self, master: tk.Misc, callback: Callable[[], None]) -> None:
        self.master = master
        # getattr: Windows' Tk has no file handlers (and mypy --platform win32 knows it)
        create: Any = getattr(master.tk, "createfilehandler", None)
        self._delete: Any = getattr(master.tk, "deletefilehandler", None)
        self.available = create is not None and self._delete is not None
        self._r: socket.socket | None = None
        self._w: socket.socket | None = None
        self._signals: int | None = None         # the wakeup fd we replaced, once catching signals
        if not self.available:
            return
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

        def readable(fd: int, mask: int) -> None:
            try:
                while self._r is not None and self._r.recv(4096):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return
            callback()
        create(self._r.fileno(), tk.READABLE, readable)

    def wake(self) -> None:
        """Any thread: have ``callback`` run soon on the Tk thread."""
        w = self._w
        if w is not None:
            try:
                w.send(b"\0")
            except OSError:
                pass        # full (Tk will wake anyway: bytes are waiting) or closed

    def catch_signals(self) -> None:
        """Main thread: a signal wakes Tk, so its Python handler runs at once (Python handlers run
        only between Python instructions, and a Tk that waits for events runs none)."""
        if self._w is not None and self._signals is None:
            self._signals = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)

    def close(self) -> None:
        if self._signals is not None:
            try:
                signal.set_wakeup_fd(self._signals)
            except ValueError:
                pass                     # not the main thread
            self._signals = None
        if self._r is not None:
            try:
                self._delete(self._r.fileno())
            except tk.TclError:
                pass
            self._r.close()
        if self._w is not None:
            self._w.close()
        self._r = self._w = None


class Tooltip:
    """A small yellow box with ``text`` shown while the pointer rests on ``widget``."""

    DELAY_MS = 500

    def __init__(self, widget: tk.Misc, text: str) -> None:
        self.widget = widget
        self.text = text
        self.tip: tk.Toplevel | None = None
        self._pending: str | None = None
        widget.bind("<Enter>", self._schedule, add="+")
        widget.bind("<Leave>", self.hide, add="+")
        widget.bind("<ButtonPress>", self.hide, add="+")

    def _schedule(self, _event: Any = None) -> None:
        self._cancel()
        self._pending = self.widget.after(self.DELAY_MS, self.show)

    def _cancel(self) -> None:
        if self._pending is not None:
            try:
                self.widget.after_cancel(self._pending)
            except tk.TclError:
                pass
            self._pending = None

    def show(self) -> None:
        self._pending = None
        if self.tip is not None:
            return
        try:
            x = self.widget.winfo_rootx() + 12
            y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
            self.tip = tw = tk.Toplevel(self.widget)
            tw.wm_overrideredirect(True)
            tw.wm_geometry(f"+{x}+{y}")
            tk.Label(tw, text=self.text, background="#ffffe0", relief="solid", borderwidth=1,
                     justify="left", wraplength=380, padx=4, pady=2).pack()
        except tk.TclError:
            self.tip = None

    def hide(self, _event: Any = None) -> None:
        self._cancel()
        if self.tip is not None:
            try:
                self.tip.destroy()
            except tk.TclError:
                pass
            self.tip = None


class ReadOnlyText(ttk.Frame):
    """A text pane the user can read, select and scroll but not type into (scroll bars both ways)."""

    def __init__(self, master: tk.Misc, **kw: Any) -> None:
        super().__init__(master)
        self.text = tk.Text(self, wrap="none", font="TkFixedFont", state="disabled", **kw)
        ys = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        xs = ttk.Scrollbar(self, orient="horizontal", command=self.text.xview)
        self.text.configure(yscrollcommand=ys.set, xscrollcommand=xs.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        ys.grid(row=0, column=1, sticky="ns")
        xs.grid(row=1, column=0, sticky="ew")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        # a click lets the user select and copy: give the text focus even though it is disabled
        self.text.bind("<Button-1>", lambda e: self.text.focus_set(), add="+")

    def append(self, text: str, tag: str | None = None) -> None:
        t = self.text
        t.configure(state="normal")
        t.insert("end", text, tag or ())
        t.configure(state="disabled")

    def set(self, text: str) -> None:
        t = self.text
        t.configure(state="normal")
        t.delete("1.0", "end")
        t.insert("end", text)
        t.configure(state="disabled")

    def get(self, *args: Any) -> str:
        return self.text.get(*args) if args else self.text.get("1.0", "end")

    def see(self, index: str) -> None:
        self.text.see(index)
