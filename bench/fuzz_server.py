"""Fuzz a running server: thousands of bad requests while a good client streams.

    python3 bench/fuzz_server.py --requests 20000 --workers 2        # the long run
    python3 bench/fuzz_server.py --pure 20000                         # long hypothesis-free parser fuzz

Starts `python3 Server.py 0 --loop` as a subprocess on loopback, then
* `--workers` fuzzing processes open connection after connection, each sending 1-3 random,
  mutated (real captured requests), truncated, oversized or binary messages split at random
  byte boundaries, then a sentinel OPTIONS, then half-close; they read every reply until the
  server closes.  A connection that is not closed within 5 s is a hang.
* a well-behaved client plays the movie over UDP meanwhile and sends GET_PARAMETER every
  100 ms, timing each reply, and checks that no RTP sequence number is missing.
Prints a JSON report: requests fuzzed, replies by status, 500s, hangs, server crashes,
max / p99 reply latency under attack, RTP packets lost, server threads/fds before and after.
Exit status 0 when every property held.  tests/test_hardening.py runs a reduced version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from RtspMessage import Headers, Request, Response  # noqa: E402
from RtspParser import RtspParser

WIRE = ROOT / "tests" / "wire"
SENTINEL_CSEQ = 987654
SENTINEL = f"OPTIONS * RTSP/1.0\r\nCSeq: {SENTINEL_CSEQ}\r\n\r\n".encode()


# --------------------------------------------------------------------------- server process

class ServerProcess:
    """`python3 Server.py 0` on 127.0.0.1 with its log in a file (no pipe to fill up)."""

    def __init__(self, *extra: str, media_dir: Path = ROOT, log_level: str = "INFO") -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="fuzz-server-", suffix=".log", delete=False)
        with socket.socket() as probe:  # a free port (loopback only; the race is harmless here)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "Server.py"), str(port), "--host", "127.0.0.1", "--media-dir",
             str(media_dir), "--log-level", log_level, *extra], stdout=self.log, stderr=subprocess.STDOUT,
            cwd=str(ROOT))
        self.port = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                self.port = port
                break
            except OSError:
                time.sleep(0.02)
        if not self.port:
            self.stop()
            raise RuntimeError(f"server did not start: {self.text()[-2000:]}")

    def text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, timeout: float = 5.0) -> float:
        """Ctrl-C; seconds until the process exited (inf if it did not)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return float("inf")
        return time.monotonic() - start

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def cleanup(self) -> None:
        self.stop()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def settle(read, target: int, timeout: float = 5.0) -> int:
    """Poll read() until it is <= target or the timeout; return the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


# --------------------------------------------------------------------------- fuzz inputs

def seed_messages() -> list[bytes]:
    out = []
    for name in ("rtsp-dialogue-messages.txt", "rtsp-auth-requests.txt"):
        text = (WIRE / name).read_text()
        for block in text.split("##### ")[1:]:
            tag, _, body = block.partition("\n")
            if tag.startswith("S->C"):
                continue
            head, sep, rest = body.rstrip("\n").partition("\n\n")
            out.append((head.replace("\n", "\r\n") + "\r\n\r\n" + (rest.replace("\n", "\r\n") if sep else "")).encode())
    out += [b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25000",
            b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456",
            b"DESCRIBE rtsp://127.0.0.1/movie.Mjpeg RTSP/1.0\r\nCSeq: 3\r\n\r\n"]
    return out


SPECIAL = [b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b";", b",", b"=", b'"', b"-", b":", b"$", b" ", b"\t", b"%",
           b"\xc3", b"../", b"..%2f", b"%00", b"0", b"-1", b"65536", b"4294967296", b"99999999999999999999"]


def mutate(rng: random.Random, data: bytes, ops: int) -> bytes:
    buf = bytearray(data)
    for _ in range(ops):
        op = rng.randrange(6)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 32)]
        elif op == 3:
            buf[pos:pos] = buf[pos:pos + rng.randint(1, 64)] * rng.randint(1, 8)
        else:
            buf[pos:pos] = rng.choice(SPECIAL)
    return bytes(buf)


def fuzz_message(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    """(kind, bytes) of one bad (or occasionally good) message."""
    seed = rng.choice(seeds)
    kind = rng.choices(["mutated", "random", "truncated", "oversized", "binary", "valid"],
                       [50, 10, 15, 10, 10, 5])[0]
    if kind == "mutated":
        return kind, mutate(rng, seed, rng.randint(1, 5))
    if kind == "random":
        return kind, rng.randbytes(rng.randint(1, 400))
    if kind == "truncated":
        return kind, seed[:rng.randint(1, max(1, len(seed) - 1))]
    if kind == "binary":
        return kind, rng.choice([
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(60),  # TLS ClientHello
            b"\x80\x1a" + rng.randbytes(rng.randint(10, 200)),                   # stray RTP
            b"$" + bytes([rng.randrange(256)]) + struct.pack("!H", rng.randint(0, 300)) + rng.randbytes(300),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            bytes(rng.randint(1, 200)),                                            # NULs
        ])
    if kind == "oversized":
        return kind, rng.choice([
            b"DESCRIBE rtsp://127.0.0.1/" + b"A" * rng.randint(4000, 20000) + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\nX-Long: " + b"b" * rng.randint(4000, 20000) + b"\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n",
            b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 70000\r\n\r\n" + b"p" * 70000,
            b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 99999999999\r\n\r\n",
            b"\r\n" * 5000,
            b"OPTIONS * RTSP/1.0\r\nCSeq: 6\r\nX: a\r\n" + b" folded\r\n" * 3000 + b"\r\n",
        ])
    return kind, seed


def split_random(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 5)))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def fuzz_connection(port: int, rng: random.Random, seeds: list[bytes], timeout: float = 5.0) -> dict:
    """One connection: 1-3 fuzz messages at random splits, the sentinel, half-close, read to EOF."""
    kinds = []
    blob = b""
    for _ in range(rng.choices([1, 2, 3], [70, 20, 10])[0]):
        kind, message = fuzz_message(rng, seeds)
        kinds.append(kind)
        blob += message
    result: dict[str, Any] = {"kinds": kinds, "messages": len(kinds), "statuses": [], "sentinel": False, "outcome": ""}
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            for chunk in split_random(rng, blob) + [SENTINEL]:
                sock.sendall(chunk)
                if rng.random() < 0.1:
                    time.sleep(0.001)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server already closed (or reset) on garbage: allowed
        parser = RtspParser(role="client")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result["outcome"] = "hang"
                break
            ready, _, _ = select.select([sock], [], [], remaining)
            if not ready:
                continue
            try:
                data = sock.recv(65536)
            except OSError:  # reset: closed with our garbage unread
                data = b""
            if not data:
                result["outcome"] = "closed"
                break
            for event in parser.feed(data):
                if isinstance(event, Response):
                    result["statuses"].append(event.status)
                    if event.cseq == SENTINEL_CSEQ and event.status == 200:
                        result["sentinel"] = True
    finally:
        sock.close()
    return result


def fuzz_worker(port: int, count: int, seed: int) -> dict:
    """Fuzz `count` messages' worth of connections; a summary dict."""
    rng = random.Random(seed)
    seeds = seed_messages()
    summary: dict[str, Any] = {"requests": 0, "connections": 0, "statuses": {}, "sentinel_answered": 0, "hangs": 0,
               "server_errors": 0, "by_kind": {}, "examples_500": [], "examples_hang": []}
    while summary["requests"] < count:
        state = rng.getstate()
        result = fuzz_connection(port, rng, seeds)
        summary["connections"] += 1
        summary["requests"] += result["messages"]
        for kind in result["kinds"]:
            summary["by_kind"][kind] = summary["by_kind"].get(kind, 0) + 1
        for status in result["statuses"]:
            summary["statuses"][str(status)] = summary["statuses"].get(str(status), 0) + 1
        summary["sentinel_answered"] += result["sentinel"]
        if result["outcome"] == "hang":
            summary["hangs"] += 1
            if len(summary["examples_hang"]) < 3:
                summary["examples_hang"].append(_replay(state, seeds))
        if any(s >= 500 and s not in (501, 503, 505) for s in result["statuses"]):
            summary["server_errors"] += 1
            if len(summary["examples_500"]) < 3:
                summary["examples_500"].append(_replay(state, seeds))
    return summary


