"""RTSP/RTP MJPEG server: `python Server.py 2048` serves the .Mjpeg files of a folder.

The accept loop hands each connection to a ServerWorker thread; one Streamer thread
paces the RTP of every session.  Ctrl-C stops every session, thread and socket.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import struct
import sys
import threading
from urllib.parse import quote

import PythonVersion  # first: an old Python gets one line, not a SyntaxError/TypeError below

PythonVersion.require("Server.py")

from LiveReader import LiveFeed
from LiveSource import parse_live_spec
from MediaLibrary import LAB_MAX_FRAME, MAX_DATAGRAM_PAYLOAD, MediaLibrary
from GroupSocket import ANY_INTERFACE, join_group, leave_group
from Multicast import GroupAddress, MulticastGroups, MulticastPool
from RtspAuth import AuthError, Authenticator, UserDatabase
from SocketBuffers import request_buffer
from ServerWorker import SOCKET_BUFFER, ServerConfig, ServerWorker, SessionRegistry
from Streamer import Streamer

log = logging.getLogger("Server")


class UsageError(Exception):
    """A mistake the user can fix (port in use, folder missing): one line, exit 2."""


def _udp_pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    """Bind an even RTP port and the odd RTCP port above it (RFC 3550 11)."""
    for _ in range(100):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                for sock in (rtp, rtcp):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            rtp.bind((host, 0))
            port = rtp.getsockname()[1]
            if port % 2 == 0:
                rtcp.bind((host, port + 1))
                for sock in (rtp, rtcp):  # a smaller send buffer only makes a send wait: no warning
                    request_buffer(sock, socket.SO_SNDBUF, SOCKET_BUFFER, "UDP", logging.DEBUG)
                    request_buffer(sock, socket.SO_RCVBUF, SOCKET_BUFFER, "UDP", logging.DEBUG)
                return rtp, rtcp
        except OSError:
            pass
        rtp.close()
        rtcp.close()
    raise UsageError("could not bind an even/odd UDP port pair for RTP/RTCP")


def multicast_sockets(pool: MulticastPool, interface: str | None) -> tuple[socket.socket, socket.socket]:
    """The RTP and RTCP sockets that send to groups: TTL (hop limit) from the pool, the
    outgoing interface when one is given (an address, or a name / index), loopback on so
    receivers on this host hear it too."""
    family = socket.AF_INET6 if pool.family_v6 else socket.AF_INET
    pair: list[socket.socket] = []
    for _ in range(2):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, pool.ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                if interface:
                    try:
                        packed = socket.inet_aton(interface)
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, packed)
                    except OSError:
                        index = socket.if_nametoindex(interface)  # an interface name (ip_mreqn)
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                        struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, index))
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, pool.ttl)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
                if interface:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, _ipv6_index(interface))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        except OSError as exc:
            sock.close()
            for other in pair:
                other.close()
            raise UsageError(f"cannot send multicast{' on ' + interface if interface else ''}: "
                             f"{exc.strerror or exc}") from None
        pair.append(sock)
    return pair[0], pair[1]


class GroupRtcpSocket:
    """A UDP socket on a group's RTCP port that joined the group (RFC 3550 6.2: the members
    send their receiver reports to the group, port + 1), made by GroupSocket.join_group (shared
    with this host's players and ffmpeg), joined on the interface multicast is sent on
    (--multicast-interface, else the system's choice).  Our own reports come back too
    (IP_MULTICAST_LOOP): the Streamer knows them by SSRC.  close() leaves the group and closes."""

    def __init__(self, address: GroupAddress, interface: str | None) -> None:
        self.port = address.port[1]
        if ":" in address.group:
            self.sock, self.mreq = join_group(address.group, self.port, v6_index=_ipv6_index(interface))
        else:
            self.sock, self.mreq = join_group(address.group, self.port, _ipv4_interface(interface))
        self.sock.setblocking(False)  # the Streamer's loop reads it after select

    def fileno(self) -> int:
        return self.sock.fileno()

    def recvfrom(self, size: int) -> tuple[bytes, object]:
        return self.sock.recvfrom(size)

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        leave_group(self.sock, self.mreq)
        self.sock.close()


def _ipv4_interface(interface: str | None) -> bytes:
    """The interface half of an IPv4 membership request: its address (struct ip_mreq), or for a
    name its index (struct ip_mreqn, Linux); none given: INADDR_ANY, the system's choice."""
    if not interface:
        return ANY_INTERFACE
    try:
        return socket.inet_aton(interface)
    except OSError:
        return struct.pack("=4si", b"\0" * 4, socket.if_nametoindex(interface))


def _ipv6_index(interface: str | None) -> int:
    """--multicast-interface as an IPv6 interface index: a number, or a name; none: 0."""
    if not interface:
        return 0
    return int(interface) if interface.isdigit() else socket.if_nametoindex(interface)


class RtspServer:
    """Listens for RTSP connections and owns the Streamer and every worker."""

    def __init__(self, host: str, port: int, config: ServerConfig) -> None:
        self.config = config
        if host in ("", "::") and socket.has_dualstack_ipv6():
            family, bind_host = socket.AF_INET6, "::"
        elif ":" in host:
            family, bind_host = socket.AF_INET6, host
        else:
            family, bind_host = socket.AF_INET, host or "0.0.0.0"
        try:
            self.listener = socket.create_server(
                (bind_host, port), family=family, reuse_port=False,
                dualstack_ipv6=(family == socket.AF_INET6 and bind_host == "::"), backlog=128)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} is already in use (is another server running?)") from None
            raise UsageError(f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}") from None
        self.port = self.listener.getsockname()[1]
        self.rtp_sock, self.rtcp_sock = _udp_pair(family, "::" if bind_host == "::" else bind_host)
        self.server_ports = (self.rtp_sock.getsockname()[1], self.rtcp_sock.getsockname()[1])
        self.streamer = Streamer(self.rtp_sock, self.rtcp_sock, loop=config.loop,
                                 session_timeout=config.session_timeout, rng=config.rng)
        self.groups: MulticastGroups | None = None
        self._mcast_socks: tuple[socket.socket, ...] = ()
        if config.multicast is not None:
            mcast_rtp, mcast_rtcp = multicast_sockets(config.multicast, config.multicast_interface)
            self._mcast_socks = (mcast_rtp, mcast_rtcp)
            interface = config.multicast_interface
            self.groups = MulticastGroups(config.multicast, self.streamer, mcast_rtp, mcast_rtcp, rng=config.rng,
                                          rtcp_listener=lambda address: GroupRtcpSocket(address, interface))
        for feed in config.media.live.values():
            feed.listeners.append(self.streamer.live_frame)
        self.registry = SessionRegistry()
        self.workers: set[ServerWorker] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def serve_forever(self) -> None:
        """Accept connections until shutdown() (from another thread) or Ctrl-C."""
        self.streamer.start()
        for feed in self.config.media.live.values():
            feed.start()
        self.listener.settimeout(0.25)
        log.info("serving %s on RTSP port %d (RTP/RTCP %d-%d)", self.config.media.folder, self.port,
                 *self.server_ports)
        try:
            while not self._stopping.is_set():
                try:
                    conn, addr = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                worker = ServerWorker(conn, addr, self.config, self.streamer, self.server_ports, self.registry,
                                      groups=self.groups)
                thread = threading.Thread(target=self._run_worker, args=(worker,), name=f"rtsp-{addr[0]}",
                                          daemon=True)
                with self._lock:
                    self.workers.add(worker)
                    self._threads = [t for t in self._threads if t.is_alive()]
                    self._threads.append(thread)
                thread.start()
        finally:
            self._close()

    def _run_worker(self, worker: ServerWorker) -> None:
        try:
            worker.run()
        finally:
            with self._lock:
                self.workers.discard(worker)

    def shutdown(self) -> None:
        self._stopping.set()

    def _close(self) -> None:
        self._stopping.set()
        self.listener.close()
        with self._lock:
            workers = list(self.workers)
            threads = list(self._threads)
        for worker in workers:
            # RTCP BYE first (RFC 3550 6.6): receivers learn the stream ended on purpose
            for session in list(worker.sessions.values()):
                self.streamer.remove(session, bye="server shutting down")
        if self.groups is not None:
            self.groups.stop()
        for feed in self.config.media.live.values():
            feed.stop()
        for worker in workers:
            worker.shutdown()
        for thread in threads:
            thread.join(timeout=1.0)
        self.streamer.stop()
        self.streamer.join(timeout=1.0)
        self.config.media.close()
        self.rtp_sock.close()
        self.rtcp_sock.close()
        for sock in self._mcast_socks:
            sock.close()
        log.info("server stopped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve the .Mjpeg files of a folder over RTSP 1.0 / RTP (RFC 2435 JPEG).",
        epilog="example: python Server.py 2048   then   ffplay rtsp://127.0.0.1:2048/movie.Mjpeg",
    )
    parser.add_argument("port", type=int, help="RTSP port to listen on (the lab uses 2048; 0 picks a free one)")
    parser.add_argument("--host", default="", help="address to listen on (default: all interfaces, IPv4 and IPv6)")
    parser.add_argument("--media-dir", default=".", help="folder whose .Mjpeg files are served (default: .)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the movies (default 20)")
    parser.add_argument("--payload-size", type=int, default=1400, help="max RTP payload bytes (default 1400)")
    parser.add_argument("--lab-max-frame", type=int, default=LAB_MAX_FRAME, metavar="BYTES",
                        help="lab-dialect clients get frames over BYTES re-encoded smaller, since the "
                             "hand-out client reads a datagram with recv(20480) (default 20000; 0: never, "
                             "frames that fit no datagram are then skipped with a warning)")
    parser.add_argument("--max-sessions", type=int, default=1000, help="concurrent sessions (default 1000)")
    parser.add_argument("--session-timeout", type=float, default=60.0,
                        help="seconds without request or RTCP before a session is torn down (default 60)")
    parser.add_argument("--connection-timeout", type=float, default=300.0,
                        help="close an RTSP connection with no session after this many idle seconds (default 300)")
    parser.add_argument("--request-timeout", type=float, default=10.0,
                        help="close a connection whose request is not complete within this many seconds (default 10)")
    parser.add_argument("--max-request-rate", type=float, default=0.0,
                        help="requests per second per connection before 503 (default 0: no limit)")
    parser.add_argument("--loop", action="store_true", help="restart a movie at its end instead of stopping")
    parser.add_argument("--live", action="append", default=[], metavar="NAME=SOURCE",
                        help="serve a live MJPEG source as rtsp://host:port/NAME: SOURCE is a command whose "
                             "stdout is concatenated JPEG (restarted if it exits), '-' for stdin, or an "
                             "http:// MJPEG camera (multipart/x-mixed-replace); may be repeated")
    parser.add_argument("--multicast", metavar="RANGE",
                        help="allow multicast SETUP, groups taken from RANGE (e.g. 239.255.42.0/24 or ff15::/16)")
    parser.add_argument("--multicast-ttl", type=int, default=1, help="TTL / hop limit of multicast (default 1)")
    parser.add_argument("--multicast-interface", metavar="ADDR|NAME",
                        help="send multicast out of this interface (its IPv4 address, or its name)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require RTSP Digest authentication (RFC 2617)")
    parser.add_argument("--users", metavar="FILE", help="require authentication; FILE has user:password lines")
    parser.add_argument("--auth-basic", action="store_true", help="also accept Basic authentication")
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


class Terminated(Exception):
    """A stop signal other than Ctrl-C: stop the way Ctrl-C does."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# What stops the server besides Ctrl-C (KeyboardInterrupt everywhere): SIGTERM on Unix (systemd,
# docker stop, kill); Ctrl-Break (SIGBREAK) in a Windows console, where nothing sends SIGTERM
# and Ctrl-Break would otherwise kill the process without the RTCP BYEs.
STOP_SIGNALS = {"SIGTERM": "SIGTERM", "SIGBREAK": "Ctrl-Break"}


def install_stop_signals() -> list[str]:
    """Handle each of STOP_SIGNALS this platform has; returns their names."""
    installed = []
    for name, label in STOP_SIGNALS.items():
        signum = getattr(signal, name, None)
        if signum is None or (name == "SIGTERM" and sys.platform == "win32"):
            continue

        def handler(signum: int, frame: object, label: str = label) -> None:
            raise Terminated(label)

        signal.signal(signum, handler)
        installed.append(name)
    return installed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if not 0 <= args.port <= 65535:
            raise UsageError(f"port {args.port} is outside 0-65535")
        if args.fps is not None and not 0 < args.fps <= 1000:
            raise UsageError(f"--fps {args.fps} is outside (0, 1000]")
        if not 200 <= args.payload_size <= 65000:
            raise UsageError(f"--payload-size {args.payload_size} is outside 200-65000")
        if not (args.lab_max_frame == 0 or 1000 <= args.lab_max_frame <= MAX_DATAGRAM_PAYLOAD):
            raise UsageError(f"--lab-max-frame {args.lab_max_frame} is outside 1000-{MAX_DATAGRAM_PAYLOAD} (or 0)")
        try:
            media = MediaLibrary(args.media_dir, fps=args.fps, payload_size=args.payload_size,
                                 lab_max_frame=args.lab_max_frame)
        except OSError as exc:
            raise UsageError(f"cannot read media folder {args.media_dir}: {exc.strerror or exc}") from None
        auth = None
        if args.auth or args.users:
            try:
                users = UserDatabase.load(args.users) if args.users else UserDatabase.parse(args.auth)
            except (AuthError, OSError) as exc:
                raise UsageError(f"cannot use the credentials: {exc}") from None
            auth = Authenticator(users, allow_basic=args.auth_basic)
        try:
            pool = MulticastPool(args.multicast, ttl=args.multicast_ttl) if args.multicast else None
            specs = [parse_live_spec(text) for text in args.live]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if sum(spec.source == "-" for spec in specs) > 1:
            raise UsageError("only one --live source can read standard input")
        for spec in specs:
            media.add_live(LiveFeed(spec, payload_size=args.payload_size, fps_hint=args.fps or 20.0))
        config = ServerConfig(media=media, session_timeout=args.session_timeout,
                              multicast=pool, multicast_interface=args.multicast_interface,
                              max_sessions=args.max_sessions, loop=args.loop, auth=auth,
                              connection_timeout=args.connection_timeout, request_timeout=args.request_timeout,
                              max_request_rate=args.max_request_rate)
        server = RtspServer(args.host, args.port, config)
    except UsageError as exc:
        print(f"Server.py: error: {exc}", file=sys.stderr)
        return 2
    names = media.names()
    if not names:
        log.warning("no .Mjpeg files in %s", media.folder)
    for name in list(media.live) + names:
        log.info("serving rtsp://127.0.0.1:%d/%s", server.port, quote(name))  # a URL to copy
    install_stop_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("Ctrl-C: stopped")  # serve_forever's finally has closed everything
    except Terminated as stop:
        log.info("%s: stopped", stop.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
