"""The lab checker's rubric: verdicts over recorded RTSP exchanges and RTP packets (no sockets).

`tools/labcheck.py` drives a student's server (or waits for a student's client), records
what went over the wire with arrival times, and hands the recordings to `check_server()`
or `check_client()` here.  Each rubric item gets PASS / FAIL / N/A, a one-line reason a
student can act on, and the bytes that prove it.  The wire formats are read with the
project's own parsers (RtpPacket, RtspMessage, RtspHeaders, RtpJpeg).  The rubric items,
the recordings, the `Result`s and the report live in LabEvidence.py; the checks live here.

Server rubric: RFC 2326 replies (status line, CSeq, one Session id; 454/455 when the server
speaks RTSP 1.0), RFC 3550 section 5.1 header fields on every packet, RFC 2435 / whole-JPEG
frames that decode, pacing, PAUSE / PLAY / TEARDOWN behaviour, a second client at the same
time and a client that vanishes.  Client rubric: the requests a lab client sends (request
line, CSeq, Session, Transport, state), its RTP port bound while playing and released after
TEARDOWN.
"""

from __future__ import annotations

import io
import logging
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable

from LabEvidence import (CLIENT_ITEMS, SERVER_ITEMS, Arrival, ClientRecording, Exchange, PlaySession, PortProbe,
                         Result, ServerRecording, Verdict, parse_requests)
from RtpJpeg import JpegDepacketizer, JpegError, parse_payload
from RtpPacket import PT_JPEG, RTP_VERSION, JPEG_CLOCK_RATE, RtpPacket, seq_diff, ts_diff
from RtspHeaders import Transport, parse_session
from RtspMessage import InterleavedFrame, MessageError, Method, Request, Response, RtspError
from RtspParser import RtspParser
from RtspSession import SESSIONLESS, State, next_state

log = logging.getLogger(__name__)

PAUSE_STOP_LIMIT = 0.2      # the rubric: RTP stops within 200 ms of PAUSE / TEARDOWN
PACING_MEAN_TOLERANCE = 0.10
DEFAULT_JITTER_LIMIT = 0.020


def _pass(key: str, reason: str, evidence: bytes = b"") -> Result:
    return Result(key, Verdict.PASS, reason, evidence)


def _fail(key: str, reason: str, evidence: bytes = b"") -> Result:
    return Result(key, Verdict.FAIL, reason, evidence)


def _na(key: str, reason: str, evidence: bytes = b"") -> Result:
    return Result(key, Verdict.NA, reason, evidence)


# --------------------------------------------------------------------------- packets and frames


@dataclass
class Packet:
    """An RTP packet as the checker sees it: raw fields, the parsed packet, frame start."""

    arrival: Arrival
    version: int
    flags: int                          # P, X, CC bits of the first octet
    packet: RtpPacket | None            # parsed with the version forced to 2
    error: str = ""
    whole_jpeg: bool = False            # the payload is one whole JPEG (the lab dialect)
    fragment_offset: int | None = None  # RFC 2435 fragment offset

    @property
    def starts_frame(self) -> bool:
        return self.whole_jpeg or self.fragment_offset == 0

    @property
    def data(self) -> bytes:
        return self.arrival.data


def read_packet(arrival: Arrival) -> Packet:
    data = arrival.data
    if len(data) < 12:
        return Packet(arrival, data[0] >> 6 if data else 0, 0, None, f"{len(data)}-byte datagram")
    version = data[0] >> 6
    fixed = bytes((RTP_VERSION << 6 | data[0] & 0x3F,)) + data[1:]  # judge the rest with V forced to 2
    try:
        packet = RtpPacket.parse(fixed)
    except ValueError as exc:
        return Packet(arrival, version, data[0] & 0x3F, None, str(exc))
    result = Packet(arrival, version, data[0] & 0x3F, packet)
    payload = packet.payload
    if payload[:3] == b"\xff\xd8\xff":
        result.whole_jpeg = True
    else:
        try:
            result.fragment_offset = parse_payload(payload).fragment_offset
        except JpegError as exc:
            result.error = f"payload is neither a JPEG nor RFC 2435: {exc.reason}"
    return result


def frames_of(packets: list[Packet]) -> list[list[Packet]]:
    """Packets grouped into frames: a frame starts at a whole JPEG or at fragment offset 0.

    Neither the marker bit nor the timestamp is trusted here: those are what is graded.
    """
    frames: list[list[Packet]] = []
    for p in packets:
        if p.packet is None:
            continue
        if p.starts_frame or not frames:
            frames.append([p])
        else:
            frames[-1].append(p)
    return frames


