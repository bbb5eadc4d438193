"""Movie files of JPEG frames: the course lab's .Mjpeg format and concatenated JPEG.

Two layouts are detected by content, not by file name:

* ``mjpeg-lab``: each frame is preceded by its length as 5 ASCII digits (the Kurose & Ross
  lab's ``movie.Mjpeg``), so a frame is at most 99,999 bytes.
* ``jpeg-concat``: JPEG files back to back, as ``ffmpeg -f mjpeg`` writes them.

A file over 32 MB is memory-mapped, not read: a 1 GB movie costs page cache the kernel
can reclaim, not 1 GB of heap, and ``frame(i)`` copies only that frame.  Opening indexes the
frame offsets (random access for seeking), the frame count and width/height from the
first frame's SOF.  Whether RFC 2435 can carry a frame (progressive, 12-bit, unsupported
sampling, > 2040 px, ...) is checked per frame when asked (``info(i)``, ``reason(i)``),
or for all frames at once by ``problems``.
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
from typing import Iterable

from RtpJpeg import JpegError, JpegInfo, find_jpeg_end, parse_jpeg

log = logging.getLogger(__name__)

__all__ = ["VideoStream", "write_mjpeg", "FORMAT_LAB", "FORMAT_CONCAT", "DEFAULT_FPS"]

FORMAT_LAB = "mjpeg-lab"
FORMAT_CONCAT = "jpeg-concat"
DEFAULT_FPS = 20.0          # the lab's server sends a frame every 50 ms
_LAB_DIGITS = 5
_SOI = b"\xff\xd8"
MMAP_THRESHOLD = 32 << 20   # larger files are memory-mapped instead of read


class VideoStream:
    """An indexed movie: ``frame(i)`` returns frame i's JPEG bytes.

    Raises OSError if the file cannot be read and ValueError if it holds no JPEG frames.
    Also keeps the lab's sequential interface (``nextFrame()``, ``frameNbr()``).
    """

    def __init__(self, filename: str | os.PathLike, fps: float | None = None) -> None:
        self.filename = os.fspath(filename)
        if fps is not None and not fps > 0:
            raise ValueError(f"frame rate must be positive, got {fps!r}")
        self.fps = float(fps) if fps is not None else DEFAULT_FPS
        with open(self.filename, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                raise ValueError(f"{self.filename}: empty file, no JPEG frames")
            if size > MMAP_THRESHOLD:
                # ACCESS_READ on every platform (Windows too); the mapping outlives the file
                # object (and holds a descriptor of its own, hence only for large files)
                self._data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            else:
                self._data = f.read()
        data = self._data
        try:
            if data[:_LAB_DIGITS].isdigit() and data[_LAB_DIGITS:_LAB_DIGITS + 2] == _SOI:
                self.format = FORMAT_LAB
                self._index = self._index_lab(data)
            elif data[:2] == _SOI:
                self.format = FORMAT_CONCAT
                self._index = self._index_concat(data)
            else:
                raise ValueError(f"{self.filename}: neither a lab .Mjpeg (5-digit frame lengths) nor "
                                 f"concatenated JPEG (starts with {data[:8].hex(' ')})")
            if not self._index:
                raise ValueError(f"{self.filename}: no complete JPEG frame")
        except ValueError:
            self.close()
            raise
        self.frame_count = len(self._index)
        self._checked: dict[int, bool | str] = {}  # frame -> True (carriable) or why not
        self._problems: list[tuple[int, str]] | None = None
        first = self.info(0)
        if first is not None:
            self.width, self.height = first.width, first.height
        else:
            self.width, self.height = _sof_size(self.frame(0))
        self._next = 0

    def _index_lab(self, data: bytes | mmap.mmap) -> list[tuple[int, int]]:
        """Offsets of frames in the lab format: 5 ASCII digits of length, then the frame."""
        index: list[tuple[int, int]] = []
        pos, n = 0, len(data)
        while pos < n:
            digits = data[pos:pos + _LAB_DIGITS]
            if len(digits) < _LAB_DIGITS or not digits.isdigit():
                raise ValueError(f"{self.filename}: frame {len(index)} at offset {pos}: expected a "
                                 f"5-digit length, found {digits!r}")
            length = int(digits)
            start = pos + _LAB_DIGITS
            if start + length > n:
                log.warning("%s: last frame (%d) truncated: %d of %d bytes; ignored",
                            self.filename, len(index), n - start, length)
                break
            if data[start:start + 2] != _SOI:
                raise ValueError(f"{self.filename}: frame {len(index)} at offset {start} is not a "
                                 f"JPEG (no SOI)")
            index.append((start, start + length))
            pos = start + length
        return index

    def _index_concat(self, data: bytes | mmap.mmap) -> list[tuple[int, int]]:
        """Offsets of concatenated JPEG frames, found by walking each frame's markers."""
        index: list[tuple[int, int]] = []
        pos, n = 0, len(data)
        while pos < n:
            try:
                end = find_jpeg_end(data, pos)
            except JpegError as exc:
                log.warning("%s: frame %d at offset %d: %s; rest of file ignored",
                            self.filename, len(index), pos, exc.reason)
                break
            index.append((pos, end))
            pos = data.find(_SOI, end)      # tolerate padding between frames
            if pos < 0:
                break
        return index

    @property
    def duration(self) -> float:
        """Length in seconds: frame_count / fps."""
        return self.frame_count / self.fps

    def __len__(self) -> int:
        return self.frame_count

    def frame(self, index: int) -> bytes:
        """JPEG bytes of frame ``index`` (0-based; negative counts from the end)."""
        start, end = self._index[index]
        return self._data[start:end]

    def size(self, index: int) -> int:
        """Length in bytes of frame ``index`` (from the index: nothing is read)."""
        start, end = self._index[index]
        return end - start

    def max_size(self) -> int:
        """The largest frame's length in bytes."""
        return max(end - start for start, end in self._index)

    def info(self, index: int) -> JpegInfo | None:
        """parse_jpeg() of frame ``index``; None if RFC 2435 cannot carry the frame as it is
        (``reason(index)`` says why)."""
        if self._checked.get(index, True) is not True:
            return None
        try:
            info = parse_jpeg(self.frame(index))
        except JpegError as exc:
            self._checked[index] = sys.intern(exc.reason)
            return None
        self._checked[index] = True
        return info

    def reason(self, index: int) -> str | None:
        """Why RFC 2435 cannot carry frame ``index`` as it is, or None when it can (each frame
        is parsed once; only the verdict is kept, a few bytes per frame)."""
        checked = self._checked.get(index)
        if checked is None:
            self.info(index)
            checked = self._checked[index]
        return None if checked is True else checked  # type: ignore[return-value]

    @property
    def problems(self) -> list[tuple[int, str]]:
        """(frame, reason) for every frame RFC 2435 cannot carry as it is (checks them all
        the first time: for a tool or a test; the server checks frames as it sends them)."""
        if self._problems is None:
            found = [(i, self.reason(i)) for i in range(self.frame_count)]
            self._problems = [(i, r) for i, r in found if r is not None]
            if self._problems:
                log.info("%s: %d of %d frames cannot be sent as RFC 2435 as they are (first: frame %d: %s)",
                         self.filename, len(self._problems), self.frame_count, *self._problems[0])
        return self._problems

    def close(self) -> None:
        """Unmap the file (frames can no longer be read)."""
        data = getattr(self, "_data", None)
        if isinstance(data, mmap.mmap):
            try:
                data.close()
            except BufferError:
                pass

    def frame_at(self, seconds: float) -> int:
        """Index of the frame shown at ``seconds`` (for RTSP Range seeks), clamped to the movie."""
        return min(max(int(seconds * self.fps + 1e-9), 0), self.frame_count)

    # Lab interface -------------------------------------------------------------------------
    def nextFrame(self) -> bytes:
        """Next frame in sequence, or b"" at the end (the lab's VideoStream.nextFrame)."""
        if self._next >= self.frame_count:
            return b""
        self._next += 1
        return self.frame(self._next - 1)

    def frameNbr(self) -> int:
        """Number of frames returned by nextFrame() so far (the lab's 1-based frame number)."""
        return self._next

    def seek(self, index: int) -> None:
        """Make nextFrame() return frame ``index`` next."""
        self._next = min(max(index, 0), self.frame_count)

    def __repr__(self) -> str:
        return (f"VideoStream({self.filename!r}, format={self.format}, frames={self.frame_count}, "
                f"{self.width}x{self.height}, fps={self.fps})")


