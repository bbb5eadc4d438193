"""The server's media folder: which names may be served, and each movie's frames.

Security rule: a request never builds a path.  The folder is listed, entries whose
real path leaves the folder (symlinks) or whose extension is not served are dropped,
and a request-URI is only ever *compared* with the names in that listing.

A Movie packetizes each frame once (RFC 2435) and keeps the result in a byte-bounded
LRU cache shared by every session that plays it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote

from RtpJpeg import packetize
from PacketTrain import PacketTrain
from RtpPacket import PT_JPEG
from RtspHeaders import split_url
from VideoStream import VideoStream

log = logging.getLogger(__name__)

SERVED_EXTENSIONS = (".mjpeg", ".mjpg")
MAX_NAME_LENGTH = 255
LISTING_TTL = 2.0  # seconds a folder listing is reused; new files are served after at most this


class Movie:
    """One served file: its VideoStream plus a shared cache of packetized frames."""

    def __init__(self, name: str, path: Path, fps: Optional[float], payload_size: int,
                 cache_bytes: int = 64 << 20) -> None:
        self.name = name
        self.path = path
        self.stream = VideoStream(path, fps)
        self.payload_size = payload_size
        self.problems = self.stream.problems
        self._cache: "OrderedDict[Tuple[int, bool], PacketTrain]" = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._lock = threading.Lock()
        stat = path.stat()
        self.mtime = stat.st_mtime
        # average octets per second of the stream, for the RTCP bandwidth share (RFC 3550 6.2)
        self.byte_rate = stat.st_size / self.stream.duration if self.stream.duration else 0.0

    @property
    def frame_count(self) -> int:
        return self.stream.frame_count

    @property
    def fps(self) -> float:
        return self.stream.fps

    @property
    def duration(self) -> float:
        return self.stream.duration

    def train(self, index: int, lab: bool = False) -> PacketTrain:
        """Frame `index` as RTP packets ready to stamp (PacketTrain), built once and shared by
        every session: RFC 2435 payloads, or the whole JPEG in one packet for the lab dialect
        (and for files whose JPEGs cannot be cut up)."""
        key = (index, lab)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        jpeg = self.stream.frame(index)
        payloads = [jpeg] if lab or self.problems else packetize(jpeg, self.payload_size)
        train = PacketTrain(payloads, PT_JPEG)
        with self._lock:
            self._cache[key] = train
            self._cache_bytes += len(train.template)
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old.template)
        return train


class MediaLibrary:
    """Maps request-URIs to the movies of one folder."""

    def __init__(self, folder: os.PathLike, fps: Optional[float] = None, payload_size: int = 1400) -> None:
        self.folder = Path(folder).resolve(strict=True)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        os.listdir(self.folder)  # PermissionError now rather than at the first request
        self.fps = fps
        self.payload_size = payload_size
        self._movies: Dict[str, Movie] = {}
        self._lock = threading.Lock()
        self._listing: Optional[List[str]] = None
        self._listed_at = 0.0

    def names(self) -> List[str]:
        """Servable names, from a listing at most LISTING_TTL seconds old (SETUP latency)."""
        now = time.monotonic()
        with self._lock:
            if self._listing is not None and now - self._listed_at < LISTING_TTL:
                return self._listing
        listing = self._scan()
        with self._lock:
            self._listing, self._listed_at = listing, now
        return listing

    def _scan(self) -> List[str]:
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
    def split_uri(uri: str) -> Tuple[str, str]:
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

    def lookup(self, name: str) -> Optional[Movie]:
        """The Movie called `name`, or None when no such servable file exists."""
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
                movie = Movie(name, path, self.fps, self.payload_size)
                if movie.problems:
                    index, reason = movie.problems[0]
                    log.warning("%s: %d frame(s) RFC 2435 cannot carry, first at frame %d: %s",
                                name, len(movie.problems), index, reason)
                self._movies[name] = movie
            return movie