def _replay(state, seeds) -> str:
    """The bytes a connection sent, regenerated from the RNG state (for the report)."""
    rng = random.Random()
    rng.setstate(state)
    blob = b"".join(fuzz_message(rng, seeds)[1] for _ in range(rng.choices([1, 2, 3], [70, 20, 10])[0]))
    return repr(blob[:300])


def merge(summaries: list[dict]) -> dict:
    total: dict[str, Any] = {"requests": 0, "connections": 0, "statuses": {}, "sentinel_answered": 0, "hangs": 0,
             "server_errors": 0, "by_kind": {}, "examples_500": [], "examples_hang": []}
    for s in summaries:
        for key in ("requests", "connections", "sentinel_answered", "hangs", "server_errors"):
            total[key] += s[key]
        for key in ("statuses", "by_kind"):
            for k, v in s[key].items():
                total[key][k] = total[key].get(k, 0) + v
        total["examples_500"] += s["examples_500"]
        total["examples_hang"] += s["examples_hang"]
    total["statuses"] = dict(sorted(total["statuses"].items()))
    return total


# --------------------------------------------------------------------------- the good client

class GoodClient:
    """Plays movie.Mjpeg over UDP and times a GET_PARAMETER every `interval` seconds."""

    def __init__(self, port: int, name: str = "movie.Mjpeg") -> None:
        from rtsp_tools import RtpReceiver, RtspConn
        self.url = f"rtsp://127.0.0.1:{port}/{name}"
        self.receiver = RtpReceiver()
        self.conn = RtspConn(port, timeout=5.0)
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.seqs: list[int] = []
        self.marker_frames = 0
        self.session: str | None = None

    def _timed(self, method: str, uri: str, headers=None) -> Response:
        start = time.perf_counter()
        reply = self.conn.request(method, uri, headers)
        self.latencies.append(time.perf_counter() - start)
        self.statuses.append(reply.status)
        return reply

    def start(self) -> None:
        self._timed("DESCRIBE", self.url)
        reply = self._timed("SETUP", self.url + "/trackID=0",
                            {"Transport": f"RTP/AVP;unicast;client_port={self.receiver.port}-{self.receiver.port + 1}"})
        self.session = reply.headers["Session"].split(";")[0]
        self._timed("PLAY", self.url + "/", {"Session": self.session, "Range": "npt=0-"})

    def _drain(self) -> None:
        from RtpPacket import RtpPacket
        while True:
            ready, _, _ = select.select([self.receiver.rtp], [], [], 0)
            if not ready:
                return
            packet = RtpPacket.parse(self.receiver.rtp.recv(65536))
            self.seqs.append(packet.sequence_number)
            self.marker_frames += packet.marker

    def run_for(self, seconds: float, interval: float = 0.1) -> None:
        end = time.monotonic() + seconds
        next_ping = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_ping:
                self._timed("GET_PARAMETER", self.url + "/", {"Session": self.session})
                next_ping = now + interval
            ready, _, _ = select.select([self.receiver.rtp], [], [], max(0.0, min(next_ping, end) - time.monotonic()))
            if ready:
                self._drain()

    def stop(self) -> None:
        try:
            self._timed("TEARDOWN", self.url + "/", {"Session": self.session})
            time.sleep(0.05)
            self._drain()
        finally:
            self.conn.close()
            self.receiver.close()

    def lost_packets(self) -> int:
        """RTP packets missing from the received sequence (16-bit wrap aware)."""
        if not self.seqs:
            return -1
        expected = 1
        for a, b in zip(self.seqs, self.seqs[1:]):
            expected += (b - a) & 0xFFFF
        return expected - len(set(self.seqs))

    def report(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "replies": len(lat), "non_200": [s for s in self.statuses if s != 200],
            "max_latency_ms": round(1000 * lat[-1], 2) if lat else None,
            "p99_latency_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
            "median_latency_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
            "rtp_packets": len(self.seqs), "rtp_lost": self.lost_packets(), "frames": self.marker_frames,
        }


