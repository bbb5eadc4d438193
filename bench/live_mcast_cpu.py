#!/usr/bin/env python3
"""Server CPU per second for 1, 10, 100 viewers of one live 640x480 20 fps stream, unicast vs
multicast, ours and gst-rtsp-server (shared media; its multicast address pool), side by side.

    python3 bench/live_mcast_cpu.py [--viewers 1,10,100] [--window 5] [--quick]

Everything runs inside a network namespace made for the run (loopback only, 224.0.0.0/4 on
lo; deleted at the end): multicast never leaves the machine.  Needs root (ip netns).

Our server serves ``--live cam=python3 tests/live_feeder.py big.Mjpeg --fps 20`` (40 frames of
640x480 from tools/make_movie.py, looped; the feeder is a separate process, not counted);
gst-rtsp-server (bench/_gst_server.py) pushes the same JPEGs from memory through appsrc.  A
load process in the namespace sets up N viewers: unicast, N sessions with their own UDP
ports, all drained; multicast, N RTSP sessions and one joined socket per group (N hosts on a
real network would each have one).  Once every viewer plays, the server process's CPU
(/proc/PID/stat utime+stime) is sampled over --window seconds.  Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

if sys.platform != "linux":  # (mypy --platform win32/darwin then skips the rest)
    raise SystemExit("bench/live_mcast_cpu.py is Linux only: it uses a network namespace and /proc")

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)
GST_PYTHON = "/usr/bin/python3"
RANGE = "239.255.42.0/24"
GST_RANGE = "239.255.43.1-239.255.43.254"


# ----------------------------------------------------------------------------- namespace
def ip(*args):
    return subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)


def make_namespace() -> str:
    name = f"bench{uuid.uuid4().hex[:8]}"
    for args in (["netns", "add", name], ["-n", name, "link", "set", "lo", "up"],
                 ["-n", name, "link", "set", "lo", "multicast", "on"],
                 ["-n", name, "route", "add", "224.0.0.0/4", "dev", "lo"]):
        result = ip(*args)
        if result.returncode != 0:
            raise SystemExit(f"cannot make a network namespace ({' '.join(args)}): {result.stderr.strip()}")
    return name


def inside(ns, argv):
    return ["ip", "netns", "exec", ns, *argv]


# ----------------------------------------------------------------------------- load (in the namespace)
def load(url: str, transport: str, sessions: int, hold: float) -> dict:
    from _rtsp import Conn, control_url, udp_pair
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    first = Conn(host, port)
    status, hdrs, body, _ = first.request("DESCRIBE", url, {"Accept": "application/sdp"})
    if status != 200:
        return {"error": f"DESCRIBE {status}"}
    setup_url = control_url(url, body, hdrs.get("content-base"))
    first.close()
    conns: list = []
    socks: list = []
    groups: dict[tuple[str, int], socket.socket | None] = {}
    for i in range(sessions):
        conn = Conn(host, port)
        conns.append(conn)
        if transport == "udp":
            rtp, rtcp = udp_pair(host, 4 << 20)
            rtp.setblocking(False)
            rtcp.setblocking(False)
            socks.append(rtp)
            socks.append(rtcp)
            spec = f"RTP/AVP;unicast;client_port={rtp.getsockname()[1]}-{rtp.getsockname()[1] + 1}"
        else:
            spec = "RTP/AVP;multicast"
        st, h, _, _ = conn.request("SETUP", setup_url, {"Transport": spec})
        if st != 200:
            return {"error": f"SETUP {i}: {st}"}
        if transport == "multicast":
            fields = dict(f.split("=", 1) for f in h["transport"].split(";") if "=" in f)
            group, rtp_port = fields["destination"], int(fields["port"].split("-")[0])
            if (group, rtp_port) not in groups:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_REUSEPORT", 15), 1)  # Linux only
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                try:
                    sock.bind((group, rtp_port))
                except OSError:
                    # gst-rtsp-server binds 0.0.0.0:port itself without SO_REUSEADDR, so no
                    # receiver on its host can bind the group's port: it is measured unreceived
                    sock.close()
                    groups[(group, rtp_port)] = None
                    continue
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1")))
                sock.setblocking(False)
                groups[(group, rtp_port)] = sock
                socks.append(sock)
        st, _, _, _ = conn.request("PLAY", url, {"Range": "npt=0.000-"})
        if st != 200:
            return {"error": f"PLAY {i}: {st}"}
    print("READY", flush=True)
    packets = 0
    start = time.monotonic()
    end = start + hold
    stdin = sys.stdin
    while time.monotonic() < end:
        ready, _, _ = select.select(socks + [stdin], [], [], 0.2)
        if stdin in ready and not os.read(stdin.fileno(), 1):
            break  # the driver closed our stdin: its window is over
        for sock in ready:
            if sock is stdin:
                continue
            for _ in range(512):
                try:
                    sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                packets += 1
    for conn in conns:
        try:
            conn.send_only("TEARDOWN", url)
        except OSError:
            pass
        conn.close()
    if groups and all(g is None for g in groups.values()):
        return {"packets_per_s": "n/a (port taken by the server)", "groups": len(groups)}
    return {"packets_per_s": round(packets / (time.monotonic() - start)), "groups": len(groups)}


# ----------------------------------------------------------------------------- driver
def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / getattr(os, "sysconf")("SC_CLK_TCK")  # Linux (/proc)


def udp_sends(ns: str) -> int:
    """The namespace's UDP sends (/proc/net/snmp OutDatagrams: one per send call, so a GSO
    send of many packets counts once); only the server sends during the window."""
    out = subprocess.run(inside(ns, ["cat", "/proc/net/snmp"]), stdout=subprocess.PIPE, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("OutDatagrams")])


def wait_line(proc, needle, timeout, stream="stdout"):
    deadline = time.monotonic() + timeout
    pipe = getattr(proc, stream)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            continue
        line = pipe.readline()
        if not line:
            raise RuntimeError(f"{proc.args[3:6]} ended before {needle!r}")
        if needle in line:
            return line
    raise TimeoutError(f"no {needle!r} from {proc.args[3:6]} within {timeout} s")


def start_server(ns, kind, transport, folder):
    if kind == "ours":
        feeder = f"{sys.executable} {os.path.join(ROOT, 'tests', 'live_feeder.py')} {folder}/big.Mjpeg --fps 20"
        argv = [sys.executable, os.path.join(ROOT, "Server.py"), "8554", "--host", "127.0.0.1", "--media-dir", folder,
                "--multicast", RANGE, "--live", f"cam={feeder}"]
        log_path = os.path.join(folder, "server.log")
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the server
            proc = subprocess.Popen(inside(ns, argv), stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 20
        while "live cam: started" not in open(log_path).read():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"our server did not start: {open(log_path).read()[-2000:]}")
            time.sleep(0.05)
        url = "rtsp://127.0.0.1:8554/cam"  # the load's DESCRIBE waits for the source's first picture
    else:
        argv = [GST_PYTHON, os.path.join(BENCH, "_gst_server.py"), "--frames-dir", f"{folder}/frames",
                "--fps", "20", "--port", "8555"]
        if transport == "multicast":
            argv += ["--multicast", GST_RANGE]
        proc = subprocess.Popen(inside(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        wait_line(proc, "PORT", 30)
        url = "rtsp://127.0.0.1:8555/bench"
    return proc, url


def measure(ns, kind, transport, viewers, window, folder):
    server, url = start_server(ns, kind, transport, folder)
    try:
        loader = subprocess.Popen(inside(ns, [sys.executable, os.path.abspath(__file__), "--load", url,
                                              "--transport", transport, "--sessions", str(viewers),
                                              "--hold", str(window + 60)]),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_line(loader, "READY", 60 + viewers)
        flowing = udp_sends(ns) + 20  # the window opens once the stream is under way (20 sends)
        deadline = time.monotonic() + 15
        while udp_sends(ns) < flowing:
            if time.monotonic() > deadline:  # (gst-rtsp-server multicast with one viewer, here)
                loader.stdin.close()
                loader.wait(timeout=30 + viewers)
                return {"error": "nothing sent within 15 s of every PLAY"}
            time.sleep(0.05)
        c0, t0, u0 = cpu_seconds(server.pid), time.monotonic(), udp_sends(ns)
        time.sleep(window)  # the measurement window
        c1, t1, u1 = cpu_seconds(server.pid), time.monotonic(), udp_sends(ns)
        loader.stdin.close()  # the load stops and tears its sessions down
        out = loader.stdout.read()
        loader.wait(timeout=30 + viewers)
        result = json.loads(out.strip().splitlines()[-1])
        result.update(cpu_per_s=round((c1 - c0) / (t1 - t0), 4), udp_sends_per_s=round((u1 - u0) / (t1 - t0)))
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--viewers", default="1,10,100")
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="1 and 10 viewers, 1 s windows, ours only")
    p.add_argument("--load")
    p.add_argument("--transport", default="udp")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--hold", type=float, default=5.0)
    args = p.parse_args()
    if args.load:
        print(json.dumps(load(args.load, args.transport, args.sessions, args.hold)), flush=True)
        return 0
    if getattr(os, "geteuid", lambda: -1)() != 0 or shutil.which("ip") is None:
        import _common
        print("# Figure 9: server CPU per second, one live stream, unicast vs multicast")
        print(f"# machine: {_common.machine()}")
        print("server  transport  viewers  cpu_s_per_s")
        print("# not measured: needs root and ip(8) for a network namespace (multicast stays off the host)")
        return 0
    viewers = [1, 10] if args.quick else [int(v) for v in args.viewers.split(",")]
    window = 1.0 if args.quick else args.window
    kinds = ["ours"] if args.quick or not os.path.exists(GST_PYTHON) else ["ours", "gst"]
    folder = tempfile.mkdtemp(prefix="livebench")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_movie.py"), "--size", "640x480",
                    "--frames", "40", "-o", f"{folder}/big.Mjpeg"], check=True, stdout=subprocess.DEVNULL)
    from VideoStream import VideoStream
    stream = VideoStream(f"{folder}/big.Mjpeg")
    os.makedirs(f"{folder}/frames")
    for i in range(stream.frame_count):
        with open(f"{folder}/frames/{i:05d}.jpg", "wb") as f:
            f.write(stream.frame(i))
    size = sum(len(stream.frame(i)) for i in range(stream.frame_count)) // stream.frame_count
    ns = make_namespace()
    rows = []
    try:
        for n in viewers:  # side by side: every server and transport at each N before the next N
            for kind in kinds:
                for transport in ("udp", "multicast"):
                    r = measure(ns, kind, transport, n, window, folder)
                    rows.append((kind, transport, n, r))
                    print(f"# {kind} {transport} N={n}: {r}", file=sys.stderr, flush=True)
    finally:
        ip("netns", "del", ns)
        shutil.rmtree(folder, ignore_errors=True)
    import _common
    table = [{"server": "ours" if kind == "ours" else "gst-rtsp-server shared",
              "transport": "unicast" if transport == "udp" else "multicast", "viewers": n,
              "cpu_s_per_s": r.get("cpu_per_s", "-"), "udp_sends_per_s": r.get("udp_sends_per_s"),
              "packets_per_s_received": r.get("packets_per_s", r.get("error"))}
             for kind, transport, n, r in rows]
    _common.emit(f"Figure 9: server CPU per second, one live 640x480 20 fps stream ({size} B/frame), "
                 f"unicast vs multicast, window {window:g} s", table,
                 ["server", "transport", "viewers", "cpu_s_per_s", "udp_sends_per_s", "packets_per_s_received"],
                 False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
