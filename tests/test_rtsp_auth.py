"""RtspAuth: RFC 2617 Digest/Basic for RTSP, server and client side.

Tables of real Authorization headers (ffmpeg 5.1 and GStreamer 1.22 answering our 401,
tests/wire/rtsp-auth-requests.txt), the RFC 2617 3.5 example, and our own client answering
our own server; then the end-to-end checks with real ffmpeg and gst against our server.
"""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from RtspAuth import (
    AuthError, Authenticator, NonceState, UserDatabase, answer_challenge, digest_response, ha1,
    parse_authorization, parse_challenges, parse_params, split_credentials,
)
from RtspMessage import Headers, RtspError, Status
from RtspParser import RtspParser

ROOT = Path(__file__).resolve().parent.parent


WIRE = ROOT / "tests" / "wire" / "rtsp-auth-requests.txt"
T0 = 1700000000.0


def captured():
    """(tag, Request) for every captured request: the parser reads them back byte-exact."""
    text = WIRE.read_text()
    out = []
    for block in text.split("##### ")[1:]:
        tag, _, message = block.partition("\n")
        wire = message.replace("\n", "\r\n").encode()
        requests = RtspParser().feed(wire)
        assert len(requests) == 1, tag
        out.append((tag, requests[0]))
    return out


CAPTURED = captured()


def capture_auth(tag):
    qop = "qop=auth" in tag
    basic = "basic=offered" in tag
    return Authenticator(UserDatabase.parse("alice:s3cr:et"), secret=b"k" * 32, qop=qop, allow_basic=basic,
                         clock=lambda: T0)


# --------------------------------------------------------------------------- digest math

