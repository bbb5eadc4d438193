#!/usr/bin/env bash
# Runs tests under every other supported CPython installed here (the minimum in PythonVersion.py
# up to 3.13; pyenv's, else pythonX.Y on PATH), each with the test requirements pip-installed.
#   bash tools/pythons.sh --subset    # the end-to-end subset (tools/test.sh runs this)
#   bash tools/pythons.sh --full      # the whole suite under each (tools/test-matrix.sh)
# The interpreter that runs tools/test.sh's full suite (python3) is left out of --subset.
#   bash tools/pythons.sh --subset --one-at-a-time   # not side by side
# Prints one line per interpreter: version, passed/failed/skipped; exit status 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:---subset}
serial=${2:-}   # --one-at-a-time: one interpreter after the other (tools/test.sh, beside its suite)
# The end-to-end subset: server + headless player (UDP, TCP, pause/seek, lab arguments, errors),
# simulated Windows / no Tk / non-ASCII paths, ffmpeg and ffprobe interop, the GUI smoke test.
SUBSET=(
    tests/test_client_e2e.py
    "tests/test_platforms.py::test_simulated_windows_plays_every_frame_and_ctrl_break_stops"
    "tests/test_platforms.py::test_media_folder_and_movie_names_with_spaces_and_non_ascii"
    "tests/test_platforms.py::test_no_tk_window_is_one_line_pointing_at_headless"
    "tests/test_interop_server.py::test_ffmpeg_receives_every_frame[udp]"
    "tests/test_interop_server.py::test_ffprobe_describes_the_stream"
    "tests/test_client_gui.py::test_gui_plays_shows_pixels_stats_seek_close"
)
min_minor=$(python3 -c 'import PythonVersion; print(PythonVersion.MIN_PYTHON[1])')
self_minor=$(python3 -c 'import sys; print(sys.version_info[1])')
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
# what the tests need besides mypy (only the typecheck test uses it, and it runs under python3)
reqs=$(grep -v -e '^#' -e '^mypy' requirements.txt | tr '\n' ' ')
status=0
summary=()
logs=$(mktemp -d)
pids=()
names=()
# The interpreters run side by side (the tests mostly wait on paced streams and on ports 0,
# so they do not collide), each into its own log, printed in order when all are done.
for minor in $(seq "$min_minor" 13); do
    if [ "$mode" = --subset ] && [ "$minor" = "$self_minor" ]; then
        continue
    fi
    py=$(ls -d "$root"/versions/3."$minor".*/bin/python 2>/dev/null | sort -V | tail -1)
    [ -n "$py" ] || py=$(command -v "python3.$minor" || true)
    if [ -z "$py" ]; then
        summary+=("3.$minor: SKIPPED (no CPython 3.$minor installed: pyenv install 3.$minor to test it)")
        continue
    fi
    version=$("$py" -c 'import platform; print(platform.python_version())')
    # shellcheck disable=SC2086
    "$py" -m pip install -q --disable-pip-version-check $reqs 2>&1 | grep -v "as the 'root' user" || true
    if ! "$py" -c "import PIL, pytest, hypothesis" 2>/dev/null; then
        summary+=("$version: FAILED (pip could not install: $reqs)")
        status=1
        continue
    fi
    if [ "$mode" = --full ]; then
        args=(tests)
    else
        args=("${SUBSET[@]}")
    fi
    { echo "== Python $version ($py): ${mode#--}"
      "$py" -m pytest -q -rs -p no:cacheprovider "${args[@]}"
      echo "rc=$?"; } > "$logs/$version.log" 2>&1 &
    pids+=($!)
    [ "$serial" = --one-at-a-time ] && { wait "$!" || true; }
    names+=("$version")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || true
    log="$logs/${names[$i]}.log"
    grep -v '^rc=' "$log"
    rc=$(sed -n 's/^rc=//p' "$log" | tail -1)
    [ "$rc" = 0 ] || status=1
    counts=$(grep -v '^rc=' "$log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
    summary+=("${names[$i]}: $counts")
done
rm -rf "$logs"
echo "== other Pythons (${mode#--}):"
printf '   %s\n' "${summary[@]}"
exit $status
