"""SocketBuffers.request_buffer: what each platform's kernel does with a 4 MB request, as fakes of
its setsockopt/getsockopt, and the one warning a user gets."""

from __future__ import annotations

import errno
import logging
import socket

import pytest

from SocketBuffers import request_buffer

MB = 1 << 20


class FakeKernel:
    """setsockopt/getsockopt of one socket as a platform's kernel answers them."""

    def __init__(self, platform: str, limit: int, root: bool = False) -> None:
        self.platform, self.limit, self.root = platform, limit, root
        self.value = 212992
        self.calls: list[tuple[int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.calls.append((option, value))
        if option in (33, 32):                        # SO_RCVBUFFORCE / SO_SNDBUFFORCE (Linux)
            if not self.root:
                raise PermissionError(errno.EPERM, "Operation not permitted")
            self.value = 2 * value
        elif self.platform == "darwin":
            if value > self.limit:                    # kern.ipc.maxsockbuf: refused, not capped
                raise OSError(errno.ENOBUFS, "No buffer space available")
            self.value = value
        elif self.platform == "linux":
            self.value = 2 * min(value, self.limit)   # capped at rmem_max, reported doubled
        else:
            self.value = value                        # Windows: what was asked

    def getsockopt(self, level: int, option: int) -> int:
        return self.value


CASES = [
    # platform, limit, root, granted, warning (None: no warning)
    ("linux", 8 * MB, False, 8 * MB, None),
    ("linux", 212992, False, 425984, "raise it with: sudo sysctl -w net.core.rmem_max=8388608"),
    ("linux", 212992, True, 8 * MB, None),
    ("darwin", 8 * MB, False, 4 * MB, None),
    ("darwin", 3 * MB, False, 2 * MB, "raise it with: sudo sysctl -w kern.ipc.maxsockbuf=16777216"),
    ("darwin", 100 * 1024, False, 212992, "kern.ipc.maxsockbuf"),  # nothing accepted: the default
    ("win32", 0, False, 4 * MB, None),
]


@pytest.mark.parametrize("platform, limit, root, granted, warning", CASES)
def test_request_buffer_per_platform(platform, limit, root, granted, warning, caplog):
    kernel = FakeKernel(platform, limit, root)
    with caplog.at_level(logging.DEBUG, logger="SocketBuffers"):
        got = request_buffer(kernel, socket.SO_RCVBUF, 4 * MB, "UDP (RTP)", platform=platform)  # type: ignore[arg-type]
    assert got == granted
    lines = [r.getMessage() for r in caplog.records]
    if warning is None:
        assert lines == []
    else:
        assert len(lines) == 1 and warning in lines[0], lines
        assert lines[0].startswith("UDP (RTP) receive buffer is ") and "may lose packets" in lines[0]
    if platform != "linux":
        assert all(option == socket.SO_RCVBUF for option, _ in kernel.calls)  # no Linux-only option


def test_real_socket_gets_a_buffer():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = request_buffer(s, socket.SO_RCVBUF, 1 * MB)
        assert got == s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) and got > 0
