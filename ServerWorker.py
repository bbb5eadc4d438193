"""Server I/O: one ServerWorker per RTSP connection (the Streamer paces every session).

ServerWorker follows socketserver's setup -> handle -> finish: it reads bytes, hands them to its
RtspServerProtocol (the sans-IO side: parser, sessions, method handlers, header rules, the one
error path), writes the replies it returns and carries out the actions that follow them. The
sessions' RTP/RTCP is sent by Streamer.py's single pacing loop, which reaches the connection only
through the callables a session carries (`send_interleaved`, `expire`).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

from Multicast import MulticastGroups
from RtspServerProtocol import (EndSession, Output, RtspServerProtocol, ServerConfig, SessionRegistry,
                                StartSending)
from SocketBuffers import request_buffer
from Streamer import StreamSession, Streamer, unmapped

log = logging.getLogger(__name__)

__all__ = ["ServerWorker", "ServerConfig", "SessionRegistry", "SOCKET_BUFFER"]

SOCKET_BUFFER = 4 << 20
WORKER_POLL = 1.0  # a worker wakes this often for its timeouts; shutdown() wakes it at once
WRITE_TIMEOUT = 10.0  # a reply write gives up on a client that stopped reading after this long
LAB_GRACE = 0.03  # wait this long for the rest of an unterminated LF-only request


# --------------------------------------------------------------------------- worker
class ServerWorker:
    """Serves one RTSP connection: setup -> handle -> finish (socketserver's shape)."""

    def __init__(self, conn: socket.socket, addr, config: ServerConfig, streamer: Streamer,
                 server_ports: tuple[int, int], registry: SessionRegistry,
                 groups: MulticastGroups | None = None) -> None:
        self.conn = conn
        self.peer = unmapped(addr[0])
        self.config = config
        self.streamer = streamer
        host, port = conn.getsockname()[:2]
        self.protocol = RtspServerProtocol(config, streamer, server_ports, registry, self.peer,
                                           (unmapped(host), port), groups,
                                           send_interleaved=self.send_interleaved, expire=self.expire)
        self._write_lock = threading.Lock()
        self._pending = b""
        self._closing = False
        self.closed = threading.Event()

    @property
    def sessions(self) -> dict[str, StreamSession]:
        return self.protocol.sessions

    @property
    def lab(self) -> bool:
        return self.protocol.lab

    # -- socketserver shape --------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            self.handle()
        except OSError as exc:
            log.info("%s: connection error: %s", self.peer, exc)
        finally:
            self.finish()

    def setup(self) -> None:
        # A reply write may block at most this long on a client that stopped reading. A socket
        # timeout (not SO_SNDTIMEO, whose value is a timeval on Unix but a DWORD of ms on Windows)
        # also makes the socket non-blocking underneath, which send_interleaved relies on.
        self.conn.settimeout(WRITE_TIMEOUT)
        request_buffer(self.conn, socket.SO_SNDBUF, SOCKET_BUFFER, "TCP", logging.DEBUG)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("%s: connected", self.peer)

    def handle(self) -> None:
        last_data = time.monotonic()
        partial_since: float | None = None  # bytes came in since then but no message completed
        while not self._closing:
            ready, _, _ = select.select([self.conn], [], [], WORKER_POLL)
            if partial_since is not None and time.monotonic() - partial_since > self.config.request_timeout:
                log.info("%s: no complete request within %.0f s, connection closed", self.peer,
                         self.config.request_timeout)
                return
            if not ready:
                if self.protocol.has_unterminated_lf():
                    partial_since = None
                    self._dispatch([self.protocol.finish_unterminated()])
                if not self.sessions and time.monotonic() - last_data > self.config.connection_timeout:
                    log.info("%s: idle connection closed", self.peer)
                    return
                continue
            data = self.conn.recv(65536)
            if not data:
                log.info("%s: disconnected", self.peer)
                return
            last_data = time.monotonic()
            events = self.protocol.feed(data)
            if self.protocol.has_unterminated_lf():
                # The lab's client sends 'PLAY ... \nCSeq: 3\nSession: 12' with no
                # terminator: if nothing more follows promptly, that was the request.
                more, _, _ = select.select([self.conn], [], [], LAB_GRACE)
                lab_request = self.protocol.finish_unterminated() if not more else None
                if lab_request is not None:
                    events.append(lab_request)
            if events:
                partial_since = None  # a message completed: the clock restarts with the next bytes
            elif partial_since is None:
                partial_since = last_data
            self._dispatch(events)

    def finish(self) -> None:
        for session in list(self.sessions.values()):
            self.protocol.end_session(session, "connection closed")
        with self._write_lock:  # the Streamer's send_interleaved sees _closing, never a closed fd
            self._closing = True
        try:
            self.conn.close()
        finally:
            self.closed.set()
            log.info("%s: closed", self.peer)

    def shutdown(self) -> None:
        """Ask the worker to stop (from another thread)."""
        self._closing = True
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- carrying out what the protocol says ---------------------------------
    def _dispatch(self, events) -> None:
        for event in events:
            if event is None:
                continue
            out = self.protocol.handle(event, time.monotonic())
            if out is not None:
                self._carry_out(out)

    def _carry_out(self, out: Output) -> None:
        if out.data:
            self._write(out.data)
        for action in out.actions:
            if isinstance(action, StartSending):
                self.streamer.play(action.session)
            elif isinstance(action, EndSession):
                self.protocol.end_session(action.session, action.why)
        if out.close:
            self._closing = True

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            if self._pending:
                self.conn.sendall(self._pending)
                self._pending = b""
            self.conn.sendall(data)

    def send_interleaved(self, data: bytes) -> bool:
        """Queue RTP/RTCP '$' frames on the RTSP connection without blocking the Streamer.

        False means the frame was not sent (the client is not reading fast enough)."""
        with self._write_lock:
            if self._closing:
                return False
            if self._pending:
                try:
                    sent = self._send_now(self._pending)
                except OSError:
                    return False
                self._pending = self._pending[sent:]
                if self._pending:
                    return False
            try:
                sent = self._send_now(data)
            except OSError:
                return False
            if sent < len(data):
                self._pending = bytes(data[sent:])  # whole frames only: finish this one first
            return True

    def _send_now(self, data: bytes) -> int:
        """Send what the socket buffer takes right now, 0 when it is full; never waits.

        select() with no timeout, then one send() on the (timeout-mode, so non-blocking) socket:
        the portable form of send(MSG_DONTWAIT), which Windows lacks. Called with the write lock
        held, so no other writer fills the buffer in between. A socket the handler has closed
        meanwhile (fileno -1: select() raises ValueError) is an OSError like any failed send."""
        try:
            _, writable, _ = select.select([], [self.conn], [], 0)
        except ValueError as closed:
            raise ConnectionResetError("RTSP connection closed") from closed
        if not writable:
            return 0
        try:
            return self.conn.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def expire(self, session: StreamSession) -> None:
        """Called by the Streamer when a session timed out."""
        self.protocol.end_session(session, "timeout")
