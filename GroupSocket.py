"""A UDP socket that joined a multicast group (RFC 1112 / RFC 3376 IPv4, RFC 3493 §5.2 IPv6),
the portable way: the player's RTP and RTCP sockets (RtpReceivePath) and the server's socket on
a group's RTCP port (Server.GroupRtcpSocket) are made here.

- SO_REUSEADDR, and SO_REUSEPORT where the platform has it: several receivers on one host
  (two players, a player and the server, ffmpeg) share the group's port.
- Bound to the group itself where that is allowed (Linux, macOS: only that group's datagrams
  arrive); Windows binds only local addresses, so the wildcard there.
- Joined on an interface: IPv4 takes the interface half of the membership request (the
  interface's address for struct ip_mreq, or address + index for Linux's struct ip_mreqn);
  IPv6 takes an interface index (0: the system's choice).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct


ANY_INTERFACE = socket.inet_aton("0.0.0.0")  # IPv4: INADDR_ANY, the system's choice


def join_group(group: str, port: int, v4_interface: bytes = ANY_INTERFACE,
               v6_index: int = 0) -> tuple[socket.socket, bytes]:
    """A socket on `group`:`port` that joined the group: an IPv4 group on `v4_interface` (the
    bytes after the group in the membership request), an IPv6 group on interface `v6_index`.
    Returns the socket and the membership request (to leave with). OSError on failure, the
    socket closed."""
    address = ipaddress.ip_address(group)
    v6 = address.version == 6
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            except OSError:
                pass
        sock.bind((group if os.name != "nt" else ("::" if v6 else "0.0.0.0"), port))
        if v6:
            mreq = address.packed + struct.pack("@I", v6_index)  # struct ipv6_mreq
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            mreq = address.packed + v4_interface  # struct ip_mreq (or ip_mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError:
        sock.close()
        raise
    return sock, mreq


def leave_group(sock: socket.socket, mreq: bytes) -> None:
    """Leave the group `mreq` names (closing the socket leaves it too; this says so at once)."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
    except OSError:
        pass
