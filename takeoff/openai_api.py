"""Routes of this module are mounted by takeoff/app.py (see docs/internals.md)."""
from __future__ import annotations


def routes() -> list:
    return []
