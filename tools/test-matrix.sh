#!/usr/bin/env bash
# The longer matrix (not part of tools/test.sh, ~5 min per interpreter): the whole suite under
# every supported CPython installed here, python3's included, after tools/test.sh's installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/test.sh --install-only   # the Debian packages and python3's requirements
exec bash tools/pythons.sh --full