# --------------------------------------------------------------------------- the run

def run(requests: int, workers: int, seed: int = 1, fps: float | None = None, log_level: str = "INFO") -> dict:
    """The whole experiment; returns the report (see the module docstring)."""
    extra = ["--loop"] + (["--fps", str(fps)] if fps else [])
    server = ServerProcess(*extra, log_level=log_level)
    try:
        time.sleep(0.2)
        before = {"threads": server.threads(), "fds": server.fds()}
        good = GoodClient(server.port)
        good.start()
        per = -(-requests // workers)
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(server.port), str(per), str(seed + i)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(workers)]
        good.run_for(0.5)  # baseline before the attack warms up
        started = time.monotonic()
        while any(p.poll() is None for p in procs):
            good.run_for(0.25)
        fuzz_seconds = time.monotonic() - started
        summaries = []
        for p in procs:
            out, err = p.communicate(timeout=10)
            if p.returncode != 0:
                raise RuntimeError(f"fuzz worker failed: {err.decode()[-2000:]}")
            summaries.append(json.loads(out))
        good.run_for(0.3)
        good.stop()
        alive = server.alive()
        after = {"threads": settle(server.threads, before["threads"]), "fds": settle(server.fds, before["fds"])}
        log = server.text()
        report = {
            "fuzz": merge(summaries), "fuzz_seconds": round(fuzz_seconds, 2),
            "requests_per_second": round(requests / fuzz_seconds, 1) if fuzz_seconds else None,
            "good_client": good.report(), "server_alive": alive, "crashes": 0 if alive else 1,
            "tracebacks_in_log": log.count("Traceback"), "internal_errors_in_log": log.count("internal error"),
            "threads_before": before["threads"], "threads_after": after["threads"],
            "fds_before": before["fds"], "fds_after": after["fds"],
        }
        report["sigint_exit_seconds"] = round(server.interrupt(), 3)
        return report
    finally:
        server.cleanup()


