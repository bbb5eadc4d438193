"""Socket buffer sizes on every platform: ask for a size, get what the kernel grants, say why.

A frame of a few hundred KB arrives as a burst of RTP packets faster than a Python thread
drains them, so the player asks for a 4 MB UDP receive buffer (the server, for its sends).
What happens to that request depends on the platform:

- Linux grants at most ``net.core.rmem_max``/``wmem_max`` and reports double what it
  keeps (socket(7)); root may go past the limit with SO_RCVBUFFORCE/SO_SNDBUFFORCE.
- macOS (and the BSDs) refuse a size above ``kern.ipc.maxsockbuf`` with ENOBUFS instead of
  capping it, so the request is halved until it is accepted.
- Windows grants the size asked for.

A smaller buffer is not an error: the program runs, and may lose packets in bursts. The
warning says so once and names the setting that raises the limit.
"""

from __future__ import annotations

import logging
import socket
import sys

log = logging.getLogger(__name__)

MIN_BUFFER = 64 * 1024     # never ask for less than this (or than the socket's default)
# Linux's forcing variants (asm-generic/socket.h); not in Python's socket module.
_FORCE = {socket.SO_RCVBUF: 33, socket.SO_SNDBUF: 32}
_NAMES = {socket.SO_RCVBUF: "receive", socket.SO_SNDBUF: "send"}


def limit_hint(option: int, platform: str = sys.platform) -> str:
    """The system setting that caps a socket buffer on ``platform``, as a command to raise it."""
    if platform.startswith("linux"):
        key = "rmem_max" if option == socket.SO_RCVBUF else "wmem_max"
        return f"raise it with: sudo sysctl -w net.core.{key}=8388608"
    if platform == "darwin" or "bsd" in platform:
        return "raise it with: sudo sysctl -w kern.ipc.maxsockbuf=16777216"
    return "the system limits socket buffers"


def request_buffer(sock: socket.socket, option: int, size: int, what: str = "UDP",
                   level: int = logging.WARNING, platform: str = sys.platform) -> int:
    """Ask for ``size`` bytes of SO_RCVBUF/SO_SNDBUF on ``sock``; return the size granted.

    Never raises for a size the system refuses: it settles for less and logs one line at
    ``level`` (what was granted, what was wanted, what a user loses, how to raise the limit)."""
    asked = size
    default = sock.getsockopt(socket.SOL_SOCKET, option)
    while True:
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            # macOS/BSD: ENOBUFS above kern.ipc.maxsockbuf (it does not cap the way Linux does);
            # never settle below what the socket already had
            if size // 2 <= max(default, MIN_BUFFER):
                break
            size //= 2
    granted = sock.getsockopt(socket.SOL_SOCKET, option)
    if granted < asked and platform.startswith("linux") and option in _FORCE:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _FORCE[option], asked)  # root only
            granted = sock.getsockopt(socket.SOL_SOCKET, option)
        except OSError:
            pass
    if granted < asked:
        log.log(level, "%s %s buffer is %d KB (wanted %d KB): bursts of large frames may lose "
                "packets; %s", what, _NAMES.get(option, "socket"), granted // 1024, asked // 1024,
                limit_hint(option, platform))
    return granted
