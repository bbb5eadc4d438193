"""A private network namespace for multicast tests: multicast never leaves this machine.

The namespace has only a loopback interface, up, with multicast on and the route
224.0.0.0/4 on it; everything that sends or receives multicast runs inside it with
``ip netns exec``.  It is deleted at the end.  Where namespaces cannot be made (not root,
no ``ip``), :func:`unavailable` says why and the tests skip with that reason printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager

IP = shutil.which("ip")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IP or "ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=10)


def unavailable() -> str | None:
    """Why no namespace can be made here, or None."""
    if IP is None:
        return "the ip command (iproute2) is missing"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "network namespaces need root"
    name = f"probe{uuid.uuid4().hex[:8]}"
    result = _ip("netns", "add", name)
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    _ip("netns", "del", name)
    return None


@contextmanager
def namespace(v6: bool = False):
    """A fresh namespace: lo up, multicast on, 224.0.0.0/4 via lo; with v6, IPv6 multicast too."""
    name = f"mcast{uuid.uuid4().hex[:8]}"
    result = _ip("netns", "add", name)
    if result.returncode != 0:
        raise RuntimeError(f"ip netns add {name}: {result.stderr.strip()}")
    try:
        for args in (["link", "set", "lo", "up"], ["link", "set", "lo", "multicast", "on"],
                     ["route", "add", "224.0.0.0/4", "dev", "lo"]):
            result = _ip("-n", name, *args)
            if result.returncode != 0:
                raise RuntimeError(f"ip -n {name} {' '.join(args)}: {result.stderr.strip()}")
        if v6:
            # Linux loopback carries no IPv6 multicast: a veth pair with both ends inside the
            # namespace does (nothing is attached to the host), with a ULA on one end
            for args in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                         ["link", "set", "v0", "up"], ["link", "set", "v1", "up"],
                         ["-6", "addr", "add", "fd00::1/64", "dev", "v0", "nodad"]):
                result = _ip("-n", name, *args)
                if result.returncode != 0:
                    raise RuntimeError(f"ip -n {name} {' '.join(args)}: {result.stderr.strip()}")
        yield name
    finally:
        for _ in range(20):  # processes still inside keep it busy for a moment
            if _ip("netns", "del", name).returncode == 0:
                break
            time.sleep(0.1)


def exec_args(ns: str, argv: list[str]) -> list[str]:
    """argv run inside namespace `ns`."""
    return [IP or "ip", "netns", "exec", ns, *argv]


def udp_out_datagrams(ns: str) -> int:
    """UDP sends counted by the namespace's kernel (/proc/net/snmp Udp OutDatagrams)."""
    out = subprocess.run(exec_args(ns, ["cat", "/proc/net/snmp"]), stdout=subprocess.PIPE, text=True,
                         timeout=10).stdout
    lines = [line.split() for line in out.splitlines() if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("OutDatagrams")])
