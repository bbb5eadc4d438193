"""PacketInspector.py against captured packets (ffmpeg, GStreamer, our RTCP), and the window under Xvfb.

Every decode is checked two ways: the fields tile the datagram exactly (each starts where the
previous ended, together they cover every bit), and their values equal what the project's
parsers (RtpPacket, RtpJpeg, RtcpPacket) read from the same bytes.
"""

from __future__ import annotations

import gc
import os
import logging
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import MOVIE, ROOT
from rtsp_tools import skipped_frames

import PacketInspector as PI
from RtcpPacket import Bye, ReceiverReport, SenderReport, SourceDescription, parse_compound
from RtpJpeg import packetize, parse_payload
from RtpPacket import RtpPacket, ts_diff
from VideoStream import VideoStream

from capture_rtp import read_records  # tools/capture_rtp.py (on the path from conftest.py)

FIXTURES = ROOT / "tests" / "fixtures"
RTP_FIXTURES = sorted(FIXTURES.glob("*.rtp"))
RTCP_FIXTURES = sorted(FIXTURES.glob("rtcp_*.bin"))


def tiles(decoded: PI.Decoded, size: int) -> None:
    at = 0
    for f in decoded.fields:
        assert f.start == at, f"{f.name} starts at bit {f.start}, the previous field ended at {at}"
        at = f.end
    assert at == 8 * size, f"fields cover {at} of {8 * size} bits"


def value(decoded: PI.Decoded, name: str, layer: str | None = None):
    f = decoded.get(name, layer)
    assert f is not None, f"no field {name!r}"
    return f.value


@pytest.mark.parametrize("path", RTP_FIXTURES, ids=lambda p: p.name)
def test_rtp_fixtures_decode_like_the_parsers(path):
    packets = read_records(str(path))
    assert packets
    for data in packets:
        d = PI.decode(data, rtcp=False)
        assert d.kind == "RTP" and not d.error
        tiles(d, len(data))
        p = RtpPacket.parse(data)
        assert value(d, "version") == 2 and value(d, "payload type") == p.payload_type == 26
        assert value(d, "sequence number") == p.sequence_number
        assert value(d, "timestamp") == p.rtp_timestamp and value(d, "SSRC") == p.ssrc
        assert value(d, "marker") == int(p.marker)
        jp = parse_payload(p.payload)
        assert value(d, "fragment offset") == jp.fragment_offset
        assert value(d, "type") == jp.jpeg_type and value(d, "Q") == jp.q
        assert value(d, "width") * 8 == jp.width and value(d, "height") * 8 == jp.height
        assert value(d, "JPEG data") == bytes(jp.data)
        tables = [f.value for f in d.fields if f.name.startswith("quantization table")]
        assert tables == (jp.qtables or [])
        s = PI.summarize(data, False)
        assert (s.kind, s.seq, s.timestamp, s.marker, s.size) == ("RTP", p.sequence_number, p.rtp_timestamp,
                                                                    p.marker, len(data))


@pytest.mark.parametrize("path", RTCP_FIXTURES, ids=lambda p: p.name)
def test_rtcp_fixtures_decode_like_the_parser(path):
    data = path.read_bytes()
    d = PI.decode(data, rtcp=True)
    tiles(d, len(data))
    parsed = parse_compound(data, strict=False)
    names = {SenderReport: "SR", ReceiverReport: "RR", SourceDescription: "SDES", Bye: "BYE"}
    assert d.kind == "RTCP " + "+".join(names.get(type(p), "?") for p in parsed)
    assert PI.summarize(data).kind == d.kind and PI.is_rtcp(data)
    for p in parsed:
        layer = "RTCP " + names[type(p)]
        if isinstance(p, SenderReport):
            assert value(d, "SSRC of sender", layer) == p.ssrc
            assert (value(d, "NTP timestamp, most significant word") << 32
                    | value(d, "NTP timestamp, least significant word")) == p.ntp_timestamp
            assert value(d, "RTP timestamp") == p.rtp_timestamp
            assert value(d, "sender's packet count") == p.packet_count
            assert value(d, "sender's octet count") == p.octet_count
        if isinstance(p, (SenderReport, ReceiverReport)):
            blocks = [f.value for f in d.fields if f.layer == layer and f.name.startswith("SSRC_")]
            assert blocks == [b.ssrc for b in p.reports]
            for b in p.reports:
                assert value(d, "cumulative number of packets lost", layer) == b.packets_lost
                assert value(d, "extended highest sequence number received", layer) == b.highest_sequence
                assert value(d, "interarrival jitter", layer) == b.jitter
        if isinstance(p, SourceDescription):
            cname = d.get("CNAME text")
            assert cname is not None and cname.value.decode() == p.chunks[0].cname