def verdict(report: dict, max_latency_ms: float = 50.0) -> list[str]:
    """Every property the run must show; empty when all held."""
    fuzz, good = report["fuzz"], report["good_client"]
    problems = []
    if report["crashes"] or not report["server_alive"]:
        problems.append("server died")
    if fuzz["hangs"]:
        problems.append(f"{fuzz['hangs']} connections neither answered nor closed: {fuzz['examples_hang']}")
    if fuzz["server_errors"] or report["internal_errors_in_log"] or report["tracebacks_in_log"]:
        problems.append(f"500s: {fuzz['server_errors']} connections, log tracebacks "
                        f"{report['tracebacks_in_log']}: {fuzz['examples_500']}")
    if good["non_200"]:
        problems.append(f"good client got {good['non_200']}")
    if good["rtp_lost"] != 0:
        problems.append(f"good client lost {good['rtp_lost']} RTP packets")
    if good["max_latency_ms"] is None or good["max_latency_ms"] > max_latency_ms:
        problems.append(f"good client max reply latency {good['max_latency_ms']} ms > {max_latency_ms} ms")
    if report["threads_after"] > report["threads_before"] or report["fds_after"] > report["fds_before"]:
        problems.append(f"threads {report['threads_before']}->{report['threads_after']}, "
                        f"fds {report['fds_before']}->{report['fds_after']}")
    if report["sigint_exit_seconds"] > 1.0:
        problems.append(f"Ctrl-C took {report['sigint_exit_seconds']} s")
    return problems


