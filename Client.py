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
from struct import error as struct_error   # Pillow raises it for some truncated headers
import time
import tkinter as tk
from tkinter import filedialog, messagebox, ttk
from typing import Any, Callable

from PIL import Image, ImageTk

from ReceiveEngine import ClientError, ClientState, Event, EventKind, Frame, ReceiveEngine
from RtpStats import StatsSnapshot

log = logging.getLogger(__name__)

GUI_TICK_MS = 15          # queue drain period while playing, where Tk cannot watch a socket
IDLE_TICK_MS = 100        # the same when nothing plays (button states, log lines)
STATS_TICK_MS = 250       # statistics panel and plot: 4 updates per second while playing
IMAGE_BLOCKS = 4          # freed image buffers Pillow keeps for reuse (see reuse_image_memory)
PLOT_SPAN = 30.0          # seconds shown in the plot
VIEW_DEFAULT = (1280, 720)  # the default view shows 640x480 and 1280x720 streams 1:1 (screen permitting)
FIT_SLACK = 8             # px a frame may exceed the view by and still be shown 1:1 (edges clipped):
                          # resampling a whole frame to gain a few pixels costs more than decoding it
SCREEN_MARGIN = (32, 96)  # px of the screen left to window decorations and desktop panels
RESIZE_FILTER = Image.Resampling.BOX  # area average: antialiased for the < 2x reductions left after draft(), and
                           # ~1/3 cheaper than BILINEAR (1280x720 -> 704x396: 2.9 vs 4.4 ms here)
MAX_FRAME_PIXELS = 40_000_000   # a frame claiming more (e.g. a SOF of 60000x60000) is refused undecoded
SEEK_STEP = 5.0           # seconds per Left/Right key
QUIT_WAIT = 1.0           # longest wait for the TEARDOWN reply when quitting (the window closes anyway)
CLOSE_PAUSE_WAIT = 0.5    # longest wait for the PAUSE reply when the close box is clicked
SIDE_WIDTH = 370          # px of the statistics side panel

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


def fit_size(frame: tuple[int, int], view: tuple[int, int], slack: int = FIT_SLACK,
             enlarge: bool = False) -> tuple[int, int]:
    """The size a frame is shown at in a view: its own when it fits (or overflows by at most ``slack``
    px, clipped evenly at the edges), else scaled down to fit, aspect ratio kept. ``enlarge`` (fit to
    window) also scales a smaller frame up to the view. A view not laid out yet (1x1) shows frames 1:1."""
    fw, fh = frame
    vw, vh = view
    if vw <= 1 or vh <= 1:
        return frame
    scale = min(vw / fw, vh / fh)
    if enlarge:
        if abs(scale - 1.0) * max(fw, fh) < 1:
            return frame
        return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))
    if fw <= vw + slack and fh <= vh + slack:
        return frame
    return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))


def decode_for_view(data: bytes, view: tuple[int, int],
                    enlarge: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one JPEG from memory at the size :func:`fit_size` gives for ``view``; also returns the
    frame's own size. Reductions of 2x or more happen in the decoder (``draft``: DCT scaling to 1/2,
    1/4 or 1/8, never below the target), the rest with :data:`RESIZE_FILTER`. The decoder's mode is
    kept (a Tk photo takes RGB and L as they are). Raises ValueError for a bad frame: truncated,
    corrupt, or claiming more than :data:`MAX_FRAME_PIXELS` (a decompression bomb)."""
    try:
        img: Image.Image = Image.open(io.BytesIO(data), formats=("JPEG",))  # RFC 2435 carries JPEG only
        native = img.size
        if native[0] * native[1] > MAX_FRAME_PIXELS:
            raise ValueError(f"frame claims {native[0]}x{native[1]} pixels (more than "
                             f"{MAX_FRAME_PIXELS:,}); not decoded")
        size = fit_size(native, view, enlarge=enlarge)
        if size[0] < native[0]:
            img.draft(None, size)
        img.load()
        if img.size != size:
            img = img.resize(size, RESIZE_FILTER)
    except Image.DecompressionBombError as exc:    # not an OSError
        raise ValueError(f"frame too large to decode: {exc}") from None
    except (OSError, SyntaxError, struct_error) as exc:
        raise ValueError(f"frame does not decode: {exc}") from None
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


def nice_ceiling(value: float, floor: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (and at least ``floor``): a chart's scale,
    so small noise stays small (0.03 ms of jitter on a 1 ms scale) and the labels read well."""
    value = max(value, floor)
    exp = math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        top = m * 10 ** exp
        if top >= value * 0.999:
            return float(top)
    return float(10 ** (exp + 1))


