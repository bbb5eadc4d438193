"""Run a program here as if on another platform: the stand-in for a Windows machine / a Python
without Tk, since neither is available on this Linux host.

    python tests/platform_sim.py --windows --no-tk Server.py 0 --host 127.0.0.1
    python tests/platform_sim.py --no-tk -m pytest --collect-only tests

--windows takes away, for this process only, what Windows' Python does not have before the
program imports anything: the socket module's MSG_DONTWAIT, SO_REUSEPORT, AF_UNIX, UDP_SEGMENT,
CMSG_* and AF_PACKET, the socket methods sendmsg/recvmsg/recvmsg_into, select.poll/epoll/devpoll/
kqueue (only select() exists there), and the signals Windows lacks, SIGTERM included (nothing
delivers it to a Windows console program, so a program must not rely on it); and it adds
SIGBREAK (Ctrl-Break) as the Unix signal number 21, so a test can press "Ctrl-Break" with
os.kill(pid, 21). What it cannot take away (sys.platform, the kernel's behaviour) stays Linux's.

--no-tk makes ``import tkinter`` (and _tkinter, PIL.ImageTk) fail the way it does on a Python
built without Tk, so any import of Tk on a path that must not need it fails loudly.
"""

from __future__ import annotations

import importlib.abc
import select
import signal
import socket
import sys

WINDOWS_SIGBREAK = 21  # Windows' SIGBREAK number; on Linux 21 is SIGTTIN, harmless to catch

SOCKET_NAMES = ("MSG_DONTWAIT", "SO_REUSEPORT", "AF_UNIX", "UDP_SEGMENT", "CMSG_LEN", "CMSG_SPACE",
                "AF_PACKET", "SO_BINDTODEVICE")
SOCKET_METHODS = ("sendmsg", "recvmsg", "recvmsg_into", "sendmsg_afalg")
SELECT_NAMES = ("poll", "epoll", "devpoll", "kqueue", "kevent")
# What Windows' signal module has (besides the CTRL_* event numbers); everything else goes.
WINDOWS_SIGNALS = {"SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV"}
SIGNAL_FUNCTIONS = ("alarm", "pause", "setitimer", "getitimer", "siginterrupt", "pthread_kill",
                    "pthread_sigmask", "sigpending", "sigwait", "sigwaitinfo", "sigtimedwait")
TK_MODULES = ("tkinter", "_tkinter", "PIL.ImageTk", "PIL._tkinter_finder")


class _Absent:
    """A class attribute that is not there: AttributeError on the class and on instances, so
    ``hasattr(sock, "sendmsg")`` and ``hasattr(socket.socket, "sendmsg")`` are both false."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> object:
        raise AttributeError(f"'socket' object has no attribute {self.name!r} (simulated Windows)")


def _loopback_socketpair(family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
                         proto: int = 0) -> tuple[socket.socket, socket.socket]:
    """socketpair() as Windows' Python builds it (no AF_UNIX): a loopback TCP connection."""
    with socket.socket(family, type, proto) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        a = socket.socket(family, type, proto)
        a.connect(listener.getsockname())
        b, _ = listener.accept()
    return a, b


def simulate_windows() -> None:
    for name in SOCKET_NAMES:
        if hasattr(socket, name):
            delattr(socket, name)
    namespace: dict[str, object] = {name: _Absent() for name in SOCKET_METHODS}
    windows_socket = type("socket", (socket.socket,), namespace)
    windows_socket.__module__ = "socket"
    # setattr: these are deliberate replacements of what the module has (create_connection and
    # accept() build their sockets from socket.socket, so they get the Windows-like class too)
    setattr(socket, "socket", windows_socket)
    setattr(socket, "SocketType", windows_socket)
    setattr(socket, "socketpair", _loopback_socketpair)
    for name in SELECT_NAMES:
        if hasattr(select, name):
            delattr(select, name)
    for name in [n for n in dir(signal) if n.startswith("SIG") and not n.startswith("SIG_")]:
        if name not in WINDOWS_SIGNALS:
            delattr(signal, name)
    for name in SIGNAL_FUNCTIONS:
        if hasattr(signal, name):
            delattr(signal, name)
    setattr(signal, "SIGBREAK", WINDOWS_SIGBREAK)
    setattr(signal, "CTRL_C_EVENT", 0)
    setattr(signal, "CTRL_BREAK_EVENT", 1)


class _NoTk(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in TK_MODULES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (simulated Python without Tk)",
                                      name=fullname)
        return None


def simulate_no_tk() -> None:
    for name in TK_MODULES:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, _NoTk())


def main() -> None:
    args = sys.argv[1:]
    while args and args[0] in ("--windows", "--no-tk"):
        (simulate_windows if args.pop(0) == "--windows" else simulate_no_tk)()
    import os
    import runpy
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # not tests/ first
    if args[:1] == ["-m"]:
        sys.argv = [args[1]] + args[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
