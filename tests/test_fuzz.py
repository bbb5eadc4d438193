"""Property-based fuzzing of every pure parser (hypothesis, bounded for CI).

Each parser may fail only with its documented error type (an RtspError with a status, an
SdpError, RtcpError, JpegError, ValueError, AuthError) and never with IndexError, KeyError,
struct.error, UnicodeDecodeError or any other accident, for arbitrary bytes and for
mutations of real captured messages: the RTSP dialogue of ffmpeg/GStreamer/the lab client
(tests/wire/rtsp-dialogue-messages.txt), their SDP (tests/wire/*.sdp), RTP/JPEG packets and
RTCP compounds they sent (tests/fixtures/).  The long run is bench/fuzz_server.py --pure.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from MediaLibrary import MediaLibrary
from RtcpPacket import RtcpError, parse_compound
from RtpJpeg import JpegDepacketizer, JpegError, parse_payload
from RtpPacket import RtpPacket
from RtspAuth import AuthError, Authenticator, UserDatabase, answer_challenge, parse_challenges
from RtspClient import RtspClientProtocol
from RtspHeaders import Transport, parse_range, parse_rtp_info, parse_session, split_url
from RtspMessage import InterleavedFrame, MessageError, Request, Response, RtspError
from RtspParser import RtspParser, parse_message
from Sdp import SdpError, movie_sdp, parse_sdp

TESTS = Path(__file__).resolve().parent


# Accidents: never acceptable, even when they subclass an allowed type (UnicodeDecodeError
# is a ValueError).
FORBIDDEN = (IndexError, KeyError, struct.error, UnicodeError, TypeError, AttributeError, AssertionError,
             ZeroDivisionError, OverflowError, RecursionError, MemoryError)
# FUZZ_EXAMPLES=20000 for a long run; CI keeps the default so the suite stays fast.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)


def only(allowed, fn, *args, **kwargs):
    """Call fn; an exception must be `allowed` and not an accident."""
    try:
        return fn(*args, **kwargs)
    except FORBIDDEN as exc:  # checked first: some are ValueError subclasses
        raise AssertionError(f"{fn.__name__} raised {type(exc).__name__}: {exc}") from exc
    except allowed:
        return None


# --------------------------------------------------------------------------- seeds

def dialogue_messages() -> list[bytes]:
    """Every captured RTSP message in its CRLF wire form."""
    text = (TESTS / "wire" / "rtsp-dialogue-messages.txt").read_text()
    out = []
    for block in text.split("##### ")[1:]:
        _, _, body = block.partition("\n")
        head, sep, rest = body.rstrip("\n").partition("\n\n")
        wire = head.replace("\n", "\r\n") + "\r\n\r\n" + (rest.replace("\n", "\r\n") + "\r\n" if sep else "")
        out.append(wire.encode())
    auth = (TESTS / "wire" / "rtsp-auth-requests.txt").read_text()
    for block in auth.split("##### ")[1:]:
        out.append(block.partition("\n")[2].replace("\n", "\r\n").encode())
    return out


def read_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("!I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


RTSP = dialogue_messages()
LAB = [b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25000",
       b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456"]
RTP = [p for f in sorted((TESTS / "fixtures").glob("*.rtp")) for p in read_records(f)]
RTCP = [f.read_bytes() for f in sorted((TESTS / "fixtures").glob("rtcp_*.bin"))]
SDP = [f.read_bytes() for f in sorted((TESTS / "wire").glob("*.sdp"))]
SDP += [m.split(b"\r\n\r\n", 1)[1] for m in RTSP if b"application/sdp" in m and b"\r\n\r\nv=0" in m]
SDP.append(movie_sdp(name="movie.Mjpeg", duration=25.0, fps=20.0, server_addr="127.0.0.1", session_id=1,
                     version=1, track_control="trackID=0", width=384, height=288).encode())
HEADER_VALUES: dict[str, list[str]] = {name.lower(): [] for name in ("Transport", "Range", "Session", "RTP-Info", "WWW-Authenticate",
                                               "Authorization")}
for _message in RTSP + LAB:
    for _line in _message.replace(b"\r", b"").split(b"\n")[1:]:
        _name, _sep, _value = _line.partition(b":")
        if _sep and _name.strip().lower().decode() in HEADER_VALUES:
            HEADER_VALUES[_name.strip().lower().decode()].append(_value.strip().decode())


def test_seed_corpus_is_real():
    assert len(RTSP) >= 40 and len(RTP) >= 40 and len(RTCP) >= 20 and len(SDP) >= 4
    assert all(HEADER_VALUES[k] for k in ("transport", "range", "session", "rtp-info", "authorization"))
    parsed = [parse_message(m, role="client" if m.startswith(b"RTSP/") else "server") for m in RTSP]
    assert sum(isinstance(m, Request) for m in parsed) >= 20
    assert [RtpPacket.parse(p).payload_type for p in RTP] == [26] * len(RTP)
    assert all(parse_compound(p) for p in RTCP)


# --------------------------------------------------------------------------- mutations

@st.composite
def mutated(draw, seeds: list[bytes], max_ops: int = 4) -> bytes:
    """A real message with a few byte-level edits (flip, insert, delete, truncate, repeat, numbers)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "digits", "special"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            pos = min(pos, len(data) - 1)
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        elif op == "digits":
            data[pos:pos] = draw(st.sampled_from([b"0", b"-1", b"65536", b"4294967296", b"99999999999999999999",
                                                  b"1e308", b"nan", b"0x10"]))
        else:
            data[pos:pos] = draw(st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b";", b",", b"=",
                                                  b"\"", b"-", b":", b"$", b" ", b"\t", b"%", b"\xc3"]))
    return bytes(data)


