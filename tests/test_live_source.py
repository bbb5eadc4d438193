"""LiveSource.py: JPEG frames out of byte streams, parts out of multipart/x-mixed-replace.

Tables of wire bytes fed whole, a byte at a time and in random cuts; every case checks
the frames that come out against the frames that went in, and the counters against
what was injected."""

import random

import pytest

from conftest import MOVIE
from LiveSource import (
    JpegSplitter, LiveKind, MultipartError, MultipartParser, boundary_from_content_type, parse_live_spec,
)
from VideoStream import VideoStream

FRAMES = [VideoStream(MOVIE).frame(i) for i in range(6)]


def feed_in(parser, data, cuts):
    """Feed `data` to `parser` cut as `cuts` says: 'whole', 'byte' or a seed for random cuts."""
    out = []
    if cuts == "whole":
        return parser.feed(data)
    if cuts == "byte":
        for i in range(len(data)):
            out += parser.feed(data[i:i + 1])
        return out
    rng = random.Random(cuts)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 3000)
        out += parser.feed(data[pos:pos + step])
        pos += step
    return out


CUTS = ["whole", 1, 2, 3]


# ---------------------------------------------------------------- concatenated JPEG
@pytest.mark.parametrize("cuts", CUTS)
def test_splitter_returns_each_frame(cuts):
    splitter = JpegSplitter()
    assert feed_in(splitter, b"".join(FRAMES), cuts) == FRAMES
    assert splitter.garbage_bytes == 0 and splitter.buffered == 0


def test_splitter_byte_at_a_time():
    splitter = JpegSplitter()
    assert feed_in(splitter, b"".join(FRAMES[:2]), "byte") == FRAMES[:2]


@pytest.mark.parametrize("cuts", CUTS)
def test_splitter_skips_and_counts_garbage(cuts):
    junk = [b"hello\n", b"\xff\xff\x00", b"\xff\xd8 not a jpeg at all \xff\xd9", b""]
    data = b"".join(junk[i % len(junk)] + frame for i, frame in enumerate(FRAMES)) + b"trailing"
    splitter = JpegSplitter()
    assert feed_in(splitter, data, cuts) == FRAMES
    # every byte that is not part of a frame is counted (the tail is counted once no SOI can start in it)
    assert splitter.garbage_bytes == len(data) - sum(map(len, FRAMES))


def test_splitter_waits_for_a_truncated_frame():
    splitter = JpegSplitter()
    frame = FRAMES[0]
    assert splitter.feed(frame[:-1]) == []
    assert splitter.feed(frame[-1:]) == [frame]


def test_splitter_drops_a_frame_over_the_limit():
    splitter = JpegSplitter(max_frame=len(FRAMES[0]) + 100)
    big = b"\xff\xd8\xff\xe0\x00\x10" + b"\x00" * 14 + b"\xab" * 50000  # SOI + APP0 + no end
    got = feed_in(splitter, FRAMES[0] + big + FRAMES[0], 5)
    assert got == [FRAMES[0], FRAMES[0]]
    assert splitter.oversized >= 1


def test_splitter_only_garbage():
    splitter = JpegSplitter()
    assert splitter.feed(b"no pictures here\n" * 1000) == []
    assert splitter.garbage_bytes == 17000 and splitter.buffered == 0


# ---------------------------------------------------------------- multipart
def multipart(bodies, boundary="myboundary", length=True, eol=b"\r\n", preamble=b""):
    out = [preamble]
    for body in bodies:
        out.append(b"--" + boundary.encode() + eol + b"Content-Type: image/jpeg" + eol)
        if length:
            out.append(b"Content-Length: %d" % len(body) + eol)
        out.append(eol + body + eol)
    return b"".join(out)


CAMERAS = {  # how real cameras and tools frame it
    "content-length crlf": dict(length=True),
    "no content-length": dict(length=False),
    "bare lf": dict(length=True, eol=b"\n"),
    "bare lf no length": dict(length=False, eol=b"\n"),
    "preamble": dict(length=True, preamble=b"This is a multi-part message\r\n"),
}


