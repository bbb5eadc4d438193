"""JpegConvert: frames RFC 2435 cannot carry become frames it can; lab frames fit a datagram."""

import pytest
from PIL import Image

import media
from JpegConvert import ConvertError, carriable, fit_size, to_rfc2435
from RtpJpeg import JpegDepacketizer, packetize, parse_jpeg

# kind -> (what parse_jpeg says about the source, RFC 2435 type after conversion)
KINDS = {
    "444": ("luma sampling 1x1", 1),
    "422-optimized": ("Huffman", 0),   # 4:2:2 stays 4:2:2 (type 0): nothing lost to resampling
    "optimized": ("Huffman", 1),
    "progressive": ("progressive", 1),
    "grayscale": ("1 components", 1),
}


def through_rfc2435(jpeg):
    """What an RFC 2435 receiver rebuilds from our packets of ``jpeg``."""
    depacketizer = JpegDepacketizer()
    packets = packetize(jpeg, 1400)
    frames = [depacketizer.push(p, 1234, i == len(packets) - 1) for i, p in enumerate(packets)]
    assert frames[-1] is not None and frames[:-1] == [None] * (len(packets) - 1)
    return frames[-1]


@pytest.mark.parametrize("kind", list(KINDS))
def test_uncarriable_frames_become_baseline_standard_tables_close_to_the_source(kind):
    why, jpeg_type = KINDS[kind]
    for source in media.uncarriable_frames(kind, 3)[::2]:
        info, reason = carriable(source)
        assert info is None and why in reason
        out = to_rfc2435(source)
        assert parse_jpeg(out).jpeg_type == jpeg_type  # parse_jpeg: baseline, 8-bit, 3 comp, Annex K tables
        assert media.decode(out).size == media.decode(source).size
        luma = media.psnr(source, out, "YCbCr")["Y"]
        rgb = media.psnr(source, out)["all"]
        assert luma >= 35, f"{kind}: luma PSNR {luma:.1f} dB"
        if kind != "444":  # same chroma resolution: the whole picture is close, not just luma
            assert rgb >= 35, f"{kind}: RGB PSNR {rgb:.1f} dB"
        else:  # 4:2:0 halves chroma both ways; what that costs on this scene's saturated edges
            assert rgb >= 29, f"{kind}: RGB PSNR {rgb:.1f} dB"
        # nothing more is lost on the way: the receiver's rebuilt frame is the same picture
        assert media.pixels(through_rfc2435(out)) == media.pixels(out)


def test_source_quantization_tables_are_kept():
    source = media.uncarriable_frames("444", 1)[0]
    out = to_rfc2435(source)
    assert parse_jpeg(out).qtables == [bytes(t) for t in _zigzag_tables(source)]


def _zigzag_tables(jpeg):
    """The source's DQT tables as written (zigzag order), read straight from its bytes."""
    tables, pos = {}, 2
    while jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if jpeg[pos + 1] == 0xDB:
            body = jpeg[pos + 4:pos + 2 + length]
            for at in range(0, len(body), 65):
                tables[body[at] & 15] = body[at + 1:at + 65]
        pos += 2 + length
    return [tables[0], tables[1]]


def test_pillow_baseline_encoding_is_rfc2435_carriable():
    # The converter relies on this: libjpeg writes the Annex K tables unless asked to optimize.
    image = Image.open(media.MOVIE.replace("movie.Mjpeg", "docs/player.png")).convert("RGB")
    frame = media.pillow_jpeg(image, quality=90, subsampling=2, optimize=False)
    assert parse_jpeg(frame).jpeg_type == 1
    assert carriable(media.pillow_jpeg(image, quality=90, optimize=True))[0] is None


def test_more_than_2040_pixels_is_scaled_to_fit():
    source = media.scene_jpeg(4096, 2160, quality=85)
    assert "2040" in carriable(source)[1]
    info = parse_jpeg(to_rfc2435(source))
    assert max(info.width, info.height) <= 2040
    assert info.width % 8 == 0 and info.height % 8 == 0
    assert abs(info.width / info.height - 4096 / 2160) < 0.01


def test_restart_markers_and_cmyk():
    restart = media.pillow_jpeg(media.decode(media.scene_jpeg(320, 240)), subsampling=0, restart_marker_rows=1)
    assert parse_jpeg(to_rfc2435(restart)).restart_interval == 0
    cmyk = media.pillow_jpeg(media.decode(media.scene_jpeg(320, 240)).convert("CMYK"), quality=90)
    assert carriable(cmyk)[0] is None
    assert media.psnr(cmyk, to_rfc2435(cmyk), "YCbCr")["Y"] >= 35


def test_undecodable_frame_is_a_convert_error():
    twelve_bit = bytearray(media.scene_jpeg(64, 48))
    sof = twelve_bit.find(b"\xff\xc0")
    twelve_bit[sof + 4] = 12                    # P = 12: Pillow's libjpeg decodes 8-bit only
    assert "12-bit" in carriable(bytes(twelve_bit))[1]
    with pytest.raises(ConvertError, match="Pillow cannot"):
        to_rfc2435(bytes(twelve_bit))
    with pytest.raises(ConvertError):
        to_rfc2435(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_fit_size_keeps_small_frames_and_shrinks_large_ones():
    small = media.scene_jpeg(384, 288)
    assert fit_size(small, 20000) is small
    large = media.scene_jpeg(1280, 720, quality=95)
    assert len(large) > 20000
    out = fit_size(large, 20000)
    assert len(out) <= 20000
    assert media.decode(out).size == (1280, 720)      # the scene fits by quality alone
    assert media.psnr(large, out, "YCbCr")["Y"] > 25   # and is still the same picture
    noise = media.noise_jpeg(1280, 720, quality=95)    # ~1 MB: must also shrink the picture
    out = fit_size(noise, 20000)
    assert len(out) <= 20000 and media.decode(out).size[0] < 1280
    with pytest.raises(ConvertError):
        fit_size(large, 100)


def camera_like(kind: str) -> bytes:
    """A 384x288 picture with the soft edges a camera's optics and sensor give (fine detail,
    colour gradients, a blur of 1.5 px), saved the way ``kind`` names."""
    from PIL import ImageFilter
    detail = Image.effect_mandelbrot((384, 288), (-2.0, -1.2, 1.0, 1.2), 100)
    ramp = Image.linear_gradient("L").resize((384, 288))
    picture = Image.merge("RGB", (detail, ramp, ramp.rotate(90).resize((384, 288))))
    picture = picture.filter(ImageFilter.GaussianBlur(1.5))
    table: dict[str, dict[str, object]] = {
        "444": {"subsampling": 0}, "422-optimized": {"subsampling": 1, "optimize": True},
        "optimized": {"optimize": True}, "progressive": {"progressive": True}, "grayscale": {}}
    options = table[kind]
    if kind == "grayscale":
        picture = picture.convert("L")
    import io
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


@pytest.mark.parametrize("kind", list(KINDS))
def test_camera_like_frames_stay_within_35_db_in_rgb(kind):
    """On camera-like content the whole picture (RGB, chroma included) is >= 35 dB from the
    source for every kind, 4:4:4 too: the 29 dB above is the synthetic scene's hard colour edges."""
    source = camera_like(kind)
    assert carriable(source)[0] is None
    out = to_rfc2435(source)
    assert carriable(out)[0] is not None
    rgb = media.psnr(source, out)["all"]
    assert rgb >= 35, f"{kind}: RGB PSNR {rgb:.1f} dB"
