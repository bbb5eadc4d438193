"""A GStreamer RTSP server (gst-rtsp-server) serving RTP/JPEG, a real peer for the player's tests.

Run with the system interpreter that has python3-gi (not the project's python3):

    /usr/bin/python3 tests/gst_rtsp_server.py --frames 100 --width 320 --height 240

It prints "PORT <n>" once listening on 127.0.0.1 (port 0 = any free one), serves
rtsp://127.0.0.1:<n>/test and runs until killed. --pattern snow --quality 95 at 1280x720 gives
frames over 64 KB. --report-rtcp prints one line per RTCP report received from a client
("RTCP-RR ssrc=... fraction=... lost=... exthighestseq=... jitter=... lsr=... dlsr=...") from the
rtpbin session's source statistics, so a test can check that its receiver reports arrived.
--auth USER:PASSWORD requires RTSP authentication (gst-rtsp-server's RTSPAuth; --auth-method
digest (default) or basic), with a role that may access and construct the /test media.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def print_rr(session, source) -> None:
    """on-ssrc-active: a source sent RTCP; print the report block it gave about our stream."""
    stats = source.get_property("stats")
    if stats is None or not stats.get_value("have-rb") or stats.get_value("internal"):
        return
    fields = ["ssrc", "rb-fractionlost", "rb-packetslost", "rb-exthighestseq", "rb-jitter", "rb-lsr",
              "rb-dlsr", "rb-round-trip"]
    values = " ".join(f"{name.replace('rb-', '')}={stats.get_value(name)}" for name in fields)
    print(f"RTCP-RR {values}", flush=True)


def watch_rtcp(factory, media) -> None:
    def prepared(media) -> None:
        for i in range(media.n_streams()):
            session = media.get_stream(i).get_rtpsession()
            if session is not None:
                session.connect("on-ssrc-active", print_rr)
    media.connect("prepared", prepared)


def require_auth(server, factory, credentials: str, method: str) -> None:
    """Only USER (with PASSWORD) may open /test, by Digest or Basic (gst-rtsp-server >= 1.16)."""
    user, _, password = credentials.partition(":")
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    if method == "digest":
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(Gst.Structure.new_from_string(
        "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    factory.set_permissions(permissions)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--pattern", default="smpte")
    p.add_argument("--quality", type=int, default=85)
    p.add_argument("--report-rtcp", action="store_true")
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--auth-method", choices=("digest", "basic"), default="digest")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc num-buffers={args.frames} pattern={args.pattern} "
        f"! video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1 "
        f"! jpegenc quality={args.quality} ! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(False)
    if args.report_rtcp:
        factory.connect("media-configure", watch_rtcp)
    if args.auth:
        require_auth(server, factory, args.auth, args.auth_method)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print("could not attach the RTSP server", file=sys.stderr)
        return 1
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
