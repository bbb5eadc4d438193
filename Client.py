"""The player's Tk window: video view, controls, statistics panel and plot.

The network side is :class:`ReceiveEngine.ReceiveEngine` (no Tk); it hands frames, log lines and
state changes over a ``queue.Queue``, and only this module's :class:`Client`, on the Tk thread,
touches widgets. Every RTSP request runs on a worker thread, so no button, key or the close box
ever waits on the network in the Tk thread. Nothing polls: the queue wakes Tk through a socket
pair Tk watches (:class:`TkWakeup`) when an event arrives, and the statistics refresh a few times
a second only while the stream plays (else once per change). Where Tk cannot watch a socket
(Windows), ``after()`` ticks drain the queue instead: fast while playing, slow otherwise.

What the window shows is one of the states INIT, READY, PLAYING (RFC 2326 A.1) or ENDED (the
stream reached its end: PLAY replays it). A lost server is INIT again: SETUP connects anew.

Beside it: the side panel (:mod:`StatsPanel`), keys and help (:mod:`PlayerKeys`), both parts of
:class:`Client` (mixins); decoding for the view (:mod:`FrameView`); small widgets (:mod:`TkWidgets`).
"""

from __future__ import annotations

import io
import logging
import queue
import signal
import threading
import time
import tkinter as tk
from tkinter import filedialog, messagebox, ttk
from typing import Any, Callable

from PIL import Image, ImageTk

from FrameView import FIT_SLACK, SCREEN_MARGIN, VIEW_DEFAULT, decode_for_view, fit_size, reuse_image_memory
from PlayerKeys import BUTTON_HELP, HELP_TEXT, SEEK_STEP, SHORTCUTS, PlayerKeys
from ReceiveEngine import ClientError, ClientState, Event, EventKind, Frame, ReceiveEngine
from RtpStats import StatsSnapshot
from StatsPanel import StatsPanel, _fmt_time
from TkWidgets import ReadOnlyText, TkWakeup, Tooltip

# re-exported: what tests, benchmarks and the launcher import from here
__all__ = ["Client", "run_gui", "FIT_SLACK", "decode_for_view", "fit_size", "SHORTCUTS", "BUTTON_HELP",
           "HELP_TEXT", "SEEK_STEP", "TkWakeup", "Tooltip", "ReadOnlyText", "_fmt_time"]

log = logging.getLogger(__name__)

GUI_TICK_MS = 15          # queue drain period while playing, where Tk cannot watch a socket
IDLE_TICK_MS = 100        # the same when nothing plays (button states, log lines)
STATS_TICK_MS = 250       # statistics panel and plot: 4 updates per second while playing
QUIT_WAIT = 1.0           # longest wait for the TEARDOWN reply when quitting (the window closes anyway)
CLOSE_PAUSE_WAIT = 0.5    # longest wait for the PAUSE reply when the close box is clicked