def frame_jpeg(frame: list[Packet]) -> bytes | None:
    """The JPEG a frame carries (whole payload, or RFC 2435 reassembly), or None."""
    first = frame[0].packet
    assert first is not None
    if frame[0].whole_jpeg:
        return first.payload
    depacketizer = JpegDepacketizer()
    out = None
    for index, p in enumerate(frame):
        assert p.packet is not None
        last = index == len(frame) - 1
        # the grouping, not the (graded) marker, says where the frame ends
        out = depacketizer.push(p.packet.payload, first.rtp_timestamp, last) or out
    return out


def decodes(jpeg: bytes) -> str:
    """'' when Pillow decodes the JPEG, else why not."""
    from PIL import Image  # a dependency of the project; imported late so --help stays fast
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.load()
    except Exception as exc:  # Pillow raises many types for bad data; all mean "does not decode"
        return f"{type(exc).__name__}: {exc}"
    return ""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --------------------------------------------------------------------------- server rubric


class ServerChecker:
    """Runs the server rubric over one ServerRecording."""

    def __init__(self, rec: ServerRecording, jitter_limit: float = DEFAULT_JITTER_LIMIT) -> None:
        self.rec = rec
        self.jitter_limit = jitter_limit
        self.packets = [read_packet(a) for a in rec.main.packets]
        self.frames = frames_of(self.packets)
        self.interval = 1.0 / rec.fps
        self._movie_index: dict[bytes, int] | None = None
        if rec.movie:
            self._movie_index = {}
            for index, frame in enumerate(rec.movie):
                self._movie_index.setdefault(frame, index)
        self.marks = self._marks()

    # when each request of the main session went out
    def _marks(self) -> dict[str, float]:
        main = self.rec.main
        marks = {}
        for name, method, nth in (("play", "PLAY", 0), ("pause", "PAUSE", 0), ("resume", "PLAY", 1),
                                  ("teardown", "TEARDOWN", 0)):
            e = main.exchange(method, nth)
            if e is not None:
                marks[name] = e.sent
        return marks

    def _all_exchanges(self) -> list[Exchange]:
        rec = self.rec
        sessions = [rec.main, rec.again]  # the second and the post-vanish clients are graded on their own
        return [e for s in sessions for e in s.exchanges]

    # -- replies
    def rtsp_status(self) -> Result:
        key = "rtsp.status"
        exchanges = self._all_exchanges()
        if not exchanges:
            return _fail(key, "no request could be sent: " + (self.rec.main.error or "no connection"))
        for e in exchanges:
            if not e.reply:
                return _fail(key, f"no reply to {e.method} ({e.error or 'nothing read'})", e.request)
            first_line = e.reply.split(b"\n", 1)[0].rstrip(b"\r")
            if first_line != b"RTSP/1.0 200 OK":
                return _fail(key, f"{e.method} answered {first_line.decode('latin-1')!r}, "
                             "expected 'RTSP/1.0 200 OK'", e.reply)
        return _pass(key, f"{len(exchanges)} replies, each 'RTSP/1.0 200 OK'", exchanges[0].reply)

    def rtsp_cseq(self) -> Result:
        key = "rtsp.cseq"
        checked = 0
        for e in self._all_exchanges():
            if not e.reply:
                continue
            want = parse_requests(e.request)
            want_cseq = want[0].cseq if want and isinstance(want[0], Request) else None
            reply = e.response()
            got = reply.cseq if reply is not None else None
            if got != want_cseq:
                raw = reply.headers.get("CSeq") if reply is not None else None
                return _fail(key, f"{e.method} sent CSeq {want_cseq}, the reply has "
                             f"{'no CSeq' if raw is None else 'CSeq ' + repr(raw)}", e.reply)
            checked += 1
        if not checked:
            return _na(key, "no replies to check")
        return _pass(key, f"CSeq echoed in all {checked} replies")

    def rtsp_session(self) -> Result:
        key = "rtsp.session"
        checked = 0
        for session in (self.rec.main, self.rec.again):
            ids: list[str] = []
            for e in session.exchanges:
                reply = e.response()
                if reply is None:
                    continue
                value = reply.headers.get("Session")
                if value is None:
                    return _fail(key, f"the reply to {e.method} has no Session header", e.reply)
                try:
                    sid, _ = parse_session(value)
                except RtspError:
                    return _fail(key, f"the reply to {e.method} has a malformed Session {value!r}", e.reply)
                if ids and sid != ids[0]:
                    return _fail(key, f"Session changed from {ids[0]} to {sid} in the reply to {e.method}",
                                 e.reply)
                ids.append(sid)
                checked += 1
        if not checked:
            return _na(key, "no replies to check")
        return _pass(key, f"one Session id per session across {checked} replies")

    def rtsp_errors(self) -> Result:
        key = "rtsp.errors"
        s = self.rec.rtsp10
        if s is None:
            return _na(key, "not probed")
        options = s.exchange("OPTIONS")
        reply = options.response() if options else None
        if reply is None or reply.status != 200:
            seen = options.reply if options else b""
            return _na(key, "the server does not speak RTSP 1.0 (OPTIONS got "
                       + (f"{reply.status}" if reply else "no reply") + "): lab dialect only", seen)
        for method, nth, want, what in (("PLAY", 0, 454, "PLAY with a Session id it never gave"),
                                        ("PAUSE", 0, 455, "PAUSE before PLAY")):
            e = s.exchange(method, nth)
            if e is None:
                return _fail(key, f"could not send {what}: {s.error}")
            got = e.response()
            if got is None:
                return _fail(key, f"no reply to {what}", e.request)
            if got.status != want:
                return _fail(key, f"{what} answered {got.status}, expected {want}", e.reply)
        return _pass(key, "454 for an unknown session, 455 for PAUSE before PLAY",
                     s.exchanges[-1].reply if s.exchanges else b"")

    # -- RTP header
    def _need_packets(self, key: str) -> Result | None:
        if not self.packets:
            return _fail(key, "no RTP packet arrived after PLAY" + self._why_no_play())
        return None

    def _why_no_play(self) -> str:
        play = self.rec.main.exchange("PLAY")
        if play is None:
            return f" (PLAY was never sent: {self.rec.main.error or 'SETUP failed'})"
        if not play.reply:
            return " (PLAY got no reply)"
        return ""

    def rtp_version(self) -> Result:
        key = "rtp.version"
        if (r := self._need_packets(key)) is not None:
            return r
        for p in self.packets:
            if p.version != RTP_VERSION:
                bad = sum(1 for q in self.packets if q.version != RTP_VERSION)
                return _fail(key, f"version {p.version} in {bad} of {len(self.packets)} packets "
                             f"(first octet 0x{p.data[0]:02x}; V is its top 2 bits and must be 2)", p.data[:12])
        return _pass(key, f"V=2 in all {len(self.packets)} packets", self.packets[0].data[:12])

    def rtp_flags(self) -> Result:
        key = "rtp.flags"
        if (r := self._need_packets(key)) is not None:
            return r
        used = set()
        for p in self.packets:
            if p.packet is None:
                return _fail(key, f"header does not parse: {p.error}", p.data[:16])
            if p.error:
                return _fail(key, f"the payload is not where the header says: {p.error}", p.data[:16])
            if p.flags & 0x20:
                count = p.data[-1]
                if any(p.data[-count:-1]):
                    return _fail(key, f"P=1 but the last {count} octets (the count is the last octet, 0x{count:02x}) "
                                 "are payload data, not padding: the receiver cuts them off", p.data[:16])
                used.add("padding")
            if p.flags & 0x10:
                used.add("extension")
            if p.flags & 0x0F:
                used.add("CSRC")
        if used:
            return _pass(key, "flags set and consistent: " + ", ".join(sorted(used)), self.packets[0].data[:16])
        return _pass(key, f"P=0 X=0 CC=0 in all {len(self.packets)} packets")

    def rtp_pt(self) -> Result:
        key = "rtp.pt"
        if (r := self._need_packets(key)) is not None:
            return r
        for p in self.packets:
            if p.packet is not None and p.packet.payload_type != PT_JPEG:
                return _fail(key, f"payload type {p.packet.payload_type}, expected 26 (JPEG); "
                             f"second octet 0x{p.data[1]:02x} = M({p.data[1] >> 7}) PT({p.data[1] & 0x7F})",
                             p.data[:12])
        return _pass(key, "PT 26 on every packet")

    def _parsed(self) -> list[RtpPacket]:
        return [p.packet for p in self.packets if p.packet is not None]

    def rtp_seq(self) -> Result:
        key = "rtp.seq"
        if (r := self._need_packets(key)) is not None:
            return r
        parsed = self._parsed()
        for prev, cur in zip(parsed, parsed[1:]):
            step = seq_diff(cur.sequence_number, prev.sequence_number)
            if step != 1:
                what = "repeated" if step == 0 else f"jumped by {step}"
                return _fail(key, f"sequence number {what}: {prev.sequence_number} then {cur.sequence_number} "
                             "(must be +1 per packet, across PAUSE too)", cur.serialize()[:12])
        return _pass(key, f"{parsed[0].sequence_number}..{parsed[-1].sequence_number}, +1 per packet")

    def _frame_stamps(self) -> list[tuple[int, float]]:
        out = []
        for frame in self.frames:
            pkt = frame[0].packet
            assert pkt is not None
            out.append((pkt.rtp_timestamp, frame[0].arrival.time))
        return out

    def rtp_timestamp(self) -> Result:
        key = "rtp.timestamp"
        if (r := self._need_packets(key)) is not None:
            return r
        for frame in self.frames:
            stamps = {p.packet.rtp_timestamp for p in frame if p.packet is not None}
            if len(stamps) > 1:
                return _fail(key, f"one frame's packets carry {len(stamps)} timestamps (must share one)",
                             frame[-1].data[:12])
        frame_stamps = self._frame_stamps()
        for (prev, _), (cur, _) in zip(frame_stamps, frame_stamps[1:]):
            if ts_diff(cur, prev) <= 0:
                same = sum(1 for (a, _), (b, _) in zip(frame_stamps, frame_stamps[1:]) if a == b)
                what = "repeats" if cur == prev else "goes back"
                return _fail(key, f"timestamp {what}: {prev} then {cur} on consecutive frames "
                             f"({same} of {len(frame_stamps) - 1} frame steps repeat)", self.frames[1][0].data[:12])
        return _pass(key, f"{len(frame_stamps)} frames, each with a later timestamp")

    def rtp_clock(self) -> Result:
        key = "rtp.clock"
        if (r := self._need_packets(key)) is not None:
            return r
        first_segment = [s for s in self._frame_stamps() if s[1] < self.marks.get("pause", float("inf"))]
        if len(first_segment) < 3:
            return _na(key, "too few frames before PAUSE to measure")
        steps = [ts_diff(b, a) for (a, _), (b, _) in zip(first_segment, first_segment[1:])]
        if min(steps) <= 0:
            return _na(key, "timestamps do not advance (see rtp.timestamp)")
        span_ts = ts_diff(first_segment[-1][0], first_segment[0][0])
        span_t = first_segment[-1][1] - first_segment[0][1]
        rate = span_ts / span_t if span_t > 0 else 0.0
        per_frame = statistics.median(steps)
        want = JPEG_CLOCK_RATE / self.rec.fps
        if abs(rate - JPEG_CLOCK_RATE) <= 0.25 * JPEG_CLOCK_RATE:
            return _pass(key, f"{rate / 1000:.1f} kHz ({per_frame:.0f} per frame at {self.rec.fps:g} fps)")
        return _fail(key, f"timestamps count {rate:.0f} per second ({per_frame:.0f} per frame); JPEG uses "
                     f"90 kHz: {want:.0f} per frame at {self.rec.fps:g} fps", self.frames[1][0].data[:12])

    def rtp_ssrc(self) -> Result:
        key = "rtp.ssrc"
        if (r := self._need_packets(key)) is not None:
            return r
        parsed = self._parsed()
        for p in parsed:
            if p.ssrc != parsed[0].ssrc:
                return _fail(key, f"SSRC changed from {parsed[0].ssrc:#010x} to {p.ssrc:#010x}", p.serialize()[:12])
        return _pass(key, f"SSRC {parsed[0].ssrc:#010x} throughout")

    def rtp_marker(self) -> Result:
        key = "rtp.marker"
        if (r := self._need_packets(key)) is not None:
            return r
        complete = self.frames[:-1] if len(self.frames) > 1 else self.frames  # the last may be cut short
        for frame in complete:
            for index, p in enumerate(frame):
                assert p.packet is not None
                last = index == len(frame) - 1
                if last and not p.packet.marker:
                    unmarked = sum(1 for f in complete if f[-1].packet is not None and not f[-1].packet.marker)
                    return _fail(key, f"marker not set on a frame's last packet ({unmarked} of {len(complete)} "
                                 f"frames; second octet 0x{p.data[1]:02x}, M is its top bit)", p.data[:12])
                if not last and p.packet.marker:
                    return _fail(key, f"marker set on packet {index + 1} of a {len(frame)}-packet frame "
                                 "(only the last one may carry it)", p.data[:12])
        return _pass(key, f"M=1 on the last packet of all {len(complete)} frames")

    # -- payload
    def jpeg_decode(self) -> Result:
        key = "jpeg.decode"
        if (r := self._need_packets(key)) is not None:
            return r
        bad = [p for p in self.packets if p.packet is not None and p.error]
        if bad:
            return _fail(key, bad[0].error, bad[0].data[:24])
        complete = self.frames[:-1] if len(self.frames) > 1 else self.frames
        for number, frame in enumerate(complete):
            jpeg = frame_jpeg(frame)
            if jpeg is None:
                return _fail(key, f"frame {number + 1} does not reassemble (RFC 2435 fragments)", frame[0].data[:24])
            why = decodes(jpeg)
            if why:
                return _fail(key, f"frame {number + 1} ({len(jpeg)} bytes) does not decode: {why}", jpeg[:24])
        kind = "whole JPEG per packet" if self.frames[0][0].whole_jpeg else "RFC 2435 fragments"
        return _pass(key, f"{len(complete)} of {len(complete)} frames decode ({kind})", complete[0][0].data[12:24])

    # -- timing
    def pacing(self) -> Result:
        key = "pacing"
        if (r := self._need_packets(key)) is not None:
            return r
        end = self.marks.get("pause", float("inf"))
        times = [f[0].arrival.time for f in self.frames if f[0].arrival.time < end]
        if len(times) < 5:
            return _fail(key, f"only {len(times)} frames arrived before PAUSE")
        intervals = [b - a for a, b in zip(times, times[1:])]
        mean = statistics.fmean(intervals)
        p95 = _percentile([abs(i - self.interval) for i in intervals], 0.95)
        summary = (f"mean interval {mean * 1000:.1f} ms ({1 / mean:.1f} fps), p95 jitter {p95 * 1000:.1f} ms "
                   f"over {len(intervals)} intervals")
        if abs(mean - self.interval) > PACING_MEAN_TOLERANCE * self.interval:
            return _fail(key, f"{summary}; expected {self.interval * 1000:.0f} ms "
                         f"({self.rec.fps:g} fps) +-{PACING_MEAN_TOLERANCE:.0%}")
        if p95 > self.jitter_limit:
            return _fail(key, f"{summary}; p95 jitter must be <= {self.jitter_limit * 1000:.0f} ms")
        return _pass(key, summary)

    def _stops(self, key: str, mark: str, until: float, what: str) -> Result:
        if mark not in self.marks:
            return _fail(key, f"{what} was never sent" + self._why_no_play())
        start = self.marks[mark]
        e = self.rec.main.exchange("PAUSE" if mark == "pause" else "TEARDOWN")
        if e is not None and not e.reply:
            return _fail(key, f"no reply to {what}")
        late = self.rec.main.packets_between(start + PAUSE_STOP_LIMIT, until)
        if late:
            return _fail(key, f"{len(late)} RTP packets arrived more than {PAUSE_STOP_LIMIT * 1000:.0f} ms after "
                         f"{what} (the last {(late[-1].time - start) * 1000:.0f} ms after it)", late[-1].data[:12])
        before = self.rec.main.packets_between(start, start + PAUSE_STOP_LIMIT)
        last = f"last packet {(before[-1].time - start) * 1000:.0f} ms after it" if before else "no packet after it"
        return _pass(key, f"RTP stopped: {last}, none in the next {(until - start - PAUSE_STOP_LIMIT) * 1000:.0f} ms")

    def pause_stops(self) -> Result:
        return self._stops("pause.stops", "pause", self.marks.get("resume", self.rec.end), "PAUSE")

    def teardown_stops(self) -> Result:
        return self._stops("teardown.stops", "teardown", self.rec.end, "TEARDOWN")

    def _frame_number(self, frame: list[Packet]) -> int | None:
        if self._movie_index is None:
            return None
        jpeg = frame_jpeg(frame) if frame[0].whole_jpeg else None
        return self._movie_index.get(jpeg) if jpeg is not None else None

    def pause_resume(self) -> Result:
        key = "pause.resume"
        if "resume" not in self.marks:
            return _fail(key, "the second PLAY was never sent" + self._why_no_play())
        resume = self.marks["resume"]
        before = [f for f in self.frames if f[0].arrival.time < resume]
        after = [f for f in self.frames if f[0].arrival.time >= resume]
        if not before:
            return _fail(key, "no frame arrived before PAUSE")
        if not after:
            return _fail(key, "no frame arrived after the PLAY that follows PAUSE")
        last, first = before[-1], after[0]
        n_last, n_first = self._frame_number(last), self._frame_number(first)
        how = "by content"
        if n_last is None or n_first is None:
            # not the reference movie: count frames by the 90 kHz timestamp instead
            a, b = last[0].packet, first[0].packet
            assert a is not None and b is not None
            step = JPEG_CLOCK_RATE / self.rec.fps
            n_last, n_first = 0, round(ts_diff(b.rtp_timestamp, a.rtp_timestamp) / step)
            how = "by RTP timestamp"
            if n_first == 0 and a.rtp_timestamp == b.rtp_timestamp:
                return _na(key, "frames are not those of the reference movie and timestamps do not count frames")
        evidence = first[0].data[:12]
        if n_first == n_last + 1:
            return _pass(key, f"frame {n_last} before PAUSE, frame {n_first} after PLAY ({how})", evidence)
        if n_first == 0:
            return _fail(key, f"PLAY after PAUSE restarted the movie at frame 0 (paused after frame {n_last}, "
                         f"{how})", evidence)
        if n_first > n_last + 1:
            return _fail(key, f"PLAY after PAUSE skipped {n_first - n_last - 1} frames (frame {n_last} then "
                         f"{n_first}, {how})", evidence)
        return _fail(key, f"PLAY after PAUSE went back from frame {n_last} to {n_first} ({how})", evidence)

    # -- sessions
    def _served(self, session: PlaySession, what: str) -> tuple[bool, str, bytes]:
        """Did `session` get 200 to SETUP and PLAY, and RTP?"""
        if session.error and not session.exchanges:
            return False, f"{what}: {session.error}", b""
        for method in ("SETUP", "PLAY"):
            e = session.exchange(method)
            if e is None:
                return False, f"{what}: {method} not sent ({session.error or 'connection failed'})", b""
            reply = e.response()
            if reply is None:
                return False, f"{what}: no reply to {method} within {e.error or 'the timeout'}", e.request
            if reply.status != 200:
                return False, f"{what}: {method} answered {reply.status}", e.reply
        if not session.packets:
            return False, f"{what}: PLAY answered 200 but no RTP arrived", b""
        return True, f"{what}: SETUP, PLAY answered 200 and RTP arrived", session.packets[0].data[:12]

    def teardown_new(self) -> Result:
        key = "teardown.new"
        e = self.rec.again.exchange("SETUP")
        if e is None:
            return _fail(key, f"new connection after TEARDOWN failed: {self.rec.again.error}")
        reply = e.response()
        if reply is None or reply.status != 200:
            return _fail(key, "SETUP on a new connection after TEARDOWN got "
                         + (f"{reply.status}" if reply else f"no reply ({e.error})"), e.reply or e.request)
        return _pass(key, "SETUP on a new connection after TEARDOWN answered 200", e.reply)

    def concurrent(self) -> Result:
        key = "concurrent"
        ok, why, evidence = self._served(self.rec.second, "second client while the first plays")
        if ok and not self.rec.again.packets:
            return _fail(key, "the first client got no RTP while the second joined")
        return (_pass if ok else _fail)(key, why, evidence)

    def vanish(self) -> Result:
        ok, why, evidence = self._served(self.rec.after_vanish, "new client after one vanished without TEARDOWN")
        return (_pass if ok else _fail)("vanish", why, evidence)

    CHECKS: dict[str, Callable[["ServerChecker"], Result]] = {
        "rtsp.status": rtsp_status, "rtsp.cseq": rtsp_cseq, "rtsp.session": rtsp_session,
        "rtsp.errors": rtsp_errors, "rtp.version": rtp_version, "rtp.flags": rtp_flags, "rtp.pt": rtp_pt,
        "rtp.seq": rtp_seq, "rtp.timestamp": rtp_timestamp, "rtp.clock": rtp_clock, "rtp.ssrc": rtp_ssrc,
        "rtp.marker": rtp_marker, "jpeg.decode": jpeg_decode, "pacing": pacing, "pause.stops": pause_stops,
        "pause.resume": pause_resume, "teardown.stops": teardown_stops, "teardown.new": teardown_new,
        "concurrent": concurrent, "vanish": vanish,
    }


