"""The player's side panel: the statistics table, the plot of the last seconds, the impairment box.

:class:`StatsPanel` is a part of :class:`Client.Client` (a mixin): it builds the panel's widgets
and fills them from a :class:`RtpStats.StatsSnapshot`; the Client decides when (its stats tick)."""

from __future__ import annotations

import math
import time
import tkinter as tk
from tkinter import ttk
from typing import TYPE_CHECKING, Any

from RtpStats import StatsSnapshot
from TkWidgets import Tooltip

if TYPE_CHECKING:
    from ReceiveEngine import Frame, ReceiveEngine

PLOT_SPAN = 30.0          # seconds shown in the plot
SIDE_WIDTH = 370          # px of the statistics side panel


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


class StatsPanel:
    """The statistics side panel of the player (mixed into :class:`Client.Client`)."""

    if TYPE_CHECKING:
        engine: ReceiveEngine
        busy: bool
        frames_shown: int
        shown_frame: Frame | None
        tooltips: dict[str, Tooltip]
        view: tk.Canvas
        view_text: int
        status_var: tk.StringVar
        _shown_text: dict[str, str]
        _plot_key: Any

        def _status(self, text: str, error: bool = False) -> None: ...

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

