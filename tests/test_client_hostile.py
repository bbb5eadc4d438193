"""A hostile or broken server cannot crash or freeze the player (issue 17 item 9): oversized or
endless replies fail the request at once with a clear message and the next request connects
again; frames that do not decode (a SOF claiming 60000x60000, truncated or corrupt JPEG) are
counted and skipped while good frames go on showing; RTP/RTCP from any host but the server's is
dropped and counted; the SSRC of the SETUP reply's Transport is the one accepted; frames that
share a timestamp are still split at each marker bit."""

from __future__ import annotations

import gc
import io
import socket
import struct
import threading
import time

import pytest
from PIL import Image

from RtcpPacket import Bye, serialize_compound
from ReceiveEngine import ClientError, ReceiveEngine
from RtpJpeg import JpegDepacketizer, packetize
from RtpPacket import RtpPacket
from media import scene_jpeg

GOOD_SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=range:npt=0-1.000\r\n"
            b"m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n")


def sof_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its SOF0 header saying width x height."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack("!HH", height, width) + jpeg[i + 9:]


class FakeServer:
    """Answers the first connection's first request with ``hostile(sock)``, later connections'
    DESCRIBE properly: the player must get over the first and work with the second."""

    def __init__(self, hostile) -> None:
        self.hostile = hostile
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn, self.connections == 1), daemon=True).start()

    def serve(self, conn: socket.socket, hostile: bool) -> None:
        data = b""
        try:
            conn.settimeout(10)
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            cseq = data.split(b"CSeq: ", 1)[1].split(b"\r\n", 1)[0]
            if hostile:
                self.hostile(conn, cseq)
                time.sleep(3)
            else:
                conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nContent-Type: application/sdp\r\n"
                             b"Content-Length: " + str(len(GOOD_SDP)).encode() + b"\r\n\r\n" + GOOD_SDP)
                time.sleep(1)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


def huge_sdp(conn, cseq):
    conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nContent-Type: application/sdp\r\n"
                 b"Content-Length: 10000000\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"a=x-filler:" + b"y" * 99_986 + b"\r\n")       # 10 MB of SDP


def endless_header(conn, cseq):
    conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nX-Endless: ")
    for _ in range(200):
        conn.sendall(b"z" * 65536)


def endless_headers(conn, cseq):
    conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\n")
    for _ in range(200):
        conn.sendall(b"X-More: 1\r\n" * 1000)


def huge_content_length(conn, cseq):
    conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nContent-Length: 99999999999999\r\n\r\nabc")


@pytest.mark.parametrize("hostile", [huge_sdp, endless_header, endless_headers, huge_content_length])
def test_hostile_reply_fails_at_once_and_the_next_request_reconnects(hostile):
    srv = FakeServer(hostile)
    eng = ReceiveEngine(f"rtsp://127.0.0.1:{srv.port}/movie.Mjpeg", reply_timeout=10.0)
    try:
        eng.open()
        t0 = time.monotonic()
        with pytest.raises(ClientError) as err:
            eng.describe()
        assert time.monotonic() - t0 < 3.0, "waited for the reply timeout instead"
        assert str(err.value).startswith("the server's reply is unusable (")
        assert "\n" not in str(err.value)
        assert eng.proto.dialect.value != "lab"          # not mistaken for a lab server
        eng.describe()                                    # a new connection, a good reply
        assert eng.duration == 1.0, srv.connections
    finally:
        eng.close()
        srv.close()


