"""Command line of the player: the lab's ``host port rtp_port file``, rtsp:// URLs, or --sdp FILE.

Examples::

    python3 ClientLauncher.py 127.0.0.1 2048 5008 movie.Mjpeg          # the lab's form, a window
    python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --transport tcp
    python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --headless --save copy.Mjpeg
    python3 ClientLauncher.py --sdp stream.sdp --headless --duration 10   # e.g. from ffmpeg -f rtp
    python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --impair loss=5%,burst=3,jitter=10ms,seed=1
    python3 ClientLauncher.py 127.0.0.1 2048 5008 movie.Mjpeg --lab    # a server written from the hand-out
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import sys
import time
from typing import Sequence, TextIO

import PythonVersion  # first: an old Python gets one line, not a SyntaxError/TypeError below

PythonVersion.require("ClientLauncher.py")

from ReceiveEngine import ClientError, EventKind, ReceiveEngine
from Impair import ImpairSpec
from RtcpPacket import RTCP_MIN_TIME
from RtspClient import make_url
from RtpStats import StatsSnapshot

log = logging.getLogger("ClientLauncher")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
NO_TK = ("this Python has no Tkinter, which the player's window needs: install it (Debian/Ubuntu: "
         "sudo apt install python3-tk; Fedora: sudo dnf install python3-tkinter; macOS Homebrew: "
         "brew install python-tk; the python.org installers for Windows and macOS include it), "
         "or play without a window: --headless")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ClientLauncher.py",
        description="RTSP/RTP MJPEG player with live statistics (RFC 2326, RFC 3550, RFC 2435).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python3 ClientLauncher.py 127.0.0.1 2048 5008 movie.Mjpeg\n"
               "  python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --transport tcp\n"
               "  python3 ClientLauncher.py rtsp://alice:secret@127.0.0.1:2048/movie.Mjpeg\n"
               "  python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --headless "
               "--save copy.Mjpeg --stats-json stats.json\n"
               "  ffmpeg -re -f lavfi -i testsrc=size=320x240:rate=25 -pix_fmt yuvj420p -c:v mjpeg "
               "-huffman default -f rtp rtp://127.0.0.1:5004 -sdp_file x.sdp\n"
               "  python3 ClientLauncher.py --sdp x.sdp --headless --duration 10\n"
               "  python3 ClientLauncher.py rtsp://127.0.0.1:2048/movie.Mjpeg --impair "
               "loss=5%,burst=3,reorder=2%,dup=1%,delay=20ms,jitter=10ms,seed=1\n"
               "\nthe window (as the lab asks): TEARDOWN ends the session and closes the player; the "
               "close box pauses and asks\n"
               "whether to quit (TEARDOWN) or keep watching. Keys (not while typing in a text box):\n"
               "  Space play/pause (at the end: again from the start)   Right/Left seek 5 s   Home start\n"
               "  F11 or f full screen   Ctrl+S save the frame shown   Ctrl+Q, q, Escape quit (TEARDOWN)\n"
               "  ? or F1 the list of keys and buttons\n")
    p.add_argument("target", nargs="*", metavar="ARG",
                   help="either 'HOST RTSP_PORT RTP_PORT FILE' (the lab's form) or one rtsp:// URL")
    p.add_argument("--sdp", metavar="FILE", help="play a raw RTP/JPEG stream described by this SDP file")
    p.add_argument("--rtp-port", type=int, default=None,
                   help="local UDP port for RTP (RTCP uses the next one); 0 = any (default)")
    p.add_argument("--user", metavar="USER:PASSWORD", default=None,
                   help="credentials for a server that asks for them (RFC 2617 Digest or Basic); "
                        "same as rtsp://USER:PASSWORD@host:port/file")
    p.add_argument("--lab", action="store_true",
                   help="speak the lab hand-out's dialect (SETUP movie.Mjpeg RTSP/1.0, LF lines, "
                        "'Transport: RTP/UDP; client_port= N', no OPTIONS/DESCRIBE/keepalive/RTCP) from "
                        "the start; without it the player falls back to it when OPTIONS/DESCRIBE get no "
                        "reply within 1 s")
    p.add_argument("--rtsp", action="store_true",
                   help="speak RTSP 1.0 only, never the lab dialect: no 1 s probe, so a slow server's "
                        "OPTIONS/DESCRIBE reply is waited for (the reply timeout) instead of taken "
                        "for a lab server's silence")
    p.add_argument("--transport", choices=("udp", "tcp", "multicast"), default="udp",
                   help="udp: RTP on its own UDP ports; tcp: RTP interleaved on the RTSP connection; "
                        "multicast: join the group the server gives (servers with multicast)")
    p.add_argument("--simple", action="store_true",
                   help="the lab's three-button player: PLAY (does SETUP first when needed), PAUSE, "
                        "TEARDOWN, the picture and one status line (fps, kbit/s, loss)")
    p.add_argument("--loop", action="store_true",
                   help="play the movie again from the start when it ends (the window's Loop box)")
    p.add_argument("--headless", action="store_true",
                   help="no window: play, show a one-line progress bar, exit at the end of the stream")
    p.add_argument("--inspect", action="store_true", help="open the packet inspector window at start")
    p.add_argument("--dump", action="store_true",
                   help="print every packet's fields to stdout as it arrives (implies --headless)")
    p.add_argument("--dump-bits", action="store_true", help="with --dump: also draw each packet's bit diagram")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--start", type=float, default=None, help="start position in seconds (PLAY Range)")
    p.add_argument("--save", metavar="FILE", help="write the received frames as an .Mjpeg file "
                   "(with the window too: when it closes)")
    p.add_argument("--stats-json", metavar="FILE", help="write the final statistics as JSON")
    p.add_argument("--idle-timeout", type=float, default=3.0,
                   help="end of stream after this many seconds without RTP (default 3)")
    p.add_argument("--reorder-window", type=float, default=0.05,
                   help="longest wait for a reordered packet, seconds (default 0.05)")
    p.add_argument("--impair", metavar="SPEC", default=None,
                   help="impair incoming RTP before the player sees it, e.g. "
                        "loss=5%%,burst=3,reorder=2%%,dup=1%%,delay=20ms,jitter=10ms,seed=1 "
                        "(seeded, repeatable; the GUI can change it while playing)")
    p.add_argument("--rtcp-min", type=float, default=RTCP_MIN_TIME, metavar="SECONDS",
                   help="minimum RTCP report interval (RFC 3550 §6.2; default 5, halved for the "
                        "first report; unicast receivers may use less)")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="diagnostics on stderr")
    return p


def resolve_target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str | None, int]:
    """(url or None for --sdp, rtp port) from the positional arguments."""
    t = args.target
    rtp_port = args.rtp_port
    if args.sdp:
        if t:
            parser.error("give either --sdp FILE or a server, not both")
        return None, rtp_port or 0
    if len(t) == 1 and t[0].lower().startswith("rtsp://"):
        return t[0], rtp_port or 0
    if len(t) == 4:
        host, port, port2, name = t
        try:
            rtsp_port, lab_rtp = int(port), int(port2)
        except ValueError:
            parser.error("the lab form is HOST RTSP_PORT RTP_PORT FILE (ports are numbers)")
        if not (0 < rtsp_port < 65536 and 0 <= lab_rtp < 65536):
            parser.error("ports must be in 1..65535")
        return make_url(host, rtsp_port, name), lab_rtp if rtp_port is None else rtp_port
    parser.error("expected HOST RTSP_PORT RTP_PORT FILE, an rtsp:// URL, or --sdp FILE")
    raise AssertionError("unreachable")


def progress_line(s: StatsSnapshot, width: int = 24) -> str:
    """One terminal line with the window's names (README "Reading the statistics"): bar, frame
    shown (counting from 0, as the picture's number) / total, frames complete and dropped, fps,
    kbit/s, packets received (and what the sender's last SR reported), lost, loss, duplicates,
    out of order, jitter, round-trip time."""
    if s.frame_total:
        done = min(1.0, (s.frame_index + 1) / s.frame_total)
        bar = "#" * int(done * width) + "." * (width - int(done * width))
        where = f"[{bar}] frame {s.frame_index}/{s.frame_total}"
    else:
        where = f"{s.position:7.1f} s"
    sender = f" (sender reported {s.sender_packets} at its last SR)" if s.sender_packets is not None else ""
    rtt = f"{s.rtt_ms:.2f} ms" if s.rtt_ms is not None else "-"
    line = (f"{where}  frames {s.frames_completed} complete, {s.frames_dropped} dropped  "
            f"{s.fps_inst:4.1f} fps  {s.kbps_inst:7.0f} kbit/s  packets {s.packets_received} received{sender}  "
            f"lost {s.packets_lost} ({s.loss_percent:.2f}%)  duplicates {s.duplicates}  "
            f"out of order {s.out_of_order}  jitter {s.jitter_ms:.2f} ms  rtt {rtt}")
    if s.impairment is not None:
        i = s.impairment
        line += f"  [impair: dropped {i['dropped']} dup {i['duplicated']} reord {i['reordered']}]"
    return line


def run_headless(engine: ReceiveEngine, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Play to the end (or --duration), printing progress; then TEARDOWN, --save, --stats-json."""
    out = out if out is not None else sys.stderr
    frames: list[bytes] = []
    engine.open()
    try:
        if engine.proto is not None:
            try:
                engine.options()
            except ClientError as exc:
                log.info("OPTIONS failed (%s); going on", exc)
            engine.describe()
            engine.setup()
            engine.play(args.start)
            if engine.lab:
                out.write(f"speaking the lab dialect ({engine.dialect_reason})\n")
        start = time.monotonic()
        next_print = start
        interactive = out.isatty()
        end_reason = None
        unusable: str | None = None
        while end_reason is None:
            now = time.monotonic()
            if args.duration is not None and now - start >= args.duration:
                end_reason = f"--duration {args.duration:g} s reached"
                break
            if engine.frames_displayable == 0 and engine.play_started is not None:
                unusable = engine.diagnosis(now)
                if unusable is not None:        # packets arrive, but none make a frame: say why
                    end_reason = "packets arrive but make no frames"
                    break
                if engine.diag.arrived == 0 and now - start > max(10.0, engine.idle_timeout):
                    raise ClientError("no RTP arrived within 10 s (a firewall? try --transport tcp)"
                                      if not engine.lab else
                                      "no RTP arrived within 10 s (the lab server did not send to "
                                      f"our port {engine.rtp_port}, or a firewall blocks it)")
            # Sleep until an event or the next thing to do here (progress line, --duration; until
            # the first frame, the checks above every 0.1 s): no polling while frames flow.
            wake = next_print
            if args.duration is not None:
                wake = min(wake, start + args.duration)
            if engine.frames_displayable == 0 and engine.play_started is not None:
                wake = min(wake, now + 0.1)
            try:
                ev = engine.events.get(timeout=max(0.001, wake - now))
            except queue.Empty:
                ev = None
            if ev is not None:
                if ev.kind is EventKind.FRAME:
                    if args.save:
                        frames.append(ev.payload.data)
                elif ev.kind is EventKind.END:
                    if getattr(args, "loop", False) and engine.failure is None and engine.proto is not None \
                            and not engine.session_lost and engine.ended is not None:
                        engine.pause()             # --loop: the end starts the movie again
                        engine.play(0.0)
                        continue
                    end_reason = ev.payload
            if now >= next_print:
                next_print = now + (0.25 if interactive else 2.0)
                line = progress_line(engine.snapshot())
                out.write(("\r" + line + "\x1b[K") if interactive else line + "\n")
                out.flush()
        if engine.proto is not None and not engine.connection_lost and engine.failure is None:
            try:
                engine.teardown()
            except ClientError as exc:
                log.info("TEARDOWN: %s", exc)
    except KeyboardInterrupt:
        engine.quit()
        raise
    finally:
        engine.close()
    # After close, so the figures are final: packets that came in while TEARDOWN was answered
    # are counted (and, with --dump, printed) and their frames saved, the same ones everywhere.
    while True:
        try:
            ev = engine.events.get_nowait()
        except queue.Empty:
            break
        if ev.kind is EventKind.FRAME and args.save:
            frames.append(ev.payload.data)
    snap = engine.snapshot()
    out.write(("\r" if out.isatty() else "") + progress_line(snap) + "\n")
    out.write(f"stopped: {end_reason}\n")
    if args.save:
        from VideoStream import write_mjpeg
        write_mjpeg(args.save, frames)
        out.write(f"saved {len(frames)} frames to {args.save}\n")
    if args.stats_json:
        write_stats(args.stats_json, snap, engine, end_reason, len(frames) if args.save else None)
    if engine.failure is not None:
        out.write(f"error: {engine.failure}\n")
        return EXIT_ERROR
    unusable = unusable or engine.diagnosis(settled=True)
    if unusable is not None and snap.frames_completed == 0:
        out.write(f"error: {unusable}\n")
        return EXIT_ERROR
    if unusable is not None:
        out.write(f"warning: {unusable}\n")     # some frames, but most packets unusable
    return EXIT_OK


def write_stats(path: str, snap: StatsSnapshot, engine: ReceiveEngine, end_reason: str | None,
                frames_saved: int | None = None) -> None:
    """--stats-json: the final statistics, machine-readable."""
    d = snap.as_dict()
    d.update(end_reason=end_reason, rcvbuf=engine.rcvbuf, bad_packets=engine.bad_packets,
             our_ssrc=engine.our_ssrc, sender_ssrc=engine.ssrc, cname=engine.cname,
             foreign_packets=engine.foreign_packets, foreign_source_packets=engine.foreign_source_packets,
             transport=engine.transport,
             url=engine.url, frames_saved=frames_saved,
             dialect=engine.dialect.value if engine.dialect is not None else None,
             dialect_reason=engine.dialect_reason, packets_arrived=engine.diag.arrived,
             unusable=engine.diag.as_dict()["dropped"], diagnosis=engine.diagnosis())
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s")
    url, rtp_port = resolve_target(args, parser)
    sdp_text = None
    if args.sdp:
        try:
            with open(args.sdp, encoding="utf-8", errors="replace") as f:
                sdp_text = f.read()
        except OSError as exc:
            print(f"error: cannot read SDP file {args.sdp}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    try:
        impair = ImpairSpec.parse(args.impair) if args.impair is not None else None
        if args.rtcp_min <= 0:
            raise ValueError(f"--rtcp-min must be positive, got {args.rtcp_min:g}")
        if args.lab and url is None:
            raise ValueError("--lab needs a server (it has no meaning with --sdp)")
        if args.lab and args.rtsp:
            raise ValueError("--lab and --rtsp contradict each other: choose the dialect the server speaks")
        lab_mode = True if args.lab else (False if args.rtsp else None)   # None: probe (auto)
        username = password = None
        if args.user is not None:
            if url is None:
                raise ValueError("--user needs an RTSP server (it has no meaning with --sdp)")
            username, _, password = args.user.partition(":")
        engine = ReceiveEngine(url, rtp_port=rtp_port, transport=args.transport, sdp_text=sdp_text,
                               reorder_window=args.reorder_window, idle_timeout=args.idle_timeout,
                               impair=impair, rtcp_min_time=args.rtcp_min,
                               username=username, password=password, lab=lab_mode)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.dump or args.dump_bits:
            from PacketInspector import DumpPrinter, PacketRing
            ring = PacketRing()
            engine.tap = ring.add
            printer = DumpPrinter(ring, sys.stdout, bits=args.dump_bits)
            try:
                return run_headless(engine, args)
            finally:
                printer.stop()
        if args.headless:
            return run_headless(engine, args)
        try:
            from Client import run_gui  # Tk and PIL.ImageTk: only for the window
        except ImportError as exc:
            if "tkinter" not in str(exc).lower() and exc.name not in ("tkinter", "_tkinter"):
                raise
            engine.close()
            print(f"error: {NO_TK}", file=sys.stderr)
            return EXIT_ERROR
        rc = run_gui(engine, args)
        if args.stats_json and engine.final_snapshot is not None:
            write_stats(args.stats_json, engine.final_snapshot, engine, engine.ended or "window closed")
        app = getattr(args, "gui_app", None)
        if args.save and app is not None and app.saved_frames is not None:
            from VideoStream import write_mjpeg
            write_mjpeg(args.save, app.saved_frames)
            print(f"saved {len(app.saved_frames)} frames to {args.save}", file=sys.stderr)
        return rc
    except ClientError as exc:
        engine.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        engine.close()
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
