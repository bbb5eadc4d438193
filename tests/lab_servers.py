"""Servers as students write them from the course hand-out, for testing our player against them.

:class:`LabServer` behaves like the hand-out's Server.py + ServerWorker.py + VideoStream.py +
RtpPacket.py, written here from that behaviour (not copied):

- it reads each request with one ``recv(256)``, splits it on LF and takes fields by line position:
  line 1 ``METHOD file RTSP/1.0``, line 2 ``CSeq: n``, line 3 ``Transport: RTP/UDP; client_port= N``
  (the port is the 4th space-separated word) or ``Session: n``;
- it knows SETUP, PLAY, PAUSE and TEARDOWN in the INIT -> READY <-> PLAYING states and says
  nothing at all to anything else (OPTIONS, DESCRIBE, a PLAY while playing, a file it cannot open);
- it replies ``RTSP/1.0 200 OK\\nCSeq: n\\nSession: n`` -- three LF lines, no blank line, the
  session a random 6-digit number;
- on PLAY a timer thread sends one frame every 50 ms, each frame whole in one RTP packet (12-byte
  header: version 2, PT 26, marker 0, SSRC 0, sequence number = frame number from 1, timestamp
  ``int(time())``), read from the .Mjpeg with a 5-digit length prefix; at the end of the movie it
  just stops sending; PAUSE stops the thread, PLAY starts a new one where it left off.

Variants (``variant=``), the common ways student servers differ:

- ``"handout"``: as above, one thread per connection.
- ``"single"``: single-threaded: one thread accepts, serves that one connection until it closes
  (reading with a timeout and sending frames between reads), then accepts the next.
- ``"always200"``: answers every request with the 200 reply, OPTIONS and DESCRIBE included (to a
  CRLF request its CSeq line keeps the CR: ``CSeq: 1\r\n``, mixed line ends).
- ``"always200_lf"``: the same, splitting lines with ``splitlines()``, so its replies to CRLF
  requests are in the pure lab form too.
- ``"crlf200"``: the same, but its replies follow RFC 2326's framing (CRLF line ends, a blank
  line after them): a 200 to OPTIONS and DESCRIBE alike, with no SDP.
- ``"early_rtp"``: starts sending RTP on PLAY and replies only ``early_delay`` s later.
- ``"close_after_teardown"``: closes the connection right after its TEARDOWN reply.
- ``"close_on_unknown"``: closes the connection on a request it does not know (e.g. OPTIONS).

``rtp_version``, ``payload_type``, ``ssrc_per_packet`` and ``constant_seq`` reproduce the RTP
header bugs the player must diagnose. One deliberate difference from the hand-out: when the
client closes the connection, the worker stops (the hand-out's loop spins on ``recv()`` returning
b"" at 100% CPU, which the client cannot see but a shared test machine can).
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from pathlib import Path

VARIANTS = ("handout", "single", "always200", "always200_lf", "crlf200", "early_rtp",
            "close_after_teardown", "close_on_unknown")


class HandoutVideoStream:
    """The hand-out's VideoStream: 5-digit length, then that many bytes; frame numbers from 1."""

    def __init__(self, path: str | Path) -> None:
        self.file = open(path, "rb")
        self.frame_num = 0

    def next_frame(self) -> bytes:
        data = self.file.read(5)
        if not data:
            return b""
        frame = self.file.read(int(data))
        self.frame_num += 1
        return frame

    def close(self) -> None:
        self.file.close()


def make_rtp(payload: bytes, seq: int, *, version: int = 2, payload_type: int = 26, marker: int = 0,
             ssrc: int = 0, timestamp: int | None = None) -> bytes:
    """The hand-out's RtpPacket.encode, field by field (timestamp int(time()) unless given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    header = bytes([(version << 6) & 0xC0, ((marker << 7) | payload_type) & 0xFF]) + \
        struct.pack("!HII", seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + payload


class _Client:
    """One client's state, as the hand-out keeps it in clientInfo."""

    def __init__(self, conn: socket.socket, addr: tuple) -> None:
        self.conn = conn
        self.addr = addr
        self.state = "INIT"
        self.session = 0
        self.rtp_port = 0
        self.video: HandoutVideoStream | None = None
        self.stop: threading.Event | None = None
        self.sender: threading.Thread | None = None
        self.rtp_sock: socket.socket | None = None
        self.next_send = 0.0          # single-threaded variant: when the next frame is due


