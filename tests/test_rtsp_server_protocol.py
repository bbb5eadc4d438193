"""RtspServerProtocol (sans-IO): requests as bytes in, replies as bytes and actions out, no socket.

The Streamer is a recording stand-in: what the protocol asks of it is checked as a list.
"""

from __future__ import annotations

import random
import socket

import pytest

from conftest import MOVIE
from MediaLibrary import MediaLibrary
from RtspMessage import Request
from RtspParser import RtspParser
from RtspServerProtocol import EndSession, RtspServerProtocol, ServerConfig, SessionRegistry, StartSending
from RtspSession import State


class FakeStreamer:
    class _Sock:
        family = socket.AF_INET

    rtp_sock = _Sock()

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def add(self, session) -> None:
        self.calls.append(("add", session.id))

    def remove(self, session, bye=None) -> None:
        self.calls.append(("remove", session.id))

    def pause(self, session) -> None:
        self.calls.append(("pause", session.id))


@pytest.fixture
def proto():
    config = ServerConfig(media=MediaLibrary(MOVIE.parent), rng=random.Random(7))
    return RtspServerProtocol(config, FakeStreamer(), (5000, 5001), SessionRegistry(), "127.0.0.1",
                              ("127.0.0.1", 2048))


def exchange(proto, text: str):
    """Feed one request; the reply parsed back, and the protocol's actions."""
    (event,) = proto.feed(text.replace("\n", "\r\n").encode() if "\r" not in text else text.encode())
    out = proto.handle(event, now=0.0)
    (reply,) = RtspParser(role="client").feed(out.data)
    return reply, out


URL = "rtsp://127.0.0.1:2048/movie.Mjpeg"


def test_a_whole_session_as_bytes(proto):
    reply, out = exchange(proto, f"OPTIONS {URL} RTSP/1.0\nCSeq: 1\n\n")
    assert reply.status == 200 and "SETUP" in reply.headers["Public"] and out.actions == []
    reply, _ = exchange(proto, f"DESCRIBE {URL} RTSP/1.0\nCSeq: 2\n\n")
    assert reply.headers["Content-Base"] == URL + "/" and b"m=video 0 RTP/AVP 26" in reply.body
    assert "Session" not in reply.headers
    reply, out = exchange(proto, f"SETUP {URL}/trackID=0 RTSP/1.0\nCSeq: 3\n"
                                 "Transport: RTP/AVP;unicast;client_port=6000-6001\n\n")
    sid = reply.headers["Session"].split(";")[0]
    assert reply.headers["Session"] == f"{sid};timeout=60"           # set once, with the timeout
    assert "server_port=5000-5001" in reply.headers["Transport"]
    session = proto.sessions[sid]
    assert session.state is State.READY and session.udp_dest == ("127.0.0.1", 6000)
    assert proto.streamer.calls == [("add", sid)]
    reply, out = exchange(proto, f"PLAY {URL}/ RTSP/1.0\nCSeq: 4\nSession: {sid}\nRange: npt=5-\n\n")
    assert reply.status == 200 and reply.headers["Range"] == "npt=5.000-25.000"
    assert out.actions == [StartSending(session)]                    # after the reply is written
    assert session.state is State.PLAYING and session.position == 100
    reply, out = exchange(proto, f"PAUSE {URL}/ RTSP/1.0\nCSeq: 5\nSession: {sid}\n\n")
    assert reply.status == 200 and out.actions == [] and session.state is State.READY
    reply, out = exchange(proto, f"TEARDOWN {URL}/ RTSP/1.0\nCSeq: 6\nSession: {sid}\n\n")
    assert reply.status == 200 and out.actions == [EndSession(session, "TEARDOWN")]
    proto.end_session(session, "TEARDOWN")                           # what the worker does
    assert sid not in proto.sessions and proto.registry.count() == 0


# (request, status, a header the reply must carry)
ERRORS = [
    (f"FLY {URL} RTSP/1.0\nCSeq: 1\n\n", 501, "Public"),
    (f"PLAY {URL} RTSP/1.0\nCSeq: 1\nSession: 123456789012345678\n\n", 454, None),
    (f"PLAY {URL} RTSP/1.0\nCSeq: 1\n\n", 455, "Allow"),
    ("DESCRIBE rtsp://127.0.0.1:2048/nothing.Mjpeg RTSP/1.0\nCSeq: 1\n\n", 404, None),
    (f"SETUP {URL} RTSP/1.0\nCSeq: 1\nTransport: RTP/SAVP;unicast;client_port=1-2\n\n", 461, None),
    (f"PLAY {URL} RTSP/1.0\nCSeq: 9\nRange: npt=junk\n\n", 455, None),   # the state is checked first
]


@pytest.mark.parametrize("text,status,header", ERRORS)
def test_errors_take_one_path(proto, text, status, header):
    reply, out = exchange(proto, text)
    assert reply.status == status and out.actions == [] and not out.close
    assert reply.cseq == int(text.split("CSeq: ")[1].split("\n")[0])
    if header:
        assert reply.headers.get(header)


def test_lab_dialect_reply_lines_by_position(proto):
    """The hand-out's client: LF lines, no terminator; reply lines 1-3 are status, CSeq, Session."""
    proto.feed(b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25000")
    request = proto.finish_unterminated()
    assert isinstance(request, Request)
    out = proto.handle(request, now=0.0)
    lines = out.data.decode().split("\n")
    assert lines[0] == "RTSP/1.0 200 OK" and lines[1] == "CSeq: 1"
    assert lines[2].startswith("Session: ") and lines[2][9:].isdigit()   # no ;timeout for the lab
    assert b"\r" not in out.data and len(out.data) < 256 and proto.lab


def test_garbage_is_400_and_the_connection_survives(proto):
    events = proto.feed(b"\x16\x03\x01\x02\x00junk\r\n\r\n")
    outs = [proto.handle(e, now=0.0) for e in events]
    assert any(o is not None and o.data.startswith(b"RTSP/1.0 400 ") for o in outs)
    reply, _ = exchange(proto, f"OPTIONS {URL} RTSP/1.0\nCSeq: 2\n\n")
    assert reply.status == 200
