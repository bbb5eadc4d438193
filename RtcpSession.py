"""RTCP for one RTP session, both roles, pure: report building, intervals and what the peer's
reports say (RFC 3550 §6, RFC 3611 XR RRTR/DLRR).

* :class:`RtcpSender` -- the server's side: SR + SDES CNAME (+ XR DLRR answering the receiver's
  RRTR) (§6.4.1, RFC 3611 §4.5), BYE (§6.6), the §6.3 interval with senders' share, and the
  receiver's RR blocks about our SSRC (loss, jitter, RTT: §6.4.1 Fig. 2).
* :class:`RtcpReceiver` -- the player's side: RR (+ report block from an RtpStats
  SequenceTracker) + SDES CNAME + XR RRTR [+ BYE] (§6.4.2, RFC 3611 §4.4), the §6.3 receiver
  interval, and the sender's SR (NTP <-> RTP mapping, counts), XR DLRR (RTT) and BYE.

No sockets, no clocks of their own: every call is given the wall clock (``wall``, Unix seconds:
NTP timestamps) and a monotonic clock (``now``: intervals, LSR/DLSR delays), so tests drive them
with captured packets (tests/fixtures/rtcp_*.bin) and fixed times. Streamer.StreamSession and
ReceiveEngine do the sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from RtcpPacket import (RTCP_MIN_TIME, Bye, ExtendedReport, RandomSource, ReceiverReport,
                        ReportBlock, RtcpError, SenderReport, SourceDescription, XrBlock,
                        XrBlockType, dlsr_from_seconds, ntp_from_unix, ntp_middle32,
                        parse_compound, rtcp_interval, rtt_seconds, serialize_compound,
                        update_avg_rtcp_size)
from RtpPacket import JPEG_CLOCK_RATE

log = logging.getLogger(__name__)

RRTR_MEMORY = 16      # our last RRTR times kept to match the sender's DLRR answers
REPORTER_MEMORY = 256  # receivers remembered per stream: a group flooded with SSRCs stays bounded


class Origin(IntEnum):
    """Who sent a compound RTCP packet the sender took (false only for a malformed one)."""

    MALFORMED = 0   # dropped, logged
    OWN = 1         # our own report looped back by the group (IP_MULTICAST_LOOP; RFC 3550 §8.2)
    PEER = 2        # a receiver's


@dataclass
class Reporter:
    """What one receiver's latest report block about our SSRC said (RFC 3550 §6.4.1); on a
    multicast group there is one per member heard (§6.2, §6.3.2)."""

    reports: int = 0
    fraction_lost: float = 0.0
    cumulative_lost: int = 0
    jitter_ms: float = 0.0


class RtcpSender:
    """The sending side of one RTP stream (the server's session)."""

    def __init__(self, ssrc: int, cname: str, tool: str, clock_rate: int = JPEG_CLOCK_RATE,
                 label: str = "", logger: logging.Logger = log) -> None:
        self.ssrc = ssrc
        self.log = logger                    # the owner's logger: its log lines keep their name
        self.label = label                   # for log lines: "session 1234"
        self.cname = cname
        self.tool = tool
        self.clock_rate = clock_rate
        self.initial = True                  # §6.3: the first interval is halved
        self.avg_rtcp_size = 0.0
        # what the receiver's reports said (§6.4.1)
        self.rr_count = 0
        self.rr_fraction_lost = 0.0
        self.rr_cumulative_lost = 0
        self.rr_jitter_ms = 0.0
        self.rtt_ms: float | None = None
        self.last_rrtr: tuple[int, int, float] | None = None  # (reporter SSRC, LRR, monotonic arrival)
        self.reporters: dict[int, Reporter] = {}  # reporter SSRC -> its latest block (§6.4.1)
        self.own_echoes = 0                  # our own reports heard back from a group (§8.2)

    # -- building ------------------------------------------------------------------------
    def report(self, wall: float, now: float, rtp_timestamp: int, packets_sent: int,
               octets_sent: int) -> list[Any]:
        """SR + SDES CNAME (RFC 3550 §6.1, §6.4.1): the NTP time ``wall`` is RTP time
        ``rtp_timestamp``. When the receiver sent an RRTR, an XR DLRR block answers it (RFC 3611
        §4.5) so that a receive-only client can compute its round-trip time too."""
        sr = SenderReport(self.ssrc, ntp_from_unix(wall), rtp_timestamp & 0xFFFFFFFF,
                          packets_sent & 0xFFFFFFFF, octets_sent & 0xFFFFFFFF)
        packets: list[Any] = [sr, SourceDescription.cname(self.ssrc, self.cname, tool=self.tool)]
        if self.last_rrtr is not None:
            reporter, lrr, received = self.last_rrtr
            packets.append(ExtendedReport(self.ssrc, [XrBlock.dlrr([(reporter, lrr,
                                                                     dlsr_from_seconds(now - received))])]))
        return packets

    def sender_report(self, wall: float, now: float, rtp_timestamp: int, packets_sent: int,
                      octets_sent: int) -> bytes:
        return serialize_compound(self.report(wall, now, rtp_timestamp, packets_sent, octets_sent))

    def bye(self, reason: str, wall: float, now: float, rtp_timestamp: int, packets_sent: int,
            octets_sent: int) -> bytes:
        """The report plus BYE (RFC 3550 §6.6): the stream ends; ffmpeg/GStreamer end on it."""
        packets = self.report(wall, now, rtp_timestamp, packets_sent, octets_sent)
        return serialize_compound(packets + [Bye([self.ssrc], reason.encode("utf-8"))])

    def sent(self, size: int) -> None:
        """A compound report of ``size`` octets went out (§6.3.3 avg_rtcp_size)."""
        self.avg_rtcp_size = update_avg_rtcp_size(self.avg_rtcp_size, size)

    def interval(self, bandwidth: float, members: int, rng: RandomSource, now: float = 0.0) -> float:
        """Next SR interval (RFC 3550 §6.3, A.7): 5% of the stream's ``bandwidth`` (octets/s),
        senders' 25%, among ``members`` (receivers + us)."""
        if not self.avg_rtcp_size:
            # the report's size does not depend on its values: a zero report measures it
            self.avg_rtcp_size = len(self.sender_report(0.0, now, 0, 0, 0)) + 28.0
        interval = rtcp_interval(members=members, senders=1, rtcp_bw=0.05 * bandwidth, we_sent=True,
                                 avg_rtcp_size=self.avg_rtcp_size, initial=self.initial, rng=rng)
        self.initial = False
        return interval

    # -- what the receiver said -----------------------------------------------------------
    def receive(self, data: bytes, wall: float, now: float) -> Origin:
        """Take a compound RTCP packet from the receiver: RR blocks about our SSRC (loss, jitter,
        RTT, §6.4), XR RRTR (remembered for the next DLRR), BYE (logged). Our own reports, heard
        back from a multicast group, are recognised by their SSRC and only counted (§8.2).
        Returns who sent it; Origin.MALFORMED (false): dropped, logged."""
        arrival = ntp_middle32(ntp_from_unix(wall))
        try:
            packets = parse_compound(data)
        except RtcpError as exc:
            self.log.info("%s: bad RTCP dropped: %s", self.label, exc)
            return Origin.MALFORMED
        first = packets[0] if packets else None
        if isinstance(first, (ReceiverReport, SenderReport)) and first.ssrc == self.ssrc:
            self.own_echoes += 1
            return Origin.OWN
        for packet in packets:
            if isinstance(packet, (ReceiverReport, SenderReport)):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._report_block(packet.ssrc, block, arrival)
            elif isinstance(packet, ExtendedReport):
                for xr in packet.blocks:
                    if xr.block_type == XrBlockType.RRTR:
                        self.last_rrtr = (packet.ssrc, ntp_middle32(xr.ntp_timestamp), now)
            elif isinstance(packet, Bye):
                self.log.info("%s: receiver sent BYE (%s)", self.label, packet.reason_text or "no reason")
        return Origin.PEER

    def _report_block(self, reporter: int, block: ReportBlock, arrival: int) -> None:
        self.rr_count += 1
        self.rr_fraction_lost = block.fraction_lost / 256.0
        self.rr_cumulative_lost = block.packets_lost
        self.rr_jitter_ms = block.jitter * 1000.0 / self.clock_rate
        rtt = rtt_seconds(arrival, block.lsr, block.dlsr)
        self.rtt_ms = None if rtt is None else rtt * 1000.0
        seen = self.reporters.pop(reporter, None) or Reporter()
        self.reporters[reporter] = seen  # the most recent last: the oldest is forgotten first
        while len(self.reporters) > REPORTER_MEMORY:
            del self.reporters[next(iter(self.reporters))]
        seen.reports += 1
        seen.fraction_lost, seen.cumulative_lost = self.rr_fraction_lost, self.rr_cumulative_lost
        seen.jitter_ms = self.rr_jitter_ms
        self.log.info("%s: RR fraction lost %.1f%%, cumulative lost %d, jitter %.2f ms, RTT %s, from SSRC %08X",
                      self.label, 100 * self.rr_fraction_lost, self.rr_cumulative_lost, self.rr_jitter_ms,
                      "-" if self.rtt_ms is None else f"{self.rtt_ms:.2f} ms", reporter)


@dataclass(frozen=True)
class ReceivedReport:
    """What one compound packet from the sender told the receiver."""

    sender_report: SenderReport | None = None   # the sender's SR (about the SSRC we follow)
    bye: str | None = None                      # the sender left: its reason ('end of stream')


class RtcpReceiver:
    """The receiving side of one RTP session (the player): our reports and the sender's."""

    def __init__(self, ssrc: int, cname: str, tool: str, rng: RandomSource,
                 min_time: float = RTCP_MIN_TIME, logger: logging.Logger = log) -> None:
        self.ssrc = ssrc                     # ours (RFC 3550 §8: random)
        self.log = logger
        self.cname = cname
        self.tool = tool
        self.rng = rng
        self.min_time = min_time
        self.reset()

    def reset(self) -> None:
        """A new session (reconnect): forget the sender's reports and start the schedule again."""
        self.initial = True
        self.avg_rtcp_size = 0.0
        self.rrtr_sent: dict[int, float] = {}    # LRR (NTP middle 32) -> monotonic send time
        self.sr: tuple[int, int, float] | None = None  # (ntp64, rtp ts, monotonic arrival)
        self.sr_received = 0
        self.errors = 0
        self.rtt_ms: float | None = None
        self.sender_packets: int | None = None
        self.sender_octets: int | None = None
        self.members: set[int] = set()           # SSRCs heard reporting on a multicast group

    # -- building ------------------------------------------------------------------------
    def report(self, wall: float, now: float, block: ReportBlock | None,
               bye: str | None = None, probe: bool = False) -> bytes:
        """RR (+ ``block``) + SDES CNAME + XR RRTR [+ BYE] (RFC 3550 §6.1, RFC 3611 §4.4).
        ``probe`` builds a same-sized datagram without remembering its RRTR."""
        ntp = ntp_from_unix(wall)
        packets: list[Any] = [ReceiverReport(self.ssrc, [block] if block else []),
                              SourceDescription.cname(self.ssrc, self.cname, tool=self.tool),
                              ExtendedReport(self.ssrc, [XrBlock.rrtr(ntp)])]
        if bye is not None:
            packets.append(Bye([self.ssrc], bye.encode("utf-8")))
        if not probe:
            self.rrtr_sent[ntp_middle32(ntp)] = now
            while len(self.rrtr_sent) > RRTR_MEMORY:
                del self.rrtr_sent[next(iter(self.rrtr_sent))]
        return serialize_compound(packets)

    def lsr_dlsr(self, now: float) -> tuple[int, int]:
        """LSR and DLSR for our report block (§6.4.1): the last SR's NTP middle 32 bits and
        the time since it arrived in 1/65536 s; (0, 0) before any SR."""
        if self.sr is None:
            return 0, 0
        return ntp_middle32(self.sr[0]), dlsr_from_seconds(now - self.sr[2])

    def sent(self, size: int) -> None:
        """A compound report of ``size`` octets went out (§6.3.3 avg_rtcp_size)."""
        self.avg_rtcp_size = update_avg_rtcp_size(self.avg_rtcp_size, size)

    def interval(self, session_bw: float, wall: float, now: float, with_block: bool,
                 group: bool = False) -> float:
        """Our next report interval (RFC 3550 §6.3, A.7): a receiver among 2 members (in a
        multicast ``group``: every reporter heard, §6.2/§6.3.2), 1 sender, sharing 75% of 5% of
        ``session_bw`` (octets/s), at least ``min_time`` (halved for the first report),
        randomized [0.5, 1.5] / (e - 3/2)."""
        if not self.avg_rtcp_size:
            probe_block = ReportBlock(0) if with_block else None
            self.avg_rtcp_size = len(self.report(wall, now, probe_block, probe=True)) + 28.0
        members = max(2, len(self.members | {self.ssrc}) + 1) if group else 2
        interval = rtcp_interval(members=members, senders=1, rtcp_bw=0.05 * session_bw, we_sent=False,
                                 avg_rtcp_size=self.avg_rtcp_size, initial=self.initial,
                                 rng=self.rng, min_time=self.min_time)
        self.initial = False
        return interval

    # -- what the sender said -------------------------------------------------------------
    def receive(self, data: bytes, wall: float, now: float, sender: int | None,
                group: bool = False) -> ReceivedReport | None:
        """A compound RTCP datagram from the sender (``sender``: the SSRC we follow, None before
        the first RTP packet): SR clock mapping and counts, the XR DLRR answer to our RRTR (RTT,
        RFC 3611 §4.5), BYE; on a multicast ``group`` the other receivers' RRs, counted as
        members. Malformed ones are counted in ``errors`` and dropped (RFC 3550 A.2): None."""
        arrival = ntp_middle32(ntp_from_unix(wall))
        try:
            packets = parse_compound(data, strict=False)
        except ValueError as exc:
            self.errors += 1
            self.log.debug("malformed RTCP dropped: %s", exc)
            return None
        self.avg_rtcp_size = update_avg_rtcp_size(self.avg_rtcp_size or len(data) + 28.0, len(data))
        sr: SenderReport | None = None
        bye: str | None = None
        for p in packets:
            if group and isinstance(p, ReceiverReport):
                self.members.add(p.ssrc)  # another viewer of the group (or our own, looped back)
                continue
            if isinstance(p, SenderReport):
                if sender is not None and p.ssrc != sender:
                    continue
                sr = p
                self.sr = (p.ntp_timestamp, p.rtp_timestamp, now)
                self.sender_packets, self.sender_octets = p.packet_count, p.octet_count
                self.sr_received += 1
            elif isinstance(p, ExtendedReport):
                for block in p.blocks:
                    if block.block_type == XrBlockType.DLRR:
                        self._dlrr(block, arrival)
            elif isinstance(p, Bye) and (sender is None or sender in p.ssrcs):
                bye = p.reason_text or "end of stream"
        return ReceivedReport(sr, bye)

    def _dlrr(self, block: XrBlock, arrival: int) -> None:
        try:
            items = block.dlrr_items
        except ValueError as exc:
            self.errors += 1
            self.log.debug("bad XR DLRR block: %s", exc)
            return
        for ssrc, lrr, dlrr in items:
            if ssrc == self.ssrc and lrr in self.rrtr_sent:
                rtt = rtt_seconds(arrival, lrr, dlrr)    # RFC 3611 §4.5: RTT = A - LRR - DLRR
                if rtt is not None:
                    self.rtt_ms = rtt * 1000.0
