"""RtspClient (sans-IO): requests on the wire, CSeq matching, Content-Base + a=control, session, keepalive.

Replies are the GStreamer RTSP server's, byte for byte (shared/reference/rtsp-dialogue-gstreamer.txt).
"""

from __future__ import annotations

import pytest

from RtspClient import (ClientState, Dialect, RtspClientProtocol, describe_failure,
                        make_url, parse_rtsp_url,
                        parse_sdp_info)

URL = "rtsp://127.0.0.1:26010/movie.Mjpeg"
GST_SDP = (b"v=0\r\no=- 3289055060792802258 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\n"
           b"i=rtsp-server\r\nt=0 0\r\na=tool:GStreamer\r\na=type:broadcast\r\na=control:*\r\n"
           b"a=range:npt=now-\r\nm=video 0 RTP/AVP 26\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:26 JPEG/90000\r\n"
           b"a=framerate:25.000000\r\na=control:stream=0\r\na=ts-refclk:local\r\na=mediaclk:sender\r\n"
           b"a=ssrc:949323114 cname:user2185557350@host-78aefa48\r\n")
OPTIONS_REPLY = (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, ANNOUNCE, GET_PARAMETER, PAUSE, "
                 b"PLAY, RECORD, SETUP, SET_PARAMETER, TEARDOWN\r\nServer: GStreamer RTSP server\r\n"
                 b"Date: Sun, 22 Nov 2026 02:38:10 GMT\r\n\r\n")
DESCRIBE_REPLY = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n"
                  b"Content-Base: rtsp://127.0.0.1:26010/movie.Mjpeg/\r\nServer: GStreamer RTSP server\r\n"
                  b"Date: Sun, 22 Nov 2026 02:38:10 GMT\r\nContent-Length: %d\r\n\r\n" % len(GST_SDP)) + GST_SDP
SETUP_REPLY = (b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=49442-49443;"
               b"server_port=26110-26111;ssrc=3895856A;mode=\"PLAY\"\r\nServer: GStreamer RTSP server\r\n"
               b"Session: ckrZFTOv.Df8d.1b\r\nDate: Sun, 22 Nov 2026 02:38:10 GMT\r\n\r\n")
PLAY_REPLY = (b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nRTP-Info: url=rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0;"
              b"seq=23457;rtptime=135219551\r\nRange: npt=now-\r\nServer: GStreamer RTSP server\r\n"
              b"Session: ckrZFTOv.Df8d.1b\r\nDate: Sun, 22 Nov 2026 02:38:10 GMT\r\n\r\n")


def lines(data: bytes) -> list[str]:
    assert data.endswith(b"\r\n\r\n")
    return data.decode().split("\r\n")[:-2]


def full_dialogue(split: int | None = None) -> RtspClientProtocol:
    p = RtspClientProtocol(URL, user_agent="T/1")
    for build, reply in ((p.options, OPTIONS_REPLY), (p.describe, DESCRIBE_REPLY),
                         (lambda: p.setup("RTP/AVP;unicast;client_port=49442-49443"), SETUP_REPLY),
                         (p.play, PLAY_REPLY)):
        build()
        if split:
            replies = []
            for i in range(0, len(reply), split):
                replies += p.feed(reply[i:i + split]).replies
        else:
            replies = p.feed(reply).replies
        assert len(replies) == 1 and replies[0].ok
    return p


def test_requests_on_the_wire():
    p = RtspClientProtocol(URL, user_agent="T/1")
    assert lines(p.options()[1]) == [f"OPTIONS {URL} RTSP/1.0", "CSeq: 1", "User-Agent: T/1"]
    p.feed(OPTIONS_REPLY)
    assert lines(p.describe()[1]) == [f"DESCRIBE {URL} RTSP/1.0", "CSeq: 2", "User-Agent: T/1",
                                      "Accept: application/sdp"]
    p.feed(DESCRIBE_REPLY)
    # SETUP goes to Content-Base + media a=control (RFC 2326 C.1.1)
    assert lines(p.setup("RTP/AVP;unicast;client_port=49442-49443")[1]) == [
        "SETUP rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0 RTSP/1.0", "CSeq: 3", "User-Agent: T/1",
        "Transport: RTP/AVP;unicast;client_port=49442-49443"]
    p.feed(SETUP_REPLY)
    # PLAY/PAUSE/TEARDOWN go to the aggregate URL (a=control:* = Content-Base) with the Session
    assert lines(p.play(12.5)[1]) == [
        "PLAY rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0", "CSeq: 4", "User-Agent: T/1",
        "Session: ckrZFTOv.Df8d.1b", "Range: npt=12.500-"]
    assert lines(p.pause()[1])[0] == "PAUSE rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0"
    assert lines(p.teardown()[1])[3] == "Session: ckrZFTOv.Df8d.1b"
    assert lines(p.keepalive()[1])[0] == "GET_PARAMETER rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0"


