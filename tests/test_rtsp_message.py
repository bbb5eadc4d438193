"""RtspMessage: tables of real wire bytes (ffmpeg 5.1, GStreamer 1.22, the course-lab client),
each fed whole, a byte at a time and in random splits; every limit; the lab dialect."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from test_sdp import GST_SDP as GSTREAMER_SDP
from RtspMessage import (
    BadRequest, Headers, InterleavedFrame, MessageError, Method, Request, Response, RtspError, Status, UnsupportedTransport,
)
from RtspParser import RtspParser, parse_message


def crlf(text: str) -> bytes:
    """The reference dialogue shows CRLF lines as plain newlines."""
    return text.replace("\n", "\r\n").encode()


# --------------------------------------------------------------------------- wire tables
# Requests captured from ffmpeg 5.1 and GStreamer 1.22 (shared/reference/rtsp-dialogue-gstreamer.txt).

REQUESTS = [
    ("ffmpeg-options", crlf(
        "OPTIONS rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\n"
        "CSeq: 1\n"
        "User-Agent: Lavf59.27.100\n"
        "\n"), "OPTIONS", "rtsp://127.0.0.1:26010/movie.Mjpeg",
     [("CSeq", "1"), ("User-Agent", "Lavf59.27.100")]),
    ("ffmpeg-describe", crlf(
        "DESCRIBE rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\n"
        "Accept: application/sdp\n"
        "CSeq: 2\n"
        "User-Agent: Lavf59.27.100\n"
        "\n"), "DESCRIBE", "rtsp://127.0.0.1:26010/movie.Mjpeg",
     [("Accept", "application/sdp"), ("CSeq", "2"), ("User-Agent", "Lavf59.27.100")]),
    ("ffmpeg-setup-udp", crlf(
        "SETUP rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0 RTSP/1.0\n"
        "Transport: RTP/AVP/UDP;unicast;client_port=49442-49443\n"
        "CSeq: 3\n"
        "User-Agent: Lavf59.27.100\n"
        "\n"), "SETUP", "rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0",
     [("Transport", "RTP/AVP/UDP;unicast;client_port=49442-49443"), ("CSeq", "3"),
      ("User-Agent", "Lavf59.27.100")]),
    ("ffmpeg-setup-tcp", crlf(
        "SETUP rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0 RTSP/1.0\n"
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\n"
        "CSeq: 3\n"
        "User-Agent: Lavf59.27.100\n"
        "\n"), "SETUP", "rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0",
     [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"), ("CSeq", "3"),
      ("User-Agent", "Lavf59.27.100")]),
    ("ffmpeg-play", crlf(
        "PLAY rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\n"
        "Range: npt=0.000-\n"
        "CSeq: 4\n"
        "User-Agent: Lavf59.27.100\n"
        "Session: ckrZFTOv.Df8d.1b\n"
        "\n"), "PLAY", "rtsp://127.0.0.1:26010/movie.Mjpeg/",
     [("Range", "npt=0.000-"), ("CSeq", "4"), ("User-Agent", "Lavf59.27.100"),
      ("Session", "ckrZFTOv.Df8d.1b")]),
    ("ffmpeg-teardown", crlf(
        "TEARDOWN rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\n"
        "CSeq: 5\n"
        "User-Agent: Lavf59.27.100\n"
        "Session: ckrZFTOv.Df8d.1b\n"
        "\n"), "TEARDOWN", "rtsp://127.0.0.1:26010/movie.Mjpeg/",
     [("CSeq", "5"), ("User-Agent", "Lavf59.27.100"), ("Session", "ckrZFTOv.Df8d.1b")]),
    ("gst-options", crlf(
        "OPTIONS rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\n"
        "CSeq: 1\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Date: Sun, 22 Nov 2026 02:38:38 GMT\n"
        "\n"), "OPTIONS", "rtsp://127.0.0.1:26010/movie.Mjpeg",
     [("CSeq", "1"), ("User-Agent", "GStreamer/1.22.0"),
      ("Date", "Sun, 22 Nov 2026 02:38:38 GMT")]),
    ("gst-describe", crlf(
        "DESCRIBE rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\n"
        "CSeq: 2\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Accept: application/sdp\n"
        "Date: Sun, 22 Nov 2026 02:38:38 GMT\n"
        "\n"), "DESCRIBE", "rtsp://127.0.0.1:26010/movie.Mjpeg",
     [("CSeq", "2"), ("User-Agent", "GStreamer/1.22.0"), ("Accept", "application/sdp"),
      ("Date", "Sun, 22 Nov 2026 02:38:38 GMT")]),
    ("gst-setup", crlf(
        "SETUP rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0 RTSP/1.0\n"
        "CSeq: 3\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Transport: RTP/AVP;unicast;client_port=49438-49439\n"
        "Date: Sun, 22 Nov 2026 02:38:38 GMT\n"
        "\n"), "SETUP", "rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0",
     [("CSeq", "3"), ("User-Agent", "GStreamer/1.22.0"),
      ("Transport", "RTP/AVP;unicast;client_port=49438-49439"),
      ("Date", "Sun, 22 Nov 2026 02:38:38 GMT")]),
    ("gst-play", crlf(
        "PLAY rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\n"
        "CSeq: 4\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Range: npt=now-\n"
        "Session: uaILGORVYBOW+fkf\n"
        "Date: Sun, 22 Nov 2026 02:38:38 GMT\n"
        "\n"), "PLAY", "rtsp://127.0.0.1:26010/movie.Mjpeg/",
     [("CSeq", "4"), ("User-Agent", "GStreamer/1.22.0"), ("Range", "npt=now-"),
      ("Session", "uaILGORVYBOW+fkf"), ("Date", "Sun, 22 Nov 2026 02:38:38 GMT")]),
    ("gst-pause", crlf(
        "PAUSE rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\n"
        "CSeq: 5\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Session: uaILGORVYBOW+fkf\n"
        "Date: Sun, 22 Nov 2026 02:38:44 GMT\n"
        "\n"), "PAUSE", "rtsp://127.0.0.1:26010/movie.Mjpeg/",
     [("CSeq", "5"), ("User-Agent", "GStreamer/1.22.0"), ("Session", "uaILGORVYBOW+fkf"),
      ("Date", "Sun, 22 Nov 2026 02:38:44 GMT")]),
    ("gst-teardown", crlf(
        "TEARDOWN rtsp://127.0.0.1:26010/movie.Mjpeg/ RTSP/1.0\n"
        "CSeq: 6\n"
        "User-Agent: GStreamer/1.22.0\n"
        "Session: uaILGORVYBOW+fkf\n"
        "Date: Sun, 22 Nov 2026 02:38:44 GMT\n"
        "\n"), "TEARDOWN", "rtsp://127.0.0.1:26010/movie.Mjpeg/",
     [("CSeq", "6"), ("User-Agent", "GStreamer/1.22.0"), ("Session", "uaILGORVYBOW+fkf"),
      ("Date", "Sun, 22 Nov 2026 02:38:44 GMT")]),
    ("handwritten-setup", crlf(
        "SETUP rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\n"
        "CSeq: 1\n"
        "Transport: RTP/AVP;unicast;client_port=46876-46877\n"
        "\n"), "SETUP", "rtsp://127.0.0.1:26010/movie.Mjpeg",
     [("CSeq", "1"), ("Transport", "RTP/AVP;unicast;client_port=46876-46877")]),
]

GST_SDP = GSTREAMER_SDP.encode()  # the DESCRIBE body of the reference dialogue (tests/test_sdp.py)

# Replies of gst-rtsp-server 1.22 to the requests above.
RESPONSES = [
    ("gst-options-reply", crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 1\n"
        "Public: OPTIONS, DESCRIBE, ANNOUNCE, GET_PARAMETER, PAUSE, PLAY, RECORD, SETUP, "
        "SET_PARAMETER, TEARDOWN\n"
        "Server: GStreamer RTSP server\n"
        "Date: Sun, 22 Nov 2026 02:38:10 GMT\n"
        "\n"), 200, "OK", 1, b""),
    ("gst-describe-reply", crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 2\n"
        "Content-Type: application/sdp\n"
        "Content-Base: rtsp://127.0.0.1:26010/movie.Mjpeg/\n"
        "Server: GStreamer RTSP server\n"
        "Date: Sun, 22 Nov 2026 02:38:10 GMT\n"
        "Content-Length: 371\n"
        "\n") + GST_SDP, 200, "OK", 2, GST_SDP),
    ("gst-setup-reply", crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 3\n"
        "Transport: RTP/AVP;unicast;client_port=49442-49443;server_port=26110-26111;"
        "ssrc=3895856A;mode=\"PLAY\"\n"
        "Server: GStreamer RTSP server\n"
        "Session: ckrZFTOv.Df8d.1b\n"
        "Date: Sun, 22 Nov 2026 02:38:10 GMT\n"
        "\n"), 200, "OK", 3, b""),
    ("gst-play-reply", crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 4\n"
        "RTP-Info: url=rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0;seq=23457;rtptime=135219551\n"
        "Range: npt=now-\n"
        "Server: GStreamer RTSP server\n"
        "Session: ckrZFTOv.Df8d.1b\n"
        "Date: Sun, 22 Nov 2026 02:38:10 GMT\n"
        "\n"), 200, "OK", 4, b""),
    ("gst-teardown-reply", crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 5\n"
        "Server: GStreamer RTSP server\n"
        "Session: ckrZFTOv.Df8d.1b\n"
        "Connection: close\n"
        "Date: Sun, 22 Nov 2026 02:38:20 GMT\n"
        "\n"), 200, "OK", 5, b""),
    ("gst-461-reply", crlf(
        "RTSP/1.0 461 Unsupported transport\n"
        "CSeq: 1\n"
        "Server: GStreamer RTSP server\n"
        "Date: Sun, 22 Nov 2026 02:38:49 GMT\n"
        "\n"), 461, "Unsupported transport", 1, b""),
]

# The course-lab client (Client.py of the Kurose & Ross lab): one send() per request, lines
# ended by a bare LF, no newline after the last header and no blank line.
LAB_REQUESTS = [
    ("lab-setup", b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25000",
     "SETUP", [("CSeq", "1"), ("Transport", "RTP/UDP; client_port= 25000")]),
    ("lab-play", b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456",
     "PLAY", [("CSeq", "2"), ("Session", "123456")]),
    ("lab-pause", b"PAUSE movie.Mjpeg RTSP/1.0\nCSeq: 3\nSession: 123456",
     "PAUSE", [("CSeq", "3"), ("Session", "123456")]),
    ("lab-teardown", b"TEARDOWN movie.Mjpeg RTSP/1.0\nCSeq: 4\nSession: 123456",
     "TEARDOWN", [("CSeq", "4"), ("Session", "123456")]),
    ("lab-gst-style", b"SETUP rtsp://127.0.0.1:26010/movie.Mjpeg RTSP/1.0\nCSeq: 1\n"
     b"Transport: RTP/UDP; client_port= 46876", "SETUP",
     [("CSeq", "1"), ("Transport", "RTP/UDP; client_port= 46876")]),
]


def feed_all(parser: RtspParser, chunks) -> list:
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def check_request(msg, method, uri, headers, lf_only=False):
    assert isinstance(msg, Request), msg
    assert msg.method == method
    assert msg.uri == uri
    assert msg.headers.items() == headers
    assert msg.version == "RTSP/1.0"
    assert msg.body == b""
    assert msg.lf_only is lf_only
    assert msg.cseq == int(dict(headers)["CSeq"])


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("name,wire,method,uri,headers", REQUESTS, ids=[r[0] for r in REQUESTS])
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_reference_request(name, wire, method, uri, headers, mode):
    parser = RtspParser()
    chunks = [wire] if mode == "whole" else bytewise(wire)
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
        # a CRLF client split anywhere is never mistaken for the lab dialect
        assert not parser.has_unterminated_lf()
        assert parser.finish_unterminated() is None
    assert len(out) == 1
    check_request(out[0], method, uri, headers)
    assert out[0].known_method is Method(method)
    assert parser.buffered == 0
    # canonical input: serialize(parse(x)) == x, byte for byte
    assert out[0].serialize() == wire


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
       interleave=st.booleans())
def test_reference_requests_random_splits(cuts, interleave):
    """The whole ffmpeg+GStreamer dialogue on one connection, split anywhere, with RTCP
    interleaved frames between the requests (ffmpeg over TCP sends receiver reports)."""
    frame = InterleavedFrame(1, bytes(range(32)))
    stream = b""
    for r in REQUESTS:
        stream += r[1] + (frame.serialize() if interleave else b"")
    parser = RtspParser()
    out = feed_all(parser, split_at(stream, cuts))
    requests = [m for m in out if isinstance(m, Request)]
    frames = [m for m in out if isinstance(m, InterleavedFrame)]
    assert len(requests) == len(REQUESTS)
    for msg, (_, _, method, uri, headers) in zip(requests, REQUESTS):
        check_request(msg, method, uri, headers)
    assert frames == ([frame] * len(REQUESTS) if interleave else [])
    assert len(out) == len(requests) + len(frames)


def test_several_messages_in_one_read_in_order():
    stream = b"".join(r[1] for r in REQUESTS)
    out = RtspParser().feed(stream)
    assert [m.cseq for m in out] == [int(dict(r[4])["CSeq"]) for r in REQUESTS]


def test_headers_case_insensitive_and_continuation():
    wire = (b"SETUP rtsp://h/movie.Mjpeg/trackID=0 RTSP/1.0\r\n"
            b"cseq: 7\r\n"
            b"TRANSPORT: RTP/AVP;unicast;\r\n"
            b"  client_port=5000-5001\r\n"
            b"x-custom:no-space\r\n"
            b"\r\n")
    [msg] = RtspParser().feed(wire)
    assert msg.cseq == 7
    assert msg.headers["Transport"] == "RTP/AVP;unicast; client_port=5000-5001"
    assert msg.headers.get("X-CUSTOM") == "no-space"
    assert "transport" in msg.headers and "Session" not in msg.headers


def test_request_with_body_and_unknown_method():
    body = b"param_1: 5\r\n"
    wire = (b"SET_PARAMETER rtsp://h/movie.Mjpeg RTSP/1.0\r\nCSeq: 9\r\n"
            b"Content-Type: text/parameters\r\nContent-Length: 12\r\n\r\n" + body +
            b"FLY rtsp://h/movie.Mjpeg RTSP/1.0\r\nCSeq: 10\r\n\r\n")
    for chunks in ([wire], bytewise(wire)):
        out = feed_all(RtspParser(), chunks)
        assert [type(m) for m in out] == [Request, Request]
        assert out[0].body == body and out[0].known_method is Method.SET_PARAMETER
        assert out[0].serialize() == wire[:wire.index(b"FLY")]
        assert out[1].method == "FLY" and out[1].known_method is None and out[1].cseq == 10


def test_keepalive_blank_lines_between_messages_are_ignored():
    wire = b"\r\n\r\n" + REQUESTS[0][1] + b"\r\n\n" + REQUESTS[1][1]
    out = RtspParser().feed(wire)
    assert [m.method for m in out] == ["OPTIONS", "DESCRIBE"]


def test_lf_only_terminated_request_is_complete_without_help():
    wire = b"OPTIONS rtsp://h/movie.Mjpeg RTSP/1.0\nCSeq: 1\n\n"
    parser = RtspParser()
    [msg] = feed_all(parser, bytewise(wire))
    assert msg.lf_only and msg.cseq == 1
    assert msg.serialize() == wire
    assert not parser.has_unterminated_lf()


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize("name,wire,status,reason,cseq,body", RESPONSES,
                         ids=[r[0] for r in RESPONSES])
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_reference_response(name, wire, status, reason, cseq, body, mode):
    parser = RtspParser(role="client")
    out = feed_all(parser, [wire] if mode == "whole" else bytewise(wire))
    assert len(out) == 1
    msg = out[0]
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason, msg.cseq, msg.body) == (status, reason, cseq, body)
    assert msg.serialize() == wire


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_responses_with_interleaved_rtp_random_splits(cuts):
    """A client's view over TCP: replies and '$' RTP/RTCP frames on one stream."""
    rtp = InterleavedFrame(0, b"\x80\x9a" + bytes(1398))
    rtcp = InterleavedFrame(1, b"\x80\xc8\x00\x06" + bytes(24))
    empty = InterleavedFrame(0, b"")
    stream = b"".join(r[1] + rtp.serialize() + rtcp.serialize() + empty.serialize()
                      for r in RESPONSES)
    out = feed_all(RtspParser(role="client"), split_at(stream, cuts))
    expected = []
    for r in RESPONSES:
        expected += [r[2], rtp, rtcp, empty]
    got = [m.status if isinstance(m, Response) else m for m in out]
    assert got == expected


