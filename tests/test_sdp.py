"""Sdp: descriptions written by GStreamer, ffmpeg and our server, parsed and re-serialized."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st


from RtspHeaders import NptRange, join_url
from Sdp import SdpError, SessionDescription, lab_sdp, movie_sdp, parse_sdp

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire")


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# gst-rtsp-server 1.22 DESCRIBE body (shared/reference/rtsp-dialogue-gstreamer.txt, 371 bytes)
GST_SDP = crlf(
    "v=0\n"
    "o=- 3289055060792802258 1 IN IP4 127.0.0.1\n"
    "s=Session streamed with GStreamer\n"
    "i=rtsp-server\n"
    "t=0 0\n"
    "a=tool:GStreamer\n"
    "a=type:broadcast\n"
    "a=control:*\n"
    "a=range:npt=now-\n"
    "m=video 0 RTP/AVP 26\n"
    "c=IN IP4 0.0.0.0\n"
    "a=rtpmap:26 JPEG/90000\n"
    "a=framerate:25.000000\n"
    "a=control:stream=0\n"
    "a=ts-refclk:local\n"
    "a=mediaclk:sender\n"
    "a=ssrc:949323114 cname:user2185557350@host-78aefa48\n")


def read_wire(name: str) -> str:
    with open(os.path.join(WIRE, name), "rb") as f:
        return f.read().decode()


def test_gstreamer_describe_body():
    assert len(GST_SDP.encode()) == 371  # the Content-Length on the wire
    sdp = parse_sdp(GST_SDP.encode())
    assert sdp.origin == "- 3289055060792802258 1 IN IP4 127.0.0.1"
    assert sdp.name == "Session streamed with GStreamer" and sdp.information == "rtsp-server"
    assert sdp.control == "*"
    assert sdp.range == NptRange(None, None)  # live: npt=now-
    assert sdp.attribute("tool") == "GStreamer"
    [video] = sdp.media
    assert sdp.video is video
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ["26"])
    assert video.rtpmap == {26: ("JPEG", 90000)}
    assert video.framerate == 25.0
    assert video.control == "stream=0"
    assert video.attribute("ssrc") == "949323114 cname:user2185557350@host-78aefa48"
    assert sdp.media_address(video) == "0.0.0.0"
    base = "rtsp://127.0.0.1:26010/movie.Mjpeg/"  # Content-Base of that reply
    assert join_url(base, sdp.control) == base
    assert join_url(base, video.control) == "rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0"
    assert sdp.serialize() == GST_SDP  # already canonical: byte-exact round trip


def test_lf_only_and_blank_lines_parse_the_same():
    lf = GST_SDP.replace("\r\n", "\n")
    assert parse_sdp(lf) == parse_sdp(GST_SDP)
    assert parse_sdp("\n" + lf + "\n\n").serialize() == GST_SDP
    assert parse_sdp(lf.rstrip("\n")).serialize() == GST_SDP  # no final newline


@pytest.mark.parametrize("name,addr,port", [("ffmpeg-rtp-ipv4.sdp", "127.0.0.1", 5004),
                                            ("ffmpeg-rtp-ipv6.sdp", "::1", 5006)])
def test_ffmpeg_rtp_muxer_sdp(name, addr, port):
    """Written by `ffmpeg ... -c:v mjpeg -f rtp rtp://ADDR:PORT` (ffmpeg 5.1): no rtpmap
    (PT 26 is static), no control, session-level c= with the destination."""
    text = read_wire(name)
    sdp = parse_sdp(text)
    video = sdp.video
    assert video is not None and video.port == port and video.formats == ["26"]
    assert video.rtpmap == {26: ("JPEG", 90000)}  # RFC 3551 static payload type
    assert video.control is None and video.framerate is None and video.connection is None
    assert sdp.connection_address == addr and sdp.media_address(video) == addr
    assert video.bandwidths == ["AS:200"]
    assert sdp.attribute("tool") == "libavformat LIBAVFORMAT_VERSION"
    assert sdp.serialize() == text.rstrip("\r\n") + "\r\n"


def test_unknown_lines_and_attributes_are_kept():
    text = crlf("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nu=http://example.com/\ne=a@b.c\n"
                "c=IN IP4 224.2.1.1/127\nb=CT:128\nt=2873397496 2873404696\nr=7d 1h 0 25h\n"
                "z=2882844526 -1h\nk=prompt\ny=unknown session line\na=recvonly\n"
                "a=range:npt=0-34.5\nm=video 51372/2 RTP/AVP 96 26\ni=video\n"
                "c=IN IP4 224.2.1.2/127\nb=AS:300\nk=clear:abc\nq=unknown media line\n"
                "a=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\na=x-dimensions:640,480\n"
                "a=framerate:29.97\nm=audio 0 RTP/AVP 0\na=control:audio\n")
    sdp = parse_sdp(text)
    assert sdp.other == [("y", "unknown session line")]
    assert sdp.attribute("recvonly") == "" and ("recvonly", None) in sdp.attributes
    assert sdp.range == NptRange(0.0, 34.5)
    assert sdp.times == [("t", "2873397496 2873404696"), ("r", "7d 1h 0 25h")]
    video, audio = sdp.media
    assert video.port == 51372 and video.port_count == 2
    assert video.other == [("q", "unknown media line")]
    assert video.rtpmap == {96: ("H264", 90000), 26: ("JPEG", 90000)}
    assert video.fmtp == {96: "packetization-mode=1"}
    assert video.dimensions == (640, 480) and video.framerate == 29.97
    assert sdp.media_address(video) == "224.2.1.2" and sdp.media_address(audio) == "224.2.1.1"
    assert audio.rtpmap == {0: ("PCMU", 8000)} and audio.control == "audio"
    assert sdp.serialize() == text  # written in canonical order already


def test_serialize_puts_lines_in_canonical_order():
    messy = "v=0\ns=name\nt=0 0\no=- 1 1 IN IP4 1.2.3.4\na=control:*\nc=IN IP4 0.0.0.0\n" \
            "m=video 0 RTP/AVP 26\na=control:trackID=0\nc=IN IP4 0.0.0.0\n"
    assert parse_sdp(messy).serialize() == crlf(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=name\nc=IN IP4 0.0.0.0\nt=0 0\na=control:*\n"
        "m=video 0 RTP/AVP 26\nc=IN IP4 0.0.0.0\na=control:trackID=0\n")


@pytest.mark.parametrize("text", [
    "", "\r\n\r\n", "o=- 1 1 IN IP4 1.2.3.4\nv=0\n", "v=1\n", "v=0\nthis is not sdp\n",
    "v=0\nm=video\n", "v=0\nm=video x RTP/AVP 26\n", "v=0\nm=video 70000 RTP/AVP 26\n",
    "v=0\nM=video 0 RTP/AVP 26\n", "<html>404</html>",
])
def test_not_sdp(text):
    with pytest.raises(SdpError):
        parse_sdp(text)
    assert issubclass(SdpError, ValueError)


def test_tolerant_values():
    sdp = parse_sdp("v=0\nm=video 0 RTP/AVP 26\na=rtpmap:bogus\na=framerate:abc\n"
                    "a=range:smpte=0-\na=x-dimensions:wide\n")
    video = sdp.video
    assert video.rtpmap == {26: ("JPEG", 90000)} and video.framerate is None
    assert video.range is None and video.dimensions is None
    assert parse_sdp("v=0\nm=video 0 RTP/AVP 26\na=framerate:12,5\n").video.framerate == 12.5


# --------------------------------------------------------------------------- movie_sdp

MOVIE_SDP = crlf(
    "v=0\n"
    "o=- 3141592653 1 IN IP4 127.0.0.1\n"
    "s=movie.Mjpeg\n"
    "t=0 0\n"
    "a=tool:RtspServer (RFC 2326/2435)\n"
    "a=control:*\n"
    "a=range:npt=0-25.000\n"
    "m=video 0 RTP/AVP 26\n"
    "c=IN IP4 0.0.0.0\n"
    "b=AS:2000\n"
    "a=rtpmap:26 JPEG/90000\n"
    "a=framerate:20\n"
    "a=control:trackID=0\n"
    "a=x-dimensions:384,288\n")


def test_movie_sdp_exact():
    text = movie_sdp("movie.Mjpeg", 25.0, 20.0, "127.0.0.1", 3141592653, width=384, height=288,
                     bitrate_kbps=2000)
    assert text == MOVIE_SDP
    sdp = parse_sdp(text)
    assert sdp.serialize() == text
    assert sdp.control == "*" and sdp.range == NptRange(0.0, 25.0)
    video = sdp.video
    assert video.rtpmap[26] == ("JPEG", 90000) and video.framerate == 20.0
    assert video.control == "trackID=0" and video.dimensions == (384, 288)
    assert join_url("rtsp://127.0.0.1:2048/movie.Mjpeg/", video.control) == \
        "rtsp://127.0.0.1:2048/movie.Mjpeg/trackID=0"


def test_movie_sdp_minimal_and_ipv6():
    text = movie_sdp("clip.mjpeg", None, 29.97, "[::1]", 7, version=3, track_control="stream=0")
    assert text == crlf("v=0\no=- 7 3 IN IP6 ::1\ns=clip.mjpeg\nt=0 0\n"
                        "a=tool:RtspServer (RFC 2326/2435)\na=control:*\na=range:npt=0-\n"
                        "m=video 0 RTP/AVP 26\nc=IN IP6 ::\na=rtpmap:26 JPEG/90000\n"
                        "a=framerate:29.97\na=control:stream=0\n")
    assert parse_sdp(text).range == NptRange(0.0, None)


@pytest.mark.parametrize("kwargs", [
    dict(name="a\r\nb=evil"), dict(name=""), dict(session_id="12ab"), dict(fps=0),
    dict(track_control="x\ny"),
])
def test_movie_sdp_rejects_bad_input(kwargs):
    args = dict(name="movie.Mjpeg", duration=1.0, fps=20.0, server_addr="127.0.0.1",
                session_id=1)
    args.update(kwargs)
    with pytest.raises(SdpError):
        movie_sdp(**args)


@settings(max_examples=100, deadline=None)
@given(frames=st.integers(1, 10**6), fps=st.sampled_from([1.0, 12.5, 20.0, 23.976, 25.0, 30.0, 60.0]),
       sid=st.integers(0, 2**63), addr=st.sampled_from(["127.0.0.1", "192.168.1.20", "::1",
                                                        "fe80::1%eth0"]),
       size=st.none() | st.tuples(st.integers(8, 2040), st.integers(8, 2040)))
def test_movie_sdp_parses_back(frames, fps, sid, addr, size):
    duration = frames / fps
    text = movie_sdp("movie.Mjpeg", duration, fps, addr, sid,
                     width=size and size[0], height=size and size[1])
    sdp = parse_sdp(text)
    assert sdp.serialize() == text
    assert abs(sdp.range.end - duration) <= 0.0005 and sdp.range.start == 0.0
    assert abs(sdp.video.framerate - fps) < 1e-6
    assert sdp.video.dimensions == size
    assert sdp.origin.split()[1] == str(sid)
    assert sdp.origin.split()[5] == addr.split("%")[0]


GST_SDP_CHECK = r"""
import sys
import gi
gi.require_version("GstSdp", "1.0")
from gi.repository import GstSdp
res, msg = GstSdp.SDPMessage.new_from_text(sys.stdin.read())
assert res == GstSdp.SDPResult.OK, res
m = msg.get_media(0)
print(msg.medias_len(), m.get_media(), m.get_format(0), m.get_attribute_val("rtpmap"),
      m.get_attribute_val("framerate"), m.get_attribute_val("control"),
      msg.get_attribute_val("control"), msg.get_attribute_val("range"))
