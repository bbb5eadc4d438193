"""Shared helpers for the benchmarks: repo on sys.path, machine description, timing, media.

Benchmarks are not tests: they print figures (and a JSON line with --json) and assert nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Iterable

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
for _path in (REPO, os.path.join(REPO, "tools"), os.path.join(REPO, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

MEDIA_CACHE = os.environ.get("BENCH_MEDIA", "/tmp/bench-media")


def machine() -> str:
    """One line naming the machine the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, load avg {load:.2f}")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a few seconds: smaller counts (figures are noisy)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    return p


def best_of(fn: Callable[[int], None], number: int, repeat: int, budget: float = 30.0) -> float:
    """Seconds per call: the best of `repeat` timings of fn(number) (bounded by `budget` s)."""
    best = float("inf")
    deadline = time.monotonic() + budget
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(number)
        best = min(best, (time.perf_counter() - t0) / number)
        if time.monotonic() > deadline:
            break
    return best


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """utime + stime (or stime alone) of a process, all its threads, in seconds (proc(5) 14, 15)."""
    if sys.platform != "linux":
        raise SystemExit("this benchmark reads /proc: Linux only")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    if system_only:
        return int(fields[12]) / ticks
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def emit(title: str, rows: list[dict], columns: Iterable[str], as_json: bool, extra: dict | None = None) -> None:
    """Print a small table (and optionally one JSON line)."""
    columns = list(columns)
    print(f"# {title}")
    print(f"# machine: {machine()}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))
    if extra:
        for k, v in extra.items():
            print(f"# {k}: {v}")
    if as_json:
        print(json.dumps({"title": title, "rows": rows, **(extra or {})}))
    sys.stdout.flush()


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def movie_dir(width: int, height: int, frames: int, quality: int, name: str = "bench.Mjpeg",
              jpeg_dir: bool = False) -> str:
    """A folder with one generated movie (cached under MEDIA_CACHE); with jpeg_dir also frames/%05d.jpg."""
    import make_movie
    from VideoStream import write_mjpeg
    folder = os.path.join(MEDIA_CACHE, f"{width}x{height}-{frames}-q{quality}")
    path = os.path.join(folder, name)
    jpgs = os.path.join(folder, "frames")
    if not os.path.exists(path) or (jpeg_dir and not os.path.isdir(jpgs)):
        os.makedirs(folder, exist_ok=True)
        data = make_movie.make_frames(size=(width, height), frames=frames, quality=quality)
        write_mjpeg(path + ".tmp", data)
        os.replace(path + ".tmp", path)
        os.makedirs(jpgs, exist_ok=True)
        for i, jpeg in enumerate(data):
            with open(os.path.join(jpgs, f"{i:05d}.jpg"), "wb") as f:
                f.write(jpeg)
    return folder


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
