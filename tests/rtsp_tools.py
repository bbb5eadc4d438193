"""Test-side helpers: a scripted RTSP connection and an RTP receiver, every wait bounded."""

import re
import select
import socket
import subprocess
import time

from RtpPacket import RtpPacket
from RtspMessage import Headers, InterleavedFrame, Request, Response
from RtspParser import RtspParser


def wait_for(cond, timeout: float, what: str, step=None) -> None:
    """Return once ``cond()`` is true; fail naming ``what`` after ``timeout`` seconds.

    ``step()`` runs between checks (e.g. draining a queue); by default a 20 ms sleep."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if step is None:
            time.sleep(0.02)
        else:
            step()


def wait_settled(count, quiet: float, timeout: float, what: str) -> int:
    """Wait until ``count()`` has not changed for ``quiet`` seconds (what was in flight has
    landed), at most ``timeout`` seconds; returns the settled count."""
    deadline = time.monotonic() + timeout
    value, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"{what} kept changing for {timeout} s"
        time.sleep(0.01)
        now_value = count()
        if now_value != value:
            value, since = now_value, time.monotonic()
    return value


class RtspConn:
    """A scripted RTSP client connection (CSeq counted automatically)."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.parser = RtspParser(role="client")
        self.cseq = 0
        self.frames = []  # interleaved frames seen while waiting for replies
        self.queue = []

    def request(self, method, uri, headers=None, body=b""):
        self.cseq += 1
        h = Headers()
        h.set("CSeq", str(self.cseq))
        for name, value in (headers or {}).items():
            h.set(name, value)
        self.sock.sendall(Request(method, uri, h, body).serialize())
        return self.read_response()

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_response(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, event in enumerate(self.queue):
                if isinstance(event, Response):
                    del self.queue[i]
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no RTSP reply in time")
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                continue
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            for event in self.parser.feed(data):
                if isinstance(event, InterleavedFrame):
                    self.frames.append(event)
                else:
                    self.queue.append(event)

    def read_interleaved(self, count, timeout=10.0):
        """Collect at least `count` interleaved frames."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], deadline - time.monotonic())
            if ready:
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                for event in self.parser.feed(data):
                    if isinstance(event, InterleavedFrame):
                        self.frames.append(event)
                    else:
                        self.queue.append(event)
        return self.frames

    def close(self):
        self.sock.close()


class RtpReceiver:
    """UDP sockets on an even/odd port pair on loopback."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            rtp.bind((host, 0))
            port = rtp.getsockname()[1]
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if port % 2 == 0:
                    rtcp.bind((host, port + 1))
                    break
            except OSError:
                pass
            rtp.close()
            rtcp.close()
        else:
            raise RuntimeError("no free even/odd UDP pair")
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.rtp, self.rtcp, self.port = rtp, rtcp, port

    def receive(self, until, timeout=10.0, idle=None):
        """Packets until until(packets) is true, the timeout, or `idle` seconds of silence."""
        packets = []
        deadline = time.monotonic() + timeout
        while not until(packets):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self.rtp], [], [], min(remaining, idle or remaining))
            if not ready:
                if idle:
                    break
                continue
            packets.append(RtpPacket.parse(self.rtp.recv(65536)))
        return packets

    def drain(self, quiet=0.3, timeout=5.0):
        """Read until `quiet` seconds pass with nothing; return what came."""
        return self.receive(lambda p: False, timeout=timeout, idle=quiet)

    def close(self):
        self.rtp.close()
        self.rtcp.close()


def frames_from_packets(packets):
    """Group RTP/JPEG packets into frames with our depacketizer: list of JPEG bytes."""
    from RtpJpeg import JpegDepacketizer

    depacketizer = JpegDepacketizer()
    frames = []
    for packet in packets:
        frame = depacketizer.push(packet.payload, packet.rtp_timestamp, packet.marker)
        if frame is not None:
            frames.append(frame)
    return frames


# GStreamer's rtspsrc, on EOS after the server's RTCP BYE, sends PAUSE from its streaming thread
# while gst-launch, also on that EOS, takes the pipeline down and sends TEARDOWN: when the
# teardown closes the connection first, the PAUSE thread reads end-of-file and posts an error
# (exit 1), although the server answered both requests (its log shows PAUSE then TEARDOWN, 200
# each). Reproduced here in 2 of 25 runs against our server with nothing else different. Only
# that error, at that place, is forgiven; the tests still count every frame.
_GST_EOS_RACE = ("gst_rtspsrc_pause", "gst_rtspsrc_try_send", "Could not send message. (Received end-of-file)")


def gst_exit_ok(returncode: int, stderr: str) -> bool:
    """True when gst-launch succeeded, or failed only by the PAUSE/TEARDOWN race at the end."""
    if returncode == 0:
        return True
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    return (returncode == 1
            and all("Could not write to resource" in line for line in errors)
            and all(marker in stderr for marker in _GST_EOS_RACE)
            and "Could not read" not in stderr and "Internal data stream error" not in stderr)


SKIPPED_FRAME = re.compile(r"session \S+: frame (\d+) skipped, \d+ ms late")


def skipped_frames(caplog) -> set[int]:
    """Frames the in-process server's Streamer skipped for being over 0.2 s late (a stalled
    streamer thread on a loaded machine): one DEBUG line each, so capture the Streamer logger
    at DEBUG (caplog.set_level(logging.DEBUG, logger="Streamer")). Those frames took no
    sequence numbers and reached no client."""
    return {int(m[1]) for r in caplog.records if (m := SKIPPED_FRAME.fullmatch(r.getMessage()))}


def communicate(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """``proc.communicate(timeout=...)``, killing ``proc`` if it is not done by then: its output
    so far (the caller's checks then fail on the exit status, with what it printed)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()