def check_server(rec: ServerRecording, keys: Iterable[str] | None = None,
                 jitter_limit: float = DEFAULT_JITTER_LIMIT) -> list[Result]:
    """The server rubric's results, in rubric order, for the selected item keys."""
    checker = ServerChecker(rec, jitter_limit)
    wanted = set(keys) if keys is not None else None
    return [ServerChecker.CHECKS[item.key](checker) for item in SERVER_ITEMS
            if wanted is None or item.key in wanted]


# --------------------------------------------------------------------------- client rubric


@dataclass
class _Seen:
    time: float
    raw: bytes
    request: Request | None
    error: str = ""


def _messages(chunks: list[tuple[float, bytes]], role: str) -> list[tuple[float, object, bytes]]:
    """(time, message, raw bytes) for each message in a recorded byte stream, as a peer framed it.

    A lab-dialect message with no blank line is complete when its read ends (the server's
    30 ms grace); interleaved '$' frames are left out.
    """
    parser = RtspParser(role=role)
    out: list[tuple[float, object, bytes]] = []
    pending = b""
    for t, data in chunks:
        pending += data
        messages: list[object] = list(parser.feed(data))
        if parser.has_unterminated_lf():
            finished = parser.finish_unterminated()
            if finished is not None:
                messages.append(finished)
        for message in messages:
            if isinstance(message, InterleavedFrame):
                continue
            raw, pending = _cut_raw(pending, message)
            out.append((t, message, raw))
    return out


