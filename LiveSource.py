"""Live MJPEG sources, sans I/O: JPEG frames out of a byte stream, parts out of multipart.

Two shapes of live MJPEG exist in the wild:

- **concatenated JPEG** (``ffmpeg ... -f mjpeg -``, many webcam tools): SOI ... EOI, SOI ...
  EOI, with nothing in between.  :class:`JpegSplitter` finds the frames, skips (and counts)
  bytes that are not inside one, and refuses a "frame" that grows past a limit.
- **multipart/x-mixed-replace** (HTTP MJPEG cameras, RFC 2046 section 5.1 framing): each part
  has its own headers (often Content-Length) and a JPEG body.  :class:`MultipartParser` reads
  the parts whatever way the reads split them, with or without Content-Length, and refuses a
  part over the limit or a stream whose delimiter never shows (a wrong boundary).

Both are fed bytes and return complete frames; the reader threads live in LiveReader.py.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from RtpJpeg import JpegError, find_jpeg_end

log = logging.getLogger(__name__)

__all__ = ["JpegSplitter", "MultipartParser", "MultipartError", "boundary_from_content_type",
           "parse_live_spec", "LiveSpec", "LiveKind", "DEFAULT_MAX_FRAME"]

DEFAULT_MAX_FRAME = 4 << 20  # a live frame above 4 MB is refused (a 4K JPEG is ~1-2 MB)
_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"


class MultipartError(ValueError):
    """A multipart stream that cannot be read (wrong boundary, no boundary)."""


class JpegSplitter:
    """Concatenated JPEG frames from a byte stream: ``feed(data) -> [jpeg, ...]``.

    Bytes before an SOI are skipped and counted in ``garbage_bytes``; a frame that is not
    complete within ``max_frame`` bytes is dropped (``oversized``) and the search resumes
    after its SOI.  Parsing restarts only when a new EOI candidate arrives, so a frame fed
    in many small reads costs one walk, not one per read.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._scanned = 0  # no EOI candidate before this offset of _buf (from its SOI)
        self.garbage_bytes = 0
        self.oversized = 0
        self.frames = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while True:
            start = buf.find(_SOI)
            if start < 0:
                keep = 1 if buf.endswith(b"\xff") else 0  # an SOI may be split across reads
                self.garbage_bytes += len(buf) - keep
                del buf[:len(buf) - keep]
                self._scanned = 0
                return out
            if start:
                self.garbage_bytes += start
                del buf[:start]
                self._scanned = 0
            eoi = buf.find(_EOI, max(2, self._scanned - 1))
            if eoi < 0:
                self._scanned = len(buf)
                if len(buf) > self.max_frame:
                    self._drop_oversized()
                    continue
                return out
            try:
                end = find_jpeg_end(buf, 0)
            except JpegError as exc:
                if exc.reason.startswith("truncated") and len(buf) <= self.max_frame:
                    self._scanned = len(buf)  # wait for the next EOI candidate
                    return out
                if len(buf) > self.max_frame:
                    self._drop_oversized()
                else:  # not a JPEG after all (an FFD8 inside garbage): skip that SOI
                    self.garbage_bytes += 2
                    del buf[:2]
                    self._scanned = 0
                continue
            if end > self.max_frame:
                self._drop_oversized()
                continue
            out.append(bytes(buf[:end]))
            self.frames += 1
            del buf[:end]
            self._scanned = 0

    def _drop_oversized(self) -> None:
        self.oversized += 1
        log.debug("JPEG frame larger than %d bytes dropped", self.max_frame)
        del self._buf[:2]
        self._scanned = 0


def boundary_from_content_type(value: str | None) -> str:
    """The boundary of a ``multipart/x-mixed-replace; boundary=...`` Content-Type.

    Raises MultipartError for another type or a missing boundary.  Cameras differ: some
    quote it, some put the delimiter's leading ``--`` into the parameter itself."""
    if not value:
        raise MultipartError("no Content-Type: not an MJPEG (multipart/x-mixed-replace) stream")
    kind, _, params = value.partition(";")
    if kind.strip().lower() not in ("multipart/x-mixed-replace", "multipart/mixed"):
        raise MultipartError(f"Content-Type {kind.strip()!r} is not multipart/x-mixed-replace")
    match = re.search(r'boundary\s*=\s*("([^"]*)"|[^;\s]+)', params, re.IGNORECASE)
    if not match:
        raise MultipartError(f"Content-Type {value!r} has no boundary parameter")
    boundary = match.group(2) if match.group(2) is not None else match.group(1)
    if not boundary or len(boundary) > 200:
        raise MultipartError(f"unusable multipart boundary {boundary!r}")
    return boundary


