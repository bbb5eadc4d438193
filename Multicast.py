"""Multicast delivery (RFC 2326 12.39, RFC 3550 6.2): one send per stream, however many viewers.

:class:`MulticastPool` (pure) gives each stream name a group address and an even/odd port
pair from the configured range, and judges the destinations clients ask for: a
destination that is not a multicast address inside the range is refused, so the server
can never be told to send somewhere else (RFC 2326 section 16, no reflection).

:class:`MulticastGroups` keeps, per stream, one group session (a Streamer.StreamSession
whose destination is the group) and the RTSP sessions that are its members.  The group
sends while at least one member plays and sends BYE when the last one leaves; while it sends,
the server listens on the group's RTCP port (RFC 3550 6.2: the members report to the group),
and each member's reports are read by the group session.  A stored
movie is one shared broadcast timeline: it starts at the beginning when its first viewer
plays and every later viewer joins where it is (no PAUSE, no seeking).  The sockets are
the caller's (Server.py: it also opens the socket that joins a group's RTCP port); this
module only decides.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable

from RtspMessage import RtspError, Status
from RtspSession import State

log = logging.getLogger(__name__)

DEFAULT_PORT_BASE = 50000  # the first stream's RTP port; stream i uses base + 2i, base + 2i + 1
DEFAULT_TTL = 1


@dataclass(frozen=True)
class GroupAddress:
    group: str
    port: tuple[int, int]
    ttl: int


class MulticastPool:
    """Group addresses and ports for streams, from one range such as 239.255.42.0/24 or ff15::/16."""

    def __init__(self, network: str, ttl: int = DEFAULT_TTL, port_base: int = DEFAULT_PORT_BASE) -> None:
        try:
            net = ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ValueError(f"--multicast {network!r} is not an address range: {exc}") from None
        if not net.is_multicast:
            raise ValueError(f"--multicast {network} is not a multicast range (224.0.0.0/4 or ff00::/8)")
        if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(ipaddress.IPv4Network("224.0.0.0/24")):
            raise ValueError(f"--multicast {network} is the link-local control block 224.0.0.0/24")
        if not 0 <= ttl <= 255:
            raise ValueError(f"--multicast-ttl {ttl} is outside 0-255")
        if port_base % 2 or not 1024 <= port_base <= 65000:
            raise ValueError(f"multicast port base {port_base} must be even, 1024-65000")
        self.network = net
        self.ttl = ttl
        self.port_base = port_base
        self._assigned: dict[str, GroupAddress] = {}
        self._lock = threading.Lock()

    @property
    def family_v6(self) -> bool:
        return self.network.version == 6

    def _usable(self) -> int:
        size = self.network.num_addresses
        return size - 2 if size > 4 else size  # leave the range's first and last address alone

    def assign(self, name: str) -> GroupAddress:
        """The group of stream `name` (the same every time; a new stream takes the next one)."""
        with self._lock:
            found = self._assigned.get(name)
            if found is not None:
                return found
            index = len(self._assigned)
            usable = self._usable()
            offset = 1 if self.network.num_addresses > 4 else 0
            group = self.network.network_address + offset + (index % usable)
            port = self.port_base + 2 * index
            if port + 1 > 65535:
                raise RtspError(Status.SERVICE_UNAVAILABLE, "no multicast port pair left")
            found = GroupAddress(str(group), (port, port + 1), self.ttl)
            self._assigned[name] = found
            return found

    def refuse_destination(self, destination: str | None) -> str | None:
        """Why a client's destination= cannot be used (None: acceptable or not given)."""
        if destination is None:
            return None
        try:
            addr = ipaddress.ip_address(destination.strip("[]"))
        except ValueError:
            return f"destination={destination} is not an IP address"
        if not addr.is_multicast:
            return f"destination={destination} is not a multicast address (RFC 2326 16: no reflection)"
        if addr not in self.network:
            return f"destination={destination} is outside the server's multicast range {self.network}"
        return None


