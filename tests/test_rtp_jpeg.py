"""RtpJpeg: JPEG parsing, RFC 2435 packetizer and depacketizer, on real bytes.

Round trips compare decoded pixels (Pillow) of the source frame with the reassembled frame;
the captured ffmpeg and GStreamer packets in tests/fixtures/ are reassembled and compared
with the frames those senders encoded (see tools/capture_rtp.py for the format).
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import struct
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import media
import RtpJpeg
from RtpJpeg import (JpegDepacketizer, JpegError, build_jfif, make_qtables, packetize,
                     parse_jpeg, parse_payload)
from RtpPacket import RtpPacket
from VideoStream import VideoStream

# Natural-order index of the k-th zigzag coefficient (ITU-T T.81 Figure A.6).
ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
          27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44,
          51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


def frames_of(name: str) -> list[bytes]:
    return [VideoStream(os.path.join(media.FIXTURES, name)).frame(i) for i in range(5)]


def roundtrip(frame: bytes, max_payload: int = 1400, timestamp: int = 90000) -> bytes:
    payloads = packetize(frame, max_payload)
    depacketizer = JpegDepacketizer()
    results = [depacketizer.push(p, timestamp, i == len(payloads) - 1) for i, p in enumerate(payloads)]
    assert results[:-1] == [None] * (len(payloads) - 1)
    assert results[-1] is not None
    assert (depacketizer.frames_completed, depacketizer.frames_dropped) == (1, 0)
    return results[-1]


def stream(frames: list[bytes], ts0: int = 1000, step: int = 4500, seq0: int = 0,
           max_payload: int = 1400) -> list[tuple[int, int, bool, bytes]]:
    """(sequence, timestamp, marker, payload) for frames sent one after the other."""
    out, seq = [], seq0
    for k, frame in enumerate(frames):
        payloads = packetize(frame, max_payload)
        for i, payload in enumerate(payloads):
            out.append((seq & 0xFFFF, (ts0 + k * step) & 0xFFFFFFFF, i == len(payloads) - 1, payload))
            seq += 1
    return out


def feed(depacketizer: JpegDepacketizer, packets, gaps: bool = True) -> list[bytes]:
    """Push packets in the given order, flagging sequence gaps like a receiver would."""
    out, last = [], None
    for seq, ts, marker, payload in packets:
        missing = gaps and last is not None and (seq - last) & 0xFFFF != 1
        last = seq
        frame = depacketizer.push(payload, ts, marker, missing)
        if frame is not None:
            out.append(frame)
    return out


# ---------------------------------------------------------------------------------------------
# Appendix A tables

def test_make_qtables_q50_is_the_rfc_table():
    luma, chroma = make_qtables(50)
    assert luma[:16] == bytes([16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40])
    assert chroma == bytes([17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99] + [99] * 49)


@pytest.mark.parametrize("q, luma0, luma_last, chroma_last", [
    (1, 255, 255, 255),       # scale 5000: every value clamps to 255
    (10, 80, 255, 255),       # scale 500
    (75, 8, 50, 50),          # scale 50: (16*50+50)//100 = 8
    (99, 1, 2, 2),            # scale 2: (16*2+50)//100 = 0 clamps to 1; (99*2+50)//100 = 2
])
def test_make_qtables_scaling(q, luma0, luma_last, chroma_last):
    luma, chroma = make_qtables(q)
    assert (luma[0], luma[63], chroma[63]) == (luma0, luma_last, chroma_last)
    assert len(luma) == len(chroma) == 64


@pytest.mark.parametrize("q", [0, 100, 128, 255, -1])
def test_make_qtables_rejects_q_outside_1_99(q):
    with pytest.raises(JpegError):
        make_qtables(q)


# ---------------------------------------------------------------------------------------------
# parse_jpeg

def test_parse_jpeg_movie_frame():
    frame = media.scene_jpeg(384, 288)
    info = parse_jpeg(frame)
    assert (info.width, info.height, info.jpeg_type, info.restart_interval) == (384, 288, 1, 0)
    assert [len(t) for t in info.qtables] == [64, 64]
    assert frame[info.scan_offset - 14:info.scan_offset - 12] == b"\xff\xda"   # SOS header before
    assert frame[info.scan_end:] == b"\xff\xd9"


def test_parse_jpeg_422_and_restart_interval():
    info = parse_jpeg(media.scene_jpeg(320, 240, sampling="422", restart=5))
    assert (info.jpeg_type, info.restart_interval) == (0, 5)


def test_parse_jpeg_single_table_for_all_components_is_sent_twice():
    frame = frames_of("ffmpeg-testsrc-320x240.mjpeg")[0]
    dqt = frame.index(b"\xff\xdb")
    assert frame[dqt + 2:dqt + 4] == b"\x00\x43"        # ffmpeg writes one 8-bit table
    info = parse_jpeg(frame)
    assert info.qtables[0] == info.qtables[1] == frame[dqt + 5:dqt + 69]


def test_parse_jpeg_qtables_are_zigzag_order():
    natural = [[0] * 64, [0] * 64]
    for t, table in enumerate(make_qtables(50)):
        for k in range(64):
            natural[t][ZIGZAG[k]] = table[k]
    frame = media.pillow_jpeg(Image.new("RGB", (32, 32), (9, 99, 199)), qtables=natural, subsampling=2)
    assert parse_jpeg(frame).qtables == make_qtables(50)


def _sof_edit(frame: bytes, offset: int, value: bytes) -> bytes:
    sof = frame.index(b"\xff\xc0")
    return frame[:sof + offset] + value + frame[sof + offset + len(value):]


_GRADIENT = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
REJECTED = [
    ("progressive", lambda: media.pillow_jpeg(_GRADIENT, progressive=True), "progressive JPEG"),
    ("optimized huffman", lambda: media.pillow_jpeg(_GRADIENT, optimize=True), "non-standard Huffman"),
    ("grayscale", lambda: media.pillow_jpeg(_GRADIENT.convert("L")), "1 components"),
    ("cmyk", lambda: media.pillow_jpeg(_GRADIENT.convert("CMYK")), "4 components"),
    ("4:4:4", lambda: media.pillow_jpeg(_GRADIENT, subsampling=0), "luma sampling 1x1"),
    ("too wide", lambda: media.pillow_jpeg(Image.new("RGB", (2048, 16))), "exceeds RFC 2435"),
    ("too high", lambda: media.pillow_jpeg(Image.new("RGB", (16, 2041))), "exceeds RFC 2435"),
    ("12-bit", lambda: _sof_edit(media.scene_jpeg(64, 48), 4, b"\x0c"), "12-bit samples"),
    ("zero height", lambda: _sof_edit(media.scene_jpeg(64, 48), 5, b"\x00\x00"), "DNL"),
    ("16-bit qtable", lambda: media.pillow_jpeg(_GRADIENT, qtables=[[300] * 64] * 2), "16-bit quant"),
    ("not a jpeg", lambda: b"\x89PNG\r\n\x1a\n" + bytes(100), "no SOI"),
    ("no EOI", lambda: media.scene_jpeg(64, 48)[:-2], "no EOI"),
    ("two scans", lambda: media.scene_jpeg(64, 48)[:-2] + b"\xff\xda\x00\x02\xff\xd9", "marker 0xDA"),
]


@pytest.mark.parametrize("name, make, reason", REJECTED, ids=[r[0] for r in REJECTED])
def test_parse_jpeg_rejects_what_rfc2435_cannot_carry(name, make, reason):
    with pytest.raises(JpegError) as caught:
        parse_jpeg(make())
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("frame", [media.scene_jpeg(32, 16, restart=1),
                                   frames_of("gstreamer-videotestsrc-320x240.mjpeg")[0][:1200]],
                         ids=["dri", "gstreamer-head"])
def test_parse_jpeg_every_truncated_prefix_raises_jpeg_error(frame):
    for end in range(len(frame) - 1):       # [:-1] still ends in FF: no EOI
        with pytest.raises(JpegError):
            parse_jpeg(frame[:end])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_parse_jpeg_corrupted_bytes_raise_only_jpeg_error(data):
    frame = bytearray(media.scene_jpeg(32, 16))
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, 700))] = data.draw(st.integers(0, 255))
    try:
        parse_jpeg(bytes(frame))
    except JpegError:
        pass


def test_find_jpeg_end_walks_progressive_scans():
    progressive = media.pillow_jpeg(_GRADIENT, progressive=True)
    baseline = media.scene_jpeg(64, 48)
    data = progressive + baseline
    end = RtpJpeg.find_jpeg_end(data)
    assert end == len(progressive)
    assert RtpJpeg.find_jpeg_end(data, end) == len(data)
    with pytest.raises(JpegError):
        RtpJpeg.find_jpeg_end(data[:-2], end)


# ---------------------------------------------------------------------------------------------
# packetize: header bytes

def test_packetize_headers_384x288():
    frame = media.scene_jpeg(384, 288)
    info = parse_jpeg(frame)
    payloads = packetize(frame)
    first = payloads[0]
    # type-specific 0, offset 0, type 1 (4:2:0), Q 255, 384/8 = 0x30, 288/8 = 0x24
    assert first[:8] == bytes.fromhex("00000000 01 ff 30 24")
    # Quantization table header: MBZ 0, precision 0, length 128, then luma and chroma tables
    assert first[8:12] == bytes.fromhex("00 00 0080")
    assert first[12:140] == info.qtables[0] + info.qtables[1]
    data = frame[info.scan_offset:info.scan_end + 2]  # the EOI travels with the data
    assert data.endswith(b"\xff\xd9")
    offset = len(first) - 140
    assert first[140:] == data[:offset]
    for payload in payloads[1:]:
        assert payload[:8] == offset.to_bytes(4, "big") + bytes.fromhex("01 ff 30 24")
        assert payload[8:] == data[offset:offset + len(payload) - 8]
        offset += len(payload) - 8
    assert offset == len(data)
    assert all(len(p) <= 1400 for p in payloads) and len(payloads[0]) == 1400


def test_packetize_restart_header_in_every_packet():
    frame = media.scene_jpeg(320, 240, sampling="422", restart=4)
    payloads = packetize(frame, 500)
    for payload in payloads:
        # type 64 = 4:2:2 + restart markers; restart interval 4; F=1 L=1 count=0x3FFF
        assert payload[4:8] == bytes.fromhex("40 ff 28 1e")
        assert payload[8:12] == bytes.fromhex("0004 ffff")
    assert payloads[0][12:16] == bytes.fromhex("00 00 0080")
    assert parse_payload(payloads[1]).qtables is None


@pytest.mark.parametrize("max_payload", [153, 200, 576, 1400, 1460, 8972, 65000])
def test_packetize_respects_max_payload(max_payload):
    frame = media.noise_jpeg(320, 240, 90)
    payloads = packetize(frame, max_payload)
    assert all(len(p) <= max_payload for p in payloads)
    assert all(len(p) == max_payload for p in payloads[:-1])
    assert media.pixels(roundtrip(frame, max_payload)) == media.pixels(frame)


def test_packetize_too_small_max_payload():
    with pytest.raises(ValueError, match="no room"):
        packetize(media.scene_jpeg(64, 48), 140)     # 8 + 4 + 128 bytes of headers
    assert len(packetize(media.scene_jpeg(64, 48), 141)[0]) == 141


def test_packetize_matches_gstreamer_rtpjpegpay_byte_for_byte():
    """Same frame, same MTU: our payloads are GStreamer's, byte for byte (EOI included)."""
    frames = frames_of("gstreamer-videotestsrc-320x240.mjpeg")
    captured = [RtpPacket.parse(p) for p in media.read_records(
        os.path.join(media.FIXTURES, "gstreamer-videotestsrc-320x240.rtp"))]
    by_ts: dict[int, list[bytes]] = {}
    for packet in captured:
        by_ts.setdefault(packet.rtp_timestamp, []).append(packet.payload)
    assert len(by_ts) == len(frames)
    for frame, theirs in zip(frames, by_ts.values()):
        assert packetize(frame, len(theirs[0])) == theirs


