#!/usr/bin/python3
"""gst-rtsp-server streaming a folder of JPEG frames as RTP/JPEG, the comparison server.

Run with the system interpreter that has python3-gi (not the project's python3):

    /usr/bin/python3 bench/_gst_server.py --frames-dir DIR/frames --fps 20

appsrc (frames DIR/%05d.jpg, looped, pts k/fps) ! jpegparse ! rtpjpegpay.  With --multicast
FIRST-LAST, multicast only, groups from that address pool (gst-rtsp-server's example). Serves rtsp://127.0.0.1:<port>/bench, shared media (payloaded once, sent to every client, as
our server shares packetized frames), and prints "PORT <n> PID <pid>" once listening.
"""

import argparse
import itertools
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames-dir", required=True)
    p.add_argument("--fps", type=int, default=20)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--multicast", metavar="FIRST-LAST",
                   help="serve multicast only, groups from this address range (the address pool example)")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # multifilesrc ! jpegparse leaves frames untimestamped in GStreamer 1.22 (sent as fast as
    # possible), so an appsrc pushes the same files with pts = k / fps; the RTSP server's UDP
    # sink paces them on the clock.
    names = sorted(n for n in os.listdir(args.frames_dir) if n.endswith(".jpg"))
    frames = []
    for name in names:
        with open(os.path.join(args.frames_dir, name), "rb") as f:
            frames.append(f.read())
    duration = Gst.SECOND // args.fps
    factory.set_launch(
        f"( appsrc name=src format=time is-live=false block=false "
        f"caps=image/jpeg,framerate={args.fps}/1 ! jpegparse ! rtpjpegpay name=pay0 pt=26 mtu=1412 )")

    def need_data(src, _length, counter):
        k = next(counter)
        buf = Gst.Buffer.new_wrapped(frames[k % len(frames)])
        buf.pts = k * duration
        buf.duration = duration
        src.emit("push-buffer", buf)

    def configure(_factory, media):
        # The frame count starts at 0 for every media.  The factory builds a new media whenever
        # the last client of the previous one has gone (every SETUP/PLAY/TEARDOWN probe does
        # that), and its running time starts at 0: a count carried over from earlier media
        # stamped the first frame k/fps seconds in the future, so after 200 probes the sink held
        # everything back ~10 s and the 100 "streaming" clients received nothing.
        src = media.get_element().get_by_name_recurse_up("src")
        src.connect("need-data", need_data, itertools.count())
    factory.connect("media-configure", configure)
    factory.set_shared(True)
    if args.multicast:
        first, last = args.multicast.split("-")
        pool = GstRtspServer.RTSPAddressPool()
        pool.add_range(first, last, 5000, 5010, 1)
        factory.set_address_pool(pool)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP_MCAST)
    server.get_mount_points().add_factory("/bench", factory)
    if server.attach(None) == 0:
        print("could not attach the RTSP server", file=sys.stderr)
        return 1
    print(f"PORT {server.get_bound_port()} PID {os.getpid()}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