def test_frames_that_do_not_decode_are_refused_with_a_reason():
    from Client import decode_for_view
    good = scene_jpeg(64, 48)
    for bad, why in [(sof_claiming(good, 60000, 60000), "60000x60000"),
                     (sof_claiming(good, 20000, 20000), "20000x20000"),       # below Pillow's bomb limit
                     (good[:len(good) // 3], "does not decode"),
                     (b"\xff\xd8\xff\xe0 junk", "does not decode")]:
        with pytest.raises(ValueError) as err:
            decode_for_view(bad, (640, 480))
        assert why in str(err.value) or "too large" in str(err.value), (why, err.value)
    assert decode_for_view(good, (640, 480))[1] == (64, 48)


def test_window_skips_bad_frames_counts_them_and_goes_on(display):
    tk = pytest.importorskip("tkinter")
    from Client import Client
    from ReceiveEngine import Frame
    root = tk.Tk(screenName=display)
    eng = ReceiveEngine(None)
    app = Client(root, eng)
    try:
        good = [scene_jpeg(320, 240, index=i) for i in range(2)]
        app.show_frame(Frame(good[0], 0, 0, 0.0, time.monotonic()))
        for i, bad in enumerate([sof_claiming(good[0], 60000, 60000), good[1][:500]], 1):
            app.show_frame(Frame(bad, i, i, i / 20, time.monotonic()))
        assert app.bad_frames == 2 and app.frames_shown == 1
        assert app.status_var.get().startswith("2 frame(s) could not be shown; last: ")
        app.show_frame(Frame(good[1], 3, 3, 0.15, time.monotonic()))
        assert app.frames_shown == 2 and app.shown_frame.index == 3
        photo = app.photo._PhotoImage__photo
        expected = Image.open(io.BytesIO(good[1])).convert("RGB")
        assert tuple(int(c) for c in photo.get(100, 100)) == expected.getpixel((100, 100))
    finally:
        app.close()
        eng.close()
        gc.collect()


def loopback_alias_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def test_rtp_and_rtcp_from_another_host_are_dropped_and_counted(start_server):
    """Forged RTP (right SSRC, next sequence numbers) and an RTCP BYE sent from 127.0.0.2 are
    dropped and counted: the frames are still the server's and the stream does not end."""
    if not loopback_alias_usable():
        print("SKIP reason: cannot bind 127.0.0.2 here")
        pytest.skip("no 127.0.0.2")
    srv = start_server(fps=50)
    eng = ReceiveEngine(srv.url())
    try:
        eng.open()
        eng.describe()
        eng.setup()
        eng.play()
        deadline = time.monotonic() + 10
        while eng.frames_displayable < 10:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
            forger.bind(("127.0.0.2", 0))
            tr = eng.rx.tracker
            for k in range(20):
                pkt = RtpPacket()
                pkt.encode(2, 0, 0, 0, (tr.max_seq + 1 + k) & 0xFFFF, 1, 26, eng.ssrc, b"\xff\xd8\xff forged")
                forger.sendto(pkt.getPacket(), ("127.0.0.1", eng.rtp_port))
            forger.sendto(serialize_compound([Bye([eng.ssrc], "forged")]), ("127.0.0.1", eng.rtp_port + 1))
            deadline = time.monotonic() + 5
            while eng.foreign_source_packets < 21:
                assert time.monotonic() < deadline, eng.foreign_source_packets
                time.sleep(0.02)
        n = eng.frames_displayable
        time.sleep(0.5)
        assert eng.ended is None and eng.frames_displayable > n      # still playing, BYE ignored
        assert eng.foreign_source_packets == 21 and eng.bad_packets == 0
        eng.teardown()
    finally:
        eng.close()


def test_the_ssrc_of_the_setup_reply_is_the_one_accepted(start_server):
    """RTP with another SSRC arriving before the stream (from the server's host) does not take
    over: the SSRC the SETUP reply's Transport announced is kept, the others are counted."""
    srv = start_server(fps=50)
    eng = ReceiveEngine(srv.url())
    try:
        eng.open()
        eng.describe()
        eng.setup()
        announced = eng.proto.transport.ssrc
        assert announced is not None and eng.ssrc == announced
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for k in range(5):
                pkt = RtpPacket()
                pkt.encode(2, 0, 0, 0, 100 + k, 1, 26, announced ^ 0x1234, b"\xff\xd8\xff not ours")
                s.sendto(pkt.getPacket(), ("127.0.0.1", eng.rtp_port))
        deadline = time.monotonic() + 3
        while eng.foreign_packets < 5:
            assert time.monotonic() < deadline, eng.foreign_packets
            time.sleep(0.02)
        eng.play()
        deadline = time.monotonic() + 10
        while eng.frames_displayable < 10:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert eng.ssrc == announced and eng.foreign_packets == 5
        eng.teardown()
    finally:
        eng.close()


def test_frames_sharing_a_timestamp_are_split_at_each_marker():
    """A sender that reuses one timestamp for several frames: each marker ends a frame; a frame
    with a packet missing is dropped at its marker and the next one still comes out."""
    frames = [scene_jpeg(320, 240, index=i, quality=90) for i in range(4)]
    trains = [packetize(f, max_payload=900) for f in frames]
    assert all(len(t) >= 3 for t in trains)
    d = JpegDepacketizer()
    out = []
    for n, train in enumerate(trains):
        for k, payload in enumerate(train):
            if n == 2 and k == 1:
                continue                                  # lost: frame 2 cannot complete
            got = d.push(payload, 12345, k == len(train) - 1, seq_missing_before=(n == 2 and k == 2))
            if got is not None:
                out.append(got)

    def pixels(jpeg: bytes) -> bytes:
        return Image.open(io.BytesIO(jpeg)).convert("RGB").tobytes()
    assert [pixels(j) for j in out] == [pixels(frames[i]) for i in (0, 1, 3)]
    assert d.frames_completed == 3 and d.frames_dropped == 1