def test_packetize_scan_data_matches_ffmpeg_rtpenc_jpeg():
    """ffmpeg sends its single table once (length 64); the scan data is the same bytes (ffmpeg
    leaves out the EOI, which we send as GStreamer does)."""
    frames = frames_of("ffmpeg-testsrc-320x240.mjpeg")
    captured = [RtpPacket.parse(p) for p in media.read_records(
        os.path.join(media.FIXTURES, "ffmpeg-testsrc-320x240.rtp"))]
    data: dict[int, bytes] = {}
    for packet in captured:
        part = parse_payload(packet.payload)
        data[packet.rtp_timestamp] = data.get(packet.rtp_timestamp, b"") + bytes(part.data)
    for frame, theirs in zip(frames, data.values()):
        ours = b"".join(bytes(parse_payload(p).data) for p in packetize(frame, 1460))
        assert ours == theirs + b"\xff\xd9"


# ---------------------------------------------------------------------------------------------
# packetize -> depacketize: decoded pixels equal

ROUND_TRIP = [
    ("movie 384x288 4:2:0", lambda: media.scene_jpeg(384, 288)),
    ("640x480 4:2:2", lambda: media.scene_jpeg(640, 480, sampling="422", quality=90)),
    ("DRI 4:2:0", lambda: media.scene_jpeg(320, 240, restart=7)),
    ("DRI 4:2:2 one MCU", lambda: media.scene_jpeg(320, 240, sampling="422", restart=1)),
    ("DRI fixture", lambda: open(os.path.join(media.FIXTURES, "restart-dri-160x120.jpg"), "rb").read()),
    ("ffmpeg one qtable", lambda: frames_of("ffmpeg-testsrc-320x240.mjpeg")[2]),
    ("gstreamer jpegenc", lambda: frames_of("gstreamer-videotestsrc-320x240.mjpeg")[3]),
    ("1280x720 > 64 KB", lambda: media.scene_jpeg(1280, 720, quality=95)),
    ("640x480 noise > 200 KB", lambda: media.noise_jpeg(640, 480, 90)),
    ("1280x720 noise > 1 MB", lambda: media.noise_jpeg(1280, 720, 95)),
    ("2040x16 widest", lambda: media.scene_jpeg(2040, 16)),
]


