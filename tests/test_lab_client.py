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


# --------------------------------------------------------------------------- the lab world's movies

def lab_play(srv, name, count, timeout=30):
    client = LabClient("127.0.0.1", srv.port, 0, name)
    client.listener.start()
    assert client.send("SETUP") == 200
    assert client.send("PLAY") == 200
    client.wait_frames(count, timeout=timeout)
    assert client.send("TEARDOWN") == 200
    client.close()
    return client


def session_end_lines(caplog):
    return [r.getMessage() for r in caplog.records if "ended (TEARDOWN)" in r.getMessage()]


def test_lab_client_gets_the_original_bytes_of_a_444_movie(start_server, tmp_path):
    # the course hand-out's movie.Mjpeg is 4:4:4: RTSP clients get it re-encoded, lab clients as it is
    from media import uncarriable_frames
    from VideoStream import write_mjpeg
    frames = uncarriable_frames("444", 60)
    write_mjpeg(tmp_path / "course.Mjpeg", frames)
    srv = start_server(tmp_path, fps=100)
    client = lab_play(srv, "course.Mjpeg", len(frames))
    assert client.frames == frames


def test_1280x720_movie_to_a_lab_client_no_frame_over_20000_none_skipped(start_server, tmp_path, caplog):
    import logging
    from media import movie_frames
    from VideoStream import write_mjpeg
    caplog.set_level(logging.INFO, logger="ServerWorker")
    frames = movie_frames(30, size=(1280, 720), quality=95)  # tools/make_movie.py's frames, ~60-90 KB
    assert min(map(len, frames)) > 20000
    write_mjpeg(tmp_path / "hd.Mjpeg", frames)
    srv = start_server(tmp_path, fps=50)
    client = lab_play(srv, "hd.Mjpeg", len(frames))
    assert len(client.frames) == len(frames)  # recv(20480) got every datagram whole
    assert max(map(len, client.frames)) <= 20000
    for payload in client.frames:
        assert Image.open(io.BytesIO(payload)).size == (1280, 720)
    assert [line for line in session_end_lines(caplog) if " 0 skipped" in line]


def test_lab_frame_that_fits_no_datagram_is_skipped_with_one_warning(start_server, tmp_path, caplog):
    import logging
    from media import movie_frames, noise_jpeg
    from VideoStream import write_mjpeg
    caplog.set_level(logging.INFO, logger="ServerWorker")
    frames = movie_frames(6)
    huge = noise_jpeg(1280, 720, quality=95)  # ~1 MB: no UDP datagram holds it
    frames[2] = frames[4] = huge
    write_mjpeg(tmp_path / "huge.mjpeg", frames)
    srv = start_server(tmp_path, fps=50, lab_max_frame=0)  # re-encoding for lab clients turned off
    client = lab_play(srv, "huge.mjpeg", 4)
    assert client.frames == [frames[0], frames[1], frames[3], frames[5]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "frame 2 of huge.mjpeg" in warnings[0] and "datagram" in warnings[0]
    assert [line for line in session_end_lines(caplog) if " 2 skipped" in line]


def test_mangled_lab_request_gets_400_at_once(start_server):
    srv = start_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    started = time.monotonic()
    sock.send(b"SETUP f\n1\n RTSP/1.0 RTP/UDP 5000")
    reply = sock.recv(256).decode()
    assert reply.startswith("RTSP/1.0 400 Bad Request\n")
    assert time.monotonic() - started < 2.0  # the request timeout is 10 s
    sock.send(b"OPTIONS * RTSP/1.0\nCSeq: 2")  # and the connection still serves
    assert sock.recv(256).decode().startswith("RTSP/1.0 200 OK\nCSeq: 2\n")
    sock.close()


def test_every_reply_to_a_lab_client_fits_in_256_bytes(start_server):
    from Sdp import parse_sdp
    srv = start_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    replies = {}

    def ask(name, text):
        sock.send(text.encode())
        data = sock.recv(256)  # what the hand-out client does: one recv(256) per reply
        sock.settimeout(0.2)
        try:
            rest = sock.recv(65536)
        except socket.timeout:
            rest = b""
        sock.settimeout(5)
        assert rest == b"", f"{name}: reply longer than 256 bytes"
        replies[name] = data.decode()
        return replies[name]

    ask("OPTIONS", "OPTIONS movie.Mjpeg RTSP/1.0\nCSeq: 1")
    describe = ask("DESCRIBE", "DESCRIBE movie.Mjpeg RTSP/1.0\nCSeq: 2")
    head, _, body = describe.partition("\n\n")
    assert "Content-Type: application/sdp" in head and f"Content-Length: {len(body)}" in head
    sdp = parse_sdp(body)
    assert sdp.media[0].formats == ["26"] and "npt=0-25.000" in body
    setup = ask("SETUP", f"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 3\nTransport: RTP/UDP; client_port= {rtp.getsockname()[1]}")
    session = setup.split("\n")[2].split(" ")[1]
    for cseq, method in enumerate(["PLAY", "PAUSE", "GET_PARAMETER", "DESCRIBE"], start=4):
        ask(f"{method}-{cseq}", f"{method} movie.Mjpeg RTSP/1.0\nCSeq: {cseq}\nSession: {session}")
    ask("404", "DESCRIBE nothere.Mjpeg RTSP/1.0\nCSeq: 8")
    ask("454", "PLAY movie.Mjpeg RTSP/1.0\nCSeq: 9\nSession: 1")
    ask("501", "RECORD movie.Mjpeg RTSP/1.0\nCSeq: 10")
    ask("TEARDOWN", f"TEARDOWN movie.Mjpeg RTSP/1.0\nCSeq: 11\nSession: {session}")
    for name, reply in replies.items():
        assert len(reply.encode()) < 256 and "\r" not in reply, name
        lines = reply.split("\n")
        assert lines[0].startswith("RTSP/1.0 ") and lines[1].startswith("CSeq: "), name
    assert replies["404"].startswith("RTSP/1.0 404") and replies["501"].startswith("RTSP/1.0 501")
    sock.close()
    rtp.close()
