#!/usr/bin/env python3
"""Figure 1: RtpPacket serialize + parse per packet (1400-byte payload), beside baselines.

Columns, all measured in this one run (ratios are what to compare; absolute times on a shared
machine vary by +-30%):
  ours        RtpPacket(...).serialize() then RtpPacket.parse(data)   (RtpPacket.py)
  struct      a precompiled struct.Struct("!BBHII") pack + payload concat, unpack_from + slice
  lab         the course lab's byte-by-byte header (bytearray, shifts per field) + per-field parse
  aiortc      aiortc.rtp.RtpPacket(...).serialize() + RtpPacket.parse()  (only if aiortc imports;
              it is never a project requirement: `python3 -m venv --system-site-packages V &&
              V/bin/pip install aiortc && V/bin/python bench/rtp_packet.py`)

    python3 bench/rtp_packet.py            # ~10 s
    python3 bench/rtp_packet.py --quick    # ~1 s
"""

from __future__ import annotations

import struct

import _common
from RtpPacket import RtpPacket

PAYLOAD = bytes(range(256)) * 5 + bytes(120)  # 1400 bytes
assert len(PAYLOAD) == 1400
HDR = struct.Struct("!BBHII")


def ours(n: int) -> None:
    payload = PAYLOAD
    parse = RtpPacket.parse
    for i in range(n):
        data = RtpPacket(26, i & 0xFFFF, 90000, 0x12345678, payload, True).serialize()
        p = parse(data)
    assert p.payload == payload and p.marker


def plain_struct(n: int) -> None:
    payload = PAYLOAD
    pack, unpack_from = HDR.pack, HDR.unpack_from
    for i in range(n):
        data = pack(0x80, 0x80 | 26, i & 0xFFFF, 90000, 0x12345678) + payload
        first, second, seq, ts, ssrc = unpack_from(data)
        body = data[12:]
    assert body == payload


def lab_style(n: int) -> None:
    """The lab's RtpPacket.encode()/decode(): a bytearray header filled field by field."""
    payload = PAYLOAD
    for i in range(n):
        header = bytearray(12)
        version, padding, extension, cc, marker, pt, seqnum, ts, ssrc = 2, 0, 0, 0, 1, 26, i & 0xFFFF, 90000, 0x12345678
        header[0] = (version << 6) | (padding << 5) | (extension << 4) | cc
        header[1] = (marker << 7) | pt
        header[2] = (seqnum >> 8) & 255
        header[3] = seqnum & 255
        header[4] = (ts >> 24) & 255
        header[5] = (ts >> 16) & 255
        header[6] = (ts >> 8) & 255
        header[7] = ts & 255
        header[8] = (ssrc >> 24) & 255
        header[9] = (ssrc >> 16) & 255
        header[10] = (ssrc >> 8) & 255
        header[11] = ssrc & 255
        data = bytes(header) + payload
        h = bytearray(data[:12])
        body = data[12:]
        v = int(h[0] >> 6)
        seq = int(h[2] << 8 | h[3])
        stamp = int(h[4] << 24 | h[5] << 16 | h[6] << 8 | h[7])
        pt = h[1] & 127
    assert body == payload and v == 2 and stamp == 90000


def aiortc_fn():
    try:
        from aiortc.rtp import RtpPacket as APacket
    except ImportError as exc:
        return None, f"aiortc not installed ({exc.name}); column skipped"
    import aiortc

    def run(n: int) -> None:
        payload = PAYLOAD
        parse = APacket.parse
        for i in range(n):
            data = APacket(payload_type=26, marker=1, sequence_number=i & 0xFFFF, timestamp=90000,
                           ssrc=0x12345678, payload=payload).serialize()
            p = parse(data)
        assert p.payload == payload
    return run, f"aiortc {aiortc.__version__}"


def main() -> None:
    args = _common.parser(__doc__.split("\n")[0]).parse_args()
    number, repeat = (20000, 3) if args.quick else (200000, 7)
    cases = [("ours (RtpPacket)", ours), ("plain struct", plain_struct), ("lab byte-by-byte", lab_style)]
    afn, anote = aiortc_fn()
    if afn:
        cases.append(("aiortc", afn))
    rows = []
    times = {}
    for name, fn in cases:
        fn(100)  # warm up
        times[name] = _common.best_of(fn, number, repeat)
    base = times["plain struct"]
    for name, _ in cases:
        us = times[name] * 1e6
        rows.append({"implementation": name, "us_per_packet": round(us, 3),
                     "vs_struct": round(times[name] / base, 2),
                     "ours_vs_this": round(times["ours (RtpPacket)"] / times[name], 2)})
    extra = {"payload": "1400 bytes, serialize+parse per packet, best of %d x %d" % (repeat, number),
             "aiortc": anote, "target": "ours <= 0.6 us"}
    _common.emit("Figure 1: RTP packet serialize+parse", rows,
                 ["implementation", "us_per_packet", "vs_struct", "ours_vs_this"], args.json, extra)


if __name__ == "__main__":
    main()