class MulticastGroups:
    """Per stream, the group session that sends and the RTSP sessions that watch it."""

    def __init__(self, pool: MulticastPool, streamer, rtp_sock, rtcp_sock,
                 rng: random.Random | None = None,
                 rtcp_listener: Callable[[GroupAddress], Any] | None = None) -> None:
        self.pool = pool
        # opens a socket that joined a group's RTCP port (raises OSError); None: reports unread
        self.rtcp_listener = rtcp_listener
        self._listening: dict[str, Any] = {}  # stream name -> its group's RTCP socket
        self.streamer = streamer
        self.rtp_sock = rtp_sock
        self.rtcp_sock = rtcp_sock
        self.rng = rng if rng is not None else random.SystemRandom()
        self._groups: dict[str, object] = {}
        self._playing: dict[str, set] = {}
        self._sending: dict[str, bool] = {}
        self._lock = threading.Lock()

    def _group(self, movie):
        from Streamer import StreamSession  # the group is a session of the Streamer like any other

        group = self._groups.get(movie.name)
        if group is None or group.movie is not movie:
            address = self.pool.assign(movie.name)
            group = StreamSession(f"group-{movie.name}", movie, self.rng)
            group.members = set()
            group.udp_dest = (address.group, address.port[0])
            group.rtcp_dest = (address.group, address.port[1])
            group.rtp_sock, group.rtcp_sock = self.rtp_sock, self.rtcp_sock
            group.address = address
            self._groups[movie.name] = group
            self._playing[movie.name] = set()
            self._sending[movie.name] = False
        return group

    def join(self, member) -> Any:
        """SETUP: `member` (an RTSP session) watches the group of its stream."""
        with self._lock:
            group = self._group(member.movie)
            group.members.add(member)
            member.group = group
            return group

    def play(self, member) -> tuple[int, int, float]:
        """PLAY: the group sends from now on (starting it if it is idle).  Returns the group's
        next sequence number, the RTP time of now and the broadcast position in seconds, for
        the reply's RTP-Info and Range."""
        import time

        with self._lock:
            group = member.group
            name = group.movie.name
            self._playing[name].add(member)
            if not self._sending[name] or group.ended:
                if not group.live:
                    with group.lock:
                        group.position = 0
                        group.stop_position = None
                self.streamer.add(group)
                group.state = State.PLAYING
                self.streamer.play(group)
                self._sending[name] = True
                log.info("multicast %s: sending to %s port %d-%d ttl %d", name, group.address.group,
                         *group.address.port, group.address.ttl)
                self._listen(name, group)
            with group.lock:
                now = time.monotonic()
                position = 0.0 if group.live else group.media_position(now) / group.movie.fps
                return group.seq, group.rtptime_now(now), position

    def pause(self, member) -> None:
        """A member stops watching (PAUSE of a live stream, TEARDOWN, timeout, closed connection)."""
        with self._lock:
            group = member.group
            if group is None:
                return
            name = group.movie.name
            self._playing[name].discard(member)
            if not self._playing[name] and self._sending[name]:
                self._sending[name] = False
                group.state = State.READY
                self.streamer.remove(group, bye="last viewer left")
                self._unlisten(name)
                log.info("multicast %s: last viewer left, %d frames sent, stopped", name, group.frames_sent)

    def leave(self, member) -> None:
        self.pause(member)
        with self._lock:
            group = member.group
            if group is not None:
                group.members.discard(member)
            member.group = None

    def sending(self, name: str) -> bool:
        with self._lock:
            return self._sending.get(name, False)

    def stop(self) -> None:
        """Server shutdown: every sending group says BYE."""
        with self._lock:
            names = [n for n, on in self._sending.items() if on]
            for name in names:
                self._sending[name] = False
                self.streamer.remove(self._groups[name], bye="server shutting down")
                self._unlisten(name)

    def _listen(self, name: str, group) -> None:
        """Join the group's RTCP port (RFC 3550 6.2) so the members' reports are read; a failure
        costs only those reports (called with the lock held)."""
        if self.rtcp_listener is None or name in self._listening:
            return
        address = group.address
        try:
            sock = self.rtcp_listener(address)
        except OSError as exc:
            log.warning("multicast %s: cannot listen for RTCP on %s port %d: %s (members' reports unread)",
                        name, address.group, address.port[1], exc.strerror or exc)
            return
        self._listening[name] = sock
        self.streamer.watch_rtcp(group, sock)
        log.debug("multicast %s: listening for members' RTCP on %s port %d", name, address.group, address.port[1])

    def _unlisten(self, name: str) -> None:
        sock = self._listening.pop(name, None)
        if sock is not None:
            self.streamer.unwatch_rtcp(sock)  # the Streamer closes it, which leaves the group