def test_restart_header_csrc_extension_padding():
    jpeg = (FIXTURES / "restart-dri-160x120.jpg").read_bytes()
    parts = packetize(jpeg, 300)
    data = RtpPacket(26, 65535, 2, 3, parts[0], False, csrc=(7, 8), extension=(0xBEDE, b"abcd"), padding=3).serialize()
    d = PI.decode(data)
    assert not d.error
    tiles(d, len(data))
    assert value(d, "CSRC count") == 2 and [value(d, "CSRC 0"), value(d, "CSRC 1")] == [7, 8]
    assert value(d, "extension profile") == 0xBEDE and value(d, "header extension") == b"abcd"
    assert value(d, "padding count") == 3
    jp = parse_payload(parts[0])
    assert value(d, "type") == 65 and value(d, "restart interval") == jp.restart_interval == 10
    assert (value(d, "F"), value(d, "L")) == (1, 1) and value(d, "restart count") == 0x3FFF
    assert d.field_at(1).name == "payload type" and d.field_at(0).name == "CSRC count"
    assert d.field_at(len(data) - 1).name == "padding count"


def test_diagram_draws_the_rfc_rows():
    data = read_records(str(FIXTURES / "ffmpeg-testsrc-320x240.rtp"))[0]
    assert data[:4].hex() == "801a0737"
    d = PI.decode(data)
    lines, spans = PI.diagram(data, d.fields)
    assert lines[:3] == PI.RULER + [PI.BORDER]
    assert lines[3] == "|V=2|P|X|  CC=0 |M| PT=26 (JPEG)|      sequence number=1847     |"
    assert lines[4] == "|1 0|0|0|0 0 0 0|0|0 0 1 1 0 1 0|0 0 0 0 0 1 1 1 0 0 1 1 0 1 1 1|"
    assert lines[5] == PI.BORDER
    assert "|                      timestamp=1065265250                     |" in lines
    assert any("quantization table 0: 64 bytes" in line for line in lines)
    assert any("JPEG data: 1384 bytes" in line for line in lines)
    pt = next(s for s in spans if d.fields[s.field].name == "payload type")
    assert lines[pt.line][pt.col:pt.end] == " PT=26 (JPEG)"
    assert all(len(line) == 65 for line in lines[3:])


@pytest.mark.parametrize("data, error", [
    (b"\x80\x1a\x00", "3 bytes: shorter than the 12-byte RTP header"),
    (bytes([0x40, 26]) + bytes(10), "RTP version 1, expected 2"),
    (bytes([0x82, 26]) + bytes(14), "CSRC count 2 runs past the end of a 16-byte packet"),
    (bytes([0x80, 26]) + bytes(10) + b"\x00\x00", "RFC 2435: RTP/JPEG payload of 2 bytes is shorter"),
])
def test_bad_packets_say_why(data, error):
    d = PI.decode(data, rtcp=False)
    assert d.error.startswith(error), d.error
    assert d.fields or not data