def _sof_size(frame: bytes) -> tuple[int, int]:
    """Width and height from any SOFn marker (for frames parse_jpeg rejects); (0, 0) if none."""
    pos = 2
    while pos + 9 <= len(frame) and frame[pos] == 0xFF:
        marker = frame[pos + 1]
        length = (frame[pos + 2] << 8) | frame[pos + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (frame[pos + 7] << 8) | frame[pos + 8], (frame[pos + 5] << 8) | frame[pos + 6]
        if marker == 0xDA:
            break
        pos += 2 + length
    return 0, 0


def write_mjpeg(path: str | os.PathLike, frames: Iterable[bytes]) -> None:
    """Write frames in the lab's 5-digit format, or as concatenated JPEG if one is > 99,999 B.

    No frames writes an empty file (a recording that got nothing), which VideoStream refuses.
    """
    frames = [bytes(f) for f in frames]
    if not frames:
        log.warning("%s: no frames to write", os.fspath(path))
    for number, frame in enumerate(frames):
        if frame[:2] != _SOI:
            raise ValueError(f"frame {number} is not a JPEG (no SOI)")
    lab = all(len(f) < 10 ** _LAB_DIGITS for f in frames)
    with open(path, "wb") as f:
        for frame in frames:
            if lab:
                f.write(b"%05d" % len(frame))
            f.write(frame)