@pytest.mark.parametrize("name, make", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_roundtrip_pixels_equal(name, make):
    frame = make()
    if "64 KB" in name:
        assert len(frame) > 65536
    if "200 KB" in name:
        assert len(frame) > 200_000
    result = roundtrip(frame)
    assert media.pixels(result) == media.pixels(frame)
    assert parse_jpeg(result).qtables == parse_jpeg(frame).qtables


def test_roundtrip_odd_size_rounds_up_to_8_pixels():
    frame = media.scene_jpeg(100, 75)
    result = media.decode(roundtrip(frame))
    source = media.decode(frame)
    assert result.size == (104, 80)           # RFC 2435 sizes are in 8-pixel blocks
    # Away from the padded right/bottom edge (where chroma upsampling sees other neighbours)
    assert result.crop((0, 0, 96, 72)).tobytes() == source.crop((0, 0, 96, 72)).tobytes()


def test_build_jfif_single_table_and_eoi_not_doubled():
    frame = frames_of("ffmpeg-testsrc-320x240.mjpeg")[0]
    info = parse_jpeg(frame)
    scan = frame[info.scan_offset:info.scan_end]
    rebuilt = build_jfif(1, 320, 240, [info.qtables[0]], 0, scan)
    assert rebuilt.endswith(scan + b"\xff\xd9")
    assert build_jfif(1, 320, 240, [info.qtables[0]], 0, scan + b"\xff\xd9") == rebuilt
    assert media.pixels(rebuilt) == media.pixels(frame)
    with pytest.raises(JpegError):
        build_jfif(7, 320, 240, info.qtables, 0, scan)


# ---------------------------------------------------------------------------------------------
# Depacketizer: Q values

def _with_q(payloads: list[bytes], q: int, keep_tables: bool) -> list[bytes]:
    """Rewrite Q in every payload; unless keep_tables, drop the in-band tables: for Q >= 128 the
    table header stays with length 0 (RFC 2435 §3.1.8), for Q < 128 there is no header at all."""
    out = []
    for i, payload in enumerate(payloads):
        payload = payload[:5] + bytes([q]) + payload[6:]
        if i == 0 and not keep_tables:
            header = bytes.fromhex("00 00 0000") if q >= 128 else b""
            payload = payload[:8] + header + payload[8 + 4 + 128:]
        out.append(payload)
    return out


@pytest.mark.parametrize("q", [1, 25, 50, 80, 99])
def test_depacketize_q_1_99_uses_appendix_a_tables(q):
    natural = [[0] * 64, [0] * 64]
    for t, table in enumerate(make_qtables(q)):
        for k in range(64):
            natural[t][ZIGZAG[k]] = table[k]
    image = make_movie_image(160, 120)
    frame = media.pillow_jpeg(image, qtables=natural, subsampling=2, optimize=False)
    payloads = _with_q(packetize(frame, 600), q, keep_tables=False)
    assert payloads[0][5] == q and len(payloads[0]) < 600 - 128
    depacketizer = JpegDepacketizer()
    result = [depacketizer.push(p, 7, i == len(payloads) - 1) for i, p in enumerate(payloads)][-1]
    assert media.pixels(result) == media.pixels(frame)


def make_movie_image(width, height):
    import make_movie
    return make_movie.render_frame(3, (width, height), 10)


def test_depacketize_q_128_254_tables_cached_when_omitted():
    frames = [media.scene_jpeg(160, 120, index=i) for i in range(3)]
    depacketizer = JpegDepacketizer()
    out = []
    for k, frame in enumerate(frames):
        payloads = _with_q(packetize(frame), 200, keep_tables=(k == 0))
        for i, payload in enumerate(payloads):
            result = depacketizer.push(payload, 1000 * k, i == len(payloads) - 1)
            if result:
                out.append(result)
    assert [media.pixels(f) for f in out] == [media.pixels(f) for f in frames]


def test_depacketize_q_255_without_tables_is_dropped():
    # Q=255 tables are dynamic (RFC 2435 §3.1.8): never reused from an earlier frame.
    frames = [media.scene_jpeg(160, 120, index=i) for i in range(2)]
    depacketizer = JpegDepacketizer()
    first = packetize(frames[0])
    second = _with_q(packetize(frames[1]), 255, keep_tables=False)
    assert feed(depacketizer, [(i, 1, i == len(first) - 1, p) for i, p in enumerate(first)])
    assert not feed(depacketizer, [(9 + i, 2, i == len(second) - 1, p) for i, p in enumerate(second)])
    assert (depacketizer.frames_completed, depacketizer.frames_dropped) == (1, 1)


def test_depacketize_q_200_without_any_cached_tables_is_dropped():
    payloads = _with_q(packetize(media.scene_jpeg(160, 120)), 200, keep_tables=False)
    depacketizer = JpegDepacketizer()
    assert not feed(depacketizer, [(i, 5, i == len(payloads) - 1, p) for i, p in enumerate(payloads)])
    assert depacketizer.frames_dropped == 1


@pytest.mark.parametrize("payload, reason", [
    (b"", "shorter than the 8-byte"),
    (bytes.fromhex("00000000 01ff28"), "shorter than the 8-byte"),
    (bytes.fromhex("00000000 05ff281e") + bytes(10), "type 5"),
    (bytes.fromhex("00000000 42ff281e") + bytes(10), "type 66"),
    (bytes.fromhex("00000000 0100281e") + bytes(10), "reserved Q value 0"),
    (bytes.fromhex("00000000 0164281e") + bytes(10), "reserved Q value 100"),
    (bytes.fromhex("00000000 01ff001e") + bytes(10), "zero width"),
    (bytes.fromhex("00000000 41ff281e 0004"), "restart marker header"),
    (bytes.fromhex("00000000 01ff281e 0000"), "quantization table header"),
    (bytes.fromhex("00000000 01ff281e 00000080") + bytes(127), "run past the payload"),
    (bytes.fromhex("00000000 01ff281e 00000050") + bytes(80), "does not match precision"),
])
def test_parse_payload_errors(payload, reason):
    with pytest.raises(JpegError, match=reason):
        parse_payload(payload)


def test_parse_payload_16_bit_tables():
    tables = bytes(range(128)) + bytes(range(64))
    payload = bytes.fromhex("00000000 01ff0101 0001 00c0") + tables + b"\x12\x34"
    part = parse_payload(payload)
    assert part.qtables == [bytes(range(128)), bytes(range(64))]
    assert bytes(part.data) == b"\x12\x34"


@pytest.mark.parametrize("frame", [media.scene_jpeg(64, 48), media.scene_jpeg(64, 48, restart=2)],
                         ids=["plain", "dri"])
def test_every_truncated_prefix_of_a_payload(frame):
    first = packetize(frame)[0]
    header_size = len(first) - len(parse_payload(first).data)
    assert header_size == (144 if b"\xff\xdd" in frame else 140)
    for end in range(len(first) + 1):
        try:
            part = parse_payload(first[:end])
        except JpegError:
            assert end < header_size
            continue
        assert part.fragment_offset == 0 and len(part.data) == end - header_size
        depacketizer = JpegDepacketizer()
        result = depacketizer.push(first[:end], 3, True)     # never raises
        if end < len(first):
            assert result is None or media.decode(result)   # a short frame may still be valid


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), st.integers(0, 3), st.booleans(), st.booleans()),
                max_size=20))