class Client(StatsPanel, PlayerKeys):
    """The Tk player window. Network work runs on worker threads; widgets change only here.

    ``ask_quit`` decides what closing the window does once the stream is paused (True = quit);
    ``ask_save_path`` picks the file Ctrl+S writes. Tests replace them instead of clicking dialogs.
    ``collect_frames`` keeps every frame received (``--save`` with the window).
    """

    def __init__(self, master: tk.Tk, engine: ReceiveEngine, *, simple: bool = False,
                 start: float | None = None, loop: bool = False, collect_frames: bool = False) -> None:
        self.master = master
        self.engine = engine
        self.simple = simple
        self.start_pos = start
        reuse_image_memory()
        self.photo: ImageTk.PhotoImage | None = None
        self.photo_size: tuple[int, int] | None = None
        self.photo_mode: str | None = None
        self.frame_size: tuple[int, int] | None = None   # the shown frame's own size
        self.display_times: list[float] = []     # seconds per decode+display
        self.frames_shown = 0
        self.bad_frames = 0                      # frames that did not decode (counted, not shown)
        self.shown_frame: Frame | None = None    # the frame the view holds now
        self.saved_frames: list[bytes] | None = [] if collect_frames else None
        self.busy = False                        # a request is in flight
        self.closing = False                     # quitting: TEARDOWN on its way
        self.closed = False
        self.dragging = False
        self.seek_target: float | None = None    # where the last seek went (shown until its first frame)
        self.fullscreen = False
        self.ask_quit: Callable[[], bool] = lambda: messagebox.askyesno(
            "Quit the player?", "The stream is paused.\n\nQuit the player? (TEARDOWN)\n"
            "No = keep watching", parent=self.master)
        self.ask_save_path: Callable[[], str] = lambda: filedialog.asksaveasfilename(
            parent=self.master, title="Save the frame shown", defaultextension=".png",
            initialfile=f"frame-{self.shown_frame.index if self.shown_frame else 0:05d}.png",
            filetypes=[("PNG", "*.png"), ("JPEG (as received)", "*.jpg *.jpeg")])
        self.last_snapshot: StatsSnapshot | None = None
        self.live_shown = False  # a live stream: slider hidden, 'LIVE mm:ss' instead of position / duration
        self.inspector: Any = None               # the PacketInspectorView window, once opened
        self.packet_ring: Any = None             # its PacketInspector.PacketRing
        self.title = ""  # the window title as last set: "RTP player - URL - STATE position / duration"
        self.tooltips: dict[str, Tooltip] = {}
        self.help_window: tk.Toplevel | None = None
        self.loop_var = tk.BooleanVar(master, value=loop)
        self.fit_var = tk.BooleanVar(master, value=False)
        self.side_var = tk.BooleanVar(master, value=True)
        self.panes_var = tk.BooleanVar(master, value=True)
        self._status_error = False
        self._after_ids: dict[str, str] = {}
        self._shown_text: dict[str, str] = {}       # statistics labels as last set
        self._buttons_shown: set[str] | None = None  # the buttons enabled as last set
        self._plot_key: Any = None                  # the plot's history as last drawn
        self._build()
        master.protocol("WM_DELETE_WINDOW", self.on_close)
        self._bind_keys()
        self._refresh_buttons()
        self.wakeup = TkWakeup(master, self._drain)
        if self.wakeup.available:
            engine.events.waker = self.wakeup.wake
        self._after("drain", 0, self._drain)
        self._after("stats", 0, self._stats_tick)

    def _after(self, key: str, ms: int, fn: Callable[[], None]) -> None:
        """Schedule ``fn`` once (unless already scheduled), remembering its id so close() can
        cancel it; ``fn`` runs with the id forgotten, so it may schedule itself again."""
        if self.closed or key in self._after_ids:
            return

        def run() -> None:
            self._after_ids.pop(key, None)
            fn()
        self._after_ids[key] = self.master.after(ms, run)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        m = self.master
        self._set_title(f"RTP player - {self.engine.url or 'SDP stream'}")
        m.columnconfigure(0, weight=1)
        m.rowconfigure(0, weight=1)
        if not self.simple:
            self._build_menu()
        main = ttk.Frame(m, padding=4)
        main.grid(row=0, column=0, sticky="nsew")
        main.columnconfigure(0, weight=1)
        main.rowconfigure(0, weight=1)
        self.main = main
        # A canvas, not a Label: a new frame redraws only the picture's area, not the whole view
        # (0.4 ms less per 640x480 frame in a 1280x720 view). No border: all of it is picture.
        self.view = tk.Canvas(main, background="black", borderwidth=0, highlightthickness=0,
                              width=VIEW_DEFAULT[0], height=VIEW_DEFAULT[1], takefocus=1)
        self.view.grid(row=0, column=0, sticky="nsew")
        self.view_image = self.view.create_image(0, 0, anchor="center")
        self.view_text = self.view.create_text(0, 0, text="no video yet", fill="gray", anchor="center")
        self.view.bind("<Configure>", self._on_view_configure)
        self.view.bind("<Button-1>", lambda e: self.view.focus_set())
        self.view.bind("<Double-Button-1>", lambda e: self.toggle_fullscreen())
        if not self.simple:
            self._build_side(main)
            self._build_seek_bar(main)
        self._build_buttons(main)
        self.status_var = tk.StringVar(value="")
        self.status_label = ttk.Label(main, textvariable=self.status_var, anchor="w", width=1)
        self.status_label.grid(row=3, column=0, sticky="ew", padx=2)
        if not self.simple:
            self._build_panes(main)
        self._size_window()
        self.view.focus_set()

    def _build_menu(self) -> None:
        menu = tk.Menu(self.master, tearoff=False)
        self.menu = menu
        f = tk.Menu(menu, tearoff=False)
        f.add_command(label="Save frame as...", accelerator="Ctrl+S", command=self.save_frame)
        f.add_separator()
        f.add_command(label="Quit (TEARDOWN)", accelerator="Ctrl+Q", command=self.quit_app)
        menu.add_cascade(label="File", menu=f)
        p = tk.Menu(menu, tearoff=False)
        p.add_command(label="Play / Pause", accelerator="Space", command=self.toggle_play)
        p.add_command(label=f"Forward {SEEK_STEP:g} s", accelerator="Right", command=lambda: self.seek_by(SEEK_STEP))
        p.add_command(label=f"Back {SEEK_STEP:g} s", accelerator="Left", command=lambda: self.seek_by(-SEEK_STEP))
        p.add_command(label="To the start", accelerator="Home", command=lambda: self.seek(0.0))
        p.add_checkbutton(label="Loop at the end", variable=self.loop_var)
        menu.add_cascade(label="Playback", menu=p)
        v = tk.Menu(menu, tearoff=False)
        v.add_checkbutton(label="Fit picture to window", variable=self.fit_var, command=self._refit)
        v.add_command(label="Full screen", accelerator="F11", command=self.toggle_fullscreen)
        v.add_checkbutton(label="Statistics panel", variable=self.side_var, command=self._show_panels)
        v.add_checkbutton(label="RTSP log / SDP panel", variable=self.panes_var, command=self._show_panels)
        v.add_separator()
        v.add_command(label="Packet inspector", accelerator="I", command=self.open_inspector)
        self.view_menu = v
        menu.add_cascade(label="View", menu=v)
        h = tk.Menu(menu, tearoff=False)
        h.add_command(label="Keys and buttons", accelerator="?", command=self.show_help)
        menu.add_cascade(label="Help", menu=h)
        self.master.configure(menu=menu)

    def _build_seek_bar(self, main: ttk.Frame) -> None:
        pos = ttk.Frame(main)
        pos.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        pos.columnconfigure(0, weight=1)
        self.pos_var = tk.DoubleVar(value=0.0)
        self.slider = ttk.Scale(pos, from_=0.0, to=max(1.0, self.engine.duration or 1.0),
                                variable=self.pos_var, orient="horizontal", takefocus=0)
        self.slider.grid(row=0, column=0, sticky="ew")
        # A click jumps to where it lands; dragging moves the handle and the time label with it;
        # the release seeks (one PLAY with Range). The ttk default (step by 1 s) is replaced.
        self.slider.bind("<ButtonPress-1>", self._slider_press)
        self.slider.bind("<B1-Motion>", self._slider_drag)
        self.slider.bind("<ButtonRelease-1>", self._slider_release)
        self.time_var = tk.StringVar(value="--:-- / --:--")
        ttk.Label(pos, textvariable=self.time_var, font="TkFixedFont").grid(row=0, column=1, padx=6)
        self.tooltips["seek"] = Tooltip(self.slider, "Click to jump there, or drag; Left/Right: 5 s, Home: start")

    def _slider_value(self, x: int, y: int) -> float:
        """The slider's value at pixel (x, y) (ttk::scale get x y)."""
        v = float(self.slider.tk.call(str(self.slider), "get", x, y))
        return min(max(v, 0.0), float(self.slider.cget("to")))

    def _slider_press(self, e: Any) -> str:
        self.dragging = True
        self.pos_var.set(self._slider_value(e.x, e.y))
        self._show_time()
        return "break"

    def _slider_drag(self, e: Any) -> str:
        if self.dragging:
            self.pos_var.set(self._slider_value(e.x, e.y))
            self._show_time()
        return "break"

    def _slider_release(self, e: Any) -> str:
        if self.dragging:
            self.pos_var.set(self._slider_value(e.x, e.y))
            self.seek(self.pos_var.get())
        return "break"

    def _build_buttons(self, main: ttk.Frame) -> None:
        bar = ttk.Frame(main)
        bar.grid(row=2, column=0, sticky="w", pady=4)
        self.button_bar = bar
        names = ["PLAY", "PAUSE", "TEARDOWN"] if self.simple else \
            ["SETUP", "PLAY", "PAUSE", "TEARDOWN", "DESCRIBE"]
        actions = {"SETUP": self.setup, "PLAY": self.play, "PAUSE": self.pause,
                   "TEARDOWN": self.teardown, "DESCRIBE": self.describe}
        self.buttons: dict[str, ttk.Button] = {}
        for i, name in enumerate(names):
            text = name.title() if self.simple else name
            # width 0: as wide as the text needs (the theme's default is a minimum of 11 average
            # characters; a fixed width in characters cuts capitals such as TEARDOWN)
            b = ttk.Button(bar, text=text, command=actions[name], takefocus=0, width=0)
            b.grid(row=0, column=i, padx=2)
            self.buttons[name] = b
            tip = BUTTON_HELP[name]
            if self.simple and name == "PLAY":
                tip += " (does SETUP first when needed)"
            self.tooltips[name] = Tooltip(b, tip)
        if not self.simple:
            loop = ttk.Checkbutton(bar, text="Loop", variable=self.loop_var, takefocus=0)
            loop.grid(row=0, column=len(names), padx=(10, 2))
            self.tooltips["loop"] = Tooltip(loop, "Play again from the start at the end of the movie")
            fit = ttk.Checkbutton(bar, text="Fit to window", variable=self.fit_var, command=self._refit,
                                  takefocus=0)
            fit.grid(row=0, column=len(names) + 1, padx=2)
            self.tooltips["fit"] = Tooltip(fit, "Scale the picture to the view (up or down); "
                                                "off: 1:1 when it fits")
            self.checks = {"Loop": loop, "Fit to window": fit}

    def _build_panes(self, main: ttk.Frame) -> None:
        nb = ttk.Notebook(main)
        nb.grid(row=4, column=0, sticky="nsew")
        self.notebook = nb
        self.log_pane = ReadOnlyText(nb, height=6)
        self.sdp_pane = ReadOnlyText(nb, height=6)
        nb.add(self.log_pane, text="RTSP log")
        nb.add(self.sdp_pane, text="SDP")
        self.log_text = self.log_pane      # get(), see() as a Text has them
        self.sdp_text = self.sdp_pane
        self.log_pane.text.tag_configure("c2s", foreground="#0645ad")
        self.log_pane.text.tag_configure("s2c", foreground="#116611")

    def _show_panels(self) -> None:
        """View menu: hide or show the side panel and the log/SDP panes (small screens)."""
        if self.side_var.get():
            self.side_outer.grid()
        else:
            self.side_outer.grid_remove()
        if self.panes_var.get():
            self.notebook.grid()
        else:
            self.notebook.grid_remove()
        self._set_minsize()

    def _set_minsize(self) -> None:
        """The window never gets narrower than the buttons (they are never cut) plus the side panel."""
        m = self.master
        m.update_idletasks()
        width = self.button_bar.winfo_reqwidth() + 16
        if not self.simple and self.side_var.get():
            width += self.side_outer.winfo_reqwidth() + 6
        m.minsize(min(width, m.winfo_screenwidth()), 300 if not self.simple else 200)

    def _size_window(self) -> None:
        """Open with a view of VIEW_DEFAULT (the rest of the layout as it asks), within the screen.

        The requested size is measured while the window is withdrawn, so it maps once, at its
        final size; then the view asks for nothing and takes what the window gives it."""
        m = self.master
        was_withdrawn = m.state() == "withdrawn"
        m.withdraw()
        m.update_idletasks()
        width = min(m.winfo_reqwidth(), m.winfo_screenwidth() - SCREEN_MARGIN[0])
        height = min(m.winfo_reqheight(), m.winfo_screenheight() - SCREEN_MARGIN[1])
        self.view.configure(width=1, height=1)
        if not self.simple:
            self.side_canvas.configure(height=1)
        m.geometry(f"{width}x{height}")
        self._set_minsize()
        if not was_withdrawn:
            m.deiconify()

    def save_frame(self) -> None:
        """Ctrl+S: the frame shown, as PNG (decoded) or JPEG (the bytes received)."""
        frame = self.shown_frame
        if frame is None:
            self._status("no frame to save yet")
            return
        path = self.ask_save_path()
        if not path:
            return
        try:
            if path.lower().endswith((".jpg", ".jpeg")):
                with open(path, "wb") as f:
                    f.write(frame.data)
            else:
                Image.open(io.BytesIO(frame.data)).save(path)
        except (OSError, ValueError) as exc:
            self._status(f"could not save the frame: {exc}", error=True)
            return
        self._status(f"saved frame {frame.index} to {path}")

    # -- buttons (run requests off the Tk thread) ---------------------------------------------
    def _run(self, name: str, work: Callable[[], Any], done: Callable[[], None] | None = None,
             always: Callable[[str | None], None] | None = None, force: bool = False) -> bool:
        """Run ``work`` (blocking RTSP requests) on a worker thread; ``done`` runs on the Tk thread
        after success, ``always`` (with the error or None) in any case. One request at a time
        (``force``: quitting goes ahead anyway)."""
        if (self.busy and not force) or self.closed:
            return False
        self.busy = True
        self._status(f"{name}...")
        self._refresh_buttons()

        def worker() -> None:
            err = None
            try:
                work()
            except ClientError as exc:
                err = str(exc)
            except OSError as exc:
                err = f"{name}: {exc}"
            self.engine.events.put(Event(EventKind.DONE, (name, err, done, always)))

        threading.Thread(target=worker, name=f"rtsp-{name}", daemon=True).start()
        return True

    def _ensure_described(self) -> None:
        if self.engine.proto is not None and (self.engine.proto.sdp is None or self.engine.session_lost):
            try:
                self.engine.describe()
            except ClientError as exc:
                if self.engine.rtsp_sock is None:
                    raise
                log.info("DESCRIBE failed (%s); SETUP on the request URL", exc)

    def setup(self) -> None:
        def work() -> None:
            self._ensure_described()
            self.engine.setup()
        self._run("SETUP", work, done=self._described)

    def play(self, start: float | None = None) -> None:
        if self.engine.proto is None or self.closing:
            return
        if self.view_state() == "ENDED" and start is None:
            self.seek(0.0)                  # at the end PLAY plays again from the start
            return
        def work() -> None:
            if self.engine.state == ClientState.INIT:
                # --simple's PLAY (and the space key) set the session up first.
                self._ensure_described()
                self.engine.setup()
            s = start if start is not None else self.start_pos
            self.start_pos = None
            self.engine.play(s)
        self._run("PLAY", work, done=self._described)

    def pause(self) -> None:
        if self.engine.proto is None or self.view_state() != "PLAYING":
            return
        self._run("PAUSE", self.engine.pause)

    def toggle_play(self) -> None:
        if self.view_state() == "PLAYING":
            self.pause()
        else:
            self.play()

    def teardown(self) -> None:
        """The TEARDOWN button: the lab's Teardown -- the stream stops and the player closes."""
        self.quit_app()

    def quit_app(self) -> None:
        """Quit (TEARDOWN, Ctrl+Q, q, Escape, the close box's 'Yes'): TEARDOWN when a session and
        its server are there, waiting at most QUIT_WAIT s on a worker thread; then the window closes.
        Never waits in the Tk thread; works in every state, a lost server included."""
        if self.closing or self.closed:
            return
        self.closing = True
        eng = self.engine
        if eng.proto is None or eng.proto.session_id is None or eng.session_lost:
            self.close()
            return
        self._refresh_buttons()
        deadline = time.monotonic() + QUIT_WAIT + 0.3

        def work() -> None:
            eng.quit(grace=QUIT_WAIT)
        self.busy = False
        self._run("TEARDOWN", work, always=lambda err: self.close(), force=True)

        def watchdog() -> None:          # the worker is stuck somewhere: close anyway
            if not self.closed and time.monotonic() >= deadline:
                self.close()
            elif not self.closed:
                self.master.after(100, watchdog)
        self.master.after(100, watchdog)

    def describe(self) -> None:
        self._run("DESCRIBE", self.engine.describe, done=self._show_sdp)

    def seek(self, position: float) -> None:
        """Seek bar, arrow keys, Home: PLAY with Range: npt=T- (pausing first if playing, RFC 2326
        §10.5). Without a session the position is remembered for the next PLAY."""
        self.dragging = False
        eng = self.engine
        duration = eng.duration
        position = max(0.0, min(position, duration - 0.001 if duration else position))
        if eng.proto is None or self.closing:
            return
        if eng.state == ClientState.INIT or eng.session_lost:
            self.start_pos = position
            self._show_time()
            return
        def work() -> None:
            if eng.state == ClientState.PLAYING:
                eng.pause()
            eng.play(position)
        if self._run("SEEK", work):
            self.seek_target = position

    def seek_by(self, delta: float) -> None:
        here = self._position()
        self.seek(here + delta)

    def on_close(self) -> None:
        """Window closed: pause, then ask quit or keep watching (the lab's 'Close window').
        The PAUSE runs on a worker thread (at most CLOSE_PAUSE_WAIT s); a lost server is not waited for."""
        if self.closing or self.closed:
            return
        eng = self.engine
        was_playing = self.view_state() == "PLAYING" and eng.proto is not None and not eng.session_lost

        def ask(err: str | None = None) -> None:
            if self.closed or self.closing:
                return
            if self.ask_quit():
                self.quit_app()
            elif was_playing:
                self.play()

        if was_playing and self._run("PAUSE", lambda: eng.pause(timeout=CLOSE_PAUSE_WAIT), always=ask):
            return
        ask()

    def open_inspector(self) -> None:
        """The packet inspector window (PacketInspectorView); from then on the engine's tap keeps
        the last packets in a ring for it (a deque append per packet)."""
        from PacketInspector import PacketRing
        from PacketInspectorView import InspectorWindow
        if self.inspector is not None and not self.inspector.closed:
            self.inspector.lift()
            return
        if self.packet_ring is None:
            self.packet_ring = PacketRing()
            self.engine.tap = self.packet_ring.add
        self.inspector = InspectorWindow(self.master, self.packet_ring,
                                         title=f"Packet inspector - {self.engine.url or 'SDP stream'}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.closing = True
        self.engine.events.waker = None
        if self.inspector is not None:
            self.inspector.close()
        self.engine.close()
        self.wakeup.close()
        try:
            for after_id in self._after_ids.values():
                self.master.after_cancel(after_id)
            self.master.destroy()
        except tk.TclError:
            pass

    # -- state -------------------------------------------------------------------------------------
    def view_state(self) -> str:
        """What the window shows: INIT, READY, PLAYING, ENDED; a lost server is INIT (SETUP reconnects)."""
        eng = self.engine
        if eng.proto is None:
            return "ENDED" if eng.ended is not None else "RTP (SDP)"
        if eng.session_lost:
            return "INIT"
        state = eng.proto.state
        if eng.ended is not None and state != ClientState.INIT:
            return "ENDED"
        return state.value

    def enabled_buttons(self) -> set[str]:
        """Which buttons work now: the RTSP state table (RFC 2326 A.1) plus ENDED and a lost server."""
        eng = self.engine
        if self.closing or self.closed:
            return set()
        if eng.proto is None:
            return {"TEARDOWN"}
        state = self.view_state()
        has_session = eng.proto.session_id is not None and not eng.session_lost
        if self.busy:
            return {"TEARDOWN"} if has_session or self.simple else set()
        if self.simple:
            return {"PAUSE", "TEARDOWN"} if state == "PLAYING" else {"PLAY", "TEARDOWN"}
        if eng.session_lost:
            return {"SETUP"}
        return {"INIT": {"SETUP", "DESCRIBE"}, "READY": {"PLAY", "TEARDOWN", "DESCRIBE"},
                "PLAYING": {"PAUSE", "TEARDOWN", "DESCRIBE"},
                "ENDED": {"PLAY", "TEARDOWN", "DESCRIBE"}}.get(state, {"TEARDOWN"})

    def _refresh_buttons(self) -> None:
        ok = self.enabled_buttons()
        if ok == self._buttons_shown:
            return                           # each state() call is a Tk call and a redraw
        self._buttons_shown = ok
        for name, b in self.buttons.items():
            b.state(["!disabled"] if name in ok else ["disabled"])

    def _status(self, text: str, error: bool = False) -> None:
        self.status_var.set(text)
        if error != self._status_error:
            self._status_error = error
            self.status_label.configure(foreground="#a00" if error else "")

    # -- work on the Tk thread, when there is some ------------------------------------------------
    def _drain(self) -> None:
        """Handle what the engine queued: show the newest frame, log lines, request results.

        Runs when the queue wakes Tk (or, without :class:`TkWakeup`, on a tick); it re-arms the
        queue once empty, so it runs again only when there is something new."""
        if self.closed:
            return
        events = self.engine.events
        latest: Frame | None = None
        handled = 0
        try:
            for _ in range(1000):
                ev = events.get_nowait()
                handled += 1
                if ev.kind is EventKind.FRAME:
                    if self.saved_frames is not None:
                        self.saved_frames.append(ev.payload.data)
                    if ev.payload.generation == self.engine.generation:   # not from before a seek
                        latest = ev.payload
                elif ev.kind is EventKind.LOG:
                    self._log(*ev.payload)
                elif ev.kind is EventKind.END:
                    self._on_end(str(ev.payload))
                elif ev.kind is EventKind.DONE:
                    name, err, done, always = ev.payload
                    if not self.closing or name == "TEARDOWN":
                        self.busy = False
                    if err:
                        log.warning("%s", err)
                        self._status(err, error=True)
                    elif self.status_var.get() == f"{name}...":
                        self._status(self.engine.status_note())   # dialect, or why no frames
                    if done is not None and not err:
                        done()
                    if always is not None:
                        always(err)
                    if self.closed:
                        return
        except queue.Empty:
            pass
        if latest is not None:
            self.show_frame(latest)
        if handled:
            self._refresh_buttons()
            self._after("stats", 0, self._stats_tick)    # a no-op while a refresh is scheduled
        if self.wakeup.available:
            if not events.arm():                         # more came meanwhile (or over 1000)
                self._after("drain", 0, self._drain)
        else:
            self._after("drain", GUI_TICK_MS if self._playing() or self.busy else IDLE_TICK_MS,
                        self._drain)

    def _playing(self) -> bool:
        """Frames (or packets) may be coming: the statistics move."""
        return self.engine.state == ClientState.PLAYING and self.engine.ended is None

    def _on_end(self, reason: str) -> None:
        eng = self.engine
        if eng.failure is not None or eng.session_lost:
            what = "press SETUP to connect again" if not self.simple else "press Play to connect again"
            self._status(f"{reason} - {what}", error=True)
            return
        if eng.ended is None:
            return                            # a seek already started the stream again
        if self.loop_var.get() and eng.proto is not None and not self.closing:
            self._status(f"ENDED ({reason}): looping")
            self.master.after(0, lambda: self.seek(0.0))
            return
        self._status(f"ENDED ({reason}) - PLAY or Space plays it again")

    def show_frame(self, frame: Frame) -> None:
        """Decode in memory and show the frame centred in the view: 1:1 when it fits, else scaled
        down (see :func:`decode_for_view`); one PhotoImage is pasted into while size and mode hold."""
        t0 = time.perf_counter()
        if not self._render(frame):
            return
        self.frames_shown += 1
        self.shown_frame = frame
        if not self.simple:
            # the frame number and time beside the picture change with it (not 250 ms later)
            total = self.engine.frame_total
            self.stat_vars["frame"].set(f"{frame.index} / {total if total else '?'}")
            if not self.dragging and not self.live_shown:
                self.time_var.set(f"{_fmt_time(frame.position)} / {_fmt_time(self.engine.duration)}")
        self.display_times.append(time.perf_counter() - t0)
        if len(self.display_times) > 2000:
            del self.display_times[:1000]

    def _render(self, frame: Frame) -> bool:
        try:
            img, size = decode_for_view(frame.data, self._view_size(), self.fit_var.get())
        except ValueError as exc:
            self.bad_frames += 1
            log.info("frame %d not shown: %s", frame.index, exc)
            self._status(f"{self.bad_frames} frame(s) could not be shown; last: {exc}", error=True)
            return False
        self.frame_size = size
        if self.photo is None or self.photo_size != img.size or self.photo_mode != img.mode:
            self.photo = ImageTk.PhotoImage(img)
            self.photo_size = img.size
            self.photo_mode = img.mode
            self.view.itemconfigure(self.view_image, image=self.photo)
            self.view.itemconfigure(self.view_text, state="hidden")
        else:
            self.photo.paste(img)
        return True

    def _view_size(self) -> tuple[int, int]:
        return self.view.winfo_width(), self.view.winfo_height()

    def _on_view_configure(self, event: Any) -> None:
        """The view changed size (window resized): keep the picture centred and re-fit it once the
        drag settles, so a paused picture follows the window too."""
        for item in (self.view_image, self.view_text):
            self.view.coords(item, event.width // 2, event.height // 2)
        if self.shown_frame is not None and not self.closed and "refit" not in self._after_ids:
            self._after_ids["refit"] = self.master.after(50, self._refit)

    def _refit(self) -> None:
        self._after_ids.pop("refit", None)
        frame = self.shown_frame
        if frame is None or self.closed or self.frame_size is None:
            return
        if fit_size(self.frame_size, self._view_size(), enlarge=self.fit_var.get()) != self.photo_size:
            self._render(frame)

    def _log(self, direction: str, text: str) -> None:
        if self.simple:
            return
        self.log_pane.append(f"--- {direction} ---\n", "c2s" if direction == "C->S" else "s2c")
        self.log_pane.append(text.rstrip() + "\n\n")
        self.log_pane.see("end")

    def _described(self) -> None:
        if self.engine.duration and not self.simple:
            self.slider.configure(to=self.engine.duration)

    def _show_sdp(self) -> None:
        if self.simple:
            return
        sdp = self.engine.current_sdp
        self.sdp_pane.set(sdp.text.replace("\r\n", "\n") if sdp is not None else
                          "(no SDP: the lab dialect has no DESCRIBE)" if self.engine.lab else "(no SDP)")
        self.notebook.select(self.sdp_pane)
        self._described()

    def _position(self) -> float:
        """The media position the window shows: the frame in the view (after a seek: the target
        until its first frame arrives), or where the next PLAY will start."""
        eng = self.engine
        if self.dragging and not self.simple:
            return self.pos_var.get()
        if eng.proto is not None and (eng.state == ClientState.INIT or eng.session_lost):
            return self.start_pos or 0.0
        shown = self.shown_frame
        if shown is not None and shown.generation == eng.generation:
            return shown.position
        target = self.seek_target
        if shown is not None and shown.generation != eng.generation and target is not None:
            return target
        return eng.last_frame.position if eng.last_frame is not None else (self.start_pos or 0.0)

    def _show_time(self) -> None:
        # live: described (not before DESCRIBE) and without a duration
        live = self.engine.duration is None and self.engine.proto is not None \
            and self.engine.current_sdp is not None
        if live:
            # live (a=range:npt=now-): no duration, no seeking; the position is the time since PLAY
            text = f"LIVE {_fmt_time(self._position())}"
        else:
            text = f"{_fmt_time(self._position())} / {_fmt_time(self.engine.duration)}"
        if not self.simple:
            if live != self.live_shown:
                self.live_shown = live
                if live:
                    self.slider.grid_remove()
                else:
                    self.slider.grid()
            self.time_var.set(text)
        self._set_title(f"RTP player - {self.engine.url or 'SDP stream'} - {self.view_state()} {text}")

    def _stats_tick(self) -> None:
        """Refresh the statistics, slider, time and title: every STATS_TICK_MS while the stream
        plays, otherwise once per change (:meth:`_drain` asks). A hidden panel is not redrawn."""
        if self.closed:
            return
        s = self.engine.snapshot()
        self.last_snapshot = s
        state = self.view_state()
        if self.simple:
            self._simple_status(s)
        else:
            if self.stats_frame.winfo_viewable():
                self._fill_stats(s, state)
                self._draw_plot(s)
            else:
                self._diagnose(s)
            if s.duration and float(self.slider.cget("to")) != s.duration:
                self.slider.configure(to=s.duration)
            position = self._position()
            if not self.dragging and self.pos_var.get() != position:
                self.pos_var.set(position)
        # the state and position in the title too: seen in a task bar, and by scripts (xdotool)
        self._show_time()
        if self._playing():
            self._after("stats", STATS_TICK_MS, self._stats_tick)

    def _simple_status(self, s: StatsSnapshot) -> None:
        """--simple: one line of fps, data rate and loss (unless a message is showing)."""
        if self._status_error or self.busy or self.status_var.get().startswith("ENDED"):
            return
        if s.frames_completed or self.view_state() == "PLAYING":
            self._status(f"{s.fps_inst:4.1f} fps   {s.kbps_inst:5.0f} kbit/s   "
                         f"loss {s.loss_percent:.2f} % ({s.packets_lost} of {s.packets_expected} packets)")

    def _set_title(self, title: str) -> None:
        if title != self.title:
            self.master.title(title)
            self.title = title


def run_gui(engine: ReceiveEngine, args: Any) -> int:
    """Open the window (one-line error when there is no display), connect, and run Tk."""
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise ClientError(f"no display ({exc}); use --headless to play without a window") from None
    try:
        engine.open()
    except ClientError:
        root.destroy()
        raise
    app = Client(root, engine, simple=getattr(args, "simple", False), start=getattr(args, "start", None),
                 loop=getattr(args, "loop", False), collect_frames=bool(getattr(args, "save", None)))
    args.gui_app = app
    if getattr(args, "inspect", False):
        app.open_inspector()
    if engine.proto is not None:
        def initial() -> None:
            try:
                engine.options()
            except ClientError as exc:
                log.info("OPTIONS: %s", exc)
            engine.describe()
        app._run("DESCRIBE", initial, done=app._show_sdp)
    interrupted = threading.Event()

    def quit_from_tk() -> None:
        engine.quit()
        app.close()

    def on_sigint(signum: int, frame: Any) -> None:
        # Tk callbacks swallow KeyboardInterrupt, so Ctrl-C is turned into a quit on the Tk thread.
        if interrupted.is_set():
            raise KeyboardInterrupt          # a second Ctrl-C: leave without waiting
        interrupted.set()
        root.after(0, quit_from_tk)

    previous = signal.signal(signal.SIGINT, on_sigint)
    app.wakeup.catch_signals()
    try:
        root.mainloop()
    finally:
        signal.signal(signal.SIGINT, previous)
        app.wakeup.close()
        engine.close()
    if interrupted.is_set():
        raise KeyboardInterrupt
    return 0