def split(draw, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def header_text(name: str):
    """Arbitrary text, arbitrary bytes as the parser decodes them, and mutated real values."""
    real = [v.encode() for v in HEADER_VALUES[name]] or [b"x"]
    return st.one_of(
        st.text(max_size=80),
        st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape")),
        mutated(real).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )


# --------------------------------------------------------------------------- RTSP messages

def check_parser_events(events, parser):
    for event in events:
        assert isinstance(event, (Request, Response, InterleavedFrame, MessageError)), event
        if isinstance(event, MessageError):
            assert 400 <= event.status <= 599 and isinstance(event.error, RtspError)
    assert parser.buffered <= 2 * 65536 + 8


def run_parser(chunks, role="server"):
    parser = RtspParser(role=role)
    events = []
    for chunk in chunks:
        try:
            events += parser.feed(chunk)
            if parser.has_unterminated_lf():
                events.append(parser.finish_unterminated())
        except Exception as exc:  # the parser must never raise: every problem is an event
            raise AssertionError(f"RtspParser.feed raised {type(exc).__name__}: {exc}") from exc
    events = [e for e in events if e is not None]
    check_parser_events(events, parser)
    return events


@FUZZ
@given(st.data())
def test_parser_arbitrary_bytes_any_split(data):
    blob = data.draw(st.binary(max_size=600))
    run_parser(split(data.draw, blob), role=data.draw(st.sampled_from(["server", "client"])))


@FUZZ
@given(st.data())
def test_parser_mutated_captures_any_split(data):
    blob = b"".join(data.draw(st.lists(mutated(RTSP + LAB), min_size=1, max_size=3)))
    run_parser(split(data.draw, blob), role=data.draw(st.sampled_from(["server", "client"])))


@FUZZ
@given(mutated(RTSP))
def test_parse_message_raises_only_rtsp_errors(blob):
    only(RtspError, parse_message, blob)
    only(RtspError, parse_message, blob, role="client")


@FUZZ
@given(mutated(RTSP, max_ops=2))
def test_parsed_requests_survive_the_servers_uri_and_header_handling(blob):
    """What ServerWorker does with a parsed request: split the URI, read its headers."""
    for event in run_parser([blob]):
        if isinstance(event, Request):
            only(RtspError, split_url, event.uri)
            only(RtspError, MediaLibrary.split_uri, event.uri)
            for name, fn in (("Transport", Transport.parse_list), ("Range", parse_range),
                             ("Session", parse_session), ("RTP-Info", parse_rtp_info)):
                value = event.headers.get(name)
                if value is not None:
                    only(RtspError, fn, value)
            event.cseq  # noqa: B018  (a property that parses)


@pytest.mark.parametrize("uri", ["rtsp://[/movie.Mjpeg", "rtsp://[::1/movie.Mjpeg", "rtsp://h]/movie.Mjpeg"])
def test_split_uri_malformed_ipv6_host(uri):
    """urlsplit's ValueError must come out as a 400 RtspError, never a 500."""
    with pytest.raises(RtspError) as info:
        MediaLibrary.split_uri(uri)
    assert info.value.status == 400


# --------------------------------------------------------------------------- headers

@FUZZ
@given(header_text("transport"))
def test_transport(value):
    for transport in only(RtspError, Transport.parse_list, value) or []:
        transport.format()


@FUZZ
@given(header_text("range"))
def test_range(value):
    only(RtspError, parse_range, value)


@FUZZ
@given(header_text("session"))
def test_session(value):
    only(RtspError, parse_session, value)


@FUZZ
@given(header_text("rtp-info"))
def test_rtp_info(value):
    only(RtspError, parse_rtp_info, value)


# --------------------------------------------------------------------------- SDP

@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(SDP, max_ops=6)))
def test_sdp(blob):
    sdp = only(SdpError, parse_sdp, blob)
    if sdp is not None:
        only(SdpError, parse_sdp, blob.decode("utf-8", "replace"))