def pure_fuzz(count: int, seed: int = 1) -> dict:
    """Long run of the pure parsers on mutated captures (the CI version is tests/test_fuzz.py)."""
    import test_fuzz as tf
    rng = random.Random(seed)
    checks = {
        "RtspParser": (tf.RTSP + tf.LAB, lambda b: tf.run_parser(split_random(rng, b))),
        "parse_message": (tf.RTSP, lambda b: tf.only(tf.RtspError, tf.parse_message, b)),
        "Transport": ([v.encode() for v in tf.HEADER_VALUES["transport"]],
                      lambda b: tf.only(tf.RtspError, tf.Transport.parse_list, b.decode("utf-8", "surrogateescape"))),
        "Range": ([v.encode() for v in tf.HEADER_VALUES["range"]],
                  lambda b: tf.only(tf.RtspError, tf.parse_range, b.decode("utf-8", "surrogateescape"))),
        "Session": ([v.encode() for v in tf.HEADER_VALUES["session"]],
                    lambda b: tf.only(tf.RtspError, tf.parse_session, b.decode("utf-8", "surrogateescape"))),
        "SDP": (tf.SDP, lambda b: tf.only(tf.SdpError, tf.parse_sdp, b)),
        "RTP": (tf.RTP, lambda b: tf.only(ValueError, tf.RtpPacket.parse, b)),
        "RTCP": (tf.RTCP, lambda b: tf.only(tf.RtcpError, tf.parse_compound, b)),
        "RFC2435": (tf.PAYLOADS, lambda b: tf.only(tf.JpegError, tf.parse_payload, b)),
        "Authorization": ([v.encode() for v in tf.HEADER_VALUES["authorization"]],
                          lambda b: tf.AUTH.verify(b.decode("utf-8", "surrogateescape"), "DESCRIBE", "rtsp://h/x")),
    }
    done = {}
    failures = []
    start = time.monotonic()
    for name, (seeds, check) in checks.items():
        for i in range(count):
            data = mutate(rng, rng.choice(seeds), rng.randint(1, 6)) if i % 5 else rng.randbytes(rng.randint(0, 300))
            try:
                check(data)
            except Exception as exc:  # AssertionError from `only`, or anything `only` lets through
                failures.append(f"{name}: {type(exc).__name__}: {exc} on {data[:200]!r}")
        done[name] = count
    depacketizer_runs = count // 10
    for _ in range(depacketizer_runs):
        d = tf.JpegDepacketizer()
        for _ in range(rng.randint(1, 30)):
            payload = mutate(rng, rng.choice(tf.PAYLOADS), rng.randint(0, 3))
            try:
                d.push(payload, rng.randrange(4) * 3600, rng.random() < 0.3, rng.random() < 0.1)
            except Exception as exc:  # push must never raise
                failures.append(f"JpegDepacketizer: {type(exc).__name__}: {exc}")
    done["JpegDepacketizer sequences"] = depacketizer_runs
    return {"inputs": done, "total": sum(done.values()), "failures": failures[:20], "failure_count": len(failures),
            "seconds": round(time.monotonic() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="fuzzed messages in all (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="fuzzing processes (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-latency-ms", type=float, default=50.0)
    parser.add_argument("--log-level", default="INFO", help="the server's --log-level (default INFO)")
    parser.add_argument("--pure", type=int, metavar="N", help="instead: N mutated inputs per pure parser")
    parser.add_argument("--worker", nargs=3, type=int, metavar=("PORT", "COUNT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        port, count, seed = args.worker
        print(json.dumps(fuzz_worker(port, count, seed)))
        return 0
    if args.pure:
        report = pure_fuzz(args.pure, args.seed)
        print(json.dumps(report, indent=2))
        return 1 if report["failure_count"] else 0
    report = run(args.requests, args.workers, args.seed, log_level=args.log_level)
    problems = verdict(report, args.max_latency_ms)
    report["problems"] = problems
    print(json.dumps(report, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