class LabServer:
    """A hand-out style server on 127.0.0.1:<free port>; ``sent`` counts RTP packets sent,
    ``sent_frames`` holds the frames sent, in order; ``requests`` the raw requests received."""

    def __init__(self, media_dir: str | Path, variant: str = "handout", interval: float = 0.05,
                 early_delay: float = 0.2, rtp_version: int = 2, payload_type: int = 26,
                 ssrc_per_packet: bool = False, constant_seq: bool = False) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}")
        self.media_dir = Path(media_dir)
        self.variant = variant
        self.interval = interval
        self.early_delay = early_delay
        self.rtp_version = rtp_version
        self.payload_type = payload_type
        self.ssrc_per_packet = ssrc_per_packet
        self.constant_seq = constant_seq
        self.sent = 0
        self.sent_frames: list[bytes] = []
        self.requests: list[str] = []
        self.connections = 0
        self.closed_connections = 0
        self.teardowns = 0
        self._lock = threading.Lock()
        self._rng = random.Random(1)
        self._stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(5)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self.clients: list[_Client] = []
        self.thread = threading.Thread(target=self._serve, name=f"lab-{variant}", daemon=True)
        self.thread.start()

    # -- accept loop -----------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            client = _Client(conn, addr)
            self.clients.append(client)
            if self.variant == "single":
                self._serve_single(client)           # the next accept waits until this one is done
            else:
                t = threading.Thread(target=self._recv_loop, args=(client,), daemon=True)
                self._threads.append(t)
                t.start()

    def _recv_loop(self, client: _Client) -> None:
        while not self._stop.is_set():
            try:
                data = client.conn.recv(256)
            except OSError:
                break
            if not data:
                break
            if not self._process(client, data.decode("utf-8", "replace")):
                break
        self._end(client)

    def _serve_single(self, client: _Client) -> None:
        """One thread for everything: read with a timeout, send the frames that are due between reads."""
        client.conn.settimeout(None)
        while not self._stop.is_set():
            wait = 0.05
            if client.state == "PLAYING":
                wait = max(0.0, min(wait, client.next_send - time.monotonic()))
            ready, _, _ = select.select([client.conn], [], [], wait)
            if ready:
                try:
                    data = client.conn.recv(256)
                except OSError:
                    break
                if not data or not self._process(client, data.decode("utf-8", "replace")):
                    break
            if client.state == "PLAYING" and time.monotonic() >= client.next_send:
                client.next_send += self.interval
                self._send_frame(client)
        self._end(client)

    def _end(self, client: _Client) -> None:
        if client.stop is not None:
            client.stop.set()
        try:
            client.conn.close()
        except OSError:
            pass
        self.closed_connections += 1

    # -- requests, parsed by line position -----------------------------------------------------
    def _process(self, client: _Client, data: str) -> bool:
        """Handle one recv(256) of request text; False closes the connection."""
        self.requests.append(data)
        request = data.splitlines() if self.variant in ("always200_lf", "crlf200") else data.split("\n")
        line1 = request[0].split(" ")
        kind = line1[0]
        filename = line1[1] if len(line1) > 1 else ""
        seq = request[1].split(" ")[1] if len(request) > 1 and " " in request[1] else "0"
        if self.variant in ("always200", "always200_lf", "crlf200") and kind not in ("SETUP", "PLAY", "PAUSE", "TEARDOWN"):
            self._reply(client, seq)
            return True
        if kind == "SETUP":
            if client.state == "INIT":
                try:
                    client.video = HandoutVideoStream(self.media_dir / filename)
                except OSError:
                    return True                     # the hand-out prints "404 NOT FOUND" and replies nothing
                client.state = "READY"
                client.session = self._rng.randint(100000, 999999)
                self._reply(client, seq)
                client.rtp_port = int(request[2].split(" ")[3])
        elif kind == "PLAY":
            if client.state == "READY":
                client.state = "PLAYING"
                client.rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                if self.variant == "early_rtp":
                    self._start_sending(client)
                    time.sleep(self.early_delay)    # frames go out before the reply
                    self._reply(client, seq)
                else:
                    self._reply(client, seq)
                    self._start_sending(client)
        elif kind == "PAUSE":
            if client.state == "PLAYING":
                client.state = "READY"
                if client.stop is not None:
                    client.stop.set()
                self._reply(client, seq)
        elif kind == "TEARDOWN":
            if client.stop is not None:
                client.stop.set()
            client.state = "INIT"
            self._reply(client, seq)
            self.teardowns += 1
            if client.rtp_sock is not None:
                client.rtp_sock.close()
                client.rtp_sock = None
            if self.variant == "close_after_teardown":
                return False
        elif self.variant == "close_on_unknown":
            return False
        return True

    def _reply(self, client: _Client, seq: str) -> None:
        reply = "RTSP/1.0 200 OK\nCSeq: " + seq + "\nSession: " + str(client.session)
        if self.variant == "crlf200":
            reply = reply.replace("\n", "\r\n") + "\r\n\r\n"
        client.conn.send(reply.encode())

    # -- RTP -----------------------------------------------------------------------------------
    def _start_sending(self, client: _Client) -> None:
        if self.variant == "single":
            client.next_send = time.monotonic() + self.interval
            return
        client.stop = threading.Event()
        client.sender = threading.Thread(target=self._send_loop, args=(client, client.stop), daemon=True)
        client.sender.start()

    def _send_loop(self, client: _Client, stop: threading.Event) -> None:
        while True:
            stop.wait(self.interval)
            if stop.is_set() or self._stop.is_set():
                break
            self._send_frame(client)

    def _send_frame(self, client: _Client) -> None:
        assert client.video is not None
        with self._lock:
            data = client.video.next_frame()
            if not data or client.rtp_sock is None:
                return
            seq = 1 if self.constant_seq else client.video.frame_num
            ssrc = self._rng.getrandbits(32) if self.ssrc_per_packet else 0
            packet = make_rtp(data, seq, version=self.rtp_version, payload_type=self.payload_type, ssrc=ssrc)
            try:
                client.rtp_sock.sendto(packet, (client.addr[0], client.rtp_port))
            except OSError:
                return
            self.sent += 1
            self.sent_frames.append(data)

    def wait_sent(self, count: int, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.sent < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.sent >= count

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        for c in self.clients:
            if c.stop is not None:
                c.stop.set()
            try:
                c.conn.close()
            except OSError:
                pass
        self.thread.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