def reuse_image_memory() -> None:
    """Have Pillow keep a few freed image buffers for the next frames (its block cache; off by
    default, PILLOW_BLOCKS_MAX). Otherwise each frame's buffers are returned to the system and
    mapped afresh: ~600 page faults per 640x480 frame, a third of the player's CPU when playing."""
    set_blocks_max = getattr(Image.core, "set_blocks_max", None)
    if set_blocks_max is not None and "PILLOW_BLOCKS_MAX" not in os.environ \
            and Image.core.get_blocks_max() < IMAGE_BLOCKS:
        set_blocks_max(IMAGE_BLOCKS)


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


class Client:
    """The Tk player window. Network work runs on worker threads; widgets change only here.

    ``ask_quit`` decides what closing the window does once the stream is paused (True = quit);
    ``ask_save_path`` picks the file Ctrl+S writes. Tests replace them instead of clicking dialogs.
    ``collect_frames`` keeps every frame received (``--save`` with the window).
    """

    # (key, label, tooltip): plain words in the window, the RFC's name in the tooltip; the same
    # names as the headless line, --stats-json and the README's "Reading the statistics".
    STAT_ROWS = [
        ("frame", "Frame shown", "The number of the frame in the view (it counts from 0, as the number "
                                 "drawn on movie.Mjpeg's pictures) / frames in the movie. "
                                 "(--stats-json: frame_index, frame_total)"),
        ("fps", "Frames/s now / average", "Complete frames per second, over the last second / since PLAY "
                                          "(pauses excluded). One lost packet spoils its whole frame, so "
                                          "with 5% of packets lost and ~9 packets per frame about a third "
                                          "of the frames are dropped. (fps_inst, fps_avg)"),
        ("rate", "kbit/s now / average", "Received RTP data rate (headers included) over the last second "
                                         "/ since PLAY. (kbps_inst, kbps_avg)"),
        ("bytes", "Bytes received", "RTP bytes received, headers included. (bytes_received)"),
        ("packets", "Packets received", "Distinct RTP packets received (duplicates not counted). "
                                        "(packets_received)"),
        ("lost", "Packets lost", "Packets lost (RFC 3550 A.3): expected (highest sequence number - first + 1) "
                                 "minus received. (packets_lost)"),
        ("loss", "Loss rate", "Packets lost / packets expected (RFC 3550 A.3), cumulative. (loss_percent)"),
        ("dups", "Duplicates", "Packets that arrived twice (dropped). (duplicates)"),
        ("ooo", "Out of order", "Packets that arrived after a later one (put back in order). (out_of_order)"),
        ("frames", "Frames complete / dropped", "Frames completed / frames dropped because a packet of theirs "
                                                "was lost or damaged (RFC 2435). (frames_completed, "
                                                "frames_dropped)"),
        ("jitter", "Jitter", "Interarrival jitter (RFC 3550 A.8): how much packet transit times vary, "
                             "smoothed over 16 packets. Restarted at each PLAY (a seek changes the "
                             "timeline). (jitter_ms)"),
        ("delay", "One-way delay", "Time from the sender's clock at a frame (mapped through its last RTCP "
                                   "sender report, RFC 3550 6.4.1) to its arrival here; right only when "
                                   "both clocks agree (same machine, NTP). '-' until a sender report "
                                   "maps the current PLAY. (delay_ms)"),
        ("rtt", "Round-trip time", "Round trip to the server from RTCP XR RRTR/DLRR (RFC 3611 4.4-4.5). "
                                   "(rtt_ms)"),
        ("sender", "Sender reported packets", "The packet count in the sender's last RTCP sender report "
                                              "(RFC 3550 6.4.1): what it had sent at its last SR, so it "
                                              "lags behind 'Packets received'. (sender_packets)"),
        ("octets", "Payload in / reported", "RTP payload octets received / the octet count in the "
                                                  "sender's last SR. (payload_octets, sender_octets)"),
        ("clock", "Sender clock at frame", "The sender's wall clock when the frame shown was sampled, from "
                                           "its SR. (sender_clock)"),
        ("rtcp", "Sender reports in / RR out", "RTCP sender reports received / receiver reports we sent "
                                               "(RFC 3550 6.4). (sr_received, rr_sent)"),
        ("state", "RTSP state", "INIT, READY, PLAYING (RFC 2326 A.1) or ENDED (the end of the stream)."),
    ]
    # (history index, colour, title, floor of the scale, format)
    PLOT_SERIES = [(1, "#1f77b4", "kbit/s", 100.0, ".0f"), (2, "#2ca02c", "frames/s", 5.0, ".0f"),
                   (3, "#d62728", "loss %", 1.0, ".1f"), (4, "#9467bd", "jitter ms", 1.0, ".1f")]
    PLOT_ROW = 40            # px per chart
    PLOT_LEFT = 40           # px for the scale labels

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

    def _build_side(self, main: ttk.Frame) -> None:
        """The statistics, plot and impairment panel, in a canvas that scrolls when the window is short."""
        outer = ttk.Frame(main)
        outer.grid(row=0, column=1, rowspan=5, sticky="ns", padx=(6, 0))
        outer.rowconfigure(0, weight=1)
        self.side_outer = outer
        canvas = tk.Canvas(outer, highlightthickness=0, borderwidth=0, width=SIDE_WIDTH, height=200)
        bar = ttk.Scrollbar(outer, orient="vertical", command=canvas.yview)
        canvas.configure(yscrollcommand=bar.set)
        canvas.grid(row=0, column=0, sticky="ns")
        bar.grid(row=0, column=1, sticky="ns")
        self.side_canvas, self.side_scroll = canvas, bar
        side = ttk.Frame(canvas)
        canvas.create_window(0, 0, window=side, anchor="nw")
        side.bind("<Configure>", lambda e: self._side_resized())
        canvas.bind("<Configure>", lambda e: self._side_resized())
        for w in (canvas, side):
            w.bind("<Button-4>", lambda e: canvas.yview_scroll(-2, "units"))
            w.bind("<Button-5>", lambda e: canvas.yview_scroll(2, "units"))
            w.bind("<MouseWheel>", lambda e: canvas.yview_scroll(-1 if e.delta > 0 else 1, "units"))
        self.side = side
        stats = ttk.LabelFrame(side, text="Statistics (point at a name for what it means)", padding=6)
        stats.grid(row=0, column=0, sticky="new")
        self.stats_frame = stats
        stats.columnconfigure(1, weight=1)
        self.stat_vars: dict[str, tk.StringVar] = {}
        self.stat_labels: dict[str, ttk.Label] = {}
        for i, (key, label, tip) in enumerate(self.STAT_ROWS):
            name = ttk.Label(stats, text=label + ":")
            name.grid(row=i, column=0, sticky="w")
            var = tk.StringVar(value="-")
            ttk.Label(stats, textvariable=var, width=20, anchor="e", font="TkFixedFont").grid(
                row=i, column=1, sticky="e")
            self.stat_vars[key] = var
            self.stat_labels[key] = name
            self.tooltips[f"stat:{key}"] = Tooltip(name, tip)
        plot_frame = ttk.LabelFrame(side, text=f"Last {PLOT_SPAN:.0f} s", padding=4)
        plot_frame.grid(row=1, column=0, sticky="new", pady=(6, 0))
        self.plot = tk.Canvas(plot_frame, width=SIDE_WIDTH - 24,
                              height=self.PLOT_ROW * len(self.PLOT_SERIES) + 16,
                              background="white", highlightthickness=0)
        self.plot.grid(row=0, column=0)
        self._build_impairment(side)

    def _side_resized(self) -> None:
        c = self.side_canvas
        c.configure(scrollregion=(0, 0, self.side.winfo_reqwidth(), self.side.winfo_reqheight()),
                    width=self.side.winfo_reqwidth())

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

    def _build_impairment(self, side: ttk.Frame) -> None:
        """The network-impairment panel: a spec (as --impair) applied to incoming RTP while playing."""
        box = ttk.LabelFrame(side, text="Network impairment (incoming RTP)", padding=4)
        box.grid(row=2, column=0, sticky="new", pady=(6, 0))
        box.columnconfigure(0, weight=1)
        imp = self.engine.impairer
        active = imp is not None and imp.spec.active
        self.impair_var = tk.StringVar(value=str(imp.spec) if active and imp is not None else "")
        self.impair_entry = ttk.Entry(box, textvariable=self.impair_var, width=24, font="TkFixedFont")
        self.impair_entry.grid(row=0, column=0, sticky="ew")
        self.impair_entry.bind("<Return>", lambda e: self.apply_impairment())
        self.impair_entry.bind("<Escape>", self._leave_entry)
        self.impair_apply = ttk.Button(box, text="Apply", width=6, command=self.apply_impairment, takefocus=0)
        self.impair_apply.grid(row=0, column=1, padx=(4, 0))
        ttk.Button(box, text="Off", width=4, command=lambda: self.apply_impairment("off"), takefocus=0).grid(
            row=0, column=2, padx=(2, 0))
        self.impair_status = tk.StringVar(value="applied" if active else
                                          "off - type e.g. loss=5%,seed=1 and press Apply")
        ttk.Label(box, textvariable=self.impair_status, font=("TkDefaultFont", 8),
                  wraplength=SIDE_WIDTH - 40, justify="left").grid(row=1, column=0, columnspan=3, sticky="w")
        self.tooltips["impair"] = Tooltip(self.impair_entry, "loss=5%,burst=3,reorder=2%,dup=1%,delay=20ms,"
                                                             "jitter=10ms,seed=1 (as --impair); Return applies")

    def _leave_entry(self, event: object = None) -> str:
        """Escape in a text box: the keys go back to the view (the player's shortcuts)."""
        self.view.focus_set()
        return "break"

    def apply_impairment(self, text: str | None = None) -> None:
        """Apply (or switch off) the impairment typed in the panel; a bad spec shows its error."""
        if text is not None:
            self.impair_var.set(text)
        typed = self.impair_var.get().strip() or "off"
        try:
            spec = self.engine.set_impairment(typed)
        except ValueError as exc:
            self.impair_status.set(f"error: {exc}")
            return
        self.impair_var.set(str(spec) if spec.active else "")
        self.impair_status.set("applied" if spec.active else "off")

    # -- keys ------------------------------------------------------------------------------------
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
            self.engine.events.put(Event(EventKind.STATE, ("done", name, err, done, always)))

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
                elif ev.kind is EventKind.STATE and isinstance(ev.payload, tuple):
                    _, name, err, done, always = ev.payload
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

    def _fill_stats(self, s: StatsSnapshot, state: str) -> None:
        shown_text = self._shown_text

        def put(key: str, text: str) -> None:      # set a label only when its text changes
            if shown_text.get(key) != text:
                shown_text[key] = text
                self.stat_vars[key].set(text)
        total = f"{s.frame_total}" if s.frame_total else "?"
        shown = self.shown_frame
        put("frame", f"{shown.index} / {total}" if shown is not None else f"- / {total}")
        put("fps", f"{s.fps_inst:5.1f} / {s.fps_avg:5.1f}")
        put("bytes", f"{s.bytes_received:,}")
        put("rate", f"{s.kbps_inst:6.0f} / {s.kbps_avg:6.0f}")
        # packets that arrived but could not be used (bad header, payload type, SSRC...): not the
        # ones the impairment panel dropped, which never reached the player
        unusable = self.engine.diag.dropped
        put("packets", f"{s.packets_received:,}" if not unusable
            else f"{s.packets_received:,} (+{unusable:,} unusable)")
        put("lost", f"{s.packets_lost:,}")
        put("loss", f"{s.loss_percent:.2f} %")
        put("dups", f"{s.duplicates}")
        put("ooo", f"{s.out_of_order}")
        put("frames", f"{s.frames_completed} / {s.frames_dropped}")
        put("jitter", f"{s.jitter_ms:.2f} ms")
        put("delay", f"{s.delay_ms:.1f} ms" if s.delay_ms is not None else "-")
        put("rtt", f"{s.rtt_ms:.2f} ms" if s.rtt_ms is not None else "-")
        put("sender", f"{s.sender_packets:,}" if s.sender_packets is not None else "-")
        put("octets", f"{_fmt_bytes(s.payload_octets)} / {_fmt_bytes(s.sender_octets)}")
        put("clock", time.strftime("%H:%M:%S", time.localtime(s.sender_clock))
            + f".{int(s.sender_clock * 1000) % 1000:03d}" if s.sender_clock is not None else "-")
        put("rtcp", f"{s.sr_received} / {s.rr_sent}" + (f" ({s.rtcp_errors} bad)" if s.rtcp_errors else ""))
        if s.impairment is not None and not self.impair_status.get().startswith("error"):
            i = s.impairment
            self._set_text(self.impair_status, f"the impairer (ground truth) dropped {i['dropped']}, "
                           f"duplicated {i['duplicated']}, reordered {i['reordered']} of {i['sent']} packets")
        put("state", state)
        self._diagnose(s)

    def _diagnose(self, s: StatsSnapshot) -> None:
        why = self.engine.diagnosis(s.time)
        if why is not None and not self.busy and self.status_var.get() != why:
            self._status(why, error=True)      # packets arrive but make no frames: say why
            if self.frames_shown == 0:         # ... and in full where the picture would be
                self.view.itemconfigure(self.view_text, text=why, fill="#e66",
                                        width=max(200, self.view.winfo_width() - 40))

    def _set_text(self, var: tk.StringVar, text: str) -> None:
        """Set a label's variable only when its text changes (each set redraws the label)."""
        if var.get() != text:
            var.set(text)

    def _set_title(self, title: str) -> None:
        if title != self.title:
            self.master.title(title)
            self.title = title

    def _draw_plot(self, s: StatsSnapshot) -> None:
        """One small chart per metric, each with its own scale (0 and a round maximum) on the left,
        and a shared time axis (seconds before now) at the bottom."""
        hist = s.history
        key = (len(hist), hist[-1][0] if hist else None)
        if key == self._plot_key:
            return                       # a new sample every 0.5 s (RtpStats.PlaybackStats)
        self._plot_key = key
        c = self.plot
        c.delete("all")
        w = int(c.cget("width"))
        left, row = self.PLOT_LEFT, self.PLOT_ROW
        span_w = w - left - 4
        font = ("TkDefaultFont", 7)
        hist = s.history
        for n, (i, color, name, floor, fmt) in enumerate(self.PLOT_SERIES):
            top, bottom = n * row + 3, (n + 1) * row - 3
            vals = [p[i] for p in hist if len(p) > i and not math.isnan(p[i])]
            peak = max(vals) if vals else 0.0
            scale = nice_ceiling(peak, floor)
            c.create_rectangle(left, top, left + span_w, bottom, outline="#ddd")
            c.create_text(left - 3, top, text=f"{scale:g}", anchor="ne", font=font, fill="#555")
            c.create_text(left - 3, bottom, text="0", anchor="se", font=font, fill="#555")
            now = f"{vals[-1]:{fmt}}" if vals else "-"
            c.create_text(left + 3, top + 1, text=f"{name}: {now}", anchor="nw", font=font, fill=color)
            pts: list[float] = []
            for p in hist:
                if len(p) <= i or math.isnan(p[i]):
                    continue
                px = left + span_w * (1 - (s.time - p[0]) / PLOT_SPAN)
                py = bottom - (bottom - top) * min(1.0, p[i] / scale)
                pts += [px, py]
            if len(pts) >= 4:
                c.create_line(*pts, fill=color, width=1.5)
        axis = len(self.PLOT_SERIES) * row + 2
        for k in range(0, int(PLOT_SPAN) + 1, 10):
            x = left + span_w * (1 - k / PLOT_SPAN)
            c.create_line(x, axis - 3, x, axis, fill="#888")
            c.create_text(x, axis, text="now" if k == 0 else f"-{k} s", anchor="ne" if k == 0 else "n",
                          font=font, fill="#555")


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