def test_response_serialize_defaults_and_content_length():
    resp = Response(Status.OK, Headers([("CSeq", 2), ("Content-Type", "application/sdp")]),
                    body=b"v=0\r\n")
    assert resp.serialize() == (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp"
                                b"\r\nContent-Length: 5\r\n\r\nv=0\r\n")
    assert Response(454, Headers({"CSeq": "3"})).serialize() == \
        b"RTSP/1.0 454 Session Not Found\r\nCSeq: 3\r\n\r\n"
    # a stale Content-Length set by a caller is corrected, never sent wrong
    resp = Response(200, Headers([("Content-Length", "999"), ("CSeq", "1")]), body=b"ab")
    assert resp.serialize() == b"RTSP/1.0 200 OK\r\nContent-Length: 2\r\nCSeq: 1\r\n\r\nab"


def test_lab_reply_serialization_is_what_lab_clients_parse():
    """The lab client does reply.split('\\n'): CSeq from line 2, Session from line 3."""
    resp = Response(Status.OK, Headers([("CSeq", 1), ("Session", "487202311")]))
    wire = resp.serialize(lf_only=True)
    assert wire == b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 487202311\n\n"
    assert len(wire) <= 256  # one recv(256)
    lines = wire.decode().split("\n")
    assert lines[0].split(" ")[1] == "200"
    assert int(lines[1].split(" ")[1]) == 1
    assert int(lines[2].split(" ")[1]) == 487202311
    # and our own client parses it too
    [back] = RtspParser(role="client").feed(wire)
    assert back.status == 200 and back.cseq == 1 and back.headers["Session"] == "487202311"