@pytest.mark.parametrize("cuts", CUTS)
@pytest.mark.parametrize("camera", sorted(CAMERAS))
def test_multipart_parts(camera, cuts):
    parser = MultipartParser("myboundary")
    assert feed_in(parser, multipart(FRAMES, **CAMERAS[camera]), cuts)[:len(FRAMES) - 1] == FRAMES[:-1]


def test_multipart_last_part_with_length_is_complete():
    parser = MultipartParser("myboundary")
    assert parser.feed(multipart(FRAMES)) == FRAMES  # Content-Length: no need to see the next delimiter


def test_multipart_byte_at_a_time():
    parser = MultipartParser("--myboundary")  # some cameras put the '--' into the parameter
    assert feed_in(parser, multipart(FRAMES[:2]), "byte") == FRAMES[:2]


def test_multipart_wrong_boundary_is_refused():
    parser = MultipartParser("expected", max_part=100000)
    with pytest.raises(MultipartError, match="wrong boundary"):
        for _ in range(20):
            parser.feed(multipart(FRAMES, boundary="actual"))


def test_multipart_10mb_part_is_skipped_and_counted():
    huge = b"\xff\xd8" + bytes(10 << 20)
    parser = MultipartParser("b", max_part=4 << 20)
    got = feed_in(parser, multipart([FRAMES[0], huge, FRAMES[1], FRAMES[2]], boundary="b"), 7)
    assert got == [FRAMES[0], FRAMES[1], FRAMES[2]]
    assert parser.oversized == 1


def test_multipart_10mb_part_without_length_is_skipped():
    huge = b"\xff\xd8" + b"\x01" * (10 << 20)
    parser = MultipartParser("b", max_part=4 << 20)
    got = feed_in(parser, multipart([FRAMES[0], huge, FRAMES[1], FRAMES[2]], boundary="b", length=False), 7)
    assert got[0] == FRAMES[0] and FRAMES[1] in got and len(got) <= 3
    assert parser.oversized >= 1


def test_multipart_bad_content_length():
    parser = MultipartParser("b")
    with pytest.raises(MultipartError, match="Content-Length"):
        parser.feed(b"--b\r\nContent-Length: lots\r\n\r\nxx")


@pytest.mark.parametrize("value, boundary", [
    ("multipart/x-mixed-replace; boundary=myboundary", "myboundary"),
    ('multipart/x-mixed-replace;boundary="quoted here"', "quoted here"),
    ("multipart/x-mixed-replace; boundary=--frame", "--frame"),
    ("Multipart/X-Mixed-Replace; charset=x; BOUNDARY=ipcam", "ipcam"),
])
def test_boundary_from_content_type(value, boundary):
    assert boundary_from_content_type(value) == boundary


@pytest.mark.parametrize("value, message", [
    (None, "no Content-Type"),
    ("image/jpeg", "not multipart"),
    ("multipart/x-mixed-replace", "no boundary"),
])
def test_boundary_refused(value, message):
    with pytest.raises(MultipartError, match=message):
        boundary_from_content_type(value)


# ---------------------------------------------------------------- --live NAME=SOURCE
@pytest.mark.parametrize("text, name, kind, source", [
    ("cam=ffmpeg -f v4l2 -i /dev/video0 -f mjpeg -", "cam", LiveKind.COMMAND, "ffmpeg -f v4l2 -i /dev/video0 -f mjpeg -"),
    ("pipe=-", "pipe", LiveKind.STDIN, "-"),
    ("door=http://10.0.0.5/mjpg/video.mjpg", "door", LiveKind.HTTP, "http://10.0.0.5/mjpg/video.mjpg"),
    ("a.b_c-1=x=y", "a.b_c-1", LiveKind.COMMAND, "x=y"),
])
def test_parse_live_spec(text, name, kind, source):
    spec = parse_live_spec(text)
    assert (spec.name, spec.kind, spec.source) == (name, kind, source)


@pytest.mark.parametrize("text", ["cam", "cam=", "=ls", "../x=ls", "a b=ls"])
def test_parse_live_spec_refused(text):
    with pytest.raises(ValueError):
        parse_live_spec(text)
