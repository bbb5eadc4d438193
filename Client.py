"""The player's Tk window: video view, controls, statistics panel and plot.

The network side is :class:`ReceiveEngine.ReceiveEngine` (no Tk); it hands frames, log lines and
state changes over a ``queue.Queue``, and only this module's :class:`Client`, on the Tk thread,
touches widgets. Nothing polls: the queue wakes Tk through a socket pair Tk watches
(:class:`TkWakeup`) when an event arrives, and the statistics refresh a few times a second only
while the stream plays (or once when something changes). Where Tk cannot watch a socket
(Windows), the queue is drained by ``after()`` ticks instead: fast while playing, slow otherwise.
"""

from __future__ import annotations

import io
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
import tkinter as tk
from tkinter import messagebox, ttk
from typing import Any, Callable

from PIL import Image, ImageTk

from ReceiveEngine import ClientError, ClientState, Event, EventKind, Frame, ReceiveEngine
from RtpStats import StatsSnapshot

logger = logging.getLogger(__name__)

GUI_TICK_MS = 15          # queue drain period while playing, where Tk cannot watch a socket
IDLE_TICK_MS = 100        # the same when nothing plays (button states, log lines)
STATS_TICK_MS = 250       # statistics panel and plot: 4 updates per second while playing
PLOT_SPAN = 30.0          # seconds shown in the plot
VIEW_DEFAULT = (1280, 720)  # the default view shows 640x480 and 1280x720 streams 1:1 (screen permitting)
FIT_SLACK = 8             # px a frame may exceed the view by and still be shown 1:1 (edges clipped):
                          # resampling a whole frame to gain a few pixels costs more than decoding it
SCREEN_MARGIN = (32, 96)  # px of the screen left to window decorations and desktop panels
IMAGE_BLOCKS = 4           # freed image buffers Pillow keeps for reuse (its block cache, see below)
RESIZE_FILTER = Image.BOX  # area average: antialiased for the < 2x reductions left after draft(), and
                           # ~1/3 cheaper than BILINEAR (1280x720 -> 704x396: 2.9 vs 4.4 ms here)


def reuse_image_memory() -> None:
    """Have Pillow keep a few freed image buffers for the next frames (its block cache; off by
    default, PILLOW_BLOCKS_MAX). Otherwise each frame's buffers are returned to the system and
    mapped afresh: ~600 page faults per 640x480 frame, a third of the player's CPU when playing."""
    set_blocks_max = getattr(Image.core, "set_blocks_max", None)
    if set_blocks_max is not None and "PILLOW_BLOCKS_MAX" not in os.environ \
            and Image.core.get_blocks_max() < IMAGE_BLOCKS:
        set_blocks_max(IMAGE_BLOCKS)


def fit_size(frame: tuple[int, int], view: tuple[int, int], slack: int = FIT_SLACK) -> tuple[int, int]:
    """The size a frame is shown at in a view: its own when it fits (or overflows by at most ``slack``
    px, clipped evenly at the edges), else scaled down to fit, aspect ratio kept. Never scaled up.
    A view not laid out yet (1x1) shows frames 1:1."""
    fw, fh = frame
    vw, vh = view
    if vw <= 1 or vh <= 1 or (fw <= vw + slack and fh <= vh + slack):
        return frame
    scale = min(vw / fw, vh / fh)
    return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))


