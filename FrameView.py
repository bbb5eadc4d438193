"""Decoding a received JPEG at the size the player's view shows it (Pillow; no Tk)."""

from __future__ import annotations

import io
import os
from struct import error as struct_error   # Pillow raises it for some truncated headers

from PIL import Image

IMAGE_BLOCKS = 4          # freed image buffers Pillow keeps for reuse (see reuse_image_memory)
VIEW_DEFAULT = (1280, 720)  # the default view shows 640x480 and 1280x720 streams 1:1 (screen permitting)
FIT_SLACK = 8             # px a frame may exceed the view by and still be shown 1:1 (edges clipped):
                          # resampling a whole frame to gain a few pixels costs more than decoding it
SCREEN_MARGIN = (32, 96)  # px of the screen left to window decorations and desktop panels
RESIZE_FILTER = Image.Resampling.BOX  # area average: antialiased for the < 2x reductions left after draft(), and
                           # ~1/3 cheaper than BILINEAR (1280x720 -> 704x396: 2.9 vs 4.4 ms here)
MAX_FRAME_PIXELS = 40_000_000   # a frame claiming more (e.g. a SOF of 60000x60000) is refused undecoded


def fit_size(frame: tuple[int, int], view: tuple[int, int], slack: int = FIT_SLACK,
             enlarge: bool = False) -> tuple[int, int]:
    """The size a frame is shown at in a view: its own when it fits (or overflows by at most ``slack``
    px, clipped evenly at the edges), else scaled down to fit, aspect ratio kept. ``enlarge`` (fit to
    window) also scales a smaller frame up to the view. A view not laid out yet (1x1) shows frames 1:1."""
    fw, fh = frame
    vw, vh = view
    if vw <= 1 or vh <= 1:
        return frame
    scale = min(vw / fw, vh / fh)
    if enlarge:
        if abs(scale - 1.0) * max(fw, fh) < 1:
            return frame
        return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))
    if fw <= vw + slack and fh <= vh + slack:
        return frame
    return max(1, min(vw, round(fw * scale))), max(1, min(vh, round(fh * scale)))


def decode_for_view(data: bytes, view: tuple[int, int],
                    enlarge: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one JPEG from memory at the size :func:`fit_size` gives for ``view``; also returns the
    frame's own size. Reductions of 2x or more happen in the decoder (``draft``: DCT scaling to 1/2,
    1/4 or 1/8, never below the target), the rest with :data:`RESIZE_FILTER`. The decoder's mode is
    kept (a Tk photo takes RGB and L as they are). Raises ValueError for a bad frame: truncated,
    corrupt, or claiming more than :data:`MAX_FRAME_PIXELS` (a decompression bomb)."""
    try:
        img: Image.Image = Image.open(io.BytesIO(data), formats=("JPEG",))  # RFC 2435 carries JPEG only
        native = img.size
        if native[0] * native[1] > MAX_FRAME_PIXELS:
            raise ValueError(f"frame claims {native[0]}x{native[1]} pixels (more than "
                             f"{MAX_FRAME_PIXELS:,}); not decoded")
        size = fit_size(native, view, enlarge=enlarge)
        if size[0] < native[0]:
            img.draft(None, size)
        img.load()
        if img.size != size:
            img = img.resize(size, RESIZE_FILTER)
    except Image.DecompressionBombError as exc:    # not an OSError
        raise ValueError(f"frame too large to decode: {exc}") from None
    except (OSError, SyntaxError, struct_error) as exc:
        raise ValueError(f"frame does not decode: {exc}") from None
    return img, native


def reuse_image_memory() -> None:
    """Have Pillow keep a few freed image buffers for the next frames (its block cache; off by
    default, PILLOW_BLOCKS_MAX). Otherwise each frame's buffers are returned to the system and
    mapped afresh: ~600 page faults per 640x480 frame, a third of the player's CPU when playing."""
    set_blocks_max = getattr(Image.core, "set_blocks_max", None)
    if set_blocks_max is not None and "PILLOW_BLOCKS_MAX" not in os.environ \
            and Image.core.get_blocks_max() < IMAGE_BLOCKS:
        set_blocks_max(IMAGE_BLOCKS)
