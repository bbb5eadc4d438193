#!/usr/bin/env python3
"""Grade a course-lab RTSP/RTP server or client, item by item, with reasons.

    python3 tools/labcheck.py server HOST PORT [FILE]      # drive a student's server
    python3 tools/labcheck.py client --port PORT [FILE]    # wait for a student's client

Server mode runs scripted sessions in the lab dialect (LF lines, no blank line,
`Transport: RTP/UDP; client_port= N`), plus an RTSP 1.0 probe when the server answers
OPTIONS, and grades the replies and every RTP packet.  Client mode serves FILE with this
project's own server (recording every byte on the connection) to the first client that
connects, probes its RTP port, and grades its requests when it disconnects.

Each rubric item prints PASS / FAIL / N/A with a one-line reason and, for failures, the
bytes that show it; then a score.  Exit status 0 when every required item passes, 1 when
one fails, 2 on a usage error.  `--json` prints the report as JSON for a gradebook;
`--only`/`--skip` take item keys or prefixes (`--only rtp`).  The rubric itself is
LabCheck.py and LabEvidence.py (pure, tested with bytes); this file only moves bytes and keeps time.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import LabCheck  # noqa: E402
import LabEvidence  # noqa: E402
from LabEvidence import Arrival, ClientRecording, Exchange, PlaySession, ServerRecording  # noqa: E402
from RtspHeaders import Transport, parse_session  # noqa: E402
from RtspMessage import Method, Request, Response, RtspError  # noqa: E402
from RtspParser import RtspParser

log = logging.getLogger("labcheck")

LAB_REPLY_GRACE = 0.05
PROBE_DELAY = 0.05       # probe a client's RTP port this long after PLAY is answered (it bound it before)   # a lab reply has no blank line: complete once nothing more comes this long


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- server mode: edges


class RtpSink:
    """A UDP port that records every datagram with its arrival time (a thread)."""

    def __init__(self, family: int, host: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.packets: list[Arrival] = []
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labcheck-rtp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
                if not ready:
                    continue
                data = self.sock.recv(65536)
            except OSError:
                if self._stop.is_set():
                    return
                continue  # e.g. an ICMP error reported on the socket; keep listening
            self.packets.append(Arrival(time.monotonic(), data))
            self._first.set()

    def wait_first(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()


class Connection:
    """One RTSP connection to the server under test; `request()` records an Exchange."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local = self.sock.getsockname()[0]
        self.family = self.sock.family
        self.timeout = timeout

    def request(self, data: bytes, timeout: float | None = None) -> Exchange:
        timeout = self.timeout if timeout is None else timeout
        exchange = Exchange(data, sent=time.monotonic())
        try:
            self.sock.sendall(data)  # one send, as lab clients do
        except OSError as exc:
            exchange.error = f"send failed: {exc.strerror or exc}"
            return exchange
        parser = RtspParser(role="client")
        buf = b""
        deadline = exchange.sent + timeout
        while True:
            now = time.monotonic()
            wait = deadline - now
            if parser.has_unterminated_lf():
                wait = min(wait, LAB_REPLY_GRACE)
            if wait <= 0:
                exchange.error = f"{timeout:g} s" if not buf else "reply incomplete"
                break
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                if parser.has_unterminated_lf() and parser.finish_unterminated() is not None:
                    exchange.elapsed = time.monotonic() - exchange.sent
                    break
                continue
            try:
                chunk = self.sock.recv(4096)
            except OSError as exc:
                exchange.error = f"connection error: {exc.strerror or exc}"
                break
            if not chunk:
                exchange.error = "the server closed the connection"
                if parser.has_unterminated_lf() and parser.finish_unterminated() is not None:
                    exchange.elapsed = time.monotonic() - exchange.sent
                    exchange.error = ""
                break
            buf += chunk
            if any(isinstance(m, Response) for m in parser.feed(chunk)):
                exchange.elapsed = time.monotonic() - exchange.sent
                break
        exchange.reply = buf
        return exchange

    def vanish(self) -> None:
        """Close with a reset and no TEARDOWN, like a client that crashed."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Timing:
    """How long each part of the script runs (seconds); shorter for tests."""

    play: float = 1.5
    pause_watch: float = 0.6
    resume: float = 0.5
    teardown_watch: float = 0.5
    reply_timeout: float = 2.0
    first_packet: float = 1.5
    options_timeout: float = 0.5


class LabSession:
    """A lab-dialect client session: numbered requests, the Session id, an RTP sink."""

    def __init__(self, target: "ServerTarget", record: PlaySession, timing: Timing) -> None:
        self.target = target
        self.record = record
        self.timing = timing
        self.cseq = 0
        self.session_id = ""
        self.conn: Connection | None = None
        self.sink: RtpSink | None = None
        try:
            self.conn = Connection(target.host, target.port, timing.reply_timeout)
        except OSError as exc:
            record.error = f"cannot connect to {target.host}:{target.port}: {exc.strerror or exc}"
            return
        self.sink = RtpSink(self.conn.family, self.conn.local)

    @property
    def ok(self) -> bool:
        return self.conn is not None

    def send(self, method: str, timeout: float | None = None) -> Exchange | None:
        if self.conn is None:
            return None
        self.cseq += 1
        name = self.target.file
        if method == "SETUP":
            text = (f"SETUP {name} RTSP/1.0\nCSeq: {self.cseq}\n"
                    f"Transport: RTP/UDP; client_port= {self.sink.port if self.sink else 0}")
        else:
            text = f"{method} {name} RTSP/1.0\nCSeq: {self.cseq}\nSession: {self.session_id}"
        exchange = self.conn.request(text.encode(), timeout)
        self.record.exchanges.append(exchange)
        reply = exchange.response()
        if method == "SETUP" and reply is not None and reply.headers.get("Session"):
            try:
                self.session_id = parse_session(reply.headers["Session"])[0]
            except RtspError:
                self.session_id = reply.headers["Session"].split(";")[0].strip()
        return exchange

    def setup_play(self) -> bool:
        """SETUP and PLAY answered 200 and the first RTP packet arrived."""
        for method in ("SETUP", "PLAY"):
            e = self.send(method)
            reply = e.response() if e is not None else None
            if reply is None or reply.status != 200:
                return False
        return self.sink is not None and self.sink.wait_first(self.timing.first_packet)

    def close(self, vanish: bool = False) -> None:
        if self.sink is not None:
            self.sink.close()
            self.record.packets = list(self.sink.packets)
        if self.conn is not None:
            if vanish:
                self.conn.vanish()
            else:
                self.conn.close()


@dataclass
class ServerTarget:
    host: str
    port: int
    file: str


def run_server_script(target: ServerTarget, fps: float, timing: Timing | None = None,
                      movie: list[bytes] | None = None, parts: set[str] | None = None) -> ServerRecording:
    """Drive the server through the scripted sessions; `parts` limits which are run."""
    timing = timing or Timing()
    rec = ServerRecording(fps=fps, movie=movie)
    want = parts or {"main", "again", "rtsp10", "vanish"}

    if "main" in want:
        main = LabSession(target, rec.main, timing)
        if main.ok:
            if main.setup_play():
                time.sleep(timing.play)
                main.send("PAUSE")
                time.sleep(timing.pause_watch)
                main.send("PLAY")
                time.sleep(timing.resume)
                main.send("TEARDOWN")
                time.sleep(timing.teardown_watch)
            elif not rec.main.error:
                rec.main.error = "SETUP/PLAY failed"
            rec.end = time.monotonic()
            main.close()

    if "again" in want:
        again = LabSession(target, rec.again, timing)
        if again.ok and again.setup_play():
            second = LabSession(target, rec.second, timing)
            if second.ok:
                second.setup_play()
                if second.session_id:
                    second.send("TEARDOWN", timeout=0.5)
                second.close()
            again.send("TEARDOWN")
        again.close()

    if "rtsp10" in want:
        rec.rtsp10 = PlaySession()
        probe_rtsp10(target, rec.rtsp10, timing)

    if "vanish" in want:
        gone = LabSession(target, PlaySession(), timing)
        if gone.ok:
            gone.setup_play()
            if gone.sink is not None:
                gone.sink.close()           # the RTP port goes away first (ICMP unreachable)
                gone.sink = None
            time.sleep(0.3)
            gone.close(vanish=True)         # then the connection, reset, no TEARDOWN
            time.sleep(0.3)
        after = LabSession(target, rec.after_vanish, timing)
        if after.ok and after.setup_play():
            after.send("TEARDOWN")
        after.close()
    return rec


def probe_rtsp10(target: ServerTarget, record: PlaySession, timing: Timing) -> None:
    """OPTIONS; when answered 200, check 454 (unknown session) and 455 (PAUSE in READY)."""
    try:
        conn = Connection(target.host, target.port, timing.reply_timeout)
    except OSError as exc:
        record.error = f"cannot connect: {exc.strerror or exc}"
        return
    sink = RtpSink(conn.family, conn.local)
    try:
        host = f"[{target.host}]" if ":" in target.host else target.host
        url = f"rtsp://{host}:{target.port}/{target.file}"
        e = conn.request(f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode(), timing.options_timeout)
        record.exchanges.append(e)
        reply = e.response()
        if reply is None or reply.status != 200:
            return
        e = conn.request(f"SETUP {url} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port="
                         f"{sink.port}-{sink.port + 1}\r\n\r\n".encode())
        record.exchanges.append(e)
        reply = e.response()
        if reply is None or reply.status != 200 or not reply.headers.get("Session"):
            record.error = "SETUP in RTSP 1.0 failed"
            return
        sid = parse_session(reply.headers["Session"])[0]
        bogus = "1" + sid if len(sid) < 30 else "9" * 12
        record.exchanges.append(conn.request(
            f"PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {bogus}\r\n\r\n".encode()))
        record.exchanges.append(conn.request(
            f"PAUSE {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {sid}\r\n\r\n".encode()))
        record.exchanges.append(conn.request(
            f"TEARDOWN {url} RTSP/1.0\r\nCSeq: 5\r\nSession: {sid}\r\n\r\n".encode()))
    finally:
        sink.close()
        conn.close()


SCRIPT_PARTS = {  # which scripted sessions each item needs
    "rtsp.errors": {"rtsp10"}, "teardown.new": {"again"}, "concurrent": {"again"}, "vanish": {"vanish"},
}


def load_movie(path: str | None) -> list[bytes] | None:
    if not path or not os.path.isfile(path):
        return None
    from VideoStream import VideoStream
    try:
        stream = VideoStream(path)
    except (OSError, ValueError) as exc:
        log.warning("cannot read the reference movie %s: %s", path, exc)
        return None
    return [stream.frame(i) for i in range(stream.frame_count)]


def grade_server(host: str, port: int, file: str, fps: float = 20.0, keys: list[str] | None = None,
                 timing: Timing | None = None, movie_path: str | None = None,
                 jitter_limit: float = LabCheck.DEFAULT_JITTER_LIMIT) -> list[LabEvidence.Result]:
    """Run the script and the rubric; the entry point tests call in-process."""
    keys = keys if keys is not None else [i.key for i in LabEvidence.SERVER_ITEMS]
    parts = {"main"} if any(k not in SCRIPT_PARTS for k in keys) else set()
    for k in keys:
        parts |= SCRIPT_PARTS.get(k, set())
    if movie_path is None:
        movie_path = file if os.path.isfile(file) else os.path.join(REPO, os.path.basename(file))
    rec = run_server_script(ServerTarget(host, port, file), fps, timing, load_movie(movie_path), parts)
    return LabCheck.check_server(rec, keys, jitter_limit)


# --------------------------------------------------------------------------- client mode: edges


class _Tracker:
    """Follows the graded client's requests and our replies: its state and RTP port."""

    def __init__(self) -> None:
        self.requests = RtspParser(role="server")
        self.replies = RtspParser(role="client")
        self.pending: list[Request] = []
        self.state = "INIT"
        self.rtp_port: int | None = None
        self.changed = time.monotonic()
        self.lock = threading.Lock()

    def on_received(self, data: bytes) -> None:
        with self.lock:
            messages = list(self.requests.feed(data))
            if self.requests.has_unterminated_lf():
                done = self.requests.finish_unterminated()
                if done is not None:
                    messages.append(done)
            for m in messages:
                if isinstance(m, Request):
                    self.pending.append(m)
                    if m.method == Method.SETUP and m.headers.get("Transport"):
                        try:
                            t = Transport.parse_list(m.headers["Transport"])[0]
                            if t.client_port:
                                self.rtp_port = t.client_port[0]
                        except RtspError:
                            pass

    def on_sent(self, data: bytes) -> None:
        with self.lock:
            messages = list(self.replies.feed(data))
            if self.replies.has_unterminated_lf():
                done = self.replies.finish_unterminated()
                if done is not None:
                    messages.append(done)
            for m in messages:
                if not isinstance(m, Response) or not self.pending:
                    continue
                request = self.pending.pop(0)
                if m.status != 200:
                    continue
                new = {"PLAY": "PLAYING", "PAUSE": "READY", "TEARDOWN": "AFTER_TEARDOWN"}.get(request.method)
                if new is not None:
                    self.state = new
                    self.changed = time.monotonic()


