"""The lab checker's evidence and report: rubric items, verdicts, recordings, the printed report (no sockets).

`tools/labcheck.py` records what went over the wire with arrival times into the recordings
here (`ServerRecording`: scripted `PlaySession`s of `Exchange`s and RTP `Arrival`s;
`ClientRecording`: a client's bytes and `PortProbe`s of its RTP port); `LabCheck.py` grades
them against the rubric items defined here and returns `Result`s, which `format_text()` /
`format_json()` turn into the report and `exit_status()` into the exit status.  RTSP replies
and requests are read with the project's own parser (RtspParser).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Iterable

from RtspMessage import MessageError, Request, Response, RtspError
from RtspParser import RtspParser


class Verdict(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NA = "N/A"


@dataclass(frozen=True)
class Item:
    """One rubric line: its key (for --only/--skip), a title, and whether it is required."""

    key: str
    title: str
    required: bool = True


SERVER_ITEMS = (
    Item("rtsp.status", "replies start with 'RTSP/1.0 200 OK'"),
    Item("rtsp.cseq", "every reply echoes the request's CSeq"),
    Item("rtsp.session", "SETUP gives a Session id, every later reply keeps it"),
    Item("rtsp.errors", "454 for an unknown session, 455 out of state (RTSP 1.0 servers)"),
    Item("rtp.version", "RTP version 2 on every packet"),
    Item("rtp.flags", "no padding / extension / CSRC unless really used"),
    Item("rtp.pt", "payload type 26 (JPEG, RFC 3551)"),
    Item("rtp.seq", "sequence number +1 per packet"),
    Item("rtp.timestamp", "timestamp advances with every frame"),
    Item("rtp.clock", "timestamps count a 90 kHz clock", required=False),
    Item("rtp.ssrc", "one SSRC for the whole session"),
    Item("rtp.marker", "marker bit on the last packet of each frame, only there"),
    Item("jpeg.decode", "every frame decodes as a JPEG"),
    Item("pacing", "frames arrive at the frame rate, evenly"),
    Item("pause.stops", "PAUSE stops RTP within 200 ms"),
    Item("pause.resume", "PLAY after PAUSE resumes at the next frame"),
    Item("teardown.stops", "TEARDOWN stops RTP within 200 ms"),
    Item("teardown.new", "a new session is accepted after TEARDOWN"),
    Item("concurrent", "a second client is served while the first plays"),
    Item("vanish", "the server survives a client that vanishes without TEARDOWN"),
)

CLIENT_ITEMS = (
    Item("client.request_line", "requests read 'METHOD URI RTSP/1.0' with a known method"),
    Item("client.cseq", "CSeq present and +1 on every request"),
    Item("client.session", "every request after SETUP carries the server's Session id"),
    Item("client.transport", "SETUP carries Transport with the client's RTP port"),
    Item("client.state", "nothing sent out of state (INIT -> READY <-> PLAYING -> INIT)"),
    Item("client.rtp_port", "the RTP port is bound while playing"),
    Item("client.teardown", "TEARDOWN sent, and the RTP port is released after it"),
)

ITEMS = {item.key: item for item in SERVER_ITEMS + CLIENT_ITEMS}


@dataclass
class Result:
    key: str
    verdict: Verdict
    reason: str
    evidence: bytes = b""

    @property
    def item(self) -> Item:
        return ITEMS[self.key]


# --------------------------------------------------------------------------- recordings


@dataclass
class Exchange:
    """One request as sent and the reply bytes read for it (b"" when none came)."""

    request: bytes
    reply: bytes = b""
    sent: float = 0.0
    elapsed: float | None = None        # seconds to the complete reply; None: no reply
    error: str = ""                     # why there is no reply (timeout, reset, ...)

    @property
    def method(self) -> str:
        return self.request.split(b" ", 1)[0].decode("ascii", "replace")

    def response(self) -> Response | None:
        return parse_reply(self.reply)


@dataclass
class Arrival:
    """One datagram and the monotonic time it was read."""

    time: float
    data: bytes


@dataclass
class PlaySession:
    """A scripted session: its exchanges, the RTP read on its port, and marks in time."""

    exchanges: list[Exchange] = field(default_factory=list)
    packets: list[Arrival] = field(default_factory=list)
    error: str = ""                     # connect failure and the like

    def exchange(self, method: str, nth: int = 0) -> Exchange | None:
        found = [e for e in self.exchanges if e.method == method]
        return found[nth] if len(found) > nth else None

    def packets_between(self, start: float, end: float) -> list[Arrival]:
        return [a for a in self.packets if start <= a.time < end]


@dataclass
class ServerRecording:
    """Everything tools/labcheck.py saw of a server: see `run_server_script` there."""

    fps: float = 20.0
    main: PlaySession = field(default_factory=PlaySession)       # SETUP PLAY PAUSE PLAY TEARDOWN
    end: float = 0.0                                              # when main's watch after TEARDOWN ended
    again: PlaySession = field(default_factory=PlaySession)      # new connection after TEARDOWN
    second: PlaySession = field(default_factory=PlaySession)     # joins while `again` plays
    rtsp10: PlaySession | None = None                            # OPTIONS, SETUP, PLAY bad id, PAUSE in READY
    after_vanish: PlaySession = field(default_factory=PlaySession)
    movie: list[bytes] | None = None                             # the reference frames, if known


@dataclass
class PortProbe:
    """One look at the client's RTP port: bound (None: cannot tell from here), and where the
    system says (Linux /proc/net/udp) the bytes waiting in its receive queue and the datagrams
    dropped because it was full (None: not known)."""

    time: float
    state: str                 # the client's state then: PLAYING or AFTER_TEARDOWN
    bound: bool | None
    queued: int | None = None
    drops: int | None = None


@dataclass
class ClientRecording:
    """What the reference server saw of one client connection.

    ``received`` holds the client's bytes as each read returned them, ``sent`` the server's
    writes; ``port_probes`` are samples of the client's RTP port.
    """

    received: list[tuple[float, bytes]] = field(default_factory=list)
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    port_probes: list[PortProbe] = field(default_factory=list)
    closed_at: float | None = None
    remote: str = ""


# --------------------------------------------------------------------------- parsing helpers


def parse_reply(data: bytes) -> Response | None:
    """The first RTSP response in `data` (lab replies have no blank line), or None."""
    if not data:
        return None
    parser = RtspParser(role="client")
    try:
        messages = parser.feed(data)
    except RtspError:
        return None
    if not messages and parser.has_unterminated_lf():
        finished = parser.finish_unterminated()
        messages = [finished] if finished is not None else []
    for message in messages:
        if isinstance(message, Response):
            return message
        if isinstance(message, MessageError):
            return None
    return None


def parse_requests(data: bytes, lab_finish: bool = True) -> list[Request | MessageError]:
    """Every request in a client's byte stream (unterminated lab requests included)."""
    parser = RtspParser(role="server")
    out: list[Request | MessageError] = []
    for message in parser.feed(data):
        if isinstance(message, (Request, MessageError)):
            out.append(message)
    if lab_finish and parser.has_unterminated_lf():
        finished = parser.finish_unterminated()
        if finished is not None:
            out.append(finished)
    return out