def test_push_never_raises_on_arbitrary_payloads(packets):
    depacketizer = JpegDepacketizer()
    for payload, ts, marker, missing in packets:
        result = depacketizer.push(bytes.fromhex("00000000 01ff0201 00000080") + bytes(128) + payload
                                   if ts == 3 else payload, ts, marker, missing)
        assert result is None or result[:2] == b"\xff\xd8"
    depacketizer.flush()


def test_bad_packet_counted_and_its_frame_dropped():
    frames = [media.scene_jpeg(160, 120, index=i) for i in range(2)]
    packets = stream(frames, max_payload=500)
    # Replace the second packet of frame 0 with garbage
    seq, ts, marker, _ = packets[1]
    packets[1] = (seq, ts, marker, b"\x00\x01")
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, packets)
    assert [media.pixels(f) for f in out] == [media.pixels(frames[1])]
    assert (depacketizer.bad_packets, depacketizer.frames_dropped, depacketizer.frames_completed) == (1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Depacketizer: loss, reordering, duplicates, wrap-around

FRAMES_3 = [media.scene_jpeg(320, 240, index=i, quality=90) for i in range(3)]


def test_loss_of_any_one_packet_drops_exactly_that_frame():
    packets = stream(FRAMES_3, seq0=65530)          # sequence numbers wrap too
    middle = [i for i, p in enumerate(packets) if p[1] == packets[0][1] + 4500]
    assert len(middle) >= 3
    expected = [media.pixels(FRAMES_3[0]), media.pixels(FRAMES_3[2])]
    for lost in middle:
        depacketizer = JpegDepacketizer()
        out = feed(depacketizer, packets[:lost] + packets[lost + 1:])
        assert [media.pixels(f) for f in out] == expected, f"lost packet {lost}"
        assert (depacketizer.frames_completed, depacketizer.frames_dropped) == (2, 1)


def test_loss_without_sequence_gap_flag_still_never_emits_a_corrupt_frame():
    packets = stream(FRAMES_3)
    for lost in range(len(packets)):
        depacketizer = JpegDepacketizer()
        out = feed(depacketizer, packets[:lost] + packets[lost + 1:], gaps=False)
        depacketizer.flush()
        assert len(out) == 2 and depacketizer.frames_dropped == 1
        assert all(media.pixels(f) in [media.pixels(s) for s in FRAMES_3] for f in out)


def test_reordered_packets_sorted_by_sequence_number():
    packets = stream(FRAMES_3, seq0=65500)
    shuffled = packets[:]
    random.Random(5).shuffle(shuffled)
    # what a jitter buffer hands over: sorted by extended sequence number
    ordered = sorted(shuffled, key=lambda p: (p[0] - 65500) & 0xFFFF)
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, ordered)
    assert [media.pixels(f) for f in out] == [media.pixels(f) for f in FRAMES_3]