def test_response_from_error_carries_status_cseq_and_headers():
    err = RtspError(Status.NOT_IMPLEMENTED, "FLY", {"Public": "OPTIONS, DESCRIBE"})
    resp = Response.from_error(err, 12)
    assert resp.serialize() == (b"RTSP/1.0 501 Not Implemented\r\nCSeq: 12\r\n"
                                b"Public: OPTIONS, DESCRIBE\r\n\r\n")
    assert UnsupportedTransport("no").status is Status.UNSUPPORTED_TRANSPORT
    challenges = RtspError(Status.UNAUTHORIZED, "who", [("WWW-Authenticate", 'Digest realm="r"'),
                                                       ("WWW-Authenticate", 'Basic realm="r"')])
    assert Response.from_error(challenges, 3).serialize() == (
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Digest realm=\"r\"\r\n"
        b"WWW-Authenticate: Basic realm=\"r\"\r\n\r\n")
    assert BadRequest().status == 400 and isinstance(BadRequest(), RtspError)
    assert Status.METHOD_NOT_VALID_IN_THIS_STATE.phrase == "Method Not Valid in This State"


def test_client_parses_lab_server_reply_without_terminator():
    """A classic lab server answers 'RTSP/1.0 200 OK\\nCSeq: 1\\nSession: 123' and stops."""
    parser = RtspParser(role="client")
    assert parser.feed(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 123456") == []
    assert parser.has_unterminated_lf()
    msg = parser.finish_unterminated()
    assert isinstance(msg, Response) and msg.cseq == 1 and msg.headers["Session"] == "123456"


# --------------------------------------------------------------------------- lab dialect


@pytest.mark.parametrize("name,wire,method,headers", LAB_REQUESTS, ids=[r[0] for r in LAB_REQUESTS])
@pytest.mark.parametrize("ending", ["", "\n"])
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_lab_unterminated_request(name, wire, method, headers, ending, mode):
    wire += ending.encode()
    uri = wire.split(b" ")[1].decode()
    parser = RtspParser()
    out = feed_all(parser, [wire] if mode == "whole" else bytewise(wire))
    assert out == []  # the stream alone cannot say the request is over
    assert parser.has_unterminated_lf()
    msg = parser.finish_unterminated()
    check_request(msg, method, uri, headers, lf_only=True)
    assert parser.buffered == 0 and not parser.has_unterminated_lf()
    assert parser.finish_unterminated() is None
    # the connection goes on with the next request in the same dialect
    assert parser.feed(LAB_REQUESTS[1][1]) == []
    assert parser.finish_unterminated().cseq == 2


@pytest.mark.parametrize("name,wire,method,headers", LAB_REQUESTS, ids=[r[0] for r in LAB_REQUESTS])
def test_lab_request_with_blank_line_needs_no_help(name, wire, method, headers):
    parser = RtspParser()
    [msg] = parser.feed(wire + b"\n\n")
    check_request(msg, method, wire.split(b" ")[1].decode(), headers, lf_only=True)
    assert not parser.has_unterminated_lf()


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
       which=st.integers(min_value=0, max_value=len(LAB_REQUESTS) - 1))
