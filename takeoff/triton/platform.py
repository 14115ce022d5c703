"""Whether PyTriton 0.7.0 can run here: its one wheel is manylinux_2_35 x86_64 and bundles the
Triton server and a Python-backend stub for CPython 3.8 to 3.13.

Standard library only, and importable before takeoff is installed: the Makefile runs
`python -m takeoff.triton.platform` to decide whether `make install` adds the [triton] extra.
"""
from __future__ import annotations

import platform
import sys

MIN_GLIBC = (2, 35)
PYTHONS = ((3, 8), (3, 13))  # the Python-backend stubs the wheel ships


def wheel_misfit() -> str | None:
    """Why the PyTriton wheel cannot run on this machine, or None when it can."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"PyTriton has a wheel for Linux x86_64 only (this is {sys.platform} " \
               f"{platform.machine()})"
    libc, version = platform.libc_ver()
    if libc != "glibc" or _version(version) < MIN_GLIBC:
        return f"PyTriton needs glibc {'.'.join(map(str, MIN_GLIBC))} or newer (this has " \
               f"{libc or 'no glibc'} {version})"
    if not PYTHONS[0] <= sys.version_info[:2] <= PYTHONS[1]:
        return f"PyTriton ships Python-backend stubs for Python 3.8 to 3.13 only (this is " \
               f"{platform.python_version()})"
    return None


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        return (0,)


if __name__ == "__main__":
    # For the Makefile: the extra to add to `pip install -e ".[...]"`, or nothing.
    print("" if wheel_misfit() else ",triton")