def _cut_raw(pending: bytes, message: object) -> tuple[bytes, bytes]:
    """The bytes of `message` at the head of `pending` (best effort, for evidence)."""
    if isinstance(message, (Request, Response)):
        start = message.method.encode() if isinstance(message, Request) else b"RTSP/"
        at = pending.find(start)
        at = 0 if at < 0 else at
        nxt = pending.find(b"\n", at)
        # the message runs to the next start line of the same kind, or to the end
        rest_at = -1
        probe = nxt + 1 if nxt >= 0 else len(pending)
        for token in ([m.value.encode() + b" " for m in Method] if isinstance(message, Request) else [b"RTSP/1.0 "]):
            found = pending.find(b"\n" + token, probe - 1)
            if found >= 0 and (rest_at < 0 or found < rest_at):
                rest_at = found + 1
        if rest_at < 0:
            return pending[at:], b""
        return pending[at:rest_at], pending[rest_at:]
    return b"", pending


class ClientChecker:
    def __init__(self, rec: ClientRecording) -> None:
        self.rec = rec
        self.seen: list[_Seen] = []
        for t, message, raw in _messages(rec.received, "server"):
            if isinstance(message, Request):
                self.seen.append(_Seen(t, raw, message))
            elif isinstance(message, MessageError):
                self.seen.append(_Seen(t, raw, None, str(message.error)))
            elif isinstance(message, Response):
                self.seen.append(_Seen(t, raw, None, "a response where a request belongs"))
        self.replies = [(t, m if isinstance(m, Response) else None, raw)
                        for t, m, raw in _messages(rec.sent, "client")]

    def _none(self, key: str) -> Result | None:
        if not self.seen:
            return _fail(key, "the client sent no request")
        return None

    def request_line(self) -> Result:
        key = "client.request_line"
        if (r := self._none(key)) is not None:
            return r
        for s in self.seen:
            line = s.raw.split(b"\n", 1)[0]
            if s.request is None:
                return _fail(key, f"not a request: {s.error}", line)
            if s.request.known_method is None:
                return _fail(key, f"unknown method {s.request.method!r}", line)
            if s.request.version != "RTSP/1.0":
                return _fail(key, f"version {s.request.version!r}, expected RTSP/1.0", line)
        methods = " ".join(s.request.method for s in self.seen if s.request is not None)
        return _pass(key, f"{len(self.seen)} requests: {methods}", self.seen[0].raw.split(b"\n", 1)[0])

    def cseq(self) -> Result:
        key = "client.cseq"
        if (r := self._none(key)) is not None:
            return r
        prev = None
        for s in self.seen:
            if s.request is None:
                continue
            value = s.request.cseq
            if value is None:
                return _fail(key, f"{s.request.method} has no CSeq", s.raw)
            if prev is not None and value != prev + 1:
                return _fail(key, f"CSeq {prev} then {value} on {s.request.method} (must be +1 per request)", s.raw)
            prev = value
        return _pass(key, f"CSeq {self.seen[0].request.cseq if self.seen[0].request else '?'}..{prev}, +1 each")

    def _session_id(self) -> tuple[str | None, int]:
        """The Session id of the first successful SETUP reply, and that reply's index."""
        for index, (_, reply, _) in enumerate(self.replies):
            if reply is not None and reply.status == 200 and reply.headers.get("Session") and index < len(self.seen):
                req = self.seen[index].request
                if req is not None and req.method == Method.SETUP:
                    try:
                        return parse_session(reply.headers["Session"])[0], index
                    except RtspError:
                        return None, index
        return None, -1

    def session(self) -> Result:
        key = "client.session"
        if (r := self._none(key)) is not None:
            return r
        sid, at = self._session_id()
        if sid is None:
            return _na(key, "no SETUP got a Session id")
        checked = 0
        for s in self.seen[at + 1:]:
            req = s.request
            if req is None or req.known_method in SESSIONLESS:
                continue
            value = req.headers.get("Session")
            if value is None:
                return _fail(key, f"{req.method} after SETUP has no Session header (the server gave {sid})", s.raw)
            try:
                got = parse_session(value)[0]
            except RtspError:
                got = value
            if got != sid:
                return _fail(key, f"{req.method} sent Session {got}, the server gave {sid}", s.raw)
            checked += 1
        if not checked:
            return _na(key, "no request after SETUP needed the Session")
        return _pass(key, f"Session {sid} echoed on {checked} requests")

    def transport(self) -> Result:
        key = "client.transport"
        setups = [s for s in self.seen if s.request is not None and s.request.method == Method.SETUP]
        if not setups:
            return _fail(key, "the client never sent SETUP")
        for s in setups:
            value = s.request.headers.get("Transport") if s.request else None
            if value is None:
                return _fail(key, "SETUP has no Transport header", s.raw)
            try:
                transports = Transport.parse_list(value)
            except RtspError as exc:
                return _fail(key, f"Transport {value!r} does not parse: {exc}", s.raw)
            if not any(t.client_port or t.interleaved for t in transports):
                return _fail(key, f"Transport {value!r} has no client_port", s.raw)
        t = Transport.parse_list(setups[0].request.headers["Transport"])[0]  # type: ignore[union-attr]
        where = f"client_port {t.client_port[0]}" if t.client_port else f"interleaved {t.interleaved}"
        return _pass(key, f"Transport with {where}" + (" (the lab's form)" if t.lab else ""), setups[0].raw)

    def state(self) -> Result:
        key = "client.state"
        if (r := self._none(key)) is not None:
            return r
        state = State.INIT
        for index, s in enumerate(self.seen):
            req = s.request
            if req is None or req.known_method is None or req.known_method in SESSIONLESS:
                continue
            try:
                after = next_state(state, req.known_method)
            except RtspError:
                return _fail(key, f"{req.method} sent in state {state.value}", s.raw)
            reply = self.replies[index][1] if index < len(self.replies) else None
            if reply is not None and reply.status == 200:
                state = after
        return _pass(key, f"every request valid in its state (ended in {state.value})")

    def _probes(self, state: str) -> list[PortProbe]:
        return [p for p in self.rec.port_probes if p.state == state]

    def rtp_port(self) -> Result:
        key = "client.rtp_port"
        probes = self._probes("PLAYING")
        if not probes:
            return _fail(key, "the client never reached PLAYING") if not any(
                s.request is not None and s.request.method == Method.PLAY for s in self.seen) else \
                _na(key, "the client left PLAYING before the port could be probed")
        if all(p.bound is None for p in probes):
            return _na(key, f"client on another host ({self.rec.remote}): its port cannot be probed from here")
        if any(p.bound is False for p in probes):
            return _fail(key, "nothing was bound to the client's RTP port while PLAYING (RTP sent there is lost)")
        known = [p for p in probes if p.queued is not None and p.drops is not None]
        if len(known) >= 2:
            dropped = known[-1].drops - known[0].drops  # type: ignore[operator]
            if dropped > 0:
                return _fail(key, f"the RTP port is bound but not read: {dropped} datagrams dropped because its "
                             f"receive queue was full ({known[-1].queued} bytes waiting)")
            tail = [p for p in known if p.time >= known[-1].time - 1.0]
            queued = [p.queued or 0 for p in tail]
            if (len(tail) >= 5 and tail[-1].time - tail[0].time >= 0.8 and min(queued) > 0
                    and queued == sorted(queued) and queued[-1] - queued[0] > 20000):
                return _fail(key, f"the RTP port is bound but not read: its receive queue grew from {queued[0]} to "
                             f"{queued[-1]} bytes in {tail[-1].time - tail[0].time:.1f} s")
            most = max(p.queued or 0 for p in known)
            return _pass(key, f"RTP port bound and read in {len(probes)} probes while PLAYING "
                         f"(at most {most} bytes waiting, none dropped)")
        return _pass(key, f"RTP port bound in {len(probes)} probes while PLAYING")

    def teardown(self) -> Result:
        key = "client.teardown"
        tears = [s for s in self.seen if s.request is not None and s.request.method == Method.TEARDOWN]
        if not tears:
            return _fail(key, "the client disconnected without TEARDOWN")
        probes = self._probes("AFTER_TEARDOWN")
        if not probes or all(p.bound is None for p in probes):
            return _pass(key, "TEARDOWN sent (the RTP port could not be probed)", tears[0].raw)
        if probes[-1].bound:
            return _fail(key, f"the RTP port was still bound {probes[-1].time - tears[0].time:.1f} s after TEARDOWN",
                         tears[0].raw)
        released = next(p.time for p in probes if not p.bound)
        return _pass(key, f"TEARDOWN sent; RTP port released {max(0.0, released - tears[0].time) * 1000:.0f} ms "
                     "after it", tears[0].raw)

    CHECKS: dict[str, Callable[["ClientChecker"], Result]] = {
        "client.request_line": request_line, "client.cseq": cseq, "client.session": session,
        "client.transport": transport, "client.state": state, "client.rtp_port": rtp_port,
        "client.teardown": teardown,
    }


def check_client(rec: ClientRecording, keys: Iterable[str] | None = None) -> list[Result]:
    wanted = set(keys) if keys is not None else None
    if not rec.remote:
        return [_fail(item.key, "no client connected before the timeout") for item in CLIENT_ITEMS
                if wanted is None or item.key in wanted]
    checker = ClientChecker(rec)
    return [ClientChecker.CHECKS[item.key](checker) for item in CLIENT_ITEMS
            if wanted is None or item.key in wanted]
