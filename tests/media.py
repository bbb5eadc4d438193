"""Helpers for tests that need JPEG frames, movies and captured RTP packets.

Frames come from tools/make_movie.py (the same code that made movie.Mjpeg), so they are
deterministic baseline JPEGs with the standard Huffman tables.
"""

from __future__ import annotations

import io
import os
import random

from PIL import Image

import make_movie  # tools/, on the path from conftest.py
from capture_rtp import read_records  # noqa: F401  (re-exported for tests)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
FIXTURES = os.path.join(TESTS, "fixtures")
MOVIE = os.path.join(REPO, "movie.Mjpeg")

SUBSAMPLING = {"420": 2, "422": 1, "444": 0}


def scene_jpeg(width: int = 384, height: int = 288, index: int = 0, quality: int = 80,
               sampling: str = "420", restart: int = 0, noise: int = 0) -> bytes:
    """One frame of the sample scene at any size (``restart`` = DRI interval in MCUs)."""
    image = make_movie.render_frame(index, (width, height), 100, noise=noise)
    return make_movie.encode_jpeg(image, quality, SUBSAMPLING[sampling], restart)


def noise_jpeg(width: int, height: int, quality: int = 95, seed: int = 1, sampling: str = "420",
               restart: int = 0) -> bytes:
    """Pure random noise: the largest frames a size/quality gives (for > 64 KB / > 200 KB)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    return make_movie.encode_jpeg(image, quality, SUBSAMPLING[sampling], restart)


def pillow_jpeg(image: Image.Image, **options) -> bytes:
    """Encode with arbitrary Pillow options (progressive, optimize, grayscale ...)."""
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def decode(jpeg: bytes) -> Image.Image:
    """Decode with Pillow (raises if the data is not a decodable JPEG)."""
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def pixels(jpeg: bytes) -> tuple[str, tuple[int, int], bytes]:
    """Decoded mode, size and pixel bytes: equal tuples mean identical pictures."""
    image = decode(jpeg)
    return image.mode, image.size, image.tobytes()


def movie_frames(count: int = 10, size: tuple[int, int] = (384, 288), quality: int = 80,
                 **kwargs) -> list[bytes]:
    """The first ``count`` frames of a generated movie."""
    return make_movie.make_frames(size=size, frames=count, quality=quality, **kwargs)


def write_movie(path, frames: list[bytes]) -> str:
    """Write frames in the lab .Mjpeg format (or concatenated if a frame is > 99,999 B)."""
    from VideoStream import write_mjpeg
    write_mjpeg(path, frames)
    return os.fspath(path)


# Movies RFC 2435 cannot carry as they are (the server re-encodes their frames): Pillow
# options per kind, applied to the sample scene (mode "L" first for grayscale).
UNCARRIABLE: dict[str, dict[str, object]] = {
    "444": {"quality": 80, "subsampling": 0},                    # the course hand-out's movie.Mjpeg
    "422-optimized": {"quality": 80, "subsampling": 1, "optimize": True},
    "optimized": {"quality": 85, "optimize": True},               # what ffmpeg/OpenCV usually write
    "progressive": {"quality": 80, "progressive": True},
    "grayscale": {"quality": 80, "mode": "L"},
}


def uncarriable_frames(kind: str, count: int, size: tuple[int, int] = (384, 288)) -> list[bytes]:
    """``count`` frames of the sample scene encoded the way ``kind`` of UNCARRIABLE says."""
    options = dict(UNCARRIABLE[kind])
    mode = options.pop("mode", "RGB")
    background = make_movie._background(size)
    return [pillow_jpeg(make_movie.render_frame(i, size, count, background).convert(mode), **options)
            for i in range(count)]


def psnr(reference: bytes, test: bytes, mode: str = "RGB") -> dict[str, float]:
    """PSNR (dB) of decoded ``test`` against decoded ``reference``, per band and "all"."""
    from JpegConvert import psnr as image_psnr
    return image_psnr(decode(reference), decode(test), mode)


def split_jpegs(data: bytes) -> list[bytes]:
    """Split ffmpeg's ``-f mjpeg`` output into its frames. Its RTP/JPEG depacketizer always
    appends an EOI, so frames whose payload carried one (ours do) end in FFD9 FFD9: the extra
    one is skipped."""
    from RtpJpeg import find_jpeg_end
    frames, pos = [], 0
    while pos < len(data):
        end = find_jpeg_end(data, pos)
        frames.append(data[pos:end])
        pos = end
        while data[pos:pos + 2] == b"\xff\xd9":
            pos += 2
    return frames