def test_lab_request_random_splits(cuts, which):
    _, wire, method, headers = LAB_REQUESTS[which]
    parser = RtspParser()
    assert feed_all(parser, split_at(wire, cuts)) == []
    check_request(parser.finish_unterminated(), method, wire.split(b" ")[1].decode(), headers,
                  lf_only=True)


@pytest.mark.parametrize("prefix", [
    b"SETUP movie.Mjpeg RTSP/1.0",             # request line not even ended
    b"SETUP movie.Mjpeg RTSP/1.0\n",           # no header yet
    b"SETUP movie.Mjpeg RTSP/1.0\nCSeq",       # partial line that is not a header
    b"SETUP movie.Mjpeg RTSP/1.0\r\nCSeq: 1",  # CRLF client split mid-request
    b"SETUP movie.Mjpeg RTSP/1.0\r\nCSeq: 1\r\n",
    b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\r",  # CR: this client uses CRLF after all
    b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\r\n",
    b"ANNOUNCE movie.Mjpeg RTSP/1.0\nCSeq: 1\nContent-Length: 5\n",  # a body is due
    b"SETUP movie.Mjpeg RTSP/2.0\r\nCSeq: 1\r\n",  # rejected CRLF message: its blank line may come
    b"RTSP/1.0 200 OK\nCSeq: 1\n",             # a response is never a request (server role)
])
def test_not_unterminated(prefix):
    parser = RtspParser()
    parser.feed(prefix)
    assert not parser.has_unterminated_lf()
    assert parser.finish_unterminated() is None