def test_fragments_of_a_frame_out_of_order_still_complete():
    packets = stream(FRAMES_3[:1])
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, packets[::-1], gaps=False)
    assert [media.pixels(f) for f in out] == [media.pixels(FRAMES_3[0])]


def test_duplicated_packets_emit_each_frame_once():
    packets = [p for packet in stream(FRAMES_3) for p in (packet, packet)]
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, packets, gaps=False)
    assert [media.pixels(f) for f in out] == [media.pixels(f) for f in FRAMES_3]
    assert depacketizer.duplicates == len(packets) // 2
    assert depacketizer.frames_dropped == 0


def test_timestamp_wraps_around():
    packets = stream(FRAMES_3, ts0=0xFFFFFFFF - 4000)
    assert packets[-1][1] < packets[0][1]
    depacketizer = JpegDepacketizer()
    assert [media.pixels(f) for f in feed(depacketizer, packets)] == \
        [media.pixels(f) for f in FRAMES_3]


def test_missing_marker_packet_drops_frame_when_next_frame_starts():
    packets = stream(FRAMES_3)
    last_of_first = max(i for i, p in enumerate(packets) if p[2] and p[1] == packets[0][1])
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, packets[:last_of_first] + packets[last_of_first + 1:])
    assert len(out) == 2 and depacketizer.frames_dropped == 1


