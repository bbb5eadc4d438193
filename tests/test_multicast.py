"""Multicast (RFC 2326 12.39, RFC 3550 6.2), all inside a network namespace made for the test.

Multicast never touches the host's interfaces: the server, ffmpeg, GStreamer, our player
and the probes run with ``ip netns exec`` in a namespace that has only loopback (see
netns.py).  Checked: ffmpeg ``-rtsp_transport udp_multicast``, GStreamer
``protocols=udp-mcast`` and our player ``--transport multicast`` decode >= 98% of a stored
movie's frames and of a live source's; three viewers cost the server one stream (its UDP
sends with three viewers <= 1.1 x one viewer, about 3 x for unicast); the last TEARDOWN
silences the group within 1 s (and a BYE goes to the group); a multicast PAUSE or seek of a
broadcast, and destinations outside the range, are refused with a reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media import split_jpegs
from rtsp_tools import gst_exit_ok, wait_for
from PIL import Image

import netns
from conftest import MOVIE, ROOT
from VideoStream import VideoStream, write_mjpeg


REASON = netns.unavailable()
if REASON:
    print(f"SKIP reason: multicast tests need a network namespace: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no network namespace: {REASON}")

FFMPEG = shutil.which("ffmpeg")
GST = shutil.which("gst-launch-1.0")
FEEDER = str(Path(__file__).resolve().parent / "live_feeder.py")
PROBE = str(Path(__file__).resolve().parent / "mcast_probe.py")
STORED = 200  # frames of the stored movie (movie.Mjpeg's first 200), served at 100 fps: 2 s
LOOP = 100  # the live source loops over movie.Mjpeg's first 100 frames at 20 fps
RANGE = "239.255.42.0/24"


def digest(jpeg: bytes) -> str:
    return hashlib.sha1(Image.open(io.BytesIO(jpeg)).convert("RGB").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def truth():
    stream = VideoStream(MOVIE)
    return {digest(stream.frame(i)): i for i in range(STORED)}


class NsServer:
    """Server.py inside a fresh namespace, with a stored movie and a live source."""

    def __init__(self, ns, folder, multicast=True, extra=()):
        self.ns = ns
        self.log_path = folder / f"server-{ns}.log"
        self.log = open(self.log_path, "w")
        argv = [sys.executable, str(ROOT / "Server.py"), "8554", "--host", "127.0.0.1", "--media-dir", str(folder),
                "--fps", "100", "--live", f"cam={sys.executable} {FEEDER} {MOVIE} --fps 20 --frames {LOOP}"]
        if multicast:
            argv += ["--multicast", RANGE]
        argv += list(extra)
        self.proc = subprocess.Popen(netns.exec_args(ns, argv), stderr=self.log, cwd=str(ROOT))
        self.wait_log("live cam: started", 15)
        self.wait_log("on RTSP port", 15)

    def text(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle, timeout, count=1):
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            assert time.monotonic() < deadline, f"server log has no {needle!r}:\n{self.text()[-3000:]}"
            assert self.proc.poll() is None, self.text()
            time.sleep(0.05)

    def url(self, name):
        return f"rtsp://127.0.0.1:8554/{name}"

    def run(self, argv, timeout=40):
        return subprocess.run(netns.exec_args(self.ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, cwd=str(ROOT))

    def popen(self, argv):
        return subprocess.Popen(netns.exec_args(self.ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=str(ROOT))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcast")
    stream = VideoStream(MOVIE)
    write_mjpeg(folder / "short.Mjpeg", [stream.frame(i) for i in range(STORED)])
    return folder


@pytest.fixture(scope="module")
def server(media):
    with netns.namespace() as ns:
        srv = NsServer(ns, media)
        yield srv
        srv.stop()




def wait_group_idle(srv, name, stops):
    """The group of `name` stopped `stops` times (its last viewer left): the next client starts it anew."""
    srv.wait_log(f"multicast {name}: last viewer left", 10, count=stops)


def client_argv(kind, url, tmp, frames=None):
    if kind == "ffmpeg":
        argv = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "udp_multicast",
                "-i", url, "-map", "0", "-c", "copy"]
        if frames:
            argv += ["-frames:v", str(frames)]
        return argv + ["-f", "mjpeg", "-y", str(tmp / "ffmpeg.mjpeg")]
    if kind == "gst":
        eos = ["identity", f"eos-after={frames + 1}", "!"] if frames else []
        return [GST, "-q", "rtspsrc", f"location={url}", "protocols=udp-mcast", "!", "rtpjpegdepay", "!",
                *eos, "multifilesink", f"location={tmp}/g%05d.jpg"]
    argv = [sys.executable, str(ROOT / "ClientLauncher.py"), url, "--transport", "multicast", "--headless",
            "--save", str(tmp / "player.Mjpeg"), "--stats-json", str(tmp / "stats.json")]
    return argv + (["--duration", str(frames / 20 + 0.5)] if frames else ["--duration", "20"])


def received(kind, tmp):
    if kind == "ffmpeg":
        return split_jpegs((tmp / "ffmpeg.mjpeg").read_bytes())
    if kind == "gst":
        return [f.read_bytes() for f in sorted(tmp.glob("g*.jpg"))]
    stream = VideoStream(tmp / "player.Mjpeg")
    return [stream.frame(i) for i in range(stream.frame_count)]


CLIENTS = [pytest.param("ffmpeg", marks=pytest.mark.skipif(FFMPEG is None, reason="ffmpeg missing")),
           pytest.param("gst", marks=pytest.mark.skipif(GST is None, reason="GStreamer missing")),
           "player"]
_stops = {"short.Mjpeg": 0}


@pytest.mark.parametrize("kind", CLIENTS)
def test_stored_movie_over_multicast(server, truth, tmp_path, kind):
    """The broadcast starts when the client plays (no one else watches): >= 98% of 200 frames."""
    result = server.run(client_argv(kind, server.url("short.Mjpeg"), tmp_path))
    assert (gst_exit_ok(result.returncode, result.stderr) if kind == "gst" else result.returncode == 0), \
        result.stderr[-2000:]
    _stops["short.Mjpeg"] += 1
    wait_group_idle(server, "short.Mjpeg", _stops["short.Mjpeg"])
    frames = received(kind, tmp_path)
    indexes = [truth.get(digest(f)) for f in frames]
    assert None not in indexes, f"{kind}: a frame that is not a source frame"
    assert indexes == sorted(indexes), f"{kind}: frames out of order"
    print(f"stored movie over multicast, {kind}: {len(set(indexes))}/{STORED} frames decoded")
    assert len(set(indexes)) >= 0.98 * STORED, f"{kind}: {len(set(indexes))}/{STORED} frames"


@pytest.mark.parametrize("kind", CLIENTS)
def test_live_source_over_multicast(server, truth, tmp_path, kind):
    """40 frames of the live source: every one a source frame, >= 98% of the span they cover."""
    result = server.run(client_argv(kind, server.url("cam"), tmp_path, frames=40))
    assert (gst_exit_ok(result.returncode, result.stderr) if kind == "gst" else result.returncode == 0), \
        result.stderr[-2000:]
    indexes = [truth.get(digest(f)) for f in received(kind, tmp_path)]
    assert len(indexes) >= 39 and None not in indexes, (kind, len(indexes))
    span = sum((b - a) % LOOP for a, b in zip(indexes, indexes[1:])) + 1
    print(f"live source over multicast, {kind}: {len(indexes)} frames decoded of {span} sent meanwhile")
    assert len(indexes) >= 0.98 * span, f"{kind}: {len(indexes)} of {span}"


def sends_while_watching(srv, transport, viewers, window=2.0):
    """The namespace's UDP sends in `window` seconds while `viewers` of our players watch cam.
    The players' own reports are held off (--rtcp-min 60), so the count is the server's."""
    plays = srv.text().count("PLAY rtsp://127.0.0.1:8554/cam")
    procs = [srv.popen([sys.executable, str(ROOT / "ClientLauncher.py"), srv.url("cam"), "--transport", transport,
                        "--headless", "--duration", "30", "--rtcp-min", "60"]) for _ in range(viewers)]
    try:
        srv.wait_log("PLAY rtsp://127.0.0.1:8554/cam", 20, count=plays + viewers)
        first = netns.udp_out_datagrams(srv.ns)
        time.sleep(window)  # the measurement window itself
        return netns.udp_out_datagrams(srv.ns) - first
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def test_three_viewers_cost_one_stream(server):
    counts = {(t, n): sends_while_watching(server, t, n) for t in ("multicast", "udp") for n in (1, 3)}
    print("server UDP sends in 2 s: " + ", ".join(f"{t} x{n}: {c}" for (t, n), c in counts.items()))
    assert counts[("multicast", 1)] > 20  # the stream was flowing: 20 frames/s
    assert counts[("multicast", 3)] <= 1.1 * counts[("multicast", 1)]
    assert counts[("udp", 3)] >= 2.5 * counts[("udp", 1)]


def test_last_teardown_silences_the_group(server):
    result = server.run([sys.executable, PROBE, "teardown", server.url("cam")])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "multicast" in out["transport"] and "destination=239.255.42." in out["transport"], out
    assert "ttl=1" in out["transport"] and "port=" in out["transport"], out
    assert out["teardown_status"] == 200 and out["packets_before"] >= 20, out
    last = out["last_packet_after_teardown_s"]
    assert last is None or last < 1.0, out  # nothing reaches the group a second after the last TEARDOWN
    assert out["bye_seen"] >= 1, out  # RFC 3550 6.6: BYE to the group


def test_pause_seek_and_foreign_destinations_are_refused(server):
    result = server.run([sys.executable, PROBE, "refuse", server.url("short.Mjpeg")])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["unicast_elsewhere"][0] == 461 and "not the requesting host" in out["unicast_elsewhere"][1]
    assert out["outside_range"][0] == 461 and "outside the server's multicast range" in out["outside_range"][1]
    assert out["not_multicast"][0] == 461 and "not a multicast address" in out["not_multicast"][1]
    assert out["pause"][0] == 455 and "cannot be paused" in out["pause"][1], out
    assert out["seek"][0] == 457 and "cannot be seeked" in out["seek"][1], out
    _stops["short.Mjpeg"] += 1


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg missing")
def test_ipv6_group(media, tmp_path):
    """--multicast ff15::/16: ffmpeg and our player receive the live source from group ff15::1."""
    with netns.namespace(v6=True) as ns:
        log = open(tmp_path / "server.log", "w")
        server = subprocess.Popen(netns.exec_args(ns, [
            sys.executable, str(ROOT / "Server.py"), "8554", "--host", "::1", "--media-dir", str(media),
            "--multicast", "ff15::/16", "--live", f"cam={sys.executable} {FEEDER} {MOVIE} --fps 20 --frames {LOOP}"]),
            stderr=log, cwd=str(ROOT))
        try:
            deadline = time.monotonic() + 15
            while "live cam: started" not in (tmp_path / "server.log").read_text():
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.05)
            url = "rtsp://[::1]:8554/cam"
            ffmpeg = subprocess.run(netns.exec_args(ns, [FFMPEG, "-nostdin", "-loglevel", "error", "-rtsp_transport",
                                                         "udp_multicast", "-i", url, "-frames:v", "20", "-f", "null",
                                                         "-"]), capture_output=True, text=True, timeout=30)
            assert ffmpeg.returncode == 0, ffmpeg.stderr
            player = subprocess.run(netns.exec_args(ns, [
                sys.executable, str(ROOT / "ClientLauncher.py"), url, "--transport", "multicast", "--headless",
                "--duration", "1.5", "--stats-json", str(tmp_path / "stats.json")]),
                capture_output=True, text=True, timeout=30, cwd=str(ROOT))
            assert player.returncode == 0, player.stderr
            stats = json.loads((tmp_path / "stats.json").read_text())
            assert stats["frames_completed"] >= 20 and stats["packets_lost"] == 0, stats
            assert "sending to ff15::1 port" in (tmp_path / "server.log").read_text()
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()


RR_LINE = re.compile(r"session group-(?P<name>\S+): RR fraction lost (?P<fraction>[\d.]+)%, cumulative lost "
                     r"(?P<lost>-?\d+), jitter (?P<jitter>[\d.]+) ms, RTT (?P<rtt>[^,]+), from SSRC (?P<ssrc>[0-9A-F]{8})")


def group_reports(text, name, ssrc):
    """(fraction lost %, cumulative lost, jitter ms) of each RR the group session `name` logged from `ssrc`."""
    return [(float(m["fraction"]), int(m["lost"]), float(m["jitter"])) for m in RR_LINE.finditer(text)
            if m["name"] == name and int(m["ssrc"], 16) == ssrc]


def test_server_reads_members_receiver_reports_on_the_group(server, tmp_path):
    """RFC 3550 6.2: our player reports to the group's RTCP port (every 0.3 s here); the server
    joined that port while the group sends and logs each RR per reporter SSRC: loss 0, jitter
    small, about one report per 0.3 s (the first comes sooner, RFC 3550 6.3 halves it)."""
    before = len(server.text())
    result = server.run([sys.executable, str(ROOT / "ClientLauncher.py"), server.url("cam"), "--transport",
                         "multicast", "--headless", "--duration", "3", "--rtcp-min", "0.3",
                         "--stats-json", str(tmp_path / "stats.json")])
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    deadline = time.monotonic() + 5  # the last RR (with the BYE) may be read just after the player exits
    while len(group_reports(server.text()[before:], "cam", stats["our_ssrc"])) < stats["rr_sent"] - 1:
        assert time.monotonic() < deadline, server.text()[before:][-3000:]
        time.sleep(0.1)
    reports = group_reports(server.text()[before:], "cam", stats["our_ssrc"])
    print(f"group cam: {len(reports)} RRs from SSRC {stats['our_ssrc']:08X} read of {stats['rr_sent']} sent; "
          f"loss {max(r[0] for r in reports)}% / {max(r[1] for r in reports)} packets, "
          f"jitter max {max(r[2] for r in reports):.2f} ms")
    assert stats["rr_sent"] >= 6, stats  # 3 s at 0.3 s: the player did report
    assert len(reports) >= stats["rr_sent"] - 1  # each one heard on the group (one may cross the BYE)
    assert all(fraction == 0.0 and lost == 0 for fraction, lost, _ in reports), reports
    assert all(jitter < 20.0 for _, _, jitter in reports), reports
    own = server.text()[before:].count(f"from SSRC {stats['sender_ssrc']:08X}")
    assert own == 0, "the group's own SRs, looped back, were taken for a member's report"


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg missing")
def test_server_reads_ffmpeg_receiver_reports_on_the_group(server):
    """ffmpeg (-rtsp_transport udp_multicast) reports to the group too, about every 280 KB
    received (libavformat rtpdec): 80 frames of cam (4 s) bring >= 2 RRs, all read, loss 0."""
    before = len(server.text())
    result = server.run([FFMPEG, "-nostdin", "-loglevel", "error", "-rtsp_transport", "udp_multicast", "-i",
                         server.url("cam"), "-frames:v", "80", "-f", "null", "-"])
    assert result.returncode == 0, result.stderr[-2000:]
    time.sleep(0.5)
    found = [m for m in RR_LINE.finditer(server.text()[before:]) if m["name"] == "cam"]
    reporters = {m["ssrc"] for m in found}
    print(f"group cam: {len(found)} RRs from ffmpeg (SSRC {', '.join(sorted(reporters))}), "
          f"jitter max {max(float(m['jitter']) for m in found) if found else 0:.2f} ms")
    assert len(reporters) == 1 and len(found) >= 2, server.text()[before:][-3000:]
    assert all(float(m["fraction"]) == 0.0 and int(m["lost"]) == 0 for m in found), [m[0] for m in found]


def test_group_rtcp_keeps_a_member_session_alive(media):
    """RFC 2326 12.37: a member that sends no RTSP request but reports to the group (RTCP) stays;
    with --session-timeout 2, 4 s of RRs only keep the session (GET_PARAMETER 200), 4 s of
    silence end it (454 Session Not Found)."""
    with netns.namespace() as ns:
        srv = NsServer(ns, media, extra=["--session-timeout", "2"])
        try:
            probe = srv.popen([sys.executable, PROBE, "liveness", srv.url("cam"), "4"])
            srv.wait_log("multicast cam: sending to", 15)
            group = re.search(r"multicast cam: sending to (\S+) port", srv.text())[1]
            # the probe never joins: the group's membership here is the server's, for its RTCP port
            wait_for(lambda: group in igmp_groups(srv), 5, f"the server joining {group}")
            stdout, stderr = probe.communicate(timeout=40)
            assert probe.returncode == 0, stderr
            srv.wait_log("multicast cam: last viewer left", 5)
            wait_for(lambda: group not in igmp_groups(srv), 5, f"the server leaving {group}")
            out = json.loads(stdout)
            print(f"liveness: {out}")
            assert out["reports_sent"] >= 8, out
            assert out["status_while_reporting"] == 200, (out, srv.text()[-3000:])
            assert out["status_after_silence"] != 200, (out, srv.text()[-3000:])
            assert srv.text().count("no request or RTCP for 2 s, torn down") == 1, srv.text()[-3000:]
            assert len([m for m in RR_LINE.finditer(srv.text()) if m["ssrc"] == "5EED0001"]) >= 8
        finally:
            srv.stop()


def igmp_groups(srv) -> set[str]:
    """The IPv4 groups joined on any interface of the server's namespace (/proc/net/igmp lists
    each as 8 hex digits, the address as a little-endian 32-bit number)."""
    text = srv.run(["cat", "/proc/net/igmp"], timeout=10).stdout
    found = set()
    for word in re.findall(r"^\s+([0-9A-F]{8})\s", text, re.M):
        found.add(socket.inet_ntoa(struct.pack("<I", int(word, 16))))
    return found
