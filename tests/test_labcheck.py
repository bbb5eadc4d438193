"""tools/labcheck.py, LabCheck.py and LabEvidence.py: the rubric catches each defect, with its reason.

The lab-style servers below are written the way the hand-out's Server.py/ServerWorker.py
are (recv(256) per request split on LF, a thread per client that sends one whole JPEG per
RTP datagram from VideoStream.nextFrame()), done right unless a `defect` names the one
thing that is broken.  Each defective server must fail exactly its own rubric item, with
a reason that names what is wrong; the correct one and our own Server.py must pass them
all.  The client side is graded the same way with lab clients and with our player.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import labcheck  # tools/labcheck.py (on the path from conftest.py)
import LabCheck
import LabEvidence
from conftest import MOVIE, ROOT
from RtpPacket import RtpPacket
from VideoStream import VideoStream
from test_lab_client import LabClient
from LabEvidence import Arrival, Exchange, PlaySession, ServerRecording, Verdict

FPS = 20.0
FAST = labcheck.Timing(play=1.0, pause_watch=0.5, resume=0.4, teardown_watch=0.4, reply_timeout=1.5,
                       first_packet=1.0, options_timeout=0.4)


class LabServer:
    """A lab-hand-out-style server on 127.0.0.1:<free port>, optionally with one defect."""

    DEFECTS = ("version0", "pt96", "seq_constant", "ts_constant", "no_marker", "fps10", "pause_ignored",
               "restart_after_pause", "single_threaded", "dies_on_vanish")

    def __init__(self, defect: str | None = None, fps: float = FPS) -> None:
        assert defect is None or defect in self.DEFECTS
        self.defect = defect
        self.interval = 1.0 / (fps / 2 if defect == "fps10" else fps)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.dead = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self.serve, daemon=True)
        self.accepter.start()

    def serve(self) -> None:
        while not self.dead.is_set():
            try:
                conn, addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.defect == "single_threaded":
                self.handle(conn, addr)          # the next client waits until this one leaves
            else:
                t = threading.Thread(target=self.handle, args=(conn, addr), daemon=True)
                self.threads.append(t)
                t.start()

    def die(self) -> None:
        """What an unhandled exception in the server process amounts to: nobody is served."""
        self.dead.set()
        self.listener.close()

    def stop(self) -> None:
        self.die()
        self.accepter.join(timeout=2)

    # -- one client (ServerWorker)
    def handle(self, conn: socket.socket, addr) -> None:
        client: dict[str, Any] = {"state": "INIT", "session": random.randint(100000, 999999), "event": None,
                                  "seq": 0}
        conn.settimeout(0.5)
        try:
            while not self.dead.is_set():
                try:
                    data = conn.recv(256)
                except socket.timeout:
                    continue
                if not data:
                    break
                self.process(conn, addr, client, data.decode("utf-8", "replace"))
        except OSError:
            pass
        finally:
            if client["event"] is not None:
                client["event"].set()
            conn.close()

    def process(self, conn, addr, client, data: str) -> None:
        request = data.split("\n")
        line1 = request[0].split(" ")
        method = line1[0]
        seq = request[1].split(" ")[1].strip()
        if method == "SETUP" and client["state"] == "INIT":
            client["stream"] = VideoStream(MOVIE)
            client["rtp_port"] = int(request[2].split(" ")[3])
            client["state"] = "READY"
            client["ssrc"] = random.getrandbits(32)
            client["t0"] = time.monotonic()              # the media clock runs from SETUP
            self.reply(conn, seq, client)
        elif method == "PLAY" and client["state"] == "READY":
            client["state"] = "PLAYING"
            if self.defect == "restart_after_pause" and client.get("played"):
                client["stream"] = VideoStream(MOVIE)      # the bug: a fresh VideoStream on every PLAY
            client["played"] = True
            self.reply(conn, seq, client)
            if client["event"] is None or client["event"].is_set():
                client["event"] = threading.Event()
                threading.Thread(target=self.send_rtp, args=(addr[0], client, client["event"]), daemon=True).start()
        elif method == "PLAY" and client["state"] == "PLAYING" and self.defect == "pause_ignored":
            self.reply(conn, seq, client)
        elif method == "PAUSE" and client["state"] == "PLAYING":
            if self.defect != "pause_ignored":
                client["event"].set()
                client["state"] = "READY"
            self.reply(conn, seq, client)
        elif method == "TEARDOWN":
            if client["event"] is not None:
                client["event"].set()
            client["state"] = "INIT"
            self.reply(conn, seq, client)

    def reply(self, conn, seq, client) -> None:
        conn.send(f"RTSP/1.0 200 OK\nCSeq: {seq}\nSession: {client['session']}".encode())

    def send_rtp(self, host, client, event: threading.Event) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, client["rtp_port"]))
        next_at = time.monotonic()
        try:
            while not event.is_set():
                frame = client["stream"].nextFrame()
                if not frame:
                    break
                if self.defect != "seq_constant":
                    client["seq"] += 1
                ts = 0 if self.defect == "ts_constant" else int((time.monotonic() - client["t0"]) * 90000) + client["ssrc"] % 1000
                packet = RtpPacket(96 if self.defect == "pt96" else 26, client["seq"], ts, client["ssrc"], frame,
                                   marker=self.defect != "no_marker").serialize()
                if self.defect == "version0":
                    packet = bytes((packet[0] & 0x3F,)) + packet[1:]
                try:
                    sock.send(packet)
                except OSError:
                    if self.defect == "dies_on_vanish":
                        self.die()           # ConnectionRefusedError, unhandled: the whole server is gone
                    return
                next_at += self.interval
                event.wait(max(0.0, next_at - time.monotonic()))
        finally:
            sock.close()


def grade(port: int, **kw) -> dict[str, LabEvidence.Result]:
    # p95 jitter allowed 45 ms, not 20: a shared CI machine (and four scripts side by side in one process)
    # delays threads; the 10 fps mutant fails on its mean, the jitter rule has its own table test
    results = labcheck.grade_server("127.0.0.1", port, "movie.Mjpeg", FPS, timing=FAST, jitter_limit=0.045, **kw)
    return {r.key: r for r in results}


def failing(results: dict[str, LabEvidence.Result]) -> dict[str, str]:
    return {k: r.reason for k, r in results.items() if r.verdict is Verdict.FAIL}


# defect -> (the one item it breaks, what the reason must say)
SERVER_MUTANTS = {
    "version0": ("rtp.version", r"version 0 in \d+ of \d+ packets"),
    "pt96": ("rtp.pt", r"payload type 96, expected 26"),
    "seq_constant": ("rtp.seq", r"sequence number repeated"),
    "ts_constant": ("rtp.timestamp", r"timestamp repeats: 0 then 0"),
    "no_marker": ("rtp.marker", r"marker not set on a frame's last packet \((\d+) of \1 frames"),
    "fps10": ("pacing", r"mean interval (9\d|1\d\d)\.\d ms \((9|1\d)\.\d fps\).*expected 50 ms"),
    "pause_ignored": ("pause.stops", r"\d+ RTP packets arrived more than 200 ms after PAUSE"),
    "restart_after_pause": ("pause.resume", r"restarted the movie at frame 0 \(paused after frame \d+, by content"),
    "single_threaded": ("concurrent", r"second client while the first plays: no reply to SETUP"),
    "dies_on_vanish": ("vanish", r"new client after one vanished without TEARDOWN: cannot connect"),
}


def _grade_lab_server(defect: str | None) -> dict[str, LabEvidence.Result]:
    server = LabServer(defect)
    try:
        return grade(server.port)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def graded_mutants() -> dict[str | None, dict[str, LabEvidence.Result]]:
    """Every lab server (the mutants and the correct one) graded once, four at a time: a script is
    ~5 s of mostly waiting, so side by side they take ~15 s instead of ~55 s."""
    from concurrent.futures import ThreadPoolExecutor
    defects: list[str | None] = [None, *SERVER_MUTANTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(defects, pool.map(_grade_lab_server, defects)))


@pytest.mark.parametrize("defect", list(SERVER_MUTANTS))
def test_each_mutant_server_fails_its_item_only(defect, graded_mutants):
    item, reason = SERVER_MUTANTS[defect]
    results = graded_mutants[defect]
    assert list(failing(results)) == [item], failing(results)
    assert re.search(reason, results[item].reason), results[item].reason
    assert results[item].evidence or item in ("pacing", "concurrent", "vanish")
    assert LabEvidence.exit_status(list(results.values())) == 1


def test_correct_lab_server_passes_every_item(graded_mutants):
    results = graded_mutants[None]
    assert failing(results) == {}
    assert results["rtsp.errors"].verdict is Verdict.NA  # the lab dialect only: no OPTIONS answered
    assert "does not speak RTSP 1.0" in results["rtsp.errors"].reason
    assert all(r.verdict is Verdict.PASS for k, r in results.items() if k != "rtsp.errors")
    assert re.search(r"frame (\d+) before PAUSE, frame \d+ after PLAY \(by content\)", results["pause.resume"].reason)


def test_our_server_passes_every_item(start_server):
    srv = start_server(fps=FPS)
    results = grade(srv.port)
    assert {k: r.verdict for k, r in results.items()} == {i.key: Verdict.PASS for i in LabEvidence.SERVER_ITEMS}
    assert "454 for an unknown session, 455" in results["rtsp.errors"].reason
    assert LabEvidence.exit_status(list(results.values())) == 0


def test_server_mode_cli_json_only_and_exit_status(start_server):
    srv = start_server(fps=FPS)
    cmd = [sys.executable, str(ROOT / "tools" / "labcheck.py"), "server", "127.0.0.1", str(srv.port), "movie.Mjpeg",
           "--json", "--only", "rtp", "--skip", "rtp.clock", "--play-seconds", "0.6"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    keys = [i["key"] for i in report["items"]]
    assert keys == ["rtp.version", "rtp.flags", "rtp.pt", "rtp.seq", "rtp.timestamp", "rtp.ssrc", "rtp.marker"]
    assert report["score"] == report["applicable"] == 7 and report["exit_status"] == 0
    # a server that is not there: every item fails with the reason, status 1
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    out = subprocess.run(cmd[:4] + [str(port), "--only", "rtsp.status,rtp.pt"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert re.search(r"FAIL rtsp.status +no request could be sent: cannot connect to 127.0.0.1:\d+", out.stdout)
    assert "FAIL rtp.pt" in out.stdout and "score: 0/2 (a required item failed)" in out.stdout
    bad = subprocess.run(cmd[:5] + ["--only", "nonsense"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown rubric item 'nonsense'" in bad.stderr


# --------------------------------------------------------------------------- the rubric over bytes


def _packet(seq, ts, marker=True, pt=26, first=0x80, payload=None):
    payload = payload if payload is not None else VideoStream(MOVIE).frame(seq % 5)
    data = RtpPacket(pt, seq, ts, 0x1234, payload, marker).serialize()
    return bytes((first,)) + data[1:]


def _recording(packets, times=None):
    rec = ServerRecording(fps=FPS)
    times = times or [1.0 + i / FPS for i in range(len(packets))]
    rec.main = PlaySession(packets=[Arrival(t, p) for t, p in zip(times, packets)])
    return rec


@pytest.mark.parametrize("first, verdict, reason", [
    (0x80, Verdict.PASS, r"P=0 X=0 CC=0"),
    (0xA0, Verdict.FAIL, r"P=1 but the last 217 octets"),             # P set, last octet of a JPEG is 0xD9
    (0x90, Verdict.FAIL, r"header does not parse: header extension of \d+ words runs past"),
    (0x81, Verdict.FAIL, r"the payload is not where the header says"),  # CC=1 eats 4 JPEG bytes
])
def test_flags_table(first, verdict, reason):
    rec = _recording([_packet(i, i * 4500, first=first) for i in range(1, 6)])
    result = LabCheck.check_server(rec, ["rtp.flags"])[0]
    assert result.verdict is verdict and re.search(reason, result.reason), result.reason


def test_real_padding_passes():
    packets = [RtpPacket(26, i, i * 4500, 9, VideoStream(MOVIE).frame(i), True, padding=4).serialize() for i in range(5)]
    result = LabCheck.check_server(_recording(packets), ["rtp.flags"])[0]
    assert result.verdict is Verdict.PASS and result.reason == "flags set and consistent: padding"


def test_rfc2435_fragments_are_frames_and_markers_are_checked():
    """Frames are found by fragment offset 0 (not by the graded marker or timestamp)."""
    from RtpJpeg import packetize
    packets, seq = [], 100
    for n in range(4):
        parts = packetize(VideoStream(MOVIE).frame(n), 1000)
        for i, part in enumerate(parts):
            packets.append(RtpPacket(26, seq, n * 4500, 7, part, marker=i == len(parts) - 1).serialize())
            seq += 1
    results = {r.key: r for r in LabCheck.check_server(_recording(packets), ["rtp.marker", "jpeg.decode", "rtp.seq"])}
    assert all(r.verdict is Verdict.PASS for r in results.values()), results
    assert "RFC 2435 fragments" in results["jpeg.decode"].reason
    early = [bytes((p[0], p[1] | 0x80)) + p[2:] for p in packets]        # M on every packet
    result = LabCheck.check_server(_recording(early), ["rtp.marker"])[0]
    assert result.verdict is Verdict.FAIL and re.search(r"marker set on packet 1 of a \d+-packet frame", result.reason)


@pytest.mark.parametrize("times, verdict, reason", [
    ([i * 0.05 for i in range(21)], Verdict.PASS, r"mean interval 50\.0 ms \(20\.0 fps\), p95 jitter 0\.0 ms over 20"),
    ([i * 0.05 + (0.03 if i % 2 else 0) for i in range(21)], Verdict.FAIL,
     r"p95 jitter 30\.0 ms over 20 intervals; p95 jitter must be <= 20 ms"),
    ([i * 0.0625 for i in range(21)], Verdict.FAIL, r"mean interval 62\.5 ms \(16\.0 fps\).*expected 50 ms \(20 fps\)"),
    ([0.0, 0.05, 0.1], Verdict.FAIL, r"only 3 frames arrived before PAUSE"),
])
def test_pacing_table(times, verdict, reason):
    packets = [_packet(i + 1, i * 4500) for i in range(len(times))]
    result = LabCheck.check_server(_recording(packets, [1.0 + t for t in times]), ["pacing"])[0]
    assert result.verdict is verdict and re.search(reason, result.reason), result.reason


def test_bad_jpeg_and_wrong_clock():
    frames = [_packet(i, i, payload=b"\xff\xd8\xff\xe0" + bytes(40)) for i in range(1, 8)]  # ts +1 per frame
    results = {r.key: r for r in LabCheck.check_server(_recording(frames), ["jpeg.decode", "rtp.clock"])}
    assert results["jpeg.decode"].verdict is Verdict.FAIL
    assert re.search(r"frame 1 \(44 bytes\) does not decode", results["jpeg.decode"].reason)
    assert results["rtp.clock"].verdict is Verdict.FAIL
    assert re.search(r"timestamps count 20 per second \(1 per frame\); JPEG uses 90 kHz: 4500 per frame",
                     results["rtp.clock"].reason)
    assert not results["rtp.clock"].item.required


@pytest.mark.parametrize("replies, verdict, reason", [
    ([b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 42", b"RTSP/1.0 200 OK\nCSeq: 2\nSession: 42"], Verdict.PASS, r"2 replies"),
    ([b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 42", b"RTSP/1.0 404 Not Found\nCSeq: 2\nSession: 42"], Verdict.FAIL,
     r"PLAY answered 'RTSP/1.0 404 Not Found'"),
    ([b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 42", b""], Verdict.FAIL, r"no reply to PLAY"),
    ([b"200 OK\nCSeq: 1\nSession: 42", b""], Verdict.FAIL, r"SETUP answered '200 OK'"),
])
def test_status_table(replies, verdict, reason):
    rec = ServerRecording()
    requests = [b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 5", b"PLAY m RTSP/1.0\nCSeq: 2"]
    rec.main.exchanges = [Exchange(q, r) for q, r in zip(requests, replies)]
    result = LabCheck.check_server(rec, ["rtsp.status"])[0]
    assert result.verdict is verdict and re.search(reason, result.reason), result.reason


@pytest.mark.parametrize("reply2, reason", [
    (b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 42", r"PLAY sent CSeq 2, the reply has CSeq '1'"),
    (b"RTSP/1.0 200 OK\nSession: 42", r"PLAY sent CSeq 2, the reply has no CSeq"),
])
def test_cseq_table(reply2, reason):
    rec = ServerRecording()
    rec.main.exchanges = [Exchange(b"SETUP m RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 5",
                                   b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 42"),
                          Exchange(b"PLAY m RTSP/1.0\nCSeq: 2\nSession: 42", reply2)]
    result = LabCheck.check_server(rec, ["rtsp.cseq"])[0]
    assert result.verdict is Verdict.FAIL and re.search(reason, result.reason), result.reason
    rec.main.exchanges[1].reply = b"RTSP/1.0 200 OK\nCSeq: 2\nSession: 43"
    result = LabCheck.check_server(rec, ["rtsp.session"])[0]
    assert result.verdict is Verdict.FAIL and "Session changed from 42 to 43 in the reply to PLAY" in result.reason


def test_select_report_and_json():
    keys = LabEvidence.select(LabEvidence.SERVER_ITEMS, ["rtp", "pacing"], ["rtp.clock"])
    assert keys == ["rtp.version", "rtp.flags", "rtp.pt", "rtp.seq", "rtp.timestamp", "rtp.ssrc", "rtp.marker",
                    "pacing"]
    with pytest.raises(ValueError, match="unknown rubric item 'rtpx'"):
        LabEvidence.select(LabEvidence.SERVER_ITEMS, ["rtpx"])
    results = [LabEvidence.Result("rtp.pt", Verdict.FAIL, "payload type 96", b"\x80\x60\x00\x01"),
               LabEvidence.Result("rtp.clock", Verdict.FAIL, "1 per frame"),
               LabEvidence.Result("rtsp.errors", Verdict.NA, "lab only")]
    text = LabEvidence.format_text(results, "t")
    assert "FAIL rtp.pt" in text and "evidence: 80 60 00 01" in text and "(advisory)" in text
    assert "score: 0/2 (a required item failed)" in text
    assert LabEvidence.exit_status(results) == 1 and LabEvidence.exit_status(results[1:]) == 0  # advisory only
    report = json.loads(LabEvidence.format_json(results, "x", "server"))
    assert report["items"][0]["evidence"] == "80600001" and report["applicable"] == 2


# --------------------------------------------------------------------------- client mode


class ClientRun:
    """labcheck's client mode on a free port in a thread; `results` once the client has gone."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.ready = threading.Event()
        self.port_box: list[int] = []
        self.results: list[LabEvidence.Result] | None = None
        self.thread = threading.Thread(target=self._run, args=(timeout,), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        self.port = self.port_box[0]

    def _run(self, timeout):
        self.results = labcheck.grade_client(0, str(MOVIE), fps=100, host="127.0.0.1", timeout=timeout,
                                             ready=self.ready, port_box=self.port_box)

    def wait(self) -> dict[str, LabEvidence.Result]:
        self.thread.join(timeout=40)
        assert self.results is not None, "client mode did not finish"
        return {r.key: r for r in self.results}


class MutantLabClient(LabClient):
    """The lab client with one defect; replies read leniently (a 454 has no usable line 3)."""

    def __init__(self, defect, *args):
        super().__init__(*args)
        self.defect = defect

    def send(self, request_code):
        if self.defect != "cseq_stuck" or self.rtspSeq == 0:
            self.rtspSeq += 1
        if request_code == "SETUP":
            request = (f"SETUP {self.fileName} RTSP/1.0\nCSeq: {self.rtspSeq}\n"
                       f"Transport: RTP/UDP; client_port= {self.rtpSocket.getsockname()[1]}")
        elif self.defect == "no_session":
            request = f"{request_code} {self.fileName} RTSP/1.0\nCSeq: {self.rtspSeq}"
        else:
            request = f"{request_code} {self.fileName} RTSP/1.0\nCSeq: {self.rtspSeq}\nSession: {self.sessionId}"
        self.rtspSocket.send(request.encode())
        lines = self.rtspSocket.recv(256).decode().split("\n")
        if request_code == "SETUP":
            self.sessionId = int(lines[2].split(" ")[1])
        return int(lines[0].split(" ")[1])


def _lab_session(client):
    client.listener.start()
    client.send("SETUP")
    client.send("PLAY")
    client.wait_frames(10, timeout=5)
    client.send("PAUSE")
    client.send("PLAY")
    client.wait_frames(20, timeout=5)
    client.send("TEARDOWN")
    client.close()


def test_lab_client_passes_every_item():
    run = ClientRun()
    client = LabClient("127.0.0.1", run.port, 0, "movie.Mjpeg")
    _lab_session(client)
    results = run.wait()
    assert {k: r.verdict for k, r in results.items()} == {i.key: Verdict.PASS for i in LabEvidence.CLIENT_ITEMS}
    assert results["client.request_line"].reason == "5 requests: SETUP PLAY PAUSE PLAY TEARDOWN"
    assert "(the lab's form)" in results["client.transport"].reason
    assert re.search(r"RTP port released \d+ ms after it", results["client.teardown"].reason)
    if os.path.exists("/proc/net/udp"):
        assert re.search(r"bound and read in \d+ probes while PLAYING \(at most \d+ bytes waiting, none dropped\)",
                         results["client.rtp_port"].reason)
    assert len(client.frames) >= 20


@pytest.mark.parametrize("defect, item, reason", [
    ("cseq_stuck", "client.cseq", r"CSeq 1 then 1 on PLAY \(must be \+1 per request\)"),
    ("no_session", "client.session", r"PLAY after SETUP has no Session header \(the server gave \d+\)"),
])
def test_mutant_clients(defect, item, reason):
    run = ClientRun()
    client = MutantLabClient(defect, "127.0.0.1", run.port, 0, "movie.Mjpeg")
    client.listener.start()
    client.send("SETUP")
    client.send("PLAY")
    if defect == "cseq_stuck":
        client.wait_frames(5, timeout=5)
    client.send("TEARDOWN")
    client.close()
    results = run.wait()
    failed = {k: r.reason for k, r in results.items() if r.verdict is Verdict.FAIL}
    assert item in failed and re.search(reason, failed[item]), failed
    if defect == "cseq_stuck":
        assert list(failed) == [item]
    else:
        # the server answers the Session-less PLAY 454, so the client never plays: that is all it costs
        assert set(failed) <= {item, "client.rtp_port"}, failed
    assert results[item].evidence.startswith(b"PLAY movie.Mjpeg RTSP/1.0\n")


def test_no_client_before_the_timeout():
    results = labcheck.grade_client(0, str(MOVIE), host="127.0.0.1", timeout=0.3)
    assert [(r.verdict, r.reason) for r in results] == [(Verdict.FAIL, "no client connected before the timeout")] * 7
    with pytest.raises(labcheck.UsageError, match=r"nosuch.Mjpeg is not a movie in .* \(there: movie.Mjpeg"):
        labcheck.grade_client(0, "nosuch.Mjpeg", media_dir=str(ROOT), host="127.0.0.1", timeout=0.3)


def test_client_that_leaves_without_teardown_and_unbound_port():
    run = ClientRun()
    sock = socket.create_connection(("127.0.0.1", run.port), timeout=5)
    sock.send(b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 9")  # nothing bound there
    session = sock.recv(256).decode().split("\n")[2].split(" ")[1]
    sock.send(f"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: {session}".encode())
    sock.recv(256)
    time.sleep(0.6)
    sock.close()
    results = run.wait()
    assert results["client.rtp_port"].verdict is Verdict.FAIL
    assert "nothing was bound to the client's RTP port while PLAYING" in results["client.rtp_port"].reason
    assert results["client.teardown"].reason == "the client disconnected without TEARDOWN"


@pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="the receive queue is read from Linux's /proc/net/udp")
def test_client_that_binds_its_port_but_never_reads_it():
    """The lab's classic slip: the RTP socket is bound at SETUP but the listening thread never starts."""
    run = ClientRun()
    client = LabClient("127.0.0.1", run.port, 0, "movie.Mjpeg")   # listener thread not started
    client.rtpSocket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.send("SETUP")
    client.send("PLAY")
    time.sleep(1.5)
    client.send("TEARDOWN")
    client.rtspSocket.close()
    client.rtpSocket.close()
    results = run.wait()
    failed = {k: r.reason for k, r in results.items() if r.verdict is Verdict.FAIL}
    assert list(failed) == ["client.rtp_port"], failed
    assert re.search(r"the RTP port is bound but not read: (\d+ datagrams dropped|its receive queue grew)",
                     failed["client.rtp_port"])


def test_our_player_passes_every_item():
    run = ClientRun()
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp_port = rtp.getsockname()[1]
    rtp.close()
    out = subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), "127.0.0.1", str(run.port), str(rtp_port),
                          "movie.Mjpeg", "--headless", "--duration", "1"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "DISPLAY": ""})
    assert out.returncode == 0, out.stderr
    results = run.wait()
    assert {k: r.verdict for k, r in results.items()} == {i.key: Verdict.PASS for i in LabEvidence.CLIENT_ITEMS}, \
        {k: r.reason for k, r in results.items()}
    assert f"client_port {rtp_port}" in results["client.transport"].reason
