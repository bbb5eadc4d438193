"""The one stated minimum Python (also in pyproject.toml's requires-python and the README).

Imported first by the programs (Server.py, ClientLauncher.py) so that an older Python says what
it needs in one line instead of failing on a 3.10 feature deep in an import. Keep this file
parseable by old Pythons: no annotations syntax, no f-strings.
"""

import sys

MIN_PYTHON = (3, 10)  # 3.9 is past its end of life; dataclasses' kw_only and `X | Y` need 3.10


def require(program, version=None):
    """Exit with status 2 and one line when this Python is older than MIN_PYTHON."""
    version = tuple(sys.version_info[:2]) if version is None else version
    if version < MIN_PYTHON:
        sys.stderr.write("%s: error: needs Python %d.%d or newer (this is Python %d.%d: %s)\n"
                         % ((program,) + MIN_PYTHON + tuple(version) + (sys.executable,)))
        sys.exit(2)
