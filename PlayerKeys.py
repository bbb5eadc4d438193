"""The player's keys and help: the shortcuts table, the buttons' help texts, the help window, full screen.

:class:`PlayerKeys` is a part of :class:`Client.Client` (a mixin): it binds the shortcuts on the
window and reaches the player's actions (play, seek, quit...) through ``self``."""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import ttk
from typing import TYPE_CHECKING, Any, Callable

from TkWidgets import ReadOnlyText

log = logging.getLogger(__name__)

SEEK_STEP = 5.0           # seconds per Left/Right key

SHORTCUTS = [
    ("Space", "play / pause (at the end: play again from the start)"),
    ("Right / Left", f"seek {SEEK_STEP:g} s forward / back"),
    ("Home", "back to the start"),
    ("F11 or f", "full screen on / off"),
    ("Ctrl+S", "save the frame shown as PNG or JPEG"),
    ("Ctrl+Q, q or Escape", "quit (TEARDOWN first); Escape leaves full screen first"),
    ("i", "the packet inspector: every packet as it arrives, field by field"),
    ("? or F1", "this list"),
]
BUTTON_HELP = {
    "SETUP": "SETUP: open an RTSP session (RTP ports agreed); after a lost server it connects again",
    "PLAY": "PLAY: start or resume the stream (at the end: play it again from the start)",
    "PAUSE": "PAUSE: the server stops sending; PLAY resumes at the same frame",
    "TEARDOWN": "TEARDOWN: end the session and close the player (the lab's Teardown)",
    "DESCRIBE": "DESCRIBE: ask for the stream's SDP description (shown in the SDP tab)",
}
HELP_TEXT = (
    "Keys (they act when the typing cursor is not in a text box):\n\n"
    + "".join(f"  {k:<22} {v}\n" for k, v in SHORTCUTS)
    + "\nButtons:\n\n" + "".join(f"  {v}\n" for v in BUTTON_HELP.values())
    + "\nClosing the window pauses the stream and asks: quit (TEARDOWN) or keep watching (PLAY).\n"
      "The seek bar: click where you want to be, or drag the handle.\n"
      "Loop plays the movie again when it ends; 'Fit to window' scales the picture to the view.\n")


class PlayerKeys:
    """Key bindings, full screen and the help window of the player (mixed into :class:`Client.Client`)."""

    if TYPE_CHECKING:
        master: tk.Tk
        closed: bool
        fullscreen: bool
        help_window: tk.Toplevel | None

        def toggle_play(self) -> None: ...
        def seek_by(self, delta: float) -> None: ...
        def seek(self, position: float) -> None: ...
        def quit_app(self) -> None: ...
        def open_inspector(self) -> None: ...
        def save_frame(self) -> None: ...

    def _bind_keys(self) -> None:
        """Shortcuts on the whole window, ignored while the typing cursor is in a text box (a space or
        a 'q' typed into the impairment box is text, not a command). Ctrl+ keys act anywhere."""
        m = self.master
        plain = {"<space>": self.toggle_play, "<Right>": lambda: self.seek_by(SEEK_STEP),
                 "<Left>": lambda: self.seek_by(-SEEK_STEP), "<Home>": lambda: self.seek(0.0),
                 "<F11>": self.toggle_fullscreen, "<KeyPress-f>": self.toggle_fullscreen,
                 "<KeyPress-q>": self.quit_app, "<Escape>": self._escape,
                 "<question>": self.show_help, "<F1>": self.show_help, "<KeyPress-i>": self.open_inspector}
        for seq, fn in plain.items():
            m.bind(seq, self._key(fn, in_text=False))
        for seq, fn in {"<Control-q>": self.quit_app, "<Control-Q>": self.quit_app,
                        "<Control-s>": self.save_frame, "<Control-S>": self.save_frame}.items():
            m.bind(seq, self._key(fn, in_text=True))

    @staticmethod
    def _typing(widget: Any) -> bool:
        """True when key presses go into a text field (an editable entry or text)."""
        if isinstance(widget, (tk.Entry, ttk.Entry, tk.Spinbox)):
            return True
        if isinstance(widget, tk.Text):
            return str(widget.cget("state")) == "normal"
        return False

    def _key(self, fn: Callable[[], Any], in_text: bool) -> Callable[[Any], str | None]:
        def handler(event: Any) -> str | None:
            if self.closed or (not in_text and self._typing(event.widget)):
                return None
            fn()
            return "break"
        return handler

    def _escape(self) -> None:
        if self.fullscreen:
            self.toggle_fullscreen()
        else:
            self.quit_app()

    def toggle_fullscreen(self) -> None:
        self.fullscreen = not self.fullscreen
        try:
            self.master.attributes("-fullscreen", self.fullscreen)
        except tk.TclError as exc:
            log.info("full screen: %s", exc)

    def show_help(self) -> None:
        """The keys and what each button does (Help menu, '?')."""
        if self.help_window is not None and self.help_window.winfo_exists():
            self.help_window.lift()
            return
        w = tk.Toplevel(self.master)
        w.title("RTP player - keys and buttons")
        pane = ReadOnlyText(w, width=96, height=min(30, HELP_TEXT.count("\n") + 2))
        pane.set(HELP_TEXT)
        pane.text.configure(wrap="word")
        pane.grid(row=0, column=0, sticky="nsew", padx=6, pady=6)
        ttk.Button(w, text="Close", command=w.destroy).grid(row=1, column=0, pady=(0, 6))
        w.columnconfigure(0, weight=1)
        w.rowconfigure(0, weight=1)
        w.bind("<Escape>", lambda e: w.destroy())
        w.bind("<question>", lambda e: w.destroy())
        self.help_window = w
