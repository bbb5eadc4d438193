"""RtspHeaders: header values seen in the wild, parsed and formatted in both directions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from RtspHeaders import (
    NptRange, RtpInfo, Transport, format_public, format_range, format_rtp_info,
    format_session, format_transport, join_url, parse_public, parse_range, parse_rtp_info,
    parse_session, parse_transport, quote_string, split_param, split_quoted, split_url,
    unquote_string,
)
from RtspClient import RtspClientProtocol, parse_sdp_info
from RtspMessage import RtspError, Status

T = Transport

# (name, header value as sent, parsed alternatives, canonical format)
TRANSPORTS = [
    ("gst-rtspsrc-udp", "RTP/AVP;unicast;client_port=49438-49439",
     [T(client_port=(49438, 49439))], "RTP/AVP;unicast;client_port=49438-49439"),
    ("ffmpeg-udp", "RTP/AVP/UDP;unicast;client_port=49442-49443",
     [T(client_port=(49442, 49443))], "RTP/AVP;unicast;client_port=49442-49443"),
    ("ffmpeg-tcp", "RTP/AVP/TCP;unicast;interleaved=0-1",
     [T(lower="TCP", interleaved=(0, 1))], "RTP/AVP/TCP;unicast;interleaved=0-1"),
    ("gst-server-reply-udp",
     'RTP/AVP;unicast;client_port=49442-49443;server_port=26110-26111;ssrc=3895856A;mode="PLAY"',
     [T(client_port=(49442, 49443), server_port=(26110, 26111), ssrc=0x3895856A, mode="PLAY")],
     'RTP/AVP;unicast;client_port=49442-49443;server_port=26110-26111;ssrc=3895856A;mode="PLAY"'),
    ("gst-server-reply-tcp", 'RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=A1E187A8;mode="PLAY"',
     [T(lower="TCP", interleaved=(0, 1), ssrc=0xA1E187A8, mode="PLAY")],
     'RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=A1E187A8;mode="PLAY"'),
    ("multicast", "RTP/AVP;multicast;destination=225.219.201.15;port=7000-7001;ttl=127",
     [T(unicast=False, destination="225.219.201.15", port=(7000, 7001), ttl=127)],
     "RTP/AVP;multicast;destination=225.219.201.15;ttl=127;port=7000-7001"),
    ("lab", "RTP/UDP; client_port= 25000",
     [T(client_port=(25000, 25001), lab=True)], "RTP/UDP; client_port= 25000"),
    ("single-port", "RTP/AVP;unicast;client_port=5000",
     [T(client_port=(5000, 5001))], "RTP/AVP;unicast;client_port=5000-5001"),
    ("hikvision-spaces",
     "RTP/AVP/UDP;unicast;client_port=14186;server_port=8052;ssrc= 4317f;mode=play",
     [T(client_port=(14186, 14187), server_port=(8052, 8053), ssrc=0x4317F, mode="PLAY")],
     'RTP/AVP;unicast;client_port=14186-14187;server_port=8052-8053;ssrc=0004317F;mode="PLAY"'),
    ("dahua-spaces", "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=     D93FF",
     [T(lower="TCP", interleaved=(0, 1), ssrc=0xD93FF)],
     "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=000D93FF"),
    ("spaces-everywhere", " RTP/AVP ; unicast ; client_port = 5000 - 5001 ",
     [T(client_port=(5000, 5001))], "RTP/AVP;unicast;client_port=5000-5001"),
    ("decimal-ssrc-ignored",
     "RTP/AVP;unicast;client_port=14236;source=172.16.8.2;server_port=56002;ssrc=1449463210",
     [T(client_port=(14236, 14237), server_port=(56002, 56003), source="172.16.8.2")],
     "RTP/AVP;unicast;source=172.16.8.2;client_port=14236-14237;server_port=56002-56003"),
    ("empty-source", "RTP/AVP/UDP;unicast;source=;client_port=32560-32561;ssrc=45dcb578",
     [T(client_port=(32560, 32561), ssrc=0x45DCB578)],
     "RTP/AVP;unicast;client_port=32560-32561;ssrc=45DCB578"),
    ("unsorted", 'client_port=3456-3457;RTP/AVP;mode="PLAY";unicast',
     [T(client_port=(3456, 3457), mode="PLAY")], 'RTP/AVP;unicast;client_port=3456-3457;mode="PLAY"'),
    ("unknown-params-ignored", "RTP/AVP;unicast;client_port=5000-5001;append;layers=2;x-foo=bar",
     [T(client_port=(5000, 5001))], "RTP/AVP;unicast;client_port=5000-5001"),
    ("alternatives", 'RTP/AVP;unicast;client_port=3456-3457;mode="PLAY", RTP/AVP/TCP;unicast;'
     "interleaved=0-1", [T(client_port=(3456, 3457), mode="PLAY"),
                         T(lower="TCP", interleaved=(0, 1))],
     'RTP/AVP;unicast;client_port=3456-3457;mode="PLAY",RTP/AVP/TCP;unicast;interleaved=0-1'),
    ("unsupported-alternative-dropped", "RTP/SAVP;unicast;client_port=1000-1001,"
     "RAW/RAW/UDP;unicast;client_port=1002-1003,RTP/AVP;unicast;client_port=1004-1005",
     [T(client_port=(1004, 1005))], "RTP/AVP;unicast;client_port=1004-1005"),
    ("lowercase", "rtp/avp/tcp;interleaved=2-3",
     [T(lower="TCP", interleaved=(2, 3))], "RTP/AVP/TCP;unicast;interleaved=2-3"),
]


@pytest.mark.parametrize("name,value,parsed,canonical", TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
def test_transport_both_directions(name, value, parsed, canonical):
    assert Transport.parse_list(value) == parsed
    assert parse_transport(value) == parsed
    assert format_transport(parsed) == canonical
    # canonical output parses back to the same objects
    assert Transport.parse_list(canonical) == parsed
    for t in parsed:
        assert Transport.parse(t.format()) == t and str(t) == t.format()


TRANSPORT_ERRORS = [
    ("raw", "RAW/RAW/UDP", 461),
    ("savp", "RTP/SAVP;unicast;client_port=1-2", 461),
    ("sctp", "RTP/AVP/SCTP;unicast", 461),
    ("no-protocol", "aasd", 461),
    ("empty", "", 400),
    ("only-commas", " , ,", 400),
    ("bad-port", "RTP/AVP;unicast;client_port=aa-14187", 400),
    ("port-range-backwards", "RTP/AVP;unicast;client_port=5001-5000", 400),
    ("port-zero", "RTP/AVP;unicast;client_port=0-1", 400),
    ("port-too-big", "RTP/AVP;unicast;client_port=70000-70001", 400),
    ("single-port-65535", "RTP/AVP;unicast;client_port=65535", 400),
    ("three-ports", "RTP/AVP;unicast;port=1-2-3", 400),
    ("bad-interleaved", "RTP/AVP/TCP;interleaved=aa-1", 400),
    ("interleaved-over-255", "RTP/AVP/TCP;interleaved=255-256", 400),
    ("bad-ttl", "RTP/AVP;multicast;ttl=aa", 400),
    ("unbalanced-quote", 'RTP/AVP;unicast;mode="PLAY', 400),
    ("lab-bad-port", "RTP/UDP; client_port= abc", 400),
]


@pytest.mark.parametrize("name,value,status", TRANSPORT_ERRORS, ids=[t[0] for t in TRANSPORT_ERRORS])
def test_transport_errors(name, value, status):
    with pytest.raises(RtspError) as exc:
        Transport.parse_list(value)
    assert exc.value.status == status


def test_transport_errors_prefer_461_over_400():
    with pytest.raises(RtspError) as exc:
        Transport.parse_list("RTP/AVP;client_port=x,RTP/SAVP;client_port=1-2")
    assert exc.value.status == Status.UNSUPPORTED_TRANSPORT


@settings(max_examples=200, deadline=None)
@given(lower=st.sampled_from(["UDP", "TCP"]), unicast=st.booleans(),
       cp=st.none() | st.tuples(st.integers(1, 65534)).map(lambda p: (p[0], p[0] + 1)),
       sp=st.none() | st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
           lambda p: (min(p), max(p))),
       il=st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
           lambda p: (min(p), max(p))),
       ssrc=st.none() | st.integers(0, 0xFFFFFFFF),
       mode=st.none() | st.sampled_from(["PLAY", "RECORD"]),
       ttl=st.none() | st.integers(0, 255))
def test_transport_format_parse_roundtrip(lower, unicast, cp, sp, il, ssrc, mode, ttl):
    t = Transport(lower=lower, unicast=unicast, client_port=cp, server_port=sp, interleaved=il,
                  ssrc=ssrc, mode=mode, ttl=ttl)
    assert Transport.parse(t.format()) == t


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_transport_garbage_only_raises_rtsp_error(text):
    try:
        result = Transport.parse_list(text)
    except RtspError as exc:
        assert exc.status in (400, 461)
    else:
        assert result and all(isinstance(t, Transport) for t in result)


# --------------------------------------------------------------------------- Session

SESSIONS = [
    ("Hunf-KrLjoPerQKs", ("Hunf-KrLjoPerQKs", None), "Hunf-KrLjoPerQKs"),
    ("ckrZFTOv.Df8d.1b", ("ckrZFTOv.Df8d.1b", None), "ckrZFTOv.Df8d.1b"),
    ("uaILGORVYBOW+fkf", ("uaILGORVYBOW+fkf", None), "uaILGORVYBOW+fkf"),
    ("123456;timeout=60", ("123456", 60), "123456;timeout=60"),
    ("123456 ; timeout = 60", ("123456", 60), "123456;timeout=60"),
    ("123456;timeout=abc", ("123456", None), "123456"),
    ("487202311", ("487202311", None), "487202311"),
]


@pytest.mark.parametrize("value,parsed,canonical", SESSIONS)
def test_session_both_directions(value, parsed, canonical):
    assert parse_session(value) == parsed
    assert format_session(*parsed) == canonical
    assert parse_session(canonical) == parsed


@pytest.mark.parametrize("value", ["", ";timeout=60", "a b", "abc\x00"])
def test_session_errors(value):
    with pytest.raises(RtspError) as exc:
        parse_session(value)
    assert exc.value.status == 400


def test_format_session_rejects_injection():
    with pytest.raises(ValueError):
        format_session("1\r\nX: y")
    assert format_session(42, 60) == "42;timeout=60"


# --------------------------------------------------------------------------- Range

RANGES = [
    ("npt=0.000-", NptRange(0.0, None), "npt=0.000-"),       # ffmpeg
    ("npt=now-", NptRange(None, None), "npt=now-"),          # GStreamer
    ("npt=10-20", NptRange(10.0, 20.0), "npt=10.000-20.000"),
    ("npt=1:02:03.5-", NptRange(3723.5, None), "npt=3723.500-"),
    ("npt=0:00:10-0:01:00", NptRange(10.0, 60.0), "npt=10.000-60.000"),
    ("npt=12.345-", NptRange(12.345, None), "npt=12.345-"),
    ("NPT = 5 - 6", NptRange(5.0, 6.0), "npt=5.000-6.000"),
    ("npt=-20", NptRange(0.0, 20.0), "npt=0.000-20.000"),
    ("npt=now-30", NptRange(None, 30.0), "npt=now-30.000"),
    ("npt=3-;time=19970123T153600Z", NptRange(3.0, None), "npt=3.000-"),
    ("npt=.5-", NptRange(0.5, None), "npt=0.500-"),
]


@pytest.mark.parametrize("value,parsed,canonical", RANGES)
def test_range_both_directions(value, parsed, canonical):
    assert parse_range(value) == parsed
    assert format_range(parsed) == canonical
    assert parse_range(canonical) == parsed


@pytest.mark.parametrize("value", [
    "smpte=10:07:00-10:07:33:05.01", "smpte-25=10:07:00-", "clock=19961108T142300Z-",
    "npt=", "npt=-", "npt=abc-", "npt=20-10", "npt=inf-", "npt=nan-", "npt=-1-", "npt=1:60:00-",
    "npt=0:00:61-", "npt=5-now", "bytes=0-", "", "npt=1e3-", "npt=1,5-",
])
def test_range_errors_are_457(value):
    with pytest.raises(RtspError) as exc:
        parse_range(value)
    assert exc.value.status == Status.INVALID_RANGE


@settings(max_examples=200, deadline=None)
@given(start=st.none() | st.integers(0, 10**7), length=st.none() | st.integers(0, 10**7))
def test_range_format_parse_roundtrip(start, length):
    rng = NptRange(None if start is None else start / 1000,
                   None if length is None else ((start or 0) + length) / 1000)
    assert parse_range(format_range(rng)) == rng


# --------------------------------------------------------------------------- RTP-Info

RTP_INFOS = [
    ("url=rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0;seq=23457;rtptime=135219551",
     [RtpInfo("rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0", 23457, 135219551)],
     "url=rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0;seq=23457;rtptime=135219551"),
    ("url=rtsp://127.0.0.1:26010/movie.Mjpeg;seq=26403;rtptime=900604466",
     [RtpInfo("rtsp://127.0.0.1:26010/movie.Mjpeg", 26403, 900604466)],
     "url=rtsp://127.0.0.1:26010/movie.Mjpeg;seq=26403;rtptime=900604466"),
    ("url=rtsp://h/a/trackID=0;seq=1;rtptime=2, url=rtsp://h/a/trackID=1;seq=3;rtptime=4",
     [RtpInfo("rtsp://h/a/trackID=0", 1, 2), RtpInfo("rtsp://h/a/trackID=1", 3, 4)],
     "url=rtsp://h/a/trackID=0;seq=1;rtptime=2,url=rtsp://h/a/trackID=1;seq=3;rtptime=4"),
    ("url=rtsp://h/a,b/trackID=0;seq=65535", [RtpInfo("rtsp://h/a,b/trackID=0", 65535, None)],
     "url=rtsp://h/a,b/trackID=0;seq=65535"),
    ("url=rtsp://h/a;b=1;seq=7;rtptime=4294967295;ssrc=1234",
     [RtpInfo("rtsp://h/a;b=1", 7, 4294967295)], "url=rtsp://h/a;b=1;seq=7;rtptime=4294967295"),
    ("url=rtsp://h/m", [RtpInfo("rtsp://h/m")], "url=rtsp://h/m"),
]


@pytest.mark.parametrize("value,parsed,canonical", RTP_INFOS)
def test_rtp_info_both_directions(value, parsed, canonical):
    assert parse_rtp_info(value) == parsed
    assert format_rtp_info(parsed) == canonical
    assert parse_rtp_info(canonical) == parsed


@pytest.mark.parametrize("value", ["", "seq=1", "url=rtsp://h/m;seq=x", "url=rtsp://h/m;seq=65536",
                                   "url=rtsp://h/m;rtptime=4294967296", "url="])
def test_rtp_info_errors(value):
    with pytest.raises(RtspError) as exc:
        parse_rtp_info(value)
    assert exc.value.status == 400


# --------------------------------------------------------------------------- Public, URLs


def test_public_both_directions():
    value = ("OPTIONS, DESCRIBE, ANNOUNCE, GET_PARAMETER, PAUSE, PLAY, RECORD, SETUP, "
             "SET_PARAMETER, TEARDOWN")
    methods = parse_public(value)
    assert methods[0] == "OPTIONS" and methods[-1] == "TEARDOWN" and len(methods) == 10
    assert format_public(methods) == value
    assert parse_public("OPTIONS,DESCRIBE ,, PLAY") == ["OPTIONS", "DESCRIBE", "PLAY"]
    assert parse_public("options, Describe") == ["OPTIONS", "DESCRIBE"]  # tolerant in, canonical out


JOINS = [
    # base (Content-Base or request URL), a=control, resolved
    ("rtsp://127.0.0.1:26010/movie.Mjpeg/", "stream=0", "rtsp://127.0.0.1:26010/movie.Mjpeg/stream=0"),
    ("rtsp://127.0.0.1:26010/movie.Mjpeg/", "*", "rtsp://127.0.0.1:26010/movie.Mjpeg/"),
    ("rtsp://h:2048/movie.Mjpeg", "trackID=0", "rtsp://h:2048/movie.Mjpeg/trackID=0"),
    ("rtsp://h:2048/movie.Mjpeg", "*", "rtsp://h:2048/movie.Mjpeg"),
    ("rtsp://h:2048/movie.Mjpeg", None, "rtsp://h:2048/movie.Mjpeg"),
    ("rtsp://h:2048/movie.Mjpeg/", "rtsp://other:554/x/track1", "rtsp://other:554/x/track1"),
    ("rtsp://h:2048/movie.Mjpeg/", "RTSP://other/x", "RTSP://other/x"),
    ("rtsp://h:2048/movie.Mjpeg/", "/abs/track", "rtsp://h:2048/abs/track"),
    ("rtsp://[::1]:2048/movie.Mjpeg/", "trackID=0", "rtsp://[::1]:2048/movie.Mjpeg/trackID=0"),
]


@pytest.mark.parametrize("base,control,joined", JOINS)
def test_join_url(base, control, joined):
    assert join_url(base, control) == joined


# RFC 2326 C.1.1: session- and media-level a=control both resolve against the base URL
# (Content-Base, else Content-Location, else the request URL), never one against the other.
# (base, session a=control, media a=control, aggregate URL, SETUP URL)
CONTROLS = [
    ("rtsp://h/movie", "*", "t1", "rtsp://h/movie", "rtsp://h/movie/t1"),
    ("rtsp://h/movie", None, None, "rtsp://h/movie", "rtsp://h/movie"),
    ("rtsp://h/movie", "rtsp://h:1/x/", "t1", "rtsp://h:1/x/", "rtsp://h/movie/t1"),
    ("rtsp://h/movie", "stream", "t1", "rtsp://h/movie/stream", "rtsp://h/movie/t1"),
    ("rtsp://h/movie", "*", "rtsp://h2/abs", "rtsp://h/movie", "rtsp://h2/abs"),
    ("rtsp://h/movie", "*", "/abs/t1", "rtsp://h/movie", "rtsp://h/abs/t1"),
    ("rtsp://h/movie.Mjpeg/", "*", "stream=0", "rtsp://h/movie.Mjpeg/", "rtsp://h/movie.Mjpeg/stream=0"),
]


@pytest.mark.parametrize("base,session_control,media_control,aggregate,setup", CONTROLS)
def test_control_urls_rfc2326_c11(base, session_control, media_control, aggregate, setup):
    assert join_url(base, session_control) == aggregate
    assert join_url(base, media_control) == setup
    # and the player builds exactly these (the request URL as the base, no Content-Base)
    text = ("v=0\r\n" + (f"a=control:{session_control}\r\n" if session_control else "")
            + "m=video 0 RTP/AVP 26\r\n" + (f"a=control:{media_control}\r\n" if media_control else ""))
    client = RtspClientProtocol(base)
    client.sdp = parse_sdp_info(text)
    assert (client.aggregate_url, client.track_url) == (aggregate, setup)


SPLITS = [
    ("rtsp://127.0.0.1:2048/movie.Mjpeg", ("127.0.0.1", 2048, "movie.Mjpeg")),
    ("rtsp://127.0.0.1:2048/movie.Mjpeg/", ("127.0.0.1", 2048, "movie.Mjpeg/")),
    ("rtsp://127.0.0.1:2048/movie.Mjpeg/trackID=0", ("127.0.0.1", 2048, "movie.Mjpeg/trackID=0")),
    ("rtsp://[::1]:2048/movie.Mjpeg", ("::1", 2048, "movie.Mjpeg")),
    ("rtsp://host/movie.Mjpeg", ("host", None, "movie.Mjpeg")),
    ("movie.Mjpeg", (None, None, "movie.Mjpeg")),
    ("*", (None, None, "*")),
]


@pytest.mark.parametrize("url,parts", SPLITS)
def test_split_url(url, parts):
    assert split_url(url) == parts


@pytest.mark.parametrize("url", ["rtsp://h:99999/x", "http://h/x", "rtsp://h:port/x"])
def test_split_url_errors(url):
    with pytest.raises(RtspError) as exc:
        split_url(url)
    assert exc.value.status == 400


# --------------------------------------------------------------------------- key=value tokens

# (text, separator, pieces): the one tokenizer Transport, Session and RtspAuth share
SPLITS_QUOTED = [
    ('RTP/AVP;unicast;client_port=5000-5001', ";", ["RTP/AVP", "unicast", "client_port=5000-5001"]),
    ('a="x;y";b', ";", ['a="x;y"', "b"]),
    ('realm="a, b", nonce="n"', ",", ['realm="a, b"', ' nonce="n"']),
    (r'realm="say \"hi\", ok", qop=auth', ",", [r'realm="say \"hi\", ok"', " qop=auth"]),
    ("", ",", [""]),
    ("a,,b", ",", ["a", "", "b"]),
]


@pytest.mark.parametrize("text,sep,pieces", SPLITS_QUOTED)
def test_split_quoted(text, sep, pieces):
    assert split_quoted(text, sep) == pieces
    assert sep.join(pieces) == text


@pytest.mark.parametrize("item,pair", [
    ('Client_Port = "5000-5001"', ("client_port", "5000-5001")),
    ("unicast", ("unicast", None)),
    ("timeout=60", ("timeout", "60")),
    ('mode="PLAY"', ("mode", "PLAY")),
])
def test_split_param(item, pair):
    assert split_param(item) == pair


@given(st.text(max_size=30))
def test_quote_string_round_trip(value):
    quoted = quote_string(value)
    assert split_quoted(quoted + ",x", ",") == [quoted, "x"]
    assert unquote_string(quoted) == value