@pytest.mark.parametrize("split", [None, 1, 7])
def test_replies_change_state_whatever_the_tcp_split(split):
    p = full_dialogue(split)
    assert p.state is ClientState.PLAYING
    assert (p.session_id, p.session_timeout) == ("ckrZFTOv.Df8d.1b", 60)
    assert p.transport.server_port == (26110, 26111) and p.transport.ssrc == 0x3895856A
    assert (p.rtp_info[0].seq, p.rtp_info[0].rtptime) == (23457, 135219551)
    assert p.play_range.start is None            # npt=now-
    assert p.sdp.framerate == 25.0 and p.sdp.range_end is None and p.sdp.clock_rate == 90000
    assert "GET_PARAMETER" in p.public and p.use_get_parameter
    assert p.pending == {}


def test_cseq_matching_out_of_order_and_unknown():
    p = RtspClientProtocol(URL)
    c1, _ = p.options()
    c2, _ = p.describe()
    ev = p.feed(DESCRIBE_REPLY + OPTIONS_REPLY)      # replies in the other order
    assert [(r.request.cseq, r.request.method) for r in ev.replies] == [(c2, "DESCRIBE"), (c1, "OPTIONS")]
    ev = p.feed(b"RTSP/1.0 200 OK\r\nCSeq: 99\r\n\r\n")
    assert ev.replies == [] and "unknown CSeq 99" in ev.errors[0]


def test_error_reply_keeps_state_and_describes():
    p = RtspClientProtocol(URL)
    p.setup("RTP/AVP;unicast;client_port=5000-5001")
    ev = p.feed(b"RTSP/1.0 461 Unsupported transport\r\nCSeq: 1\r\n\r\n")
    assert not ev.replies[0].ok and p.state is ClientState.INIT and p.session_id is None
    text = describe_failure("SETUP", 461, "Unsupported transport", URL)
    assert "--transport tcp" in text
    assert "not found" in describe_failure("DESCRIBE", 404, "Not Found", URL)


def test_session_timeout_and_keepalive_timer():
    p = RtspClientProtocol(URL)
    p.setup("RTP/AVP;unicast;client_port=5000-5001", now=100.0)
    p.feed(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 12345678;timeout=20\r\n"
           b"Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001\r\n\r\n")
    assert (p.session_id, p.session_timeout) == ("12345678", 20)
    assert not p.keepalive_due(109.9)
    assert p.keepalive_due(110.0)                    # half the timeout (RFC 2326 12.37)
    p.keepalive(now=110.0)
    assert not p.keepalive_due(115.0)