def test_rfc2617_example_digest():
    """RFC 2617 3.5: Mufasa / Circle Of Life, qop=auth."""
    h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert digest_response(h, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html", "auth",
                           "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_example_verified_through_header():
    users = UserDatabase.parse("Mufasa:Circle Of Life")
    auth = Authenticator(users, realm="testrealm@host.com", secret=b"s", clock=lambda: T0, opaque=False)
    nonce = auth.make_nonce()
    header = answer_challenge(auth.challenges(), "Mufasa", "Circle Of Life", "GET", "/dir/index.html",
                              cnonce="0a4f113b")
    params = parse_authorization(header)[1]
    assert params["nonce"] == nonce and params["qop"] == "auth" and params["nc"] == "00000001"
    assert params["response"] == digest_response(ha1("Mufasa", "testrealm@host.com", "Circle Of Life"), nonce,
                                                 "GET", "/dir/index.html", "auth", "00000001", "0a4f113b")
    assert auth.verify(header, "GET", "/dir/index.html").ok


# --------------------------------------------------------------------------- captured clients

@pytest.mark.parametrize("tag,request_", CAPTURED, ids=[t for t, _ in CAPTURED])
def test_captured_client_answers_verify(tag, request_):
    auth = capture_auth(tag)
    result = auth.verify(request_.headers["Authorization"], request_.method, request_.uri)
    assert result.ok and result.username == "alice", result.reason
    # the same credentials do not authorize another method or another URI
    assert not auth.verify(request_.headers["Authorization"], "SETUP", request_.uri).ok
    assert not auth.verify(request_.headers["Authorization"], request_.method, request_.uri + "x").ok
    # ... nor under another password or another server's secret
    other = Authenticator(UserDatabase.parse("alice:other"), secret=b"k" * 32, clock=lambda: T0)
    assert not other.verify(request_.headers["Authorization"], request_.method, request_.uri).ok
    foreign = Authenticator(UserDatabase.parse("alice:s3cr:et"), secret=b"j" * 32, clock=lambda: T0, opaque=False)
    assert foreign.verify(request_.headers["Authorization"], request_.method, request_.uri).reason \
        == "nonce not issued by this server"


@pytest.mark.parametrize("tag,request_", CAPTURED, ids=[t for t, _ in CAPTURED])
def test_captured_answer_after_expiry_is_stale(tag, request_):
    auth = capture_auth(tag)
    result = auth.verify(request_.headers["Authorization"], request_.method, request_.uri,
                         now=T0 + auth.nonce_lifetime + 1)
    assert not result.ok and result.stale and result.username == "alice"
    with pytest.raises(RtspError) as info:
        auth.require(request_.headers, request_.method, request_.uri, now=T0 + auth.nonce_lifetime + 1)
    assert info.value.status == Status.UNAUTHORIZED
    assert "stale=true" in info.value.headers["WWW-Authenticate"]


def test_captured_clients_prefer_digest_and_gstreamer_ignores_qop():
    kinds = {tag: parse_authorization(r.headers["Authorization"]) for tag, r in CAPTURED}
    assert all(scheme == "digest" for scheme, _ in kinds.values())
    assert {("qop" in p) for t, (_, p) in kinds.items() if t.startswith("gstreamer")} == {False}
    assert {p.get("qop") for t, (_, p) in kinds.items() if t.startswith("ffmpeg qop=auth")} == {"auth"}


def test_our_client_answer_equals_ffmpegs_for_same_cnonce():
    tag, request_ = next((t, r) for t, r in CAPTURED if t.startswith("ffmpeg qop=auth"))
    theirs = parse_authorization(request_.headers["Authorization"])[1]
    auth = capture_auth(tag)
    ours = answer_challenge(auth.challenges(), "alice", "s3cr:et", "DESCRIBE", request_.uri,
                            cnonce=theirs["cnonce"])
    assert parse_authorization(ours)[1]["response"] == theirs["response"]


# --------------------------------------------------------------------------- server side

def make_auth(**kw):
    kw.setdefault("secret", b"x" * 32)
    kw.setdefault("clock", lambda: T0)
    return Authenticator(UserDatabase.parse("bob:pw"), **kw)


def test_challenge_format():
    auth = make_auth()
    (digest,) = auth.challenges()
    assert re.fullmatch(r'Digest realm="PyRtspLab", nonce="[0-9a-f]+\.[0-9a-f]{32}", opaque="[0-9a-f]{32}", '
                        r'algorithm=MD5, qop="auth"', digest), digest
    assert make_auth(allow_basic=True).challenges()[1] == 'Basic realm="PyRtspLab"'
    assert 'stale=true' in auth.challenges(stale=True)[0]
    assert "qop" not in make_auth(qop=False).challenges()[0]


def test_nonce_states():
    auth = make_auth(nonce_lifetime=60)
    nonce = auth.make_nonce()
    assert auth.check_nonce(nonce) is NonceState.VALID
    assert auth.check_nonce(nonce, now=T0 + 60) is NonceState.VALID
    assert auth.check_nonce(nonce, now=T0 + 61) is NonceState.STALE
    assert auth.check_nonce(nonce, now=T0 - 60) is NonceState.INVALID  # from the future
    stamp, mac = nonce.split(".")
    forged = f"{int(stamp, 16) + 1000:x}.{mac}"  # moving the time breaks the signature
    for bad in (forged, stamp, "", ".", "zz." + mac, nonce[:-1], "1" * 40 + "." + mac, nonce + "\udcff"):
        assert auth.check_nonce(bad) is NonceState.INVALID, bad


def test_nonces_differ_by_time_and_server():
    a, b = make_auth(), make_auth(secret=b"y" * 32)
    assert a.make_nonce() != b.make_nonce()
    assert a.make_nonce(now=T0) != a.make_nonce(now=T0 + 0.002)


def digest_for(auth, method="DESCRIBE", uri="rtsp://h/movie.Mjpeg", user="bob", password="pw", **kw):
    return answer_challenge(auth.challenges(), user, password, method, uri, **kw)


REJECTS = [
    ("no header", None, "no credentials"),
    ("empty", "", "no credentials"),
    ("unknown scheme", "Bearer abc", "scheme 'bearer' not accepted"),
    ("basic not enabled", "Basic " + base64.b64encode(b"bob:pw").decode(), "Basic authentication is not enabled"),
    ("missing response", 'Digest username="bob", realm="PyRtspLab", nonce="n", uri="u"', "lack response"),
    ("garbled params", 'Digest username="bob', "malformed"),
    ("no scheme", "=", "without a scheme"),
]


@pytest.mark.parametrize("name,value,reason", REJECTS, ids=[r[0] for r in REJECTS])
def test_rejects_with_reason(name, value, reason):
    result = make_auth().verify(value, "DESCRIBE", "rtsp://h/movie.Mjpeg")
    assert not result.ok and reason in result.reason


def mutate(header, name, value):
    return re.sub(rf'{name}=("[^"]*"|[^,]*)', f'{name}={value}', header)


@pytest.mark.parametrize("name,value,reason", [
    ("realm", '"other"', "realm"),
    ("username", '"mallory"', "wrong user"),
    ("response", '"' + "0" * 32 + '"', "wrong user"),
    ("response", '"xyz"', "wrong user"),
    ("uri", '"rtsp://h/secret.Mjpeg"', "not the request-URI"),
    ("algorithm", "SHA-256", "algorithm"),
    ("qop", "auth-int", "qop"),
    ("nc", "1", "nc"),
    ("opaque", '"nope"', "opaque"),
    ("nonce", '"123.abc"', "nonce not issued"),
])
def test_tampered_digest_rejected(name, value, reason):
    auth = make_auth()
    good = digest_for(auth)
    assert auth.verify(good, "DESCRIBE", "rtsp://h/movie.Mjpeg").ok
    bad = mutate(good, name, value)
    assert bad != good
    result = auth.verify(bad, "DESCRIBE", "rtsp://h/movie.Mjpeg")
    assert not result.ok and reason in result.reason, result.reason


def test_uri_may_differ_in_host_form_but_not_in_path():
    auth = make_auth()
    header = digest_for(auth, "SETUP", uri="rtsp://127.0.0.1:554/movie.Mjpeg/trackID=0")
    assert auth.verify(header, "SETUP", "rtsp://127.0.0.1:554/movie.Mjpeg/trackID=0").ok
    assert auth.verify(header, "SETUP", "rtsp://[::1]:554/movie.Mjpeg/trackID=0").ok
    assert not auth.verify(header, "SETUP", "rtsp://127.0.0.1:554/movie.Mjpeg/trackID=1").ok


def test_malformed_uris_are_a_mismatch_not_an_exception():
    """Found by bench/fuzz_server.py --pure: urlsplit raises on 'rtsp://['."""
    auth = make_auth()
    header = digest_for(auth, uri="rtsp://[/movie.Mjpeg")
    assert not auth.verify(header, "DESCRIBE", "rtsp://h/movie.Mjpeg").ok
    assert auth.verify(header, "DESCRIBE", "rtsp://[/movie.Mjpeg").ok  # equal strings still match
    header = digest_for(auth, uri="rtsp://h/movie.Mjpeg")
    assert not auth.verify(header, "DESCRIBE", "rtsp://[::1/movie.Mjpeg").ok


def test_md5_sess_and_rfc2069_answers():
    auth = make_auth()
    nonce = auth.make_nonce()
    h = ha1("bob", "PyRtspLab", "pw")
    sess = digest_response(h, nonce, "PLAY", "u", "auth", "00000002", "cn", "MD5-sess")
    header = (f'Digest username="bob", realm="PyRtspLab", nonce="{nonce}", uri="u", response="{sess}", '
              f'algorithm=MD5-sess, qop=auth, nc=00000002, cnonce="cn"')
    assert auth.verify(header, "PLAY", "u").ok
    plain = digest_response(h, nonce, "PLAY", "u")
    assert auth.verify(f'Digest username="bob", realm="PyRtspLab", nonce="{nonce}", uri="u", '
                       f'response="{plain.upper()}"', "PLAY", "u").ok  # hex case does not matter


def test_basic_when_allowed():
    auth = make_auth(allow_basic=True)
    ok = "Basic " + base64.b64encode(b"bob:pw").decode()
    assert auth.verify(ok, "PLAY", "u").ok
    for bad in (b"bob:pW", b"bob", b"eve:pw", b"\xff\xfe:pw"):
        assert not auth.verify("Basic " + base64.b64encode(bad).decode(), "PLAY", "u").ok
    assert not auth.verify("Basic ***", "PLAY", "u").ok


def test_require_raises_401_with_every_challenge():
    auth = make_auth(allow_basic=True)
    with pytest.raises(RtspError) as info:
        auth.require(Headers(), "DESCRIBE", "u")
    error = info.value
    assert error.status == Status.UNAUTHORIZED
    assert error.headers["WWW-Authenticate"].startswith("Digest ")
    assert [v.split()[0] for v in error.headers.get_all("WWW-Authenticate")] == ["Digest", "Basic"]
    headers = Headers({"Authorization": digest_for(auth, "DESCRIBE", "u")})
    assert auth.require(headers, "DESCRIBE", "u") == "bob"


def test_compare_is_constant_time(monkeypatch):
    """The response digest and Basic password go through hmac.compare_digest."""
    import RtspAuth
    calls = []
    real = RtspAuth.hmac.compare_digest
    monkeypatch.setattr(RtspAuth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    auth = make_auth(allow_basic=True)
    header = digest_for(auth)
    calls.clear()
    auth.verify(header, "DESCRIBE", "rtsp://h/movie.Mjpeg")
    response = parse_authorization(header)[1]["response"].encode()
    assert any(response in pair for pair in calls)
    calls.clear()
    auth.verify("Basic " + base64.b64encode(b"bob:guess").decode(), "DESCRIBE", "u")
    assert (b"guess", b"pw") in calls


# --------------------------------------------------------------------------- users

def test_user_database_spec_and_file(tmp_path):
    assert UserDatabase.parse("u:p:with:colons").password("u") == "p:with:colons"
    for bad in ("nocolon", ":pw", "a\nb:c"):
        with pytest.raises(AuthError):
            UserDatabase.parse(bad)
    path = tmp_path / "users"
    digest_line = f"carol:PyRtspLab:{ha1('carol', 'PyRtspLab', 'c-pw')}"
    path.write_text(f"# comment\n\nalice:a-pw\nbob:b:pw\n{digest_line}\n")
    users = UserDatabase.load(path)
    assert len(users) == 3 and users.password("bob") == "b:pw" and users.password("carol") is None
    auth = Authenticator(users, secret=b"z", clock=lambda: T0, allow_basic=True)
    for user, password in (("alice", "a-pw"), ("bob", "b:pw"), ("carol", "c-pw")):
        assert auth.verify(answer_challenge(auth.challenges()[:1], user, password, "PLAY", "u"), "PLAY", "u").ok
    # an htdigest-only user cannot use Basic (no password known)
    assert not auth.verify("Basic " + base64.b64encode(b"carol:c-pw").decode(), "PLAY", "u").ok
    path.write_text("# nobody\n")
    with pytest.raises(AuthError):
        UserDatabase.load(path)
    path.write_text("alice\n")
    with pytest.raises(AuthError, match=":1:"):
        UserDatabase.load(path)


# --------------------------------------------------------------------------- client side

@pytest.mark.parametrize("values,scheme", [
    (['Digest realm="r", nonce="n", qop="auth,auth-int"'], "Digest"),
    (['Basic realm="r"', 'Digest realm="r", nonce="n"'], "Digest"),
    (['Digest realm="r", nonce="n", algorithm=MD5, Basic realm="r"'], "Digest"),
    (['Basic realm="r"'], "Basic"),
    (['Digest realm="r", nonce="n", algorithm=SHA-256', 'Basic realm="a, Digest b"'], "Basic"),
])
def test_answer_picks_digest_then_basic(values, scheme):
    assert answer_challenge(values, "u", "p", "OPTIONS", "*").split()[0] == scheme


def test_answer_refuses_unusable_challenges():
    for values in (['Bearer realm="r"'], ['Digest realm="r", nonce="n", qop="auth-int"'], ['Digest realm="r"'], []):
        with pytest.raises(AuthError):
            answer_challenge(values, "u", "p", "OPTIONS", "*")


def test_parse_challenges_with_commas_and_escapes_in_quotes():
    got = parse_challenges('Digest realm="a, \\"b\\" c", nonce="n1", Basic realm="x"')
    assert [(c.scheme, c.params) for c in got] == [("Digest", {"realm": 'a, "b" c', "nonce": "n1"}),
                                                    ("Basic", {"realm": "x"})]
    assert parse_params('a=1, B="2,3" ,c=') == {"a": "1", "b": "2,3", "c": ""}


def test_nc_counts_and_quoted_realm_roundtrip():
    auth = Authenticator(UserDatabase.parse("u:p"), realm="cams, floor 2", secret=b"q", clock=lambda: T0)
    for nc in (1, 2, 0xABC):
        header = answer_challenge(auth.challenges(), "u", "p", "PLAY", "rtsp://h/x", nc=nc)
        assert f"nc={nc:08x}" in header
        assert auth.verify(header, "PLAY", "rtsp://h/x").ok


@pytest.mark.parametrize("url,expected", [
    ("rtsp://u:p@h:554/x", ("rtsp://h:554/x", "u", "p")),
    ("rtsp://u:p%40ss%3A@[::1]:8554/a/b?q", ("rtsp://[::1]:8554/a/b?q", "u", "p@ss:")),
    ("rtsp://user@h/x", ("rtsp://h/x", "user", None)),
    ("rtsp://h:554/x", ("rtsp://h:554/x", None, None)),
])
def test_split_credentials(url, expected):
    assert split_credentials(url) == expected


# --------------------------------------------------------------------------- real clients, our server

def _auth_server(start_server, **kw):
    """Our server with auth on; needs ServerConfig.auth (see the wiring diff in the hardening note)."""
    auth = Authenticator(UserDatabase.parse("alice:s3cr:et"), **kw)
    return start_server(auth=auth)


def test_our_server_401_then_digest(start_server):
    from rtsp_tools import RtspConn
    srv = _auth_server(start_server, allow_basic=True)
    conn = RtspConn(srv.port)
    try:
        assert conn.request("OPTIONS", srv.url()).status == 200  # OPTIONS stays open
        reply = conn.request("DESCRIBE", srv.url())
        assert reply.status == 401
        values = reply.headers.get_all("WWW-Authenticate")
        assert [v.split()[0] for v in values] == ["Digest", "Basic"]
        header = answer_challenge(values, "alice", "s3cr:et", "DESCRIBE", srv.url())
        assert conn.request("DESCRIBE", srv.url(), {"Authorization": header}).status == 200
        wrong = answer_challenge(values, "alice", "guess", "DESCRIBE", srv.url())
        assert conn.request("DESCRIBE", srv.url(), {"Authorization": wrong}).status == 401
        basic = answer_challenge(values[1:], "alice", "s3cr:et", "DESCRIBE", srv.url())
        assert conn.request("DESCRIBE", srv.url(), {"Authorization": basic}).status == 200
    finally:
        conn.close()


def _need(program):
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")


def test_ffmpeg_plays_with_credentials_in_url(start_server):
    _need("ffmpeg")
    srv = _auth_server(start_server)
    url = f"rtsp://alice:s3cr%3Aet@127.0.0.1:{srv.port}/movie.Mjpeg"
    good = subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "10",
                           "-f", "framemd5", "-"], capture_output=True, timeout=30)
    assert good.returncode == 0, good.stderr.decode()[-500:]
    assert good.stdout.decode().count("\n0,") == 10
    bad = subprocess.run(["ffmpeg", "-v", "error", "-i", url.replace("s3cr%3Aet", "nope"), "-frames:v", "1",
                          "-f", "null", "-"], capture_output=True, timeout=30)
    assert bad.returncode != 0 and b"401" in bad.stderr


def test_gstreamer_plays_with_user_id_and_pw(start_server):
    _need("gst-launch-1.0")
    srv = _auth_server(start_server)

    def run(pw):
        return subprocess.run(["gst-launch-1.0", "-q", "rtspsrc", f"location={srv.url()}", "user-id=alice",
                               f"user-pw={pw}", "protocols=tcp", "!", "rtpjpegdepay", "!", "jpegdec", "!",
                               "fakesink", "num-buffers=10"], capture_output=True, timeout=30)
    good = run("s3cr:et")
    assert good.returncode == 0, good.stderr.decode()[-500:]
    bad = run("nope")
    assert bad.returncode != 0 and b"Unauthorized" in bad.stderr + bad.stdout