class RecordingSocket:
    """A connected socket that records what is read and written (for the graded client)."""

    def __init__(self, sock: socket.socket, rec: ClientRecording | None, tracker: _Tracker | None) -> None:
        self._sock = sock
        self._rec = rec
        self._tracker = tracker

    def recv(self, size: int, *flags: int) -> bytes:
        try:
            data = self._sock.recv(size, *flags)
        except OSError:
            self._closed()
            raise
        if self._rec is not None:
            if data:
                self._rec.received.append((time.monotonic(), data))
                assert self._tracker is not None
                self._tracker.on_received(data)
            else:
                self._closed()
        return data

    def _closed(self) -> None:
        if self._rec is not None and self._rec.closed_at is None:
            self._rec.closed_at = time.monotonic()

    def _sent(self, data: bytes) -> None:
        if self._rec is not None and data:
            self._rec.sent.append((time.monotonic(), bytes(data)))
            assert self._tracker is not None
            self._tracker.on_sent(bytes(data))

    def send(self, data: bytes, *flags: int) -> int:
        count = self._sock.send(data, *flags)
        self._sent(data[:count])
        return count

    def sendall(self, data: bytes, *flags: int) -> None:
        self._sock.sendall(data, *flags)
        self._sent(data)

    def close(self) -> None:
        self._closed()
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class RecordingListener:
    """Wraps the server's listening socket: the first connection accepted is recorded."""

    def __init__(self, sock: socket.socket, rec: ClientRecording, tracker: _Tracker) -> None:
        self._sock = sock
        self.rec = rec
        self.tracker = tracker
        self.graded = threading.Event()
        self.peer: tuple[str, str] | None = None   # (peer address, our local address)

    def accept(self):
        conn, addr = self._sock.accept()
        if self.graded.is_set():
            log.info("another connection from %s (not graded)", addr[0])
            return conn, addr
        self.graded.set()
        self.rec.remote = addr[0]
        self.peer = (addr[0], conn.getsockname()[0])
        log.info("grading the client at %s", addr[0])
        return RecordingSocket(conn, self.rec, self.tracker), addr

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _is_local(peer: str, local: str) -> bool:
    peer = peer[7:] if peer.startswith("::ffff:") else peer
    local = local[7:] if local.startswith("::ffff:") else local
    return peer == local or peer.startswith("127.") or peer == "::1"


