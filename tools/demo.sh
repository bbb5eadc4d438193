#!/usr/bin/env bash
# The README's demo: starts the server on a free port and plays movie.Mjpeg in the player.
# With a display (DISPLAY set) the Tk window opens; without one the player runs headless
# and prints a one-line progress/statistics bar.  Extra arguments go to the player.
set -euo pipefail
cd "$(dirname "$0")/.."
# python3 on Linux/macOS; Git Bash on Windows has python or the py launcher instead
py=${PYTHON:-$(command -v python3 || command -v python || command -v py || echo python3)}
"$py" -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "running pip as the 'root' user" || true
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" Server.py "$port" --host 127.0.0.1 --log-level WARNING &
server=$!
# SIGTERM, not SIGINT: a background job of a script starts with SIGINT ignored
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 50); do
    "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
echo "server: rtsp://127.0.0.1:$port/movie.Mjpeg  (also try: ffplay rtsp://127.0.0.1:$port/movie.Mjpeg)"
screen=${DISPLAY:-}
[ "${OS:-}" = Windows_NT ] || [ "$(uname -s)" = Darwin ] && screen=native   # no X11 DISPLAY there
if [ -n "$screen" ] && "$py" -c "import tkinter; tkinter.Tk().destroy()" 2>/dev/null; then
    "$py" ClientLauncher.py 127.0.0.1 "$port" 0 movie.Mjpeg "$@"
else
    echo "no display: playing headless (set DISPLAY for the window)"
    "$py" ClientLauncher.py 127.0.0.1 "$port" 0 movie.Mjpeg --headless "$@"
fi