def test_ring_keeps_the_last_n_and_dump_notes_what_it_lost():
    ring = PI.PacketRing(5)
    for i in range(8):
        ring.add(float(i), False, bytes([0x80, 26, 0, i]) + bytes(8))
    assert len(ring) == 5 and ring.total == 8
    assert [e[0] for e in ring.since(0)] == [4, 5, 6, 7, 8]
    assert [e[0] for e in ring.since(6)] == [7, 8] and ring.since(8) == []
    import io
    out = io.StringIO()
    printer = PI.DumpPrinter(ring, out, interval=10)
    printer.stop()
    text = out.getvalue()
    assert text.startswith("# 3 packets left the ring before they were printed\n#4 3.000000 in  RTP 12 bytes seq=3")
    assert printer.printed == 8 and printer.skipped == 3


def test_dump_option_prints_every_packet(start_server):
    srv = start_server(fps=50)
    out = subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url(), "--dump", "--duration", "1",
                          "--rtcp-min", "0.3"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    heads = [line for line in out.stdout.splitlines() if line.startswith("#")]
    rtp = [h for h in heads if " RTP " in h]
    seqs = [int(re.search(r"seq=(\d+)", h).group(1)) for h in rtp]
    assert len(rtp) > 100 and all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))
    final = out.stderr.strip().splitlines()[-2]          # the last progress line: "... packets N received"
    assert int(re.search(r"(?:pkts|packets) (\d+)", final).group(1)) == len(rtp)
    assert any(" in  RTCP SR+SDES" in h for h in heads) and any(" out RTCP RR+SDES+XR" in h for h in heads)
    assert "  RFC 2435   width                                    bits   144+8     48 (x8 = 384 px)" in out.stdout


# --------------------------------------------------------------------------- the window


