"""A minimal blocking RTSP/1.0 client for the load generators (RFC 2326 requests and replies).

Benchmarks drive both our server and gst-rtsp-server with it, so it only needs DESCRIBE,
SETUP (UDP client_port), PLAY, TEARDOWN and the reply's status, headers and body.
"""

from __future__ import annotations

import socket
import time


class RtspReplyError(ValueError):
    """The server's reply was malformed or not 200."""


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cseq = 0
        self.buf = b""
        self.session: str | None = None

    def request(self, method: str, url: str, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes, float]:
        """Send one request; (status, headers lower-cased, body, seconds from send to reply)."""
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: bench"]
        if self.session and method != "DESCRIBE":
            lines.append(f"Session: {self.session}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        t0 = time.perf_counter()
        self.sock.sendall(data)
        status, hdrs, body = self._read_reply()
        elapsed = time.perf_counter() - t0
        if "session" in hdrs:
            self.session = hdrs["session"].split(";")[0].strip()
        return status, hdrs, body, elapsed

    def send_only(self, method: str, url: str) -> None:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
        if self.session:
            lines.append(f"Session: {self.session}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _read_reply(self) -> tuple[int, dict[str, str], bytes]:
        while True:
            # skip interleaved frames ('$', channel, length) if any
            while self.buf[:1] == b"$":
                if len(self.buf) < 4:
                    break
                n = int.from_bytes(self.buf[2:4], "big")
                if len(self.buf) < 4 + n:
                    break
                self.buf = self.buf[4 + n:]
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1").split("\r\n")
                hdrs: dict[str, str] = {}
                for line in head[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                length = int(hdrs.get("content-length", "0"))
                if len(self.buf) >= end + 4 + length:
                    body = self.buf[end + 4:end + 4 + length]
                    self.buf = self.buf[end + 4 + length:]
                    parts = head[0].split(" ", 2)
                    if len(parts) < 2 or not parts[0].startswith("RTSP/"):
                        raise RtspReplyError(f"bad status line {head[0]!r}")
                    return int(parts[1]), hdrs, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RtspReplyError("connection closed before the reply")
            self.buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def control_url(base_url: str, sdp: bytes, content_base: str | None) -> str:
    """The media's SETUP URL from the SDP a=control (RFC 2326 C.1.1), relative to Content-Base."""
    control = None
    in_media = False
    for line in sdp.decode("latin-1").splitlines():
        if line.startswith("m="):
            in_media = True
        elif in_media and line.startswith("a=control:"):
            control = line[len("a=control:"):].strip()
            break
    base = content_base or base_url
    if control is None or control == "*":
        return base
    if "://" in control:
        return control
    return base.rstrip("/") + "/" + control


def udp_pair(host: str = "127.0.0.1", rcvbuf: int = 0) -> tuple[socket.socket, socket.socket]:
    """An even RTP port and the odd RTCP port above it (RFC 3550 11)."""
    for _ in range(200):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if rcvbuf:
            rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        rtp.bind((host, 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            try:
                rtcp.bind((host, port + 1))
                return rtp, rtcp
            except OSError:
                pass
        rtp.close()
        rtcp.close()
    raise OSError("no even/odd UDP port pair")
