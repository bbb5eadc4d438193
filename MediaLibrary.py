"""The server's media folder: which names may be served, and each movie's frames.

Security rule: a request never builds a path.  The folder is listed, entries whose
real path leaves the folder (symlinks) or whose extension is not served are dropped,
and a request-URI is only ever *compared* with the names in that listing.

A Movie packetizes each frame once (RFC 2435) and keeps the result in a byte-bounded
LRU cache shared by every session that plays it.

Frames RFC 2435 cannot carry as they are (4:4:4, optimized Huffman tables, progressive,
grayscale, > 2040 px, ...) are re-encoded (JpegConvert.to_rfc2435) for RTSP sessions, and
frames over ``lab_max_frame`` bytes are re-encoded smaller (JpegConvert.fit_size) for
lab-dialect sessions, which otherwise get the file's own bytes.  A converter thread per
movie does that ahead of every playing session (``CONVERT_AHEAD`` frames past each one's
position) into a byte-bounded store, so the Streamer finds frames ready; a frame it does
not find is converted on the spot (counted in ``inline_conversions``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Hashable
from urllib.parse import unquote

from JpegConvert import ConvertError, fit_size_quality, to_rfc2435
from RtpJpeg import JpegError, packetize, parse_jpeg
from PacketTrain import PacketTrain
from RtpPacket import PT_JPEG
from RtspHeaders import split_url
from VideoStream import VideoStream

log = logging.getLogger(__name__)

SERVED_EXTENSIONS = (".mjpeg", ".mjpg")
MAX_NAME_LENGTH = 255
LISTING_TTL = 2.0  # seconds a folder listing is reused; new files are served after at most this
LAB_MAX_FRAME = 20000  # the hand-out client reads each RTP datagram with one recv(20480)
MAX_DATAGRAM_PAYLOAD = 65507 - 12  # the largest UDP/IPv4 payload, less the RTP header
CONVERT_AHEAD = 100  # frames converted ahead of each playing session (5 s at 20 fps)
CURSOR_TTL = 10.0  # a session that took no frame for this long is no longer converted for
CONVERTER_IDLE = 5.0  # a converter thread with nothing to do for this long exits
URGENT_LEAD = 20  # a session with fewer frames than this ready is converted for without a pause
CONVERT_WAIT = 5.0  # at most this long for a frame another thread is converting


class FrameUnavailable(Exception):
    """A frame that cannot be sent to this kind of session; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Movie:
    """One served file: its VideoStream plus a shared cache of packetized frames."""

    live = False  # LiveReader.LiveFeed is the live kind of source

    def __init__(self, name: str, path: Path, fps: float | None, payload_size: int,
                 cache_bytes: int = 64 << 20, lab_max_frame: int = LAB_MAX_FRAME,
                 store_bytes: int = 64 << 20) -> None:
        self.name = name
        self.path = path
        self.stream = VideoStream(path, fps)
        self.payload_size = payload_size
        self.lab_max_frame = lab_max_frame
        self._cache: "OrderedDict[tuple[int, bool], PacketTrain]" = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._lock = threading.Lock()
        stat = path.stat()
        self.mtime = stat.st_mtime
        # average octets per second of the stream, for the RTCP bandwidth share (RFC 3550 6.2)
        self.byte_rate = stat.st_size / self.stream.duration if self.stream.duration else 0.0
        # converted frames: (index, lab) -> JPEG bytes, or the ConvertError reason (str)
        self._store: "OrderedDict[tuple[int, bool], bytes | str]" = OrderedDict()
        self._store_bytes = 0
        self._store_limit = store_bytes
        self._cursors: dict[tuple[Hashable, bool], tuple[int, float]] = {}  # (reader, lab) -> next frame, when
        self._busy: dict[tuple[int, bool], threading.Event] = {}  # being converted; set when stored
        self._lead = 0  # the shortest lead at the last job
        self._lab_quality: int | None = None  # the quality the last lab frame fitted at
        self._leads: dict[tuple[Hashable, bool], tuple[int, int]] = {}  # cursor -> (position, ready up to)
        self._wake = threading.Condition(self._lock)
        self._converter: threading.Thread | None = None
        self._closed = False
        self._announced: set = set()
        self.converting = {False: False, True: False}  # kinds for which frames need converting
        self.converted_frames = 0  # re-encodings done (background and inline)
        self.convert_seconds = 0.0  # wall time they took
        self.inline_conversions = 0  # frames the sender had to wait for
        lab_big = lab_max_frame > 0 and self.stream.max_size() > lab_max_frame
        if lab_big:
            self.converting[True] = True
        reason = self.stream.reason(0)
        if reason is not None:
            self._announce(False, 0, reason)
            self._cursors[("open", False)] = (0, time.monotonic())  # convert from the start now
            self._start_converter()
        self.width, self.height = self.stream.width, self.stream.height

    @property
    def frame_count(self) -> int:
        return self.stream.frame_count

    @property
    def fps(self) -> float:
        return self.stream.fps

    @property
    def duration(self) -> float:
        return self.stream.duration

    # -- what each kind of session gets ---------------------------------------------
    def _needs_work(self, index: int, lab: bool) -> bool:
        if lab:
            return 0 < self.lab_max_frame < self.stream.size(index)
        return self.stream.reason(index) is not None

    def _convert(self, index: int, lab: bool) -> bytes | str:
        """Frame `index` re-encoded for `lab` or RTSP sessions, or why it cannot be (the slow
        part, run without the lock)."""
        started = time.perf_counter()
        jpeg = self.stream.frame(index)
        try:
            if lab:
                out: bytes | str
                out, quality = fit_size_quality(jpeg, self.lab_max_frame, self._lab_quality)
                if quality is not None:
                    self._lab_quality = quality  # where the next frame's search starts
            else:
                out = to_rfc2435(jpeg)
        except ConvertError as exc:
            out = exc.reason
            if ("failed", lab) not in self._announced:
                self._announced.add(("failed", lab))
                log.warning("%s: frame %d cannot be re-encoded (%s); such frames are skipped", self.name,
                            index, exc.reason)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.converted_frames += 1
            self.convert_seconds += elapsed
            self._put(index, lab, out)
            done = self._busy.pop((index, lab), None)
        if done is not None:
            done.set()
        return out

    def _claim(self, key: tuple[int, bool]) -> threading.Event | None:
        """Take the job of converting `key` (lock held): its Event, or None when it is done
        or another thread has it already."""
        if key in self._store or key in self._busy:
            return None
        event = self._busy[key] = threading.Event()
        return event

    def _put(self, index: int, lab: bool, out: bytes | str) -> None:
        """Store a product (lock held), evicting the least recently used beyond the limit."""
        key = (index, lab)
        if key in self._store:
            return
        self._store[key] = out
        self._store_bytes += len(out)
        while self._store_bytes > self._store_limit and len(self._store) > 1:
            _, old = self._store.popitem(last=False)
            self._store_bytes -= len(old)

    def _announce(self, lab: bool, index: int, why: str) -> None:
        """Say once per movie, at INFO, what gets converted and why."""
        self.converting[lab] = True
        if lab in self._announced:
            return
        self._announced.add(lab)
        if lab:
            log.info("%s: frame %d has %d bytes, over the lab limit of %d (--lab-max-frame): frames over "
                     "it are re-encoded smaller for lab-dialect clients", self.name, index,
                     self.stream.size(index), self.lab_max_frame)
        else:
            log.info("%s: frame %d cannot be sent as RFC 2435 as it is (%s): such frames are re-encoded "
                     "as baseline JPEG (4:2:0, or 4:2:2 when the source is, standard Huffman tables, the "
                     "source's quantization tables) for RTSP clients; lab-dialect clients get the file's "
                     "own bytes", self.name, index, why)

    def jpeg(self, index: int, lab: bool = False, ready_wait: bool = False) -> bytes:
        """The JPEG that a `lab` or RTSP session gets for frame `index`: the file's bytes, or a
        re-encoding (from the store, else made now: counted in inline_conversions unless
        `ready_wait`, a caller that may wait).  Raises FrameUnavailable."""
        if lab:
            size = self.stream.size(index)
            if not self._needs_work(index, True):
                if size > MAX_DATAGRAM_PAYLOAD:
                    raise FrameUnavailable(f"frame of {size} bytes does not fit in one UDP datagram "
                                           f"(at most {MAX_DATAGRAM_PAYLOAD} after the RTP header)")
                return self.stream.frame(index)
            if True not in self._announced:
                self._announce(True, index, "")
        else:
            reason = self.stream.reason(index)
            if reason is None:
                return self.stream.frame(index)
            if not self.converting[False]:
                self._announce(False, index, reason)
                self._start_converter()
        key = (index, lab)
        with self._lock:
            out = self._store.get(key)
            if out is not None:
                self._store.move_to_end(key)
            else:
                mine = self._claim(key)
                theirs = None if mine else self._busy.get(key)
        if out is None and theirs is not None:  # the converter is on it: wait rather than redo it
            theirs.wait(CONVERT_WAIT)
            with self._lock:
                out = self._store.get(key)
                mine = self._claim(key) if out is None else None
        if out is None:
            if not ready_wait:
                with self._lock:
                    self.inline_conversions += 1
                log.debug("%s: frame %d (lab=%s) converted on demand", self.name, index, lab)
            out = self._convert(index, lab)
        if isinstance(out, str):
            raise FrameUnavailable(f"frame cannot be re-encoded: {out}")
        return out

    def ready(self, index: int, lab: bool, reader: Hashable | None = None) -> bool:
        """True when train(index, lab) will not have to convert (the Streamer never waits for a
        conversion: a session whose frame is not ready yet waits a little, the others go on).
        False also moves `reader`'s cursor there, so the converter does that frame next."""
        if not self.converting[lab]:
            return True
        key = (index, lab)
        if key in self._cache or key in self._store or not self._needs_work(index, lab):
            return True
        if reader is not None:
            self._advance(reader, lab, index)
        return False

    def train(self, index: int, lab: bool = False, reader: Hashable | None = None) -> PacketTrain:
        """Frame `index` as RTP packets ready to stamp (PacketTrain), built once and shared by
        every session: RFC 2435 payloads, or the whole JPEG in one packet for the lab dialect.
        `reader` (a session id) lets the converter run ahead of that session.  Raises
        FrameUnavailable for a frame this kind of session cannot get."""
        if reader is not None and self.converting[lab]:
            self._advance(reader, lab, index + 1)
        key = (index, lab)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        jpeg = self.jpeg(index, lab)
        payloads = [jpeg] if lab else packetize(jpeg, self.payload_size)
        train = PacketTrain(payloads, PT_JPEG)
        with self._lock:
            self._cache[key] = train
            self._cache_bytes += len(train.template)
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old.template)
        return train

    def prepare(self, index: int, lab: bool, reader: Hashable) -> None:
        """Before a PLAY from `index`: have that frame ready (converted now if it must be, in the
        caller's thread) and the converter working ahead of `reader`."""
        index %= max(self.frame_count, 1)
        if self.converting[lab] or self._needs_work(index, lab):
            try:
                self.jpeg(index, lab, ready_wait=True)
            except FrameUnavailable:
                pass  # the Streamer skips it and says why
            self._advance(reader, lab, index + 1)

    def rtp_size(self) -> tuple[int, int]:
        """Width and height RTSP clients see (a > 2040 px source is scaled down to fit)."""
        if self.stream.reason(0) is None:
            return self.width, self.height
        try:
            info = parse_jpeg(self.jpeg(0, ready_wait=True))
        except (FrameUnavailable, JpegError):
            return self.width, self.height
        return info.width, info.height

    def unplayable(self) -> str | None:
        """Why RTSP clients cannot play this movie at all (its first frame can be neither sent
        nor re-encoded), or None."""
        try:
            self.jpeg(0, ready_wait=True)
        except FrameUnavailable as exc:
            return f"frame 0: {self.stream.reason(0)}; {exc.reason}"
        return None

    # -- the converter thread -----------------------------------------------------------
    def _advance(self, reader: Hashable, lab: bool, position: int) -> None:
        key = (reader, lab)
        now = time.monotonic()
        with self._lock:
            self._cursors[key] = (position, now)
            if self._converter is None:
                self._start_converter_locked()
            else:
                self._wake.notify()

    def _start_converter(self) -> None:
        with self._lock:
            if self._converter is None:
                self._start_converter_locked()

    def _start_converter_locked(self) -> None:
        if self._closed:
            return
        self._converter = threading.Thread(target=self._convert_ahead, name=f"convert-{self.name}", daemon=True)
        self._converter.start()

    def _next_job(self) -> tuple[int, bool] | None:
        """The next frame to convert: for the session whose converted lead (frames ready past
        its position) is the shortest, the first frame not ready within CONVERT_AHEAD of it, so
        that every session's next frames come first.  Runs without the lock (parsing frames is
        slow); dict reads are safe meanwhile, and the chosen frame is claimed under the lock."""
        now = time.monotonic()
        count = self.frame_count
        cursors = list(self._cursors.items())
        ahead = CONVERT_AHEAD
        if len(cursors) > 1 and self._store:
            average = self._store_bytes / len(self._store) or 1
            ahead = max(8, min(ahead, int(self._store_limit / (2 * average * len(cursors)))))
        best: tuple[int, tuple[Hashable, bool], int] | None = None
        for key, (position, seen) in cursors:
            if now - seen > CURSOR_TTL:
                with self._lock:
                    if self._cursors.get(key) == (position, seen):
                        del self._cursors[key]
                        self._leads.pop(key, None)
                continue
            lab = key[1]
            memo = self._leads.get(key)
            step = memo[1] - position if memo is not None and memo[0] <= position <= memo[1] else 0
            while step < ahead:
                frame = ((position + step) % count, lab)
                if frame not in self._store and frame not in self._busy and self._needs_work(frame[0], lab):
                    break
                step += 1
            self._leads[key] = (position, position + step)  # frames up to here are ready
            if step < ahead and (best is None or step < best[0]):
                best = (step, key, (position + step) % count)
        if best is None:
            return None
        self._lead = best[0]
        job = (best[2], best[1][1])
        with self._lock:
            claimed = self._claim(job)
        return job if claimed is not None else self._next_job()

    def _convert_ahead(self) -> None:
        idle_since = time.monotonic()
        while True:
            job = self._next_job()
            if job is not None:
                self._convert(*job)
                idle_since = time.monotonic()
                if self._lead >= URGENT_LEAD:
                    # Every session has a second's worth ready: convert at twice the rate the
                    # sessions use frames rather than in a burst, so that this thread's CPU (and
                    # its hold on the GIL) is spread evenly instead of delaying the Streamer.
                    readers = max(1, len(self._cursors))
                    with self._lock:
                        if not self._closed:
                            self._wake.wait(0.5 / (self.fps * readers))
                continue
            with self._lock:
                if self._closed or time.monotonic() - idle_since > CONVERTER_IDLE:
                    self._converter = None
                    return
                self._wake.wait(0.5)

    def close(self) -> None:
        """Stop the converter thread (the server is shutting down)."""
        with self._lock:
            self._closed = True
            thread = self._converter
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)


