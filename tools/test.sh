#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, then runs them all, then the
# end-to-end subset under the other supported Pythons installed (pyenv's 3.10, 3.12, 3.13 here).
# Debian packages: ffmpeg, GStreamer (tools, good/base plugins, python3-gi + gst-rtsp-server), Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v gst-launch-1.0 >/dev/null 2>&1 || need+=(gstreamer1.0-tools)
gst-inspect-1.0 rtpjpegdepay >/dev/null 2>&1 || need+=(gstreamer1.0-plugins-good)
gst-inspect-1.0 videotestsrc >/dev/null 2>&1 || need+=(gstreamer1.0-plugins-base)
/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" \
    >/dev/null 2>&1 || need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0)
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
command -v xdotool >/dev/null 2>&1 || need+=(xdotool)
command -v import >/dev/null 2>&1 || need+=(imagemagick)
command -v openbox >/dev/null 2>&1 || need+=(openbox)     # a real window manager for the close-box test
command -v wmctrl >/dev/null 2>&1 || need+=(wmctrl)
gst-inspect-1.0 ximagesink >/dev/null 2>&1 || need+=(gstreamer1.0-x)   # bench/player_cpu.py: GStreamer's X sink
command -v ip >/dev/null 2>&1 || need+=(iproute2)       # network namespaces for the multicast tests
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c "import tkinter" 2>/dev/null || echo "warning: this python3 has no tkinter; GUI tests will skip"
python3 -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "running pip as the 'root' user" || true
[ "${1:-}" = --install-only ] && exit 0
# The whole suite under python3 (mypy for linux/win32/darwin included: tests/test_typecheck.py);
# beside it, when run without arguments, the end-to-end subset under every other supported CPython
# installed, one at a time (tools/pythons.sh, ~1 min each, mostly waiting on paced streams; the
# whole suite under each: tools/test-matrix.sh). Its report follows the suite's.
rc=0
others=""
if [ $# -eq 0 ]; then
    others=$(mktemp)
    bash tools/pythons.sh --subset --one-at-a-time > "$others" 2>&1 &
    others_pid=$!
fi
python3 -c 'import platform; print("== Python", platform.python_version(), "(python3): whole suite")'
# Two workers, a test file each at a time (pytest-xdist, --dist loadfile: a file's module fixtures
# and its servers stay in one process): most tests wait on paced streams, so two side by side
# take about half the time of one (~5.5 min instead of ~11 on this 2-core machine).
python3 -m pytest -q -rs -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile tests "$@" || rc=$?
if [ -n "$others" ]; then
    wait "$others_pid" || rc=1
    cat "$others"
    rm -f "$others"
fi
exit $rc
