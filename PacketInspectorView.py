"""The packet inspector window (Tk): the latest packets, one packet's fields, its bits and bytes.

A list of the last packets (time, kind, seq, timestamp, M, size) that follows the stream
until "Pause list" is ticked (playback goes on: only the list stops); for the selected
packet, every field (PacketInspector.decode), the RFC 3550 §5.1-style bit diagram and the
bytes in hex.  The field under the mouse -- in the field list, the diagram or the hex --
is highlighted in all three.  The window reads a PacketInspector.PacketRing that the
player's ReceiveEngine fills (its `tap`); rows are added from the ring every
REFRESH_MS, and only the selected packet is decoded.
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import ttk
from typing import Callable

from PacketInspector import Decoded, PacketRing, Span, decode, diagram, summarize

log = logging.getLogger(__name__)

REFRESH_MS = 500    # the list redraws twice a second (a Treeview redraw costs ~2 ms, whatever changed)
FOLLOW_ROWS = 12    # the list's height: while following it shows the newest packets in these rows
HEX_PER_LINE = 16
HIGHLIGHT = "#ffe066"


def hex_dump(data: bytes) -> str:
    """16 octets a line: offset, hex (a gap after 8), ASCII."""
    lines = []
    for at in range(0, len(data), HEX_PER_LINE):
        chunk = data[at:at + HEX_PER_LINE]
        left, right = chunk[:8].hex(" "), chunk[8:].hex(" ")
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:04x}  {left:<23}  {right:<23}  {text}")
    return "\n".join(lines)


def hex_column(octet: int) -> int:
    """Column of octet `octet`'s first hex digit within its hex_dump line."""
    i = octet % HEX_PER_LINE
    return 6 + 3 * i + (1 if i >= 8 else 0)


def octet_at(line: int, col: int) -> int | None:
    """The octet drawn at hex_dump (line from 0, column), or None for the gaps/ASCII."""
    for i in range(HEX_PER_LINE):
        c = 6 + 3 * i + (1 if i >= 8 else 0)
        if c <= col < c + 2:
            return line * HEX_PER_LINE + i
    return None