BROKEN_LAB_REQUESTS = [
    # a common broken student form: the request line, CSeq and Transport lines all mangled
    ("mangled-setup", b"SETUP f\n1\n RTSP/1.0 RTP/UDP 5000", 400, None),
    ("no-uri", b"PLAY\n", 400, None),
    ("bad-header", b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 4\nSession 123", None, None),  # may still end well
    ("header-without-colon", b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 4\nnonsense\n", 400, 4),
    ("version-2", b"SETUP movie.Mjpeg RTSP/2.0\nCSeq: 1\n", 505, 1),
]


@pytest.mark.parametrize("name,wire,status,cseq", BROKEN_LAB_REQUESTS, ids=[c[0] for c in BROKEN_LAB_REQUESTS])
def test_broken_lab_request_is_finished_as_its_error(name, wire, status, cseq):
    """A bare-LF request already known to be bad gets its error now, not at the request timeout."""
    parser = RtspParser()
    assert parser.feed(wire) == []
    if status is None:  # 'Session 123' is an unfinished line, not yet an error
        assert not isinstance(parser.finish_unterminated(), MessageError)
        return
    assert parser.has_unterminated_lf()
    error = parser.finish_unterminated()
    assert isinstance(error, MessageError) and int(error.error.status) == status and error.cseq == cseq
    assert error.lf_only and parser.buffered == 0
    # the connection goes on: the next (good) lab request parses
    assert parser.feed(LAB_REQUESTS[1][1]) == []
    assert parser.finish_unterminated().cseq == 2


# --------------------------------------------------------------------------- limits & errors

VALID = crlf("OPTIONS rtsp://h/movie.Mjpeg RTSP/1.0\nCSeq: 99\n\n")

LIMIT_CASES = [
    # name, bytes, expected status, expected cseq
    ("request-line-too-long", b"DESCRIBE rtsp://h/" + b"a" * 5000 + b" RTSP/1.0\r\nCSeq: 5\r\n\r\n",
     414, 5),
    ("start-line-too-long-not-a-request", b"x" * 5000 + b"\r\nCSeq: 5\r\n\r\n", 400, 5),
    ("header-line-too-long", b"OPTIONS * RTSP/1.0\r\nCSeq: 6\r\nUser-Agent: " + b"u" * 5000
     + b"\r\n\r\n", 400, 6),
    ("too-many-headers", b"OPTIONS * RTSP/1.0\r\nCSeq: 7\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(80)) + b"\r\n", 400, 7),
    ("body-too-large", b"ANNOUNCE rtsp://h/m RTSP/1.0\r\nCSeq: 8\r\nContent-Length: 70000\r\n\r\n"
     + (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n" * 2300)[:70000], 413, 8),
    ("version-2", b"OPTIONS * RTSP/2.0\r\nCSeq: 9\r\n\r\n", 505, 9),
    ("http", b"GET / HTTP/1.1\r\nHost: x\r\nCSeq: 10\r\n\r\n", 505, 10),
    ("no-version", b"OPTIONS rtsp://h/m\r\nCSeq: 11\r\n\r\n", 400, 11),
    ("garbage-version", b"OPTIONS * RTSP-1.0\r\nCSeq: 12\r\n\r\n", 400, 12),
    ("text-garbage", b"hello\r\nCSeq: 13\r\n\r\n", 400, 13),
    ("header-without-colon", b"OPTIONS * RTSP/1.0\r\nCSeq: 14\r\nnonsense\r\n\r\n", 400, 14),
    ("bad-content-length", b"OPTIONS * RTSP/1.0\r\nCSeq: 15\r\nContent-Length: -3\r\n\r\n",
     400, 15),
    ("two-content-lengths", b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
     b"CSeq: 16\r\n\r\n", 400, 16),
    ("leading-continuation", b"OPTIONS * RTSP/1.0\r\n  folded\r\nCSeq: 17\r\n\r\n", 400, 17),
    ("no-cseq", b"OPTIONS * RTSP/9\r\n\r\n", 400, None),
    ("binary", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 400, None),
    ("lf-request-line-too-long", b"PLAY " + b"m" * 5000 + b" RTSP/1.0\nCSeq: 18\n\n", 414, 18),
]


@pytest.mark.parametrize("name,wire,status,cseq", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_limits_reject_and_survive(name, wire, status, cseq, mode):
    parser = RtspParser(max_line=4096, max_headers=64, max_body=65536)
    stream = wire + VALID
    out = feed_all(parser, [stream] if mode == "whole" else bytewise(stream))
    assert len(out) == 2, out
    err, ok = out
    assert isinstance(err, MessageError)
    assert err.status == status and err.error.status == status
    assert err.cseq == cseq and not err.fatal
    # the connection survives: the next message is parsed normally
    assert isinstance(ok, Request) and ok.cseq == 99
    assert parser.buffered == 0 and not parser.closed


def test_memory_stays_bounded_while_skipping():
    parser = RtspParser(max_line=256, max_body=1000)
    parser.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 900000\r\n\r\n")
    for _ in range(100):
        assert parser.feed(bytes(9000)) == []
        assert parser.buffered == 0
    out = parser.feed(VALID)
    assert [m.cseq for m in out] == [99]


def test_binary_garbage_line_reported_once_then_resync():
    parser = RtspParser()
    out = parser.feed(b"\x00\x01\x02garbage")
    assert len(out) == 1 and out[0].status == 400 and not out[0].fatal  # at once
    assert parser.feed(b"more garbage\x00") == []
    out = parser.feed(b"tail\n" + VALID)
    assert [type(m) for m in out] == [Request]


@pytest.mark.parametrize("garbage", [b"\xff" * 200_000, (b"\x00" * 100 + b"\n") * 2000,
                                     b"A" * 200_000])
def test_unbounded_garbage_is_fatal(garbage):
    parser = RtspParser()
    out = []
    for i in range(0, len(garbage), 1000):
        out += parser.feed(garbage[i:i + 1000])
        assert parser.buffered <= parser.max_line + 1
    assert out and out[-1].fatal and out[-1].status == 400
    assert all(not m.fatal for m in out[:-1])
    assert parser.closed
    assert parser.feed(VALID) == []  # closed: the server should drop the connection


@pytest.mark.parametrize("bad", [b"hello\r\n\r\n", b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n",
                                 b"\x00\n"])
def test_only_bad_messages_end_in_fatal(bad):
    """Each bad message is answered, but a peer that sends nothing else is cut off after
    max_junk bytes; one good message in between resets the count."""
    parser = RtspParser(max_junk=4096)
    out = parser.feed(bad * (4000 // len(bad)))
    assert out and not any(m.fatal for m in out)
    assert all(m.status in (400, 505) for m in out)
    out = parser.feed(VALID + bad * (4000 // len(bad)))
    assert isinstance(out[0], Request) and not any(m.fatal for m in out[1:])
    out = parser.feed(bad * (5000 // len(bad) + 1))
    assert out[-1].fatal and parser.closed


def test_endless_header_block_is_fatal():
    parser = RtspParser(max_headers=8)
    parser.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n")
    out = []
    for i in range(20000):
        out += parser.feed(b"X-Junk: %d\r\n" % i)
        if out:
            break
    assert len(out) == 1 and out[0].fatal and out[0].cseq == 3


def test_parse_message_helper():
    req = parse_message(REQUESTS[4][1])
    assert req.method == "PLAY" and req.headers["Range"] == "npt=0.000-"
    assert parse_message(LAB_REQUESTS[0][1]).lf_only
    with pytest.raises(RtspError) as exc:
        parse_message(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n")
    assert exc.value.status == 505


# --------------------------------------------------------------------------- headers/frames


def test_headers_container():
    h = Headers([("CSeq", "1"), ("Session", "abc")])
    h.add("Via", "a")
    h.add("via", "b")
    assert h.get_all("VIA") == ["a", "b"] and h["via"] == "a"
    h.set("VIA", "c")
    assert h.items() == [("CSeq", "1"), ("Session", "abc"), ("VIA", "c")]
    h.set("Content-Type", "application/sdp")
    assert h.keys()[-1] == "Content-Type"
    h.remove("session")
    assert "Session" not in h and h.get("Session", "none") == "none"
    with pytest.raises(KeyError):
        h["Session"]
    h["CSeq"] = 5
    assert h["cseq"] == "5" and len(h) == 3
    assert Headers({"a": "1"}) == Headers([("A", "1")])
    for bad in ("x\r\nInjected: 1", "x\ny"):
        with pytest.raises(ValueError):
            h.set("Session", bad)
    with pytest.raises(ValueError):
        h.add("Bad Name", "v")


def test_request_serialize_crlf_and_lf():
    req = Request(Method.SETUP, "rtsp://h/movie.Mjpeg/trackID=0",
                  Headers([("CSeq", 3), ("Transport", "RTP/AVP;unicast;client_port=5000-5001")]))
    assert req.serialize() == crlf("SETUP rtsp://h/movie.Mjpeg/trackID=0 RTSP/1.0\nCSeq: 3\n"
                                   "Transport: RTP/AVP;unicast;client_port=5000-5001\n\n")
    req.lf_only = True
    assert req.serialize() == (b"SETUP rtsp://h/movie.Mjpeg/trackID=0 RTSP/1.0\nCSeq: 3\n"
                               b"Transport: RTP/AVP;unicast;client_port=5000-5001\n\n")
    with pytest.raises(ValueError):
        Request("PLAY", "rtsp://h/a b").serialize()


def test_interleaved_frame_roundtrip_and_limits():
    frame = InterleavedFrame(3, b"\x80" * 65535)
    wire = frame.serialize()
    assert wire[:4] == b"$\x03\xff\xff"
    assert RtspParser(role="client").feed(wire) == [frame]
    with pytest.raises(ValueError):
        InterleavedFrame(0, bytes(65536)).serialize()
    with pytest.raises(ValueError):
        InterleavedFrame(256, b"").serialize()


def test_method_and_status_enums():
    assert Method("GET_PARAMETER") is Method.GET_PARAMETER and Method.PLAY == "PLAY"
    assert str(Method.TEARDOWN) == "TEARDOWN"
    assert Status(461).phrase == "Unsupported transport"
    assert Status.REQUEST_URI_TOO_LARGE == 414 and Status.INVALID_RANGE == 457
    assert Response(299).serialize() == b"RTSP/1.0 299 Success\r\n\r\n"


# --------------------------------------------------------------------------- properties

_TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_-abcxyz0123456789", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                 max_size=40)


@settings(max_examples=150, deadline=None)
@given(method=_TOKEN, uri=_VALUE,
       headers=st.lists(st.tuples(_TOKEN.filter(lambda n: n.lower() != "content-length"),
                                  _VALUE), max_size=10),
       body=st.binary(max_size=300), cseq=st.integers(0, 2**31),
       cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_generated_request_roundtrip(method, uri, headers, body, cseq, cuts):
    headers = [("CSeq", str(cseq))] + [h for h in headers if h[0].lower() != "cseq"]
    req = Request(method, uri, Headers(headers), body)
    wire = req.serialize()
    parser = RtspParser(max_body=1000)
    [back] = feed_all(parser, split_at(wire, cuts))
    assert back.method == method and back.uri == uri and back.body == body
    assert back.cseq == cseq
    assert back.serialize() == wire
    assert back.headers.items()[:len(headers)] == headers


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000) | st.lists(
           st.sampled_from([b"$", b"\x00\x10", b"\r\n", b"\n", b"OPTIONS * RTSP/1.0", b"CSeq: 1",
                            b"Content-Length: 20", b"Content-Length: x", b" folded", b"RTSP/1.0 200 OK",
                            b"\xff\xfe", b"SETUP movie.Mjpeg RTSP/1.0", b":", b"A" * 300]),
           max_size=60).map(b"".join),
       cuts=st.lists(st.integers(0, 10_000), max_size=10),
       role=st.sampled_from(["server", "client"]))
def test_arbitrary_bytes_never_crash_and_memory_is_bounded(data, cuts, role):
    parser = RtspParser(max_line=256, max_headers=8, max_body=512, role=role, max_junk=2048)
    for chunk in split_at(data, cuts):
        for msg in parser.feed(chunk):
            assert isinstance(msg, (Request, Response, InterleavedFrame, MessageError))
            if isinstance(msg, MessageError):
                assert 400 <= msg.status <= 505
        assert parser.buffered <= 65539
        parser.has_unterminated_lf()
    if parser.has_unterminated_lf():
        finished = parser.finish_unterminated()  # a bad bare-LF message comes back as its error
        assert isinstance(finished, (Request, MessageError) if role == "server"
                          else (Request, Response, MessageError))


# --------------------------------------------------------------------------- live peers


_PEERS = {
    "ffmpeg": lambda url: ["ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport",
                           "tcp", "-i", url, "-f", "null", "-"],
    "gstreamer": lambda url: ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}",
                              "protocols=tcp", "retry=0", "!", "fakesink"],
}


@pytest.mark.parametrize("peer", sorted(_PEERS))
def test_live_client_requests_parse_and_our_replies_are_understood(peer):
    """A real ffmpeg / GStreamer client: its OPTIONS and DESCRIBE go through RtspParser
    (whatever the TCP split), and it understands our serialized 200 and 404 replies."""
    program = _PEERS[peer]("x")[0]
    if shutil.which(program) is None:
        print(f"skipping: {program} not installed")
        pytest.skip(f"{program} not installed")
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(30)
    url = f"rtsp://127.0.0.1:{srv.getsockname()[1]}/movie.Mjpeg"
    proc = subprocess.Popen(_PEERS[peer](url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        conn, _ = srv.accept()
        conn.settimeout(30)
        parser = RtspParser()
        seen = []

        def next_request() -> Request:
            while True:
                for msg in parser.feed(conn.recv(4096) or b""):
                    assert isinstance(msg, Request), msg
                    return msg

        req = next_request()
        seen.append(req.method)
        if req.method == "OPTIONS":
            assert req.cseq is not None and req.uri == url and not req.lf_only
            conn.sendall(Response(Status.OK, Headers([
                ("CSeq", req.cseq),
                ("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER")]))
                .serialize())
            req = next_request()
            seen.append(req.method)
        assert req.method == "DESCRIBE" and req.uri == url
        assert "application/sdp" in (req.headers.get("Accept") or "application/sdp")
        conn.sendall(Response(Status.NOT_FOUND, Headers([("CSeq", req.cseq)])).serialize())
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0
        assert b"404" in err or b"Not Found" in err or b"not found" in err, err[-500:]
        assert seen[-1] == "DESCRIBE"
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        srv.close()
