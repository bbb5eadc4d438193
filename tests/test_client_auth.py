"""The player's side of RTSP authentication (RFC 2617 as RFC 2326 §12.5 uses it).

Sans-IO first: real 401 replies (ours, with a fixed secret and clock, and gst-rtsp-server's) fed to
RtspClientProtocol; the Authorization it then sends must verify with the server's own checker.
Then end to end: the headless player with rtsp://user:pass@ against our server (every frame
pixel-equal), a stale nonce answered again mid-session, a wrong password failing at once with one
line, and gst-rtsp-server with Digest and with Basic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ClientLauncher
from media import pixels
from ReceiveEngine import ClientError, EventKind, ReceiveEngine
from RtspAuth import Authenticator, UserDatabase, digest_response, ha1, parse_authorization
from RtspClient import RtspClientProtocol, describe_failure
from RtspMessage import Request
from RtspParser import RtspParser
from VideoStream import VideoStream
from test_client_peers import gst_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


CLOCK = 1_700_000_000.0
SECRET = b"k" * 32
USERS = "alice:s3cr:et"            # a password with a colon: only the first one splits

OUR_401 = (b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nServer: PyRtspLab\r\n'
           b'WWW-Authenticate: Digest realm="PyRtspLab", nonce="18bcfe56800.cccc82431a31b95f05de9f4cdf5c5588", '
           b'opaque="7edfdf7c95c0cd8e43049e97007881dd", algorithm=MD5, qop="auth"\r\n'
           b'WWW-Authenticate: Basic realm="PyRtspLab"\r\n\r\n')
OUR_401_STALE = (b'RTSP/1.0 401 Unauthorized\r\nCSeq: %d\r\nServer: PyRtspLab\r\n'
                 b'WWW-Authenticate: Digest realm="PyRtspLab", nonce="18bcfe6eea0.8ed047a2df6aae75f0674377e89847e6", '
                 b'opaque="7edfdf7c95c0cd8e43049e97007881dd", stale=true, algorithm=MD5, qop="auth"\r\n'
                 b'WWW-Authenticate: Basic realm="PyRtspLab"\r\n\r\n')
GST_401 = (b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n'
           b'WWW-Authenticate: Digest realm="GStreamer RTSP Server", nonce="b746bf6f428d4bba"\r\n'
           b'Server: GStreamer RTSP server\r\nDate: Sun, 22 Nov 2026 06:53:01 GMT\r\n\r\n')
GST_BASIC_401 = (b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n'
                 b'WWW-Authenticate: Basic realm="GStreamer RTSP Server"\r\n\r\n')
URL = "rtsp://127.0.0.1:8554/movie.Mjpeg"


def our_checker(now: float = CLOCK) -> Authenticator:
    return Authenticator(UserDatabase.parse(USERS), secret=SECRET, clock=lambda: now, allow_basic=True)


def request_of(data: bytes) -> Request:
    (msg,) = RtspParser(role="server").feed(data)
    assert isinstance(msg, Request)
    return msg


def reply(proto: RtspClientProtocol, wire: bytes):
    (r,) = proto.feed(wire).replies
    return r


def test_credentials_leave_the_url_and_never_go_out_in_clear():
    proto = RtspClientProtocol("rtsp://alice:s3cr%3Aet@127.0.0.1:8554/movie.Mjpeg")
    assert (proto.url, proto.username, proto.password) == (URL, "alice", "s3cr:et")
    _, first = proto.describe()
    assert first.startswith(f"DESCRIBE {URL} RTSP/1.0\r\n".encode()) and b"Authorization" not in first
    assert reply(proto, OUR_401).retry
    _, second = proto.describe()
    assert b"s3cr" not in second and b"alice" in second          # Digest: the password never travels


def test_answers_our_digest_challenge_with_counting_nc():
    proto = RtspClientProtocol(URL, username="alice", password="s3cr:et")
    proto.describe()
    first = reply(proto, OUR_401)
    assert first.retry and first.response.status == 401
    checker = our_checker()
    ncs = []
    for cseq, method in ((2, "DESCRIBE"), (3, "OPTIONS"), (4, "OPTIONS")):
        _, data = proto.build(method)
        req = request_of(data)
        assert req.cseq == cseq
        assert checker.verify(req.headers.get("Authorization"), method, req.uri).ok
        scheme, params = parse_authorization(req.headers.get("Authorization"))
        assert scheme.lower() == "digest" and params["qop"] == "auth"
        assert params["opaque"] == "7edfdf7c95c0cd8e43049e97007881dd" and params["uri"] == URL
        ncs.append(params["nc"])
        assert reply(proto, b"RTSP/1.0 200 OK\r\nCSeq: %d\r\n\r\n" % cseq).ok is (method == "OPTIONS")
    assert ncs == ["00000001", "00000002", "00000003"]         # RFC 2617 3.2.2: one more per request


def test_wrong_answer_is_not_retried_but_a_stale_nonce_is():
    proto = RtspClientProtocol(URL, username="alice", password="s3cr:et")
    proto.describe()
    assert reply(proto, OUR_401).retry
    proto.describe()                                              # CSeq 2, with Authorization
    stale = reply(proto, OUR_401_STALE % 2)
    assert stale.retry                                            # stale=true: same credentials, new nonce
    _, data = proto.describe()                                    # CSeq 3
    req = request_of(data)
    _, params = parse_authorization(req.headers.get("Authorization"))
    assert params["nonce"].startswith("18bcfe6eea0.") and params["nc"] == "00000001"
    assert our_checker(CLOCK + 100).verify(req.headers.get("Authorization"), "DESCRIBE", req.uri).ok
    refused = reply(proto, OUR_401 .replace(b"CSeq: 1", b"CSeq: 3"))
    assert not refused.retry                                      # answered and refused: wrong password
    text = describe_failure("DESCRIBE", 401, "Unauthorized", URL, proto.username)
    assert text.startswith("authentication failed: the server refused user 'alice'")


def test_without_credentials_a_401_is_final_with_a_hint():
    proto = RtspClientProtocol(URL)
    proto.describe()
    assert not reply(proto, OUR_401).retry
    assert "rtsp://USER:PASSWORD@" in describe_failure("DESCRIBE", 401, "Unauthorized", URL, None)


@pytest.mark.parametrize("wire,scheme", [(GST_401, "digest"), (GST_BASIC_401, "basic")])
def test_answers_gst_rtsp_server_challenges(wire, scheme):
    """gst-rtsp-server's Digest has no qop (RFC 2069 form: no nc/cnonce); its Basic is user:pass base64."""
    proto = RtspClientProtocol(URL, username="alice", password="pw")
    proto.describe()
    assert reply(proto, wire).retry
    _, data = proto.describe()
    got_scheme, params = parse_authorization(request_of(data).headers.get("Authorization"))
    assert got_scheme.lower() == scheme
    if scheme == "basic":
        assert params == "YWxpY2U6cHc="
    else:
        assert "nc" not in params and "qop" not in params
        assert params["response"] == digest_response(ha1("alice", "GStreamer RTSP Server", "pw"),
                                                     "b746bf6f428d4bba", "DESCRIBE", URL)