def decode_for_view(data: bytes, view: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one JPEG from memory at the size :func:`fit_size` gives for ``view``; also returns the
    frame's own size. Reductions of 2x or more happen in the decoder (``draft``: DCT scaling to 1/2,
    1/4 or 1/8, never below the target), the rest with :data:`RESIZE_FILTER`. The decoder's mode is
    kept (a Tk photo takes RGB and L as they are). Raises OSError or ValueError for a bad frame."""
    img = Image.open(io.BytesIO(data), formats=("JPEG",))     # RFC 2435 carries JPEG only
    native = img.size
    size = fit_size(native, view)
    if size != native:
        img.draft(None, size)
    img.load()
    if img.size != size:
        img = img.resize(size, RESIZE_FILTER)
    return img, native


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


class TkWakeup:
    """Wakes the Tk thread from any thread without a Tk call there: a byte on a socket pair whose
    reading end Tk watches (``createfilehandler``), which runs ``callback`` on the Tk thread.

    ``available`` is False where Tk cannot watch a file (Windows Tk): the caller polls then.
    :attr:`fd` can also be handed to ``signal.set_wakeup_fd`` so a signal wakes Tk as well."""

    def __init__(self, master: tk.Misc, callback: Callable[[], None]) -> None:
        self.master = master
        self.available = hasattr(master.tk, "createfilehandler")
        self._r: socket.socket | None = None
        self._w: socket.socket | None = None
        self._signals: int | None = None         # the wakeup fd we replaced, once catching signals
        self.fd = -1
        if not self.available:
            return
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self.fd = self._w.fileno()

        def readable(fd: int, mask: int) -> None:
            try:
                while self._r is not None and self._r.recv(4096):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return
            callback()
        master.tk.createfilehandler(self._r.fileno(), tk.READABLE, readable)

    def wake(self) -> None:
        """Any thread: have ``callback`` run soon on the Tk thread."""
        w = self._w
        if w is not None:
            try:
                w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass                     # bytes are waiting already: Tk will wake
            except OSError:
                pass                     # closed

    def catch_signals(self) -> None:
        """Main thread: a signal wakes Tk too, so its Python handler runs at once (Tk does not run
        Python code while it waits, and Python handlers run only between Python instructions)."""
        if self.available and self._signals is None:
            self._signals = signal.set_wakeup_fd(self.fd, warn_on_full_buffer=False)

    def close(self) -> None:
        if self._signals is not None:
            try:
                signal.set_wakeup_fd(self._signals)
            except ValueError:
                pass                     # not the main thread
            self._signals = None
        if self._r is not None:
            try:
                self.master.tk.deletefilehandler(self._r.fileno())
            except tk.TclError:
                pass
            self._r.close()
        if self._w is not None:
            self._w.close()
        self._r = self._w = None


class Client:
    """The Tk player window. Network work runs on worker threads; widgets change only here.

    ``ask_quit`` decides what closing the window does once the stream is paused (True = quit);
    tests replace it instead of clicking a dialog.
    """

    STAT_ROWS = [
        ("frame", "Frame"), ("fps", "fps inst / avg"), ("bytes", "Bytes received"),
        ("rate", "kbit/s inst / avg"), ("packets", "RTP packets"), ("lost", "Lost (A.3)"),
        ("loss", "Loss rate"), ("dups", "Duplicates"), ("ooo", "Out of order"),
        ("frames", "Frames done / dropped"), ("jitter", "Jitter (A.8)"), ("delay", "Delay"),
        ("rtt", "RTT (RTCP XR)"), ("sender", "Packets ours / sender"), ("octets", "Octets ours / sender"),
        ("clock", "Sender clock (SR)"), ("rtcp", "RTCP SR in / RR out"), ("state", "RTSP state"),
    ]
    PLOT_SERIES = [(1, "#1f77b4", "kbit/s"), (2, "#2ca02c", "fps"), (3, "#d62728", "loss %"),
                   (4, "#9467bd", "jitter ms"), (5, "#ff7f0e", "RTT ms")]

    def __init__(self, master: tk.Tk, engine: ReceiveEngine, *, simple: bool = False,
                 start: float | None = None) -> None:
        self.master = master
        self.engine = engine
        self.simple = simple
        reuse_image_memory()
        self.start_pos = start
        self.photo: ImageTk.PhotoImage | None = None
        self.photo_size: tuple[int, int] | None = None
        self.photo_mode: str | None = None
        self.frame_size: tuple[int, int] | None = None   # the shown frame's own size
        self.display_times: list[float] = []     # seconds per decode+display
        self.frames_shown = 0
        self.shown_frame: Frame | None = None    # the frame the view holds now
        self.busy = False                        # a request is in flight
        self.closed = False
        self.dragging = False
        self.ask_quit: Callable[[], bool] = lambda: messagebox.askyesno(
            "Quit the player?", "The stream is paused.\n\nQuit the player?\n"
            "(No = keep watching)", parent=self.master)
        self.last_snapshot: StatsSnapshot | None = None
        self.title = ""  # the window title as last set: "RTP player - URL - STATE position / duration"
        self._shown_text: dict[str, str] = {}       # statistics labels as last set
        self._buttons_key: Any = None               # (state, busy) the buttons were last set for
        self._plot_key: Any = None                  # the plot's history as last drawn
        self._after_ids: dict[str, str] = {}
        self._build()
        master.protocol("WM_DELETE_WINDOW", self.on_close)
        master.bind("<space>", lambda e: self.toggle_play())
        master.bind("<Escape>", lambda e: self.teardown())
        master.bind("q", lambda e: self.teardown())
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
        m.minsize(640, 480)
        m.columnconfigure(0, weight=1)
        m.rowconfigure(0, weight=1)
        main = ttk.Frame(m, padding=4)
        main.grid(row=0, column=0, sticky="nsew")
        main.columnconfigure(0, weight=1)
        main.rowconfigure(0, weight=1)
        # A canvas, not a Label: a new frame redraws only the picture's area, not the whole view
        # (0.4 ms less per 640x480 frame in a 1280x720 view). No border: all of it is picture.
        self.view = tk.Canvas(main, background="black", borderwidth=0, highlightthickness=0,
                              width=VIEW_DEFAULT[0], height=VIEW_DEFAULT[1])
        self.view.grid(row=0, column=0, sticky="nsew")
        self.view_image = self.view.create_image(0, 0, anchor="center")
        self.view_text = self.view.create_text(0, 0, text="no video yet", fill="gray", anchor="center")
        self.view.bind("<Configure>", self._on_view_configure)
        side = ttk.Frame(main, padding=(8, 0))
        side.grid(row=0, column=1, rowspan=4, sticky="ns")
        stats = ttk.LabelFrame(side, text="Statistics", padding=6)
        stats.grid(row=0, column=0, sticky="new")
        self.stats_frame = stats
        self.stat_vars: dict[str, tk.StringVar] = {}
        for i, (key, label) in enumerate(self.STAT_ROWS):
            ttk.Label(stats, text=label + ":").grid(row=i, column=0, sticky="w")
            var = tk.StringVar(value="-")
            ttk.Label(stats, textvariable=var, width=22, anchor="e", font="TkFixedFont").grid(
                row=i, column=1, sticky="e")
            self.stat_vars[key] = var
        plot_frame = ttk.LabelFrame(side, text=f"Last {PLOT_SPAN:.0f} s", padding=4)
        plot_frame.grid(row=1, column=0, sticky="new", pady=(6, 0))
        self.plot = tk.Canvas(plot_frame, width=330, height=150, background="white",
                              highlightthickness=0)
        self.plot.grid(row=0, column=0)
        self._build_impairment(side)
        # position slider + time
        pos = ttk.Frame(main)
        pos.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        pos.columnconfigure(0, weight=1)
        self.pos_var = tk.DoubleVar(value=0.0)
        self.slider = ttk.Scale(pos, from_=0.0, to=max(1.0, self.engine.duration or 1.0),
                                variable=self.pos_var, orient="horizontal")
        self.slider.grid(row=0, column=0, sticky="ew")
        self.slider.bind("<ButtonPress-1>", lambda e: setattr(self, "dragging", True))
        self.slider.bind("<ButtonRelease-1>", lambda e: self.seek(self.pos_var.get()))
        self.time_var = tk.StringVar(value="--:-- / --:--")
        ttk.Label(pos, textvariable=self.time_var, font="TkFixedFont").grid(row=0, column=1, padx=6)
        # buttons
        bar = ttk.Frame(main)
        bar.grid(row=2, column=0, sticky="ew", pady=4)
        names = ["PLAY", "PAUSE", "TEARDOWN"] if self.simple else \
            ["SETUP", "PLAY", "PAUSE", "TEARDOWN", "DESCRIBE"]
        actions = {"SETUP": self.setup, "PLAY": self.play, "PAUSE": self.pause,
                   "TEARDOWN": self.teardown, "DESCRIBE": self.describe}
        self.buttons: dict[str, ttk.Button] = {}
        for i, name in enumerate(names):
            b = ttk.Button(bar, text=name.title() if self.simple else name, command=actions[name])
            b.grid(row=0, column=i, padx=2)
            self.buttons[name] = b
        self.status_var = tk.StringVar(value="")
        ttk.Label(bar, textvariable=self.status_var, foreground="#a00").grid(
            row=0, column=len(names), padx=8, sticky="w")
        # log + SDP
        nb = ttk.Notebook(main, height=150)
        nb.grid(row=3, column=0, sticky="nsew")
        self.notebook = nb
        self.log_text = tk.Text(nb, height=9, wrap="none", font="TkFixedFont")
        self.sdp_text = tk.Text(nb, height=9, wrap="none", font="TkFixedFont")
        nb.add(self.log_text, text="RTSP log")
        nb.add(self.sdp_text, text="SDP")
        self.log_text.tag_configure("c2s", foreground="#0645ad")
        self.log_text.tag_configure("s2c", foreground="#116611")
        self._size_window()

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
        m.geometry(f"{width}x{height}")
        if not was_withdrawn:
            m.deiconify()

    def _build_impairment(self, side: ttk.Frame) -> None:
        """The network-impairment panel: a spec (as --impair) applied to incoming RTP while playing."""
        box = ttk.LabelFrame(side, text="Network impairment (incoming RTP)", padding=4)
        box.grid(row=2, column=0, sticky="new", pady=(6, 0))
        box.columnconfigure(0, weight=1)
        imp = self.engine.impairer
        self.impair_var = tk.StringVar(value=str(imp.spec) if imp is not None else "loss=5%,seed=1")
        self.impair_entry = ttk.Entry(box, textvariable=self.impair_var, width=30, font="TkFixedFont")
        self.impair_entry.grid(row=0, column=0, sticky="ew")
        self.impair_entry.bind("<Return>", lambda e: self.apply_impairment())
        self.impair_apply = ttk.Button(box, text="Apply", width=6, command=self.apply_impairment)
        self.impair_apply.grid(row=0, column=1, padx=(4, 0))
        ttk.Button(box, text="Off", width=4, command=lambda: self.apply_impairment("off")).grid(
            row=0, column=2, padx=(2, 0))
        self.impair_status = tk.StringVar(value="off" if imp is None else "applied")
        ttk.Label(box, textvariable=self.impair_status, font=("TkDefaultFont", 8)).grid(
            row=1, column=0, columnspan=3, sticky="w")

    def apply_impairment(self, text: str | None = None) -> None:
        """Apply (or switch off) the impairment typed in the panel; a bad spec shows its error."""
        if text is not None:
            self.impair_var.set(text)
        try:
            spec = self.engine.set_impairment(self.impair_var.get())
        except ValueError as exc:
            self.impair_status.set(f"error: {exc}")
            return
        self.impair_var.set(str(spec) if spec.active else "off")
        self.impair_status.set("applied" if spec.active else "off")

    # -- buttons (run requests off the Tk thread) ---------------------------------------------
    def _run(self, name: str, work: Callable[[], Any], done: Callable[[], None] | None = None) -> None:
        if self.busy:
            return
        self.busy = True
        self.status_var.set(f"{name}...")
        self._refresh_buttons()

        def worker() -> None:
            err = None
            try:
                work()
            except ClientError as exc:
                err = str(exc)
            except OSError as exc:
                err = f"{name}: {exc}"
            self.engine.events.put(Event(EventKind.STATE, ("done", name, err, done)))

        threading.Thread(target=worker, name=f"rtsp-{name}", daemon=True).start()

    def _ensure_described(self) -> None:
        if self.engine.proto is not None and self.engine.proto.sdp is None:
            try:
                self.engine.describe()
            except ClientError as exc:
                logger.info("DESCRIBE failed (%s); SETUP on the request URL", exc)

    def setup(self) -> None:
        def work() -> None:
            self._ensure_described()
            self.engine.setup()
        self._run("SETUP", work)

    def play(self, start: float | None = None) -> None:
        if self.engine.proto is None:
            return
        def work() -> None:
            if self.engine.state == ClientState.INIT:
                # --simple's PLAY (and the space key) set the session up first.
                self._ensure_described()
                self.engine.setup()
            s = start if start is not None else self.start_pos
            self.start_pos = None
            self.engine.play(s)
        self._run("PLAY", work)

    def pause(self) -> None:
        if self.engine.proto is None or self.engine.state != ClientState.PLAYING:
            return
        self._run("PAUSE", self.engine.pause)

    def toggle_play(self) -> None:
        if self.engine.state == ClientState.PLAYING:
            self.pause()
        else:
            self.play()

    def teardown(self) -> None:
        """TEARDOWN ends the session and closes the player (seed 002 'Click Teardown')."""
        if self.closed:
            return
        if self.engine.proto is None or self.engine.state == ClientState.INIT:
            self.close()
            return
        self.busy = False
        self._run("TEARDOWN", self.engine.teardown, done=self.close)

    def describe(self) -> None:
        self._run("DESCRIBE", self.engine.describe, done=self._show_sdp)

    def seek(self, position: float) -> None:
        """Dragging the slider: PLAY with Range: npt=T- (pausing first if playing, RFC 2326 §10.5)."""
        self.dragging = False
        if self.engine.proto is None or self.engine.state == ClientState.INIT:
            return
        def work() -> None:
            if self.engine.state == ClientState.PLAYING:
                self.engine.pause()
            self.engine.play(position)
        self._run("SEEK", work)

    def on_close(self) -> None:
        """Window closed: pause, then ask quit or keep watching (seed 002 'Click Close window')."""
        was_playing = self.engine.state == ClientState.PLAYING and self.engine.proto is not None
        if was_playing:
            try:
                self.engine.pause()
            except ClientError as exc:
                logger.info("PAUSE on close: %s", exc)
        if self.ask_quit():
            self.teardown()
        elif was_playing:
            self.play()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.events.waker = None
        self.engine.close()
        self.wakeup.close()
        try:
            for after_id in self._after_ids.values():
                self.master.after_cancel(after_id)
            self.master.destroy()
        except tk.TclError:
            pass

    # -- work on the Tk thread, when there is some ------------------------------------------------
    def _refresh_buttons(self) -> None:
        proto = self.engine.proto
        key = (proto.state if proto is not None else None, self.busy)
        if key == self._buttons_key:
            return
        self._buttons_key = key
        for name, b in self.buttons.items():
            if proto is None:
                ok = name == "TEARDOWN"
            elif self.busy:
                ok = False
            elif self.simple and name == "PLAY":
                ok = proto.state != ClientState.PLAYING
            elif self.simple and name == "TEARDOWN":
                ok = True                    # the simple player's way out, in any state
            else:
                ok = proto.valid(name) and not (name == "PLAY" and proto.state == ClientState.PLAYING) \
                    and not (name == "SETUP" and proto.state != ClientState.INIT)
            b.state(["!disabled"] if ok else ["disabled"])

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
                    if ev.payload.generation == self.engine.generation:   # not from before a seek
                        latest = ev.payload
                elif ev.kind is EventKind.LOG:
                    self._log(*ev.payload)
                elif ev.kind is EventKind.END:
                    self.status_var.set(str(ev.payload))
                elif ev.kind is EventKind.STATE and isinstance(ev.payload, tuple):
                    _, name, err, done = ev.payload
                    self.busy = False
                    self.status_var.set(err or "")
                    if err:
                        logger.warning("%s", err)
                    if done is not None and not err:
                        done()
                        if self.closed:
                            return
                    elif done is self.close:
                        done()
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
            playing = self.busy or (self.engine.state == ClientState.PLAYING and self.engine.ended is None)
            self._after("drain", GUI_TICK_MS if playing else IDLE_TICK_MS, self._drain)

    def show_frame(self, frame: Frame) -> None:
        """Decode in memory and show the frame centred in the view: 1:1 when it fits, else scaled
        down (see :func:`decode_for_view`); one PhotoImage is pasted into while size and mode hold."""
        t0 = time.perf_counter()
        if not self._render(frame):
            return
        self.frames_shown += 1
        self.shown_frame = frame
        self.display_times.append(time.perf_counter() - t0)
        if len(self.display_times) > 2000:
            del self.display_times[:1000]

    def _render(self, frame: Frame) -> bool:
        try:
            img, self.frame_size = decode_for_view(frame.data, self._view_size())
        except (OSError, ValueError) as exc:
            logger.debug("frame %d does not decode: %s", frame.index, exc)
            return False
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
        if fit_size(self.frame_size, self._view_size()) != self.photo_size:
            self._render(frame)

    def _log(self, direction: str, text: str) -> None:
        self.log_text.insert("end", f"--- {direction} ---\n", "c2s" if direction == "C->S" else "s2c")
        self.log_text.insert("end", text.rstrip() + "\n\n")
        self.log_text.see("end")

    def _show_sdp(self) -> None:
        sdp = self.engine.current_sdp
        self.sdp_text.delete("1.0", "end")
        self.sdp_text.insert("end", sdp.text.replace("\r\n", "\n") if sdp is not None else "(no SDP)")
        self.notebook.select(self.sdp_text)
        if self.engine.duration:
            self.slider.configure(to=self.engine.duration)

    def _stats_tick(self) -> None:
        """Refresh the statistics, slider, time and title: every STATS_TICK_MS while the stream
        plays, otherwise once per change (:meth:`_drain` asks). Hidden panels are not redrawn."""
        if self.closed:
            return
        s = self.engine.snapshot()
        self.last_snapshot = s
        state = self.engine.state.value if self.engine.proto else "RTP (SDP)"
        if self.stats_frame.winfo_viewable():
            self._show_stats(s, state)
            self._draw_plot(s)
        if s.impairment is not None and not self.impair_status.get().startswith("error"):
            i = s.impairment
            self._set_text(self.impair_status, f"truth: dropped {i['dropped']}  dup {i['duplicated']}  "
                                               f"reordered {i['reordered']}  of {i['sent']}")
        if s.duration and float(self.slider.cget("to")) != s.duration:
            self.slider.configure(to=s.duration)
        if not self.dragging and s.frames_completed and self.pos_var.get() != s.position:
            self.pos_var.set(s.position)
        when = f"{_fmt_time(s.position if s.frames_completed else 0)} / {_fmt_time(s.duration)}"
        self._set_text(self.time_var, when)
        # the state and position in the title too: seen in a task bar, and by scripts (xdotool)
        self._set_title(f"RTP player - {self.engine.url or 'SDP stream'} - {state} {when}")
        if self.engine.state == ClientState.PLAYING and self.engine.ended is None:
            self._after("stats", STATS_TICK_MS, self._stats_tick)

    def _set_text(self, var: tk.StringVar, text: str) -> None:
        """Set a label's variable only when its text changes (each set redraws the label)."""
        if var.get() != text:
            var.set(text)

    def _show_stats(self, s: StatsSnapshot, state: str) -> None:
        total = f"{s.frame_total}" if s.frame_total else "?"
        texts = {
            "frame": f"{s.frame_index + 1 if s.frames_completed else 0} / {total}",
            "fps": f"{s.fps_inst:5.1f} / {s.fps_avg:5.1f}",
            "bytes": f"{s.bytes_received:,}",
            "rate": f"{s.kbps_inst:6.0f} / {s.kbps_avg:6.0f}",
            "packets": f"{s.packets_received:,}",
            "lost": f"{s.packets_lost:,}",
            "loss": f"{s.loss_percent:.2f} %",
            "dups": f"{s.duplicates}",
            "ooo": f"{s.out_of_order}",
            "frames": f"{s.frames_completed} / {s.frames_dropped}",
            "jitter": f"{s.jitter_ms:.2f} ms",
            "delay": f"{s.delay_ms:.1f} ms" if s.delay_ms else "-",
            "rtt": f"{s.rtt_ms:.2f} ms" if s.rtt_ms is not None else "-",
            "sender": f"{s.packets_received:,} / {s.sender_packets:,}" if s.sender_packets is not None
                      else f"{s.packets_received:,} / -",
            "octets": f"{_fmt_bytes(s.payload_octets)} / {_fmt_bytes(s.sender_octets)}",
            "clock": time.strftime("%H:%M:%S", time.localtime(s.sender_clock))
                     + f".{int(s.sender_clock * 1000) % 1000:03d}" if s.sender_clock is not None else "-",
            "rtcp": f"{s.sr_received} / {s.rr_sent}" + (f" ({s.rtcp_errors} bad)" if s.rtcp_errors else ""),
            "state": state,
        }
        shown = self._shown_text
        for key, text in texts.items():
            if shown.get(key) != text:
                shown[key] = text
                self.stat_vars[key].set(text)

    def _set_title(self, title: str) -> None:
        if title != self.title:
            self.master.title(title)
            self.title = title

    def _draw_plot(self, s: StatsSnapshot) -> None:
        """Redraw the plot when its history has a new sample (every 0.5 s while playing)."""
        hist = s.history
        key = (len(hist), hist[-1][0] if hist else None)
        if key == self._plot_key:
            return
        self._plot_key = key
        c = self.plot
        c.delete("all")
        w, h = int(c.cget("width")), int(c.cget("height"))
        top, bottom, left = 14, h - 4, 4
        c.create_line(left, bottom, w, bottom, fill="#ccc")
        top = 26                                    # two rows of labels: each series' own scale
        for n, (i, color, name) in enumerate(self.PLOT_SERIES):
            vals = [p[i] for p in hist if len(p) > i and not math.isnan(p[i])]
            peak = max(vals + [1e-9])
            fmt = ".0f" if i in (1, 2) else ".1f" if i == 3 else ".2f"
            label = f"{name} (max {peak:{fmt}})" if vals else f"{name} (-)"
            c.create_text(4 + (n % 3) * 110, 1 + (n // 3) * 11, text=label, anchor="nw", fill=color,
                          font=("TkDefaultFont", 7))
            scale = peak * 1.1 if peak > 1e-6 else 1.0
            pts: list[float] = []
            for p in hist:
                if len(p) <= i or math.isnan(p[i]):
                    continue
                px = left + (w - left) * (1 - (s.time - p[0]) / PLOT_SPAN)
                py = bottom - (bottom - top) * (p[i] / scale)
                pts += [px, py]
            if len(pts) >= 4:
                c.create_line(*pts, fill=color, width=1.5)


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
    app = Client(root, engine, simple=getattr(args, "simple", False), start=getattr(args, "start", None))
    if engine.proto is not None:
        def initial() -> None:
            try:
                engine.options()
            except ClientError as exc:
                logger.info("OPTIONS: %s", exc)
            engine.describe()
        app._run("DESCRIBE", initial, done=app._show_sdp)
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # Tk callbacks swallow KeyboardInterrupt, so Ctrl-C is turned into a quit on the Tk thread.
        if interrupted.is_set():
            raise KeyboardInterrupt          # a second Ctrl-C: leave without waiting
        interrupted.set()
        root.after(0, lambda: (engine.quit(), app.close()))

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
