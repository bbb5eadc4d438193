#!/usr/bin/env python3
"""Generate the sample movie (movie.Mjpeg) deterministically.

Default: 384x288, 500 frames (25 s at 20 fps), a ball and a square moving over a drifting
gradient, with the frame number drawn large on every frame. Frames are baseline JPEG,
4:2:0, standard Huffman tables (what RFC 2435 carries), and each is < 20,000 bytes so a
classic lab client that reads one 20480-byte datagram gets whole frames.

    python3 tools/make_movie.py                      # writes movie.Mjpeg in the repo root
    python3 tools/make_movie.py --size 1280x720 --frames 40 --quality 95 --noise 40 -o big.Mjpeg

Importable: make_frames(), render_frame(), encode_jpeg(), write_movie().
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFont

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from VideoStream import write_mjpeg  # noqa: E402  (needs the repo on sys.path first)

DEFAULT_SIZE = (384, 288)
DEFAULT_FRAMES = 500
DEFAULT_FPS = 20.0
DEFAULT_QUALITY = 80
LAB_MAX_FRAME = 20000       # classic clients recv(20480) one datagram = header + whole frame


def _background(size: tuple[int, int]) -> Image.Image:
    """A gradient twice as wide as the frame, cropped at a moving offset to make it drift."""
    width, height = size
    horizontal = Image.linear_gradient("L").rotate(90).resize((2 * width, height))
    vertical = Image.linear_gradient("L").resize((2 * width, height))
    red = horizontal.point(lambda v: 40 + v * 150 // 255)
    green = vertical.point(lambda v: 60 + v * 120 // 255)
    blue = Image.eval(horizontal, lambda v: 200 - v * 120 // 255)
    wide = Image.merge("RGB", (red, green, blue))
    # Make it periodic so the drift wraps without a seam.
    left = wide.crop((0, 0, width, height))
    wide.paste(left.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (width, 0))
    return wide


def render_frame(index: int, size: tuple[int, int] = DEFAULT_SIZE, frames: int = DEFAULT_FRAMES,
                 background: Image.Image | None = None, noise: int = 0) -> Image.Image:
    """Draw frame ``index``: drifting gradient, bouncing ball, turning square, frame number."""
    width, height = size
    if background is None:
        background = _background(size)
    drift = (index * 3) % width
    image = background.crop((drift, 0, drift + width, height))
    draw = ImageDraw.Draw(image)
    scale = min(width, height)

    # A ball bouncing around (triangle waves, so the motion is exact per frame index).
    radius = scale // 10
    span_x, span_y = width - 2 * radius, height - 2 * radius
    x = abs((index * 7) % (2 * span_x) - span_x) + radius
    y = abs((index * 5) % (2 * span_y) - span_y) + radius
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(230, 60, 40),
                 outline=(255, 255, 255), width=max(2, scale // 100))

    # A square turning around the centre.
    cx, cy, r = width / 2, height / 2, scale / 3
    angle = 2 * math.pi * index / 100
    corners = [(cx + r * math.cos(angle + k * math.pi / 2), cy + r * math.sin(angle + k * math.pi / 2))
               for k in range(4)]
    draw.polygon(corners, outline=(250, 230, 40), width=max(2, scale // 60))

    # Progress bar along the bottom.
    bar = max(4, height // 40)
    draw.rectangle((0, height - bar, width * (index + 1) // max(frames, 1), height), fill=(40, 200, 90))

    # Frame number, large, on a dark plate so it is legible on any background.
    font = ImageFont.load_default(size=max(12, scale // 4))
    text = f"{index}"
    box = draw.textbbox((0, 0), text, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    tx, ty = (width - tw) // 2, (height - th) // 2
    pad = scale // 30
    draw.rectangle((tx - pad, ty - pad, tx + tw + pad, ty + th + pad), fill=(20, 20, 30))
    draw.text((tx - box[0], ty - box[1]), text, font=font, fill=(255, 255, 255))
    small = ImageFont.load_default(size=max(10, scale // 16))
    draw.text((pad, pad), f"t={index / DEFAULT_FPS:6.2f}s", font=small, fill=(255, 255, 255))

    if noise:
        # Deterministic per-frame noise makes big frames (for > 64 KB / > 200 KB tests).
        rng = random.Random(index)
        grain = Image.frombytes("RGB", size, rng.randbytes(width * height * 3))
        image = Image.blend(image, grain, min(noise, 100) / 100)
    return image


def encode_jpeg(image: Image.Image, quality: int = DEFAULT_QUALITY, subsampling: int = 2,
                restart_marker_blocks: int = 0) -> bytes:
    """Baseline JPEG with the standard Huffman tables (RFC 2435-ready); 2 = 4:2:0, 1 = 4:2:2."""
    out = io.BytesIO()
    options = {"quality": quality, "subsampling": subsampling, "optimize": False, "progressive": False}
    if restart_marker_blocks:
        options["restart_marker_blocks"] = restart_marker_blocks
    image.convert("RGB").save(out, "JPEG", **options)
    return out.getvalue()


def make_frames(size: tuple[int, int] = DEFAULT_SIZE, frames: int = DEFAULT_FRAMES,
                quality: int = DEFAULT_QUALITY, noise: int = 0, subsampling: int = 2,
                restart_marker_blocks: int = 0) -> list[bytes]:
    """Render and encode ``frames`` frames."""
    background = _background(size)
    return [encode_jpeg(render_frame(i, size, frames, background, noise), quality, subsampling,
                        restart_marker_blocks)
            for i in range(frames)]


def write_movie(path: str | os.PathLike, **kwargs) -> list[bytes]:
    """make_frames(**kwargs) and write them with VideoStream.write_mjpeg; returns the frames."""
    frames = make_frames(**kwargs)
    write_mjpeg(path, frames)
    return frames


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= width <= 2040 and 16 <= height <= 2040):
        raise argparse.ArgumentTypeError("width and height must be 16..2040 (RFC 2435 limit)")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=os.path.join(REPO, "movie.Mjpeg"))
    parser.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="WIDTHxHEIGHT (384x288)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--noise", type=int, default=0, help="0-100 percent of random grain")
    parser.add_argument("--subsampling", choices=("420", "422"), default="420")
    parser.add_argument("--restart", type=int, default=0, help="restart interval in MCUs (DRI)")
    parser.add_argument("--max-frame-bytes", type=int, default=None,
                        help=f"fail if a frame is larger (default {LAB_MAX_FRAME} for the default "
                             f"size, none otherwise)")
    args = parser.parse_args(argv)
    limit = args.max_frame_bytes
    if limit is None and args.size == DEFAULT_SIZE:
        limit = LAB_MAX_FRAME
    frames = write_movie(args.output, size=args.size, frames=args.frames, quality=args.quality,
                         noise=args.noise, subsampling=2 if args.subsampling == "420" else 1,
                         restart_marker_blocks=args.restart)
    biggest = max(len(f) for f in frames)
    print(f"{args.output}: {len(frames)} frames {args.size[0]}x{args.size[1]}, "
          f"{sum(map(len, frames))} bytes, largest frame {biggest} bytes")
    if limit is not None and biggest >= limit:
        print(f"error: a frame is {biggest} bytes, limit {limit}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