def test_sender_reusing_a_timestamp_for_the_next_frame():
    packets = stream(FRAMES_3, step=0)                  # every frame stamped alike
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, packets)
    assert [media.pixels(f) for f in out] == [media.pixels(f) for f in FRAMES_3]


def _payload(offset: int, data: bytes, first: bool = False) -> bytes:
    """An RFC 2435 payload for a 320x240 4:2:0 frame, Q=255, zero tables when first."""
    head = offset.to_bytes(4, "big") + bytes.fromhex("01ff281e")
    return head + (bytes.fromhex("00000080") + bytes(128) if first else b"") + data


def test_oversized_frame_is_dropped_without_holding_its_data():
    depacketizer = JpegDepacketizer()
    chunk = bytes(60000)
    # overlapping fragments (offset +1 each) would make the frame hold more than 2**24 bytes
    for k in range(300):
        assert depacketizer.push(_payload(k, chunk, first=(k == 0)), 1, False) is None
    assert depacketizer._frame.damaged and not depacketizer._frame.chunks
    assert depacketizer.push(_payload(300, b"x"), 1, True) is None
    assert (depacketizer.frames_dropped, depacketizer.frames_completed) == (1, 0)


def test_lab_dialect_whole_jpeg_in_one_payload():
    depacketizer = JpegDepacketizer()
    frame = media.scene_jpeg(384, 288)
    assert depacketizer.push(frame, 0, False) == frame
    assert depacketizer.push(frame, 0, False) == frame       # lab servers reuse timestamps
    assert depacketizer.frames_completed == 2