# --------------------------------------------------------------------------- RTP, RTCP, RFC 2435

@FUZZ
@given(st.one_of(st.binary(max_size=64), mutated(RTP)))
def test_rtp_packet(blob):
    packet = only(ValueError, RtpPacket.parse, blob)
    if packet is not None:
        assert 0 <= packet.payload_type <= 127 and len(packet.payload) <= len(blob) - 12


@FUZZ
@given(st.one_of(st.binary(max_size=120), mutated(RTCP, max_ops=3)))
def test_rtcp_compound(blob):
    only(RtcpError, parse_compound, blob)
    only(RtcpError, parse_compound, blob, strict=False)


PAYLOADS = [RtpPacket.parse(p).payload for p in RTP]


@FUZZ
@given(st.one_of(st.binary(max_size=200), mutated(PAYLOADS)))
def test_jpeg_payload(blob):
    only(JpegError, parse_payload, blob)


@FUZZ
@given(st.lists(st.tuples(st.one_of(mutated(PAYLOADS, max_ops=2), st.sampled_from(PAYLOADS)),
                          st.integers(0, 3), st.booleans(), st.booleans()), max_size=24))
def test_jpeg_depacketizer_sequences(parts):
    depacketizer = JpegDepacketizer()
    for payload, ts, marker, missing in parts:
        try:
            frame = depacketizer.push(payload, ts * 3600, marker, seq_missing_before=missing)
        except Exception as exc:
            raise AssertionError(f"JpegDepacketizer.push raised {type(exc).__name__}: {exc}") from exc
        if frame is not None:
            assert frame[:2] == b"\xff\xd8"


# --------------------------------------------------------------------------- authentication

AUTH = Authenticator(UserDatabase.parse("alice:s3cr:et"), secret=b"k" * 32, clock=lambda: 1700000000.0,
                     allow_basic=True)


@FUZZ
@given(header_text("authorization"), st.text(max_size=20), st.text(max_size=40))
def test_auth_verify_never_raises(value, method, uri):
    try:
        result = AUTH.verify(value, method or "DESCRIBE", uri)
    except Exception as exc:
        raise AssertionError(f"verify raised {type(exc).__name__}: {exc}") from exc
    assert not result.ok or value.startswith(("Basic", "Digest", "basic", "digest"))


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=80), st.sampled_from(AUTH.challenges())), max_size=3))
def test_challenge_parsing(values):
    only((), parse_challenges, values)
    only(AuthError, answer_challenge, values, "u", "p", "DESCRIBE", "rtsp://h/x")


@FUZZ
@given(st.data())
def test_client_protocol_feed_never_raises(data):
    """The player's reader thread feeds whatever the server sends: mutated real replies (with an
    outstanding request of every method, credentials known) become replies or errors, never raise."""
    proto = RtspClientProtocol("rtsp://alice:pw@127.0.0.1:8554/movie.Mjpeg")
    for method in ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "GET_PARAMETER", "TEARDOWN"):
        proto.build(method)
    blob = b"".join(data.draw(st.lists(mutated(RTSP), min_size=1, max_size=4)))
    for chunk in split(data.draw, blob):
        try:
            events = proto.feed(chunk)
        except Exception as exc:
            raise AssertionError(f"RtspClientProtocol.feed raised {type(exc).__name__}: {exc}") from exc
        for r in events.replies:
            if r.retry:
                proto.build(r.request.method)        # what the engine does: the Authorization must build


def test_depacketizer_three_inband_tables_is_a_bad_packet_not_an_exception():
    first = next(p for p in PAYLOADS if p[1:4] == b"\x00\x00\x00" and p[5] >= 128)  # offset 0, Q >= 128
    payload = first[:10] + struct.pack("!H", 192) + first[12:]  # table length 64 -> 192: 3 tables
    depacketizer = JpegDepacketizer()
    assert depacketizer.push(payload, 3600, True) is None
    assert depacketizer.bad_packets == 1
