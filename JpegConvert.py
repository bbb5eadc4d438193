"""Re-encode JPEG frames that RFC 2435 cannot carry, and frames too large for a lab client.

Pure module: JPEG bytes in, JPEG bytes out (Pillow does the decoding and encoding; no
sockets, no threads).  Two functions, for files and live sources alike:

* :func:`to_rfc2435` turns any frame Pillow can decode (4:4:4 or other sampling, optimized
  Huffman tables, progressive, grayscale, CMYK, more than 2040 pixels, restart intervals or
  markers parse_jpeg refuses) into a baseline JPEG that RTP/JPEG types 0/1 carry: 8-bit,
  3 components YCbCr, 4:2:0 (4:2:2 sources keep 4:2:2, type 0), the standard Huffman
  tables of T.81 Annex K.3 (RFC 2435 Appendix B; libjpeg writes them when it is not asked
  to optimize), no restart markers, at most 2040x2040.  It keeps the source's own
  quantization tables, so the re-encoded frame has the source's quality: re-quantizing
  decoded DCT data with the tables it was quantized with changes little (luma PSNR > 45 dB
  in the tests); what a 4:4:4 source loses is the chroma resolution RFC 2435 cannot carry.
* :func:`fit_size` re-encodes a frame at the highest quality (and, failing that, the
  largest size) that fits in ``max_bytes``: the lab's client reads each RTP datagram with
  one ``recv(20480)``, so a lab session's frames must stay <= 20,000 bytes.

Both raise :class:`ConvertError` (a ValueError with ``reason``) when Pillow cannot decode
the frame (12-bit samples, arithmetic coding, a broken file).
"""

from __future__ import annotations

import io
import logging
import math

from PIL import Image, JpegImagePlugin

from RtpJpeg import MAX_DIMENSION, JpegError, JpegInfo, parse_jpeg

log = logging.getLogger(__name__)

__all__ = ["ConvertError", "carriable", "to_rfc2435", "fit_size", "fit_size_quality", "DEFAULT_QUALITY", "MIN_QUALITY"]

DEFAULT_QUALITY = 90    # when the source has no quantization tables Pillow can read
MIN_QUALITY = 5         # fit_size goes no lower before it scales the picture down
_SUBSAMPLING_420 = 2    # Pillow's names: 0 = 4:4:4, 1 = 4:2:2 (2x1), 2 = 4:2:0 (2x2)
_SUBSAMPLING_422 = 1
_MAX_HALVINGS = 6       # fit_size: 1/64 of the area is the smallest picture it tries


class ConvertError(ValueError):
    """A frame that cannot be re-encoded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def carriable(jpeg: bytes) -> tuple[JpegInfo | None, str | None]:
    """(parse_jpeg info, None) when RFC 2435 carries ``jpeg`` as it is, else (None, reason)."""
    try:
        return parse_jpeg(jpeg), None
    except JpegError as exc:
        return None, exc.reason


def _open(jpeg: bytes) -> Image.Image:
    """The frame as a lazily decoded Pillow image (header read only)."""
    try:
        image = Image.open(io.BytesIO(jpeg))
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise ConvertError(f"Pillow cannot read the frame: {exc}") from None
    if image.format != "JPEG":
        raise ConvertError(f"not a JPEG ({image.format})")
    return image


def _decode(image: Image.Image, bound: int | None = None) -> Image.Image:
    """Decode to RGB; with ``bound``, let libjpeg scale down by DCT (draft) to >= bound px."""
    try:
        if bound is not None and max(image.size) > bound:
            scale = max(image.size) / bound
            image.draft(None, (int(image.size[0] / scale) + 1, int(image.size[1] / scale) + 1))
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except Exception as exc:  # a truncated or undecodable frame (e.g. 12-bit samples)
        raise ConvertError(f"Pillow cannot decode the frame: {exc}") from None


def _fitted_size(width: int, height: int, bound: int) -> tuple[int, int]:
    """(w, h) scaled to fit bound x bound, a multiple of 8 (no partial MCUs at the receiver)."""
    scale = bound / max(width, height)
    return max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8)


def _encode(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    # optimize=False: libjpeg then writes the standard Annex K tables, the only ones RFC 2435
    # receivers rebuild; progressive=False: baseline sequential; no restart_marker_* options.
    image.save(out, "JPEG", optimize=False, progressive=False, **options)
    return out.getvalue()


def _source_tables(image: Image.Image) -> list[list[int]] | None:
    """The source's luma and chroma quantization tables, 8-bit (RFC 2435 carries 8-bit)."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    ordered = [list(tables[k]) for k in sorted(tables)]
    if len(ordered) == 1:       # grayscale: chroma planes are flat, any table does
        ordered.append(ordered[0])
    return [[min(max(v, 1), 255) for v in table] for table in ordered[:2]]