def show(data: bytes, limit: int = 72) -> str:
    """Evidence for a one-line report: RTSP text as a Python literal, binary as hex."""
    if not data:
        return "(nothing)"
    head = data[:limit]
    text_like = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    more = "..." if len(data) > limit else ""
    if text_like:
        return repr(head.decode("ascii"))[1:-1] + more
    return head[:24].hex(" ") + (" ..." if len(data) > 24 else "")


# --------------------------------------------------------------------------- report


def select(items: Iterable[Item], only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
    """Item keys after --only/--skip; a prefix ('rtp') selects every 'rtp.*' item."""
    only, skip = list(only), list(skip)
    keys = [i.key for i in items]
    known = set(keys)
    for name in only + skip:
        if name not in known and not any(k.startswith(name + ".") for k in keys):
            raise ValueError(f"unknown rubric item {name!r} (items: {', '.join(keys)})")

    def matches(key: str, names: list[str]) -> bool:
        return any(key == n or key.startswith(n + ".") for n in names)

    return [k for k in keys if (not only or matches(k, only)) and not matches(k, skip)]


def score(results: list[Result]) -> tuple[int, int]:
    """(items passed, items applicable)."""
    applicable = [r for r in results if r.verdict is not Verdict.NA]
    return sum(r.verdict is Verdict.PASS for r in applicable), len(applicable)


def exit_status(results: list[Result]) -> int:
    """0 when every required item passes (or is N/A), else 1."""
    return 1 if any(r.verdict is Verdict.FAIL and r.item.required for r in results) else 0


def format_text(results: list[Result], title: str) -> str:
    width = max((len(r.key) for r in results), default=10)
    lines = [title]
    for r in results:
        optional = "" if r.item.required else " (advisory)"
        lines.append(f"{r.verdict.value:4} {r.key:<{width}}  {r.reason}{optional}")
        if r.evidence and r.verdict is not Verdict.PASS:
            lines.append(f"     {'':<{width}}  evidence: {show(r.evidence)}")
    passed, applicable = score(results)
    lines.append(f"score: {passed}/{applicable}" + (" (a required item failed)" if exit_status(results) else ""))
    return "\n".join(lines)


def format_json(results: list[Result], target: str, mode: str) -> str:
    passed, applicable = score(results)
    return json.dumps({
        "mode": mode, "target": target, "score": passed, "applicable": applicable,
        "exit_status": exit_status(results),
        "items": [{"key": r.key, "title": r.item.title, "required": r.item.required,
                   "verdict": r.verdict.value, "reason": r.reason, "evidence": r.evidence.hex()}
                  for r in results],
    }, indent=2)
