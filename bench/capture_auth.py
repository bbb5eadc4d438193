"""Capture the Authorization requests ffmpeg and GStreamer send in answer to our 401.

`python3 bench/capture_auth.py > tests/wire/rtsp-auth-requests.txt` (then restore the header
comment): a stub RTSP server on loopback answers DESCRIBE with 401 + our challenge and records
the retried request.
"""
import os
import socket, subprocess, sys, threading
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from RtspAuth import Authenticator, UserDatabase
from RtspMessage import Headers, Request, Response
from RtspParser import RtspParser

def serve(sock, auth, out):
    conn, _ = sock.accept()
    conn.settimeout(10)
    parser = RtspParser()
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for req in parser.feed(data):
                if not isinstance(req, Request):
                    continue
                h = Headers(); h.set("CSeq", req.headers.get("CSeq"))
                if req.method == "OPTIONS":
                    h.set("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN")
                    conn.sendall(Response(200, h).serialize()); continue
                if "Authorization" not in req.headers:
                    for v in auth.challenges(): h.add("WWW-Authenticate", v)
                    conn.sendall(Response(401, h).serialize()); continue
                out.append(req.serialize())
                conn.sendall(Response(404, h).serialize())
                return
    finally:
        conn.close()

def run(cmd_for_port, qop, basic):
    auth = Authenticator(UserDatabase.parse("alice:s3cr:et"), secret=b"k" * 32, qop=qop, allow_basic=basic,
                         clock=lambda: 1700000000.0)
    sock = socket.create_server(("127.0.0.1", 0)); port = sock.getsockname()[1]
    out = []
    t = threading.Thread(target=serve, args=(sock, auth, out)); t.start()
    subprocess.run(cmd_for_port(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    t.join(12); sock.close()
    return out

ff = lambda p: ["ffmpeg", "-v", "error", "-i", f"rtsp://alice:s3cr%3Aet@127.0.0.1:{p}/movie.Mjpeg", "-f", "null", "-"]
gst = lambda p: ["gst-launch-1.0", "-q", "rtspsrc", f"location=rtsp://127.0.0.1:{p}/movie.Mjpeg", "user-id=alice",
                 "user-pw=s3cr:et", "!", "fakesink"]
for name, cmd in (("ffmpeg", ff), ("gstreamer", gst)):
    for qop in (True, False):
        for basic in (False, True):
            got = run(cmd, qop, basic)
            tag = f"{name} qop={'auth' if qop else 'none'} basic={'offered' if basic else 'no'}"
            for msg in got:
                sys.stdout.write(f"##### {tag}\n")
                sys.stdout.write(msg.decode())
