"""A classic course-lab client (as students write it) plays movie.Mjpeg from our server.

The client below does what the lab's Client.py does, warts included: LF line endings,
one send() per request with no terminator, `Transport: RTP/UDP; client_port= N`, one
recv(256) per reply split on LF with CSeq taken from line 2 and Session from line 3,
and each RTP datagram (recv(20480)) decoded as one whole JPEG, frame number = seqNum().
"""

import io
import socket
import threading
import time

from PIL import Image

from conftest import MOVIE
from RtpPacket import RtpPacket
from rtsp_tools import wait_settled
from VideoStream import VideoStream


class LabClient:
    def __init__(self, host, port, rtp_port, filename):
        self.fileName = filename
        self.rtspSeq = 0
        self.sessionId = 0
        self.frameNbr = 0
        self.frames = []
        self.replies = []
        self.rtspSocket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.rtspSocket.settimeout(5)
        self.rtspSocket.connect((host, port))
        self.rtpSocket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtpSocket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rtpSocket.settimeout(0.5)
        self.rtpSocket.bind(("", rtp_port))
        self.stop = threading.Event()
        self.listener = threading.Thread(target=self.listenRtp, daemon=True)

    def send(self, request_code):
        self.rtspSeq += 1
        if request_code == "SETUP":
            request = (f"SETUP {self.fileName} RTSP/1.0\nCSeq: {self.rtspSeq}\n"
                       f"Transport: RTP/UDP; client_port= {self.rtpSocket.getsockname()[1]}")
        else:
            request = f"{request_code} {self.fileName} RTSP/1.0\nCSeq: {self.rtspSeq}\nSession: {self.sessionId}"
        started = time.monotonic()
        self.rtspSocket.send(request.encode())
        reply = self.rtspSocket.recv(256).decode("utf-8")
        self.replies.append((reply, time.monotonic() - started))
        lines = reply.split("\n")
        seqNum = int(lines[1].split(" ")[1])
        assert seqNum == self.rtspSeq
        session = int(lines[2].split(" ")[1])
        if self.sessionId == 0:
            self.sessionId = session
        assert self.sessionId == session
        return int(lines[0].split(" ")[1])

    def listenRtp(self):
        while not self.stop.is_set():
            try:
                data = self.rtpSocket.recv(20480)
            except socket.timeout:
                continue
            except OSError:
                return
            rtpPacket = RtpPacket()
            rtpPacket.decode(data)
            currFrameNbr = rtpPacket.seqNum()
            if currFrameNbr > self.frameNbr:
                self.frameNbr = currFrameNbr
                self.frames.append(rtpPacket.getPayload())

    def wait_frames(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.frames)

    def close(self):
        self.stop.set()
        self.listener.join(timeout=2)
        self.rtspSocket.close()
        self.rtpSocket.close()


def test_lab_client_plays_the_whole_movie(start_server):
    srv = start_server(fps=100)
    source = VideoStream(MOVIE)
    client = LabClient("127.0.0.1", srv.port, 0, "movie.Mjpeg")
    client.listener.start()
    assert client.send("SETUP") == 200
    assert client.sessionId > 0
    assert client.send("PLAY") == 200
    assert client.wait_frames(100, timeout=10) >= 100
    assert client.send("PAUSE") == 200
    # count once what was in flight has landed: no new frame for 100 ms
    paused_at = wait_settled(lambda: len(client.frames), 0.1, 2.0, "the frame count after PAUSE")
    assert client.send("PLAY") == 200
    assert client.wait_frames(source.frame_count, timeout=20) == source.frame_count
    assert client.send("TEARDOWN") == 200
    client.close()
    assert paused_at < source.frame_count
    # every datagram was a whole JPEG, in order, equal to the source frame
    assert client.frameNbr == source.frame_count  # sequence numbers count frames from 1
    for index, payload in enumerate(client.frames):
        assert payload == source.frame(index)
        Image.open(io.BytesIO(payload)).load()
    for reply, elapsed in client.replies:
        lines = reply.split("\n")
        assert lines[0] == "RTSP/1.0 200 OK"
        assert "\r" not in reply and len(reply.encode()) < 256
        assert elapsed < 0.5  # answered promptly although the request had no terminator


def test_lab_reply_lines(start_server):
    srv = start_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    sock.send(f"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= {rtp.getsockname()[1]}".encode())
    lines = sock.recv(256).decode().split("\n")
    assert lines[0] == "RTSP/1.0 200 OK"
    assert lines[1] == "CSeq: 1"
    assert lines[2].startswith("Session: ") and lines[2][9:].isdigit()
    session = lines[2][9:]
    sock.send(f"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: {session}\n\n".encode())  # a variant that ends in a blank line
    lines = sock.recv(256).decode().split("\n")
    assert lines[:3] == ["RTSP/1.0 200 OK", "CSeq: 2", f"Session: {session}"]
    rtp.settimeout(5)
    packet = RtpPacket.parse(rtp.recv(65536))
    assert packet.payload_type == 26 and packet.payload[:2] == b"\xff\xd8"
    assert packet.payload == VideoStream(MOVIE).frame(0)
    sock.send(f"PAUSE movie.Mjpeg RTSP/1.0\nCSeq: 3\nSession: 999\n".encode())
    lines = sock.recv(256).decode().split("\n")
    assert lines[:3] == ["RTSP/1.0 454 Session Not Found", "CSeq: 3", "Session: 999"]
    sock.close()
    rtp.close()