# --------------------------------------------------------------------------- end to end, our server

@pytest.mark.parametrize("how", ["url", "--user"])
def test_player_with_credentials_plays_every_frame(start_server, tmp_path, capsys, how):
    srv = start_server(fps=100, auth=Authenticator(UserDatabase.parse(USERS)))
    save, stats = tmp_path / "copy.Mjpeg", tmp_path / "s.json"
    target = ([srv.url().replace("rtsp://", "rtsp://alice:s3cr%3Aet@")] if how == "url"
              else [srv.url(), "--user", "alice:s3cr:et", "--transport", "tcp"])
    rc = ClientLauncher.main([*target, "--headless", "--save", str(save), "--stats-json", str(stats)])
    assert rc == 0, capsys.readouterr().err
    st = json.loads(stats.read_text())
    assert st["url"] == srv.url()                                  # no user:password in what is kept
    assert st["frames_completed"] == 500 and st["packets_lost"] == 0
    source, got = VideoStream(ROOT / "movie.Mjpeg"), VideoStream(save)
    assert len(got) == len(source)
    for i in range(0, len(source), 7):
        assert pixels(got.frame(i)) == pixels(source.frame(i)), f"frame {i}"


def test_stale_nonce_mid_session_is_answered_and_the_session_goes_on(start_server):
    now = [1_000_000.0]
    auth = Authenticator(UserDatabase.parse(USERS), nonce_lifetime=60, clock=lambda: now[0])
    srv = start_server(fps=100, auth=auth)
    eng = ReceiveEngine(srv.url().replace("rtsp://", "rtsp://alice:s3cr%3Aet@"), transport="tcp")
    try:
        eng.open()
        eng.describe()
        eng.setup()
        eng.play()
        eng.pause()
        now[0] += 120                                   # every nonce issued so far is now stale
        eng.play()
        eng.teardown()
        log = []
        while not eng.events.empty():
            ev = eng.events.get_nowait()
            if ev.kind is EventKind.LOG:
                log.append(ev.payload)
    finally:
        eng.close()
    replies = [text.split("\n", 1)[0] for d, text in log if d == "S->C"]
    requests = [text.split(" ", 1)[0] for d, text in log if d == "C->S"]
    assert requests == ["DESCRIBE", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "PLAY", "PLAY", "TEARDOWN"]
    assert replies.count("RTSP/1.0 401 Unauthorized") == 2
    assert sum("stale=true" in text for d, text in log if d == "S->C") == 1
    assert replies[-1] == "RTSP/1.0 200 OK"


def test_wrong_password_fails_at_once_with_one_line(start_server, capsys):
    srv = start_server(auth=Authenticator(UserDatabase.parse(USERS)))
    eng = ReceiveEngine(srv.url(), username="alice", password="guess")
    try:
        eng.open()
        with pytest.raises(ClientError) as err:
            eng.describe()
        sent = [ev.payload[1] for ev in list(eng.events.queue) if ev.kind is EventKind.LOG and ev.payload[0] == "C->S"]
    finally:
        eng.close()
    assert str(err.value).startswith("authentication failed: the server refused user 'alice'")
    assert len(sent) == 2                               # the request and one answer: no loop
    rc = ClientLauncher.main([srv.url().replace("rtsp://", "rtsp://alice:guess@"), "--headless"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: authentication failed"), lines
    assert "guess" not in lines[0]


# --------------------------------------------------------------------------- gst-rtsp-server with auth

@pytest.mark.parametrize("method", ["digest", "basic"])
def test_player_plays_gst_rtsp_server_with_auth(gst_server, tmp_path, method):
    srv = gst_server("--frames", "30", "--auth", "alice:pw", "--auth-method", method)
    url = f"rtsp://127.0.0.1:{srv.port}/test"
    stats = tmp_path / "s.json"
    ok = subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), url.replace("rtsp://", "rtsp://alice:pw@"),
                         "--headless", "--stats-json", str(stats), "--idle-timeout", "2"],
                        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    st = json.loads(stats.read_text())
    assert st["frames_completed"] == 30 and st["packets_lost"] == 0
    bad = subprocess.run([sys.executable, str(ROOT / "ClientLauncher.py"), url.replace("rtsp://", "rtsp://alice:no@"),
                          "--headless"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: authentication failed: the server refused user 'alice' (DESCRIBE {url}: 401 Unauthorized)"]