class MultipartParser:
    """Bodies of a multipart/x-mixed-replace stream: ``feed(data) -> [body, ...]``.

    A part is ``--boundary CRLF headers CRLF CRLF body`` up to the next delimiter
    (RFC 2046 5.1.1).  With Content-Length the body is taken by length; without, it ends
    at the next ``CRLF--boundary``.  A part over ``max_part`` bytes is skipped and counted
    (``oversized``); when no delimiter shows within ``max_part`` bytes of the start the
    boundary is wrong and :class:`MultipartError` is raised.  Bare-LF cameras are accepted.
    """

    _HEADERS, _BODY = 0, 1

    def __init__(self, boundary: str, max_part: int = DEFAULT_MAX_FRAME) -> None:
        b = boundary[2:] if boundary.startswith("--") else boundary
        self.boundary = b
        self._delims = (b"--" + b.encode("latin-1"), b"----" + b.encode("latin-1"))
        self.max_part = max_part
        self._buf = bytearray()
        self._state = self._HEADERS
        self._length: int | None = None
        self._skip = 0  # bytes of an oversized part still to discard
        self.parts = 0
        self.oversized = 0
        self.skipped_bytes = 0
        self._seen_delimiter = False
        self._scan_from = 0  # no delimiter starts before this offset of _buf (searched already)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        if self._skip:
            take = min(self._skip, len(data))
            self._skip -= take
            self.skipped_bytes += take
            data = data[take:]
        buf += data
        out: list[bytes] = []
        while True:
            if self._state == self._HEADERS:
                if not self._read_headers():
                    return out
            else:
                body = self._read_body()
                if body is None:
                    return out
                out.append(body)

    def _find_delimiter(self, start: int = 0) -> tuple[int, int]:
        """(offset, length) of the first delimiter line at or after start, or (-1, 0)."""
        best, size = -1, 0
        for delim in self._delims:
            at = self._buf.find(delim, start)
            while at > 0 and self._buf[at - 1] not in (0x0A,):
                at = self._buf.find(delim, at + 1)  # a delimiter starts a line
            if at >= 0 and (best < 0 or at < best):
                best, size = at, len(delim)
        return best, size

    def _rescan_from(self) -> int:
        """Where the next search may start: a delimiter may straddle the end of what was searched."""
        return max(0, len(self._buf) - len(self._delims[1]) - 1)

    def _read_headers(self) -> bool:
        buf = self._buf
        at, size = self._find_delimiter(self._scan_from)
        if at < 0:
            if len(buf) > self.max_part:
                if not self._seen_delimiter:
                    raise MultipartError(f"no multipart delimiter '--{self.boundary}' within {self.max_part} "
                                         "bytes: wrong boundary?")
                # the rest of a part that was too large: skip it up to the next delimiter
                keep = len(self._delims[1]) + 1
                self.skipped_bytes += len(buf) - keep
                del buf[:len(buf) - keep]
            self._scan_from = self._rescan_from()
            return False
        end = buf.find(b"\n\n", at)
        end_crlf = buf.find(b"\r\n\r\n", at)
        if end_crlf >= 0 and (end < 0 or end_crlf < end):
            end, sep = end_crlf, 4
        elif end >= 0:
            sep = 2
        else:
            if len(buf) - at > 16384:
                raise MultipartError("multipart part headers longer than 16384 bytes")
            return False
        self._seen_delimiter = True
        self._scan_from = 0
        if at:
            self.skipped_bytes += at  # preamble or epilogue text between parts
        head = bytes(buf[at + size:end]).decode("latin-1")
        if head.startswith("--"):
            # the closing delimiter '--boundary--': the stream says it ended
            del buf[:end + sep]
            return True
        self._length = None
        for line in head.splitlines()[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise MultipartError(f"multipart Content-Length {value[:40]!r} is not a number")
                self._length = int(value)
        del buf[:end + sep]
        if self._length is not None and self._length > self.max_part:
            self.oversized += 1
            log.debug("multipart part of %d bytes over the %d limit skipped", self._length, self.max_part)
            take = min(self._length, len(buf))
            self.skipped_bytes += take
            del buf[:take]
            self._skip = self._length - take
            return True
        self._state = self._BODY
        return True

    def _read_body(self) -> bytes | None:
        buf = self._buf
        if self._length is not None:
            if len(buf) < self._length:
                return None
            body = bytes(buf[:self._length])
            del buf[:self._length]
        else:
            at, _ = self._find_delimiter(self._scan_from)
            if at < 0:
                if len(buf) > self.max_part:
                    self.oversized += 1
                    self.skipped_bytes += len(buf) - 256
                    del buf[:len(buf) - 256]  # keep a tail that may hold the delimiter's start
                    self._scan_from = 0
                    self._state = self._HEADERS  # resynchronise at the next delimiter
                    return None
                self._scan_from = self._rescan_from()
                return None
            self._scan_from = 0
            cut = at
            if cut and buf[cut - 1] == 0x0A:
                cut -= 1
            if cut and buf[cut - 1] == 0x0D:
                cut -= 1
            body = bytes(buf[:cut])
            del buf[:at]
            if len(body) > self.max_part:
                self.oversized += 1
                self._state = self._HEADERS
                return None
        self._state = self._HEADERS
        self.parts += 1
        return body


class LiveKind:
    COMMAND = "command"
    STDIN = "stdin"
    HTTP = "http"


@dataclass
class LiveSpec:
    """What ``--live NAME=SOURCE`` asked for."""

    name: str
    kind: str
    source: str  # the command line, '-', or the URL


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def parse_live_spec(text: str) -> LiveSpec:
    """'cam=ffmpeg -f v4l2 ...' / 'cam=-' / 'cam=http://...' -> LiveSpec; ValueError says why."""
    name, sep, source = text.partition("=")
    name, source = name.strip(), source.strip()
    if not sep or not source:
        raise ValueError(f"--live {text!r}: expected NAME=COMMAND, NAME=- or NAME=http://...")
    if not _NAME_RE.match(name):
        raise ValueError(f"--live name {name!r}: use letters, digits, '.', '_' or '-' (up to 100)")
    if source == "-":
        return LiveSpec(name, LiveKind.STDIN, source)
    if source.lower().startswith(("http://", "https://")):
        return LiveSpec(name, LiveKind.HTTP, source)
    return LiveSpec(name, LiveKind.COMMAND, source)