class InspectorWindow:
    """A Toplevel over `ring`; `on_close` runs when the window goes."""

    COLUMNS = (("no", "#", 60), ("time", "time s", 80), ("kind", "kind", 110), ("seq", "seq", 60),
               ("ts", "timestamp", 100), ("m", "M", 30), ("size", "size", 60))

    def __init__(self, master: tk.Misc, ring: PacketRing, on_close: Callable[[], None] | None = None,
                 title: str = "Packet inspector") -> None:
        self.ring = ring
        self.on_close = on_close
        self.top = tk.Toplevel(master)
        self.top.title(title)
        self.top.geometry("1120x780")
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        self.closed = False
        self.last = 0                         # the newest packet number listed
        self.rows: dict[str, tuple[int, float, bool, bytes, bool]] = {}
        self.decoded: Decoded | None = None
        self.data = b""
        self.selected: int | None = None      # packet number shown below
        self.spans: list[Span] = []
        self.highlighted: int | None = None   # field index
        self._after_id: str | None = None
        self.following = False
        self.recent: list[tuple[int, float, bool, bytes, bool]] = []
        self._build()
        self._follow()
        self._refresh()

    # -- layout
    def _build(self) -> None:
        top = self.top
        top.columnconfigure(0, weight=1)
        top.rowconfigure(1, weight=1)
        bar = ttk.Frame(top, padding=4)
        bar.grid(row=0, column=0, sticky="ew")
        self.paused = tk.BooleanVar(value=False)
        self.pause_button = ttk.Checkbutton(bar, text="Pause list (playback goes on)", variable=self.paused)
        self.pause_button.grid(row=0, column=0)
        self.count_var = tk.StringVar(value="")
        ttk.Label(bar, textvariable=self.count_var).grid(row=0, column=1, padx=12)
        panes = ttk.Panedwindow(top, orient="vertical")
        panes.grid(row=1, column=0, sticky="nsew")
        # the packet list
        lf = ttk.Frame(panes)
        lf.columnconfigure(0, weight=1)
        lf.rowconfigure(0, weight=1)
        self.list = ttk.Treeview(lf, columns=[c[0] for c in self.COLUMNS], show="headings", height=FOLLOW_ROWS,
                                 selectmode="browse")
        for key, heading, width in self.COLUMNS:
            self.list.heading(key, text=heading)
            self.list.column(key, width=width, anchor="e" if key not in ("kind",) else "w", stretch=key == "kind")
        sb = ttk.Scrollbar(lf, orient="vertical", command=self.list.yview)
        self.list.configure(yscrollcommand=sb.set)
        self.list.grid(row=0, column=0, sticky="nsew")
        sb.grid(row=0, column=1, sticky="ns")
        self.list.bind("<<TreeviewSelect>>", self._on_select)
        panes.add(lf, weight=1)
        # fields + diagram
        mid = ttk.Panedwindow(panes, orient="horizontal")
        ff = ttk.Frame(mid)
        ff.columnconfigure(0, weight=1)
        ff.rowconfigure(0, weight=1)
        self.fields = ttk.Treeview(ff, columns=("layer", "field", "bits", "value"), show="headings", height=14,
                                   selectmode="browse")
        for key, width in (("layer", 82), ("field", 160), ("bits", 65), ("value", 170)):
            self.fields.heading(key, text=key)
            self.fields.column(key, width=width, anchor="w", stretch=key == "value")
        fsb = ttk.Scrollbar(ff, orient="vertical", command=self.fields.yview)
        self.fields.configure(yscrollcommand=fsb.set)
        self.fields.grid(row=0, column=0, sticky="nsew")
        fsb.grid(row=0, column=1, sticky="ns")
        self.fields.tag_configure("hl", background=HIGHLIGHT)
        self.fields.bind("<Motion>", self._on_fields_motion)
        self.fields.bind("<<TreeviewSelect>>", self._on_field_select)
        mid.add(ff, weight=1)
        df = ttk.Frame(mid)
        df.columnconfigure(0, weight=1)
        df.rowconfigure(0, weight=1)
        self.diagram = tk.Text(df, width=66, height=16, wrap="none", font="TkFixedFont")
        dsb = ttk.Scrollbar(df, orient="vertical", command=self.diagram.yview)
        self.diagram.configure(yscrollcommand=dsb.set)
        self.diagram.grid(row=0, column=0, sticky="nsew")
        dsb.grid(row=0, column=1, sticky="ns")
        self.diagram.tag_configure("hl", background=HIGHLIGHT)
        self.diagram.bind("<Motion>", self._on_diagram_motion)
        mid.add(df, weight=1)
        panes.add(mid, weight=2)
        # hex
        hf = ttk.Frame(panes)
        hf.columnconfigure(0, weight=1)
        hf.rowconfigure(0, weight=1)
        self.hex = tk.Text(hf, height=8, wrap="none", font="TkFixedFont")
        hsb = ttk.Scrollbar(hf, orient="vertical", command=self.hex.yview)
        self.hex.configure(yscrollcommand=hsb.set)
        self.hex.grid(row=0, column=0, sticky="nsew")
        hsb.grid(row=0, column=1, sticky="ns")
        self.hex.tag_configure("hl", background=HIGHLIGHT)
        self.hex.bind("<Motion>", self._on_hex_motion)
        panes.add(hf, weight=1)
        self.status = tk.StringVar(value="")
        ttk.Label(top, textvariable=self.status, foreground="#a00", padding=4).grid(row=2, column=0, sticky="w")

    # -- the list
    def _refresh(self) -> None:
        if self.closed:
            return
        paused = self.paused.get()
        if paused and self.following:
            self._list_whole_ring()
        elif not paused and not self.following:
            self._follow()
        if self.following:
            self._update_recent()
        self.count_var.set(f"{self.ring.total} packets seen, the last {min(self.ring.total, self.ring.size)} kept"
                           + (f"; list paused, {len(self.rows)} listed" if not self.following else ""))
        self._after_id = self.top.after(REFRESH_MS, self._refresh)

    def _follow(self) -> None:
        """Follow the stream: FOLLOW_ROWS fixed rows show the newest packets, changed in place.

        A Treeview redraws in time proportional to its rows and each insert/delete costs a
        layout, so while following the list holds only what it shows (nobody reads 160 rows
        a second anyway); pausing lists the whole ring."""
        self.following = True
        self.list.delete(*self.list.get_children())
        for k in range(FOLLOW_ROWS):
            self.list.insert("", "end", iid=f"f{k}", values=())
        self.recent = []
        self.rows = {}
        self.last = max(0, self.ring.total - FOLLOW_ROWS)

    def _update_recent(self) -> None:
        entries = self.ring.since(self.last)
        if not entries:
            return
        self.last = entries[-1][0]
        self.recent = (self.recent + entries)[-FOLLOW_ROWS:]
        for k, entry in enumerate(self.recent):
            self.list.item(f"f{k}", values=self._row_values(entry))
        self.rows = {str(e[0]): e for e in self.recent}

    def _list_whole_ring(self) -> None:
        """On pause: every packet still in the ring goes into the list, to scroll through at leisure."""
        self.following = False
        self.list.delete(*self.list.get_children())
        entries = self.ring.since(0)
        for entry in entries:
            self.list.insert("", "end", iid=str(entry[0]), values=self._row_values(entry))
        self.rows = {str(e[0]): e for e in entries}
        if entries:
            self.last = entries[-1][0]
            self.list.see(str(self.last))
        if self.selected is not None and str(self.selected) in self.rows:
            self.list.selection_set(str(self.selected))
            self.list.see(str(self.selected))

    def _row_values(self, entry: tuple[int, float, bool, bytes, bool]) -> tuple:
        number, t, rtcp, data, sent = entry
        s = summarize(data, rtcp)
        return (number, f"{t - (self.ring.first_time or t):.3f}", s.kind + (" (sent)" if sent else ""), "" if s.seq is None else s.seq,
                "" if s.timestamp is None else s.timestamp, "" if s.marker is None else int(s.marker), s.size)

    def _number_of(self, iid: str) -> int | None:
        if iid.startswith("f"):
            k = int(iid[1:])
            return self.recent[k][0] if k < len(self.recent) else None
        return int(iid)

    def _on_select(self, _event: object = None) -> None:
        sel = self.list.selection()
        number = self._number_of(sel[0]) if sel else None
        if number is None or number == self.selected:
            return
        if self.following:
            # a row picked while following would move away: the list stops (playback does not)
            self.selected = number
            self.paused.set(True)
            self._list_whole_ring()
        self.show(number)

    def select_packet(self, number: int) -> None:
        """Select packet `number` in the list (and show it), as a click would; pauses the list."""
        if self.following:
            self.paused.set(True)
            self._list_whole_ring()
        self.list.selection_set(str(number))
        self.list.see(str(number))
        self.show(number)

    def row(self, number: int) -> tuple[str, ...]:
        """The list row of packet `number` as shown (#, time, kind, seq, timestamp, M, size)."""
        iid = str(number) if not self.following else f"f{[e[0] for e in self.recent].index(number)}"
        return tuple(str(v) for v in self.list.item(iid, "values"))

    # -- one packet
    def show(self, number: int) -> None:
        entry = self.rows.get(str(number))
        if entry is None:
            return
        _, _, rtcp, data, _ = entry
        self.selected = number
        self.data = data
        self.decoded = d = decode(data, rtcp)
        self.highlighted = None
        self.fields.delete(*self.fields.get_children())
        for i, f in enumerate(d.fields):
            bits = f"{f.start}-{f.end - 1}" if f.length > 1 else f"{f.start}"
            self.fields.insert("", "end", iid=str(i), values=(f.layer, f.name, bits, f.text))
        self.status.set(f"#{number} {d.kind}, {len(data)} bytes" + (f": {d.error}" if d.error else ""))
        lines, self.spans = diagram(data, d.fields)
        self._set_text(self.diagram, "\n".join(lines))
        self._set_text(self.hex, hex_dump(data))

    @staticmethod
    def _set_text(widget: tk.Text, text: str) -> None:
        widget.configure(state="normal")
        widget.delete("1.0", "end")
        widget.insert("1.0", text)
        widget.configure(state="disabled")

    # -- highlighting the field under the cursor
    def highlight(self, index: int | None) -> None:
        if index == self.highlighted or self.decoded is None:
            return
        self.highlighted = index
        for w in (self.diagram, self.hex):
            w.tag_remove("hl", "1.0", "end")
        for iid in self.fields.tag_has("hl"):
            self.fields.item(iid, tags=())
        if index is None:
            return
        f = self.decoded.fields[index]
        self.fields.item(str(index), tags=("hl",))
        self.fields.see(str(index))
        for s in self.spans:
            if s.field == index:
                self.diagram.tag_add("hl", f"{s.line + 1}.{s.col}", f"{s.line + 1}.{s.end}")
        first, last = f.byte_range
        for line in range(first // HEX_PER_LINE, (last - 1) // HEX_PER_LINE + 1):
            a = max(first, line * HEX_PER_LINE)
            b = min(last, (line + 1) * HEX_PER_LINE) - 1
            self.hex.tag_add("hl", f"{line + 1}.{hex_column(a)}", f"{line + 1}.{hex_column(b) + 2}")
        self.hex.see(f"{first // HEX_PER_LINE + 1}.0")

    def highlighted_hex(self) -> str:
        """The hex digits highlighted now (what a person sees marked), spaces removed."""
        ranges = self.hex.tag_ranges("hl")
        text = "".join(self.hex.get(ranges[i], ranges[i + 1]) for i in range(0, len(ranges), 2))
        return "".join(text.split())

    def _on_fields_motion(self, event: tk.Event) -> None:
        iid = self.fields.identify_row(event.y)
        self.highlight(int(iid) if iid else None)

    def _on_field_select(self, _event: object = None) -> None:
        sel = self.fields.selection()
        if sel:
            self.highlight(int(sel[0]))

    def _on_diagram_motion(self, event: tk.Event) -> None:
        line, col = (int(x) for x in self.diagram.index(f"@{event.x},{event.y}").split("."))
        hit = next((s.field for s in self.spans if s.line == line - 1 and s.col <= col < s.end), None)
        self.highlight(hit)

    def _on_hex_motion(self, event: tk.Event) -> None:
        if self.decoded is None:
            return
        line, col = (int(x) for x in self.hex.index(f"@{event.x},{event.y}").split("."))
        octet = octet_at(line - 1, col)
        f = self.decoded.field_at(octet) if octet is not None and octet < len(self.data) else None
        self.highlight(self.decoded.fields.index(f) if f is not None else None)

    def field_rows(self) -> list[tuple[str, str, str, str]]:
        """The field list as shown (layer, field, bits, value)."""
        return [tuple(str(v) for v in self.fields.item(i, "values")) for i in self.fields.get_children()]  # type: ignore[misc]

    def lift(self) -> None:
        self.top.deiconify()
        self.top.lift()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._after_id is not None:
            try:
                self.top.after_cancel(self._after_id)
            except tk.TclError:
                pass
        try:
            self.top.destroy()
        except tk.TclError:
            pass
        if self.on_close is not None:
            self.on_close()