class MediaLibrary:
    """Maps request-URIs to the movies of one folder."""

    def __init__(self, folder: os.PathLike, fps: float | None = None, payload_size: int = 1400,
                 lab_max_frame: int = LAB_MAX_FRAME) -> None:
        self.folder = Path(folder).resolve(strict=True)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        os.listdir(self.folder)  # PermissionError now rather than at the first request
        self.fps = fps
        self.payload_size = payload_size
        self.lab_max_frame = lab_max_frame
        self._movies: dict[str, Movie] = {}
        self._lock = threading.Lock()
        self._listing: list[str] | None = None
        self._listed_at = 0.0
        self.live: dict[str, Any] = {}  # name -> LiveReader.LiveFeed (--live NAME=...)

    def add_live(self, feed: Any) -> None:
        """Serve a live source under its name (it hides a file of the same name)."""
        self.live[feed.name] = feed

    def names(self) -> list[str]:
        """Servable names, from a listing at most LISTING_TTL seconds old (SETUP latency)."""
        now = time.monotonic()
        with self._lock:
            if self._listing is not None and now - self._listed_at < LISTING_TTL:
                return self._listing
        listing = self._scan()
        with self._lock:
            self._listing, self._listed_at = listing, now
        return listing

    def _scan(self) -> list[str]:
        """Regular files directly in the folder, not leaving it, with a served extension."""
        found = []
        for entry in os.scandir(self.folder):
            name = entry.name
            if not name.lower().endswith(SERVED_EXTENSIONS) or len(name) > MAX_NAME_LENGTH:
                continue
            try:
                real = Path(entry.path).resolve(strict=True)
            except OSError:
                continue
            if real.parent != self.folder or not real.is_file():
                continue  # a symlink out of the folder (or into a subfolder) is not served
            found.append(name)
        return sorted(found)

    @staticmethod
    def split_uri(uri: str) -> tuple[str, str]:
        """(movie name, track control) from a request-URI, split by RtspHeaders.split_url.

        Accepts rtsp://host:port/name, .../name/ (aggregate control from Content-Base),
        .../name/trackID=0 and the lab's bare `name`; a query is ignored.  The name is
        percent-decoded only to be compared with the folder listing.  A malformed URL is 400.
        """
        if uri == "*":
            return "", ""
        path = split_url(uri)[2].split("?", 1)[0]
        name, _, track = path.partition("/")
        return unquote(name), track.rstrip("/")

    def lookup(self, name: str) -> Movie | None:
        """The Movie (or live feed) called `name`, or None when no such source exists."""
        feed = self.live.get(name)
        if feed is not None:
            return feed  # type: ignore[return-value]
        if not name or "\x00" in name or name not in self.names():
            return None
        if not os.path.lexists(self.folder / name):
            self._listing = None  # removed since the listing was made
            return None
        path = self.folder / name
        with self._lock:
            movie = self._movies.get(name)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                return None
            if movie is None or movie.mtime != mtime:
                movie = Movie(name, path, self.fps, self.payload_size, lab_max_frame=self.lab_max_frame)
                self._movies[name] = movie
            return movie

    def close(self) -> None:
        """Stop every movie's converter thread."""
        with self._lock:
            movies = list(self._movies.values())
        for movie in movies:
            movie.close()
