"""What the player's receive engine hands its consumer, and the errors it raises.

:class:`Event` s of an :class:`EventKind` go through an :class:`EventQueue` (a ``queue.Queue`` that
can wake a consumer who does not poll) to the Tk window or the headless mode; complete frames are
:class:`Frame` s; :class:`ClientError` is a failure the user can act on (one line). Pure: no I/O.
Used by :mod:`RtpReceivePath` and :mod:`ReceiveEngine` (which re-exports all of it).
"""

from __future__ import annotations

import enum
import queue
from dataclasses import dataclass
from typing import Any, Callable

from RtcpPacket import ReportBlock
from RtpStats import IntervalReport
from RtspClient import Reply


class ClientError(Exception):
    """A failure the user can act on; ``str()`` is one line."""


class NoReply(ClientError):
    """A request got no reply: none within the timeout, or ``closed``: the server closed the connection."""

    def __init__(self, message: str, closed: bool = False) -> None:
        super().__init__(message)
        self.closed = closed


class ReplyError(ClientError):
    """A request got a reply that failed (non-2xx, or unusable content); ``reply`` is it."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


class EventKind(enum.Enum):
    FRAME = "frame"
    LOG = "log"          # RTSP request/reply text, for the log view
    STATE = "state"      # ClientState changed
    END = "end"          # the stream ended (reason text; a failure is in ReceiveEngine.failure)
    STATS = "stats"      # RTCP in or out: the statistics changed while maybe no frame flows
    DONE = "done"        # the window's request thread finished: (name, error or None, on success, always)


@dataclass
class Frame:
    """A complete JPEG frame and where it sits in the stream."""

    data: bytes
    rtp_timestamp: int
    index: int            # frame number in the media (from the timestamp and the PLAY position)
    position: float       # media time in seconds
    arrival: float        # time.monotonic() at completion
    generation: int = 0   # ReceiveEngine.generation when completed: older ones predate a seek


@dataclass
class Event:
    kind: EventKind
    payload: Any = None


class EventQueue(queue.Queue):
    """The engine's events (a ``queue.Queue``) that can wake a consumer who does not poll.

    The consumer drains the queue, then calls :meth:`arm`; the next :meth:`put`, from whatever
    thread, calls :attr:`waker` once (with the queue's lock held: it must only signal, e.g. write
    a byte to a socket). The Tk window sleeps that way between frames (Client.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.waker: Callable[[], None] | None = None
        self._armed = False
        self.frames_waiting = 0  # FRAME events in the queue (the engine bounds them)

    def arm(self) -> bool:
        """Have the next put() call the waker; False (not armed) when events are waiting already."""
        with self.mutex:
            if self.queue:
                return False
            self._armed = True
            return True

    def _put(self, item: Event) -> None:
        super()._put(item)
        if item.kind is EventKind.FRAME:
            self.frames_waiting += 1
        if self._armed and self.waker is not None:
            self._armed = False
            self.waker()

    def _get(self) -> Event:
        item = super()._get()
        if item.kind is EventKind.FRAME:
            self.frames_waiting -= 1
        return item


@dataclass(frozen=True)
class SentReport:
    """One receiver report we sent (RFC 3550 §6.4.2), for tests and diagnostics.

    ``impair_delivered`` is how many packets the impairer had delivered when the report was
    built: the ground truth for the report's interval is computed from exactly those.
    """

    time: float
    block: ReportBlock | None
    interval: IntervalReport | None
    impair_delivered: int | None
