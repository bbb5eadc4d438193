"""Live sources at the edge: the threads that read a command's stdout, stdin or an HTTP camera.

A :class:`LiveFeed` is one named live stream (``--live NAME=...``).  Its reader thread
feeds bytes to LiveSource's sans-IO parsers, checks each frame for RFC 2435 (converting
what it cannot carry when a converter exists), packetizes it once and hands it to every
listener (the Streamer) with its arrival time, the clock the RTP timestamps follow.  A
command that exits is started again with a backoff; an HTTP camera that drops the
connection is reconnected the same way.  Viewers never touch the reader: a slow viewer
cannot stall it.
"""

from __future__ import annotations

import http.client
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from LiveSource import (
    DEFAULT_MAX_FRAME, JpegSplitter, LiveKind, LiveSpec, MultipartError, MultipartParser,
    boundary_from_content_type,
)
from PacketTrain import PacketTrain
from RtpJpeg import JpegError, JpegInfo, packetize, parse_jpeg
from RtpPacket import PT_JPEG

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first restart of a source that ended
BACKOFF_MAX = 10.0
READ_SIZE = 65536
HTTP_TIMEOUT = 10.0


def _find_converter() -> Callable[[bytes], bytes] | None:
    """The converter for frames RFC 2435 cannot carry (issue 16, lab-server), when present.

    Hook: ``JpegConvert.to_rfc2435(jpeg) -> jpeg`` (baseline, 8-bit, 4:2:0, standard
    tables), the same conversion files get.  Without it such frames are dropped and counted."""
    try:
        from JpegConvert import to_rfc2435  # type: ignore[import-not-found]
    except ImportError:
        return None
    return to_rfc2435


class LiveFrame:
    """One frame of a live source: the JPEG, its packet train(s), its arrival time."""

    __slots__ = ("jpeg", "train", "_lab_train", "arrival", "index")

    def __init__(self, jpeg: bytes, train: PacketTrain, arrival: float, index: int) -> None:
        self.jpeg = jpeg
        self.train = train
        self._lab_train: PacketTrain | None = None
        self.arrival = arrival
        self.index = index

    def train_for(self, lab: bool) -> PacketTrain:
        """RFC 2435 packets, or the whole JPEG in one packet for the lab dialect."""
        if not lab:
            return self.train
        if self._lab_train is None:
            self._lab_train = PacketTrain([self.jpeg], PT_JPEG)
        return self._lab_train