def port_bound(port: int) -> bool:
    """True when some socket on this host holds UDP `port` (our bind without SO_REUSEADDR fails)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            probe = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            continue
        try:
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((host, port))
        except OSError:
            return True
        finally:
            probe.close()  # held for microseconds only, and only when the client should own it
    return False


def udp_queue(port: int) -> tuple[int, int] | None:
    """(bytes waiting, datagrams dropped) of the UDP sockets bound to `port`, from Linux's
    /proc/net/udp{,6}; None where that does not exist (other systems)."""
    found = None
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 13 or int(cols[1].rsplit(":", 1)[1], 16) != port:
                continue
            queued = int(cols[4].split(":")[1], 16)
            drops = int(cols[12])
            found = (queued + (found[0] if found else 0), drops + (found[1] if found else 0))
    return found


def probe_port(now: float, state: str, port: int, local: bool) -> LabEvidence.PortProbe:
    if not local:
        return LabEvidence.PortProbe(now, state, None)
    bound = port_bound(port)
    queue = udp_queue(port) if bound else None
    return LabEvidence.PortProbe(now, state, bound, *(queue or (None, None)))


def grade_client(port: int, file: str = "movie.Mjpeg", media_dir: str | None = None, fps: float = 20.0,
                 host: str = "", timeout: float = 120.0, keys: list[str] | None = None,
                 ready: threading.Event | None = None, after_teardown: float = 2.0,
                 port_box: list | None = None,
                 announce: Callable[[int], None] | None = None) -> list[LabEvidence.Result]:
    """Serve with our own server, grade the first client; returns when it has gone."""
    from MediaLibrary import MediaLibrary
    from Server import RtspServer
    from Server import UsageError as ServerUsageError
    from ServerWorker import ServerConfig

    media_dir = media_dir or (os.path.dirname(os.path.abspath(file)) if os.path.isfile(file) else REPO)
    media = MediaLibrary(Path(media_dir), fps=fps)
    if os.path.basename(file) not in media.names():
        raise UsageError(f"{file} is not a movie in {media_dir} (there: {', '.join(media.names()) or 'none'})")
    try:
        server = RtspServer(host, port, ServerConfig(media=media))
    except ServerUsageError as exc:
        raise UsageError(str(exc)) from None
    rec = ClientRecording()
    tracker = _Tracker()
    listener = RecordingListener(server.listener, rec, tracker)
    server.listener = listener  # type: ignore[assignment]
    thread = threading.Thread(target=server.serve_forever, name="labcheck-server", daemon=True)
    thread.start()
    if port_box is not None:
        port_box.append(server.port)
    log.info("reference server on port %d serving %s; waiting for a client (%g s)", server.port,
             os.path.basename(file), timeout)
    if announce is not None:
        announce(server.port)
    if ready is not None:
        ready.set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if not listener.graded.is_set() or listener.peer is None:
                continue
            with tracker.lock:
                state, changed, rtp_port = tracker.state, tracker.changed, tracker.rtp_port
            now = time.monotonic()
            local = _is_local(*listener.peer)
            if rtp_port and state == "PLAYING" and now - changed > PROBE_DELAY:
                rec.port_probes.append(probe_port(now, "PLAYING", rtp_port, local))
            elif rtp_port and state == "AFTER_TEARDOWN":
                probes = [p.bound for p in rec.port_probes if p.state == "AFTER_TEARDOWN"]
                if not probes or (probes[-1] and now - changed < after_teardown):
                    rec.port_probes.append(probe_port(now, "AFTER_TEARDOWN", rtp_port, local))
                    continue
                if rec.closed_at is not None or now - changed >= after_teardown:
                    break
            if rec.closed_at is not None and state != "AFTER_TEARDOWN":
                break
            if rec.closed_at is not None and state == "AFTER_TEARDOWN" and not rtp_port:
                break
    finally:
        server.shutdown()
        thread.join(timeout=5)
    return LabCheck.check_client(rec, keys)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Grade a course-lab RTSP/RTP server or client; each rubric item PASS/FAIL/N/A with a reason.",
        epilog="exit status: 0 every required item passed, 1 one failed, 2 usage error")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server", help="run scripted sessions against a student's server")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("file", nargs="?", default="movie.Mjpeg", help="movie to request (default movie.Mjpeg)")
    s.add_argument("--movie", help="local copy of the movie, to tell frames apart (default: FILE if it "
                   "exists here, else this project's movie.Mjpeg)")
    s.add_argument("--jitter-ms", type=float, default=LabCheck.DEFAULT_JITTER_LIMIT * 1000,
                   help="p95 frame jitter allowed (default 20 ms)")
    s.add_argument("--play-seconds", type=float, default=Timing.play,
                   help="how long the first PLAY runs before PAUSE (default 1.5)")
    c = sub.add_parser("client", help="serve FILE and grade the first client that connects")
    c.add_argument("file", nargs="?", default="movie.Mjpeg", help="movie to serve (default movie.Mjpeg)")
    c.add_argument("--port", type=int, required=True, help="RTSP port to listen on (the client's server_port)")
    c.add_argument("--host", default="", help="address to listen on (default: all)")
    c.add_argument("--media-dir", help="folder to serve (default: FILE's folder, or this project's)")
    c.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds (default 120)")
    for p in (s, c):
        p.add_argument("--fps", type=float, default=20.0, help="the lab's frame rate (default 20)")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument("--only", action="append", default=[], metavar="ITEM",
                       help="grade only these items (key or prefix, repeatable or comma-separated)")
        p.add_argument("--skip", action="append", default=[], metavar="ITEM", help="leave these items out")
        p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    items = LabEvidence.SERVER_ITEMS if args.mode == "server" else LabEvidence.CLIENT_ITEMS
    try:
        keys = LabEvidence.select(items, _split(args.only), _split(args.skip))
        if not keys:
            raise UsageError("--only/--skip leave no item to grade")
        if not 0 < args.fps <= 1000:
            raise UsageError(f"--fps {args.fps} is outside (0, 1000]")
        if args.mode == "server":
            if not 0 < args.port <= 65535:
                raise UsageError(f"port {args.port} is outside 1-65535")
            target = f"server {args.host}:{args.port} {args.file}"
            timing = Timing(play=args.play_seconds)
            results = grade_server(args.host, args.port, args.file, args.fps, keys, timing, args.movie,
                                   args.jitter_ms / 1000)
        else:
            if not 0 <= args.port <= 65535:
                raise UsageError(f"port {args.port} is outside 0-65535")
            target = f"client on port {args.port} {args.file}"

            def announce(port: int) -> None:
                print(f"labcheck: serving {os.path.basename(args.file)} on RTSP port {port}; start the client now "
                      f"(e.g. python3 ClientLauncher.py 127.0.0.1 {port} 25000 {os.path.basename(args.file)})",
                      file=sys.stderr if args.json else sys.stdout, flush=True)
            results = grade_client(args.port, args.file, args.media_dir, args.fps, args.host, args.timeout, keys,
                                   announce=announce)
    except (UsageError, ValueError) as exc:
        print(f"labcheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labcheck: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(LabEvidence.format_json(results, target, args.mode))
    else:
        print(LabEvidence.format_text(results, f"labcheck {target}"))
    return LabEvidence.exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