def pump(root, cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        root.update()
        time.sleep(0.005)


def test_inspector_window_while_playing(display, start_server, tmp_path, caplog):
    tk = pytest.importorskip("tkinter")
    from Client import Client
    from ReceiveEngine import ReceiveEngine
    from RtspClient import ClientState

    caplog.set_level(logging.DEBUG, logger="Streamer")   # frames a stalled streamer skips
    srv = start_server(fps=20)
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(srv.url())
    eng.open()
    app = Client(root, eng)
    app.ask_quit = lambda: True
    try:
        pump(root, lambda: root.winfo_viewable(), what="window mapped")
        app.setup()
        pump(root, lambda: not app.busy and eng.state is ClientState.READY, what="SETUP")
        app.play()
        pump(root, lambda: app.frames_shown >= 5, what="5 frames shown")
        app.view_menu.invoke("Packet inspector")          # opened while playing, from the View menu
        win = app.inspector
        assert win is not None and eng.tap is not None
        pump(root, lambda: win.ring.total >= 60 and len(win.rows) == 12, what="the list following")
        newest = max(int(i) for i in win.rows)
        assert win.row(newest)[0] == str(newest) and win.following
        # pausing the list does not pause playback; it lists the whole ring
        win.pause_button.invoke()
        pump(root, lambda: not win.following, what="list paused")
        numbers = sorted(int(i) for i in win.rows)
        assert numbers == list(range(1, numbers[-1] + 1)) and len(numbers) >= 60
        listed, shown_before = len(win.rows), app.frames_shown
        t0 = time.monotonic()
        pump(root, lambda: time.monotonic() - t0 > 0.8)
        assert len(win.rows) == listed and app.frames_shown >= shown_before + 8
        assert eng.state is ClientState.PLAYING and win.ring.total > listed
        # A known packet: the first listed that starts a frame. RTP-Info gave the seq and rtptime of
        # frame 0, so frame n's first packet has seq = info.seq + packets of frames 0..n-1.
        info = eng.proto.rtp_info[0]
        source = VideoStream(MOVIE)
        start = next(n for n, (_, _, rtcp, data, _) in sorted((int(k), v) for k, v in win.rows.items())
                     if not rtcp and parse_payload(RtpPacket.parse(data).payload).fragment_offset == 0)
        row = win.row(start)
        n = ts_diff(int(row[4]), info.rtptime) // 4500
        parts = packetize(source.frame(n), 1400)
        skipped = skipped_frames(caplog)                # not sent: they take no sequence numbers
        seq = (info.seq + sum(len(packetize(source.frame(i), 1400)) for i in range(n) if i not in skipped)) % 65536
        assert row[2] == "RTP" and int(row[3]) == seq and row[5] == "0"
        assert int(row[6]) == 12 + len(parts[0])
        win.list.see(str(start))                       # click its row, as a person would
        root.update()
        bbox = win.list.bbox(str(start))
        win.list.event_generate("<ButtonPress-1>", x=bbox[0] + 20, y=bbox[1] + bbox[3] // 2)
        win.list.event_generate("<ButtonRelease-1>", x=bbox[0] + 20, y=bbox[1] + bbox[3] // 2)
        pump(root, lambda: win.selected == start, what="the clicked packet shown")
        shown = {(layer, name): text for layer, name, bits, text in win.field_rows()}
        assert shown[("RTP", "version")] == "2" and shown[("RTP", "payload type")] == "26 (JPEG)"
        assert shown[("RTP", "sequence number")] == str(seq) and shown[("RTP", "marker")] == "0"
        assert shown[("RTP", "timestamp")] == str((info.rtptime + 4500 * n) % (1 << 32))
        assert shown[("RFC 2435", "fragment offset")] == "0"
        assert shown[("RFC 2435", "width")] == "48 (x8 = 384 px)"
        assert shown[("RFC 2435", "height")] == "36 (x8 = 288 px)"
        assert shown[("RFC 2435", "Q")] == "255 (tables in-band)"
        assert shown[("RFC 2435", "length")] == "128 bytes"
        assert shown[("RFC 2435", "JPEG data")].startswith(f"{len(parts[0]) - 8 - 4 - 128} bytes of entropy-coded")
        diagram = win.diagram.get("1.0", "end")
        assert f"sequence number={seq}" in diagram and "|V=2|P|X|  CC=0 |M| PT=26 (JPEG)|" in diagram
        # the mouse over octet 1 of the hex dump marks the PT field in all three views
        win.hex.see("1.0")
        root.update()
        x, y, _, h = win.hex.bbox(f"1.{PacketInspectorView_col(1)}")
        win.hex.event_generate("<Motion>", x=x + 2, y=y + h // 2)
        root.update()
        assert win.highlighted is not None and win.decoded.fields[win.highlighted].name == "payload type"
        assert win.highlighted_hex() == "1a"
        assert win.fields.item(str(win.highlighted), "tags") == ("hl",)
        marked = win.diagram.tag_ranges("hl")
        assert "PT=26 (JPEG)" in win.diagram.get(marked[0], marked[1])
        if shutil.which("import"):
            top = win.top
            root.update()
            geo = f"{top.winfo_width()}x{top.winfo_height()}+{top.winfo_rootx()}+{top.winfo_rooty()}"
            shot = tmp_path / "inspector.png"
            subprocess.run(["import", "-display", display, "-window", "root", "-crop", geo, str(shot)],
                           check=True, timeout=30)
            from PIL import Image
            img = Image.open(shot).convert("RGB")
            assert img.size == (top.winfo_width(), top.winfo_height())
            assert len(img.getcolors(1 << 16) or range(1 << 16)) > 5
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                shutil.copy(shot, ROOT / "docs" / "inspector.png")
        last = win.last
        win.pause_button.invoke()                          # follow again
        pump(root, lambda: win.following and win.last > last, what="list follows again")
        assert len(win.list.get_children()) == 12 and win.selected == start   # the shown packet stays
    finally:
        app.close()
        eng.close()
        del app, win
        gc.collect()


def PacketInspectorView_col(octet: int) -> int:
    from PacketInspectorView import hex_column
    return hex_column(octet)