class LiveFeed:
    """A named live MJPEG source shared by every viewer (duck-types MediaLibrary.Movie)."""

    live = True
    duration = None
    frame_count = 0

    def __init__(self, spec: LiveSpec, *, payload_size: int = 1400, fps_hint: float = 20.0,
                 max_frame: int = DEFAULT_MAX_FRAME, stdin=None,
                 converter: Callable[[bytes], bytes] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.payload_size = payload_size
        self.max_frame = max_frame
        self.fps_hint = fps_hint
        self._stdin = stdin
        self.converter = converter if converter is not None else _find_converter()
        self.problems: list = []  # per-frame problems are handled frame by frame
        self.mtime = time.time()
        self.t0 = time.monotonic()  # the arrival clock's origin (RTP timestamps count from it)
        self.listeners: list[Callable[["LiveFeed", LiveFrame], None]] = []
        self.latest: LiveFrame | None = None
        self.info: JpegInfo | None = None
        self.frames = 0
        self.rejected = 0  # frames RFC 2435 cannot carry and nothing converted
        self.converted = 0
        self.restarts = 0
        self.status = "starting"
        self._interval = 1.0 / fps_hint  # smoothed arrival interval
        self._bytes = 0.0  # smoothed frame size
        self._first = threading.Event()
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._reject_logged: set = set()
        self.last_reject = ""
        self.last_error = ""  # why the source last ended or was refused
        self.splitter: JpegSplitter | None = None
        self.multipart: MultipartParser | None = None
        self.garbage_bytes = 0
        self.oversized = 0

    # -- what the server reads -------------------------------------------------
    @property
    def fps(self) -> float:
        return 1.0 / self._interval if self._interval > 0 else self.fps_hint

    @property
    def byte_rate(self) -> float:
        return self._bytes * self.fps

    @property
    def width(self) -> int | None:
        return self.info.width if self.info else None

    @property
    def height(self) -> int | None:
        return self.info.height if self.info else None

    def wait_first_frame(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def describe_status(self) -> str:
        """One line on what the source did so far (for logs and 503 replies)."""
        parts = [self.status, f"{self.frames} frames"]
        if self.garbage_bytes:
            parts.append(f"{self.garbage_bytes} bytes of non-JPEG data skipped")
        if self.oversized:
            parts.append(f"{self.oversized} frames over {self.max_frame} bytes dropped")
        if self.rejected:
            parts.append(f"{self.rejected} frames RFC 2435 cannot carry dropped ({self.last_reject})")
        if self.restarts:
            parts.append(f"{self.restarts} restarts")
        if self.last_error:
            parts.append(f"last problem: {self.last_error}")
        return ", ".join(parts)

    # -- lifetime ----------------------------------------------------------------
    def start(self) -> None:
        target = {LiveKind.COMMAND: self._run_command, LiveKind.STDIN: self._run_stdin,
                  LiveKind.HTTP: self._run_http}[self.spec.kind]
        self._thread = threading.Thread(target=self._guard, args=(target,), name=f"live-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:  # the reader must not die silently: say why, the server keeps serving
            log.exception("live %s: reader failed", self.name)
            self.status = "reader failed"

    # -- frames ------------------------------------------------------------------
    def take_jpeg(self, jpeg: bytes, arrival: float | None = None) -> LiveFrame | None:
        """Check, convert if needed, packetize and publish one frame (the reader's thread)."""
        if arrival is None:
            arrival = time.monotonic()
        try:
            info = parse_jpeg(jpeg)
        except JpegError as exc:
            info = None
            if self.converter is not None:
                try:
                    jpeg = self.converter(jpeg)
                    info = parse_jpeg(jpeg)
                    self.converted += 1
                except (JpegError, ValueError, OSError) as conv_exc:
                    exc = JpegError(f"{exc.reason}; conversion failed: {conv_exc}")
                    info = None
            if info is None:
                self.rejected += 1
                self.last_reject = exc.reason
                if exc.reason not in self._reject_logged:
                    self._reject_logged.add(exc.reason)
                    log.warning("live %s: frame dropped, RFC 2435 cannot carry it: %s", self.name, exc.reason)
                return None
        try:
            train = PacketTrain(packetize(jpeg, self.payload_size, info), PT_JPEG)
        except (JpegError, ValueError) as exc:
            self.rejected += 1
            log.warning("live %s: frame dropped: %s", self.name, exc)
            return None
        if self.latest is not None:
            gap = arrival - self.latest.arrival
            if 0 < gap < 5:
                self._interval += (gap - self._interval) / 8
        self._bytes += (len(jpeg) - self._bytes) / (8 if self._bytes else 1)
        self.info = info
        frame = LiveFrame(jpeg, train, arrival, self.frames)
        self.frames += 1
        self.latest = frame
        if self.status != "running":
            self.status = "running"
        self._first.set()
        for listener in list(self.listeners):
            listener(self, frame)
        return frame

    def _pump_jpeg(self, read: Callable[[int], bytes]) -> None:
        """Read concatenated JPEG until EOF (or stop)."""
        splitter = JpegSplitter(self.max_frame)
        self.splitter = splitter
        warned_at = 0
        while not self._stop.is_set():
            data = read(READ_SIZE)
            if not data:
                break
            for jpeg in splitter.feed(data):
                self.take_jpeg(jpeg)
            self._sync_counters(splitter.garbage_bytes, splitter.oversized)
            if self.garbage_bytes >= warned_at + 65536 or (self.garbage_bytes and not warned_at):
                warned_at = self.garbage_bytes
                log.warning("live %s: %d bytes of output that is not JPEG skipped so far (%d frames)",
                            self.name, self.garbage_bytes, self.frames)

    def _sync_counters(self, garbage: int, oversized: int) -> None:
        # counters of the current run added to the totals of the runs before it
        self.garbage_bytes = self._garbage_base + garbage
        self.oversized = self._oversized_base + oversized

    _garbage_base = 0
    _oversized_base = 0

    def _end_run(self) -> None:
        self._garbage_base = self.garbage_bytes
        self._oversized_base = self.oversized

    def _backoff(self, delay: float, why: str) -> float:
        """Wait before restarting; the next wait doubles (reset once frames flow again)."""
        self.restarts += 1
        self.last_error = why
        self.status = f"restarting ({why})"
        log.warning("live %s: %s; restarting in %.1f s", self.name, why, delay)
        self._stop.wait(delay)
        return min(delay * 2, BACKOFF_MAX)

    # -- the three kinds of source -------------------------------------------------
    def _run_command(self) -> None:
        delay = BACKOFF_FIRST
        argv = shlex.split(self.spec.source, posix=os.name != "nt")
        while not self._stop.is_set():
            before = self.frames
            try:
                self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, bufsize=0)
            except OSError as exc:
                delay = self._backoff(delay, f"cannot run {argv[0]!r}: {exc.strerror or exc}")
                continue
            self.status = "running"
            log.info("live %s: started %s (pid %d)", self.name, argv[0], self._proc.pid)
            stdout = self._proc.stdout
            assert stdout is not None
            self._pump_jpeg(stdout.read)
            stdout.close()
            try:
                code = self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait()
            self._end_run()
            if self._stop.is_set():
                break
            if self.frames > before:
                delay = BACKOFF_FIRST
            delay = self._backoff(delay, f"command exited with status {code} after {self.frames - before} frames")

    def _run_stdin(self) -> None:
        stream = self._stdin if self._stdin is not None else sys.stdin.buffer
        read = getattr(stream, "read1", stream.read)
        self._pump_jpeg(read)
        self._end_run()
        self.status = "ended (end of standard input)"
        log.warning("live %s: standard input ended after %d frames", self.name, self.frames)

    def _run_http(self) -> None:
        delay = BACKOFF_FIRST
        url = urlsplit(self.spec.source)
        while not self._stop.is_set():
            before = self.frames
            why = self._http_once(url)
            if self._stop.is_set():
                break
            if self.frames > before:
                delay = BACKOFF_FIRST
            delay = self._backoff(delay, why)

    def _http_once(self, url) -> str:
        """One HTTP connection to the camera; returns why it ended."""
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.hostname or "", url.port, timeout=HTTP_TIMEOUT)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            conn.request("GET", path, headers={"User-Agent": "PyRtspLab/1.0", "Accept": "multipart/x-mixed-replace"})
            response = conn.getresponse()
            if response.status != 200:
                return f"camera answered HTTP {response.status} {response.reason}"
            try:
                boundary = boundary_from_content_type(response.getheader("Content-Type"))
            except MultipartError as exc:
                log.error("live %s: %s", self.name, exc)
                self.status = f"refused: {exc}"
                return str(exc)
            parser = MultipartParser(boundary, self.max_frame)
            self.multipart = parser
            self.status = "running"
            while not self._stop.is_set():
                data = response.read1(READ_SIZE)
                if not data:
                    return "camera closed the connection"
                try:
                    bodies = parser.feed(data)
                except MultipartError as exc:
                    log.error("live %s: %s", self.name, exc)
                    self.status = f"refused: {exc}"
                    return str(exc)
                for body in bodies:
                    if body[:2] != b"\xff\xd8":
                        self.garbage_bytes += len(body)
                        continue
                    self.take_jpeg(body)
                self.oversized = self._oversized_base + parser.oversized
            return "stopped"
        except (OSError, http.client.HTTPException) as exc:
            return f"camera connection failed: {exc}"
        finally:
            self._end_run()
            conn.close()