# ---------------------------------------------------------------------------------------------
# Captured packets from real senders

@pytest.mark.parametrize("name", ["ffmpeg-testsrc-320x240", "gstreamer-videotestsrc-320x240"])
def test_captured_packets_reassemble_to_the_senders_frames(name):
    reference = frames_of(name + ".mjpeg")
    packets = [RtpPacket.parse(p) for p in media.read_records(os.path.join(media.FIXTURES, name + ".rtp"))]
    depacketizer = JpegDepacketizer()
    out = feed(depacketizer, [(p.sequence_number, p.rtp_timestamp, p.marker, p.payload) for p in packets])
    assert len(out) == len(reference) == 5
    assert [media.pixels(f) for f in out] == [media.pixels(f) for f in reference]
    assert (depacketizer.frames_dropped, depacketizer.bad_packets) == (0, 0)


# ---------------------------------------------------------------------------------------------
# Real receivers decode our packets

INTEROP_FRAMES = [("4:2:0", {}), ("4:2:2", {"sampling": "422"}), ("DRI 4:2:0", {"restart": 3}),
                  ("DRI 4:2:2", {"sampling": "422", "restart": 1})]


def _rtp_packets(frames: list[bytes], max_payload: int = 1400, seq0: int = 100, ts0: int = 9000):
    packets = []
    for seq, ts, marker, payload in stream(frames, ts0=ts0, seq0=seq0, max_payload=max_payload):
        packets.append(RtpPacket(payload_type=26, sequence_number=seq, rtp_timestamp=ts,
                                 ssrc=0x1234ABCD, payload=payload, marker=marker).serialize())
    return packets


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="gst-launch-1.0 not installed")
def test_gstreamer_rtpjpegdepay_decodes_our_packets(tmp_path):
    frames = [media.scene_jpeg(320, 240, index=i, **kw) for i, (_, kw) in enumerate(INTEROP_FRAMES)]
    frames.append(media.noise_jpeg(640, 480, 90))            # > 200 KB
    # RFC 4571 framing (16-bit length + RTP packet) lets rtpstreamdepay read them from a file
    (tmp_path / "in.rtp").write_bytes(b"".join(struct.pack("!H", len(p)) + p
                                               for p in _rtp_packets(frames)))
    command = ["gst-launch-1.0", "-q", "filesrc", f"location={tmp_path / 'in.rtp'}", "!",
               "application/x-rtp-stream,media=video,clock-rate=90000,encoding-name=JPEG,payload=26",
               "!", "rtpstreamdepay", "!", "rtpjpegdepay", "!", "multifilesink",
               f"location={tmp_path / 'out%05d.jpg'}"]
    result = subprocess.run(command, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    outputs = sorted(glob.glob(str(tmp_path / "out*.jpg")))
    assert len(outputs) == len(frames)
    for frame, path in zip(frames, outputs):
        with open(path, "rb") as f:
            assert media.pixels(f.read()) == media.pixels(frame)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_rtpdec_jpeg_decodes_our_packets(tmp_path):
    frames = [media.scene_jpeg(320, 240, index=i, **kw) for i, (_, kw) in enumerate(INTEROP_FRAMES)]
    wanted = {media.pixels(f) for f in frames}
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    (tmp_path / "in.sdp").write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\n")
    out = tmp_path / "out.mjpeg"
    count = 8
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-protocol_whitelist",
         "file,udp,rtp", "-i", str(tmp_path / "in.sdp"), "-c", "copy", "-frames:v", str(count),
         "-f", "mjpeg", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + 30
        round_ = 0
        # ffmpeg binds its port some time after it starts: keep sending the frames, as a live
        # stream would, until it has written enough of them.
        while ffmpeg.poll() is None and time.monotonic() < deadline:
            for packet in _rtp_packets(frames, seq0=round_ * 64, ts0=round_ * 4 * 4500):
                sender.sendto(packet, ("127.0.0.1", port))
            round_ += 1
            try:
                ffmpeg.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        assert ffmpeg.poll() == 0, ffmpeg.stderr.read() if ffmpeg.poll() is not None else "timeout"
    finally:
        sender.close()
        if ffmpeg.poll() is None:
            ffmpeg.kill()
        ffmpeg.wait()
        ffmpeg.stderr.close()
    stream_ = VideoStream(out)
    assert stream_.frame_count == count
    for i in range(count):
        assert media.pixels(stream_.frame(i)) in wanted


def test_new_timeline_discards_the_half_built_frame_without_counting_it():
    """A seek (RtpReceivePath): the frame cut in half by it is neither returned nor dropped,
    a frame of the new timeline with the same timestamp is not taken for a duplicate, and
    the counters go on."""
    frame = VideoStream(media.MOVIE).frame(0)
    parts = packetize(frame, 400)
    assert len(parts) > 2
    depack = JpegDepacketizer()
    for i, payload in enumerate(parts):
        got = depack.push(payload, 9000, i == len(parts) - 1)
    assert got is not None and depack.frames_completed == 1
    depack.push(parts[0], 18000, False)          # the next frame's first fragment, then a seek
    depack.new_timeline()
    for i, payload in enumerate(parts):         # the new timeline starts at the same timestamp
        got = depack.push(payload, 9000, i == len(parts) - 1)
    assert got is not None and media.pixels(got) == media.pixels(frame)
    assert (depack.frames_completed, depack.frames_dropped, depack.duplicates) == (2, 0, 0)