def to_rfc2435(jpeg: bytes, quality: int | None = None) -> bytes:
    """``jpeg`` re-encoded as a baseline JPEG RFC 2435 types 0/1 carry (see the module doc).

    ``quality`` None keeps the source's quantization tables (its quality); a number 1..95
    uses libjpeg's tables at that quality instead.  The result always passes parse_jpeg.
    """
    source = _open(jpeg)
    width, height = source.size
    sampling = JpegImagePlugin.get_sampling(source) if source.mode in ("RGB", "YCbCr") else -1
    tables = _source_tables(source) if quality is None else None
    image = _decode(source, MAX_DIMENSION)
    if max(image.size) > MAX_DIMENSION or max(width, height) > MAX_DIMENSION:
        image = image.resize(_fitted_size(width, height, MAX_DIMENSION), Image.Resampling.LANCZOS)
    options: dict = {"subsampling": _SUBSAMPLING_422 if sampling == _SUBSAMPLING_422 else _SUBSAMPLING_420}
    if tables is not None:
        options["qtables"] = tables
    else:
        options["quality"] = quality if quality is not None else DEFAULT_QUALITY
    out = _encode(image, **options)
    info, reason = carriable(out)
    if info is None:  # would be a bug here or a Pillow that optimizes by default
        raise ConvertError(f"the re-encoded frame is still not RFC 2435: {reason}")
    return out


def fit_size(jpeg: bytes, max_bytes: int, hint: int | None = None) -> bytes:
    """``jpeg`` itself if it has at most ``max_bytes``, else re-encoded to fit.

    The highest libjpeg quality (MIN_QUALITY..95, binary search) whose baseline 4:2:0
    encoding fits; when even MIN_QUALITY does not, the picture is halved (repeatedly).
    ``hint``: the quality that fitted the previous frame of the movie, where the search
    starts (neighbouring frames need about the same: 2-4 encodings instead of 7).
    """
    return fit_size_quality(jpeg, max_bytes, hint)[0]


def fit_size_quality(jpeg: bytes, max_bytes: int, hint: int | None = None) -> tuple[bytes, int | None]:
    """fit_size() and the quality it chose (None: the frame was returned as it is)."""
    if len(jpeg) <= max_bytes:
        return jpeg, None
    if max_bytes < 200:
        raise ConvertError(f"no JPEG fits in {max_bytes} bytes")
    image = _decode(_open(jpeg))
    for _ in range(_MAX_HALVINGS + 1):
        found = _best_quality(image, max_bytes, hint)
        if found is not None:
            return found
        hint = None
        width, height = image.size
        if width <= 16 or height <= 16:
            break
        image = image.resize((max(8, width // 2), max(8, height // 2)), Image.Resampling.BOX)
    raise ConvertError(f"no re-encoding of the {len(jpeg)}-byte frame fits in {max_bytes} bytes")


def _best_quality(image: Image.Image, max_bytes: int, hint: int | None) -> tuple[bytes, int] | None:
    """The highest quality whose encoding fits (binary search, first near ``hint``), or None."""
    def search(low: int, high: int) -> tuple[bytes, int] | None:
        best = None
        while low <= high:
            mid = (low + high) // 2
            out = _encode(image, quality=mid, subsampling=_SUBSAMPLING_420)
            if len(out) <= max_bytes:
                best, low = (out, mid), mid + 1
            else:
                high = mid - 1
        return best

    if hint is None:
        return search(MIN_QUALITY, 95)
    hint = min(max(hint, MIN_QUALITY), 95)
    out = _encode(image, quality=hint, subsampling=_SUBSAMPLING_420)
    if len(out) <= max_bytes:
        better = search(hint + 1, min(95, hint + 4))
        return better if better is not None else (out, hint)
    return search(max(MIN_QUALITY, hint - 8), hint - 1) or search(MIN_QUALITY, hint - 9)


def psnr(reference: Image.Image, test: Image.Image, mode: str = "RGB") -> dict[str, float]:
    """PSNR in dB per band of ``mode`` ("RGB" or "YCbCr") and "all" over every band (T.81
    YCbCr is what JPEG codes: "Y" is the luma PSNR video codecs report).  Same size only."""
    from PIL import ImageChops, ImageStat
    a, b = reference.convert(mode), test.convert(mode)
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} vs {b.size}")
    squares = ImageStat.Stat(ImageChops.difference(a, b)).sum2
    pixels = a.size[0] * a.size[1]

    def db(total: float, count: int) -> float:
        return math.inf if total == 0 else 10 * math.log10(255 * 255 * count / total)
    result = {band: db(s, pixels) for band, s in zip(a.getbands(), squares)}
    result["all"] = db(sum(squares), pixels * len(squares))
    return result
