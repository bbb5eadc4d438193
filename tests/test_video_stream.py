"""VideoStream: lab .Mjpeg and concatenated JPEG movies, indexing, RFC 2435 checks at open."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

import media
from RtpJpeg import parse_jpeg
from VideoStream import DEFAULT_FPS, VideoStream, write_mjpeg

FRAMES = media.movie_frames(12, size=(160, 120))


def test_committed_movie_meets_the_lab_constraints():
    started = time.perf_counter()
    movie = VideoStream(media.MOVIE)
    opened = time.perf_counter() - started
    assert movie.format == "mjpeg-lab"
    assert (movie.frame_count, movie.width, movie.height) == (500, 384, 288)
    assert (movie.fps, movie.duration) == (20.0, 25.0)
    assert movie.problems == []
    sizes = [len(movie.frame(i)) for i in range(len(movie))]
    assert max(sizes) < 20000                     # one 20480-byte lab datagram holds a frame
    assert opened < 1.0, f"opening the 500-frame movie took {opened:.3f} s"
    for i in (0, 250, 499):
        info = movie.info(i)
        assert (info.width, info.height, info.jpeg_type) == (384, 288, 1)
        assert media.decode(movie.frame(i)).size == (384, 288)
    # frames differ (moving scene)
    assert media.pixels(movie.frame(0)) != media.pixels(movie.frame(1))


def test_lab_format_round_trip(tmp_path):
    path = media.write_movie(tmp_path / "m.Mjpeg", FRAMES)
    with open(path, "rb") as f:
        assert f.read(7) == b"%05d\xff\xd8" % len(FRAMES[0])
    movie = VideoStream(path)
    assert movie.format == "mjpeg-lab"
    assert [movie.frame(i) for i in range(len(movie))] == FRAMES
    assert (len(movie), movie.width, movie.height, movie.fps) == (12, 160, 120, DEFAULT_FPS)
    assert movie.frame(-1) == FRAMES[-1]
    with pytest.raises(IndexError):
        movie.frame(12)


def test_concatenated_jpeg_from_ffmpeg():
    movie = VideoStream(os.path.join(media.FIXTURES, "ffmpeg-testsrc-320x240.mjpeg"))
    assert movie.format == "jpeg-concat"
    assert (movie.frame_count, movie.width, movie.height) == (5, 320, 240)
    for i in range(5):
        frame = movie.frame(i)
        assert frame[:2] == b"\xff\xd8" and frame[-2:] == b"\xff\xd9"
        assert media.decode(frame).size == (320, 240)


def test_write_mjpeg_uses_concatenated_jpeg_for_frames_over_99999_bytes(tmp_path):
    big = media.noise_jpeg(640, 480, 90)
    assert len(big) > 99999
    frames = [FRAMES[0], big, FRAMES[1]]
    write_mjpeg(tmp_path / "big.Mjpeg", frames)
    movie = VideoStream(tmp_path / "big.Mjpeg")
    assert movie.format == "jpeg-concat"
    assert [movie.frame(i) for i in range(3)] == frames


def test_write_mjpeg_refuses_non_jpeg_and_writes_empty_file_for_no_frames(tmp_path):
    with pytest.raises(ValueError, match="frame 1 is not a JPEG"):
        write_mjpeg(tmp_path / "x.Mjpeg", [FRAMES[0], b"GIF89a"])
    write_mjpeg(tmp_path / "empty.Mjpeg", [])
    assert (tmp_path / "empty.Mjpeg").read_bytes() == b""


def test_fps_override_duration_and_seek_index(tmp_path):
    movie = VideoStream(media.write_movie(tmp_path / "m.Mjpeg", FRAMES), fps=24)
    assert movie.fps == 24.0 and movie.duration == pytest.approx(0.5)
    assert [movie.frame_at(t) for t in (0, 0.25, 0.49, 10, -3)] == [0, 6, 11, 12, 0]
    with pytest.raises(ValueError):
        VideoStream(media.MOVIE, fps=0)


def test_lab_sequential_interface(tmp_path):
    movie = VideoStream(media.write_movie(tmp_path / "m.Mjpeg", FRAMES[:3]))
    assert movie.frameNbr() == 0
    assert [movie.nextFrame() for _ in range(4)] == FRAMES[:3] + [b""]
    assert movie.frameNbr() == 3
    movie.seek(1)
    assert movie.nextFrame() == FRAMES[1] and movie.frameNbr() == 2


def test_problems_reported_at_open(tmp_path):
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    frames = [FRAMES[0],
              media.pillow_jpeg(image, progressive=True),
              media.pillow_jpeg(image, subsampling=0, optimize=False),
              media.pillow_jpeg(image, subsampling=2, optimize=True),
              media.pillow_jpeg(Image.new("RGB", (2048, 32))),
              FRAMES[1]]
    movie = VideoStream(media.write_movie(tmp_path / "p.Mjpeg", frames))
    assert movie.frame_count == 6
    assert [index for index, _ in movie.problems] == [1, 2, 3, 4]
    reasons = dict(movie.problems)
    assert "progressive" in reasons[1]
    assert "sampling" in reasons[2]
    assert "Huffman" in reasons[3]
    assert "2040" in reasons[4]
    assert movie.info(1) is None and movie.info(5) == parse_jpeg(FRAMES[1])
    assert movie.frame(1) == frames[1]       # still readable, just not sendable as RFC 2435


def test_width_height_from_sof_when_no_frame_is_carriable(tmp_path):
    progressive = media.pillow_jpeg(Image.new("RGB", (200, 100)), progressive=True)
    movie = VideoStream(media.write_movie(tmp_path / "p.Mjpeg", [progressive]))
    assert (movie.width, movie.height) == (200, 100)
    assert len(movie.problems) == 1


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"hello world, not a movie", "neither a lab"),
    (b"00010\x89PNG\r\n\x1a\n00", "neither a lab"),
    (b"00004\xff\xd8\xff\xd9abcde", "expected a 5-digit length"),
    (b"00006\xff\xd8\xff\xd9\xff\xd9" + b"00004ABCD", "not a JPEG"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "no complete JPEG frame"),
    (b"00999\xff\xd8\xff", "no complete JPEG frame"),
])
def test_malformed_files_raise_value_error(tmp_path, content, message):
    path = tmp_path / "bad.Mjpeg"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        VideoStream(path)


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        VideoStream(tmp_path / "nope.Mjpeg")


def test_truncated_last_frame_is_ignored(tmp_path):
    path = media.write_movie(tmp_path / "t.Mjpeg", FRAMES[:3])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    movie = VideoStream(path)
    assert movie.frame_count == 2


def test_concatenated_with_trailing_garbage_keeps_whole_frames(tmp_path):
    path = tmp_path / "c.mjpeg"
    path.write_bytes(FRAMES[0] + FRAMES[1] + FRAMES[2][:100])
    movie = VideoStream(path)
    assert movie.format == "jpeg-concat"
    assert [movie.frame(i) for i in range(len(movie))] == FRAMES[:2]


def test_make_movie_is_deterministic_and_small():
    again = media.movie_frames(12, size=(160, 120))
    assert again == FRAMES
    lab = media.movie_frames(3)
    assert all(len(f) < 20000 for f in lab)
    assert all(parse_jpeg(f).jpeg_type == 1 for f in lab)