"""


def test_gstreamer_sdp_parser_reads_movie_sdp():
    """GStreamer's own SDP parser (what rtspsrc uses) reads what movie_sdp writes."""
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 (needed for python3-gi)")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version("
                            "'GstSdp', '1.0'); from gi.repository import GstSdp"],
                           capture_output=True, timeout=60)
    if probe.returncode != 0:
        print("skipping: GstSdp introspection not available:", probe.stderr.decode()[-200:])
        pytest.skip("GstSdp introspection not available")
    out = subprocess.run(["/usr/bin/python3", "-c", GST_SDP_CHECK], input=MOVIE_SDP,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "video", "26", "26", "JPEG/90000", "20", "trackID=0", "*",
                                  "npt=0-25.000"]


def test_ffmpeg_reads_movie_sdp_as_input_description(tmp_path):
    """ffmpeg's SDP demuxer accepts our description (with a real port, as for --sdp files)."""
    if shutil.which("ffprobe") is None:
        print("skipping: ffprobe not installed")
        pytest.skip("ffprobe not installed")
    sdp = parse_sdp(MOVIE_SDP)
    sdp.video.port = 0  # port 0 = "no media"; ffprobe must still parse the description
    sdp.media[0].connection = "IN IP4 127.0.0.1"
    path = tmp_path / "movie.sdp"
    path.write_text(sdp.serialize())
    out = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist", "file,udp,rtp",
                          "-listen_timeout", "1",  # no RTP will come: stop waiting after 1 s
                          "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert "mjpeg" in out.stdout, (out.stdout, out.stderr)
    assert isinstance(sdp, SessionDescription)


@pytest.mark.parametrize("name,addr,budget", [
    ("movie.Mjpeg", "127.0.0.1", 180),
    ("movie.Mjpeg", "fe80::1234:5678:9abc:def0", 140),   # IPv6 origin: optional lines dropped first
    ("x" * 255, "127.0.0.1", 150),                       # the longest servable name: s= shortened
])
def test_lab_sdp_fits_its_budget_and_keeps_the_required_lines(name, addr, budget):
    text = lab_sdp(name, 25.0, 20.0, addr, 1733100000, budget)
    assert len(text.encode()) <= budget and "\r" not in text
    sdp = parse_sdp(text)
    assert [line[:2] for line in text.splitlines()[:5]] == ["v=", "o=", "s=", "t=", "m="]
    assert sdp.media[0].formats == ["26"] and sdp.origin.endswith(addr)
    if budget >= 180:
        assert "a=rtpmap:26 JPEG/90000\na=range:npt=0-25.000\na=framerate:20\n" in text
    if len(name) > 100:
        assert text.splitlines()[2].endswith("...")


def test_lab_sdp_too_small_a_budget_is_an_error():
    with pytest.raises(SdpError):
        lab_sdp("movie.Mjpeg", 25.0, 20.0, "127.0.0.1", 1, 40)