def test_keepalive_falls_back_to_options_without_get_parameter():
    p = RtspClientProtocol(URL)
    p.options()
    p.feed(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN\r\n\r\n")
    assert lines(p.keepalive()[1])[0] == f"OPTIONS {URL} RTSP/1.0"


def test_interleaved_frames_between_replies():
    p = full_dialogue()
    rtp = b"\x80\x1a\x00\x01" + b"\x00" * 8 + b"payload"
    data = b"$\x00" + len(rtp).to_bytes(2, "big") + rtp + b"$\x01\x00\x04abcd"
    p.pause()
    data += b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: ckrZFTOv.Df8d.1b\r\n\r\n"
    ev = p.feed(data[:5])
    ev2 = p.feed(data[5:])
    frames = ev.interleaved + ev2.interleaved
    assert [(f.channel, f.data) for f in frames] == [(0, rtp), (1, b"abcd")]
    assert ev2.replies[0].request.method == "PAUSE" and p.state is ClientState.READY


def test_server_request_is_answered():
    p = full_dialogue()
    ev = p.feed(b"GET_PARAMETER rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\r\nCSeq: 7\r\n\r\n")
    assert ev.server_requests[0].reply.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n")


@pytest.mark.parametrize("url,expected", [
    ("rtsp://127.0.0.1:2048/movie.Mjpeg", ("127.0.0.1", 2048, "movie.Mjpeg")),
    ("rtsp://example.com/live/cam", ("example.com", 554, "live/cam")),
    ("rtsp://[::1]:8554/a", ("::1", 8554, "a")),
])
def test_parse_rtsp_url(url, expected):
    assert parse_rtsp_url(url) == expected


def test_make_url_lab_arguments():
    assert make_url("localhost", 2048, "movie.Mjpeg") == "rtsp://localhost:2048/movie.Mjpeg"
    assert make_url("::1", 2048, "movie.Mjpeg") == "rtsp://[::1]:2048/movie.Mjpeg"


def test_sdp_info_ffmpeg_and_ours():
    ff = parse_sdp_info("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n"
                        "a=tool:libavformat\nm=video 47000 RTP/AVP 26\nb=AS:200\n")
    assert (ff.media_port, ff.connection, ff.payload_type, ff.clock_rate) == (47000, "127.0.0.1", 26, 90000)
    ours = parse_sdp_info("v=0\r\ns=m\r\nt=0 0\r\na=control:*\r\na=range:npt=0-25.000\r\n"
                          "m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=framerate:20\r\n"
                          "a=control:trackID=0\r\n")
    assert (ours.range_start, ours.range_end, ours.framerate, ours.media_control, ours.session_control) == \
        (0.0, 25.0, 20.0, "trackID=0", "*")
    assert ff.bandwidth_kbps == 200.0
    with pytest.raises(ValueError):
        parse_sdp_info("v=0\r\ns=x\r\n")


GST_SDP_TEXT = ("v=0\r\no=- 3289055060792802258 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\n"
           "i=rtsp-server\r\nt=0 0\r\na=tool:GStreamer\r\na=type:broadcast\r\na=control:*\r\n"
           "a=range:npt=now-\r\nm=video 0 RTP/AVP 26\r\nc=IN IP4 0.0.0.0\r\na=framerate:25.000000\r\n"
           "a=control:stream=0\r\na=ts-refclk:local\r\na=mediaclk:sender\r\n"
           "a=ssrc:949323114 cname:user2185557350@host-78aefa48\r\n")


@pytest.mark.parametrize("text,expected", [
    # GStreamer (captured; its a=rtpmap line removed: static PT 26 still gives JPEG/90000)
    (GST_SDP_TEXT, dict(session_control="*", media_control="stream=0", range_start=None, range_end=None,
                   framerate=25.0, encoding="JPEG", clock_rate=90000, connection="0.0.0.0")),
    # session-level framerate and range, audio before video, dimensions
    ("v=0\ns=x\nt=0 0\na=framerate:12.5\na=range:npt=1.5-9\nm=audio 5002 RTP/AVP 0\n"
     "m=video 5004 RTP/AVP 96\nc=IN IP4 239.1.1.1/16\na=rtpmap:96 JPEG/90000\na=x-dimensions:320,240\n",
     dict(media_port=5004, payload_type=96, framerate=12.5, range_start=1.5, range_end=9.0,
          connection="239.1.1.1", width=320, height=240)),
])
def test_sdp_info_via_sdp_module(text, expected):
    info = parse_sdp_info(text)
    assert {k: getattr(info, k) for k in expected} == expected


# -- the lab dialect (the course hand-out's form) ----------------------------------------------

def lab_protocol() -> RtspClientProtocol:
    return RtspClientProtocol("rtsp://127.0.0.1:2048/movie.Mjpeg", dialect=Dialect.LAB)


def test_lab_requests_on_the_wire():
    """Exactly what the hand-out client sends: three LF lines, no blank line, fields by position."""
    p = lab_protocol()
    assert p.setup("RTP/UDP; client_port= 25000")[1] == \
        b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25000"
    p.feed(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456")
    p.finish_unterminated()
    assert p.play(3.0)[1] == b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456"     # no Range
    assert p.pause()[1] == b"PAUSE movie.Mjpeg RTSP/1.0\nCSeq: 3\nSession: 123456"
    assert p.teardown()[1] == b"TEARDOWN movie.Mjpeg RTSP/1.0\nCSeq: 4\nSession: 123456"
    assert not p.keepalive_due(1e9)                  # lab servers know no keepalive
    with pytest.raises(ValueError, match="no DESCRIBE"):
        p.describe()


def test_lab_request_before_setup_sends_session_0():
    p = lab_protocol()
    assert p.play()[1] == b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 1\nSession: 0"   # as the hand-out does


# (reply bytes, as fed, split into reads) -> (status, session) of the one reply; None: no end
LAB_REPLIES = [
    ("hand-out: no end at all", [b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456"], None),
    ("hand-out, byte by byte", [bytes([c]) for c in b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 654321"], None),
    ("final LF only", [b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456\n"], None),
    ("blank line", [b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456\n\n"], (200, "123456")),
    ("CRLF, no end", [b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 123456"], None),
    ("CRLF and a blank line", [b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 123456\r\n\r\n"], (200, "123456")),
    ("mixed ends, spacing", [b"RTSP/1.0 200 OK\nCSeq:1\r\nSession :  77;timeout=60"], None),
    ("reason phrase missing", [b"RTSP/1.0 200\nCSeq: 1\nSession: 5"], None),
    ("split in the session", [b"RTSP/1.0 200 OK\nCSeq: 1\nSess", b"ion: 42"], None),
]


@pytest.mark.parametrize("name,reads,complete", LAB_REPLIES, ids=[r[0] for r in LAB_REPLIES])
def test_lab_replies_parsed_tolerantly(name, reads, complete):
    p = lab_protocol()
    p.setup("RTP/UDP; client_port= 25000")
    replies = []
    for data in reads:
        replies += p.feed(data).replies
    if complete is None:
        assert replies == [] and p.unterminated      # the caller waits for silence, then:
        replies = p.finish_unterminated().replies
        assert p.lab_form_replies == 1
    assert len(replies) == 1 and replies[0].ok and not p.unterminated
    assert p.state is ClientState.READY
    expected_session = {"mixed ends, spacing": "77", "reason phrase missing": "5",
                        "split in the session": "42", "hand-out, byte by byte": "654321"}.get(name, "123456")
    assert p.session_id == expected_session
    assert p.play()[1].endswith(f"\nSession: {expected_session}".encode())


def test_lab_replies_back_to_back_and_wrong_cseq():
    p = lab_protocol()
    p.setup("RTP/UDP; client_port= 25000")
    # a reply ends where the next one starts (no blank line between them)
    ev = p.feed(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 11")
    assert ev.replies == []
    p.finish_unterminated()
    p.play()
    ev = p.feed(b"RTSP/1.0 200 OK\nCSeq: 7\nSession: 11")      # a wrong CSeq: the only request out
    ev = p.finish_unterminated()
    assert ev.replies[0].request.method == "PLAY" and p.state is ClientState.PLAYING
    p.pause()
    ev = p.feed(b"RTSP/1.0 454 Session Not Found\nCSeq: 3\nSession: 11")
    ev = p.finish_unterminated()
    assert not ev.replies[0].ok and ev.replies[0].response.status == 454 and p.state is ClientState.PLAYING


def test_lab_junk_before_reply_and_two_replies_in_one_read():
    p = lab_protocol()
    p.setup("RTP/UDP; client_port= 25000")
    p.play()
    ev = p.feed(b"hello\nRTSP/1.0 200 OK\nCSeq: 1\nSession: 9\nRTSP/1.0 200 OK\nCSeq: 2\nSession: 9")
    assert [r.request.method for r in ev.replies] == ["SETUP"]
    assert [r.request.method for r in p.finish_unterminated().replies] == ["PLAY"]
    assert p.state is ClientState.PLAYING


def test_rtsp_dialect_finishes_a_lab_form_reply_and_flags_it():
    """A lab server that answers our OPTIONS in its form: the reply completes after silence and
    is flagged, so the engine switches dialect."""
    p = RtspClientProtocol("rtsp://127.0.0.1:2048/movie.Mjpeg")
    p.options()
    assert p.feed(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 0").replies == [] and p.unterminated
    assert p.finish_unterminated().replies[0].ok and p.lab_form_replies == 1
    p.use_lab()
    assert p.dialect is Dialect.LAB and p.cseq == 0 and p.state is ClientState.INIT
    assert p.setup("RTP/UDP; client_port= 5008")[1].startswith(b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\n")
